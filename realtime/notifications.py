"""The notification centre's entries: which events become one, what of them is kept, and how
they read (SPEC §4b, API.md "Notification centre").

An entry keeps the event's type and a few parameters (ids, prices, a title), never sentences:
`render()` writes the title and body when the entry is read, in the reader's language (Chinese
by default, English for `Accept-Language: en`), ready for the mini-program to show as is.
"""

from collections.abc import Callable
from typing import Any

from django.utils import timezone

from realtime.models import Notification

# Every event a person should find later in the centre. Chat messages are not among them: the
# conversations count their own unread (the summary's `unread_messages`); read receipts and the
# `notification.created` push itself are not news either.
NOTIFIED_TYPES = frozenset(
    {
        "offer.created",
        "offer.countered",
        "offer.accepted",
        "offer.declined",
        "offer.withdrawn",
        "offer.expired",
        "order.status_changed",
        "order.video_ready",
        "order.shipping_update",
        "listing.reviewed",
        "wallet.credited",
        "withdrawal.updated",
        "listing.price_dropped",
        "listing.unavailable",
        "listing.new_from_followed",
    }
)
LANGUAGES = ("zh", "en")

# The parameters kept per type: what render() and the target need, nothing personal beyond it
# (an order's address stays on the order).
_KEPT = {
    "offer": ("id", "listing_id", "price", "counter_price", "status", "order_no"),
    "order": ("order_no", "title", "status", "price"),
    "order.shipping_update": ("order_no", "carrier", "tracking_no", "latest"),
    "listing": ("id", "title", "price", "status", "review_note"),
    "listing.price_dropped": ("old_price", "new_price"),
    "listing.unavailable": ("reason",),
    "wallet.credited": ("id", "amount", "order_no"),
    "withdrawal.updated": ("id", "amount", "status", "reject_reason"),
}


def _pick(data: dict, names: tuple[str, ...]) -> dict:
    return {name: data[name] for name in names if data.get(name) is not None}


def _actor_id(type: str, data: dict) -> int | None:
    """Who made the move an event reports, when the data says: their own move is no news for
    them (their other devices still get the event)."""
    buyer, seller = data.get("buyer_id"), data.get("seller_id")
    if type == "offer.created" or type == "offer.withdrawn":
        return buyer
    if type == "offer.countered" or type == "offer.declined":
        return seller
    if type == "offer.accepted":
        # A counter accepted is the buyer's move; an offer accepted the seller's.
        return buyer if data.get("counter_price") is not None else seller
    if type == "order.status_changed":
        history = data.get("history")
        if isinstance(history, list) and history and isinstance(history[-1], dict):
            return {"buyer": buyer, "seller": seller}.get(str(history[-1].get("actor")))
    return None


def is_news_for(user_id: int, type: str, data: dict) -> bool:
    """Whether an event of `type` told to `user_id` makes an entry in their centre."""
    if type not in NOTIFIED_TYPES:
        return False
    actor = _actor_id(type, data)
    return actor is None or int(actor) != user_id


def params_for(type: str, data: dict) -> tuple[dict, str, str]:
    """(params, target type, target id) of the entry an event of `type` with `data` makes."""
    if type.startswith("offer."):
        return _pick(data, _KEPT["offer"]), "offer", str(data.get("id", ""))
    if type == "order.shipping_update":
        params = _pick(data, _KEPT[type])
        events = data.get("events")
        if isinstance(events, list) and events and isinstance(events[0], dict):
            params["latest"] = str(events[0].get("text", ""))[:100]
        target = str(data.get("order_no") or "")
        return params, "order" if target else "", target
    if type.startswith("order."):
        return _pick(data, _KEPT["order"]), "order", str(data.get("order_no", ""))
    if type == "wallet.credited":
        return _pick(data, _KEPT[type]), "wallet", ""
    if type == "withdrawal.updated":
        return _pick(data, _KEPT[type]), "withdrawal", str(data.get("id", ""))
    nested = data.get("listing")
    listing: dict = nested if isinstance(nested, dict) else data
    params = _pick(listing, _KEPT["listing"])
    if type in _KEPT:
        params.update(_pick(data, _KEPT[type]))
    if type == "listing.new_from_followed":
        seller = listing.get("seller")
        nickname = seller.get("nickname", "") if isinstance(seller, dict) else ""
        params["seller_nickname"] = str(nickname)
    return params, "listing", str(listing.get("id", ""))


