"""What every admin module shares: what staff may do with rows the actions own, and the reason
form of the reject actions."""

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.utils.text import format_lazy
from django.utils.translation import gettext as _

if TYPE_CHECKING:  # a development dependency only: never imported at run time
    from django_stubs_ext import StrPromise
from marketplace.money import parse_yuan, yuan, yuan_label


class ReadOnlyMixin:
    """Rows only actions write (history, ledgers, notifications, events): staff look, never
    add, edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SignedForReaderMixin:
    """The object a change page loads carries its reader (`reader_id`): the private-media links
    the page shows (order videos, chat images) are signed for the staff member reading it."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is not None:
            obj.reader_id = request.user.pk
        return obj


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class ActionOnlyMixin:
    """Rows staff change only through the admin actions that record who and why: never added
    or deleted by hand, and never saved from the change form."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Every field is read-only: saving would only write back the copy read at the start of
        # this request (status and money included) over a concurrent change. Use the actions.
        return None


class SingletonSettingsMixin:
    """A settings model with one row, changed in place and never deleted."""

    model: Any

    def has_add_permission(self, request, obj=None):
        # One row; and creating it is changing the settings, which needs the permission.
        allowed = super().has_add_permission(request)  # type: ignore[misc]  # mixed into ModelAdmin
        return allowed and not self.model.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


class RejectForm(forms.Form):
    """The reason of a reject action; `help_text` tells staff what the reason does."""

    reason = forms.CharField(
        max_length=200,
        required=True,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def __init__(self, *args, help_text: "str | StrPromise", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].help_text = help_text


class YuanField(forms.Field):
    """Money typed in yuan ("1,234.56"), cleaned to integer fen; a third decimal is refused
    rather than rounded (marketplace.money.parse_yuan)."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "size": 12})
    # Longer than any amount the platform handles ("99,999,999.99"): refused before parsing.
    MAX_TEXT = 20

    def __init__(self, *args, min_fen: int | None = 0, max_fen: int | None = None, **kwargs):
        self.min_fen, self.max_fen = min_fen, max_fen
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        # Initial values are fen (the model's); what the form shows back is what staff typed.
        return yuan(value) if isinstance(value, int) else value

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        try:
            if len(text) > self.MAX_TEXT:
                raise ValueError(text)
            fen = parse_yuan(text)
        except ValueError:
            raise forms.ValidationError(
                _("Enter an amount in yuan with at most two decimals (such as 12.34)."),
                code="invalid_yuan",
            ) from None
        if self.min_fen is not None and fen < self.min_fen:
            raise forms.ValidationError(
                _("The amount cannot be below %(amount)s.") % {"amount": yuan_label(self.min_fen)},
                code="min",
            )
        if self.max_fen is not None and fen > self.max_fen:
            raise forms.ValidationError(
                _("The amount cannot be above %(amount)s.") % {"amount": yuan_label(self.max_fen)},
                code="max",
            )
        return fen


def fen_as_yuan(field_name: str, label: "str | StrPromise"):
    """A list/detail column showing a fen field as "¥1,234.56", sortable by the field."""

    @admin.display(description=label, ordering=field_name)
    def column(obj):
        return yuan_label(getattr(obj, field_name))

    column.__name__ = f"{field_name.removesuffix('_fen')}_yuan"
    return column


def yuan_readonly(model, labels: "dict[str, str | StrPromise] | None" = None) -> list:
    """Every field of `model` for a read-only detail page, with each `_fen` field replaced, in
    place, by its yuan column (label: `labels[name]` or the field's verbose_name + " (¥)")."""
    columns: list = []
    for field in model._meta.fields:
        if field.name.endswith("_fen"):
            # Lazy: the field's name in the reader's language (an f-string would fix the language
            # active at import).
            label = (labels or {}).get(field.name) or format_lazy("{} (¥)", field.verbose_name)
            columns.append(fen_as_yuan(field.name, label))
        else:
            columns.append(field.name)
    return columns


def fen_field_names(model) -> list[str]:
    """Excluded from the form of an admin showing them through `yuan_readonly` columns (a
    callable in readonly_fields does not keep the raw field out of the form)."""
    return [field.name for field in model._meta.fields if field.name.endswith("_fen")]


class YuanDisplayMixin:
    """Shows every read-only `_fen` field of a list, detail page or inline as "¥1,234.56"
    (same place, same ordering), and keeps the raw field out of the form. For admins whose
    fields are listed by name or generated from the model; `yuan_labels` names a column."""

    yuan_labels: dict[str, str] = {}

    def _yuan_column(self, name: str):
        cache = self.__dict__.setdefault("_yuan_columns", {})
        if name not in cache:
            model = self.model  # type: ignore[attr-defined]  # mixed into an admin
            label = self.yuan_labels.get(name) or f"{model._meta.get_field(name).verbose_name} (¥)"
            cache[name] = fen_as_yuan(name, label)
        return cache[name]

    def _swap(self, names) -> list:
        model_fields = {field.name for field in self.model._meta.fields}  # type: ignore[attr-defined]
        return [
            self._yuan_column(name)
            if isinstance(name, str) and name.endswith("_fen") and name in model_fields
            else name
            for name in names
        ]

    def _yuan_columns_of_model(self) -> list:
        return [self._yuan_column(name) for name in fen_field_names(self.model)]  # type: ignore[attr-defined]

    def get_readonly_fields(self, request, obj=None):
        names = self._swap(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        # The raw fields are out of the form (get_exclude): their yuan columns are read-only.
        return [
            *names,
            *(column for column in self._yuan_columns_of_model() if column not in names),
        ]

    def get_fields(self, request, obj=None):
        names = self._swap(super().get_fields(request, obj))  # type: ignore[misc]
        if self.fields or self.fieldsets:  # type: ignore[attr-defined]
            return names
        # Generated from the model: keep the model's order, each amount where its field was.
        model = self.model  # type: ignore[attr-defined]
        in_model_order = [
            self._yuan_column(field.name) if field.name.endswith("_fen") else field.name
            for field in model._meta.fields
            if field.name in names or field.name.endswith("_fen")
        ]
        return [*in_model_order, *(name for name in names if name not in in_model_order)]

    def get_list_display(self, request):
        return self._swap(super().get_list_display(request))  # type: ignore[misc]

    def get_exclude(self, request, obj=None):
        excluded = list(super().get_exclude(request, obj) or [])  # type: ignore[misc]
        return [*excluded, *fen_field_names(self.model)]  # type: ignore[attr-defined]
