"""Input checks and the joblib/tqdm loop shared by the evaluation measures."""

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .._backend import to_numpy
from .._validation import check_choice, check_images, check_number, resolve_seed  # noqa: F401  (re-exported)

__all__ = ["check_heatmaps", "check_images_list", "map_chunks", "select_scores", "chunks"]


def check_images_list(images, name="images"):
    """Validated images as a list of arrays (no copies), see :func:`bowlrp._validation.check_images`."""
    return check_images(images, allow_color=True, name=name)


def check_heatmaps(heatmaps, shapes=None, name="heatmaps"):
    """Return ``heatmaps`` as a list of finite float64 (H, W) NumPy arrays.

    ``heatmaps`` may be a list of 2-D arrays, a stack (n, H, W) or an
    :class:`bowlrp.Explanation` (its ``pixels`` are used).  When ``shapes``
    (a list of image shapes) is given, each map must match its image.
    """
    if hasattr(heatmaps, "pixels"):
        heatmaps = heatmaps.pixels
        if heatmaps is None:
            raise ValueError(f"{name}: the Explanation has no pixel relevance")
    if isinstance(heatmaps, np.ndarray) and heatmaps.ndim == 2:
        raise ValueError(f"{name} must be a batch of maps; got one 2-D map, wrap it in a list")
    if not isinstance(heatmaps, (list, tuple, np.ndarray)) and not hasattr(heatmaps, "__len__"):
        raise TypeError(f"{name} must be a list of (H, W) arrays, got {type(heatmaps).__name__}")
    out = []
    for i, h in enumerate(heatmaps):
        h = np.asarray(to_numpy(h), dtype=np.float64)
        if h.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D (H, W) map, got shape {h.shape}")
        if not np.isfinite(h).all():
            raise ValueError(f"{name}[{i}] contains NaN or infinite values")
        if shapes is not None and h.shape != tuple(shapes[i][:2]):
            raise ValueError(f"{name}[{i}] has shape {h.shape} but its image has shape {tuple(shapes[i][:2])}")
        out.append(h)
    if not out:
        raise ValueError(f"{name} is empty")
    if shapes is not None and len(out) != len(shapes):
        raise ValueError(f"got {len(out)} {name} for {len(shapes)} images; pass one map per image")
    return out


def check_positive_int(value, name, lo=1):
    """``value`` as an int ``>= lo`` (:func:`bowlrp._validation.check_number`)."""
    return check_number(value, name, low=lo, integer=True)


def select_scores(scores, target, n):
    """Pick one score per input from a decision function's output.

    ``scores`` of shape (n,) is returned as it is (``target`` must be None);
    for shape (n, n_classes) ``target`` gives the column, one int or one per input.
    """
    s = np.asarray(to_numpy(scores), dtype=np.float64)
    if s.ndim == 1:
        if target is not None:
            raise ValueError("target applies to multi-column scores only; the function returns one score per image")
        return s
    if s.ndim != 2 or s.shape[0] != n:
        raise ValueError(f"the model returned scores of shape {s.shape} for {n} inputs")
    if target is None:
        raise ValueError(
            f"the model returns {s.shape[1]} scores per input; pass target= (a column index, "
            "or one per input) to say which one to track"
        )
    t = np.broadcast_to(np.asarray(target, dtype=np.intp), (n,))
    return s[np.arange(n), t]


def chunks(n, size):
    """Index ranges ``[a, b)`` of at most ``size`` items covering ``range(n)``."""
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def map_chunks(func, args, n_jobs=None, verbose=True, desc=None, unit="batch"):
    """``[func(*a) for a in args]`` with joblib (``n_jobs``) and a tqdm progress bar."""
    args = list(args)
    if n_jobs in (None, 1) or len(args) <= 1:
        return [func(*a) for a in tqdm(args, desc=desc, unit=unit, disable=not verbose)]
    gen = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(func)(*a) for a in args)
    return list(tqdm(gen, total=len(args), desc=desc, unit=unit, disable=not verbose))
