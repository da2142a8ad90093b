"""Offers on listings (SPEC §4) and their append-only history: one row per move."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from negotiation.states import LIVE_STATUSES, OfferStatus


class DeclineReason(models.TextChoices):
    SELLER = "seller_declined", "卖家拒绝"
    BUYER = "buyer_declined", "买家拒绝还价"
    BELOW_FLOOR = "below_floor", "低于卖家底价"
    LISTING_SOLD = "listing_sold", "商品已被买走"
    PRICE_CHANGED = "price_changed", "卖家已降价"


class Offer(models.Model):
    # The offer's conversation, locked by the action that moves the offer (negotiation.conversations
    # .thread_of_offer): set on the instance, never stored.
    _thread: "Conversation"
    listing = models.ForeignKey(
        "marketplace.Listing", on_delete=models.PROTECT, related_name="offers"
    )
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="offers_made"
    )
    # Copied from the listing so the seller's inbox is one index range, not a join.
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="offers_received"
    )
    price_fen = models.BigIntegerField()
    counter_price_fen = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=OfferStatus.choices, default=OfferStatus.OPEN)
    # Stored so the sweeper finds due offers by index even if their task was lost.
    expires_at = models.DateTimeField()
    order = models.ForeignKey(
        "marketplace.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="offers"
    )
    decline_reason = models.CharField(
        max_length=20, choices=DeclineReason.choices, blank=True, default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "negotiation_offer"
        constraints = [
            models.CheckConstraint(condition=Q(price_fen__gte=1), name="offer_price_positive"),
            models.CheckConstraint(
                condition=Q(counter_price_fen__isnull=True) | Q(counter_price_fen__gte=1),
                name="offer_counter_positive",
            ),
            models.CheckConstraint(
                condition=Q(status__in=OfferStatus.values), name="offer_status_valid"
            ),
            # The actions check this under the listing lock; the database is the backstop.
            models.UniqueConstraint(
                fields=["listing", "buyer"],
                condition=Q(status__in=LIVE_STATUSES),
                name="one_live_offer_per_buyer_listing",
            ),
        ]
        indexes = [
            models.Index(fields=["buyer", "-id"], name="offer_buyer"),
            models.Index(fields=["seller", "-id"], name="offer_seller"),
            models.Index(fields=["listing", "status"], name="offer_listing_status"),
            models.Index(fields=["listing", "buyer", "created_at"], name="offer_daily_cap"),
            models.Index(
                fields=["expires_at"], condition=Q(status__in=LIVE_STATUSES), name="offer_expiry"
            ),
        ]

    def __str__(self) -> str:
        return f"offer #{self.pk} {self.price_fen} fen on listing {self.listing_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class OfferHistory(models.Model):
    """Append-only: who did what to the offer, at which price, when."""

    class Actor(models.TextChoices):
        BUYER = "buyer"
        SELLER = "seller"
        SYSTEM = "system"

    class Action(models.TextChoices):
        MADE = "made"
        COUNTERED = "countered"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        WITHDRAWN = "withdrawn"
        EXPIRED = "expired"
        ORDER_CLOSED = "order_closed"

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="history")
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    price_fen = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=40, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "negotiation_offer_history"
        ordering = ["id"]
        verbose_name_plural = "offer history"

    def __str__(self) -> str:
        return f"offer {self.offer_id}: {self.action} by {self.actor}"


# --- conversations (SPEC §4a) ------------------------------------------------------------------


class Conversation(models.Model):
    """One per (listing, buyer), with the listing's seller. The unread counters and read
    positions live on this row: every send and every read locks it, so they stay exact under
    concurrent sends without counting messages per request."""

    listing = models.ForeignKey(
        "marketplace.Listing", on_delete=models.PROTECT, related_name="conversations"
    )
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conversations_as_buyer"
    )
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conversations_as_seller"
    )
    last_message = models.ForeignKey(
        "negotiation.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    buyer_unread = models.PositiveIntegerField(default=0)
    seller_unread = models.PositiveIntegerField(default=0)
    buyer_read_up_to = models.BigIntegerField(default=0)
    seller_read_up_to = models.BigIntegerField(default=0)
    # A subscribe message was queued for this side and it has not read since (one per
    # conversation until read, not one per message).
    buyer_noticed = models.BooleanField(default=False)
    seller_noticed = models.BooleanField(default=False)
    message_count = models.PositiveIntegerField(default=0)
    flagged_count = models.PositiveIntegerField(default=0)
    # The listing went to another buyer: the thread stays readable, nobody can write.
    is_read_only = models.BooleanField(default=False)
    # Either user blocked the other (kept on the row by the block action, under this row's
    # lock, so a send needs no extra query to know).
    is_blocked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "negotiation_conversation"
        constraints = [
            models.UniqueConstraint(fields=["listing", "buyer"], name="one_conversation_per_buyer")
        ]
        indexes = [
            models.Index(fields=["buyer", "-updated_at", "-id"], name="conversation_buyer"),
            models.Index(fields=["seller", "-updated_at", "-id"], name="conversation_seller"),
        ]

    def __str__(self) -> str:
        return f"conversation #{self.pk} on listing {self.listing_id}"

    def side(self, user_id: int) -> str:
        return "buyer" if user_id == self.buyer_id else "seller"

    def other_id(self, user_id: int) -> int:
        return self.seller_id if user_id == self.buyer_id else self.buyer_id

    def unread_for(self, user_id: int) -> int:
        return self.buyer_unread if user_id == self.buyer_id else self.seller_unread


class MessageKind(models.TextChoices):
    TEXT = "text"
    IMAGE = "image"
    OFFER = "offer"
    SYSTEM = "system"


# Sent images live in the private storage under this folder, one folder per upload
# (`chat-images/<upload id>/<file>`): the id names the one message that may show the file, so a
# link is checked by primary key (negotiation.selectors.may_read_chat_image).
CHAT_IMAGES = "chat-images"


def chat_image_folder(upload_id: int) -> str:
    return f"{CHAT_IMAGES}/{upload_id}"


class Message(models.Model):
    """Append-only; the id is the server's order, the same for both sides."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    # Null for the entries the server writes on nobody's behalf (expiry, the listing sold).
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=MessageKind.choices)
    text = models.CharField(max_length=500, blank=True)
    # An entry the server writes (offer and system kinds): what it says as a stable code and its
    # values, {"code": "offer_made", "price": 9900}, rendered in the reader's language on every
    # REST read (negotiation/server_entries.py); `text` keeps it in the default language for events,
    # staff and search. Null for what people write.
    notice = models.JSONField(null=True, blank=True, default=None)
    image = models.ForeignKey(
        "marketplace.ImageUpload", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    offer = models.ForeignKey(
        Offer, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    client_id = models.CharField(max_length=64, blank=True, default="")
    # WeChat's check said "review" (text) or "risky" (image): for staff.
    is_flagged = models.BooleanField(default=False)
    # A risky image: shown to neither side.
    is_hidden = models.BooleanField(default=False)
    # WeChat's mediaCheckAsync task for an image; its verdict comes back by message push.
    media_trace_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "negotiation_message"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=MessageKind.values), name="message_kind_valid"
            ),
            # A retried send finds the first; the conversation lock is the fast path.
            models.UniqueConstraint(
                fields=["conversation", "sender", "client_id"],
                condition=~Q(client_id=""),
                name="one_message_per_client_id",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "-id"], name="message_history"),
            models.Index(fields=["is_flagged"], condition=Q(is_flagged=True), name="message_flagged"),
        ]

    def __str__(self) -> str:
        return f"message #{self.pk} ({self.kind}) in conversation {self.conversation_id}"