def language_of(accept_language: str) -> str:
    """`en` when the reader's first language is English, else Chinese (the product's default)."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "zh"


def _yuan(fen: Any) -> str:
    try:
        return f"{int(fen) / 100:.2f}"
    except (TypeError, ValueError):
        return "-"


_ORDER_WORDS = {
    "zh": {
        "pending_payment": "待付款",
        "awaiting_video": "已付款，待卖家拍验货视频",
        "awaiting_confirmation": "待确认验货视频",
        "awaiting_shipment": "待发货",
        "shipped": "已发货",
        "completed": "已完成",
        "disputed": "纠纷处理中",
        "cancelled": "已取消",
        "closed": "已关闭",
    },
    "en": {
        "pending_payment": "awaiting payment",
        "awaiting_video": "paid, waiting for the seller's video",
        "awaiting_confirmation": "video ready to confirm",
        "awaiting_shipment": "awaiting shipment",
        "shipped": "shipped",
        "completed": "completed",
        "disputed": "in dispute",
        "cancelled": "cancelled",
        "closed": "closed",
    },
}

Texts = dict[str, Callable[[dict], tuple[str, str]]]

_TEXTS: dict[str, Texts] = {
    "zh": {
        "offer.created": lambda p: ("收到新出价", f"买家出价 ¥{_yuan(p.get('price'))}"),
        "offer.countered": lambda p: (
            "卖家还价", f"卖家还价 ¥{_yuan(p.get('counter_price'))}，请尽快回复"
        ),
        "offer.accepted": lambda p: ("出价已被接受", f"成交价 ¥{_yuan(p.get('price'))}，请尽快付款"),
        "offer.declined": lambda p: ("出价被拒绝", f"你出价 ¥{_yuan(p.get('price'))} 未被接受"),
        "offer.withdrawn": lambda p: ("买家撤回了出价", f"出价 ¥{_yuan(p.get('price'))} 已撤回"),
        "offer.expired": lambda p: ("出价已过期", f"出价 ¥{_yuan(p.get('price'))} 已过期"),
        "order.status_changed": lambda p: (
            "订单状态更新",
            f"《{p.get('title', '')}》{_ORDER_WORDS['zh'].get(p.get('status', ''), '')}",
        ),
        "order.video_ready": lambda p: (
            "验货视频已上传", f"《{p.get('title', '')}》的验货视频已上传，请确认"
        ),
        "order.shipping_update": lambda p: ("物流更新", p.get("latest") or "包裹有新的物流进展"),
        "listing.reviewed": lambda p: (
            ("商品审核通过", f"《{p.get('title', '')}》已上架")
            if p.get("status") == "on_sale"
            else ("商品审核未通过", f"《{p.get('title', '')}》：{p.get('review_note', '')}")
        ),
        "wallet.credited": lambda p: ("收入到账", f"¥{_yuan(p.get('amount'))} 已计入余额"),
        "withdrawal.updated": lambda p: (
            ("提现已到账", f"¥{_yuan(p.get('amount'))} 已打款")
            if p.get("status") == "paid"
            else ("提现进度更新", f"¥{_yuan(p.get('amount'))}：{p.get('reject_reason') or p.get('status', '')}")
        ),
        "listing.price_dropped": lambda p: (
            "想要的宝贝降价了",
            f"《{p.get('title', '')}》从 ¥{_yuan(p.get('old_price'))} 降到 ¥{_yuan(p.get('new_price'))}",
        ),
        "listing.unavailable": lambda p: (
            "想要的宝贝" + ("已卖出" if p.get("reason") == "sold" else "已下架"),
            f"《{p.get('title', '')}》" + ("已被买走" if p.get("reason") == "sold" else "已下架"),
        ),
        "listing.new_from_followed": lambda p: (
            "关注的卖家上新了",
            f"{p.get('seller_nickname', '')} 发布了《{p.get('title', '')}》 ¥{_yuan(p.get('price'))}",
        ),
    },
    "en": {
        "offer.created": lambda p: ("New offer", f"A buyer offered ¥{_yuan(p.get('price'))}"),
        "offer.countered": lambda p: (
            "Counter-offer", f"The seller countered with ¥{_yuan(p.get('counter_price'))}"
        ),
        "offer.accepted": lambda p: (
            "Offer accepted", f"Agreed at ¥{_yuan(p.get('price'))}: please pay soon"
        ),
        "offer.declined": lambda p: (
            "Offer declined", f"Your offer of ¥{_yuan(p.get('price'))} was declined"
        ),
        "offer.withdrawn": lambda p: (
            "Offer withdrawn", f"The offer of ¥{_yuan(p.get('price'))} was withdrawn"
        ),
        "offer.expired": lambda p: ("Offer expired", f"The offer of ¥{_yuan(p.get('price'))} expired"),
        "order.status_changed": lambda p: (
            "Order update",
            f"“{p.get('title', '')}”: {_ORDER_WORDS['en'].get(p.get('status', ''), '')}",
        ),
        "order.video_ready": lambda p: (
            "Video ready", f"The video of “{p.get('title', '')}” is ready: please confirm it"
        ),
        "order.shipping_update": lambda p: ("Shipping update", p.get("latest") or "Your parcel moved"),
        "listing.reviewed": lambda p: (
            ("Listing approved", f"“{p.get('title', '')}” is on sale")
            if p.get("status") == "on_sale"
            else ("Listing rejected", f"“{p.get('title', '')}”: {p.get('review_note', '')}")
        ),
        "wallet.credited": lambda p: (
            "Sale credited", f"¥{_yuan(p.get('amount'))} was added to your balance"
        ),
        "withdrawal.updated": lambda p: (
            ("Withdrawal paid", f"¥{_yuan(p.get('amount'))} was paid out")
            if p.get("status") == "paid"
            else ("Withdrawal update", f"¥{_yuan(p.get('amount'))}: {p.get('reject_reason') or p.get('status', '')}")
        ),
        "listing.price_dropped": lambda p: (
            "Price drop",
            f"“{p.get('title', '')}” dropped from ¥{_yuan(p.get('old_price'))} "
            f"to ¥{_yuan(p.get('new_price'))}",
        ),
        "listing.unavailable": lambda p: (
            "Sold" if p.get("reason") == "sold" else "No longer available",
            f"“{p.get('title', '')}” "
            + ("was sold" if p.get("reason") == "sold" else "was taken down"),
        ),
        "listing.new_from_followed": lambda p: (
            "New from a seller you follow",
            f"{p.get('seller_nickname', '')} listed “{p.get('title', '')}” "
            f"for ¥{_yuan(p.get('price'))}",
        ),
    },
}
assert all(set(texts) == NOTIFIED_TYPES for texts in _TEXTS.values())


def render(notification: Notification, language: str = "zh") -> tuple[str, str]:
    texts = _TEXTS.get(language, _TEXTS["zh"])
    params = notification.params if isinstance(notification.params, dict) else {}
    write = texts.get(notification.type)
    if write is None:  # a type retired since it was stored
        return ("通知", "") if language == "zh" else ("Notification", "")
    return write(params)


def notification_data(notification: Notification, language: str = "zh") -> dict[str, Any]:
    """An entry as GET /api/notifications shows it (and `notification.created` pushes it)."""
    title, body = render(notification, language)
    target = None
    if notification.target_type:
        target_id: int | str = notification.target_id
        if notification.target_id.isdigit():
            target_id = int(notification.target_id)
        target = {"type": notification.target_type, "id": target_id or None}
    return {
        "id": notification.pk,
        "type": notification.type,
        "title": title,
        "body": body,
        "params": notification.params,
        "target": target,
        "read_at": notification.read_at,
        "created_at": notification.created_at,
    }


def live_frame_data(carried: dict[str, Any], language: str) -> dict[str, Any]:
    """The `data` of a `notification.created` frame, from what the event's layer message
    carried (`realtime.push.live_notification`): the entry as GET /api/notifications shows it,
    unread, in the socket's language."""
    note = Notification(
        pk=carried["id"],
        type=carried["type"],
        params=carried["params"],
        target_type=carried["target_type"],
        target_id=carried["target_id"],
        created_at=carried["created_at"],  # already in the wire's format
    )
    return notification_data(note, language)


def mark_read(*, user_id: int, ids: list[int] | None) -> int:
    """Marks the user's notifications read: those of `ids` (others' ids are ignored, never
    revealed), or every unread one when `ids` is None. Idempotent; returns how many changed."""
    queryset = Notification.objects.filter(user_id=user_id, read_at__isnull=True)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    return queryset.update(read_at=timezone.now())
