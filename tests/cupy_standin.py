"""A strict stand-in for CuPy, so that every device code path runs in tests on machines without a GPU.

Its arrays (:class:`ndarray`) hold a NumPy array but behave like arrays on a
device that NumPy cannot read: whatever would move data to the host, mix host
and device arrays, or hand device data to a NumPy function fails with a
``TypeError``, as CuPy's arrays do or more strictly.  Everything that CuPy
offers and bowlrp uses (array creation, ufuncs, reductions, indexing,
sorting, ``bincount``, ``einsum``, ``linalg``, ``random``,
``lib.stride_tricks.as_strided``, ``asnumpy``, ``get_array_module``,
``cuda.runtime.getDeviceCount``) computes with NumPy underneath, so results
equal NumPy's bit for bit and a test can compare them exactly.

What the stand-in refuses (``TypeError``):

* ``numpy.asarray(a)``, ``numpy.array(a)``, anything that asks for
  ``a.__array__()`` (CuPy's message: "Implicit conversion to a NumPy array is
  not allowed");
* any NumPy function or ufunc given a device array (``np.exp(a)``,
  ``np.concatenate([a, b])``, ``np.isin(a, ...)``): ``__array_function__``
  raises and ``__array_ufunc__ = None``.  *Stricter than CuPy*, which
  forwards such calls to its own function when it has one: bowlrp takes
  every function from the array module of its inputs, so a NumPy call on
  device data is a bug even where CuPy would rescue it.  Only ``np.ndim``,
  ``np.shape`` and ``np.size``, which read no data, are answered;
* arithmetic and comparisons between a device array and a NumPy array of any
  shape, in either order (as CuPy); NumPy *scalars* and Python numbers are
  fine (as CuPy);
* ``operator.index(a)`` (no ``__index__``, as CuPy): a device integer cannot
  silently become a Python index;
* ``repeat`` with a device array of repeats, ``argsort``/``sort`` with a
  ``kind`` other than ``"stable"``, ``lexsort`` of anything but one 2-D
  device array, object dtypes (as CuPy).

What it allows, as CuPy does, and records in :data:`transfers`:

* explicit copies to the host: ``a.get()``, ``asnumpy(a)``, ``a.tolist()``;
* synchronising scalar reads of size-1 arrays: ``float(a)``, ``int(a)``,
  ``bool(a)``, ``a.item()``, ``format(a, spec)``;
* uploads: ``asarray``/``array`` of host data, and NumPy arrays or lists
  used as indices or assigned into a device array (CuPy uploads them
  implicitly).

Inside ``with forbid_host_transfers():`` even the allowed copies to the host
raise :class:`HostTransferError`, for code that must run on the device
without a single synchronising read.  Reductions return 0-d device arrays and
``empty`` returns arrays filled with NaN (or the smallest integer), as
uninitialised device memory is not zero, so code that reads before writing
shows up.  Floating-point warnings are silenced, as GPU kernels raise none.
``repr`` and ``str`` show the values without counting as transfers (they are
for people reading test failures).
"""

import builtins
import contextlib
import operator
import sys
from types import SimpleNamespace

import numpy as np

__all__ = ["ndarray", "asarray", "array", "asnumpy", "get_array_module", "transfers", "forbid_host_transfers",
           "HostTransferError"]

is_standin = True
__version__ = "13.0.0"  # the CuPy interface this models

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
             "array explicitly. (cupy_standin: a device array reached code that needs host data)")


class HostTransferError(RuntimeError):
    """A copy to the host inside :func:`forbid_host_transfers`."""


class TransferLog:
    """What crossed between host and device: ``(what, nbytes)`` per event."""

    def __init__(self):
        self.forbidden = 0
        self.reset()

    def reset(self):
        self.to_host = []
        self.to_device = []

    @property
    def host_bytes(self):
        return builtins.sum(b for _, b in self.to_host)

    @property
    def scalar_reads(self):
        return builtins.sum(1 for what, _ in self.to_host if what == "scalar")

    def _d2h(self, what, arr):
        if self.forbidden:
            raise HostTransferError(f"{what} of a device array of shape {arr.shape} inside forbid_host_transfers()")
        self.to_host.append((what, int(arr.nbytes)))

    def _h2d(self, what, arr):
        self.to_device.append((what, int(getattr(arr, "nbytes", 0))))


