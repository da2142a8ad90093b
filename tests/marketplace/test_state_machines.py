"""Every status machine: the whole table walked, illegal moves refused with the machine's code,
and a move that saves only the status and the fields the caller names."""

import pytest

from marketplace.errors import Conflict
from marketplace.models import Listing, ListingStatus
from marketplace.states import LISTING, MACHINES, REFUND, WITHDRAWAL
from marketplace.states import ListingStatus as L
from marketplace.states import RefundStatus as R
from marketplace.states import WithdrawalStatus as W
from negotiation.states import OFFER
from negotiation.states import OfferStatus as O  # noqa: E741
from tests.marketplace.order_helpers import listing_on_sale

# The moves the product allows (SPEC §2-§5), written out independently of marketplace.states.
EXPECTED = {
    LISTING: {
        L.PENDING_REVIEW: {L.PENDING_REVIEW, L.ON_SALE, L.REJECTED, L.OFF_SHELF},
        L.REJECTED: {L.PENDING_REVIEW, L.OFF_SHELF},
        L.ON_SALE: {L.RESERVED, L.PENDING_REVIEW, L.OFF_SHELF},
        L.RESERVED: {L.SOLD, L.ON_SALE},
        L.SOLD: {L.ON_SALE, L.OFF_SHELF},
        L.OFF_SHELF: {L.PENDING_REVIEW},
    },
    REFUND: {
        R.PENDING: {R.PROCESSING, R.SUCCEEDED, R.NEEDS_ATTENTION},
        R.PROCESSING: {R.SUCCEEDED, R.NEEDS_ATTENTION},
        R.NEEDS_ATTENTION: {R.PENDING},
    },
    WITHDRAWAL: {
        W.PENDING: {W.PAID, W.REJECTED, W.AWAITING_USER_CONFIRMATION, W.FAILED},
        W.AWAITING_USER_CONFIRMATION: {W.PAID, W.FAILED},
    },
    OFFER: {
        O.OPEN: {O.COUNTERED, O.ACCEPTED, O.DECLINED, O.WITHDRAWN, O.EXPIRED},
        O.COUNTERED: {O.ACCEPTED, O.DECLINED, O.WITHDRAWN, O.EXPIRED},
    },
}
CHOICES = {LISTING: L, REFUND: R, WITHDRAWAL: W, OFFER: O}


def _all_pairs():
    for machine, choices in CHOICES.items():
        for current in choices.values:
            for target in choices.values:
                yield pytest.param(machine, current, target, id=f"{machine.name}:{current}->{target}")


@pytest.mark.parametrize(("machine", "current", "target"), list(_all_pairs()))
def test_the_table(machine, current, target):
    allowed = target in EXPECTED[machine].get(current, set())
    assert machine.can(current, target) == allowed
    if allowed:
        machine.check(current, target)
    else:
        with pytest.raises(Conflict) as refused:
            machine.check(current, target)
        assert refused.value.code == machine.code


def test_every_status_of_every_machine_is_in_its_table():
    for machine in (*MACHINES[1:], OFFER):
        assert set(machine.transitions) == set(CHOICES[machine].values)


@pytest.mark.django_db
def test_a_move_saves_only_the_status_and_the_named_fields():
    listing = listing_on_sale(title="原标题")
    stale = Listing.objects.get(pk=listing.pk)
    listing.title = "未保存的标题"
    listing.review_note = "只保存这一项"
    LISTING.move(listing, ListingStatus.OFF_SHELF, fields=["review_note"])
    stored = Listing.objects.get(pk=listing.pk)
    assert stored.status == ListingStatus.OFF_SHELF
    assert stored.review_note == "只保存这一项"
    assert stored.title == "原标题"  # set on the instance, not named: not written
    assert stored.updated_at > stale.updated_at


@pytest.mark.django_db
def test_an_illegal_move_changes_nothing():
    listing = listing_on_sale()
    with pytest.raises(Conflict):
        LISTING.move(listing, ListingStatus.SOLD)  # on sale → sold skips the reservation
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.ON_SALE


@pytest.mark.django_db
def test_the_set_based_move_leaves_rows_that_may_not_move():
    on_sale, off_shelf = listing_on_sale(), listing_on_sale(status=ListingStatus.OFF_SHELF)
    moved = LISTING.move_rows(
        Listing.objects.filter(pk__in=[on_sale.pk, off_shelf.pk]), ListingStatus.RESERVED
    )
    assert moved == 1
    assert Listing.objects.get(pk=on_sale.pk).status == ListingStatus.RESERVED
    assert Listing.objects.get(pk=off_shelf.pk).status == ListingStatus.OFF_SHELF
