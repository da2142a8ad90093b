"""The admin index as the staff console: what needs someone now, and today's money.

Each figure links to the changelist filtered to exactly the rows it counts, and is shown only to
staff who may open that list (a reviewer sees the review queue, not the payout queue). The cost
is a handful of aggregate queries whatever the data size: one per area, never one per row.
The template (project/templates/admin/index.html) asks for it through the `staff_dashboard` tag.
"""

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from marketplace.models import (
    Dispute,
    Listing,
    ListingStatus,
    Order,
    PaymentNotification,
    ReconciliationDay,
    ReconciliationItem,
    Refund,
    Withdrawal,
)
from marketplace.money import yuan_label
from marketplace.states import OrderStatus
from realtime.models import Notification
from realtime.notifications import NOTIFIED_TYPES

if TYPE_CHECKING:  # a development dependency only: never imported at run time
    from django_stubs_ext import StrPromise

# The platform's business day: turnover "today" is a China calendar day, whatever the server's
# or the viewer's clock says.
BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
# Refused notifications are incidents, not a queue staff can empty: the tile counts a recent
# window so it is highlighted while one is fresh, not for ever after the first.
REFUSED_NOTIFICATIONS_WINDOW = dt.timedelta(days=7)
NOTIFICATION_VOLUME_WINDOW = dt.timedelta(days=1)


@dataclass
class Tile:
    # Labels are translations (gettext_lazy), rendered in the staff member's language.
    label: "str | StrPromise"
    value: str
    url: str
    # "attention" tiles are work waiting for staff; they are highlighted when not zero.
    is_attention: bool = False
    detail: "str | StrPromise" = ""


@dataclass
class Dashboard:
    attention: list[Tile] = field(default_factory=list)
    orders: list[Tile] = field(default_factory=list)
    money: list[Tile] = field(default_factory=list)
    notifications: list[Tile] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.attention or self.orders or self.money or self.notifications)


def business_day_bounds(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the China calendar day containing `now`, as aware datetimes."""
    day = now.astimezone(BUSINESS_TZ).date()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=BUSINESS_TZ)
    return start, start + dt.timedelta(days=1)


def _changelist(model, **filters) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _may_view(request: HttpRequest, model) -> bool:
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or (
        request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
    )


def build_dashboard(request: HttpRequest, *, now: dt.datetime | None = None) -> Dashboard:
    from django.utils import timezone

    now = now or timezone.now()
    board = Dashboard()

    if _may_view(request, Listing):
        pending = Listing.objects.filter(status=ListingStatus.PENDING_REVIEW).count()
        board.attention.append(
            Tile(
                _("Listings awaiting review"),
                str(pending),
                _changelist(Listing, status__exact=ListingStatus.PENDING_REVIEW),
                is_attention=pending > 0,
            )
        )

    if _may_view(request, Dispute):
        open_disputes = Dispute.objects.filter(settled_at__isnull=True).count()
        board.attention.append(
            Tile(
                _("Open disputes"),
                str(open_disputes),
                _changelist(Dispute, open="yes"),
                is_attention=open_disputes > 0,
            )
        )

    if _may_view(request, Withdrawal):
        # Transfers to the WeChat balance are paid by WeChat, not by staff.
        queue = Withdrawal.objects.filter(
            status=Withdrawal.Status.PENDING, to=Withdrawal.Destination.ACCOUNT
        ).aggregate(count=Count("id"), total=Sum("amount_fen"))
        board.attention.append(
            Tile(
                _("Withdrawals to pay out"),
                str(queue["count"]),
                _changelist(
                    Withdrawal,
                    status__exact=Withdrawal.Status.PENDING,
                    to__exact=Withdrawal.Destination.ACCOUNT,
                ),
                is_attention=queue["count"] > 0,
                detail=yuan_label(queue["total"] or 0),
            )
        )

    if _may_view(request, Refund):
        stuck = Refund.objects.filter(status=Refund.Status.NEEDS_ATTENTION).count()
        board.attention.append(
            Tile(
                _("Refunds needing attention"),
                str(stuck),
                _changelist(Refund, status__exact=Refund.Status.NEEDS_ATTENTION),
                is_attention=stuck > 0,
            )
        )

    if _may_view(request, PaymentNotification):
        since = now - REFUSED_NOTIFICATIONS_WINDOW
        refused = PaymentNotification.objects.filter(
            outcome__startswith=PaymentNotification.REFUSED_PREFIX, received_at__gte=since
        ).count()
        board.attention.append(
            Tile(
                _("Refused notifications"),
                str(refused),
                _changelist(
                    PaymentNotification, outcome_kind="refused", received_at__gte=since.isoformat()
                ),
                is_attention=refused > 0,
                detail=_(
                    "signed WeChat Pay notifications not about our merchant, order or amount, "
                    "last 7 days"
                ),
            )
        )

    if _may_view(request, ReconciliationItem):
        open_items = ReconciliationItem.objects.filter(is_resolved=False).count()
        days = ReconciliationDay.objects.aggregate(
            unbalanced=Count("id", filter=Q(is_books_balanced=False)),
            failed=Count("id", filter=Q(status=ReconciliationDay.Status.FAILED)),
        )
        unbalanced, failed = days["unbalanced"], days["failed"]
        detail = gettext("differences between WeChat Pay's bills and our books")
        if unbalanced or failed:
            detail = gettext(
                "%(unbalanced)s day(s) whose books do not add up, %(failed)s failed download(s)"
            ) % {"unbalanced": unbalanced, "failed": failed}
        board.attention.append(
            Tile(
                _("Reconciliation differences"),
                str(open_items),
                _changelist(ReconciliationItem, is_resolved__exact="0"),
                is_attention=bool(open_items or unbalanced or failed),
                detail=detail,
            )
        )

    if _may_view(request, Order):
        counts = dict(Order.objects.order_by().values_list("status").annotate(count=Count("id")))
        for status in OrderStatus:
            board.orders.append(
                Tile(
                    " · ".join((status.value, gettext(status.label))),
                    str(counts.get(status.value, 0)),
                    _changelist(Order, status__exact=status.value),
                    is_attention=status == OrderStatus.DISPUTED and counts.get(status.value, 0) > 0,
                )
            )
        start, end = business_day_bounds(now)
        today = Order.objects.filter(paid_at__gte=start, paid_at__lt=end).aggregate(
            count=Count("id"), gross=Sum("price_fen"), commission=Sum("commission_fen")
        )
        paid_today = _changelist(Order, paid_at__gte=start.isoformat(), paid_at__lt=end.isoformat())
        board.money.append(
            Tile(
                gettext("Turnover today (%(day)s, China time)") % {"day": start.date().isoformat()},
                yuan_label(today["gross"] or 0),
                paid_today,
                detail=gettext("%(count)s order(s) paid") % {"count": today["count"]},
            )
        )
        board.money.append(
            Tile(
                _("Commission on today's payments"),
                yuan_label(today["commission"] or 0),
                paid_today,
                detail=_("at the rates frozen at payment; earned when each order completes"),
            )
        )
    if _may_view(request, Notification):
        # Volume per type over the last day (fan-outs show as spikes): one grouped count on the
        # created_at index; the table is pruned, so the window stays small.
        since = now - NOTIFICATION_VOLUME_WINDOW
        volume = dict(
            Notification.objects.filter(created_at__gte=since)
            .order_by()
            .values_list("type")
            .annotate(count=Count("id"))
        )
        for type in sorted(NOTIFIED_TYPES):
            board.notifications.append(
                Tile(
                    type,
                    str(volume.get(type, 0)),
                    _changelist(Notification, type__exact=type),
                )
            )
    return board
