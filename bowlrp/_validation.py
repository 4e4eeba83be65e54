"""Input validation shared by the image-level stages.

Images enter the library as a *batch*: a list or tuple of arrays, or one
stacked array.  Each image is either grayscale ``(H, W)`` or RGB colour
``(H, W, 3)``.  Intensities are read by dtype: floating point images lie in
``[0, 1]``, ``uint8`` images in ``0..255`` and other integer images must also
lie in ``0..255``.
"""

import math
import numbers
import warnings

import cv2
import numpy as np
from sklearn.utils import check_scalar

__all__ = ["check_images", "images_to_uint8_gray", "check_number", "check_int", "check_choice", "resolve_seed",
           "InvalidParameterError", "resolve_targets"]

_ONE_IMAGE_HINT = "pass a list of images or a stack; for one image use images[None]"


def _describe(name, index):
    return name if index is None else f"{name}[{index}]"


def _check_dtype(dtype, where):
    """Raise a TypeError unless ``dtype`` is a real integer or floating dtype."""
    kind = dtype.kind
    if kind == "b":
        raise TypeError(
            f"{where} has dtype bool; images must hold intensities. "
            "Convert a mask with mask.astype(np.uint8) * 255 (or .astype(float))."
        )
    if kind == "c":
        raise TypeError(
            f"{where} has complex dtype {dtype}; images must be real. "
            "Pass np.abs(img) or img.real if that is what you mean."
        )
    if kind in "OUSV" or kind not in "uif":
        raise TypeError(
            f"{where} has non-numeric dtype {dtype}; images must be arrays of "
            "integers (0..255) or floats (0..1). Convert them with np.asarray(img, dtype=float)."
        )


def _check_values(arr, where):
    """Check finiteness and the intensity range of an array of images."""
    if arr.size == 0:
        return
    kind = arr.dtype.kind
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(
                f"{where} contains NaN or inf values; replace them (e.g. np.nan_to_num) before calling."
            )
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{where} is a float image with values in [{lo:g}, {hi:g}], outside [0, 1]; "
                "float images are read as intensities in [0, 1]. Rescale them "
                "(e.g. img / 255 for 0..255 data) or pass them as uint8."
            )
    elif kind in "iu" and arr.dtype != np.uint8:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{where} is an integer image ({arr.dtype}) with values in [{lo}, {hi}], "
                "outside 0..255; integer images are read as 8-bit intensities. "
                "Rescale them to 0..255 or pass floats in [0, 1]."
            )


class ChannelsFirstWarning(UserWarning):
    """A stack of 3 or 4 images that looks like one channels-first colour image."""


