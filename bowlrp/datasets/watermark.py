"""A planted artefact: a small high-contrast mark pasted into a fixed corner of images.

The thesis' Fisher-vector model recognised horses by a copyright tag in the
bottom-left corner of a fifth of the horse photographs (Ch. 4, Fig. 4.5; Ch. 6).
:func:`stamp_watermark` plants such a mark in any images (toy tiles or
photographs, grayscale or RGB, uint8 or float), :func:`watermark_mask` gives
the pixels it covers, so that the share of relevance a model puts on it can
be measured.

A pattern is a small float array of grey values in [0, 1] (0 black, 1 white);
``NaN`` pixels are left as they are.  Built-in patterns (:data:`WATERMARKS`):

``"tag"``
    A 12 x 12 white label with three black bars (2 px wide, 8 px tall): a
    high-contrast mark with edges at the scales dense SIFT describes, like
    the text of a source tag.
``"big-tag"``
    The tag at twice the size, 24 x 24 (bars 4 px wide): on tiles of 64 to
    102 pixels it covers whole dense-SIFT descriptors (24 to 36 pixels
    across), as the thesis' tag did on its photographs; the mark of
    ``bowlrp demo clever-hans``.
``"checkerboard"``
    A 5 x 5 checkerboard of dark (0.1) pixels, light pixels transparent: the
    mark of :func:`bowlrp.datasets.make_polygons` before ``watermark_pattern``
    existed.  Its 1-pixel squares are finer than dense SIFT's smallest
    Gaussian, so SIFT-based models barely see it.
"""

import numpy as np

__all__ = ["WATERMARKS", "CORNERS", "watermark_pattern", "watermark_box", "watermark_mask", "stamp_watermark"]


def _tag():
    m = np.ones((12, 12))
    for c in (2, 5, 8):
        m[2:10, c:c + 2] = 0.0
    return m


def _checkerboard():
    m = np.full((5, 5), np.nan)
    m[(np.add.outer(np.arange(5), np.arange(5)) % 2) == 0] = 0.1
    return m


#: Built-in patterns by name (grey values in [0, 1]; NaN: transparent).
WATERMARKS = {"tag": _tag(), "big-tag": np.kron(_tag(), np.ones((2, 2))), "checkerboard": _checkerboard()}
for _p in WATERMARKS.values():
    _p.setflags(write=False)

#: Where a mark can sit.
CORNERS = ("bottom-left", "bottom-right", "top-left", "top-right")


def watermark_pattern(pattern="tag"):
    """The pattern as a float array (a copy): a name of :data:`WATERMARKS` or a 2-D array in [0, 1] (NaN: transparent).

    Examples
    --------
    >>> watermark_pattern("tag").shape
    (12, 12)
    """
    if isinstance(pattern, str):
        if pattern not in WATERMARKS:
            raise ValueError(f"unknown watermark pattern {pattern!r}; valid patterns are {list(WATERMARKS)}, "
                             "or pass a 2-D array of grey values in [0, 1] (NaN: transparent)")
        return WATERMARKS[pattern].copy()
    p = np.array(pattern, dtype=np.float64)
    finite = p[np.isfinite(p)]
    if p.ndim != 2 or p.size == 0 or finite.size == 0 or finite.min() < 0 or finite.max() > 1 or np.isinf(p).any():
        raise ValueError("a watermark pattern must be a non-empty 2-D array of grey values in [0, 1] "
                         f"(NaN for transparent pixels); got shape {p.shape}")
    return p


