"""Conversations, blocks and reports over REST (API.md "Conversations"). The socket actions
parse with these schemas and call the same actions (negotiation/socket_actions.py)."""

import json
from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field, Strict

from marketplace.api.accounts import StrictSchema
from marketplace.errors import Forbidden, InvalidInput, NotFound
from marketplace.gateways import wechat
from marketplace.pagination import PageParams, page_schema, paginate
from negotiation import conversations
from negotiation.api import Id, OfferOut, PathId, QueryId
from negotiation.models import MessageKind
from negotiation.representations import conversation_data, message_data
from negotiation.selectors import conversation_of, conversations_of, message_in, messages_before
from project.wire import WireDateTime

router = Router(tags=["conversations"])

ClientId = Annotated[str, Strict(), Field(min_length=1, max_length=64)]


class Person(Schema):
    id: int
    nickname: str
    avatar_url: str


class ListingBrief(Schema):
    id: int
    title: str
    price: int
    cover_url: str | None
    status: str


class MessageImage(Schema):
    width: int
    height: int


IMAGE_URL_HELP = (
    "A private link to the image for you, valid PRIVATE_MEDIA_TTL_SECONDS (10 minutes): read "
    "the message again (GET /api/conversations/{id}/messages/{message_id}) for a fresh one, and "
    "when it answers 404 link_expired. Never keep it."
)


class MessageOut(Schema):
    id: int
    conversation_id: int
    sender_id: int | None = Field(None, description="null for the server's own entries")
    kind: MessageKind
    text: str
    image: MessageImage | None = Field(
        description="An image is there (its size, to lay it out before it loads); null for "
        "other kinds and a hidden image."
    )
    image_url: str | None = Field(description=IMAGE_URL_HELP)
    is_hidden: bool = Field(False, description="a risky image: shown to neither side")
    offer: OfferOut | None
    client_id: str | None
    created_at: WireDateTime


class MessageEventOut(MessageOut):
    """A message as `message.created` carries it (live and replayed): never a link, which
    would expire in the stored copy. `image` says an image is there; read the message over
    REST for its URL."""

    image_url: None = Field(
        description="Always null in events: GET /api/conversations/{id}/messages/{message_id} "
        "gives you a link."
    )


class ConversationOut(Schema):
    id: int
    listing: ListingBrief
    buyer: Person
    seller: Person
    last_message: MessageOut | None
    unread_count: int
    is_read_only: bool = Field(False, description="the listing went to another buyer")
    updated_at: WireDateTime


class MessageIn(StrictSchema):
    kind: Literal["text", "image"]
    text: Annotated[str, Strict(), Field(max_length=2000)] | None = None
    image_id: Id | None = None
    client_id: ClientId


class MessageReadIn(StrictSchema):
    up_to: Id


class MessageReadOut(Schema):
    conversation_id: int
    user_id: int
    up_to: int
    unread_count: int


class ConversationFilters(PageParams):
    unread: bool = False


class HistoryParams(Schema):
    before: QueryId | None = None
    limit: int = Field(30, ge=1, le=100)


class MessagePage(Schema):
    items: list[MessageOut]
    next_before: int | None = Field(None, description="Pass as ?before= for older messages.")


class ReportIn(StrictSchema):
    target_type: Literal["message", "user", "listing"]
    target_id: Id
    reason: Literal["fake", "prohibited", "fraud", "abuse", "other"]
    detail: Annotated[str, Strict(), Field(max_length=500)] | None = None


class ReportOut(Schema):
    id: int
    target_type: str
    status: str
    created_at: WireDateTime


class BlockOut(Schema):
    user_id: int
    is_blocked: bool


ConversationPage = page_schema(ConversationOut, "ConversationPage")


@router.post(
    "/listings/{listing_id}/conversation",
    response=ConversationOut,
    summary="Open (or get back) my conversation with the seller about this listing",
)
def open_conversation(request: HttpRequest, listing_id: PathId):
    opened = conversations.open_conversation(buyer=request.auth, listing_id=listing_id)
    row = conversation_of(user=request.auth, conversation_id=opened.pk)
    assert row is not None  # the buyer's own conversation, just opened
    return conversation_data(row, viewer_id=request.auth.pk)


@router.get("/conversations", response=ConversationPage, summary="My conversations, latest first")
def list_conversations(request: HttpRequest, filters: Query[ConversationFilters]):
    user = request.auth
    page = paginate(
        conversations_of(user=user, unread=filters.unread),
        ordering=("-updated_at", "-id"),
        limit=filters.limit,
        cursor=filters.cursor,
        transform=lambda rows: [conversation_data(row, viewer_id=user.pk) for row in rows],
    )
    return page.as_dict()


def _mine(request: HttpRequest, conversation_id: int):
    row = conversation_of(user=request.auth, conversation_id=conversation_id)
    if row is None:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return row


@router.get("/conversations/{conversation_id}", response=ConversationOut, summary="One conversation")
def get_conversation(request: HttpRequest, conversation_id: PathId):
    return conversation_data(_mine(request, conversation_id), viewer_id=request.auth.pk)


