"""The one way actions queue background work: by task name, after commit.

Actions never import task modules (the tasks import the actions they call, at the top, so the
import graph stays acyclic); they name the task. Task modules are registered with Huey when the
app registry is ready (marketplace.apps), in every process, so a name always resolves; a test
checks every name used in the code against the registry.

The tasks one transaction queues reach Redis together: one LPUSH of all of them after commit
instead of one round trip each on the committing thread (an acceptance queues its order's
payment deadline, the offline notices and a conversation's notice).
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from huey.contrib.djhuey import HUEY
from huey.utils import normalize_time


def _task(task_name: str, args: tuple, eta: datetime | None):
    task_class = HUEY._registry.string_to_task(task_name)
    # As TaskWrapper.schedule does: Huey compares etas as naive UTC.
    when = normalize_time(eta, None, HUEY.utc) if eta is not None else None
    return task_class(args, {}, eta=when)


type QueuedTask = tuple[str, tuple, datetime | None]  # (task name, arguments, eta)


def enqueue(task_name: str, *args: object, eta: datetime | None = None) -> None:
    """Queues `task_name(*args)` now (at `eta` when given)."""
    enqueue_all([(task_name, args, eta)])


def enqueue_all(queued: list[QueuedTask]) -> None:
    """Queues these tasks now, in one round trip to Redis where Huey can (project.huey)."""
    tasks = [_task(*entry) for entry in queued]
    enqueue_many = getattr(HUEY, "enqueue_many", None)
    if enqueue_many is None:  # a Huey without batching (the embedded SQLite one)
        for task in tasks:
            HUEY.enqueue(task)
    else:
        enqueue_many(tasks)


@dataclass(eq=False)
class _Batch:
    """The tasks queued at one savepoint level of the current transaction, sent by one commit
    hook registered at that level: rolling that savepoint (or the transaction) back drops the
    hook and so the whole batch, exactly as Django drops one hook per task."""

    savepoints: tuple[str, ...]
    queued: list[QueuedTask] = field(default_factory=list)

    def send(self) -> None:
        queued, self.queued = self.queued, []
        enqueue_all(queued)


_BATCH_ATTRIBUTE = "_tasking_batch"


def _current_batch() -> _Batch:
    savepoints = tuple(connection.savepoint_ids)
    batch = getattr(connection, _BATCH_ATTRIBUTE, None)
    if (
        batch is not None
        and batch.savepoints == savepoints
        and any(hook[1] == batch.send for hook in connection.run_on_commit)
    ):
        return batch
    # A new transaction, another savepoint level, or the batch's hook already ran or was
    # dropped by a rollback: a new batch with a hook of its own.
    batch = _Batch(savepoints)
    transaction.on_commit(batch.send)
    setattr(connection, _BATCH_ATTRIBUTE, batch)
    return batch


def enqueue_on_commit(task_name: str, *args: object, eta: datetime | None = None) -> None:
    """Queues `task_name(*args)` once the caller's transaction commits; nothing on rollback."""
    if not connection.in_atomic_block:
        enqueue(task_name, *args, eta=eta)
        return
    _current_batch().queued.append((task_name, args, eta))


def is_registered(task_name: str) -> bool:
    return task_name in HUEY._registry._registry
