"""Geometry of dense SIFT descriptors: the grid, the descriptor squares and their 4 x 4 spatial bins.

OpenCV's SIFT descriptor (``cv2.SIFT_create().compute``) on a keypoint of
``size = 2 sigma`` and ``octave = 0`` has 4 x 4 spatial bins of width
``3 * size / 2 = 3 sigma``; the descriptor covers a square of side
``12 sigma`` (36 pixels for ``sigma = 3``).  This module places the dense
grid so that these squares stay inside the image, and gives the pixel boxes
that the pixel rules (:mod:`bowlrp.features.pixel_rules`) spread relevance
over: ``area(l)`` of eq. 2.84 for a descriptor, one box per spatial bin for
the per-bin rules (App. D.1.2).
"""

import functools

import numpy as np

from .descriptors import make_keypoints

__all__ = ["BIN_WIDTH_SIGMAS", "SPATIAL_BINS", "bin_boxes", "box_side", "descriptor_boxes", "grid_centers"]

#: Number of spatial bins per side of a SIFT descriptor (OpenCV, Lowe 2004).
SPATIAL_BINS = 4
#: Width of a spatial bin in units of sigma (OpenCV's ``SIFT_DESCR_SCL_FCTR``).
BIN_WIDTH_SIGMAS = 3.0


def box_side(sigma):
    """Side in pixels of the square a descriptor of scale ``sigma`` covers.

    ``4 bins x 3 sigma = 12 sigma``, rounded to whole pixels (at least 1).

    Examples
    --------
    >>> box_side(2.0), box_side(3.0), box_side(0.01)  # 12 sigma pixels, at least one
    (24, 36, 1)
    """
    return max(1, int(round(SPATIAL_BINS * BIN_WIDTH_SIGMAS * float(sigma))))


def _axis_centers(length, side, step):
    """Integer centres along one axis such that every box fits; centred grid."""
    span = length - side  # range of admissible first-pixel positions
    if span < 0:
        return np.empty(0, dtype=np.intp)
    n = span // step + 1
    slack = span - (n - 1) * step
    first = side // 2 + slack // 2
    return first + step * np.arange(n, dtype=np.intp)


def grid_centers(image_shape, sigma, step):
    """Keypoint centres of one scale level of the dense grid.

    The box of side ``s = round(12 sigma)`` around an integer centre ``c`` is
    the half-open pixel range ``[c - s // 2, c - s // 2 + s)``.  Centres are
    placed every ``step`` pixels so that every box lies inside the image
    (a margin of about ``6 sigma``), and the grid is centred in the image: the
    slack left over is split evenly between both sides (the extra pixel of an
    odd slack goes to the far side).  Along an axis of length ``L`` there are
    ``(L - s) // step + 1`` centres, none when ``L < s``.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)``.
    sigma : float
        Scale of the level.
    step : int
        Grid step in pixels.

    Returns
    -------
    centers : ndarray of shape (n, 2), dtype intp
        ``(x, y) = (column, row)`` pixel coordinates, in row-major order
        (``y`` outer, ``x`` inner).

    Examples
    --------
    >>> from bowlrp.features.sift import grid_centers
    >>> grid_centers((40, 30), 2.0, 6)[:3].tolist()
    [[12, 14], [18, 14], [12, 20]]
    """
    side = box_side(sigma)
    ys = _axis_centers(int(image_shape[0]), side, int(step))
    xs = _axis_centers(int(image_shape[1]), side, int(step))
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.intp, copy=False)


def descriptor_boxes(centers, sigma, image_shape):
    """Half-open ``(row0, col0, row1, col1)`` squares of side ``round(12 sigma)``, clipped to the image.

    The square around the (rounded) centre ``c`` is ``[c - s // 2, c - s // 2 + s)``
    along each axis, ``s =`` :func:`box_side` ``(sigma)``: ``area(l)`` of eq. 2.84.

    Parameters
    ----------
    centers : array of shape (n, 2)
        ``(x, y) = (column, row)`` pixel coordinates.
    sigma : float
        Scale of the descriptors.
    image_shape : tuple of int
        ``(H, W)``.

    Returns
    -------
    boxes : ndarray of shape (n, 4), dtype intp

    Examples
    --------
    >>> from bowlrp.features.geometry import descriptor_boxes
    >>> descriptor_boxes([[12, 14], [5, 5]], 2.0, (40, 30)).tolist()
    [[2, 0, 26, 24], [0, 0, 17, 17]]
    """
    side = box_side(sigma)
    centers = np.asarray(centers).reshape(-1, 2)
    x = np.rint(centers[:, 0]).astype(np.intp)
    y = np.rint(centers[:, 1]).astype(np.intp)
    r0, c0 = y - side // 2, x - side // 2
    H, W = image_shape
    boxes = np.stack([r0, c0, r0 + side, c0 + side], axis=1)
    boxes[:, 0] = np.clip(boxes[:, 0], 0, H)
    boxes[:, 2] = np.clip(boxes[:, 2], 0, H)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, W)
    boxes[:, 3] = np.clip(boxes[:, 3], 0, W)
    return boxes.astype(np.intp, copy=False)


