"""Builders for conversation tests: a listing with a seller, a buyer's open thread."""

from negotiation.models import Conversation, MessageInbox
from realtime.models import Event
from tests.conftest import ApiClient
from tests.negotiation.helpers import buyer, seller_and_listing


def open_thread(client: ApiClient, listing) -> dict:
    response = client.post(f"/api/listings/{listing.pk}/conversation")
    assert response.status_code == 200, response.content
    return response.json()


def say(client: ApiClient, conversation_id: int, text: str, client_id: str, status: int = 201):
    response = client.post(
        f"/api/conversations/{conversation_id}/messages",
        {"kind": "text", "text": text, "client_id": client_id},
    )
    assert response.status_code == status, response.content
    return response.json()


def thread_world(make_client, **listing_kw):
    seller, listing = seller_and_listing(make_client, **listing_kw)
    client = buyer(make_client)
    conversation = open_thread(client, listing)
    return seller, client, listing, conversation


def inbox(user) -> int:
    return MessageInbox.objects.filter(user=user).values_list("unread", flat=True).first() or 0


def unread(conversation_id: int) -> tuple[int, int]:
    row = Conversation.objects.get(pk=conversation_id)
    return row.buyer_unread, row.seller_unread


def message_events(user, type: str = "message.created") -> list[dict]:
    return [e.data for e in Event.objects.filter(user=user, type=type).order_by("seq")]
