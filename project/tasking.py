"""The one way actions queue background work: by task name, after commit.

Actions never import task modules (the tasks import the actions they call, at the top, so the
import graph stays acyclic); they name the task. Task modules are registered with Huey when the
app registry is ready (marketplace.apps), in every process, so a name always resolves; a test
checks every name used in the code against the registry.
"""

from datetime import datetime

from django.db import transaction
from huey.contrib.djhuey import HUEY
from huey.utils import normalize_time


def enqueue(task_name: str, *args: object, eta: datetime | None = None) -> None:
    """Queues `task_name(*args)` now (at `eta` when given)."""
    task_class = HUEY._registry.string_to_task(task_name)
    # As TaskWrapper.schedule does: Huey compares etas as naive UTC.
    when = normalize_time(eta, None, HUEY.utc) if eta is not None else None
    HUEY.enqueue(task_class(args, {}, eta=when))


def enqueue_on_commit(task_name: str, *args: object, eta: datetime | None = None) -> None:
    """Queues `task_name(*args)` once the caller's transaction commits; nothing on rollback."""
    transaction.on_commit(lambda: enqueue(task_name, *args, eta=eta))


def is_registered(task_name: str) -> bool:
    return task_name in HUEY._registry._registry