#: Every transfer since the last ``transfers.reset()``.
transfers = TransferLog()


@contextlib.contextmanager
def forbid_host_transfers():
    """Make every copy or scalar read from the device raise :class:`HostTransferError`."""
    transfers.forbidden += 1
    try:
        yield
    finally:
        transfers.forbidden -= 1


def _mixed(where):
    return TypeError(f"{where}: got a NumPy array together with device arrays; move it to the device with "
                     "cupy.asarray (or the device data to the host with cupy.asnumpy) first. "
                     "(cupy_standin: CuPy refuses mixing host and device arrays)")


def _unwrap(x, where):
    """Arguments for NumPy: device arrays unwrapped; host arrays refused."""
    t = type(x)
    if t is ndarray:
        return x._a
    if isinstance(x, np.ndarray):
        raise _mixed(where)
    if t is list or t is tuple:
        return t(_unwrap(v, where) for v in x)
    return x


def _wrap(r):
    if isinstance(r, np.ndarray):
        if r.dtype == object:
            raise TypeError("cupy_standin: object arrays do not exist on the device")
        return ndarray._new(r)
    if isinstance(r, np.generic):  # CuPy returns 0-d arrays, never NumPy scalars
        return ndarray._new(np.asarray(r))
    if type(r) is tuple:
        return tuple(_wrap(v) for v in r)
    if type(r) is list:
        return [_wrap(v) for v in r]
    return r


def _call(fn, where, args, kwargs):
    a = _unwrap(args, where)
    k = {key: _unwrap(v, where) for key, v in kwargs.items()}
    with np.errstate(all="ignore"):
        return _wrap(fn(*a, **k))


def _upload(obj, dtype=None, what="asarray"):
    """Host data (NumPy arrays, lists, scalars, possibly holding device arrays) as a fresh host copy."""
    def host(v):
        if type(v) is ndarray:
            return v._a
        if type(v) in (list, tuple):
            return [host(u) for u in v]
        return v
    with np.errstate(all="ignore"):
        a = np.array(host(obj), dtype=dtype, copy=True)
    if a.dtype == object:
        raise ValueError(f"Unsupported dtype object (cupy_standin: {what} of {type(obj).__name__})")
    transfers._h2d(what, a)
    return a


def _index(key):
    """An index for the wrapped array: device arrays unwrapped, host arrays and lists uploaded."""
    if type(key) is tuple:
        return tuple(_index(k) for k in key)
    if type(key) is ndarray:
        return key._a
    if isinstance(key, (np.ndarray, list)):
        return _upload(key, what="index")
    return key


def _operand(other, where):
    if type(other) is ndarray:
        return other._a
    if isinstance(other, np.ndarray):
        raise _mixed(where)
    if isinstance(other, (bool, int, float, complex, np.generic)):
        return other
    return NotImplemented


class _Flags(SimpleNamespace):
    def __getitem__(self, key):
        return getattr(self, {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous",
                              "OWNDATA": "owndata"}.get(key, key))


class _Device:
    id = 0

    def __init__(self, device=0):
        self.id = int(device) if device is not None else 0

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id} (cupy_standin)>"


