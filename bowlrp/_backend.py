"""The one place that knows about NumPy versus CuPy.

Every encoding, kernel and relevance step asks :func:`get_namespace` for the
array module of its inputs and is written once against that module.  CuPy is
optional: it is imported here and nowhere else, lazily, and only when it is
installed.  Arrays are told apart by ``isinstance`` against ``cupy.ndarray``
(never by module names), so the test suite can put a strict stand-in for
CuPy in its place (``tests/cupy_standin.py``, docs/gpu_standin.md) and run
every device path without a GPU.
"""

import numpy as np

__all__ = ["get_namespace", "to_numpy", "asarray", "cupy_available", "namespace_for_device", "DEVICES"]


_CUPY = []  # [module or None] once looked up; the import is tried once per process


def _cupy():
    if not _CUPY:
        try:
            import cupy  # noqa: PLC0415  (optional dependency, imported lazily)
        except Exception:  # ImportError, or a CUDA runtime that fails to load
            cupy = None
        _CUPY.append(cupy)
    return _CUPY[0]


def cupy_available():
    """Return True when CuPy imports and sees at least one CUDA device."""
    cp = _cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_namespace(*arrays):
    """Return the array module (``numpy`` or ``cupy``) of ``arrays``.

    Arrays that are ``None`` or Python scalars are ignored.  Mixing NumPy and
    CuPy arrays raises a ``TypeError`` rather than copying silently.
    """
    cp = _cupy()
    if cp is None:
        return np
    device = host = False
    for a in arrays:
        if isinstance(a, cp.ndarray):
            device = True
        elif isinstance(a, np.ndarray):
            host = True
    if device and host:
        raise TypeError(
            "got a mix of NumPy and CuPy arrays; move all inputs to one device "
            "(cupy.asarray or cupy.asnumpy) before calling"
        )
    return cp if device else np


def to_numpy(a):
    """Return ``a`` as a NumPy array (copying from the GPU when needed)."""
    if isinstance(a, np.ndarray):
        return a
    cp = _cupy()
    if cp is not None and isinstance(a, cp.ndarray):
        return cp.asnumpy(a)
    return np.asarray(a)


def asarray(a, xp, dtype=None):
    """Return ``a`` as an array of module ``xp`` (NumPy or CuPy)."""
    if xp is np:
        return np.asarray(to_numpy(a), dtype=dtype)
    return xp.asarray(a, dtype=dtype)


DEVICES = ("cpu", "cuda")


def namespace_for_device(device):
    """The array module for ``device``: NumPy for ``"cpu"``, CuPy for ``"cuda"`` (which must be usable)."""
    if device == "cpu":
        return np
    if device == "cuda":
        if not cupy_available():
            raise RuntimeError("device='cuda' needs CuPy and a CUDA device; install bowlrp[gpu] or use device='cpu'")
        return _cupy()
    raise ValueError(f"unknown device {device!r}; valid devices: {list(DEVICES)}")
