"""Users' own photographs: read one image file, or a folder with one sub-folder per class.

Files are decoded by OpenCV (PNG, JPEG, TIFF, BMP, WebP; 8- and 16-bit;
grayscale, RGB and RGBA).  Every image comes back in the form the rest of
bowlrp reads (``bowlrp._validation.check_images``): ``uint8``, ``(H, W)``
grayscale or ``(H, W, 3)`` RGB.
"""

import contextlib
import os

import cv2
import numpy as np

__all__ = ["read_image", "IMAGE_EXTENSIONS"]

#: File name endings (lower case) that are read as images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# The eight orientations an EXIF tag can ask for, as operations on an (H, W, ...) array.
_DIHEDRAL = (
    lambda a: a,
    lambda a: a[:, ::-1],
    lambda a: a[::-1, ::-1],
    lambda a: a[::-1],
    lambda a: a.swapaxes(0, 1),
    lambda a: a.swapaxes(0, 1)[:, ::-1],
    lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    lambda a: a.swapaxes(0, 1)[::-1],
)


@contextlib.contextmanager
def _quiet_opencv():
    """Silence OpenCV's own stderr messages while decoding; bowlrp reports failures itself."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _check_max_side(max_side):
    if max_side is None:
        return None
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 1:
        raise ValueError(f"max_side must be a positive integer (pixels) or None, got {max_side!r}")
    return int(max_side)


def _to_uint8(img, path):
    """8-bit intensities from an 8-bit, 16-bit or [0, 1] floating-point decode."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        # The full 16-bit range maps onto 0..255 (65535 / 257 = 255); no per-image stretching.
        return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.dtype.kind == "f":
        if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
            raise ValueError(
                f"cannot read image {path!r}: it holds floating-point values outside [0, 1]; "
                "save it as an 8- or 16-bit image"
            )
        return np.rint(img * 255).astype(np.uint8)
    raise ValueError(
        f"cannot read image {path!r}: pixel type {img.dtype} is not supported; save it as an 8- or 16-bit image"
    )


def _may_have_alpha(buf):
    """Whether the encoded file can carry an alpha channel (saves a second decode of JPEGs)."""
    head = bytes(buf[:26])
    if head[:3] == b"\xff\xd8\xff":  # JPEG: never
        return False
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26:
        return head[25] in (4, 6)  # IHDR colour type: gray + alpha, RGBA
    return True


def _alpha_over_white(bgr, raw):
    """Composite an oriented 3-channel decode over white, with the alpha of the raw 4-channel decode.

    OpenCV applies the EXIF orientation only when it drops the alpha channel,
    so the raw decode is brought to the same orientation by the one of the
    eight flips and rotations that makes its colour channels equal the oriented
    decode (identical decoder output, so the match is exact).
    """
    for op in _DIHEDRAL:
        cand = op(raw)
        if cand.shape[:2] == bgr.shape[:2] and np.array_equal(cand[..., :3], bgr):
            alpha = cand[..., 3:4].astype(np.float32) / np.float32(np.iinfo(raw.dtype).max)
            white = np.float32(np.iinfo(raw.dtype).max)
            out = bgr.astype(np.float32) * alpha + white * (1 - alpha)
            return np.rint(out).astype(raw.dtype)
    return bgr  # not reached for well-formed files; keep the colours as decoded


def read_image(path, max_side=None, gray=False):
    """Read one image file as an 8-bit array the pipelines accept.

    Parameters
    ----------
    path : str or path-like
        A PNG, JPEG, TIFF, BMP or WebP file (anything OpenCV decodes).
    max_side : int or None, default=None
        Cap on the longer side in pixels.  A larger image is shrunk, keeping
        its aspect ratio, with area averaging (``cv2.INTER_AREA``); a smaller
        one is left as it is.  ``None`` keeps the full size.
    gray : bool, default=False
        Return ``(H, W)`` grayscale (``0.299 R + 0.587 G + 0.114 B``, the
        conversion dense SIFT applies itself).  With ``False`` a grayscale
        file comes back ``(H, W)`` and a colour file ``(H, W, 3)`` RGB.

    Returns
    -------
    image : ndarray of dtype uint8, shape (H, W) or (H, W, 3)
        RGB channel order.  16-bit files are scaled by ``1/257`` (the full
        16-bit range onto 0..255); the alpha of RGBA files is composited over
        white; the EXIF orientation of a photograph is applied.

    Raises
    ------
    FileNotFoundError, PermissionError, OSError
        When the file cannot be opened.
    ValueError
        When it is not an image OpenCV decodes (broken, truncated or another
        format), or for an unsupported pixel type, or a bad ``max_side``.

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.datasets import read_image
    >>> path = os.path.join(tempfile.mkdtemp(), "wide.png")
    >>> _ = cv2.imwrite(path, np.zeros((300, 1200, 3), np.uint8))
    >>> read_image(path).shape, read_image(path, max_side=400, gray=True).shape
    ((300, 1200, 3), (100, 400))
    """
    max_side = _check_max_side(max_side)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot read image {path!r}: it is a folder, not an image file")
    buf = np.fromfile(path, dtype=np.uint8)  # also works for non-ASCII paths, unlike cv2.imread on Windows
    if buf.size == 0:
        raise ValueError(f"cannot read image {path!r}: the file is empty")
    with _quiet_opencv():
        try:
            # ANYDEPTH keeps 16 bits; ANYCOLOR keeps gray as gray; both apply the EXIF orientation.
            img = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
            raw = None
            if img is not None and img.ndim == 3 and _may_have_alpha(buf):
                raw = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise ValueError(f"cannot read image {path!r}: OpenCV failed to decode it ({exc.err})") from exc
    if img is None or img.size == 0:
        raise ValueError(
            f"cannot read image {path!r}: OpenCV could not decode it (a broken or truncated file, "
            f"or not one of {', '.join(IMAGE_EXTENSIONS)})"
        )
    if raw is not None and raw.ndim == 3 and raw.shape[2] == 4 and raw.dtype == img.dtype:
        img = _alpha_over_white(img, raw)
    del raw
    if img.ndim == 3 and bytes(buf[:8]) == b"\x89PNG\r\n\x1a\n" and buf.size > 25 and buf[25] == 4:
        img = img[..., 0]  # a gray + alpha PNG, decoded as three equal channels
    img = _to_uint8(img, path)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB)
    if max_side is not None and max(img.shape[:2]) > max_side:
        h, w = img.shape[:2]
        f = max_side / max(h, w)
        size = (max(1, int(round(w * f))), max(1, int(round(h * f))))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)
