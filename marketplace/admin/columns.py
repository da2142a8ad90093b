"""Columns that make a changelist read at a glance: a status as a coloured badge, a deadline as
"2 小时 10 分后" / "已超时 5 分", a person by nickname (phone on hover for who may see it), an
item as its thumbnail and title on one line. Pure formatting of the row's own fields and of
relations the changelist already joins (list_select_related), so no column costs a query."""

import datetime as dt

from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext

from marketplace.media import storage_url
from marketplace.states import OrderStatus, WithdrawalStatus

# Colours of the order statuses: waiting on someone (amber), moving (blue), trouble (red),
# finished well (green), finished otherwise (grey).
STATUS_COLOURS = {
    OrderStatus.PENDING_PAYMENT: "#b26a00",
    OrderStatus.AWAITING_VIDEO: "#b26a00",
    OrderStatus.AWAITING_CONFIRMATION: "#b26a00",
    OrderStatus.AWAITING_SHIPMENT: "#1f6fb2",
    OrderStatus.SHIPPED: "#1f6fb2",
    OrderStatus.COMPLETED: "#2e7d32",
    OrderStatus.DISPUTED: "#c62828",
    OrderStatus.CANCELLED: "#666666",
    OrderStatus.CLOSED: "#666666",
}
WITHDRAWAL_COLOURS = {
    WithdrawalStatus.PENDING: "#b26a00",
    WithdrawalStatus.AWAITING_USER_CONFIRMATION: "#1f6fb2",
    WithdrawalStatus.PAID: "#2e7d32",
    WithdrawalStatus.REJECTED: "#666666",
    WithdrawalStatus.FAILED: "#c62828",
}


def badge(label: str, colour: str):
    return format_html(
        '<span class="status-badge" style="background:{};color:#fff;border-radius:10px;'
        'padding:2px 8px;white-space:nowrap;font-size:11px">{}</span>',
        colour,
        label,
    )


def order_status_badge(order):
    return badge(order.get_status_display(), STATUS_COLOURS.get(order.status, "#666666"))


def _days(count: int) -> str:
    return ngettext("%(count)d day", "%(count)d days", count) % {"count": count}


def _hours(count: int) -> str:
    return ngettext("%(count)d hour", "%(count)d hours", count) % {"count": count}


def _minutes(count: int) -> str:
    return ngettext("%(count)d minute", "%(count)d minutes", count) % {"count": count}


def _span(minutes: int) -> str:
    """ "1 天 3 小时" / "2 小时 10 分" / "5 分" in Chinese, "1 day 3 hours" ... in English."""
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{_days(days)} {_hours(hours)}"
    if hours:
        return f"{_hours(hours)} {_minutes(minutes)}"
    return _minutes(minutes)


def _deadline(deadline: dt.datetime | None, now: dt.datetime | None) -> tuple[str, bool]:
    """(the text, whether the deadline has passed)."""
    if deadline is None:
        return "-", False
    seconds = (deadline - (now or timezone.now())).total_seconds()
    if seconds >= 0:
        return gettext("in %(span)s") % {"span": _span(int(seconds // 60))}, False
    return gettext("overdue by %(span)s") % {"span": _span(int(-seconds // 60))}, True


def relative_deadline(deadline: dt.datetime | None, *, now: dt.datetime | None = None) -> str:
    """ "2 小时 10 分后" before the deadline, "已超时 5 分" after it, "-" without one (in
    English "in 2 hours 10 minutes", "overdue by 5 minutes"). Whole minutes, rounded down, so
    "0 分后" is still on time."""
    return _deadline(deadline, now)[0]


def deadline_cell(deadline: dt.datetime | None):
    text, overdue = _deadline(deadline, None)
    if overdue:
        return format_html('<span style="color:#c62828;white-space:nowrap">{}</span>', text)
    return format_html('<span style="white-space:nowrap">{}</span>', text)


def person(user, *, with_phone: bool):
    """Nickname first (what staff and users call each other), the username when there is none;
    the phone number only as a hover title, and only for staff allowed to read users."""
    if user is None:
        return "-"
    name = user.nickname or user.username
    if with_phone and user.phone:
        return format_html(
            '<span title="{}" style="white-space:nowrap;border-bottom:1px dotted">{}</span>',
            user.phone,
            name,
        )
    return format_html('<span style="white-space:nowrap">{}</span>', name)


def item_cell(title: str, cover: str):
    """Thumbnail and title on one line: the title is cut with an ellipsis, full on hover."""
    image = (
        format_html(
            '<img src="{}" alt="" style="width:32px;height:32px;object-fit:cover;'
            'vertical-align:middle;margin-right:6px;border-radius:3px">',
            storage_url(cover),
        )
        if cover
        else ""
    )
    return format_html(
        '<span title="{}" style="display:inline-block;max-width:260px;white-space:nowrap;'
        'overflow:hidden;text-overflow:ellipsis;vertical-align:middle">{}{}</span>',
        title,
        image,
        title,
    )