@router.get(
    "/conversations/{conversation_id}/messages",
    response=MessagePage,
    summary="Messages, newest first; ?before=<message id> pages back",
)
def list_messages(request: HttpRequest, conversation_id: PathId, params: Query[HistoryParams]):
    conversation = conversations.access_conversation(
        user=request.auth, conversation_id=conversation_id
    )
    rows = messages_before(conversation=conversation, before=params.before, limit=params.limit)
    next_before = rows[-1].pk if len(rows) == params.limit else None
    reader_id = request.auth.pk
    return {
        "items": [message_data(row, reader_id=reader_id) for row in rows],
        "next_before": next_before,
    }


@router.get(
    "/conversations/{conversation_id}/messages/{message_id}",
    response=MessageOut,
    summary="One message, with a fresh link to its image (after a message.created event)",
)
def get_message(request: HttpRequest, conversation_id: PathId, message_id: PathId):
    conversation = conversations.access_conversation(
        user=request.auth, conversation_id=conversation_id
    )
    message = message_in(conversation=conversation, message_id=message_id)
    if message is None:
        raise NotFound("No such message.", code="message_not_found")
    return message_data(message, reader_id=request.auth.pk)


@router.post(
    "/conversations/{conversation_id}/messages",
    response={200: MessageOut, 201: MessageOut},
    summary="Send a text or image; the same client_id again returns the first message",
)
def send_message(request: HttpRequest, conversation_id: PathId, payload: MessageIn):
    sent = conversations.send_message(
        sender=request.auth,
        conversation_id=conversation_id,
        kind=payload.kind,
        text=payload.text,
        image_id=payload.image_id,
        client_id=payload.client_id,
    )
    return Status(
        201 if sent.created else 200, message_data(sent.message, reader_id=request.auth.pk)
    )


@router.post(
    "/conversations/{conversation_id}/read",
    response=MessageReadOut,
    summary="Mark read up to a message; the other side hears message.read",
)
def read_conversation(request: HttpRequest, conversation_id: PathId, payload: MessageReadIn):
    user = request.auth
    row = conversations.mark_read(user=user, conversation_id=conversation_id, up_to=payload.up_to)
    side = row.side(user.pk)
    return {
        "conversation_id": row.pk,
        "user_id": user.pk,
        "up_to": getattr(row, f"{side}_read_up_to"),
        "unread_count": row.unread_for(user.pk),
    }


@router.post("/users/{user_id}/block", response=BlockOut, summary="Block a user")
def block_user(request: HttpRequest, user_id: PathId):
    conversations.block_user(user=request.auth, blocked_id=user_id)
    return {"user_id": user_id, "is_blocked": True}


@router.delete("/users/{user_id}/block", response=BlockOut, summary="Unblock a user")
def unblock_user(request: HttpRequest, user_id: PathId):
    conversations.unblock_user(user=request.auth, blocked_id=user_id)
    return {"user_id": user_id, "is_blocked": False}


@router.post("/reports", response={201: ReportOut}, summary="Report a message, user or listing")
def file_report(request: HttpRequest, payload: ReportIn):
    report = conversations.file_report(
        reporter=request.auth,
        target_type=payload.target_type,
        target_id=payload.target_id,
        reason=payload.reason,
        detail=payload.detail or "",
    )
    return Status(
        201,
        {
            "id": report.pk,
            "target_type": report.target_type,
            "status": report.status,
            "created_at": report.created_at,
        },
    )


class BlockedOut(Schema):
    user: Person
    blocked_at: WireDateTime


@router.get("/me/blocks", response=list[BlockedOut], summary="The users I blocked")
def my_blocks(request: HttpRequest):
    return [
        {
            "user": {
                "id": row.blocked.pk,
                "nickname": row.blocked.nickname,
                "avatar_url": row.blocked.avatar_url,
            },
            "blocked_at": row.created_at,
        }
        for row in conversations.blocked_users(user=request.auth)[:500]
    ]


push_router = Router(tags=["wechat"])


class PushAck(Schema):
    ok: bool


@push_router.post(
    "/wechat/message-push",
    auth=None,
    response=PushAck,
    summary="WeChat's message push (mediaCheckAsync verdicts), signed with the push token",
)
def wechat_message_push(request: HttpRequest, signature: str = "", timestamp: str = "",
                        nonce: str = ""):
    if not wechat.push_signature_valid(signature=signature, timestamp=timestamp, nonce=nonce):
        raise Forbidden("Bad signature.", code="bad_signature")
    try:
        event = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The body is not valid JSON.", code="malformed_json") from exc
    if not isinstance(event, dict):
        raise InvalidInput("The body is not a JSON object.", code="malformed_json")
    if event.get("Event") == "wxa_media_check" and isinstance(event.get("trace_id"), str):
        result = event["result"] if isinstance(event.get("result"), dict) else {}
        conversations.apply_media_verdict(
            trace_id=event["trace_id"][:64], suggest=str(result.get("suggest", ""))
        )
    return {"ok": True}
