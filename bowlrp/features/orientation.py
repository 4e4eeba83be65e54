"""Dominant gradient orientation of dense keypoints (Lowe 2004, Sec. 5), for rotated SIFT.

Lowe's rule, as OpenCV's detector applies it: a 36-bin histogram of gradient
orientations around the keypoint, each gradient weighted by its magnitude
and by a Gaussian window of std ``1.5 sigma`` (truncated at 3 std), split
linearly between the two nearest bins; the histogram is smoothed circularly
with ``[1, 4, 6, 4, 1] / 16`` and its highest peak refined by a parabola.
OpenCV does not expose this step for given keypoints, so it is computed
here, for a whole grid of keypoints and a batch of images at once.
"""

import contextlib
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from .._blas import one_thread

__all__ = ["ORI_BINS", "ORI_RADIUS_STDS", "ORI_WINDOW_SIGMAS", "dominant_orientations", "orientation_histograms"]

#: Number of bins of the orientation histogram (Lowe 2004, Sec. 5).
ORI_BINS = 36
#: Std of the Gaussian orientation window in units of sigma (Lowe 2004).
ORI_WINDOW_SIGMAS = 1.5
#: The Gaussian orientation window is truncated at this many std (OpenCV).
ORI_RADIUS_STDS = 3.0
#: Blur OpenCV assumes is already present in an input image.
_INIT_SIGMA = 0.5
#: Size (bytes) of the orientation channel images built at once: about a processor's L2 cache, so that
#: the products read them from there; a larger image is cut into bands of rows.
_CHANNEL_BYTES = 2 << 20
#: Images smoothed and split into orientation bins together.
_BATCH = 16
#: Channels per pixel: the 36 bins and a copy of bin 0 after bin 35, so that a pixel's second bin is
#: always its first plus one (the copy is folded back into bin 0).
_CHANNELS = ORI_BINS + 1
#: Columns one window matrix of the columns pass spans at most (unless one window is wider).
_COLUMN_SPAN = 128


#: The circular smoothing kernel of the orientation histogram (OpenCV).
_SMOOTHING = np.array([[1.0, 4.0, 6.0, 4.0, 1.0]]) / 16.0


def _smooth(hist):
    """Circular smoothing of 36-bin histograms ``(n, 36)`` with ``[1, 4, 6, 4, 1] / 16`` (as OpenCV).

    The histograms are padded circularly by two bins and filtered with
    OpenCV (which has no circular border for filters); no multi-threaded
    BLAS call runs beside OpenCV's threads.
    """
    if len(hist) == 0:
        return hist.copy()
    padded = np.concatenate([hist[:, -2:], hist, hist[:, :2]], axis=1)
    return cv2.filter2D(padded, -1, _SMOOTHING, borderType=cv2.BORDER_CONSTANT)[:, 2:-2]


def _window(sigma):
    """The truncated Gaussian orientation window: ``(taps, radius)``, float32 taps."""
    sw = ORI_WINDOW_SIGMAS * float(sigma)
    radius = max(1, int(round(ORI_RADIUS_STDS * sw)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sw) ** 2).astype(np.float32)
    return taps, radius


def _runs(centers, radius, span):
    """``(i0, i1)`` runs of the sorted ``centers`` whose windows together cover at most ``span`` pixels.

    Every run holds at least one centre; one window covers ``2 radius + 1`` pixels.
    """
    out, i0, n = [], 0, len(centers)
    reach = max(span - 2 * radius - 1, 0)
    while i0 < n:
        i1 = max(int(np.searchsorted(centers, centers[i0] + reach, side="right")), i0 + 1)
        out.append((i0, i1))
        i0 = i1
    return out


def _window_matrix(centers, lo, hi, taps):
    """``G[i, p - lo] = taps[p - centers[i] + r]`` for pixels ``lo <= p < hi`` inside window ``i``, else 0."""
    r = (len(taps) - 1) // 2
    d = np.arange(lo, hi)[None, :] - np.asarray(centers)[:, None] + r
    inside = (d >= 0) & (d <= 2 * r)
    return np.where(inside, taps[np.clip(d, 0, 2 * r)], np.float32(0.0)).astype(np.float32)