#: The former private name of :func:`descriptor_boxes`, still imported by callers.
_boxes = descriptor_boxes


def bin_boxes(descriptor_set):
    """Pixel boxes of the 4 x 4 spatial bins of every descriptor (App. D.1.2).

    Bin ``b = 4 row + col`` holds descriptor dimensions ``8 b .. 8 b + 7``
    (OpenCV's layout: ``dst[(row * 4 + col) * 8 + orientation]``), its rows
    and columns counted in the descriptor's own (rotated) frame.

    * Unrotated descriptors (angle 0): the bins tile the flat rule's square
      of side ``s = round(12 sigma)`` exactly; bin edges along each axis are
      ``start + round(k s / 4)``, ``k = 0..4``, so the 16 boxes are the
      square, split.  Boxes are clipped to the image like the square.
    * Rotated descriptors: OpenCV samples bin ``(row, col)`` around the point
      at offset ``w (col - 1.5, row - 1.5)`` of the rotated frame
      (``w = s / 4``), i.e. at pixel offset ``(dx, dy) = (c cos t + r sin t,
      -c sin t + r cos t) w`` with ``t = 360 - angle`` degrees.  A rotated
      square is approximated by the axis-aligned square of side
      ``round(w)`` centred on that point (same area and centre), shifted
      inward where it would leave the image so that no bin is empty.

    OpenCV's trilinear interpolation spreads every gradient over neighbouring
    bins; the boxes ignore that (a bin is the square its centre is nearest to).

    Returns
    -------
    boxes : ndarray of shape (n, 16, 4), dtype intp
        Half-open ``(row0, col0, row1, col1)`` per bin, inside the image.

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> img = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)
    >>> ds = bowlrp.DenseSIFT(scales=(2.0,), steps=(8,)).transform([img])[0]  # 9 descriptors
    >>> R = np.random.default_rng(1).normal(size=(len(ds), 128))  # relevance per descriptor dimension
    >>> boxes = bin_boxes(ds)
    >>> boxes.shape, boxes[0, :2].tolist(), ds.boxes[0].tolist()  # bins 0 and 1 split the 24 x 24 square
    ((9, 16, 4), [[0, 0, 6, 6], [0, 6, 6, 12]], [0, 0, 24, 24])
    """
    H, W = descriptor_set.image_shape
    n = len(descriptor_set)
    r_e, c_e, x, y, sides = _edges(descriptor_set)
    ri, ci = np.divmod(np.arange(SPATIAL_BINS * SPATIAL_BINS), SPATIAL_BINS)
    boxes = np.stack(
        [r_e[:, ri], c_e[:, ci], r_e[:, ri + 1], c_e[:, ci + 1]], axis=2
    )  # (n, 16, 4) unrotated
    rot = rotated(descriptor_set.angles)
    if rot.size:
        angles = np.asarray(descriptor_set.angles, dtype=np.float64).reshape(-1)
        t = np.deg2rad(360.0 - angles[rot])[:, None]
        w = sides[rot, None] / SPATIAL_BINS
        r = (ri[None, :] - 1.5) * w
        c = (ci[None, :] - 1.5) * w
        dx = c * np.cos(t) + r * np.sin(t)
        dy = -c * np.sin(t) + r * np.cos(t)
        bw = np.maximum(1, np.rint(w)).astype(np.intp)  # (m, 1)
        r0 = np.rint(y[rot, None] + dy - bw / 2.0).astype(np.intp)
        c0 = np.rint(x[rot, None] + dx - bw / 2.0).astype(np.intp)
        r0 = np.clip(r0, 0, np.maximum(H - bw, 0))
        c0 = np.clip(c0, 0, np.maximum(W - bw, 0))
        boxes[rot] = np.stack(
            [r0, c0, np.minimum(r0 + bw, H), np.minimum(c0 + bw, W)], axis=2
        )
    return boxes.reshape(n, SPATIAL_BINS * SPATIAL_BINS, 4).astype(np.intp, copy=False)


def rotated(angles):
    """Indices of the descriptors whose angle is not 0 (mod 360): the ones whose bins are not a split square."""
    angles = np.asarray(angles, dtype=np.float64).reshape(-1)
    return np.flatnonzero(np.abs(((360.0 - angles) % 360.0)) > 1e-9)


