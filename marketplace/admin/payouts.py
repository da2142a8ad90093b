"""Staff side of WeChat payouts and reconciliation (finance role, docs/payout.md): transfers with
their state and history (cancel one the user has not confirmed), reconciliation days and their
items (filter by kind, mark resolved with a note, recorded)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from marketplace.actions import payouts, reconciliation
from marketplace.admin.base import (
    ActionOnlyMixin,
    ReadOnlyInline,
    ReadOnlyMixin,
    YuanDisplayMixin,
)
from marketplace.errors import DomainError
from marketplace.models.wallet import (
    ReconciliationDay,
    ReconciliationItem,
    WechatTransfer,
    WechatTransferEvent,
)
from marketplace.money import yuan_label


class TransferEventInline(ReadOnlyInline):
    model = WechatTransferEvent
    fields = ("at", "source", "state", "detail", "actor")
    readonly_fields = fields


@admin.register(WechatTransfer)
class WechatTransferAdmin(YuanDisplayMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "out_bill_no", "withdrawal", "user", "amount", "state", "attempts", "accepted_at",
        "confirm_deadline_at", "finished_at",
    )  # fmt: skip
    list_filter = ("state", "created_at")
    search_fields = (
        "out_bill_no",
        "transfer_bill_no",
        "=withdrawal__id",
        "withdrawal__user__username",
    )
    list_select_related = ("withdrawal__user",)
    inlines = [TransferEventInline]
    actions = ["cancel_unconfirmed"]
    fields = (
        "withdrawal", "out_bill_no", "transfer_bill_no", "amount", "state", "fail_reason",
        "attempts", "next_attempt_at", "last_error", "created_at", "accepted_at",
        "confirm_deadline_at", "finished_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description=_("user"))
    def user(self, obj):
        return obj.withdrawal.user

    @admin.display(description=_("amount (¥)"), ordering="amount_fen")
    def amount(self, obj):
        return yuan_label(obj.amount_fen)

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("marketplace.change_withdrawal")

    @admin.action(
        description=_("Cancel (only if the user has not confirmed; releases the hold)"),
        permissions=["cancel"],
    )
    def cancel_unconfirmed(self, request, queryset):
        for transfer in queryset:
            try:
                outcome = payouts.cancel_transfer(
                    staff=request.user, withdrawal_id=transfer.withdrawal_id
                )
            except DomainError as exc:
                messages.warning(request, ": ".join((transfer.out_bill_no, exc.message)))
                continue
            messages.success(request, ": ".join((transfer.out_bill_no, outcome)))


class ReconciliationItemInline(ReadOnlyInline):
    model = ReconciliationItem
    fields = ("kind", "source", "reference", "ours", "theirs", "is_resolved", "resolution_note")
    readonly_fields = fields


@admin.register(ReconciliationDay)
class ReconciliationDayAdmin(YuanDisplayMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "date", "status", "open_items", "is_books_balanced", "fees", "trade_rows",
        "fundflow_rows", "runs", "checked_at",
    )  # fmt: skip
    list_filter = ("status", "is_books_balanced")
    inlines = [ReconciliationItemInline]
    fields = (
        "date", "status", "is_books_balanced", "books", "fees", "trade_bill_sha1",
        "fundflow_bill_sha1", "trade_rows", "fundflow_rows", "runs", "last_error", "checked_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description=_("open items"))
    def open_items(self, obj):
        return obj.items.filter(is_resolved=False).count()

    @admin.display(description=_("WeChat fees (¥)"), ordering="fees_fen")
    def fees(self, obj):
        return yuan_label(obj.fees_fen)


class ResolveForm(forms.Form):
    note = forms.CharField(
        max_length=300,
        required=True,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("What was found and done (recorded with your name)."),
    )


@admin.register(ReconciliationItem)
class ReconciliationItemAdmin(YuanDisplayMixin, ActionOnlyMixin, admin.ModelAdmin):
    list_display = (
        "day", "kind", "source", "reference", "is_resolved", "resolved_by", "resolved_at",
    )  # fmt: skip
    list_filter = ("kind", "source", "is_resolved", "day__date")
    search_fields = ("reference",)
    list_select_related = ("day", "resolved_by")
    actions = ["mark_resolved"]
    fields = (
        "day", "kind", "source", "reference", "ours", "theirs", "is_resolved",
        "resolution_note", "resolved_by", "resolved_at", "created_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.action(description=_("Mark resolved (asks for a note)"), permissions=["change"])
    def mark_resolved(self, request, queryset):
        items = list(queryset.select_related("day"))
        confirmed = "confirm" in request.POST
        form = ResolveForm(request.POST if confirmed else None)
        if confirmed and form.is_valid():
            done = 0
            for item in items:
                try:
                    _item, changed = reconciliation.resolve_item(
                        staff=request.user, item_id=item.pk, note=form.cleaned_data["note"]
                    )
                except DomainError as exc:
                    messages.warning(request, ": ".join((f"#{item.pk}", exc.message)))
                    continue
                done += changed
            messages.success(request, gettext("Resolved %(count)s item(s).") % {"count": done})
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Mark reconciliation items resolved"),
            "opts": self.model._meta,
            "items": items,
            "form": form,
            "action": "mark_resolved",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(
            request, "admin/marketplace/reconciliationitem/resolve.html", context
        )
