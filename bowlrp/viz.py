"""Heatmap rendering: eq. 2.62 normalisation, a diverging colour map, PNG files."""

import math
import os
from numbers import Real

import cv2
import numpy as np

from ._backend import to_numpy
from ._validation import check_images

__all__ = ["normalize_relevance", "heatmap_rgb", "gray_rgb", "save_png", "merge_tiles", "side_by_side"]

# Diverging map in the spirit of matplotlib's "seismic": dark blue, blue,
# white at zero, red, dark red.  Anchors at -1, -0.5, 0, 0.5, 1.
_ANCHORS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
_COLOURS = np.array(
    [[0.0, 0.0, 0.3], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
)


def normalize_relevance(R, scale=None):
    """Scale relevance into [-1, 1] by ``S = max |R|`` (eq. 2.62); zero stays zero.

    Parameters
    ----------
    R : array
        Relevance map(s).
    scale : float or None
        A common ``S`` for several maps (joint scale); ``None`` uses ``max |R|``
        of ``R`` itself (own scale).  An all-zero map stays zero.

    Examples
    --------
    >>> import numpy as np
    >>> R = np.array([[2.0, -1.0], [0.0, 4.0]])
    >>> normalize_relevance(R)  # own scale: S = 4
    array([[ 0.5 , -0.25],
           [ 0.  ,  1.  ]])
    >>> normalize_relevance(R, scale=8.0)  # a scale shared with other maps
    array([[ 0.25 , -0.125],
           [ 0.   ,  0.5  ]])
    """
    R = np.asarray(to_numpy(R), dtype=np.float64)
    if not np.isfinite(R).all():
        raise ValueError("the relevance map contains NaN or infinite values; it cannot be drawn")
    if scale is None:
        S = float(np.max(np.abs(R))) if R.size else 0.0
    else:
        if isinstance(scale, bool) or not isinstance(scale, Real) or not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"scale must be a finite number > 0 (the common max |R| of eq. 2.62), got {scale!r}; "
                "pass scale=None to use each map's own maximum"
            )
        S = float(scale)
    return R / S if S > 0 else np.zeros_like(R)


def heatmap_rgb(R, scale=None):
    """Colour a relevance map: red positive, blue negative, white zero.

    Returns a uint8 array of shape ``R.shape + (3,)`` in RGB order.
    ``scale`` as in :func:`normalize_relevance`.

    Examples
    --------
    >>> import numpy as np
    >>> heatmap_rgb(np.array([-1.0, 0.0, 1.0]))  # dark blue, white, dark red
    array([[  0,   0,  76],
           [255, 255, 255],
           [128,   0,   0]], dtype=uint8)
    >>> heatmap_rgb(np.zeros((64, 48))).shape
    (64, 48, 3)
    """
    r = np.clip(normalize_relevance(R, scale), -1.0, 1.0)
    rgb = np.stack([np.interp(r, _ANCHORS, _COLOURS[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def gray_rgb(image):
    """An image (uint8 or float in [0, 1], gray or RGB) as uint8 RGB.

    The image is validated like every image bowlrp reads
    (:func:`bowlrp._validation.check_images`): a float image must lie in
    ``[0, 1]`` (a 0..255 float image is an error, not a white picture).

    Examples
    --------
    >>> import numpy as np
    >>> gray_rgb(np.array([[0.0, 1.0]]))
    array([[[  0,   0,   0],
            [255, 255, 255]]], dtype=uint8)
    >>> gray_rgb(np.zeros((64, 48), np.uint8)).shape
    (64, 48, 3)
    """
    (img,) = check_images([np.asarray(to_numpy(image))], name="image")
    if img.dtype.kind == "f":
        img = np.round(img * 255)
    img = img.astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def side_by_side(*panels, gap=4):
    """Concatenate RGB panels of equal height horizontally with white gaps of ``gap`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> image, R = np.zeros((32, 32), np.uint8), np.eye(32)
    >>> side_by_side(gray_rgb(image), heatmap_rgb(R)).shape  # 32 + 4 + 32 columns
    (32, 68, 3)
    """
    h = max(p.shape[0] for p in panels)
    out = []
    for k, p in enumerate(panels):
        if p.shape[0] != h:
            raise ValueError("panels must have the same height")
        if k:
            out.append(np.full((h, gap, 3), 255, np.uint8))
        out.append(p)
    return np.concatenate(out, axis=1)


def save_png(path, rgb):
    """Write a uint8 RGB (or gray) array as a PNG file; folders are created.

    Returns ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_png(os.path.join(folder, "maps", "eye.png"), heatmap_rgb(np.eye(8)))
    ...     os.path.basename(path), os.path.getsize(path) > 0
    ('eye.png', True)
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    arr = np.asarray(rgb)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, arr):
        raise OSError(f"could not write PNG file {path!r}")
    return path


def merge_tiles(maps, origins, shape):
    """Merge tile maps into one map by averaging where tiles overlap (Sec. 2.4.3).

    Parameters
    ----------
    maps : sequence of arrays (h_i, w_i)
        Per-tile maps (e.g. ``Explanation.pixels`` of the tiles).
    origins : array of shape (n_tiles, 2)
        (row, col) of each tile's top-left corner in the large image.
    shape : (H, W)
        Shape of the large image.

    Returns
    -------
    ndarray of shape (H, W)
        The average of the tile maps covering each pixel; 0 where none does.

    Examples
    --------
    Two 2 x 2 tiles, one column apart, overlap in the middle column:

    >>> import numpy as np
    >>> merge_tiles([np.ones((2, 2)), 3 * np.ones((2, 2))], [(0, 0), (0, 1)], (2, 4))
    array([[1., 2., 3., 0.],
           [1., 2., 3., 0.]])
    """
    origins = np.asarray(origins)
    if origins.ndim != 2 or origins.shape != (len(maps), 2):
        raise ValueError(f"origins must have shape ({len(maps)}, 2), got {origins.shape}")
    if origins.dtype.kind not in "iuf":
        raise TypeError(f"origins must hold whole pixel positions (integers), got dtype {origins.dtype}")
    if origins.dtype.kind == "f":
        if not np.isfinite(origins).all():
            raise ValueError("origins contain NaN or infinite values; pass whole pixel positions (row, col)")
        if not np.array_equal(origins, np.round(origins)):
            raise ValueError("origins must be whole pixel positions (row, col); got fractional values")
    origins = origins.astype(np.intp)
    total = np.zeros(shape, dtype=np.float64)
    count = np.zeros(shape, dtype=np.float64)
    for m, (r, c) in zip(maps, origins):
        m = np.asarray(to_numpy(m), dtype=np.float64)
        if r < 0 or c < 0 or r + m.shape[0] > shape[0] or c + m.shape[1] > shape[1]:
            raise ValueError(f"tile at ({r}, {c}) of shape {m.shape} does not fit in {tuple(shape)}")
        total[r : r + m.shape[0], c : c + m.shape[1]] += m
        count[r : r + m.shape[0], c : c + m.shape[1]] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)
