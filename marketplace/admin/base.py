"""What every admin module shares: what staff may do with rows the actions own, and the reason
form of the reject actions."""

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin

if TYPE_CHECKING:  # a development dependency only: never imported at run time
    from django_stubs_ext import StrPromise


class ReadOnlyMixin:
    """Rows only actions write (history, ledgers, notifications, events): staff look, never
    add, edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
