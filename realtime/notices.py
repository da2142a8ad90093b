"""WeChat subscribe-message content for the important events (the offline fallback).

The field keys (character_string1, thing2, phrase3, time4) are the layout the templates picked
in the mini-program console must have; docs/realtime.md lists them. WeChat truncates nothing
for us: `thing` values must be at most 20 characters, `phrase` at most 5, `character_string`
at most 32, so the values are cut here.
"""

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, override

from realtime.models import Event

# English source text; WeChat shows them in the default language (Simplified Chinese), through
# the catalogue (locale/zh_Hans): 已接受, 已拒绝, 卖家还价, 待确认, 运输中.
_STATUS_WORDS = {
    "offer.accepted": gettext_lazy("Accepted"),
    "offer.declined": gettext_lazy("Declined"),
    "offer.countered": gettext_lazy("Seller countered"),
    "order.video_ready": gettext_lazy("To confirm"),
    "order.shipping_update": gettext_lazy("In transit"),
}


def _cut(value, limit: int) -> str:
    text = str(value or "").strip() or "-"
    return text[:limit]


def _title(data: dict) -> str:
    listing = data.get("listing")
    if not isinstance(listing, dict):
        listing = {}
    return data.get("title") or listing.get("title") or data.get("listing_title") or ""


def message_for(event: Event) -> dict | None:
    """The send_subscribe_message arguments for this event, or None when it has no template.
    Written in the default language: a subscribe message has no reader's Accept-Language."""
    with override(settings.LANGUAGE_CODE):
        return _message_for(event)


def _message_for(event: Event) -> dict | None:
    data = event.data if isinstance(event.data, dict) else {}
    at = timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M")
    if event.type.startswith("offer."):
        template_id = settings.WECHAT_TEMPLATE_OFFER_ANSWERED
        reference = data.get("id", "")
        summary = _title(data) or gettext("Offer of %(yuan).2f yuan") % {
            "yuan": int(data.get("price") or 0) / 100
        }
        page = f"pages/offers/detail?id={reference}"
        if event.type == "offer.accepted" and data.get("order_no"):
            page = f"pages/orders/detail?no={data['order_no']}"
    elif event.type == "order.video_ready":
        template_id = settings.WECHAT_TEMPLATE_VIDEO_READY
        reference = data.get("order_no", "")
        summary = _title(data) or gettext("The seller uploaded the video; please confirm")
        page = f"pages/orders/detail?no={reference}"
    elif event.type == "order.shipping_update":
        template_id = settings.WECHAT_TEMPLATE_SHIPPING_UPDATE
        reference = data.get("order_no", "")
        summary = (
            data.get("text")
            or data.get("latest")
            or _title(data)
            or gettext("New tracking update")
        )
        page = f"pages/orders/detail?no={reference}"
    else:
        return None
    if not template_id:
        return None
    return {
        "template_id": template_id,
        "page": page,
        "data": {
            "character_string1": {"value": _cut(reference, 32)},
            "thing2": {"value": _cut(summary, 20)},
            "phrase3": {"value": _cut(_STATUS_WORDS.get(event.type), 5)},
            "time4": {"value": at},
        },
    }


def conversation_message(conversation) -> dict | None:
    """The subscribe message telling a user with no socket that a conversation has unread
    messages (one per conversation until read; negotiation/conversations.py)."""
    template_id = settings.WECHAT_TEMPLATE_NEW_MESSAGE
    if not template_id:
        return None
    last = conversation.last_message
    at = timezone.localtime(last.created_at if last else timezone.now()).strftime("%Y-%m-%d %H:%M")
    preview = (last.text if last is not None and not last.is_hidden else "") or "[图片]"
    return {
        "template_id": template_id,
        "page": f"pages/conversations/detail?id={conversation.pk}",
        "data": {
            "character_string1": {"value": _cut(conversation.pk, 32)},
            "thing2": {"value": _cut(f"{conversation.listing.title}：{preview}", 20)},
            "phrase3": {"value": _cut("新消息", 5)},
            "time4": {"value": at},
        },
    }
