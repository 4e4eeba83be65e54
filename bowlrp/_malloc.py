"""Keep freed memory for reuse in the ``bowlrp`` command (glibc's ``mallopt``).

An explanation allocates and frees some hundred MiB of arrays (a 480x360
photograph with the thesis' Fisher-vector model: traces, per-level relevance,
pixel maps).  With glibc's default settings the heap's top goes back to the
system after each call, and the next call touches fresh pages: 12,000-20,000
minor page faults per explanation, measured at 10-25% of its time on a
shared 2-core machine.  Raising the mmap threshold to its maximum (32 MiB on
64-bit) and the trim threshold to 256 MiB (``mallopt(3)``) keeps those pages
for the next call.  The settings hold for the whole process, so the library
never changes them on import; the ``bowlrp`` command, which owns its process,
does.  In a Python program, the same effect comes from the environment
variables ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456``
set before Python starts.
"""

import ctypes
import ctypes.util
import platform

__all__ = []  # used by bowlrp.cli

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 256 << 20


def retain_freed_memory():
    """Set glibc's mmap and trim thresholds so that freed arrays are reused; True when they were set.

    False (nothing changed) where the C library is not glibc.

    Examples
    --------
    >>> isinstance(retain_freed_memory(), bool)
    True
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False