def watermark_box(image_shape, pattern="tag", corner="bottom-left", margin=3):
    """``(rows, cols)`` slices of the mark's bounding box in an image of ``image_shape`` (H, W[, C]).

    The box lies ``margin`` pixels from the two edges of ``corner``.  An image
    too small for the mark and its margins is an error.

    Examples
    --------
    >>> watermark_box((64, 64))  # the 12 x 12 tag, 3 px from the bottom and left edges
    (slice(49, 61, None), slice(3, 15, None))
    >>> watermark_box((64, 80, 3), corner="top-right", margin=0)
    (slice(0, 12, None), slice(68, 80, None))
    >>> watermark_box((16, 16))
    Traceback (most recent call last):
    ...
    ValueError: an image of 16 x 16 pixels is too small for a 12 x 12 watermark 3 px from its edges; use larger images or margin=0
    """
    h, w = watermark_pattern(pattern).shape
    if corner not in CORNERS:
        raise ValueError(f"unknown corner {corner!r}; valid corners are {list(CORNERS)}")
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be an integer >= 0 (pixels), got {margin!r}")
    H, W = int(image_shape[0]), int(image_shape[1])
    if H < h + 2 * margin or W < w + 2 * margin:
        raise ValueError(f"an image of {H} x {W} pixels is too small for a {h} x {w} watermark "
                         f"{margin} px from its edges; use larger images or margin=0")
    r0 = H - margin - h if corner.startswith("bottom") else margin
    c0 = W - margin - w if corner.endswith("right") else margin
    return slice(r0, r0 + h), slice(c0, c0 + w)


def watermark_mask(image_shape, pattern="tag", corner="bottom-left", margin=3):
    """Boolean (H, W) mask of the mark's bounding box: the "mark's area" relevance shares are measured on.

    Examples
    --------
    >>> int(watermark_mask((64, 64)).sum())
    144
    """
    mask = np.zeros((int(image_shape[0]), int(image_shape[1])), dtype=bool)
    mask[watermark_box(image_shape, pattern, corner, margin)] = True
    return mask


def _stamp_one(img, p, opaque, box):
    out = np.array(img, copy=True)
    if out.dtype == np.uint8:
        values = np.rint(p[opaque] * 255.0).astype(np.uint8)
    elif out.dtype.kind == "f":
        values = p[opaque].astype(out.dtype)
    else:
        raise TypeError(f"images must be uint8 (0..255) or float (0..1), got {out.dtype}")
    window = out[box]  # a view: (h, w) or (h, w, C)
    window[opaque] = values[:, None] if window.ndim == 3 else values
    return out


def stamp_watermark(images, where=None, pattern="tag", corner="bottom-left", margin=3):
    """Copies of ``images`` with the mark pasted into ``corner`` of the selected ones.

    Parameters
    ----------
    images : ndarray (n, H, W) or (n, H, W, 3), or list of (H, W[, 3]) arrays
        uint8 (0..255) or float (0..1) images; in a list they may differ in size.
    where : None, bool array (n,) or int indices
        Which images get the mark; ``None``: all.
    pattern : str or 2-D array, default="tag"
        A name of :data:`WATERMARKS` or grey values in [0, 1] (NaN: transparent).
        On RGB images the mark is grey.
    corner : {"bottom-left", "bottom-right", "top-left", "top-right"}
        The thesis' copyright tag sits bottom-left.
    margin : int, default=3
        Pixels between the mark and the image edges.

    Returns
    -------
    Same type as ``images`` (a new array, or a new list); the inputs are not changed.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.full((2, 32, 32), 128, np.uint8)
    >>> Y = stamp_watermark(X, where=[True, False])
    >>> int(Y[0, 27, 3]), int(Y[0, 25, 5]), bool((Y[1] == 128).all())
    (255, 0, True)
    """
    p = watermark_pattern(pattern)
    opaque = np.isfinite(p)
    as_array = isinstance(images, np.ndarray)
    if as_array and images.ndim not in (3, 4):
        raise ValueError(f"images must be a stack (n, H, W) or (n, H, W, 3), got shape {images.shape}; "
                         "wrap a single image in a list")
    n = len(images)
    if where is None:
        sel = np.ones(n, dtype=bool)
    else:
        w = np.asarray(where)
        if w.dtype == bool:
            if w.shape != (n,):
                raise ValueError(f"where has {w.shape[0] if w.ndim else 1} entries for {n} images")
            sel = w
        else:
            sel = np.zeros(n, dtype=bool)
            sel[w.astype(np.intp)] = True
    out = []
    for i, img in enumerate(images):
        img = np.asarray(img)
        if sel[i]:
            img = _stamp_one(img, p, opaque, watermark_box(img.shape, p, corner, margin))
        elif not as_array:
            img = img.copy()
        out.append(img)
    if as_array:
        return np.stack(out) if n else images.copy()
    return out
