"""Staff side of the wallet: the withdrawal queue (mark paid / reject), the read-only ledger and
balances, payout accounts, and the reconciliation page (docs/wallet.md)."""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, F, IntegerField, Value, When
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from marketplace.actions import staff_console
from marketplace.actions import wallet as wallet_actions
from marketplace.admin import columns
from marketplace.admin.base import ActionOnlyMixin, ReadOnlyMixin, RejectForm, YuanDisplayMixin
from marketplace.admin.exports import (
    EXPORT_CHANGE_LIST,
    BankFileError,
    Column,
    ExportMixin,
    read_bank_result,
)
from marketplace.errors import DomainError
from marketplace.models.wallet import LedgerEntry, PayoutAccount, Wallet, Withdrawal
from marketplace.money import yuan_label

FULL_NUMBER_PERM = "marketplace.view_full_account_number"


class ReadOnlyAdmin(YuanDisplayMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Money records are written by actions only; staff look, never edit."""


# Where a withdrawal without a bank account goes (the model's choice label says the same).
WECHAT_BALANCE = _("WeChat balance (merchant transfer)")


def _account_number(request, account: PayoutAccount | None) -> str:
    if account is None:
        return str(WECHAT_BALANCE)
    if request.user.has_perm(FULL_NUMBER_PERM):
        return wallet_actions.reveal_account_no(account) or "(cannot decrypt: key missing)"
    return account.masked_account_no


# --- Wallets and reconciliation ----------------------------------------------------------------


class PeriodForm(forms.Form):
    start = forms.DateField(
        label=_("from (inclusive)"), widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(label=_("to (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError(gettext("The period ends before it starts."))
        return data


def _day_start(day: dt.date) -> dt.datetime:
    # Periods are calendar days in the platform's time zone (Asia/Shanghai), not UTC days.
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "available", "frozen", "total_earned", "updated_at")
    search_fields = ("user__username", "user__nickname", "=user__id")
    list_select_related = ("user",)
    ordering = ("-updated_at",)

    @admin.display(description=_("available (¥)"), ordering="available_fen")
    def available(self, obj):
        return yuan_label(obj.available_fen)

    @admin.display(description=_("frozen (¥)"), ordering="frozen_fen")
    def frozen(self, obj):
        return yuan_label(obj.frozen_fen)

    @admin.display(description=_("total earned (¥)"), ordering="total_earned_fen")
    def total_earned(self, obj):
        return yuan_label(obj.total_earned_fen)

    def get_urls(self):
        view = self.admin_site.admin_view(self.reconciliation_view)
        return [
            path("reconciliation/", view, name="marketplace_wallet_reconciliation"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"reconciliation_url": reverse("admin:marketplace_wallet_reconciliation")}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def reconciliation_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        form = PeriodForm(request.GET or {"start": today.replace(day=1), "end": today})
        commission = None
        if form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            commission = wallet_actions.commission_summary(
                start=_day_start(start), end=_day_start(end + dt.timedelta(days=1))
            )
            commission["commission_yuan"] = yuan_label(commission["commission_fen"])
            commission["gross_yuan"] = yuan_label(commission["gross_fen"])
        wallets = wallet_actions.reconciled_wallets()
        mismatched = list(
            wallets.exclude(
                available_fen=F("ledger_available"),
                frozen_fen=F("ledger_frozen"),
                total_earned_fen=F("ledger_earned"),
            ).order_by("id")
        )
        page = Paginator(wallets.order_by("id"), 200).get_page(request.GET.get("page"))
        rows = [(wallet, wallet_actions.is_balanced(wallet)) for wallet in page.object_list]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Wallet reconciliation"),
            "opts": self.model._meta,
            "form": form,
            "commission": commission,
            "mismatched": mismatched,
            "rows": rows,
            "page": page,
            "wallet_count": page.paginator.count,
        }
        return TemplateResponse(request, "admin/marketplace/wallet/reconciliation.html", context)


LEDGER_EXPORT = [
    Column("编号", lambda e: e.pk),
    Column("用户", lambda e: e.wallet.user.nickname or e.wallet.user.username),
    Column("用户ID", lambda e: e.wallet.user_id),
    Column("类型", lambda e: e.get_kind_display()),
    Column("可用变动（元）", lambda e: e.available_delta_fen, "money"),
    Column("冻结变动（元）", lambda e: e.frozen_delta_fen, "money"),
    Column("可用余额（元）", lambda e: e.available_after_fen, "money"),
    Column("冻结余额（元）", lambda e: e.frozen_after_fen, "money"),
    Column("订单号", lambda e: e.order.order_no if e.order else ""),
    Column("提现编号", lambda e: e.withdrawal_id or ""),
    Column("时间", lambda e: e.created_at),
]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ExportMixin, ReadOnlyAdmin):
    export_name = "ledger"
    change_list_template = EXPORT_CHANGE_LIST
    export_columns = LEDGER_EXPORT

    list_display = (
        "id",
        "owner",
        "kind",
        "available_delta",
        "frozen_delta",
        "available_after",
        "frozen_after",
        "order",
        "withdrawal",
        "created_by",
        "created_at",
    )
    list_filter = ("kind", "created_at")
    search_fields = ("=wallet__user__id", "wallet__user__username", "unique_key", "order__order_no")
    list_select_related = ("wallet__user", "order", "withdrawal", "created_by")
    ordering = ("-id",)

    @admin.display(description=_("user"), ordering="wallet__user")
    def owner(self, obj):
        return obj.wallet.user

    @admin.display(description=_("available Δ (¥)"))
    def available_delta(self, obj):
        return yuan_label(obj.available_delta_fen)

    @admin.display(description=_("frozen Δ (¥)"))
    def frozen_delta(self, obj):
        return yuan_label(obj.frozen_delta_fen)

    @admin.display(description=_("available after (¥)"))
    def available_after(self, obj):
        return yuan_label(obj.available_after_fen)

    @admin.display(description=_("frozen after (¥)"))
    def frozen_after(self, obj):
        return yuan_label(obj.frozen_after_fen)


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdmin):
    list_select_related = ("user",)
    list_filter = ("type", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("user__username", "user__nickname", "=user__id", "holder_name")
    ordering = ("-id",)
    fields = ("user", "type", "holder_name", "bank_name", "created_at", "deleted_at")

    def get_list_display(self, request):
        number = "full_number" if request.user.has_perm(FULL_NUMBER_PERM) else "masked_number"
        return (
            "id",
            "user",
            "type",
            "holder_name",
            number,
            "bank_name",
            "created_at",
            "deleted_at",
        )

    def get_fields(self, request, obj=None):
        number = "full_number" if request.user.has_perm(FULL_NUMBER_PERM) else "masked_number"
        return (*self.fields, number)

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description=_("account no."))
    def masked_number(self, obj):
        return obj.masked_account_no

    @admin.display(description=_("account no. (full)"))
    def full_number(self, obj):
        return wallet_actions.reveal_account_no(obj) or "(cannot decrypt: key missing)"


# --- Withdrawals: the payout queue ------------------------------------------------------------


class MarkPaidForm(forms.Form):
    """One transfer reference per withdrawal: each payout is its own bank/Alipay transfer."""

    def __init__(self, *args, withdrawals, **kwargs):
        super().__init__(*args, **kwargs)
        for withdrawal in withdrawals:
            self.fields[f"reference_{withdrawal.pk}"] = forms.CharField(
                label=gettext("#%(id)s %(amount)s → reference")
                % {"id": withdrawal.pk, "amount": yuan_label(withdrawal.amount_fen)},
                max_length=100,
                required=True,
                strip=True,
            )


# A day's payouts fit in far less; a bigger upload is a wrong file, refused before it is read.
MAX_BANK_FILE_BYTES = 2 * 1024 * 1024


class BankResultForm(forms.Form):
    file = forms.FileField(
        label=_("bank result file"),
        help_text=_(
            "CSV or Excel (.xlsx) with the columns “ID”, “amount (¥)” and “reference”: the "
            "exported withdrawals list with the bank references filled in."
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BANK_FILE_BYTES:
            raise forms.ValidationError(gettext("The file is too large (2 MB at most)."))
        return upload


def _withdrawal_columns(*, full_numbers: bool) -> list[Column]:
    def number(w):
        if w.account is None:
            return str(WECHAT_BALANCE)
        if full_numbers:
            return wallet_actions.reveal_account_no(w.account) or "(cannot decrypt: key missing)"
        return w.account.masked_account_no

    return [
        Column("编号", lambda w: w.pk),
        Column("户名", lambda w: w.account.holder_name if w.account else ""),
        Column("账号", number),
        Column("银行", lambda w: (w.account.bank_name if w.account else "") or ""),
        Column("金额（元）", lambda w: w.amount_fen, "money"),
        Column("状态", lambda w: w.get_status_display()),
        Column("用户", lambda w: w.user.nickname or w.user.username),
        Column("申请时间", lambda w: w.created_at),
        # Empty until paid: the bank's reference is filled in here for the upload.
        Column("流水号", lambda w: w.transfer_reference),
    ]


@admin.register(Withdrawal)
class WithdrawalAdmin(ExportMixin, ActionOnlyMixin, admin.ModelAdmin):
    """The payout queue: pending first, oldest first."""

    export_name = "withdrawals"
    change_list_template = EXPORT_CHANGE_LIST
    list_filter = ("status", "to", "account__type", "created_at")
    search_fields = (
        "=id",
        "user__username",
        "user__nickname",
        "=user__id",
        "transfer_reference",
        "account__holder_name",
    )
    list_select_related = ("user", "account", "decided_by")
    actions = ["mark_paid", "reject"]
    list_per_page = 50
    base_fields = (
        "user",
        "amount",
        "status",
        "account_type",
        "holder_name",
        "bank_name",
        "created_at",
        "decided_at",
        "decided_by",
        "transfer_reference",
        "reject_reason",
    )

    def export_has_full_account_numbers(self, request) -> bool:
        return request.user.has_perm(FULL_NUMBER_PERM)

    def get_export_columns(self, request):
        return _withdrawal_columns(full_numbers=self.export_has_full_account_numbers(request))

    def get_urls(self):
        view = self.admin_site.admin_view(self.bank_result_view)
        return [
            path("bank-result/", view, name="marketplace_withdrawal_bank_result"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {}
        if self.has_change_permission(request):
            extra["bank_result_url"] = reverse("admin:marketplace_withdrawal_bank_result")
        # Finance lands here (marketplace/admin/landing.py): the other half of its day is one
        # click away.
        if request.user.has_perm("marketplace.view_reconciliationitem"):
            url = reverse("admin:marketplace_reconciliationitem_changelist")
            extra["reconciliation_items_url"] = f"{url}?is_resolved__exact=0"
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def bank_result_view(self, request):
        # Paying is changing a withdrawal: finance holds change_withdrawal, nobody else.
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = BankResultForm(request.POST or None, request.FILES or None)
        outcomes = None
        if request.method == "POST" and form.is_valid():
            try:
                rows = read_bank_result(form.cleaned_data["file"])
            except BankFileError as exc:
                form.add_error("file", str(exc))
            else:
                outcomes = staff_console.mark_paid_from_bank_result(staff=request.user, rows=rows)
                paid = sum(outcome.is_paid for outcome in outcomes)
                refused = sum(not o.is_paid for o in outcomes)
                level = messages.SUCCESS if not refused else messages.WARNING
                text = gettext(
                    "Marked %(paid)s withdrawal(s) paid; %(refused)s row(s) not processed (the "
                    "reasons are in the table below)."
                )
                self.message_user(request, text % {"paid": paid, "refused": refused}, level)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Upload the bank result and mark withdrawals paid"),
            "opts": self.model._meta,
            "form": form,
            "outcomes": outcomes,
        }
        return TemplateResponse(request, "admin/marketplace/withdrawal/bank_result.html", context)

    def get_ordering(self, request):
        pending_first = Case(
            When(status=Withdrawal.Status.PENDING, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return (pending_first.asc(), "created_at", "id")

    def _number_field(self, request) -> str:
        return "full_number" if request.user.has_perm(FULL_NUMBER_PERM) else "masked_number"

    def get_list_display(self, request):
        return (
            "id",
            "user",
            "amount",
            "status_badge",
            "account_type",
            "holder_name",
            self._number_field(request),
            "created_at",
            "decided_at",
            "decided_by",
            "transfer_reference",
        )

    def get_fields(self, request, obj=None):
        return (*self.base_fields, self._number_field(request))

    def get_readonly_fields(self, request, obj=None):
        # Status and money change only through the actions below, which post the ledger entry.
        return self.get_fields(request, obj)

    @admin.display(description=_("amount (¥)"), ordering="amount_fen")
    def amount(self, obj):
        return yuan_label(obj.amount_fen)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        colour = columns.WITHDRAWAL_COLOURS.get(obj.status, "#666666")
        return columns.badge(obj.get_status_display(), colour)

    @admin.display(description=_("type"), ordering="account__type")
    def account_type(self, obj):
        return obj.account.get_type_display() if obj.account else WECHAT_BALANCE

    @admin.display(description=_("holder"))
    def holder_name(self, obj):
        return obj.account.holder_name if obj.account else "-"

    @admin.display(description=_("bank"))
    def bank_name(self, obj):
        return (obj.account.bank_name if obj.account else "") or "-"

    @admin.display(description=_("account no."))
    def masked_number(self, obj):
        return obj.account.masked_account_no if obj.account else WECHAT_BALANCE

    @admin.display(description=_("account no. (full)"))
    def full_number(self, obj):
        if obj.account is None:
            return WECHAT_BALANCE
        return wallet_actions.reveal_account_no(obj.account) or "(cannot decrypt: key missing)"

    def _intermediate(self, request, queryset, *, template, title, form, action):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "withdrawals": [
                (withdrawal, _account_number(request, withdrawal.account))
                for withdrawal in queryset
            ],
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, template, context)

    def _run(self, request, call, withdrawals, *, already: str, finished: str) -> None:
        """already: "#%(id)s was already …" and finished: "… %(count)s withdrawal(s).", both
        translated by the caller."""
        done = 0
        for withdrawal in withdrawals:
            try:
                _unused, changed = call(withdrawal)
            except DomainError as exc:
                messages.warning(request, ": ".join((f"#{withdrawal.pk}", exc.message)))
                continue
            if changed:
                done += 1
            else:
                messages.info(request, already % {"id": withdrawal.pk})
        if done:
            messages.success(request, finished % {"count": done})

    @admin.action(
        description=_("Mark paid (asks for each transfer reference)"), permissions=["change"]
    )
    def mark_paid(self, request, queryset):
        withdrawals = list(queryset.select_related("account").order_by("created_at", "id"))
        pending = [w for w in withdrawals if w.status == Withdrawal.Status.PENDING]
        for other in withdrawals:
            if other.status != Withdrawal.Status.PENDING:
                text = gettext("#%(id)s is %(status)s, not pending: skipped.")
                messages.info(
                    request, text % {"id": other.pk, "status": other.get_status_display()}
                )
        if not pending:
            return None
        confirmed = "confirm" in request.POST
        form = MarkPaidForm(request.POST if confirmed else None, withdrawals=pending)
        if confirmed and form.is_valid():
            self._run(
                request,
                lambda w: wallet_actions.mark_withdrawal_paid(
                    staff=request.user,
                    withdrawal_id=w.pk,
                    reference=form.cleaned_data[f"reference_{w.pk}"],
                ),
                pending,
                already=gettext("#%(id)s was already paid; nothing changed."),
                finished=gettext("Paid %(count)s withdrawal(s)."),
            )
            return None
        return self._intermediate(
            request,
            pending,
            template="admin/marketplace/withdrawal/decide.html",
            title=_("Mark withdrawals paid"),
            form=form,
            action="mark_paid",
        )

    @admin.action(
        description=_("Reject (asks for a reason; releases the hold)"), permissions=["change"]
    )
    def reject(self, request, queryset):
        withdrawals = list(queryset.select_related("account").order_by("created_at", "id"))
        confirmed = "confirm" in request.POST
        form = RejectForm(
            request.POST if confirmed else None,
            help_text=_("Shown to the seller; the held amount returns to their available balance."),
        )
        if confirmed and form.is_valid():
            reason = form.cleaned_data["reason"]
            self._run(
                request,
                lambda w: wallet_actions.reject_withdrawal(
                    staff=request.user, withdrawal_id=w.pk, reason=reason
                ),
                withdrawals,
                already=gettext("#%(id)s was already rejected; nothing changed."),
                finished=gettext("Rejected %(count)s withdrawal(s)."),
            )
            return None
        return self._intermediate(
            request,
            withdrawals,
            template="admin/marketplace/withdrawal/decide.html",
            title=_("Reject withdrawals"),
            form=form,
            action="reject",
        )
