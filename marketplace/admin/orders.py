"""Staff console for orders, refunds, payment notifications, disputes and platform settings.

Statuses and money are read-only here: they change only through actions that record why.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from marketplace.actions import fulfilment
from marketplace.actions.platform import LIMITS, check_platform_values, update_platform_settings
from marketplace.actions.refunds import retry_refund
from marketplace.admin import columns
from marketplace.admin.base import (
    ActionOnlyMixin,
    ReadOnlyInline,
    ReadOnlyMixin,
    SignedForReaderMixin,
    SingletonSettingsMixin,
    YuanField,
    fen_as_yuan,
    fen_field_names,
    yuan_readonly,
)
from marketplace.admin.exports import EXPORT_CHANGE_LIST, Column, ExportMixin
from marketplace.errors import DomainError
from marketplace.media import private_url
from marketplace.models.fulfilment import Dispute, Review, TrackingEvent
from marketplace.models.orders import (
    Order,
    OrderHistory,
    PaymentNotification,
    PlatformSettings,
    PlatformSettingsChange,
    Refund,
)
from marketplace.money import yuan_label
from marketplace.states import OrderStatus


class HistoryInline(ReadOnlyInline):
    model = OrderHistory
    fields = ("at", "from_status", "to_status", "actor", "actor_user", "reason")
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = (
        "out_refund_no",
        fen_as_yuan("amount_fen", _("refund amount")),
        "status",
        "attempts",
        "last_error",
        "wechat_status",
        "created_at",
        "succeeded_at",
    )
    readonly_fields = fields


class TrackingInline(ReadOnlyInline):
    model = TrackingEvent
    fields = ("occurred_at", "text", "location")
    readonly_fields = fields


class DisputeInline(ReadOnlyInline):
    model = Dispute
    fields = (
        "reason",
        "opened_at",
        "resolution",
        fen_as_yuan("refund_fen", _("refund amount")),
        "note",
        "settled_by",
        "settled_at",
    )
    readonly_fields = fields


class RefundStateFilter(admin.SimpleListFilter):
    title = _("refund")
    parameter_name = "refund"

    def lookups(self, request, model_admin):
        return [("none", _("no refund")), *Refund.Status.choices]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(refund__isnull=True)
        if value:
            return queryset.filter(refund__status=value)
        return queryset


class SettleDisputeForm(forms.Form):
    refund_yuan = YuanField(
        label=_("Refund (yuan)"),
        help_text=_(
            "Refund to the buyer in yuan, such as 40.00: 0 releases everything to the seller."
        ),
    )
    note = forms.CharField(max_length=500, widget=forms.Textarea, help_text=_("Why; recorded."))


ORDER_EXPORT = [
    Column("订单号", lambda o: o.order_no),
    Column("状态", lambda o: o.get_status_display()),
    Column("商品", lambda o: o.title),
    Column("金额（元）", lambda o: o.price_fen, "money"),
    Column("佣金（元）", lambda o: o.commission_fen, "money"),
    Column("买家", lambda o: o.buyer.nickname or o.buyer.username),
    Column("卖家", lambda o: o.seller.nickname or o.seller.username),
    Column("快递单号", lambda o: o.tracking_no),
    Column("下单时间", lambda o: o.created_at),
    Column("付款时间", lambda o: o.paid_at),
]


@admin.register(Order)
class OrderAdmin(SignedForReaderMixin, ExportMixin, ActionOnlyMixin, admin.ModelAdmin):
    list_filter = ("status", RefundStateFilter, "created_at")
    search_fields = (
        "order_no",
        "title",
        "buyer__nickname",
        "buyer__username",
        "buyer__phone",
        "seller__nickname",
        "seller__username",
        "seller__phone",
        "listing__title",
        "tracking_no",
    )
    list_select_related = ("buyer", "seller", "listing")
    ordering = ("-id",)
    date_hierarchy = "created_at"
    inlines = [HistoryInline, RefundInline, DisputeInline, TrackingInline]
    actions = ["settle_dispute"]
    readonly_fields = yuan_readonly(
        Order, {"price_fen": _("amount (¥)"), "commission_fen": _("commission (¥)")}
    )
    exclude = fen_field_names(Order)
    export_name = "orders"
    change_list_template = EXPORT_CHANGE_LIST
    export_columns = ORDER_EXPORT

    # The video as a link signed for the staff member reading the page (the private storage has
    # no URL of its own; marketplace/media.py), in the video field's place.
    def get_fields(self, request, obj=None):
        return [
            "video_link" if name == "video" else name for name in super().get_fields(request, obj)
        ]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "video_link"]

    @admin.display(description=_("video"))
    def video_link(self, order: Order):
        reader_id = getattr(order, "reader_id", None)
        if not order.video or reader_id is None:
            return "-"
        url = private_url(order.video.name, reader_id=reader_id)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, _("watch"))

    def get_list_display(self, request):
        # Support reads users (view_user): they see a buyer's or seller's phone on hover.
        if request.user.has_perm("marketplace.view_user"):
            return ("order_no", "item", "buyer_with_phone", "seller_with_phone", *self._tail)
        return ("order_no", "item", "buyer_name", "seller_name", *self._tail)

    _tail = ("price", "status_badge", "deadline", "created_at")

    @admin.display(description=_("item"), ordering="title")
    def item(self, order: Order):
        return columns.item_cell(order.title, order.listing.cover)

    @admin.display(description=_("buyer"), ordering="buyer__nickname")
    def buyer_name(self, order: Order):
        return columns.person(order.buyer, with_phone=False)

    @admin.display(description=_("seller"), ordering="seller__nickname")
    def seller_name(self, order: Order):
        return columns.person(order.seller, with_phone=False)

    @admin.display(description=_("buyer"), ordering="buyer__nickname")
    def buyer_with_phone(self, order: Order):
        return columns.person(order.buyer, with_phone=True)

    @admin.display(description=_("seller"), ordering="seller__nickname")
    def seller_with_phone(self, order: Order):
        return columns.person(order.seller, with_phone=True)

    @admin.display(description=_("amount"), ordering="price_fen")
    def price(self, order: Order):
        return yuan_label(order.price_fen)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, order: Order):
        return columns.order_status_badge(order)

    @admin.display(description=_("deadline"), ordering="deadline_at")
    def deadline(self, order: Order):
        return columns.deadline_cell(order.deadline_at)

    @admin.action(
        description=_("Settle the selected dispute (refund and/or release)"), permissions=["settle"]
    )
    def settle_dispute(self, request: HttpRequest, queryset: QuerySet):
        disputed = list(queryset.filter(status=OrderStatus.DISPUTED))
        if len(disputed) != 1:
            self.message_user(request, _("Select exactly one disputed order."), messages.ERROR)
            return None
        return HttpResponseRedirect(
            reverse("admin:marketplace_order_settle", args=[disputed[0].pk])
        )

    def has_settle_permission(self, request: HttpRequest) -> bool:
        # Settling is changing the dispute: support staff hold this permission, reviewers do not.
        return request.user.has_perm("marketplace.change_dispute")

    def get_urls(self):
        custom = [
            path(
                "<int:order_id>/settle/",
                self.admin_site.admin_view(self.settle_view),
                name="marketplace_order_settle",
            )
        ]
        return custom + super().get_urls()

    def settle_view(self, request: HttpRequest, order_id: int):
        if not self.has_settle_permission(request):
            raise PermissionDenied
        order = Order.objects.select_related("buyer", "seller").get(pk=order_id)
        form = SettleDisputeForm(request.POST or None, initial={"refund_yuan": order.total_fen})
        if request.method == "POST" and form.is_valid():
            try:
                fulfilment.settle_dispute(
                    staff=request.user,  # type: ignore[arg-type]  # admin views: staff only
                    order_id=order.pk,
                    refund_fen=form.cleaned_data["refund_yuan"],
                    note=form.cleaned_data["note"],
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    gettext("Dispute on %(order_no)s settled.") % {"order_no": order.order_no},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:marketplace_order_change", args=[order.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Settle the dispute on %(order_no)s") % {"order_no": order.order_no},
            "order": order,
            "price": yuan_label(order.price_fen),
            "shipping": yuan_label(order.shipping_fee_fen),
            "dispute": Dispute.objects.filter(order=order).first(),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/marketplace/order/settle_dispute.html", context)


@admin.register(Refund)
class RefundAdmin(ActionOnlyMixin, admin.ModelAdmin):
    list_display = (
        "out_refund_no",
        "order",
        fen_as_yuan("amount_fen", _("refund amount")),
        "status",
        "attempts",
        "last_error",
        "created_at",
    )
    list_filter = ("status", "created_at")
    search_fields = ("out_refund_no", "order__order_no")
    list_select_related = ("order",)
    readonly_fields = yuan_readonly(Refund, {"amount_fen": _("refund amount (¥)")})
    exclude = fen_field_names(Refund)
    ordering = ("-id",)
    actions = ["retry"]

    @admin.action(description=_("Submit the selected refunds again"), permissions=["change"])
    def retry(self, request, queryset):
        count = 0
        for refund in queryset:
            if retry_refund(refund_id=refund.pk, staff=request.user):
                count += 1
                # Who and when (last_error is overwritten by the next attempt): the admin log.
                self.log_change(request, refund, "Resubmitted to WeChat Pay.")
        self.message_user(request, gettext("%(count)s refund(s) resubmitted.") % {"count": count})


class NotificationOutcomeFilter(admin.SimpleListFilter):
    """Refused = signed by WeChat Pay but not about us (another merchant, amount, payer...), the
    ones staff are alerted to; rejected = failed verification (forged, stale, malformed)."""

    title = _("outcome")
    parameter_name = "outcome_kind"

    def lookups(self, request, model_admin):
        return [
            ("refused", _("refused (signed, not ours)")),
            ("rejected", _("rejected (not verified)")),
        ]

    def queryset(self, request, queryset):
        if self.value() == "refused":
            return queryset.filter(outcome__startswith=PaymentNotification.REFUSED_PREFIX)
        if self.value() == "rejected":
            return queryset.filter(outcome__startswith="rejected")
        return queryset


@admin.register(PaymentNotification)
class PaymentNotificationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "kind", "event_type", "out_trade_no", "is_verified", "outcome")
    list_filter = (NotificationOutcomeFilter, "kind", "is_verified", "event_type", "received_at")
    search_fields = ("out_trade_no", "notification_id", "outcome")
    readonly_fields = [field.name for field in PaymentNotification._meta.fields]
    ordering = ("-id",)


class OpenDisputeFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", _("open")), ("no", _("settled"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(settled_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(settled_at__isnull=False)
        return queryset


@admin.register(Dispute)
class DisputeAdmin(ActionOnlyMixin, admin.ModelAdmin):
    list_display = (
        "order",
        "reason",
        "opened_at",
        "resolution",
        fen_as_yuan("refund_fen", _("refund amount")),
        "settled_by",
        "settled_at",
        "settle_link",
    )
    list_filter = (OpenDisputeFilter, "resolution")
    search_fields = ("order__order_no", "reason")
    list_select_related = ("order", "settled_by")
    readonly_fields = yuan_readonly(Dispute, {"refund_fen": _("refund amount (¥)")})
    exclude = fen_field_names(Dispute)
    ordering = ("settled_at", "opened_at")

    @admin.display(description="")
    def settle_link(self, dispute: Dispute):
        from django.utils.html import format_html

        if dispute.settled_at:
            return ""
        url = reverse("admin:marketplace_order_settle", args=[dispute.order_id])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Settle"))


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("order", "rating", "comment", "buyer", "seller", "created_at")
    list_filter = ("rating", "created_at")
    search_fields = ("order__order_no", "comment", "seller__nickname")
    list_select_related = ("order", "buyer", "seller")
    ordering = ("-id",)
    readonly_fields = [field.name for field in Review._meta.fields]

    def has_add_permission(self, request):
        return False


class PlatformSettingsForm(forms.ModelForm):
    # Typed in yuan, stored in fen exactly (12.345 is refused, never rounded).
    min_withdrawal_fen = YuanField(label=_("minimum withdrawal (¥)"), min_fen=None)

    class Meta:
        model = PlatformSettings
        fields = list(LIMITS)

    def clean(self):
        cleaned = super().clean() or {}
        try:
            check_platform_values({name: cleaned[name] for name in LIMITS if name in cleaned})
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc
        return cleaned


@admin.register(PlatformSettings)
class PlatformSettingsAdmin(SingletonSettingsMixin, admin.ModelAdmin):
    form = PlatformSettingsForm
    list_display = (
        "__str__",
        "commission_rate_bp",
        "payment_minutes",
        "video_upload_hours",
        "video_confirm_hours",
        "updated_at",
    )

    def save_model(self, request, obj, form, change):
        # Every change goes through the action, which records who changed what.
        update_platform_settings(
            staff=request.user, values={name: form.cleaned_data[name] for name in form.changed_data}
        )


@admin.register(PlatformSettingsChange)
class PlatformSettingsChangeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("changed_at", "staff", "field", "old", "new")
    list_filter = ("field", "changed_at")
    search_fields = ("field", "staff__username")
    list_select_related = ("staff",)
    readonly_fields = [field.name for field in PlatformSettingsChange._meta.fields]

    @staticmethod
    def _value(change: PlatformSettingsChange, value: str) -> str:
        # Values are stored as text; an amount of fen is read in yuan like everywhere else.
        if change.field.endswith("_fen") and value.lstrip("-").isdigit():
            return yuan_label(int(value))
        return value

    @admin.display(description=_("old value"), ordering="old_value")
    def old(self, change: PlatformSettingsChange) -> str:
        return self._value(change, change.old_value)

    @admin.display(description=_("new value"), ordering="new_value")
    def new(self, change: PlatformSettingsChange) -> str:
        return self._value(change, change.new_value)
