"""BLAS threads for the encoders' matrix products, chosen by measurement."""

import time

import numpy as np

from .._blas import current, limit
from .._pool import run_all

__all__ = ["blas_threads", "measured_threads", "task_threads", "map_tasks"]

_MEASURED = {}  # (dtype, rows, inner, cols) -> (threads, when)
_MAX_AGE = 300.0  # seconds before a choice is measured again (load changes)


def measured_threads(dtype, inner, cols, rows=2048, repeat=3):
    """The faster of one BLAS thread and the current setting for an ``(rows, inner) @ (inner, cols)`` product.

    Measured once per shape and process (again after five minutes): on a
    shared machine, or right after scikit-learn's OpenMP k-means, threaded
    BLAS was measured up to 20x slower than one thread; on an idle one it is
    up to twice as fast.  Ties go to one thread.
    """
    key = (np.dtype(dtype).name, int(rows), int(inner), int(cols))
    hit = _MEASURED.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[1] < _MAX_AGE:
        return hit[0]
    n_max = current()
    if n_max <= 1:
        _MEASURED[key] = (1, now)
        return 1
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner)).astype(dtype)
    b = rng.standard_normal((inner, cols)).astype(dtype)
    best = {}
    for n in (1, n_max, 1, n_max):
        with limit(n):
            t0 = time.perf_counter()
            for _ in range(repeat):
                a @ b
            t = time.perf_counter() - t0
        best[n] = min(best.get(n, np.inf), t)
    choice = n_max if best[n_max] < 0.9 * best[1] else 1
    _MEASURED[key] = (choice, now)
    return choice


class blas_threads:
    """Context limiting BLAS threads: ``"auto"`` (:func:`measured_threads` for ``shape``), an int, or None.

    ``shape`` is ``(dtype, inner, cols)`` of the dominant product; without it
    ``"auto"`` means one thread (scikit-learn's EM in ``fit``: many mid-sized
    products, where one thread was never slower).  CuPy arrays: no effect.
    """

    def __init__(self, setting, xp=np, shape=None):
        self.limit = None
        if xp is np and setting is not None:
            if setting == "auto":
                self.limit = 1 if shape is None else measured_threads(*shape)
            else:
                self.limit = int(setting)
        self._ctx = None

    def __enter__(self):
        if self.limit is not None:
            self._ctx = limit(self.limit)
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
        return False


def task_threads(setting, xp, shape):
    """How many Python threads to run independent tasks (image levels) on, with one BLAS thread each.

    ``"auto"``: the number :func:`measured_threads` finds faster for ``shape``
    (NumPy's elementwise passes and SciPy's sparse products release the GIL, so
    the levels of an image run side by side where the cores are free).  An
    int or None: 1 (the int goes to BLAS, see :class:`blas_threads`).
    """
    if xp is not np or setting != "auto":
        return 1
    return measured_threads(*shape)


def map_tasks(fn, tasks, n_threads):
    """``[fn(*t) for t in tasks]``, on ``n_threads`` threads (in order).

    The threads are the process's kept pool of level threads
    (:func:`bowlrp._pool.run_all`), so that each keeps its work arrays
    (:func:`~bowlrp.encoders._buffers.thread_scratch`) from one call to the
    next: with a pool made per call, the sign rules' relevance step faulted
    in 10,000-17,000 fresh pages per image (480x360, the thesis model), 380
    with the kept one, and took 20-40% longer.
    """
    return run_all(fn, tasks, n_threads, "levels")