class MessageInbox(models.Model):
    """A user's total unread messages across conversations, moved by the same transactions
    that move the conversations' counters (the tab badge without a SUM per request)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    unread = models.BigIntegerField(default=0)

    class Meta:
        db_table = "negotiation_message_inbox"

    def __str__(self) -> str:
        return f"inbox of user {self.user_id}: {self.unread}"


class UserBlock(models.Model):
    blocker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks_made"
    )
    blocked = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "negotiation_user_block"
        constraints = [
            models.UniqueConstraint(fields=["blocker", "blocked"], name="one_block_per_pair")
        ]
        indexes = [models.Index(fields=["blocked", "blocker"], name="block_reverse")]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"


class Report(models.Model):
    class Target(models.TextChoices):
        MESSAGE = "message"
        USER = "user"
        LISTING = "listing"

    class Reason(models.TextChoices):
        FAKE = "fake", "虚假信息"
        PROHIBITED = "prohibited", "违禁物品"
        FRAUD = "fraud", "欺诈"
        ABUSE = "abuse", "骚扰或辱骂"
        OTHER = "other", "其他"

    class Status(models.TextChoices):
        OPEN = "open"
        DISMISSED = "dismissed"
        LISTING_REMOVED = "listing_removed"
        USER_BANNED = "user_banned"

    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reports_made"
    )
    target_type = models.CharField(max_length=10, choices=Target.choices)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.PROTECT, related_name="reports"
    )
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.PROTECT, related_name="reports"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    listing = models.ForeignKey(
        "marketplace.Listing", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "negotiation_report"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "created_at"], name="report_queue")]

    def __str__(self) -> str:
        return f"report #{self.pk} on {self.target_type} ({self.status})"


class ConversationAccess(models.Model):
    """A staff member read a reported conversation's messages (every such read recorded)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "negotiation_conversation_access"

    def __str__(self) -> str:
        return f"{self.staff_user_id} read conversation {self.conversation_id}"