class ndarray:
    """A device array: a NumPy array that NumPy may not see."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs refuse it; NumPy arrays' operators defer to ours
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = empty(shape, dtype=dtype, order=order)._a

    @classmethod
    def _new(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # ------------------------------------------------------------ interop refused
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        if func in _METADATA and args and type(args[0]) is ndarray:  # read no data: as CuPy, which forwards them
            return func(args[0]._a, *args[1:], **kwargs)
        raise TypeError(f"numpy.{func.__name__} was called with a device array; use the array module of the "
                        "inputs (bowlrp._backend.get_namespace), not numpy. (cupy_standin is stricter than "
                        "CuPy here, which forwards the calls it can)")

    # ------------------------------------------------------------ transfers
    def get(self, stream=None, order="C", out=None):
        transfers._d2h("get", self._a)
        a = np.array(self._a, order=order, copy=True)
        if out is not None:
            out[...] = a
            return out
        return a

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype or arr.shape != self.shape:
            raise ValueError(f"set needs an array of shape {self.shape} and dtype {self.dtype}")
        transfers._h2d("set", arr)
        self._a[...] = arr

    def _scalar(self):
        if self._a.size != 1:
            raise TypeError("only size-1 arrays can be converted to Python scalars")
        transfers._d2h("scalar", self._a)
        return self._a.reshape(()).item()

    def item(self):
        if self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self._scalar()

    def tolist(self):
        transfers._d2h("tolist", self._a)
        return self._a.tolist()

    def __float__(self):
        return float(self._scalar())

    def __int__(self):
        return int(self._scalar())

    def __complex__(self):
        return complex(self._scalar())

    def __bool__(self):
        if self._a.size == 0:
            raise ValueError("The truth value of an empty array is ambiguous")
        if self._a.size > 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        return bool(self._scalar())

    def __format__(self, spec):
        if not spec:
            return str(self)
        return format(self._scalar(), spec)

    def __repr__(self):
        return "standin." + repr(self._a)

    def __str__(self):
        return str(self._a)

    def __copy__(self):
        return ndarray._new(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._new(self._a.copy())

    def __reduce__(self):
        raise TypeError("cupy_standin: pickling a device array would copy it to the host; use asnumpy")

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: int(self._a.size))
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: int(self._a.nbytes))
    T = property(lambda self: ndarray._new(self._a.T))
    real = property(lambda self: ndarray._new(self._a.real))
    imag = property(lambda self: ndarray._new(self._a.imag))
    device = property(lambda self: _Device(0))

    @property
    def flags(self):
        f = self._a.flags
        return _Flags(c_contiguous=f.c_contiguous, f_contiguous=f.f_contiguous, owndata=f.owndata)

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if type(value) is ndarray:
            value = value._a
        elif isinstance(value, (np.ndarray, list)):
            value = _upload(value, what="setitem")
        with np.errstate(all="ignore"):
            self._a[_index(key)] = value

    # ------------------------------------------------------------ methods with CuPy's restrictions
    def argsort(self, axis=-1, kind=None):
        _check_kind(kind)
        return ndarray._new(np.argsort(self._a, axis=axis, kind="stable"))

    def sort(self, axis=-1, kind=None):
        _check_kind(kind)
        self._a.sort(axis=axis, kind="stable")

    def repeat(self, repeats, axis=None):
        return globals()["repeat"](self, repeats, axis)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if casting is not None or subok is not None:
            raise TypeError("casting and subok are not supported (as CuPy)")
        return ndarray._new(self._a.astype(dtype, order=order, copy=copy))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ndarray._new(self._a.reshape(shape, order=order))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ndarray._new(self._a.transpose(*axes))


_METADATA = (np.ndim, np.shape, np.size)  # NumPy functions that only read an array's shape


def _check_kind(kind):
    if kind not in (None, "stable"):
        raise ValueError(f"kind={kind!r}: only stable sorting is supported (as CuPy)")


_METHODS = ("all any argmax argmin argpartition clip conj conjugate copy cumprod cumsum diagonal dot fill flatten max "
            "mean min nonzero prod ravel round squeeze std sum swapaxes take trace var view").split()


def _method(name):
    def m(self, *args, **kwargs):
        return _call(getattr(self._a, name), f"ndarray.{name}", args, kwargs)
    m.__name__ = name
    return m


for _name in _METHODS:
    setattr(ndarray, _name, _method(_name))


def _binary(name, reflected=False, inplace=False):
    op = getattr(operator, name, None) or getattr(operator, name + "_")

    def f(self, other):
        o = _operand(other, f"the {name!r} operator")
        if o is NotImplemented:
            return NotImplemented
        with np.errstate(all="ignore"):
            if inplace:
                op(self._a, o)
                return self
            return _wrap(op(o, self._a) if reflected else op(self._a, o))
    return f


for _name in ("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift").split():
    setattr(ndarray, f"__{_name}__", _binary(_name))
    setattr(ndarray, f"__r{_name}__", _binary(_name, reflected=True))
    setattr(ndarray, f"__i{_name}__", _binary(f"i{_name}", inplace=True))
for _name in ("lt le eq ne gt ge").split():
    setattr(ndarray, f"__{_name}__", _binary(_name))
for _name in ("neg pos abs invert").split():
    setattr(ndarray, f"__{_name}__", (lambda op: lambda self: _wrap(op(self._a)))(getattr(operator, _name)))


# ---------------------------------------------------------------- module functions
def get_array_module(*args):
    """This module if any argument is a device array, else NumPy (as ``cupy.get_array_module``)."""
    return sys.modules[__name__] if builtins.any(type(a) is ndarray for a in args) else np


def asarray(a, dtype=None, order=None, blocking=False):
    """A device array of ``a``: the same array when it is one already (and of ``dtype``), else an upload."""
    if type(a) is ndarray:
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a
        return ndarray._new(a._a.astype(dtype))
    up = _upload(a, dtype)
    return ndarray._new(np.asarray(up, order=order) if order else up)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    if type(obj) is ndarray:
        out = obj._a.astype(dtype or obj.dtype, copy=True)
    else:
        out = _upload(obj, dtype, what="array")
    return ndarray._new(np.array(out, copy=False, ndmin=ndmin) if ndmin else out)


def ascontiguousarray(a, dtype=None):
    return ndarray._new(np.ascontiguousarray(_unwrap(a, "ascontiguousarray"), dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """A host copy of a device array (host data passes through, as in CuPy)."""
    if type(a) is ndarray:
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def empty(shape, dtype=float, order="C"):
    a = np.empty(shape, dtype=dtype, order=order)
    _poison(a)
    return ndarray._new(a)


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    a = np.empty_like(_unwrap(prototype, "empty_like"), dtype=dtype, order=order, shape=shape)
    _poison(a)
    return ndarray._new(a)


def _poison(a):
    """Uninitialised device memory is not zero: fill it with values no computation should keep."""
    if a.dtype.kind == "f" or a.dtype.kind == "c":
        a.fill(np.nan)
    elif a.dtype.kind in "iu":
        a.fill(np.iinfo(a.dtype).min)
    elif a.dtype.kind == "b":
        a.fill(True)


def repeat(a, repeats, axis=None):
    if type(repeats) is ndarray:
        raise ValueError("cupy.ndarray cannot be specified as `repeats` argument (as CuPy)")
    return _call(np.repeat, "repeat", (a, repeats, axis), {})


def argsort(a, axis=-1, kind=None):
    return a.argsort(axis=axis, kind=kind)


def sort(a, axis=-1, kind=None):
    _check_kind(kind)
    return _call(np.sort, "sort", (a,), {"axis": axis, "kind": "stable"})


def lexsort(keys):
    if type(keys) is not ndarray:
        raise TypeError("lexsort takes one 2-D device array of keys (CuPy does not accept a sequence)")
    if keys.ndim != 2:
        raise NotImplementedError("Keys with the rank of three or more is not supported in lexsort (as CuPy)")
    return ndarray._new(np.lexsort(keys._a))


def bincount(x, weights=None, minlength=None):
    if type(x) is not ndarray:
        raise TypeError("bincount takes a device array")
    if x.ndim != 1:
        raise ValueError("object too deep for desired array")
    return _call(np.bincount, "bincount", (x,), {"weights": weights, "minlength": minlength or 0})


_FUNCTIONS = """
abs absolute add all allclose amax amin angle any arange arccos arccosh arcsin arcsinh arctan arctan2 arctanh argmax
argmin argpartition argwhere around array_equal array_split atleast_1d atleast_2d atleast_3d average bitwise_and
bitwise_not bitwise_or bitwise_xor broadcast_arrays broadcast_to cbrt ceil clip column_stack concatenate conj
copysign copy cos cosh count_nonzero cov cross cumprod cumsum deg2rad degrees diag diagonal diff digitize divide
divmod dot dstack einsum equal exp exp2 expand_dims expm1 eye fabs fix flatnonzero flip fliplr flipud float_power
floor floor_divide fmax fmin fmod full full_like greater greater_equal histogram hstack hypot identity imag inner
invert isclose isfinite isin isinf isnan kron ldexp left_shift less less_equal linspace log log10 log1p log2
logaddexp logaddexp2 logical_and logical_not logical_or logical_xor logspace matmul max maximum mean median meshgrid
min minimum mod moveaxis multiply nan_to_num nanargmax nanargmin nanmax nanmean nanmin nanstd nansum nanvar negative
nextafter nonzero not_equal ones ones_like outer pad percentile positive power prod ptp put_along_axis quantile
rad2deg radians ravel real reciprocal remainder reshape right_shift rint roll rollaxis rot90 round searchsorted
sign signbit sin sinc sinh split sqrt square squeeze stack std subtract sum swapaxes take take_along_axis tan tanh
tensordot tile trace transpose tri tril triu true_divide trunc unique unravel_index var vdot vstack where zeros
zeros_like
""".split()

_module = sys.modules[__name__]
for _name in _FUNCTIONS:
    if not hasattr(_module, _name):
        setattr(_module, _name, (lambda n: lambda *a, **k: _call(getattr(np, n), n, a, k))(_name))

# dtypes, constants and helpers that are NumPy's own objects in CuPy too
for _name in ("bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 intp uintp float16 float32 float64 "
              "complex64 complex128 dtype finfo iinfo result_type can_cast promote_types issubdtype ndim shape "
              "size isscalar inf nan pi e newaxis integer floating number signedinteger unsignedinteger "
              "complexfloating generic").split():
    setattr(_module, _name, getattr(np, _name))
int_, float_, complex_ = np.int64, np.float64, np.complex128


def _shape_only(name):
    def f(a, *args, **kwargs):
        return getattr(np, name)(_unwrap(a, name) if type(a) is ndarray else a, *args, **kwargs)
    return f


ndim, shape, size = _shape_only("ndim"), _shape_only("shape"), _shape_only("size")


def _as_strided(x, shape=None, strides=None):
    if type(x) is not ndarray:
        raise TypeError("as_strided takes a device array")
    return ndarray._new(np.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides))


lib = SimpleNamespace(stride_tricks=SimpleNamespace(as_strided=_as_strided))

linalg = SimpleNamespace(**{
    n: (lambda f, n: lambda *a, **k: _call(f, f"linalg.{n}", a, k))(getattr(np.linalg, n), n)
    for n in ("norm cholesky det eigh eigvalsh inv lstsq matrix_power matrix_rank pinv qr slogdet solve svd "
              "tensorinv tensorsolve").split()
})


class _Generator:
    """``cupy.random.Generator``: NumPy's generator, results on the device."""

    def __init__(self, seed=None):
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name):
        if name not in ("random", "standard_normal", "normal", "uniform", "integers", "permutation", "choice",
                        "exponential", "gamma", "beta", "binomial", "poisson", "shuffle"):
            raise AttributeError(name)
        return lambda *a, **k: _call(getattr(self._g, name), f"random.{name}", a, k)


_global_rng = np.random.RandomState(0)


def _seed(seed=None):
    global _global_rng
    _global_rng = np.random.RandomState(seed)


random = SimpleNamespace(
    default_rng=_Generator, Generator=_Generator, seed=_seed,
    **{n: (lambda n: lambda *a, **k: _call(getattr(_global_rng, n), f"random.{n}", a, k))(n)
       for n in ("rand randn random random_sample standard_normal normal uniform randint permutation choice "
                 "shuffle").split()},
)


class _Stream:
    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Event:
    def record(self, stream=None):
        self._t = __import__("time").perf_counter()

    def synchronize(self):
        pass


def _elapsed(start, end):
    return 1e3 * (end._t - start._t)


cuda = SimpleNamespace(
    runtime=SimpleNamespace(getDeviceCount=lambda: 1, deviceSynchronize=lambda: None,
                            getDevice=lambda: 0, runtimeGetVersion=lambda: 12000),
    Device=_Device, Stream=_Stream, Event=_Event, get_elapsed_time=_elapsed, is_available=lambda: True,
)
cuda.Stream.null = _Stream()

