"""Staff side of the catalog: the listing review queue, categories, banners."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Case, IntegerField, Value, When
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from marketplace.actions import catalog as catalog_actions
from marketplace.admin.base import ActionOnlyMixin, ReadOnlyMixin, RejectForm, YuanDisplayMixin
from marketplace.models import Banner, Category, ImageUpload, Listing, ListingReview, ListingStatus
from marketplace.money import yuan_label
from marketplace.representations import media_url


class ChildCategoryInline(admin.TabularInline):
    model = Category
    fk_name = "parent"
    extra = 0
    fields = ("name", "icon", "icon_preview", "sort_order", "is_active")
    readonly_fields = ("icon_preview",)

    @admin.display(description=_("icon preview"))
    def icon_preview(self, obj):
        return category_icon_preview(obj)


def category_icon_preview(obj):
    if not obj or not obj.icon:
        return "-"
    return format_html(
        '<img src="{}" alt="" style="width:48px;height:48px;object-fit:contain">',
        _icon_url(obj.icon.name),
    )


def _icon_url(name: str) -> str:
    return name if name.startswith(("http://", "https://", "/")) else media_url(name)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("id", "icon_preview", "name", "parent", "sort_order", "is_active")
    readonly_fields = ("icon_preview",)

    @admin.display(description=_("icon preview"))
    def icon_preview(self, obj):
        return category_icon_preview(obj)

    list_editable = ("sort_order", "is_active")
    list_filter = ("is_active", ("parent", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name",)
    ordering = ("parent__sort_order", "parent_id", "sort_order", "id")
    inlines = [ChildCategoryInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        catalog_actions.invalidate_catalog_cache()

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        catalog_actions.invalidate_catalog_cache()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        catalog_actions.invalidate_catalog_cache()


@admin.register(Banner)
class BannerAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "preview",
        "title",
        "target_type",
        "sort_order",
        "is_active",
        "starts_at",
        "ends_at",
    )
    list_editable = ("sort_order", "is_active")
    list_filter = ("is_active", "target_type")
    search_fields = ("title",)
    ordering = ("sort_order", "id")
    raw_id_fields = ("target_listing",)
    readonly_fields = ("preview",)

    @admin.display(description=_("image"))
    def preview(self, obj):
        if not obj.image:
            return "-"
        return format_html('<img src="{}" style="max-height:60px;max-width:160px">', obj.image.url)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        catalog_actions.invalidate_catalog_cache()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        catalog_actions.invalidate_catalog_cache()


class ListingImageInline(admin.TabularInline):
    model = ImageUpload
    fk_name = "listing"
    extra = 0
    can_delete = False
    fields = ("preview", "position", "width", "height", "format")
    readonly_fields = fields

    @admin.display(description=_("image"))
    def preview(self, obj):
        return format_html('<img src="{}" style="max-height:90px">', media_url(obj.thumbnail))

    def has_add_permission(self, request, obj=None):
        return False


class ListingReviewInline(admin.TabularInline):
    model = ListingReview
    extra = 0
    can_delete = False
    fields = ("at", "staff", "decision", "reason")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


# Listings come from sellers through the API; orders and reviews point at them, so one is
# taken off sale by rejecting it, never deleted.
class ShippingFilter(admin.SimpleListFilter):
    title = _("shipping")
    parameter_name = "shipping"

    def lookups(self, request, model_admin):
        return [("free", _("Free shipping")), ("paid", _("Buyer pays shipping"))]

    def queryset(self, request, queryset):
        if self.value() == "free":
            return queryset.filter(shipping_fee_fen=0)
        if self.value() == "paid":
            return queryset.filter(shipping_fee_fen__gt=0)
        return queryset


@admin.register(Listing)
class ListingAdmin(YuanDisplayMixin, ActionOnlyMixin, admin.ModelAdmin):
    """The review queue: pending first, oldest submission first."""

    list_display = (
        "id",
        "cover_preview",
        "title",
        "seller",
        "category",
        "price_yuan",
        "shipping_yuan",
        "condition",
        "city_code",
        "status",
        "is_flagged",
        "submitted_at",
        "views",
    )
    list_filter = (
        "status",
        "is_flagged",
        "condition",
        ShippingFilter,
        ("category", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("title", "seller__nickname", "seller__username", "=id", "=city_code")
    list_select_related = ("seller", "category", "category__parent")
    raw_id_fields = ("seller",)
    readonly_fields = (
        "seller",
        "status",
        "views",
        "is_flagged",
        "review_note",
        "created_at",
        "updated_at",
        "submitted_at",
        "approved_at",
        "cover",
        "favorite_count",
        "favourites",
    )
    inlines = [ListingImageInline, ListingReviewInline]

    @admin.display(description=_("Favourited by"))
    def favourites(self, obj):
        if obj.pk is None:
            return "-"
        url = reverse("admin:marketplace_favorite_changelist")
        people = gettext("%(count)s people") % {"count": obj.favorite_count}
        return format_html('<a href="{}?q={}">{}</a>', url, obj.pk, people)

    actions = ["approve_selected", "reject_selected"]
    list_per_page = 50

    def get_ordering(self, request):
        # Staff work the queue from the top: pending first, then by submission, oldest first.
        pending_first = Case(
            When(status=ListingStatus.PENDING_REVIEW, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return (pending_first.asc(), "submitted_at", "id")

    def get_readonly_fields(self, request, obj=None):
        # Content, price and bargaining limits change only through the seller's API (which sends
        # the listing back to review and declines offers above a new price); status only through
        # the review actions, which record who decided. Staff read here and act via the actions.
        return self._swap(
            [
                *self.readonly_fields,
                *(
                    f.name
                    for f in Listing._meta.fields
                    if not f.primary_key and f.name not in self.readonly_fields
                ),
            ]
        )

    @admin.display(description=_("cover"))
    def cover_preview(self, obj):
        if not obj.cover:
            return "-"
        return format_html('<img src="{}" style="max-height:48px">', media_url(obj.cover))

    @admin.display(description=_("price (¥)"), ordering="price_fen")
    def price_yuan(self, obj):
        return yuan_label(obj.price_fen)

    @admin.display(description=_("shipping (¥)"), ordering="shipping_fee_fen")
    def shipping_yuan(self, obj):
        return yuan_label(obj.shipping_fee_fen) if obj.shipping_fee_fen else _("Free shipping")

    def _report(self, request, done: int, problems: list[str], message: str) -> None:
        if done:
            # message: "Approved %(count)s listing(s)." or the rejected one, marked by the caller.
            messages.success(request, message % {"count": done})
        for problem in problems:
            messages.warning(request, problem)

    @admin.action(description=_("Approve the selected listings"), permissions=["change"])
    def approve_selected(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        done, problems = catalog_actions.review_many(
            staff=request.user, listing_ids=ids, approve=True
        )
        self._report(request, done, problems, gettext("Approved %(count)s listing(s)."))

    @admin.action(
        description=_("Reject the selected listings (asks for a reason)"), permissions=["change"]
    )
    def reject_selected(self, request, queryset):
        form = RejectForm(
            request.POST if "confirm_reject" in request.POST else None,
            help_text=_("Shown to the seller, who may edit and resubmit."),
        )
        if "confirm_reject" in request.POST and form.is_valid():
            ids = list(queryset.values_list("pk", flat=True))
            done, problems = catalog_actions.review_many(
                staff=request.user,
                listing_ids=ids,
                approve=False,
                reason=form.cleaned_data["reason"],
            )
            self._report(request, done, problems, gettext("Rejected %(count)s listing(s)."))
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Reject listings"),
            "opts": self.model._meta,
            "listings": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/marketplace/listing/reject_reason.html", context)


@admin.register(ListingReview)
class ListingReviewAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "listing", "decision", "staff", "reason", "at")
    list_filter = ("decision", "at")
    search_fields = ("listing__title", "staff__username", "=listing__id")
    list_select_related = ("listing", "staff")
    ordering = ("-id",)