def _planes_alike(X):
    """Whether the planes of a (3 or 4, H, W) stack correlate like the channels of one photograph.

    The colour planes of scikit-image's photographs correlate pixel by pixel
    with a mean of 0.76 to 0.96 (smallest pair 0.5 to 0.94); different images,
    or tiles cut from different places, hardly at all.
    """
    planes = np.asarray(X[:3], dtype=np.float64).reshape(3, -1)[:, :: max(1, X[0].size // 4096)]
    sd = planes.std(1)
    if (sd == 0).any():
        return False
    c = np.corrcoef(planes)
    pairs = np.array([c[0, 1], c[0, 2], c[1, 2]])
    return bool(pairs.mean() > 0.6 and pairs.min() > 0.3)


def _check_one_shape(img, where, allow_color):
    """Validate the shape of one image; return it with a singleton channel squeezed."""
    if img.ndim == 3:
        channels = img.shape[2]
        if channels == 1:
            img = img[:, :, 0]
        elif channels != 3:
            hint = " Drop the alpha channel with img[..., :3]." if channels == 4 else ""
            raise ValueError(
                f"{where} has shape {img.shape}: colour images must have 3 (RGB) channels, "
                f"got {channels}.{hint}"
            )
        elif not allow_color:
            raise ValueError(
                f"{where} is a colour image of shape {img.shape} but grayscale (H, W) images "
                "are required here; convert it, e.g. with images_to_uint8_gray."
            )
    elif img.ndim != 2:
        raise ValueError(
            f"{where} has {img.ndim} dimension(s) (shape {img.shape}); each image must be "
            "(H, W) grayscale" + (" or (H, W, 3) colour." if allow_color else ".")
        )
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{where} is empty (shape {img.shape}); every image needs at least one row and column.")
    return img


def check_images(X, *, allow_color=True, name="images"):
    """Validate a batch of images and return it as a list of arrays.

    Parameters
    ----------
    X : list or tuple of ndarray, or ndarray
        The batch: a sequence of ``(H, W)`` grayscale or ``(H, W, 3)`` RGB images
        (sizes may differ), or a stack of shape ``(n, H, W)`` or ``(n, H, W, 3)``.
        A trailing channel axis of length 1 is squeezed.  Float images hold
        intensities in ``[0, 1]``; integer images in ``0..255``.
    allow_color : bool, default=True
        Whether ``(H, W, 3)`` images are accepted.
    name : str, default="images"
        Name of the argument used in error messages.

    Returns
    -------
    images : list of ndarray
        One array per image, ``(H, W)`` or ``(H, W, 3)``.  The input arrays are
        returned as they are (views for a stack); nothing is copied.

    Raises
    ------
    TypeError
        For a batch that is not a list, tuple or array, and for images with a
        bool, complex or non-numeric dtype.
    ValueError
        For a single 2-D image passed where a batch is expected, an empty
        batch, images of the wrong dimensionality or channel count, empty
        images, NaN or inf values, and intensities out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp._validation import check_images
    >>> imgs = check_images(np.zeros((2, 32, 40), dtype=np.uint8))
    >>> len(imgs), imgs[0].shape
    (2, (32, 40))
    >>> check_images(np.zeros((32, 40)))
    Traceback (most recent call last):
    ...
    ValueError: images is a single 2-D array of shape (32, 40); pass a list of images or a stack; for one image use images[None]
    """
    if isinstance(X, np.ndarray):
        if X.ndim == 2:
            raise ValueError(f"{name} is a single 2-D array of shape {X.shape}; {_ONE_IMAGE_HINT}")
        if X.ndim not in (3, 4):
            raise ValueError(
                f"{name} is an array with {X.ndim} dimension(s) (shape {X.shape}); expected a stack "
                f"of shape (n, H, W) or (n, H, W, 3). For a single image, {_ONE_IMAGE_HINT.split('; ')[1]}."
            )
        if X.ndim == 3 and X.shape[-1] == 3 and X.shape[1] > 3:
            raise ValueError(
                f"{name} has shape {X.shape}, which looks like a single colour image (H, W, 3); "
                f"{_ONE_IMAGE_HINT}. (To pass {X.shape[0]} grayscale images of width 3, pass a list.)"
            )
        if X.ndim == 4 and X.shape[1] in (1, 3, 4) and X.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"{name} has shape {X.shape}, which looks like channels-first images (n, C, H, W); bowlrp "
                f"takes channels last, (n, H, W, 3): pass np.moveaxis({name}, 1, -1)."
            )
        if X.shape[0] == 0:
            raise ValueError(f"{name} is an empty batch (shape {X.shape}); pass at least one image.")
        _check_dtype(X.dtype, name)
        if X.ndim == 3 and X.shape[0] in (3, 4) and min(X.shape[1:]) > 4 and _planes_alike(X):
            warnings.warn(
                f"{name} has shape {X.shape} and is read as {X.shape[0]} grayscale images, but its planes are "
                "as alike as the channels of one colour image. For one channels-first colour image pass "
                f"np.moveaxis({name}, 0, -1)[None]; to mean {X.shape[0]} images and silence this, pass a list.",
                ChannelsFirstWarning, stacklevel=3,
            )
        # The shape check is the same for every image of a stack: do it once.
        first = _check_one_shape(X[0], f"{name}[0]", allow_color)
        _check_values(X, name)
        if first.ndim == 2 and X.ndim == 4:  # squeeze a singleton channel axis
            X = X[..., 0]
        return list(X)

    if isinstance(X, (str, bytes)) or not isinstance(X, (list, tuple)):
        raise TypeError(
            f"{name} must be a list or tuple of images or a stacked ndarray, got {type(X).__name__}."
        )
    if len(X) == 0:
        raise ValueError(f"{name} is an empty batch; pass at least one image.")
    if all(isinstance(x, numbers.Number) for x in X):
        raise ValueError(f"{name} is a flat sequence of numbers, not a batch of images; {_ONE_IMAGE_HINT}")

    images = []
    for i, img in enumerate(X):
        where = _describe(name, i)
        if isinstance(img, (str, bytes)):
            raise TypeError(f"{where} is a {type(img).__name__}; load image files first (e.g. with cv2.imread).")
        try:
            arr = np.asarray(img)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{where} could not be read as an array ({exc}); each image must be rectangular.") from exc
        _check_dtype(arr.dtype, where)
        arr = _check_one_shape(arr, where, allow_color)
        _check_values(arr, where)
        images.append(arr)
    return images


def images_to_uint8_gray(img):
    """Convert one validated image to an 8-bit grayscale ``(H, W)`` array.

    Parameters
    ----------
    img : ndarray of shape (H, W) or (H, W, 3)
        An image as returned by :func:`check_images`: floats in ``[0, 1]`` or
        integers in ``0..255``; colour channels in RGB order.

    Returns
    -------
    gray : ndarray of shape (H, W), dtype uint8
        Colour is converted with ``cv2.cvtColor(..., cv2.COLOR_RGB2GRAY)``
        (``0.299 R + 0.587 G + 0.114 B``); float intensities are multiplied by
        255 and rounded.  A contiguous ``uint8`` grayscale input is returned
        unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp._validation import images_to_uint8_gray
    >>> images_to_uint8_gray(np.full((2, 2), 0.5))
    array([[128, 128],
           [128, 128]], dtype=uint8)
    """
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.dtype.kind == "f":
        if img.ndim == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2GRAY)
        gray = np.rint(np.clip(img * 255.0, 0, 255)).astype(np.uint8)
    else:
        gray = np.ascontiguousarray(img, dtype=np.uint8) if img.dtype != np.uint8 else img
        if gray.ndim == 3:
            gray = cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_RGB2GRAY)
    if gray.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    return np.ascontiguousarray(gray)


