"""The tasks one transaction queues go to Huey together after commit (project/tasking.py), one
LPUSH for all of them on Redis (project/huey.py), with Django's on_commit rules: nothing on
rollback, nothing from a rolled-back savepoint."""

import logging
import uuid

import pytest
from django.conf import settings
from django.db import transaction

from project import tasking
from project.huey import OutageTolerantRedisHuey

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "realtime.tasks.send_offline_notices"


@pytest.fixture
def sent(monkeypatch):
    """Each call of tasking.enqueue_all, as the list of (name, args) it was given."""
    calls: list[list[tuple]] = []
    monkeypatch.setattr(
        tasking, "enqueue_all", lambda queued: calls.append([(n, a) for n, a, _eta in queued])
    )
    return calls


def test_one_transactions_tasks_go_in_one_call_after_commit(sent):
    with transaction.atomic():
        tasking.enqueue_on_commit(TASK, [1])
        transaction.on_commit(lambda: None)  # another hook between them
        tasking.enqueue_on_commit(TASK, [2])
        tasking.enqueue_on_commit(TASK, [3])
        assert sent == []
    assert sent == [[(TASK, ([1],)), (TASK, ([2],)), (TASK, ([3],))]]


def test_a_rolled_back_transaction_queues_nothing(sent):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasking.enqueue_on_commit(TASK, [1])
        raise RuntimeError
    assert sent == []


def test_a_rolled_back_savepoint_drops_only_its_own_tasks(sent):
    with transaction.atomic():
        tasking.enqueue_on_commit(TASK, [1])
        with pytest.raises(RuntimeError), transaction.atomic():
            tasking.enqueue_on_commit(TASK, [2])
            raise RuntimeError
        with transaction.atomic():
            tasking.enqueue_on_commit(TASK, [3])
        tasking.enqueue_on_commit(TASK, [4])
    assert sorted(entry for call in sent for entry in call) == [
        (TASK, ([1],)),
        (TASK, ([3],)),
        (TASK, ([4],)),
    ]


def test_a_rolled_back_savepoint_that_opened_the_batch_loses_nothing_after_it(sent):
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            tasking.enqueue_on_commit(TASK, [1])
            raise RuntimeError
        tasking.enqueue_on_commit(TASK, [2])
    assert sent == [[(TASK, ([2],))]]


def test_each_transaction_has_its_own_batch(sent):
    for number in (1, 2):
        with transaction.atomic():
            tasking.enqueue_on_commit(TASK, [number])
    assert sent == [[(TASK, ([1],))], [(TASK, ([2],))]]


def test_outside_a_transaction_a_task_is_queued_at_once(sent):
    tasking.enqueue_on_commit(TASK, [1])
    assert sent == [[(TASK, ([1],))]]


def _redis_huey(url: str) -> OutageTolerantRedisHuey:
    huey = OutageTolerantRedisHuey(f"test-enqueue-many-{uuid.uuid4().hex}", url=url)
    huey._registry.register(tasking.HUEY._registry.string_to_task(TASK))
    return huey


@pytest.mark.redis
def test_enqueue_many_is_one_lpush_in_queue_order():
    huey = _redis_huey(settings.REDIS_URL)
    task_class = tasking.HUEY._registry.string_to_task(TASK)
    tasks = [task_class(([number],), {}) for number in range(3)]
    commands = []
    connection = huey.storage.conn
    real = connection.execute_command

    def counting(*args, **kwargs):
        commands.append(args[0])
        return real(*args, **kwargs)

    connection.execute_command = counting
    try:
        huey.enqueue_many(tasks)
        assert commands == ["LPUSH"]
        popped = [huey.dequeue() for _ in tasks]
        assert [task.id for task in popped] == [task.id for task in tasks]  # first in, first out
        assert [task.args for task in popped] == [([0],), ([1],), ([2],)]
    finally:
        huey.flush()


def test_enqueue_many_with_redis_away_logs_and_returns(caplog):
    huey = _redis_huey("redis://127.0.0.1:1/0")  # nothing listens on port 1
    task_class = tasking.HUEY._registry.string_to_task(TASK)
    with caplog.at_level(logging.ERROR, logger="project.huey"):
        huey.enqueue_many([task_class(([1],), {}), task_class(([2],), {})])
    assert "could not enqueue 2 tasks (send_offline_notices" in caplog.text
