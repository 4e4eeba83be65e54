"""Dominant gradient orientation of dense keypoints (Lowe 2004, Sec. 5), for rotated SIFT."""

import math

import cv2
import numpy as np

__all__ = ["ORI_BINS", "ORI_RADIUS_STDS", "ORI_WINDOW_SIGMAS", "dominant_orientations"]

#: Number of bins of the orientation histogram (Lowe 2004, Sec. 5).
ORI_BINS = 36
#: Std of the Gaussian orientation window in units of sigma (Lowe 2004).
ORI_WINDOW_SIGMAS = 1.5
#: The Gaussian orientation window is truncated at this many std (OpenCV).
ORI_RADIUS_STDS = 3.0
#: Blur OpenCV assumes is already present in an input image.
_INIT_SIGMA = 0.5


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


def dominant_orientations(gray, centers, sigma):
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