class InvalidParameterError(ValueError, TypeError):
    """A parameter of the wrong type or out of its range.

    Both a ``ValueError`` and a ``TypeError``, as scikit-learn's own
    ``InvalidParameterError``: callers may catch either.
    """


def check_number(value, name, *, low=None, high=None, low_open=False, high_open=False, integer=False,
                 allow_none=False):
    """Validate one scalar parameter with :func:`sklearn.utils.check_scalar`; return it as float or int.

    Booleans, NaN and (unless ``high`` allows it) infinities are refused, which
    ``check_scalar`` alone lets through.

    Parameters
    ----------
    value : object
    name : str
        The parameter's name, used in the message.
    low, high : number or None
        Bounds; ``None`` leaves that side open.
    low_open, high_open : bool
        Whether the bound itself is excluded.
    integer : bool
        Require an integer (``numbers.Integral``).
    allow_none : bool
        Accept ``None`` (returned as is).

    Raises
    ------
    InvalidParameterError
        With the parameter's name and the valid range.

    Examples
    --------
    >>> from bowlrp._validation import check_number
    >>> check_number(3, "n_words", low=1, integer=True)
    3
    >>> check_number(-1.0, "epsilon", low=0)
    Traceback (most recent call last):
    ...
    bowlrp._validation.InvalidParameterError: epsilon == -1.0, must be >= 0.
    """
    if value is None and allow_none:
        return None
    kind = numbers.Integral if integer else numbers.Real
    what = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, kind):
        extra = " or None" if allow_none else ""
        raise InvalidParameterError(f"{name} must be {what}{extra}, got {value!r}")
    if not integer and math.isnan(value):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    if not integer and math.isinf(value) and not (high is not None and math.isinf(high) and not high_open):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    closed = (low is not None and not low_open, high is not None and not high_open)
    bounds = {(True, True): "both", (True, False): "left", (False, True): "right", (False, False): "neither"}
    try:
        check_scalar(value, name, kind, min_val=low, max_val=high, include_boundaries=bounds[closed])
    except (TypeError, ValueError) as err:
        raise InvalidParameterError(str(err)) from None
    return int(value) if integer else float(value)


