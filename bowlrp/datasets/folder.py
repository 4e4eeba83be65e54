"""Users' own photographs: read one image file, or a folder with one sub-folder per class.

Files are decoded by OpenCV (PNG, JPEG, TIFF, BMP, WebP; 8- and 16-bit;
grayscale, RGB and RGBA).  Every image comes back in the form the rest of
bowlrp reads (``bowlrp._validation.check_images``): ``uint8``, ``(H, W)``
grayscale or ``(H, W, 3)`` RGB.
"""

import contextlib
import os
import threading
import warnings

import cv2
import numpy as np
from joblib import Parallel, delayed
from sklearn.utils import Bunch
from tqdm.auto import tqdm

__all__ = [
    "IMAGE_EXTENSIONS",
    "SkippedFilesWarning",
    "find_images",
    "is_image_file",
    "list_image_folder",
    "load_image_folder",
    "read_image",
    "read_images",
    "warn_skipped",
]

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


_QUIET = {"lock": threading.Lock(), "depth": 0, "level": None}


@contextlib.contextmanager
def _quiet_opencv():
    """Silence OpenCV's own stderr messages while decoding; bowlrp reports failures itself.

    The log level is global to OpenCV: threads reading at the same time share
    one silenced period, and the level is restored when the last one leaves.
    """
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    with _QUIET["lock"]:
        if _QUIET["depth"] == 0:
            _QUIET["level"] = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET["lock"]:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0:
                logging.setLogLevel(_QUIET["level"])


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
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "wide.png")
    ...     _ = cv2.imwrite(path, np.zeros((300, 1200, 3), np.uint8))
    ...     read_image(path).shape, read_image(path, max_side=400, gray=True).shape
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


class SkippedFilesWarning(UserWarning):
    """Some files of an image folder were skipped; the reader's result lists them in ``skipped``.

    Examples
    --------
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")
    ...     warn_skipped([("cats/notes.txt", "not an image file (.txt)")])
    Traceback (most recent call last):
    bowlrp.datasets.folder.SkippedFilesWarning: skipped 1 file(s): cats/notes.txt (not an image file (.txt))
    """


def _is_hidden(name):
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini", "__MACOSX")


