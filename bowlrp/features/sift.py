"""Dense SIFT descriptors and the flat rule that maps their relevance to pixels.

The local features of the Bag-of-Words pipelines of the thesis (Sec. 2.4.3)
are SIFT descriptors (Lowe, 2004) computed densely: for every scale
``sigma`` a regular grid of keypoints, all with that scale, optionally
rotated to the dominant gradient orientation.  The descriptor itself is
OpenCV's (``cv2.SIFT_create().compute``) on keypoints of ``size = 2 sigma``
and ``octave = 0``; OpenCV then uses spatial bins of width
``3 * size / 2 = 3 sigma``, so the 4 x 4 bins cover a square of side
``12 sigma`` (``4 * 3 * 3 = 36`` pixels for ``sigma = 3``).

Relevance of a descriptor is mapped to pixels by the flat rule
(eq. 2.84, 2.85): it is spread evenly over the pixels of that square.
"""

import math
import numbers
from dataclasses import dataclass, field

import cv2
import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin

from .._backend import asarray, get_namespace
from .._validation import check_images, images_to_uint8_gray
from ..base import ExplainableTransformerMixin
from ..rules import Flat, Rule

__all__ = ["DescriptorSet", "DenseSIFT", "bin_boxes", "bin_pixel_relevance", "flat_pixel_relevance", "grid_centers"]

#: Number of spatial bins per side of a SIFT descriptor (OpenCV, Lowe 2004).
SPATIAL_BINS = 4
#: Width of a spatial bin in units of sigma (OpenCV's ``SIFT_DESCR_SCL_FCTR``).
BIN_WIDTH_SIGMAS = 3.0
#: Number of bins of the orientation histogram (Lowe 2004, Sec. 5).
ORI_BINS = 36
#: Std of the Gaussian orientation window in units of sigma (Lowe 2004).
ORI_WINDOW_SIGMAS = 1.5
#: The Gaussian orientation window is truncated at this many std (OpenCV).
ORI_RADIUS_STDS = 3.0
#: Blur OpenCV assumes is already present in an input image.
_INIT_SIGMA = 0.5

#: Pixel rules of :meth:`DenseSIFT.relevance` ("bins" needs relevance per descriptor dimension).
PIXEL_RULES = ("auto", "flat", "bins")


