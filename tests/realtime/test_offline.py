"""Offline fallback: important events reach a user with no open socket as a subscribe message."""

import pytest
from django.conf import settings
from django.db import transaction

from realtime import presence
from realtime.models import Event
from realtime.push import emit
from sandbox.models import SandboxMessage
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def grant(anon, user, template_id):
    response = anon.post(
        "/sandbox/wechat/subscribe-grant",
        {"openid": user.openid, "template_id": template_id, "count": 1},
    )
    assert response.status_code == 200, response.content


def emit_committed(user, type, data, **kwargs):
    with transaction.atomic():
        return emit(user_ids=[user.pk], type=type, data=data, **kwargs)[0]


def test_offline_user_who_granted_gets_a_subscribe_message(anon):
    user = UserFactory()
    grant(anon, user, settings.WECHAT_TEMPLATE_VIDEO_READY)
    event = emit_committed(user, "order.video_ready", {"order_no": "O20260001", "status": "x"})
    message = SandboxMessage.objects.get(openid=user.openid)
    assert message.template_id == settings.WECHAT_TEMPLATE_VIDEO_READY
    assert message.data["character_string1"] == {"value": "O20260001"}
    assert message.page == "pages/orders/detail?no=O20260001"
    assert Event.objects.get(pk=event.pk).notified_at is not None


def test_offer_answer_and_shipping_update_use_their_templates(anon):
    user = UserFactory()
    grant(anon, user, settings.WECHAT_TEMPLATE_OFFER_ANSWERED)
    grant(anon, user, settings.WECHAT_TEMPLATE_SHIPPING_UPDATE)
    emit_committed(user, "offer.countered", {"id": 5, "price": 9900, "counter_price": 12000})
    emit_committed(user, "order.shipping_update", {"order_no": "O1", "text": "已到达深圳"})
    templates = set(SandboxMessage.objects.values_list("template_id", flat=True))
    assert templates == {
        settings.WECHAT_TEMPLATE_OFFER_ANSWERED,
        settings.WECHAT_TEMPLATE_SHIPPING_UPDATE,
    }


def test_not_granted_is_not_a_failure(anon):
    user = UserFactory()
    event = emit_committed(user, "order.video_ready", {"order_no": "O2"})
    assert not SandboxMessage.objects.exists()
    assert Event.objects.get(pk=event.pk).notified_at is not None  # tried once, not retried


def test_online_user_gets_no_message(anon):
    user = UserFactory()
    grant(anon, user, settings.WECHAT_TEMPLATE_VIDEO_READY)
    presence.mark_connected(user.pk, "conn-1")
    emit_committed(user, "order.video_ready", {"order_no": "O3"})
    assert not SandboxMessage.objects.exists()
    presence.mark_disconnected(user.pk, "conn-1")
    emit_committed(user, "order.video_ready", {"order_no": "O4"})
    assert SandboxMessage.objects.count() == 1


def test_unimportant_or_opted_out_events_send_nothing(anon):
    user = UserFactory()
    grant(anon, user, settings.WECHAT_TEMPLATE_VIDEO_READY)
    emit_committed(user, "order.status_changed", {"order_no": "O5"})
    emit_committed(user, "order.video_ready", {"order_no": "O6"}, notify=False)
    assert not SandboxMessage.objects.exists()


def test_rolled_back_event_sends_no_message(anon):
    user = UserFactory()
    grant(anon, user, settings.WECHAT_TEMPLATE_VIDEO_READY)
    with pytest.raises(RuntimeError), transaction.atomic():
        emit(user_ids=[user.pk], type="order.video_ready", data={"order_no": "O7"})
        raise RuntimeError("rolled back")
    assert not SandboxMessage.objects.exists()


def test_the_task_is_idempotent(anon):
    from realtime.tasks import send_offline_notice

    user = UserFactory()
    grant(anon, user, settings.WECHAT_TEMPLATE_VIDEO_READY)
    grant(anon, user, settings.WECHAT_TEMPLATE_VIDEO_READY)
    event = emit_committed(user, "order.video_ready", {"order_no": "O8"})
    send_offline_notice(event.pk)
    assert SandboxMessage.objects.count() == 1


def test_one_task_per_transaction_for_all_its_important_events(anon, monkeypatch):
    """An acceptance tells buyer, seller and rivals several important events: one queued task
    for them all (each enqueue is a Redis round trip on the committing thread)."""
    from project import tasking
    from realtime import push

    users = [UserFactory() for _ in range(3)]
    for user in users:
        grant(anon, user, settings.WECHAT_TEMPLATE_OFFER_ANSWERED)
    queued = []
    real_enqueue_all = tasking.enqueue_all

    def counting(entries):
        queued.extend(name for name, _args, _eta in entries)
        real_enqueue_all(entries)

    monkeypatch.setattr(tasking, "enqueue_all", counting)
    with transaction.atomic(), push.batched():
        emit(user_ids=[users[0].pk], type="offer.accepted", data={"id": 1, "price": 100})
        for rival in users[1:]:
            emit(user_ids=[rival.pk], type="offer.declined", data={"id": 2, "price": 90})
    assert queued == ["realtime.tasks.send_offline_notices"]
    assert set(SandboxMessage.objects.values_list("openid", flat=True)) == {u.openid for u in users}



def test_a_batch_retried_after_a_failure_sends_each_notice_once(anon, monkeypatch):
    from marketplace.gateways import wechat
    from project import tasking
    from realtime.tasks import send_offline_notices

    users = [UserFactory() for _ in range(2)]
    for user in users:
        grant(anon, user, settings.WECHAT_TEMPLATE_VIDEO_READY)
    monkeypatch.setattr(tasking, "enqueue_all", lambda queued: None)  # the test runs the task
    events = [emit_committed(u, "order.video_ready", {"order_no": f"O{n}"}) for n, u in enumerate(users)]
    real_send = wechat.send_subscribe_message
    calls = []

    def second_fails(**message):
        calls.append(message["openid"])
        if len(calls) == 2:
            raise ConnectionError("WeChat timed out")
        return real_send(**message)

    monkeypatch.setattr(wechat, "send_subscribe_message", second_fails)
    with pytest.raises(ConnectionError):
        send_offline_notices.call_local([event.pk for event in events])
    assert SandboxMessage.objects.count() == 1
    send_offline_notices.call_local([event.pk for event in events])  # Huey's retry of the whole batch
    assert SandboxMessage.objects.count() == 2
    assert calls == [users[0].openid, users[1].openid, users[1].openid]
    assert all(Event.objects.get(pk=event.pk).notified_at is not None for event in events)