def _edges(descriptor_set):
    """``(rows, cols, x, y, sides)``: the 5 bin edges per axis of unrotated descriptors, clipped (n, 5).

    Bin ``(i, j)`` of descriptor ``l`` is ``[rows[l, i], rows[l, i+1]) x
    [cols[l, j], cols[l, j+1])`` (see :func:`bin_boxes`); ``x, y`` are the
    rounded centres and ``sides`` the squares' sides.
    """
    H, W = descriptor_set.image_shape
    centers = np.asarray(descriptor_set.centers, dtype=np.float64).reshape(-1, 2)
    # box_side for every descriptor at once: np.rint rounds halves to even, as round() does
    sigmas = np.asarray(descriptor_set.sigmas, dtype=np.float64).reshape(-1)
    sides = np.maximum(1, np.rint(SPATIAL_BINS * BIN_WIDTH_SIGMAS * sigmas)).astype(np.intp)
    x = np.rint(centers[:, 0]).astype(np.intp)
    y = np.rint(centers[:, 1]).astype(np.intp)
    k = np.arange(SPATIAL_BINS + 1)
    edges = np.rint(sides[:, None] * k[None, :] / SPATIAL_BINS).astype(np.intp)  # (n, 5)
    r_e = np.clip((y - sides // 2)[:, None] + edges, 0, H)
    c_e = np.clip((x - sides // 2)[:, None] + edges, 0, W)
    return r_e, c_e, x, y, sides


def _grid_geometry(shape, scales, steps, index):
    """Centres, scales, levels, boxes and upright keypoints of the grid of an image shape."""
    for sigma in scales:
        if min(shape) < box_side(sigma):
            sizes = ", ".join(f"sigma={s:g}: {box_side(s)}x{box_side(s)}" for s in scales)
            raise ValueError(
                f"image {index} of shape {shape} is too small for a descriptor of scale "
                f"sigma={sigma:g}, whose square needs {box_side(sigma)}x{box_side(sigma)} pixels; "
                f"minimum image size per level: {sizes}. Use larger images or smaller scales."
            )
    centers, sigmas, levels, boxes, zeros = _grid_arrays(tuple(shape), scales, steps)
    if len(centers) > _CACHED_KEYPOINTS:
        keypoints = make_keypoints(centers, sigmas, zeros)
    else:
        keypoints = _grid_keypoints(tuple(shape), scales, steps)
    return centers, sigmas, levels, boxes, zeros, keypoints


#: Grids of at most this many keypoints keep their ``cv2.KeyPoint`` objects (about 80 bytes each).  Larger
#: ones build them per call: the 475,000 long-lived objects of a 4000x3000 photograph raised the peak
#: resident memory of explaining it by 190 MiB (measured; they stay alive among the arrays of explain).
_CACHED_KEYPOINTS = 1 << 17


@functools.lru_cache(maxsize=4)
def _grid_keypoints(shape, scales, steps):
    """The upright ``cv2.KeyPoint`` tuple of the grid of a shape, built once (cached like :func:`_grid_arrays`).

    Building the objects took 20-55 ms for the 38,000 keypoints of a 480x360
    photograph, as long as encoding it.  OpenCV's ``compute`` copies them in
    and returns new ones, so a shared tuple is never changed; callers that
    set angles (rotated SIFT) build their own list.
    """
    centers, sigmas, _, _, zeros = _grid_arrays(shape, scales, steps)
    return tuple(make_keypoints(centers, sigmas, zeros))


@functools.lru_cache(maxsize=8)
def _grid_arrays(shape, scales, steps):
    """The (read-only, cached) arrays of :func:`_grid_geometry`: images of one shape share them.

    A few shapes are kept (the DescriptorSets of those images hold the same
    arrays); descriptors, 128 floats each, take far more memory than these.
    """
    centers, sigmas, levels = [], [], []
    for level, (sigma, step) in enumerate(zip(scales, steps)):
        c = grid_centers(shape, sigma, step)
        centers.append(c)
        sigmas.append(np.full(len(c), sigma))
        levels.append(np.full(len(c), level, dtype=np.intp))
    centers = np.concatenate(centers).astype(np.float64)
    sigmas = np.concatenate(sigmas)
    levels = np.concatenate(levels)
    boxes = np.concatenate([descriptor_boxes(centers[levels == k], s, shape) for k, s in enumerate(scales)], axis=0)
    zeros = np.zeros(len(centers))
    for a in (centers, sigmas, levels, boxes, zeros):
        a.flags.writeable = False  # shared by every image of this shape
    return centers, sigmas, levels, boxes, zeros