def is_image_file(path):
    """Whether ``path`` ends in one of :data:`IMAGE_EXTENSIONS` (case-insensitive).

    Examples
    --------
    >>> is_image_file("holiday/beach.JPG"), is_image_file("notes.txt")
    (True, False)
    """
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _walk_files(folder):
    """Every non-hidden file under ``folder``, sorted, following the folder order."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        out.extend(os.path.join(root, f) for f in sorted(files) if not _is_hidden(f))
    return out


def _not_an_image(path):
    ext = os.path.splitext(path)[1] or "no extension"
    return f"not an image file ({ext}); image files end in {', '.join(IMAGE_EXTENSIONS)}"


def _check_folder(folder):
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"image folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise NotADirectoryError(
            f"{folder!r} is a file, not an image folder; pass a folder with one sub-folder of images per class"
        )
    return folder


def list_image_folder(folder):
    """The image files of a folder with one sub-folder per class, without reading them.

    Parameters
    ----------
    folder : str or path-like
        ``folder/<class name>/<image files>``; files in nested folders of a
        class folder belong to that class.  Hidden files and folders (name
        starting with a dot) are ignored.

    Returns
    -------
    listing : Bunch
        ``paths`` (list of str), ``target`` (ndarray of int, index into
        ``target_names``), ``target_names`` (class folder names, sorted) and
        ``skipped``: ``(path, reason)`` for every other file (files outside a
        class folder, files without an image extension).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        When ``folder`` does not exist or is a file.
    ValueError
        When ``folder`` has no class sub-folders, or a class folder has no
        image files.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = [os.makedirs(os.path.join(root, d)) for d in ("cat", "dog")]
    ...     _ = [open(os.path.join(root, f), "w").close() for f in ("cat/a.png", "dog/b.jpg", "dog/notes.txt")]
    ...     listing = list_image_folder(root)  # reads no file: empty ones will do
    >>> listing.target_names, listing.target, [os.path.basename(p) for p, _ in listing.skipped]
    (['cat', 'dog'], array([0, 1]), ['notes.txt'])
    """
    folder = _check_folder(folder)
    entries = sorted(e for e in os.listdir(folder) if not _is_hidden(e))
    classes = [e for e in entries if os.path.isdir(os.path.join(folder, e))]
    skipped = [(os.path.join(folder, e), "not inside a class sub-folder") for e in entries if e not in classes]
    if not classes:
        what = f"only {len(skipped)} loose file(s)" if skipped else "nothing"
        raise ValueError(
            f"image folder {folder!r} has no class sub-folders ({what}); put the images of each class "
            f"into a sub-folder named after the class: {os.path.join(folder, '<class>', '<image>.png')}"
        )
    paths, target, empty = [], [], []
    for k, name in enumerate(classes):
        files = _walk_files(os.path.join(folder, name))
        images = [f for f in files if is_image_file(f)]
        skipped.extend((f, _not_an_image(f)) for f in files if not is_image_file(f))
        if not images:
            empty.append(os.path.join(folder, name))
        paths.extend(images)
        target.extend([k] * len(images))
    if empty:
        raise ValueError(
            f"class folder(s) {', '.join(repr(e) for e in empty)} hold no image files "
            f"({', '.join(IMAGE_EXTENSIONS)}); every class needs images (or remove the empty folder)"
        )
    return Bunch(paths=paths, target=np.asarray(target, dtype=np.intp), target_names=classes, skipped=skipped)


def find_images(inputs):
    """Image files from any mix of files and folders (folders are searched recursively).

    Parameters
    ----------
    inputs : str, path-like, or a sequence of them
        Files are taken as they are (a file with another extension is still
        tried, so that a wrong file is reported rather than ignored); in
        folders, files ending in one of :data:`IMAGE_EXTENSIONS` are taken and
        any other file is reported in ``skipped``.

    Returns
    -------
    paths : list of str
        In the order given, each folder's files sorted; duplicates removed.
    skipped : list of (str, str)
        ``(path, reason)`` for files in the folders that are not images.

    Raises
    ------
    FileNotFoundError
        For an input that does not exist.
    ValueError
        When no image file is found at all.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = [open(os.path.join(root, f), "w").close() for f in ("b.png", "a.jpg", "notes.txt")]
    ...     paths, skipped = find_images([root, os.path.join(root, "a.jpg")])  # a.jpg is taken once
    >>> [os.path.basename(p) for p in paths], [os.path.basename(p) for p, _ in skipped]
    (['a.jpg', 'b.png'], ['notes.txt'])
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    paths, skipped, seen = [], [], set()
    for item in inputs:
        item = os.fspath(item)
        if not os.path.exists(item):
            raise FileNotFoundError(f"input {item!r} does not exist (pass image files or folders of images)")
        found = [item] if not os.path.isdir(item) else _walk_files(item)
        for f in found:
            if os.path.isdir(item) and not is_image_file(f):
                skipped.append((f, _not_an_image(f)))
                continue
            key = os.path.abspath(f)
            if key not in seen:
                seen.add(key)
                paths.append(f)
    if not paths:
        raise ValueError(
            f"no image files found in {', '.join(repr(os.fspath(i)) for i in inputs)} "
            f"(image files end in {', '.join(IMAGE_EXTENSIONS)})"
        )
    return paths, skipped


def _try_read(path, max_side, gray):
    try:
        return read_image(path, max_side=max_side, gray=gray), None
    except (OSError, ValueError) as exc:
        return None, str(exc)


def warn_skipped(skipped, stacklevel=3):
    """Warn with :class:`SkippedFilesWarning` about ``(path, reason)`` pairs (at most ten named)."""
    if not skipped:
        return
    shown = "; ".join(f"{p} ({r})" for p, r in skipped[:10])
    more = f"; and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    warnings.warn(f"skipped {len(skipped)} file(s): {shown}{more}", SkippedFilesWarning, stacklevel=stacklevel)


