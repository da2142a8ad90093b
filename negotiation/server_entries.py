"""The entries the server writes into a conversation (an offer made, countered, accepted,
declined..., the listing sold): stored as a stable code and its values (`Message.notice`) and
rendered in the reader's language when read, so an English client reads English and a Chinese
one Chinese from the same row. `Message.text` keeps the rendering in the default language
(Chinese): what `message.created` events, staff pages and search read, written once
(docs/conversations.md "Server entries")."""

from typing import Any

from django.conf import settings
from django.utils.translation import gettext, gettext_noop, override

# code → English text (%(price)s is "¥99.00"); makemessages finds them through gettext_noop.
TEXTS = {
    "offer_made": gettext_noop("Offer %(price)s"),
    "offer_countered": gettext_noop("The seller countered at %(price)s"),
    "offer_accepted": gettext_noop("Agreed at %(price)s: the order is created"),
    "offer_declined": gettext_noop("The offer was declined"),
    "offer_withdrawn": gettext_noop("The buyer withdrew the offer"),
    "offer_expired": gettext_noop("The offer expired"),
    "offer_updated": gettext_noop("The offer was updated"),
    "thread_closed": gettext_noop("The listing is sold: this conversation is closed"),
}
# An offer_declined notice's "reason" (Offer.decline_reason) → its own text.
DECLINE_TEXTS = {
    "seller_declined": gettext_noop("The seller declined the offer"),
    "buyer_declined": gettext_noop("The buyer declined the counter-offer"),
    "below_floor": gettext_noop(
        "The offer is below the seller's floor price and was declined automatically"
    ),
    "listing_sold": gettext_noop("The listing was bought: the offer no longer stands"),
    "price_changed": gettext_noop("The seller lowered the price: the offer no longer stands"),
}


def notice(code: str, **values: Any) -> dict[str, Any]:
    """What Message.notice stores: {"code": ..., and the values}."""
    assert code in TEXTS, code
    return {"code": code, **values}


def render(notice: dict[str, Any]) -> str:
    """The notice in the active language (an unknown code, from a newer release, renders as the
    generic offer text rather than failing a read)."""
    code = notice.get("code", "")
    template = TEXTS.get(code, TEXTS["offer_updated"])
    if code == "offer_declined":
        template = DECLINE_TEXTS.get(notice.get("reason") or "", template)
    return gettext(template) % {"price": "¥{:.2f}".format((notice.get("price") or 0) / 100)}


def render_stored(notice: dict[str, Any]) -> str:
    """The notice in the default language: what Message.text stores."""
    with override(settings.LANGUAGE_CODE):
        return render(notice)
