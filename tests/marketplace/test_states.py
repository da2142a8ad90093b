"""The order transition table, walked whole (no database needed)."""

import pytest

from marketplace.states import TRANSITIONS, OrderStatus, can_transition

ALLOWED = {
    "pending_payment": {"awaiting_video", "closed"},
    "awaiting_video": {"awaiting_confirmation", "cancelled"},
    "awaiting_confirmation": {"awaiting_shipment", "cancelled"},
    "awaiting_shipment": {"shipped", "cancelled"},
    "shipped": {"completed", "disputed"},
    "disputed": {"completed", "cancelled"},
}


@pytest.mark.parametrize(
    ("current", "target"), [(c, t) for c in OrderStatus.values for t in OrderStatus.values]
)
def test_transition_table(current, target):
    """Exactly the moves SPEC §3 lists are allowed; terminal statuses go nowhere."""
    assert can_transition(current, target) == (target in ALLOWED.get(current, set()))


def test_every_status_is_in_the_table():
    assert set(TRANSITIONS) == set(OrderStatus.values)