def _plan(centers, taps, axis_len, span):
    """The products of a separable window pass: ``(i0, i1, lo, hi, G)`` per run of nearby centres.

    Centres ``i0..i1-1`` (a run of :func:`_runs`, whose windows cover at most
    ``span`` pixels) get ``G @ A[lo:hi]``, ``G`` the window matrix
    (:func:`_window_matrix`) of the pixels ``lo..hi-1`` they reach inside
    ``0..axis_len-1``; each product reads ``O(span)`` rows, not all of them.
    """
    r = (len(taps) - 1) // 2
    plan = []
    for i0, i1 in _runs(centers, r, span):
        lo, hi = max(int(centers[i0]) - r, 0), min(int(centers[i1 - 1]) + r + 1, axis_len)
        G = _window_matrix(centers[i0:i1], lo, hi, taps)
        G.flags.writeable = False  # shared by every call with this layout
        plan.append((i0, i1, lo, hi, G))
    return tuple(plan)


def _apply(plan, A, out):
    """``out[i] = sum_t taps[t] A[centers[i] - r + t]`` over the rows of the 2-D ``A`` (zero outside)."""
    for i0, i1, lo, hi, G in plan:
        np.matmul(G, A[lo:hi], out=out[i0:i1])
    return out


@functools.lru_cache(maxsize=64)
def _layout(H, W, rows, cols, sigma, channel_bytes, column_span):
    """The products of :func:`_histograms` for one image shape, grid and scale (cached: grids repeat).

    Returns ``(bands, col_plan, h_max)``: per band of rows ``(m0, m1, lo, hi,
    row_plan)`` (grid rows ``m0..m1-1`` whose windows lie in image rows
    ``lo..hi-1``, small enough for the channel images of the band to stay in
    about ``channel_bytes``), the plan of the columns pass, and the most
    image rows of a band.
    """
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    taps, radius = _window(sigma)
    k = len(taps)
    band_rows = max(2 * k, channel_bytes // (W * _CHANNELS * 4))
    bands = []
    for m0, m1 in _runs(rows, radius, band_rows):  # channel images of rows lo..hi only
        lo, hi = max(int(rows[m0]) - radius, 0), min(int(rows[m1 - 1]) + radius + 1, H)
        bands.append((m0, m1, lo, hi, _plan(rows[m0:m1] - lo, taps, hi - lo, 2 * k)))
    col_plan = _plan(cols, taps, W, max(2 * k, column_span))
    return tuple(bands), col_plan, max(hi - lo for _, _, lo, hi, _ in bands)


#: Zeroed channel buffers not in use, shared by all threads (a thread's first call would otherwise
#: allocate, and fault in, a fresh one), and the pixel offsets ``37 p`` into them.
_BUFFERS = {"lock": threading.Lock(), "free": [], "base": np.zeros(0, np.intp)}
#: Buffers kept for reuse (those of very wide images, over ``4 * _CHANNEL_BYTES``, are not).
_KEPT_BUFFERS = 4


@contextlib.contextmanager
def _zeroed_buffer(size):
    """A zeroed float32 buffer of at least ``size`` values and the offsets of its pixels, ``(buffer, base)``.

    The caller leaves the buffer zeroed again; it goes back to the pool
    (zeroed first if the caller was interrupted).
    """
    with _BUFFERS["lock"]:
        buf = _BUFFERS["free"].pop() if _BUFFERS["free"] else None
        base = _BUFFERS["base"]
        if base.size < size // _CHANNELS:
            base = np.arange(size // _CHANNELS, dtype=np.intp) * _CHANNELS
            base.flags.writeable = False
            _BUFFERS["base"] = base
    if buf is None or buf.size < size:
        buf = np.zeros(size, np.float32)
    try:
        yield buf, base
    except BaseException:
        buf[:] = 0.0  # an interrupted image leaves the buffer dirty
        raise
    finally:
        with _BUFFERS["lock"]:
            if len(_BUFFERS["free"]) < _KEPT_BUFFERS and buf.nbytes <= 4 * _CHANNEL_BYTES:
                _BUFFERS["free"].append(buf)


def _bin_split(blurred):
    """Gradient magnitude split between two neighbouring orientation bins, per pixel.

    Central differences of the smoothed images (the outermost rows and
    columns get none, as in OpenCV), in the ``cv2.KeyPoint`` convention (rows
    pointing down).  Returns ``(first_bin, weight_first, weight_second)`` of
    shape (N, H, W): the second bin is ``first_bin + 1`` in the channel layout
    of :data:`_CHANNELS`.
    """
    N, H, W = blurred.shape
    dx = np.zeros_like(blurred)
    dy = np.zeros_like(blurred)
    np.subtract(blurred[:, 1:-1, 2:], blurred[:, 1:-1, :-2], out=dx[:, 1:-1, 1:-1])
    np.subtract(blurred[:, 2:, 1:-1], blurred[:, :-2, 1:-1], out=dy[:, 1:-1, 1:-1])
    mag = np.empty_like(blurred)
    ang = np.empty_like(blurred)
    for k in range(N):  # one OpenCV call per image: its result does not depend on the batch
        cv2.cartToPolar(dx[k], dy[k], magnitude=mag[k], angle=ang[k], angleInDegrees=True)
    pos = ang
    pos *= np.float32(ORI_BINS / 360.0)
    b0 = pos.astype(np.int32)
    # an angle of 360 (pos = 36) goes wholly to the second bin of 35, the copy of bin 0
    np.minimum(b0, ORI_BINS - 1, out=b0)
    np.subtract(pos, b0, out=pos, dtype=np.float32)  # fractional part: weight of the second bin
    v1 = pos
    v1 *= mag
    v0 = mag
    v0 -= v1
    return b0, v0, v1


def _histograms(images, rows, cols, sigma):
    """Window-weighted orientation histograms at every grid point ``(rows[i], cols[j])``, (N, n_r, n_c, 36).

    The blur and the bin split run on the whole batch; the channel images,
    the products and their buffers are per image (and per band of rows, for
    a large image) and sized to stay in the processor's cache.  The
    products of one image have the same shapes whatever else is in the
    batch, so its result does not depend on the batch.
    """
    H, W = images[0].shape
    C = _CHANNELS
    bands, col_plan, h_max = _layout(
        H, W, tuple(rows.tolist()), tuple(cols.tolist()), float(sigma), _CHANNEL_BYTES, _COLUMN_SPAN
    )
    out = np.empty((len(images), len(rows), len(cols), ORI_BINS), np.float32)
    with _zeroed_buffer(h_max * W * C) as (chans, base):
        for a in range(0, len(images), _BATCH):
            b0s, v0s, v1s = _bin_split(_blurred_stack(images[a:a + _BATCH], sigma))
            for n in range(len(b0s)):
                for m0, m1, lo, hi, row_plan in bands:
                    size = (hi - lo) * W
                    ch = chans[: size * C]
                    idx = base[:size] + b0s[n, lo:hi].ravel()
                    idx1 = idx + 1  # a pixel's second bin: the next channel
                    ch[idx] = v0s[n, lo:hi].ravel()
                    ch[idx1] = v1s[n, lo:hi].ravel()
                    b = m1 - m0
                    # rows pass: (b, h') @ (h', 37 W)
                    tmp = _apply(row_plan, ch.reshape(hi - lo, W * C), np.empty((b, W * C), np.float32))
                    ch[idx] = 0.0  # clean the buffer for the next image
                    ch[idx1] = 0.0
                    # columns pass, for every grid row at once: (n_c', W') @ (b, W', 37)
                    tmp = tmp.reshape(b, W, C)
                    hist = np.empty((b, len(cols), C), np.float32)
                    for i0, i1, lo_c, hi_c, G in col_plan:
                        hist[:, i0:i1] = np.matmul(G, tmp[:, lo_c:hi_c])
                    hist[..., 0] += hist[..., ORI_BINS]
                    out[a + n, m0:m1] = hist[..., :ORI_BINS]
    return out


def _blurred_stack(images, sigma):
    """The images smoothed to scale ``sigma`` (from OpenCV's assumed 0.5 pixel blur), float32 (N, H, W)."""
    s = math.sqrt(max(sigma * sigma - _INIT_SIGMA**2, 0.01))
    out = np.empty((len(images),) + images[0].shape, np.float32)
    for k, img in enumerate(images):
        cv2.GaussianBlur(img.astype(np.float32), (0, 0), s, dst=out[k], borderType=cv2.BORDER_REFLECT_101)
    return out


def _at_centers(grid, row_inv, col_inv):
    """``grid[:, row_inv, col_inv]``; a reshape when the centres are the full grid in row-major order."""
    n_r, n_c = grid.shape[1:3]
    if len(row_inv) == n_r * n_c and np.array_equal(row_inv * n_c + col_inv, np.arange(n_r * n_c)):
        return grid.reshape(grid.shape[0], n_r * n_c, grid.shape[3])
    return grid[:, row_inv, col_inv]


def _as_batch(images):
    if isinstance(images, np.ndarray) and images.ndim == 2:
        return [images], True
    images = list(images)
    if not images or any(np.ndim(im) != 2 or np.shape(im) != np.shape(images[0]) for im in images):
        raise ValueError("images must be one (H, W) grayscale image or a sequence of grayscale images of one shape")
    return [np.asarray(im) for im in images], False


def orientation_histograms(images, centers, sigma):
    """36-bin gradient-orientation histograms around integer ``centers`` (Lowe 2004, Sec. 5).

    The images are smoothed to scale ``sigma`` (assuming the 0.5 pixel blur
    OpenCV assumes for any input); each pixel's gradient magnitude is split
    linearly between the two nearest of 36 orientation bins, giving 36
    channel images, weighted with the Gaussian window of std ``1.5 sigma``
    (truncated at 3 std, as OpenCV) around every centre.  The window is
    separable, so the histograms of the whole grid are two matrix products
    per image: the window matrix of the rows that hold centres times the
    channel images (``(n_rows, H) @ (H, 37 W)``), then that of the columns,
    for all those rows at once (``(n_cols, W) @ (n_rows, W, 37)``).  Both
    matrices are banded, and each product runs over runs of nearby centres
    only, so the work is ``O(37 H W k / step)`` for a window of ``k`` taps
    and a grid step ``step``, with no Python loop over keypoints.  The
    window matrices of a grid are built once and cached; the channel images
    of one image (or of a band of rows of a large one) fit a processor
    cache and are built in a reused per-thread buffer; NumPy's BLAS runs on
    one thread for these small products.  An image's histograms do not
    depend on the other images of the batch.

    Parameters
    ----------
    images : ndarray of shape (H, W), or sequence of them (all one shape)
        Grayscale images (8-bit or float).
    centers : array of shape (n, 2)
        Integer ``(x, y) = (column, row)`` centres.
    sigma : float
        Scale of the keypoints.

    Returns
    -------
    hist : ndarray of shape (n, 36), or (N, n, 36) for a sequence, float64
        Bin ``b`` collects gradient angles around ``10 b`` degrees in the
        ``cv2.KeyPoint.angle`` convention (``atan2(dI/drow, dI/dcol)``).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.tile(np.arange(40, dtype=np.float64), (40, 1))  # brightness grows to the right
    >>> h = orientation_histograms(img, np.array([[20, 20]]), 2.0)
    >>> h.shape, int(h[0].argmax())  # 36 bins of 10 degrees; the gradient points along +x: bin 0
    ((1, 36), 0)
    """
    hist, single = _center_histograms(images, centers, sigma)
    hist = hist.astype(np.float64)
    return hist[0] if single else hist


def _center_histograms(images, centers, sigma):
    """:func:`orientation_histograms` as float32 ``(N, n, 36)``, and whether one image was given."""
    images, single = _as_batch(images)
    centers = np.asarray(centers).reshape(-1, 2)
    x = np.rint(centers[:, 0]).astype(np.intp)
    y = np.rint(centers[:, 1]).astype(np.intp)
    if len(centers) == 0:
        return np.zeros((len(images), 0, ORI_BINS), np.float32), single
    rows, row_inv = np.unique(y, return_inverse=True)
    cols, col_inv = np.unique(x, return_inverse=True)
    with one_thread():
        grid = _histograms(images, rows, cols, sigma)
    return _at_centers(grid, row_inv.ravel(), col_inv.ravel()), single


def dominant_orientations(images, centers, sigma):
    """Dominant gradient orientation at integer ``centers`` (Lowe 2004, Sec. 5).

    The 36-bin histograms of :func:`orientation_histograms` are smoothed
    circularly with ``[1, 4, 6, 4, 1] / 16`` (as OpenCV) and the highest
    peak is refined by parabolic interpolation through it and its two
    neighbours.  OpenCV's detector adds a keypoint for every further peak
    above 80 % of the highest; a dense grid keeps one orientation per
    keypoint.

    Returns angles in degrees in the ``cv2.KeyPoint.angle`` convention
    (``atan2(dI/drow, dI/dcol)`` with rows pointing down, in ``[0, 360)``),
    of shape (n,) for one image, (N, n) for a sequence.  OpenCV's
    ``compute`` turns it into ``360 - angle``, the angle of its own
    gradients (``dy = I(y-1, x) - I(y+1, x)``, up positive), so the
    descriptor is built in the frame of the dominant gradient.  A keypoint
    without any gradient in its window gets angle 0.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.orientation import dominant_orientations
    >>> ramp = np.tile(np.linspace(0, 255, 60), (60, 1)).astype(np.uint8)  # brighter to the right
    >>> np.round(dominant_orientations(ramp, [[30, 30]], 2.0), 3).tolist()
    [0.0]
    >>> np.round(dominant_orientations([ramp.T, ramp[:, ::-1]], [[30, 30]], 2.0), 3).tolist()
    [[90.0], [180.0]]
    """
    hist, single = _center_histograms(images, centers, sigma)
    shape = hist.shape[1:-1] if single else hist.shape[:-1]
    hist = _smooth(hist.reshape(-1, ORI_BINS).astype(np.float64))  # circular [1, 4, 6, 4, 1] / 16, as OpenCV
    j = np.argmax(hist, axis=1)
    near = np.take_along_axis(hist, (j[:, None] + np.array([-1, 0, 1])) % ORI_BINS, axis=1)
    left, c, right = near[:, 0], near[:, 1], near[:, 2]
    denom = left - 2.0 * c + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(denom < 0, 0.5 * (left - right) / denom, 0.0)
    angles = ((j + offset) * (360.0 / ORI_BINS)) % 360.0
    angles[c <= 0] = 0.0  # flat patch: no gradient, no orientation
    return angles.reshape(shape)


def _level_orientations(grays, centers, levels, scales, n_threads):
    """Dominant orientations of the keypoints of a multi-level grid on images of one shape (Lowe 2004, Sec. 5).

    ``centers`` and ``levels`` list every keypoint of the grid and its scale
    level, sorted by level; returns the angles ``(N, n)``.  One
    :func:`dominant_orientations` batch per scale level.  With
    ``n_threads > 1`` the batches (the levels, and halves of the images of a
    level when there are fewer levels than threads) run side by side in
    threads: NumPy's products and OpenCV's filters release the GIL.  An
    image's angles do not depend on which batch it is in, so the result does
    not depend on ``n_threads``.
    """
    n = len(grays)
    parts = max(1, min(n, -(-n_threads // len(scales))))  # image chunks per level
    bounds = np.linspace(0, n, parts + 1).astype(int)
    tasks = [(k, a, b) for k in range(len(scales)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def run(task):
        k, a, b = task
        return dominant_orientations(grays[a:b], centers[levels == k], scales[k]).reshape(b - a, -1)

    with one_thread():  # set once for all batches (and threads) of the call
        if n_threads > 1 and len(tasks) > 1:
            with ThreadPoolExecutor(max_workers=min(n_threads, len(tasks)) - 1) as pool:
                futures = [pool.submit(run, t) for t in tasks[1:]]
                done = [run(tasks[0])] + [f.result() for f in futures]
        else:
            done = [run(t) for t in tasks]
    per_level = [np.concatenate([d for t, d in zip(tasks, done) if t[0] == k], axis=0) for k in range(len(scales))]
    return np.concatenate(per_level, axis=1)
