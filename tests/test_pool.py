"""The package's kept worker threads (``bowlrp._pool``): order, errors, nesting, fork, and the levels' scratch."""

import multiprocessing
import threading
import time

import numpy as np
import pytest

from bowlrp import _pool
from bowlrp.encoders import _buffers, _threads


def test_results_come_in_task_order_from_the_pool_threads():
    def work(i, delay):
        time.sleep(delay)
        return i, threading.current_thread().name

    out = _pool.run_all(work, [(0, 0.05), (1, 0.0), (2, 0.02), (3, 0.0)], threads=2, name="test-order")
    assert [i for i, _ in out] == [0, 1, 2, 3]
    assert all(name.startswith("bowlrp-test-order_") for _, name in out)


def test_one_thread_or_one_task_runs_inline():
    me = threading.current_thread().name
    assert _pool.run_all(lambda: threading.current_thread().name, [()], threads=4, name="test-inline") == [me]
    assert _pool.run_all(lambda: threading.current_thread().name, [(), ()], threads=1, name="test-inline") == [me, me]


def test_a_failing_task_raises_after_every_task_has_finished():
    """The first failure in task order is raised, and no task is still running when it is."""
    finished = []

    def work(i):
        if i == 1:
            raise ValueError("task 1 failed")
        if i == 3:
            raise KeyError("task 3 failed")
        time.sleep(0.05)
        finished.append(i)

    with pytest.raises(ValueError, match="task 1 failed"):
        _pool.run_all(work, [(i,) for i in range(5)], threads=2, name="test-errors")
    assert sorted(finished) == [0, 2, 4]


def test_a_task_that_maps_tasks_on_its_own_pool_runs_them_inline():
    """A pool worker waiting for tasks queued behind it on the same pool would wait forever; they run inline."""
    def inner(i):
        return i, threading.current_thread().name

    def outer(j):
        return _pool.run_all(inner, [(j,), (j + 10,)], threads=2, name="test-nested")

    out = _pool.run_all(outer, [(0,), (1,), (2,)], threads=2, name="test-nested")
    for (a, na), (b, nb) in out:
        assert b == a + 10 and na == nb  # the inner pair ran on the outer task's own thread


def test_the_pool_is_kept_between_calls():
    first = _pool.shared_pool(2, "test-kept")
    assert _pool.shared_pool(2, "test-kept") is first
    assert _pool.shared_pool(3, "test-kept") is not first


def _child(queue):
    queue.put(_pool.run_all(pow, [(2, 5), (3, 3)], threads=2, name="test-fork"))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_makes_its_own_pool():
    """The parent's pool threads do not exist in a forked child: it starts its own instead of waiting on them."""
    assert _pool.run_all(pow, [(2, 1), (2, 2)], threads=2, name="test-fork") == [2, 4]  # the parent's pool
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue,))
    proc.start()
    try:
        assert queue.get(timeout=60) == [32, 27]
    finally:
        proc.join(60)
    assert proc.exitcode == 0


def test_level_threads_keep_their_scratch_buffers_between_calls():
    """The encoder's level tasks run on the same threads in every call, so their work arrays are reused."""
    def task(barrier):
        barrier.wait(timeout=30)  # both tasks at once: each call uses both threads
        buf = _buffers.thread_scratch(np)("probe", (1024,))
        return threading.get_ident(), buf.__array_interface__["data"][0]

    first = dict(_threads.map_tasks(task, [(threading.Barrier(2),)] * 2, 2))
    second = dict(_threads.map_tasks(task, [(threading.Barrier(2),)] * 2, 2))
    assert len(first) == 2 and threading.get_ident() not in first
    assert first == second  # the same two threads, each with the buffer it had
