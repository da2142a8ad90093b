"""The heap policy of socket-holding processes (realtime/heap.py): open sockets' objects are
frozen out of full collections, young garbage is still collected, and a full pass runs on a
schedule so garbage that was frozen is freed after all."""

import asyncio
import gc
import time
import weakref

import pytest
from django.test import override_settings

from realtime import consumers
from realtime.heap import LongLivedHeap


class Node:
    pass


def garbage_cycle() -> weakref.ref:
    """A reference cycle nobody holds: only the cycle collector can free it."""
    node = Node()
    node.me = node
    return weakref.ref(node)


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


@override_settings(REALTIME_FULL_COLLECT_SECONDS=600)
def test_tend_frees_young_cycles_and_freezes_the_rest():
    heap = LongLivedHeap()
    survivor = Node()
    dead = garbage_cycle()

    heap.tend()

    assert dead() is None  # collected before the freeze, not frozen with the live objects
    assert gc.get_freeze_count() > 0
    assert survivor not in gc.get_objects()  # frozen: full collections no longer walk it


@override_settings(REALTIME_FULL_COLLECT_SECONDS=600)
def test_garbage_frozen_with_a_socket_is_freed_by_the_scheduled_full_pass():
    heap = LongLivedHeap()
    node = Node()
    node.me = node
    ref = weakref.ref(node)
    heap.tend()  # frozen while still referenced, like the objects of an open socket
    del node  # the socket closes: its cycle is garbage, but frozen
    gc.collect()
    assert ref() is not None  # the collector skips the permanent generation

    heap.last_full = time.monotonic() - 601
    heap.tend()

    assert ref() is None
    assert gc.get_freeze_count() > 0  # and frozen again afterwards


@override_settings(REALTIME_FULL_COLLECT_SECONDS=0)
def test_switched_off_it_leaves_the_collector_alone():
    LongLivedHeap().tend()
    assert gc.get_freeze_count() == 0


@override_settings(REALTIME_FULL_COLLECT_SECONDS=600)
def test_release_gives_everything_back_to_the_collector():
    heap = LongLivedHeap()
    heap.tend()
    heap.release()
    assert gc.get_freeze_count() == 0


class CountingHeap:
    def __init__(self) -> None:
        self.tended = 0

    def tend(self) -> None:
        self.tended += 1

    def release(self) -> None:
        pass


class FakeConsumer:
    user_id = None

    def __init__(self) -> None:
        self.socket_loop = asyncio.get_running_loop()


async def test_a_connect_storm_freezes_every_so_many_sockets(monkeypatch):
    counting = CountingHeap()
    monkeypatch.setattr(consumers, "heap", counting)
    sockets = consumers.LocalSockets()
    for _ in range(consumers.FREEZE_EVERY_CONNECTS * 2 + 1):
        sockets.add(FakeConsumer())
    sockets.task.cancel()
    assert counting.tended == 2
