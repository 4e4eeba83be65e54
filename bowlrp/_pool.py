"""Worker threads kept for the life of the process, shared by the package's threaded loops.

NumPy's loops and SciPy's sparse products release the GIL, so the package
runs independent pieces of work on threads: the exponential kernels' row
ranges (:mod:`bowlrp.svm.kernels`) and the Fisher-vector encoder's levels
(:mod:`bowlrp.encoders._threads`).  A pool made afresh for every call would
start new threads each time, and the work arrays that each thread keeps
between calls (:func:`bowlrp.encoders._buffers.thread_scratch`) would be
allocated, and their pages faulted in, on every call again.  So each pool
is made once per process and kept; a forked child makes its own, since its
parent's threads do not exist there.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["shared_pool", "run_all"]

_POOLS = {}  # (pid, name, threads) -> ThreadPoolExecutor
_LOCK = threading.Lock()


def _prefix(name):
    return f"bowlrp-{name}"


def shared_pool(threads, name):
    """The process's ``ThreadPoolExecutor`` of ``threads`` workers named ``bowlrp-{name}_i``, made on first use."""
    key = (os.getpid(), name, int(threads))
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(int(threads), thread_name_prefix=_prefix(name))
    return pool


def run_all(fn, tasks, threads, name):
    """``[fn(*t) for t in tasks]`` on the shared pool ``name`` of ``threads`` workers, results in order.

    Runs inline for one thread, one task, or when called from a worker of
    that pool (a task that waited for tasks queued behind it could wait
    forever).  Every task has finished when this returns or raises; the
    first failing task's exception (in task order) is raised.

    Examples
    --------
    >>> run_all(pow, [(2, 3), (3, 2), (10, 0)], threads=2, name="example")
    [8, 9, 1]
    """
    tasks = list(tasks)
    if threads <= 1 or len(tasks) <= 1 or threading.current_thread().name.startswith(_prefix(name) + "_"):
        return [fn(*t) for t in tasks]
    futures = [shared_pool(threads, name).submit(fn, *t) for t in tasks]
    wait(futures)
    return [f.result() for f in futures]
