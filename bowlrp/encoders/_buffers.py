"""Reused work arrays for the chunk loops of the relevance steps (Fisher pairs, PCA).

A fresh array of a megabyte or more comes from the operating system as new
pages, each faulted in and zeroed on first touch; on a shared virtual machine
that costs more than the arithmetic on it (measured: a 1 MB temporary ~1 ms).
:class:`Scratch` hands out views of buffers kept by name and grown as
needed, so a loop over chunks touches its pages once.  :func:`thread_scratch`
keeps one per thread between calls (the encoder's relevance step runs levels
on threads and calls the PCA step once per chunk of descriptors); the level
threads are kept for the process (:mod:`bowlrp._pool`), so their buffers are
reused from one explanation to the next.  The buffers are bounded by the
chunk sizes of the callers (at most about 16 MiB per thread, the sign
rules' scores).
"""

import math
import threading

import numpy as np

_LOCAL = threading.local()

# internal: the relevance steps of bowlrp.encoders use these
__all__ = []


class Scratch:
    """Reused buffers, one per name, grown as needed: a chunk's temporaries touch no fresh pages.

    ``take(table, idx, name)`` gathers rows into such a buffer (NumPy's
    ``take`` writes into ``out`` without a buffer of its own only in a mode
    other than ``"raise"``; the indices are valid either way).  ``zeros``
    gives a zero array that no caller writes (a contiguous ``0`` operand is
    faster than a broadcast scalar for NumPy's ``maximum``).

    Examples
    --------
    >>> import numpy as np
    >>> s = Scratch(np)
    >>> a = s("a", (2, 3)); a[:] = 1.0
    >>> b = s("a", (3, 2))  # the same memory, another shape
    >>> np.shares_memory(a, b), float(s.zeros((2, 2)).sum())
    (True, 0.0)
    """

    def __init__(self, xp):
        self.xp, self.bufs = xp, {}

    def __call__(self, name, shape, dtype=None):
        xp = self.xp
        dtype = xp.float64 if dtype is None else dtype
        size = math.prod(shape)
        b = self.bufs.get(name)
        if b is None or b.size < size or b.dtype != dtype:
            b = self.bufs[name] = xp.empty(max(size, 1), dtype=dtype)
        return b[:size].reshape(shape)

    def zeros(self, shape):
        size = math.prod(shape)
        b = self.bufs.get(" zeros")
        if b is None or b.size < size:
            b = self.bufs[" zeros"] = self.xp.zeros(max(size, 1), dtype=self.xp.float64)
        return b[:size].reshape(shape)

    def take(self, table, idx, name):
        out = self(name, (len(idx),) + tuple(table.shape[1:]), table.dtype)
        if self.xp is np:
            return np.take(table, idx, axis=0, out=out, mode="clip")
        return self.xp.take(table, idx, axis=0, out=out)


def thread_scratch(xp):
    """The calling thread's :class:`Scratch` for namespace ``xp``, kept between calls."""
    kept = getattr(_LOCAL, "kept", None)
    if kept is None:
        kept = _LOCAL.kept = {}
    s = kept.get(xp)
    if s is None:
        s = kept[xp] = Scratch(xp)
    return s
