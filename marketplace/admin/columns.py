"""Columns that make a changelist read at a glance: a status as a coloured badge, a deadline as
"2 小时 10 分后" / "已超时 5 分", a person by nickname (phone on hover for who may see it), an
item as its thumbnail and title on one line. Pure formatting of the row's own fields and of
relations the changelist already joins (list_select_related), so no column costs a query."""

import datetime as dt

from django.utils import timezone
from django.utils.html import format_html

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


def _span(minutes: int) -> str:
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} 天 {hours} 小时"
    if hours:
        return f"{hours} 小时 {minutes} 分"
    return f"{minutes} 分"


def relative_deadline(deadline: dt.datetime | None, *, now: dt.datetime | None = None) -> str:
    """ "2 小时 10 分后" before the deadline, "已超时 5 分" after it, "-" without one. Whole
    minutes, rounded down, so "0 分后" is still on time."""
    if deadline is None:
        return "-"
    seconds = (deadline - (now or timezone.now())).total_seconds()
    if seconds >= 0:
        return f"{_span(int(seconds // 60))}后"
    return f"已超时 {_span(int(-seconds // 60))}"


def deadline_cell(deadline: dt.datetime | None):
    text = relative_deadline(deadline)
    if text.startswith("已超时"):
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
