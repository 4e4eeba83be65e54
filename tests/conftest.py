"""Shared fixtures: the device backends the GPU tests run on.

``device`` runs a test twice: on the strict CuPy stand-in of
``tests/cupy_standin.py`` (always, in the default suite) and on real CuPy
(marked ``gpu``, skipped cleanly without CuPy and a CUDA device).  On the
stand-in, bowlrp's backend (``bowlrp._backend``, the only module that knows
about CuPy) is made to see the stand-in as CuPy for the duration of the test
module, so ``get_namespace`` returns it for its arrays and
``CNNClassifier(device="cuda")`` computes with it.
"""

import contextlib

import pytest

import cupy_standin
from bowlrp import _backend


class Device:
    """One backend for device tests: its array module and what can be checked on it."""

    def __init__(self, name, xp):
        self.name = name
        self.xp = xp
        self.standin = name == "standin"

    def __repr__(self):
        return f"Device({self.name!r})"

    def tol(self, tol, gpu=1e-6):
        """``tol`` on the stand-in (NumPy underneath, so results agree to rounding); at least ``gpu`` on a
        real GPU, whose kernels sum and round in other orders."""
        return tol if self.standin else max(tol, gpu)

    def to_device(self, a):
        return self.xp.asarray(a)

    def to_host(self, a):
        return self.xp.asnumpy(a)

    def no_host_transfers(self):
        """Inside: any copy or scalar read from the device fails (checked on the stand-in only)."""
        return cupy_standin.forbid_host_transfers() if self.standin else contextlib.nullcontext()

    def transfers(self):
        """The stand-in's transfer log, reset (None on real CuPy)."""
        if not self.standin:
            return None
        cupy_standin.transfers.reset()
        return cupy_standin.transfers

    def assert_on_device(self, *arrays):
        for a in arrays:
            assert isinstance(a, self.xp.ndarray), f"expected a device array, got {type(a).__name__}"


def _real_cupy():
    if not _backend.cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    import cupy  # noqa: PLC0415

    return cupy


@pytest.fixture(scope="module", params=["standin", pytest.param("cupy", marks=pytest.mark.gpu)])
def device(request):
    """The strict CuPy stand-in, then real CuPy when a GPU is there (see the module docstring)."""
    if request.param == "cupy":
        yield Device("cupy", _real_cupy())
        return
    patch = pytest.MonkeyPatch()
    patch.setattr(_backend, "_CUPY", [cupy_standin])
    try:
        yield Device("standin", cupy_standin)
    finally:
        patch.undo()


@pytest.fixture
def standin():
    """The stand-in installed as bowlrp's CuPy for one test (for tests of the stand-in itself)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_backend, "_CUPY", [cupy_standin])
        cupy_standin.transfers.reset()
        yield cupy_standin
