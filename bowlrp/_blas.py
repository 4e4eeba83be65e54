"""NumPy's BLAS thread count, set in one place for the whole package.

Two contexts, both on one ``threadpoolctl.ThreadpoolController`` per process
(building one scans the loaded libraries, about 3 ms):

* :func:`limit` sets a thread count for the calling thread's products (the
  encoders' measured counts, :mod:`bowlrp.encoders._threads`);
* :func:`one_thread` runs small products on one thread, from any number of
  threads at once (the orientation step, the pixel maps, the kernel models'
  products with few rows).

A threaded OpenBLAS call leaves its worker spinning for about 0.1 s after it
returns, which takes a core from whatever runs next; small products gain
nothing from threads, so they are kept off them.

On CuPy arrays neither context is needed: callers enter them for NumPy only.
"""

import contextlib
import threading

__all__ = ["limit", "one_thread", "current"]

_CONTROLLER = []  # [ThreadpoolController] once built
_HOLDER = {"lock": threading.Lock(), "owner": None}
_DEPTH = threading.local()


def _controller():
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415  (scikit-learn's dependency)

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def limit(n):
    """Context running NumPy's BLAS on ``n`` threads; restored on exit by the thread that entered it.

    threadpoolctl lets only the thread that changed OpenBLAS's setting
    change it back, so this is for one thread's products; use
    :func:`one_thread` where several threads may enter.
    """
    return _controller().limit(limits=int(n), user_api="blas")


def current():
    """The largest thread count of the loaded BLAS libraries (1 without any)."""
    counts = [i["num_threads"] for i in _controller().info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 1


@contextlib.contextmanager
def one_thread():
    """Context that runs NumPy's BLAS on one thread, entered from any thread in any order.

    OpenBLAS's thread count is one setting for the whole process, and
    threadpoolctl lets only the thread that changed it change it back.  So
    the first thread to enter while no thread holds the limit sets it and
    restores it when it leaves its outermost context (with the original
    count it read); a thread entering while another holds it changes
    nothing, and its products run on one thread until the holder leaves.
    Nested contexts of one thread and threads in any order thus never leave
    BLAS on one thread: the levels of :class:`~bowlrp.features.sift.DenseSIFT`
    on its worker threads run inside the limit of the thread that started
    them.  Costs about 38 µs where it takes the limit, 2 µs nested.
    """
    depth = getattr(_DEPTH, "n", 0)
    owner = False
    if depth == 0:
        with _HOLDER["lock"]:
            if _HOLDER["owner"] is None:
                _HOLDER["owner"] = threading.current_thread()
                owner = True
    _DEPTH.n = depth + 1
    try:
        if not owner:
            yield
            return
        try:
            with limit(1):
                yield
        finally:
            with _HOLDER["lock"]:
                _HOLDER["owner"] = None
    finally:
        _DEPTH.n = depth