def read_images(paths, max_side=None, gray=False, n_jobs=None, verbose=False, desc="reading images"):
    """Read many files with :func:`read_image`; unreadable ones are returned, not raised.

    Returns
    -------
    images : list of ndarray
        The images that could be read, in order.
    kept : ndarray of int
        Their positions in ``paths``.
    failed : list of (str, str)
        ``(path, reason)`` of the others.

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> with tempfile.TemporaryDirectory() as root:
    ...     good, bad = os.path.join(root, "a.png"), os.path.join(root, "b.png")
    ...     _ = cv2.imwrite(good, np.zeros((40, 60, 3), np.uint8)), open(bad, "w").close()
    ...     images, kept, failed = read_images([bad, good])  # b.png is empty
    >>> images[0].shape, kept, failed[0][1].endswith("the file is empty")
    ((40, 60, 3), array([1]), True)
    """
    paths = [os.fspath(p) for p in paths]
    jobs = (delayed(_try_read)(p, max_side, gray) for p in paths)
    # OpenCV decodes without the GIL: threads read in parallel and share the results without copies.
    results = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(jobs)
    images, kept, failed = [], [], []
    for i, (img, err) in enumerate(tqdm(results, total=len(paths), desc=desc, unit="image", disable=not verbose)):
        if err is None:
            images.append(img)
            kept.append(i)
        else:
            failed.append((paths[i], err))
    return images, np.asarray(kept, dtype=np.intp), failed


def load_image_folder(folder, max_side=None, gray=False, n_jobs=None, verbose=False):
    """Read a folder of photographs with one sub-folder per class.

    Parameters
    ----------
    folder : str or path-like
        ``folder/<class name>/*.png|jpg|jpeg|tif|tiff|bmp|webp`` (nested
        folders inside a class folder belong to the class; hidden files are
        ignored).  Classes are the sub-folder names in sorted order.
    max_side : int or None, default=None
        Cap on the longer side of every image (see :func:`read_image`).
    gray : bool, default=False
        Convert every image to ``(H, W)`` grayscale (what dense SIFT uses;
        a third of the memory of RGB).
    n_jobs : int or None, default=None
        joblib threads reading files in parallel.
    verbose : bool, default=False
        Show a progress bar.

    Returns
    -------
    data : Bunch
        ``images`` (list of uint8 arrays, see :func:`read_image`), ``target``
        (ndarray of int, index into ``target_names``), ``target_names``
        (list of str), ``paths`` (list of str, one per image) and ``skipped``
        (list of ``(path, reason)``: files that could not be read, files
        that are not images, files outside the class folders).  A
        :class:`SkippedFilesWarning` names the skipped files.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        When ``folder`` does not exist or is a file.
    ValueError
        When ``folder`` has no class sub-folders, or a class has no readable
        image.

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = [os.makedirs(os.path.join(root, name)) for name in ("cat", "dog")]
    ...     _ = [cv2.imwrite(os.path.join(root, n, "a.png"), np.zeros((40, 60), np.uint8)) for n in ("cat", "dog")]
    ...     data = load_image_folder(root)
    >>> data.target_names, data.target.tolist(), data.images[0].shape, data.skipped
    (['cat', 'dog'], [0, 1], (40, 60), [])
    """
    max_side = _check_max_side(max_side)
    listing = list_image_folder(folder)
    images, kept, failed = read_images(listing.paths, max_side=max_side, gray=gray, n_jobs=n_jobs, verbose=verbose)
    target = listing.target[kept]
    missing = [listing.target_names[k] for k in range(len(listing.target_names)) if not np.any(target == k)]
    if missing:
        bad = "; ".join(f"{p} ({r})" for p, r in failed[:5])
        raise ValueError(
            f"class(es) {missing} of {os.fspath(folder)!r} have no readable image; unreadable files: {bad}"
        )
    skipped = listing.skipped + failed
    warn_skipped(skipped)
    return Bunch(
        images=images,
        target=target,
        target_names=listing.target_names,
        paths=[listing.paths[i] for i in kept],
        skipped=skipped,
    )
