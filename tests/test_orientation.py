"""Tests of the orientation step's machinery: threads, the cached layout and buffers.

The orientation rule itself (Lowe 2004, Sec. 5) is checked against a slow
pixel-by-pixel reference in tests/test_sift.py.
"""

import cv2
import numpy as np
import pytest

import bowlrp.features.orientation as ori
from bowlrp.features import DenseSIFT, grid_centers
from bowlrp.features.orientation import dominant_orientations, orientation_histograms
from bowlrp.features.orientation import _level_orientations
from test_blas import blas_thread_counts


def _textured(shape, seed=0, blur=1.5):
    rng = np.random.default_rng(seed)
    img = (rng.random(shape) * 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), blur)


def test_smoothing_is_the_circular_binomial_filter():
    """``_smooth`` is the product with the circulant matrix of [1, 4, 6, 4, 1] / 16, bin by bin."""
    h = np.random.default_rng(0).random((5, ori.ORI_BINS))
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    ref = np.array([[sum(kernel[t] * row[(b + t - 2) % 36] for t in range(5)) for b in range(36)] for row in h])
    np.testing.assert_allclose(ori._smooth(h), ref, rtol=1e-14)
    assert ori._smooth(np.zeros((0, ori.ORI_BINS))).shape == (0, ori.ORI_BINS)


def test_level_orientations_do_not_depend_on_threads():
    """The levels (and halves of the images) on threads give the angles of the serial computation."""
    imgs = [_textured((70, 90), seed=s) for s in range(3)]
    scales = (2.0, 3.0)
    centers = np.concatenate([grid_centers((70, 90), s, st) for s, st in zip(scales, (6, 9))])
    levels = np.concatenate([np.full(len(grid_centers((70, 90), s, st)), k) for k, (s, st) in
                             enumerate(zip(scales, (6, 9)))])
    serial = _level_orientations(imgs, centers, levels, scales, 1)
    for n in (2, 3, 8):
        np.testing.assert_array_equal(_level_orientations(imgs, centers, levels, scales, n), serial)
    one = _level_orientations(imgs, centers[levels == 0], levels[levels == 0], scales[:1], 2)
    np.testing.assert_array_equal(one, serial[:, : int(np.sum(levels == 0))])
    ref = np.stack([np.concatenate([dominant_orientations(im, centers[levels == k], s) for k, s in enumerate(scales)])
                    for im in imgs])
    np.testing.assert_array_equal(serial, ref)


@pytest.mark.parametrize("level_threads_from", [0, None])
def test_dense_sift_does_not_depend_on_opencv_threads(level_threads_from, monkeypatch):
    """With OpenCV on two threads the levels run side by side (for large images, or all with 0): same result."""
    import bowlrp.features.sift as sift  # noqa: PLC0415

    if level_threads_from is not None:
        monkeypatch.setattr(sift, "_LEVEL_THREADS_MIN_PIXELS", level_threads_from)
    imgs = [_textured((80, 100), seed=s) for s in range(3)]
    n = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = DenseSIFT(rotate=True).transform(imgs)
        cv2.setNumThreads(2)
        two = DenseSIFT(rotate=True).transform(imgs)
    finally:
        cv2.setNumThreads(n)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.angles, b.angles)
        np.testing.assert_array_equal(a.descriptors, b.descriptors)


def test_an_interrupted_image_leaves_the_channel_buffer_clean(monkeypatch):
    img = _textured((60, 70), seed=3)
    centers = grid_centers((60, 70), 2.0, 6)
    expected = orientation_histograms(img, centers, 2.0)

    def fail(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(ori, "_apply", fail)  # after the channel images are written
        with pytest.raises(KeyboardInterrupt):
            orientation_histograms(img, centers, 2.0)
    assert ori._BUFFERS["free"] and not any(np.any(b) for b in ori._BUFFERS["free"])
    np.testing.assert_array_equal(orientation_histograms(img, centers, 2.0), expected)


def test_layout_is_shared_and_read_only():
    """The window matrices of a grid are built once and cannot be changed by a caller."""
    rows = cols = tuple(range(12, 60, 6))
    a = ori._layout(72, 72, rows, cols, 2.0, ori._CHANNEL_BYTES, ori._COLUMN_SPAN)
    b = ori._layout(72, 72, rows, cols, 2.0, ori._CHANNEL_BYTES, ori._COLUMN_SPAN)
    assert a is b
    G = a[1][0][4]
    with pytest.raises(ValueError, match="read-only"):
        G[0, 0] = 1.0


def test_dense_sift_threads_leave_blas_as_it_was():
    """Joblib threads and the threads of the levels leave NumPy's BLAS with its thread count."""
    before = blas_thread_counts()
    imgs = [_textured((70, 80), seed=s) for s in range(5)]
    n = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        a = DenseSIFT(rotate=True, n_jobs=2).transform(imgs)
        b = DenseSIFT(rotate=True).transform(imgs)
    finally:
        cv2.setNumThreads(n)
    assert blas_thread_counts() == before
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.angles, y.angles)
