"""Shared helpers for the photograph tests: image folders in every format, a small trained model.

Not a test module (pytest collects ``test_*.py`` only); the tests import it.
"""

import os
import struct

import cv2
import numpy as np

#: Small, fast model settings: one upright SIFT scale, eight words.
SMALL_PARAMS = {"sift__scales": (2.0,), "sift__steps": (6,), "sift__rotate": False, "bow__n_words": 8}
SMALL_PARAM_ARGS = [f"{k}={v!r}" for k, v in SMALL_PARAMS.items()]


def synthetic_image(kind, size, rng):
    """A grayscale uint8 image of class ``kind``: "stripes" (a grating) or "spots" (blobs)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    if kind == "stripes":
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(5, 8)
        img = 0.5 + 0.4 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
    else:
        img = np.full((size, size), 0.5)
        for _ in range(10):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, 4)
            img += 0.4 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) * rng.choice([-1, 1])
    img += rng.normal(0, 0.03, img.shape)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


FORMATS = ("png", "jpg", "tif", "bmp", "webp")


def write(path, img, params=()):
    """Write ``img`` (RGB or gray, uint8 or uint16) with OpenCV, creating the folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 and img.shape[2] == 3 else img
    if img.ndim == 3 and img.shape[2] == 4:
        arr = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(os.path.splitext(path)[1], arr, list(params))
    assert ok, path
    buf.tofile(path)
    return path


def synthetic_folder(root, n_per_class=10, size=48, seed=0, broken=True):
    """``root/stripes`` and ``root/spots``, the formats used in turn; plus one broken PNG when asked.

    Returns the list of good paths and the broken file's path (or None).
    """
    rng = np.random.default_rng(seed)
    paths = []
    for kind in ("stripes", "spots"):
        for i in range(n_per_class):
            ext = FORMATS[i % len(FORMATS)]
            params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []
            paths.append(write(os.path.join(root, kind, f"{kind}_{i:02d}.{ext}"), synthetic_image(kind, size, rng),
                               params))
    bad = None
    if broken:
        bad = os.path.join(root, "spots", "broken.png")
        with open(bad, "wb") as fh:
            fh.write(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    return paths, bad


def jpeg_with_orientation(path, rgb, orientation):
    """Write a JPEG carrying an EXIF orientation tag (1..8), as cameras do."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    data = buf.tobytes()
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    app1 = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data[:2] + segment + data[2:])
    return path


def fitted_small_model(root, seed=0):
    """A bow-hik model with :data:`SMALL_PARAMS` fitted on :func:`synthetic_folder` images."""
    import warnings

    from bowlrp.apps.models import make_model
    from bowlrp.datasets import SkippedFilesWarning, load_image_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)  # the broken file is the point of other tests
        data = load_image_folder(root, gray=True)
    pipe = make_model("bow-hik", SMALL_PARAMS, random_state=seed)
    y = np.asarray(data.target_names)[data.target]
    return pipe.fit(data.images, y), data
