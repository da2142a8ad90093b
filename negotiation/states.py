"""Offer statuses and their one transition table (SPEC §4), built like marketplace.states."""

from django.db import models

from marketplace.states import Machine


class OfferStatus(models.TextChoices):
    OPEN = "open", "待卖家答复"
    COUNTERED = "countered", "卖家已还价"
    ACCEPTED = "accepted", "已成交"
    DECLINED = "declined", "已拒绝"
    WITHDRAWN = "withdrawn", "已撤回"
    EXPIRED = "expired", "已过期"


O = OfferStatus  # noqa: E741

OFFER = Machine(
    "offer",
    {
        O.OPEN: {O.COUNTERED, O.ACCEPTED, O.DECLINED, O.WITHDRAWN, O.EXPIRED},
        # The buyer answers a counter by accepting, declining, or a new offer (which withdraws it).
        O.COUNTERED: {O.ACCEPTED, O.DECLINED, O.WITHDRAWN, O.EXPIRED},
        O.ACCEPTED: set(),
        O.DECLINED: set(),
        O.WITHDRAWN: set(),
        O.EXPIRED: set(),
    },
    code="offer_not_open",
)

# Still being bargained over: the seller must answer (open) or the buyer must (countered).
LIVE_STATUSES = (OfferStatus.OPEN, OfferStatus.COUNTERED)
