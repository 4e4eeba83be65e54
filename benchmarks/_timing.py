"""Timing helper shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

import time


def best(f, repeat):
    """The fastest of ``repeat`` runs of ``f()``, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)
