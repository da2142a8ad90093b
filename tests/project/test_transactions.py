"""The bounded retry of whole actions on deadlock: retried only when it is safe and useful."""

import psycopg
import pytest
from django.db import OperationalError, transaction

from project import transactions
from project.transactions import retry_on_deadlock


def _deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    return error


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(transactions.time, "sleep", lambda seconds: None)


def test_a_deadlock_victim_runs_again_and_succeeds():
    calls = []

    @retry_on_deadlock
    def action():
        calls.append(1)
        if len(calls) == 1:
            raise _deadlock()
        return "done"

    assert action() == "done"
    assert len(calls) == 2


def test_it_gives_up_after_a_few_attempts():
    calls = []

    @retry_on_deadlock
    def action():
        calls.append(1)
        raise _deadlock()

    with pytest.raises(OperationalError):
        action()
    assert len(calls) == transactions.ATTEMPTS


def test_other_database_errors_are_not_retried():
    calls = []

    @retry_on_deadlock
    def action():
        calls.append(1)
        raise OperationalError("server closed the connection")

    with pytest.raises(OperationalError):
        action()
    assert len(calls) == 1


@pytest.mark.django_db
def test_inside_an_outer_transaction_the_caller_retries_not_us():
    calls = []

    @retry_on_deadlock
    def action():
        calls.append(1)
        raise _deadlock()

    with pytest.raises(OperationalError), transaction.atomic():
        action()
    assert len(calls) == 1