def check_int(owner, name, low, allow_none=False):
    """Validate the integer parameter ``owner.<name> >= low`` (or None if allowed)."""
    check_number(getattr(owner, name), name, low=low, integer=True, allow_none=allow_none)


def check_choice(value, name, valid):
    """Raise an :class:`InvalidParameterError` listing ``valid`` unless ``value`` is one of them."""
    try:
        ok = value in valid
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        raise InvalidParameterError(f"unknown {name} {value!r}; valid values of {name} are {list(valid)}")
    return value


def resolve_seed(random_state):
    """One integer seed from ``random_state`` (None, an int, a RandomState or a Generator).

    Every stochastic step of bowlrp derives its streams from this seed, so a
    job split into chunks draws the same numbers as the whole.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    raise TypeError(
        f"random_state must be None, an int, a RandomState or a Generator, got {type(random_state).__name__}"
    )


def resolve_targets(classes, scores, target):
    """Which output to explain for each input, with which sign, and the label explained.

    One convention for every classifier bowlrp explains (kernel SVMs,
    scikit-learn's models, the CNN):

    * two classes, one decision function ``f``: ``target=None`` or
      ``classes[1]`` explains ``f(x)`` (positive relevance speaks for
      ``classes[1]``); ``classes[0]`` explains ``-f(x)``;
    * more classes, one output per class: ``target=None`` explains the
      predicted class (the largest output), a label its own output.

    Parameters
    ----------
    classes : ndarray (n_classes,)
        Sorted class labels (``classes_``).
    scores : ndarray (n, n_outputs)
        The decision functions; one column for two classes.
    target : None, a label, or one label per input

    Returns
    -------
    rows : ndarray (n,) of intp
        The output column explained.
    signs : ndarray (n,) of float
        ``+1``, or ``-1`` where a binary model is explained for ``classes[0]``.
    labels : ndarray (n,)
        The class explained for each input.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp._validation import resolve_targets
    >>> rows, signs, labels = resolve_targets(np.array(["a", "b"]), np.zeros((2, 1)), "a")
    >>> rows.tolist(), signs.tolist(), labels.tolist()
    ([0, 0], [-1.0, -1.0], ['a', 'a'])
    """
    classes = np.asarray(classes)
    scores = np.asarray(scores)
    n = scores.shape[0]
    binary = len(classes) == 2 and scores.shape[1] == 1
    if target is None:
        if binary:
            return np.zeros(n, dtype=np.intp), np.ones(n), np.repeat(classes[1], n)
        rows = np.argmax(scores, axis=1).astype(np.intp)
        return rows, np.ones(n), classes[rows]
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.repeat(t, n)
    if t.shape != (n,):
        raise ValueError(f"target must be one label or one label per input ({n}), got shape {t.shape}")
    unknown = ~np.isin(t, classes)
    if unknown.any():
        raise ValueError(f"target {t[unknown][:1].tolist()[0]!r} is not a class of this model; classes are "
                         f"{classes.tolist()}")
    pos = np.searchsorted(classes, t).astype(np.intp)
    if binary:
        return np.zeros(n, dtype=np.intp), np.where(pos == 1, 1.0, -1.0), t
    return pos, np.ones(n), t