def box_side(sigma):
    """Side in pixels of the square a descriptor of scale ``sigma`` covers.

    ``4 bins x 3 sigma = 12 sigma``, rounded to whole pixels (at least 1).
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


def _boxes(centers, sigma, image_shape):
    """Half-open ``(row0, col0, row1, col1)`` squares of side ``round(12 sigma)``, clipped."""
    side = box_side(sigma)
    centers = np.asarray(centers)
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


@dataclass(frozen=True, eq=False, repr=False)
class DescriptorSet:
    """The local descriptors of one image and their geometry.

    Descriptors are ordered by scale level, then row-major over the grid of
    that level.

    Attributes
    ----------
    descriptors : ndarray of shape (n, 128), dtype float32
        OpenCV SIFT descriptors, as OpenCV scales them (unit length, clipped at
        0.2, renormalised, times 512, saturated to 0..255).
    centers : ndarray of shape (n, 2), dtype float64
        Keypoint centres ``(x, y) = (column, row)`` in pixels.
    sigmas : ndarray of shape (n,), dtype float64
        Scale ``sigma`` of each descriptor (the keypoint size is ``2 sigma``).
    levels : ndarray of shape (n,), dtype intp
        Index of each descriptor's scale level (position in ``DenseSIFT.scales``).
    angles : ndarray of shape (n,), dtype float64
        Orientation of each descriptor in degrees, in the convention of
        ``cv2.KeyPoint.angle`` (image coordinates, ``y`` pointing down:
        ``atan2(dI/drow, dI/dcol)``, in ``[0, 360)``); 0 when rotation is off.
    boxes : ndarray of shape (n, 4), dtype intp
        ``(row0, col0, row1, col1)``, half-open: the square of side
        ``round(12 sigma)`` around the centre, clipped to the image (axis-aligned
        also for rotated descriptors).  This is ``area(l)`` of eq. 2.84, the
        pixels the flat rule spreads relevance over.
    image_shape : tuple of int
        ``(H, W)`` of the image.
    n_levels : int
        Number of scale levels (``len(DenseSIFT.scales)``); a level may hold
        no descriptors only if the set was built by hand.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.sift import DenseSIFT
    >>> ds = DenseSIFT(scales=(2.0,), steps=6).transform(np.zeros((1, 24, 36)))[0]
    >>> len(ds), ds.descriptors.shape, ds.boxes[0].tolist()
    (3, (3, 128), [0, 0, 24, 24])
    """

    descriptors: np.ndarray
    centers: np.ndarray
    sigmas: np.ndarray
    levels: np.ndarray
    angles: np.ndarray
    boxes: np.ndarray
    image_shape: tuple
    n_levels: int
    _level_bounds: np.ndarray = field(init=False, compare=False)

    def __post_init__(self):
        def coerce(name, dtype, shape_tail):
            arr = np.asarray(getattr(self, name), dtype=dtype)
            if shape_tail is not None:
                arr = arr.reshape((-1,) + shape_tail) if arr.size == 0 else arr
            object.__setattr__(self, name, arr)
            return arr

        d = coerce("descriptors", np.float32, (128,))
        n = d.shape[0]
        coerce("centers", np.float64, (2,))
        coerce("sigmas", np.float64, ())
        levels = coerce("levels", np.intp, ())
        coerce("angles", np.float64, ())
        coerce("boxes", np.intp, (4,))
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        object.__setattr__(self, "n_levels", int(self.n_levels))
        expected = {
            "descriptors": (n, 128),
            "centers": (n, 2),
            "sigmas": (n,),
            "levels": (n,),
            "angles": (n,),
            "boxes": (n, 4),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"DescriptorSet.{name} must have shape {shape}, got {getattr(self, name).shape}")
        if n and (np.any(np.diff(levels) < 0) or levels[0] < 0 or levels[-1] >= self.n_levels):
            raise ValueError("DescriptorSet.levels must be sorted and lie in 0..n_levels-1")
        b = self.boxes
        H, W = self.image_shape
        if n and (
            b[:, 0].min() < 0 or b[:, 1].min() < 0 or b[:, 2].max() > H or b[:, 3].max() > W
            or np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1])
        ):
            raise ValueError(
                "DescriptorSet.boxes must be half-open (row0, col0, row1, col1) ranges inside the "
                f"image of shape {self.image_shape} (clip them to 0..H and 0..W)"
            )
        bounds = np.searchsorted(levels, np.arange(self.n_levels + 1), side="left")
        object.__setattr__(self, "_level_bounds", bounds)

    def __len__(self):
        return self.descriptors.shape[0]

    def __repr__(self):
        counts = [s.stop - s.start for s in self.level_slices]
        return f"DescriptorSet(n={len(self)}, image_shape={self.image_shape}, per_level={counts})"

    def level_slice(self, level):
        """Slice of the descriptors of scale level ``level``."""
        if not 0 <= level < self.n_levels:
            raise IndexError(f"level must be in 0..{self.n_levels - 1}, got {level}")
        b = self._level_bounds
        return slice(int(b[level]), int(b[level + 1]))

    @property
    def level_slices(self):
        """Tuple with the slice of every scale level (descriptors are sorted by level)."""
        return tuple(self.level_slice(k) for k in range(self.n_levels))

    @property
    def areas(self):
        """Number of pixels ``|area(l)|`` of each (clipped) box (eq. 2.84)."""
        b = self.boxes
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def keypoints(self):
        """The ``cv2.KeyPoint`` list these descriptors were computed from."""
        return _make_keypoints(self.centers, self.sigmas, self.angles)


def _make_keypoints(centers, sigmas, angles):
    return [
        cv2.KeyPoint(float(x), float(y), 2.0 * float(s), float(a), 0.0, 0, -1)
        for (x, y), s, a in zip(centers.tolist(), sigmas.tolist(), angles.tolist())
    ]


def _window_sum(arr, axis, centers, weights):
    """``out[i] = sum_t weights[t] * arr[centers[i] + t - r]`` along ``axis`` (zero outside).

    A separable Gaussian window evaluated only where it is needed: one
    vectorised pass per filter tap (``2 r + 1`` of them), none per keypoint.
    """
    r = (len(weights) - 1) // 2
    n = arr.shape[axis]
    lo = max(0, r - int(centers.min()))
    hi = max(0, int(centers.max()) + r + 1 - n)
    if lo or hi:  # zero padding, only for windows that leave the image
        pad = [(0, 0)] * arr.ndim
        pad[axis] = (lo, hi)
        arr = np.pad(arr, pad)
    start = centers - r + lo
    out = None
    for t, w in enumerate(weights):
        term = np.take(arr, start + t, axis=axis)
        term *= w
        out = term if out is None else out.__iadd__(term)
    return out


def _dominant_orientations(gray, centers, sigma):
    """Dominant gradient orientation at integer ``centers`` (Lowe 2004, Sec. 5).

    The image is smoothed to scale ``sigma`` (assuming the 0.5 pixel blur
    OpenCV assumes for any input); each pixel's gradient magnitude is split
    linearly between the two nearest of 36 orientation bins, giving 36
    channel images; these are weighted with the Gaussian window of std
    ``1.5 sigma`` (truncated at 3 std, as OpenCV) around every centre at once,
    as a separable filter evaluated only at the rows and then the columns that
    hold centres.  The histograms are smoothed circularly with
    ``[1, 4, 6, 4, 1] / 16`` (as OpenCV) and the peak is refined by parabolic
    interpolation.  Cost ``O(36 H W)`` plus ``O(36 (n_rows W + n) k)`` for a
    window of ``k`` taps, with no Python loop over keypoints.

    Returns angles in degrees in the ``cv2.KeyPoint.angle`` convention
    (``atan2(dI/drow, dI/dcol)`` with rows pointing down, in ``[0, 360)``).
    OpenCV's ``compute`` turns it into ``360 - angle``, the angle of its own
    gradients (``dy = I(y-1, x) - I(y+1, x)``, up positive), so the
    descriptor is built in the frame of the dominant gradient.
    """
    H, W = gray.shape
    s = math.sqrt(max(sigma * sigma - _INIT_SIGMA**2, 0.01))
    img = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), s, borderType=cv2.BORDER_REFLECT_101)
    # Central differences; the outermost rows/columns get no gradient, as in OpenCV.
    dx = np.zeros_like(img)
    dy = np.zeros_like(img)
    dx[1:-1, 1:-1] = img[1:-1, 2:] - img[1:-1, :-2]
    dy[1:-1, 1:-1] = img[2:, 1:-1] - img[:-2, 1:-1]  # rows point down: the KeyPoint convention
    mag, ang = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    mag = mag.ravel()
    pos = ang.ravel() * np.float32(ORI_BINS / 360.0)
    b0 = pos.astype(np.intp)
    w1 = pos - b0
    b0 %= ORI_BINS
    b1 = b0 + 1
    b1[b1 == ORI_BINS] = 0
    pix = np.arange(H * W)
    chans = np.zeros((H * W, ORI_BINS), np.float32)
    chans[pix, b0] = mag * (1.0 - w1)
    chans[pix, b1] = mag * w1  # b1 != b0: plain assignment, no accumulation needed
    chans = chans.reshape(H, W, ORI_BINS)

    sw = ORI_WINDOW_SIGMAS * sigma
    radius = max(1, int(round(ORI_RADIUS_STDS * sw)))
    g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sw) ** 2).astype(np.float32)
    x = np.asarray(centers[:, 0], dtype=np.intp)
    y = np.asarray(centers[:, 1], dtype=np.intp)
    rows, row_inv = np.unique(y, return_inverse=True)
    cols, col_inv = np.unique(x, return_inverse=True)
    tmp = _window_sum(chans, 0, rows, g)  # (n_rows, W, 36)
    tmp = _window_sum(tmp, 1, cols, g)  # (n_rows, n_cols, 36)
    hist = tmp[row_inv.ravel(), col_inv.ravel()].astype(np.float64)  # (n, 36)

    # Circular smoothing of the histogram, as OpenCV does.
    hist = (
        6.0 * hist
        + 4.0 * (np.roll(hist, 1, axis=1) + np.roll(hist, -1, axis=1))
        + (np.roll(hist, 2, axis=1) + np.roll(hist, -2, axis=1))
    ) / 16.0
    j = np.argmax(hist, axis=1)
    k = np.arange(hist.shape[0])
    c = hist[k, j]
    left = hist[k, (j - 1) % ORI_BINS]
    right = hist[k, (j + 1) % ORI_BINS]
    denom = left - 2.0 * c + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(denom < 0, 0.5 * (left - right) / denom, 0.0)
    angles = ((j + offset) * (360.0 / ORI_BINS)) % 360.0
    angles[c <= 0] = 0.0  # flat patch: no gradient, no orientation
    return angles


def _check_params(scales, steps, rotate, n_jobs):
    """Validate DenseSIFT parameters; return ``(scales, steps)`` as tuples."""
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool):
        scales = (scales,)
    try:
        scales = tuple(scales)
    except TypeError:
        raise ValueError(f"scales must be a positive number or a non-empty sequence of them, got {scales!r}") from None
    if not scales or not all(
        isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s > 0 for s in scales
    ):
        raise ValueError(
            f"scales must be a non-empty sequence of finite positive numbers (sigma per level), got {scales!r}"
        )
    scales = tuple(float(s) for s in scales)

    def valid_step(s):
        return isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s >= 1 and s == int(s)

    if isinstance(steps, numbers.Real) and not isinstance(steps, bool):
        steps = (steps,) * len(scales)
    try:
        steps = tuple(steps)
    except TypeError:
        raise ValueError(f"steps must be a positive integer or a sequence of them, got {steps!r}") from None
    if len(steps) != len(scales):
        raise ValueError(
            f"steps must be a single positive integer or have one entry per scale: got {len(steps)} "
            f"steps for {len(scales)} scales"
        )
    if not all(valid_step(s) for s in steps):
        raise ValueError(f"steps must be positive integers (grid step in pixels per level), got {steps!r}")
    steps = tuple(int(s) for s in steps)
    if not isinstance(rotate, (bool, np.bool_)):
        raise ValueError(f"rotate must be True or False, got {rotate!r}")
    if n_jobs is not None and (not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero integer (-1 for all cores), got {n_jobs!r}")
    return scales, steps


def _grid_geometry(shape, scales, steps, index):
    """Centres, scales, levels, boxes and upright keypoints of the grid of an image shape."""
    centers, sigmas, levels = [], [], []
    for level, (sigma, step) in enumerate(zip(scales, steps)):
        c = grid_centers(shape, sigma, step)
        if len(c) == 0:
            sizes = ", ".join(f"sigma={s:g}: {box_side(s)}x{box_side(s)}" for s in scales)
            raise ValueError(
                f"image {index} of shape {shape} is too small for a descriptor of scale "
                f"sigma={sigma:g}, whose square needs {box_side(sigma)}x{box_side(sigma)} pixels; "
                f"minimum image size per level: {sizes}. Use larger images or smaller scales."
            )
        centers.append(c)
        sigmas.append(np.full(len(c), sigma))
        levels.append(np.full(len(c), level, dtype=np.intp))
    centers = np.concatenate(centers).astype(np.float64)
    sigmas = np.concatenate(sigmas)
    levels = np.concatenate(levels)
    boxes = np.concatenate([_boxes(centers[levels == k], s, shape) for k, s in enumerate(scales)], axis=0)
    zeros = np.zeros(len(centers))
    for a in (centers, sigmas, levels, boxes, zeros):
        a.flags.writeable = False  # shared by every image of this shape
    return centers, sigmas, levels, boxes, zeros, _make_keypoints(centers, sigmas, zeros)


def _describe_images(images, scales, steps, rotate, offset):
    """Compute the DescriptorSets of a chunk of images (one SIFT object per chunk).

    Images of one shape share their grid: its geometry and upright keypoints
    are built once per shape.
    """
    sift = cv2.SIFT_create()
    grids = {}
    out = []
    for i, img in enumerate(images):
        gray = images_to_uint8_gray(img)
        H, W = gray.shape
        if (H, W) not in grids:
            grids[(H, W)] = _grid_geometry((H, W), scales, steps, offset + i)
        centers, sigmas, levels, boxes, angles, kps = grids[(H, W)]
        if rotate:
            angles = np.concatenate([
                _dominant_orientations(gray, centers[levels == k], sigma) for k, sigma in enumerate(scales)
            ])
            kps = _make_keypoints(centers, sigmas, angles)
        kps_out, desc = sift.compute(gray, kps)
        if desc is None or len(kps_out) != len(kps):  # pragma: no cover - OpenCV keeps provided keypoints
            raise RuntimeError("OpenCV SIFT dropped keypoints; cannot align descriptors with the grid")
        out.append(
            DescriptorSet(
                descriptors=desc.astype(np.float32, copy=False),
                centers=centers,
                sigmas=sigmas,
                levels=levels,
                angles=angles,
                boxes=boxes,
                image_shape=(H, W),
                n_levels=len(scales),
            )
        )
    return out


def flat_pixel_relevance(descriptor_set, relevance):
    """Spread descriptor relevance evenly over the pixels of each box (flat rule).

    Implements eq. 2.84 and 2.85: every pixel of ``area(l)`` contributes
    equally (``z_pl = 1``), so ``R_{p<-l} = R_l / |area(l)|`` and
    ``R_p = sum_{l : p in area(l)} R_l / |area(l)|``.  The boxes are the
    (clipped) squares of ``descriptor_set.boxes``, so the map conserves
    relevance: ``sum_p R_p = sum_l R_l`` up to rounding.

    The sum over overlapping boxes is computed with a 2-D difference array
    (four signed corners per box, scattered with ``bincount``) and two
    cumulative sums: ``O(n + H W)``.  The computation runs on the array
    module of ``relevance`` (NumPy or CuPy).

    Parameters
    ----------
    descriptor_set : DescriptorSet
        Geometry of the descriptors of one image.
    relevance : array of shape (n,)
        Relevance ``R_l`` of each descriptor (NumPy or CuPy).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64
        ``R_p`` for every pixel, in the array module of ``relevance``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.sift import DenseSIFT, flat_pixel_relevance
    >>> ds = DenseSIFT(scales=(2.0,), steps=6).transform(np.zeros((1, 24, 36)))[0]
    >>> R = flat_pixel_relevance(ds, np.array([1.0, -2.0, 4.0]))
    >>> R.shape, bool(np.isclose(R.sum(), 3.0))
    ((24, 36), True)
    """
    xp = get_namespace(relevance)
    H, W = descriptor_set.image_shape
    n = len(descriptor_set)
    relevance = asarray(relevance, xp, dtype=xp.float64)
    if relevance.shape != (n,):
        raise ValueError(
            f"relevance must have shape ({n},), one value per descriptor of the set, got {tuple(relevance.shape)}"
        )
    areas = descriptor_set.areas
    if n and areas.min() <= 0:
        raise ValueError("every box must hold at least one pixel for the flat rule to conserve relevance")
    boxes = asarray(descriptor_set.boxes, xp, dtype=xp.int64)
    v = relevance / asarray(areas, xp, dtype=xp.float64)
    r0, c0, r1, c1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    stride = W + 1
    idx = xp.concatenate([r0 * stride + c0, r0 * stride + c1, r1 * stride + c0, r1 * stride + c1])
    wts = xp.concatenate([v, -v, -v, v])
    diff = xp.bincount(idx, weights=wts, minlength=(H + 1) * stride).reshape(H + 1, stride)
    out = xp.cumsum(xp.cumsum(diff, axis=0), axis=1)
    return out[:H, :W]


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
    """
    H, W = descriptor_set.image_shape
    n = len(descriptor_set)
    centers = np.asarray(descriptor_set.centers, dtype=np.float64).reshape(-1, 2)
    sides = np.array([box_side(s) for s in descriptor_set.sigmas], dtype=np.intp)
    x = np.rint(centers[:, 0]).astype(np.intp)
    y = np.rint(centers[:, 1]).astype(np.intp)
    k = np.arange(SPATIAL_BINS + 1)
    edges = np.rint(sides[:, None] * k[None, :] / SPATIAL_BINS).astype(np.intp)  # (n, 5)
    r_e = (y - sides // 2)[:, None] + edges
    c_e = (x - sides // 2)[:, None] + edges
    ri, ci = np.divmod(np.arange(SPATIAL_BINS * SPATIAL_BINS), SPATIAL_BINS)
    boxes = np.stack(
        [r_e[:, ri], c_e[:, ci], r_e[:, ri + 1], c_e[:, ci + 1]], axis=2
    )  # (n, 16, 4) unrotated
    boxes[..., 0::2] = np.clip(boxes[..., 0::2], 0, H)
    boxes[..., 1::2] = np.clip(boxes[..., 1::2], 0, W)
    angles = np.asarray(descriptor_set.angles, dtype=np.float64).reshape(-1)
    rot = np.flatnonzero(np.abs(((360.0 - angles) % 360.0)) > 1e-9)
    if rot.size:
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


def bin_pixel_relevance(descriptor_set, relevance):
    """Map relevance per descriptor dimension to pixels through the 4 x 4 spatial bins (App. D.1.2).

    The relevance of the 8 orientation dimensions of a spatial bin is summed
    and spread evenly over the bin's pixels (:func:`bin_boxes`): the flat
    rule (eq. 2.84, 2.85) applied per bin instead of per descriptor, giving
    maps 16 times finer.  A bin whose box is empty after clipping (only for
    hand-made sets whose squares leave the image) gives its relevance to the
    descriptor's whole box, so the map always conserves relevance:
    ``sum_p R_p = sum_{l, i} R_{l, i}``.

    Parameters
    ----------
    descriptor_set : DescriptorSet
    relevance : array of shape (n, 128)
        Relevance of every descriptor dimension (NumPy or CuPy), e.g. from
        :class:`bowlrp.FisherVectorEncoder` (eq. D.3).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64
    """
    xp = get_namespace(relevance)
    H, W = descriptor_set.image_shape
    n = len(descriptor_set)
    relevance = asarray(relevance, xp, dtype=xp.float64)
    nb = SPATIAL_BINS * SPATIAL_BINS
    if relevance.ndim != 2 or relevance.shape[0] != n or relevance.shape[1] % nb:
        raise ValueError(
            f"relevance must have shape ({n}, 128), one value per descriptor dimension, got {tuple(relevance.shape)}"
        )
    per_bin = relevance.reshape(n, nb, -1).sum(2)  # (n, 16)
    boxes = bin_boxes(descriptor_set)
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    ok = asarray(areas > 0, xp)
    v = xp.where(ok, per_bin / asarray(np.maximum(areas, 1), xp, dtype=xp.float64), 0.0).reshape(-1)
    b = asarray(boxes.reshape(-1, 4), xp, dtype=xp.int64)
    r0, c0, r1, c1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    stride = W + 1
    idx = xp.concatenate([r0 * stride + c0, r0 * stride + c1, r1 * stride + c0, r1 * stride + c1])
    wts = xp.concatenate([v, -v, -v, v])
    diff = xp.bincount(idx, weights=wts, minlength=(H + 1) * stride).reshape(H + 1, stride)
    out = xp.cumsum(xp.cumsum(diff, axis=0), axis=1)[:H, :W]
    if not bool(ok.all()):
        out = out + flat_pixel_relevance(descriptor_set, xp.where(ok, 0.0, per_bin).sum(1))
    return out


class DenseSIFT(ExplainableTransformerMixin, TransformerMixin, BaseEstimator):
    """Dense multi-scale SIFT descriptors on a regular grid, with LRP back to pixels.

    For every scale ``sigma`` in ``scales`` keypoints of that scale are placed
    on a grid of step ``step`` pixels and described with OpenCV's SIFT
    (``cv2.SIFT_create().compute`` on ``cv2.KeyPoint(x, y, size=2 sigma)``,
    ``octave=0``).  The descriptor's 4 x 4 spatial bins are ``3 sigma`` wide,
    so it covers a square of side ``12 sigma``; the grid keeps these squares
    inside the image and is centred (see :func:`grid_centers`).  The thesis'
    toy experiment (Sec. 2.4.3) uses ``sigma in {2, 3}`` with steps 6 and 9
    and rotated descriptors.

    The transformer is stateless: :meth:`fit` only validates the parameters.

    Parameters
    ----------
    scales : sequence of float, default=(2.0, 3.0)
        Scale ``sigma`` of each level.
    steps : int or sequence of int, default=(6, 9)
        Grid step in pixels of each level; one int is used for all levels.
    rotate : bool, default=False
        Rotate every descriptor to the dominant gradient orientation in a
        Gaussian window of std ``1.5 sigma`` around its centre (36-bin
        magnitude-weighted histogram with parabolic peak interpolation, as in
        Lowe's SIFT); otherwise all descriptors are upright (angle 0).
    pixel_rule : {"auto", "flat", "bins"}, default="auto"
        How :meth:`relevance` maps descriptor relevance to pixels: the flat
        rule over each descriptor's square (eq. 2.84, 2.85), per spatial bin
        (App. D.1.2, for relevance per descriptor dimension), or ``"auto"``
        (per bin when the encoder gives per-dimension relevance).
    n_jobs : int, default=None
        Number of joblib workers (threads) over chunks of images; ``None``
        means 1 unless in a ``joblib.parallel_config`` context, -1 all cores.

    See Also
    --------
    flat_pixel_relevance : the flat rule (eq. 2.84, 2.85) used by the backward step.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.sift import DenseSIFT
    >>> rng = np.random.default_rng(0)
    >>> images = rng.random((2, 102, 102))
    >>> sift = DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)
    >>> sets = sift.fit_transform(images)
    >>> len(sets), sets[0].descriptors.shape
    (2, (260, 128))
    >>> [s.stop - s.start for s in sets[0].level_slices]
    [196, 64]

    Relevance of the descriptors goes back to pixels with the flat rule:

    >>> sets, trace = sift.forward(images)
    >>> maps = sift.relevance([np.ones(len(s)) for s in sets], trace)
    >>> maps[0].shape, bool(np.isclose(maps[0].sum(), 260.0))
    ((102, 102), True)
    """

    #: Name under which the pipeline walk stores this stage's input relevance.
    input_kind = "images"
    takes_mapping_rule = False

    def __init__(self, scales=(2.0, 3.0), steps=(6, 9), rotate=False, pixel_rule="auto", n_jobs=None):
        self.scales = scales
        self.steps = steps
        self.rotate = rotate
        self.pixel_rule = pixel_rule
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = []
        return tags

    def fit(self, X, y=None):
        """Validate the parameters and the images; DenseSIFT learns nothing.

        Parameters
        ----------
        X : list of ndarray or ndarray
            Ignored (images, see :meth:`transform`).
        y : None
            Ignored.

        Returns
        -------
        self : DenseSIFT
        """
        _check_params(self.scales, self.steps, self.rotate, self.n_jobs)
        _pixel_rule(self.pixel_rule)
        check_images(X, name="X")
        return self

    def transform(self, X):
        """Compute the dense SIFT descriptors of every image.

        Parameters
        ----------
        X : list of ndarray or ndarray
            Images, see :func:`bowlrp._validation.check_images`: ``(H, W)``
            grayscale or ``(H, W, 3)`` RGB, float in ``[0, 1]`` or integer in
            ``0..255``; converted to 8-bit grayscale.

        Returns
        -------
        descriptor_sets : list of DescriptorSet
            One per image, descriptors ordered by level then row-major.
        """
        scales, steps = _check_params(self.scales, self.steps, self.rotate, self.n_jobs)
        images = check_images(X, name="X")
        rotate = bool(self.rotate)
        n_jobs = effective_n_jobs(self.n_jobs) if self.n_jobs is not None else 1
        if n_jobs == 1 or len(images) == 1:
            return _describe_images(images, scales, steps, rotate, 0)
        n_chunks = min(len(images), 4 * n_jobs)
        bounds = np.linspace(0, len(images), n_chunks + 1).astype(int)
        results = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(_describe_images)(images[a:b], scales, steps, rotate, a)
            for a, b in zip(bounds[:-1], bounds[1:])
            if b > a
        )
        return [ds for chunk in results for ds in chunk]

    def forward(self, X):
        """Return ``(transform(X), trace)``; the trace is the descriptor sets' geometry."""
        sets = self.transform(X)
        return sets, sets

    def relevance(self, relevance, trace, rule=None):
        """Map descriptor relevance to pixel relevance (eq. 2.84, 2.85; App. D.1.2).

        Parameters
        ----------
        relevance : list of array of shape (n_i,) or (n_i, 128)
            Relevance of each descriptor of each image (NumPy or CuPy), or
            of each descriptor dimension (eq. D.3, e.g. from
            ``FisherVectorEncoder``).
        trace : list of DescriptorSet
            The trace returned by :meth:`forward`.
        rule : {None, "auto", "flat", "bins"} or bowlrp.rules.Flat
            The pixel rule; ``None`` uses the estimator's ``pixel_rule``.
            ``"auto"``: the flat rule for per-descriptor relevance, the
            per-bin rule for per-dimension relevance.  ``"flat"`` (or a
            :class:`bowlrp.rules.Flat`): always the flat rule over the
            descriptor's square (per-dimension relevance is summed first).
            ``"bins"``: each 4 x 4 spatial bin's relevance spread over the
            bin's pixels (:func:`bin_pixel_relevance`; needs per-dimension
            relevance).  The rules of the mapping stages (proportional,
            epsilon, ...) have no meaning here and raise.

        Returns
        -------
        pixel_relevance : list of array of shape (H_i, W_i), float64
            Conserves relevance per image: ``R_p.sum() == R_l.sum()``.
        """
        rule = _pixel_rule(self.pixel_rule if rule is None else rule)
        if len(relevance) != len(trace):
            raise ValueError(
                f"relevance has {len(relevance)} entries but the trace has {len(trace)} images; "
                "pass one relevance array per image"
            )
        out = []
        for ds, r in zip(trace, relevance):
            if getattr(r, "ndim", 1) == 2:  # relevance per descriptor dimension (eq. D.3)
                out.append(flat_pixel_relevance(ds, r.sum(1)) if rule == "flat" else bin_pixel_relevance(ds, r))
            elif rule == "bins":
                raise ValueError("pixel_rule='bins' needs relevance per descriptor dimension, arrays of shape "
                                 "(n_i, 128) (e.g. from FisherVectorEncoder); use 'flat' or 'auto'")
            else:
                out.append(flat_pixel_relevance(ds, r))
        return out


def _pixel_rule(rule):
    """The name of a pixel rule of :class:`DenseSIFT`; refuse everything else with the valid names."""
    if isinstance(rule, Flat):
        return "flat"
    if isinstance(rule, Rule):
        raise ValueError(f"DenseSIFT maps descriptor relevance to pixels geometrically; the {rule.name!r} rule "
                         f"applies to mapping stages. Its pixel rules are {list(PIXEL_RULES)}")
    if rule not in PIXEL_RULES:
        raise ValueError(f"unknown pixel rule {rule!r} for DenseSIFT; valid pixel rules are {list(PIXEL_RULES)}")
    return rule
