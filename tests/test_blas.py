"""Tests of the package's BLAS thread limits (``bowlrp._blas``): set and restored whatever the threads do."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from bowlrp import _blas


def blas_thread_counts():
    """The thread count of every loaded BLAS library, read afresh (not through the package's controller)."""
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def _run_in_threads(steps):
    """Run ``steps``, a list of ``(thread name, action)``, one after the other, each in its own live thread.

    Actions: ``"enter"`` and ``"exit"`` of ``one_thread`` (nested
    entries of one thread allowed), ``"check"`` records the BLAS thread
    counts.  All threads stay alive until the end, so that threadpoolctl's
    rule (only the thread that set OpenBLAS's limit may change it while it
    lives) applies.
    """
    names = sorted({name for name, _ in steps})
    todo = {n: [] for n in names}
    seen = []
    go = {n: threading.Event() for n in names}
    done = threading.Event()
    stop = threading.Event()

    def worker(name):
        stack = []
        while not stop.is_set():
            if not go[name].wait(0.01):
                continue
            go[name].clear()
            action = todo[name].pop(0)
            if action == "enter":
                ctx = _blas.one_thread()
                ctx.__enter__()
                stack.append(ctx)
            elif action == "exit":
                stack.pop().__exit__(None, None, None)
            else:
                seen.append(blas_thread_counts())
            done.set()

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    try:
        for name, action in steps:
            todo[name].append(action)
            done.clear()
            go[name].set()
            assert done.wait(10), f"thread {name} did not {action}"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    return seen


@pytest.mark.parametrize(
    "steps",
    [
        # the holder leaves first: the other thread ends unlimited, and nobody leaves BLAS limited
        [("a", "enter"), ("b", "enter"), ("a", "check"), ("a", "exit"), ("b", "exit")],
        [("a", "enter"), ("b", "enter"), ("b", "exit"), ("a", "check"), ("a", "exit")],
        # nested contexts of one thread: the inner exit keeps the limit
        [("a", "enter"), ("a", "enter"), ("a", "exit"), ("a", "check"), ("a", "exit")],
        # a thread entering after the holder left takes the limit over
        [("a", "enter"), ("a", "exit"), ("b", "enter"), ("b", "check"), ("b", "exit"), ("a", "enter"),
         ("a", "exit")],
    ],
    ids=["holder-leaves-first", "holder-leaves-last", "nested", "handed-over"],
)
def test_blas_limit_is_restored_whatever_the_order(steps):
    """BLAS runs on one thread while the holder of the limit is inside, and as before once all have left."""
    before = blas_thread_counts()
    seen = _run_in_threads(steps)
    assert all(counts == [1] * len(before) for counts in seen)
    assert blas_thread_counts() == before
    assert _blas._HOLDER["owner"] is None


def test_limit_sets_the_count_and_restores_it_and_current_reads_it():
    """``limit(1)`` puts NumPy's BLAS on one thread for its products and back after; ``current`` sees both."""
    before = blas_thread_counts()
    assert before, "NumPy's BLAS is loaded with NumPy"
    a = np.arange(64.0).reshape(8, 8)
    with _blas.limit(1):
        assert blas_thread_counts() == [1] * len(before)
        assert _blas.current() == 1
        inside = a @ a
    assert blas_thread_counts() == before
    assert _blas.current() == max(before)
    np.testing.assert_array_equal(inside, a @ a)


def test_one_thread_inside_a_limit_restores_the_limit():
    """The encoders' measured count (``limit``) holds again once a nested ``one_thread`` has left."""
    before = blas_thread_counts()
    if max(before) < 2:
        pytest.skip("NumPy's BLAS runs on one thread here")
    with _blas.limit(2):
        with _blas.one_thread():
            assert _blas.current() == 1
        assert _blas.current() == 2
    assert blas_thread_counts() == before
