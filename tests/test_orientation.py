"""Tests of the orientation step's machinery: threads, the BLAS limit, the cached layout and buffers.

The orientation rule itself (Lowe 2004, Sec. 5) is checked against a slow
pixel-by-pixel reference in tests/test_sift.py.
"""

import threading

import cv2
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import bowlrp.features.orientation as ori
from bowlrp.features import DenseSIFT, grid_centers
from bowlrp.features.orientation import dominant_orientations, orientation_histograms
from bowlrp.features.orientation import _level_orientations


def _textured(shape, seed=0, blur=1.5):
    rng = np.random.default_rng(seed)
    img = (rng.random(shape) * 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), blur)


def _blas_threads():
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def test_smoothing_is_the_circular_binomial_filter():
    """``_smooth`` is the product with the circulant matrix of [1, 4, 6, 4, 1] / 16, bin by bin."""
    h = np.random.default_rng(0).random((5, ori.ORI_BINS))
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    ref = np.array([[sum(kernel[t] * row[(b + t - 2) % 36] for t in range(5)) for b in range(36)] for row in h])
    np.testing.assert_allclose(ori._smooth(h), ref, rtol=1e-14)
    assert ori._smooth(np.zeros((0, ori.ORI_BINS))).shape == (0, ori.ORI_BINS)


def _run_in_threads(steps):
    """Run ``steps``, a list of ``(thread name, action)``, one after the other, each in its own live thread.

    Actions: ``"enter"`` and ``"exit"`` of ``_one_blas_thread`` (nested
    entries of one thread allowed), ``"check"`` records the BLAS thread
    counts.  All threads stay alive until the end, so that threadpoolctl's
    rule (only the thread that set OpenBLAS's limit may change it while it
    lives) applies.
    """
    names = sorted({name for name, _ in steps})
    todo = {n: [] for n in names}
    seen = []
    go = {n: threading.Event() for n in names}
    done = threading.Event()
    stop = threading.Event()

    def worker(name):
        stack = []
        while not stop.is_set():
            if not go[name].wait(0.01):
                continue
            go[name].clear()
            action = todo[name].pop(0)
            if action == "enter":
                ctx = ori._one_blas_thread()
                ctx.__enter__()
                stack.append(ctx)
            elif action == "exit":
                stack.pop().__exit__(None, None, None)
            else:
                seen.append(_blas_threads())
            done.set()

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    try:
        for name, action in steps:
            todo[name].append(action)
            done.clear()
            go[name].set()
            assert done.wait(10), f"thread {name} did not {action}"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    return seen


@pytest.mark.parametrize(
    "steps",
    [
        # the holder leaves first: the other thread ends unlimited, and nobody leaves BLAS limited
        [("a", "enter"), ("b", "enter"), ("a", "check"), ("a", "exit"), ("b", "exit")],
        [("a", "enter"), ("b", "enter"), ("b", "exit"), ("a", "check"), ("a", "exit")],
        # nested contexts of one thread: the inner exit keeps the limit
        [("a", "enter"), ("a", "enter"), ("a", "exit"), ("a", "check"), ("a", "exit")],
        # a thread entering after the holder left takes the limit over
        [("a", "enter"), ("a", "exit"), ("b", "enter"), ("b", "check"), ("b", "exit"), ("a", "enter"),
         ("a", "exit")],
    ],
    ids=["holder-leaves-first", "holder-leaves-last", "nested", "handed-over"],
)
def test_blas_limit_is_restored_whatever_the_order(steps):
    """BLAS runs on one thread while the holder of the limit is inside, and as before once all have left."""
    before = _blas_threads()
    seen = _run_in_threads(steps)
    assert all(counts == [1] * len(before) for counts in seen)
    assert _blas_threads() == before
    assert ori._BLAS["owner"] is None


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
    before = _blas_threads()
    imgs = [_textured((70, 80), seed=s) for s in range(5)]
    n = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        a = DenseSIFT(rotate=True, n_jobs=2).transform(imgs)
        b = DenseSIFT(rotate=True).transform(imgs)
    finally:
        cv2.setNumThreads(n)
    assert _blas_threads() == before
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.angles, y.angles)
