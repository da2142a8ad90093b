"""Staff and conversations: metadata for all, message text only of reported conversations (each
read recorded), the report queue oldest first with its three decisions recorded."""

import pytest
from django.test import Client

from marketplace.models import Listing, ListingStatus, User
from negotiation.conversations import decide_report
from negotiation.models import ConversationAccess, Report
from tests.conftest import assert_error
from tests.factories import StaffFactory
from tests.negotiation.conversation_helpers import say, thread_world

pytestmark = pytest.mark.django_db


def _staff_client():
    staff = StaffFactory()
    client = Client()
    client.force_login(staff)
    return staff, client


def _report(client, target_type, target_id, reason="fraud"):
    response = client.post(
        "/api/reports", {"target_type": target_type, "target_id": target_id, "reason": reason}
    )
    assert response.status_code == 201, response.content
    return Report.objects.get(pk=response.json()["id"])


def test_staff_see_metadata_but_text_only_of_a_reported_conversation(make_client):
    seller, client, _, conversation = thread_world(make_client)
    cid = conversation["id"]
    message = say(seller, cid, "加我微信私聊，绕过平台", "w")
    staff, browser = _staff_client()
    page = browser.get(f"/admin/negotiation/conversation/{cid}/change/")
    assert page.status_code == 200
    assert "加我微信" not in page.content.decode() and not ConversationAccess.objects.exists()
    listing = browser.get("/admin/negotiation/conversation/", {"q": client.user.nickname})
    assert listing.status_code == 200 and f">{cid}<" in listing.content.decode()

    report = _report(client, "message", message["id"])
    page = browser.get(f"/admin/negotiation/conversation/{cid}/change/")
    assert "加我微信" in page.content.decode()
    queue = browser.get(f"/admin/negotiation/report/{report.pk}/change/")
    assert "加我微信" in queue.content.decode()
    assert ConversationAccess.objects.filter(staff_user=staff, conversation_id=cid).count() == 2
    flagged = browser.get("/admin/negotiation/conversation/", {"flagged": "yes"})
    assert flagged.status_code == 200


def test_report_decisions_are_recorded_with_the_staff_user(make_client):
    seller, client, listing, conversation = thread_world(make_client)
    first = _report(client, "listing", listing.pk, "fake")
    second = _report(client, "user", seller.user.pk, "abuse")
    third = _report(client, "listing", listing.pk, "other")
    staff = StaffFactory()

    decide_report(staff=staff, report_id=first.pk, decision=Report.Status.LISTING_REMOVED)
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.OFF_SHELF
    decide_report(staff=staff, report_id=second.pk, decision=Report.Status.USER_BANNED)
    assert User.objects.get(pk=seller.user.pk).is_banned
    decide_report(staff=staff, report_id=third.pk, decision=Report.Status.DISMISSED)
    rows = {r.pk: r for r in Report.objects.all()}
    assert [(rows[r.pk].status, rows[r.pk].decided_by_id) for r in (first, second, third)] == [
        ("listing_removed", staff.pk),
        ("user_banned", staff.pk),
        ("dismissed", staff.pk),
    ]
    with pytest.raises(Exception) as caught:
        decide_report(staff=staff, report_id=third.pk, decision=Report.Status.DISMISSED)
    assert getattr(caught.value, "code", "") == "report_decided"
    # The banned seller can no longer be messaged.
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        {"kind": "text", "text": "在吗", "client_id": "x"},
    )
    assert_error(response, 409, "recipient_unavailable")


def test_the_admin_queue_lists_oldest_first_and_its_action_decides(make_client):
    seller, client, listing, _ = thread_world(make_client)
    older = _report(client, "listing", listing.pk)
    newer = _report(client, "user", seller.user.pk)
    staff, browser = _staff_client()
    page = browser.get("/admin/negotiation/report/").content.decode()
    assert page.index(f"/report/{older.pk}/change/") < page.index(f"/report/{newer.pk}/change/")
    response = browser.post(
        "/admin/negotiation/report/",
        {"action": "dismiss", "_selected_action": [older.pk]},
    )
    assert response.status_code == 302
    older.refresh_from_db()
    assert (older.status, older.decided_by_id) == ("dismissed", staff.pk)
