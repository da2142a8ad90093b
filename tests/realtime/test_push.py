"""emit(): durable per-user events, numbered without gaps, sent only after commit."""

import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from realtime.models import Event, EventCounter
from realtime.push import emit, group_for
from tests.factories import UserFactory
from tests.realtime.conftest import emit_now


def seqs(user):
    return list(Event.objects.filter(user=user).order_by("seq").values_list("seq", flat=True))


@pytest.mark.django_db
def test_emit_numbers_each_user_separately_and_dedupes_recipients():
    alice, bob = UserFactory(), UserFactory()
    emit_now([alice.pk])
    events = emit_now([alice.pk, bob.pk, alice.pk], type="offer.created", data={"id": 7})
    assert sorted((event.user_id, event.seq) for event in events) == sorted(
        [(alice.pk, 2), (bob.pk, 1)]
    )
    assert seqs(alice) == [1, 2]
    assert seqs(bob) == [1]
    stored = Event.objects.get(user=bob)
    assert (stored.type, stored.data) == ("offer.created", {"id": 7})
    assert EventCounter.objects.get(pk=alice.pk).last_seq == 2


@pytest.mark.django_db
def test_emit_normalises_datetimes_and_rejects_bad_payloads():
    user = UserFactory()
    event = emit_now([user.pk], data={"at": user.date_joined})[0]
    assert isinstance(Event.objects.get(pk=event.pk).data["at"], str)
    with pytest.raises(TypeError):
        emit_now([user.pk], data={"bad": object()})
    with pytest.raises(ValueError):
        emit_now([user.pk], type="no.such.type")
    assert seqs(user) == [1]


@pytest.mark.django_db(transaction=True)
def test_rollback_stores_nothing_sends_nothing_and_leaves_no_gap():
    user = UserFactory()
    with pytest.raises(RuntimeError):  # outside a transaction there is no commit to wait for
        emit(user_ids=[user.pk], type="order.status_changed", data={})
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_for(user.pk), channel)
    try:
        with transaction.atomic():
            emit(user_ids=[user.pk], type="wallet.credited", data={"amount": 100})
            raise IntegrityError("the action failed after emitting")
    except IntegrityError:
        pass
    assert not Event.objects.filter(user=user).exists()
    emit_now([user.pk], type="wallet.credited", data={"amount": 5})
    assert seqs(user) == [1]
    # The only frame on the channel is the committed one: nothing leaked from the rollback.
    message = async_to_sync(layer.receive)(channel)
    assert message["seq"] == 1 and '"amount":5' in message["text"]
    async_to_sync(layer.group_discard)(group_for(user.pk), channel)


@pytest.mark.django_db(transaction=True)
def test_frames_leave_only_after_commit():
    user = UserFactory()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_for(user.pk), channel)
    sent = []
    with transaction.atomic():
        emit(user_ids=[user.pk], type="order.status_changed", data={"order_no": "A1"})
        sent.append(connection.run_on_commit[:])
        sends = [hook for hook in sent[0] if "forget" not in hook[1].__qualname__]
        assert len(sends) == 1  # scheduled, not sent
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "realtime.event"
    assert message["seq"] == 1
    assert '"order_no":"A1"' in message["text"]
    async_to_sync(layer.group_discard)(group_for(user.pk), channel)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_emitters_get_consecutive_numbers_in_commit_order():
    """Threads emit to the same user at once, some roll back: numbers have no gaps and a
    higher number is never committed before a lower one (what resume relies on)."""
    user, other = UserFactory(), UserFactory()
    threads_count = 12
    barrier = threading.Barrier(threads_count)
    commits: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            try:
                with transaction.atomic(durable=True):
                    event = emit(
                        user_ids=[user.pk, other.pk],
                        type="offer.created",
                        data={"i": index},
                    )[0]
                    time.sleep(0.01)  # widen the window between numbering and commit
                    if index % 4 == 0:
                        raise IntegrityError("rolled back on purpose")
                    transaction.on_commit(lambda: _record(event.seq))
            except IntegrityError:
                pass
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def _record(seq: int) -> None:
        with lock:
            commits.append(seq)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    committed = threads_count - len(range(0, threads_count, 4))
    assert seqs(user) == list(range(1, committed + 1))
    assert seqs(other) == list(range(1, committed + 1))
    assert commits == sorted(commits)
    assert EventCounter.objects.get(pk=user.pk).last_seq == committed


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_large_batch_is_stored_by_copy_with_ids_and_sent_after_commit():
    """Past push.COPY_FROM events PostgreSQL gets them by COPY: same rows, same numbering,
    ids filled in, frames still sent only after commit."""
    from realtime import push

    users = [UserFactory() for _ in range(3)]
    emit_now([users[0].pk])  # numbering continues after an existing event
    count = push.COPY_FROM + 50
    items = [
        ([users[i % 3].pk], "order.status_changed", {"i": i, "note": 'say "hi"\\n'})
        for i in range(count)
    ]
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_for(users[1].pk), channel)
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        events = push.emit_many(items)
        assert len(connection.run_on_commit) >= 1  # scheduled, not sent
    assert not [q for q in captured if q["sql"].startswith('INSERT INTO "realtime_event"')]
    assert len(events) == count and all(event.pk for event in events)
    stored = {e.pk: e for e in Event.objects.filter(pk__in=[event.pk for event in events])}
    assert len(stored) == count
    for event in events:
        row = stored[event.pk]
        assert (row.user_id, row.seq, row.type, row.data) == (
            event.user_id,
            event.seq,
            event.type,
            event.data,
        )
    assert seqs(users[0])[:3] == [1, 2, 3] and seqs(users[0])[-1] == 1 + (count + 2) // 3
    assert seqs(users[1]) == list(range(1, len(seqs(users[1])) + 1))
    assert Event.objects.get(user=users[2], seq=1).data == {"i": 2, "note": 'say "hi"\\n'}
    message = async_to_sync(layer.receive)(channel)
    assert message["seq"] == 1 and '"i":1' in message["text"]
    async_to_sync(layer.group_discard)(group_for(users[1].pk), channel)
