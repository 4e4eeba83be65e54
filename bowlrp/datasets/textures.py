"""Real photographs without a download: the texture photographs that ship inside scikit-image.

scikit-image ships three grayscale texture photographs of 512 x 512 pixels
(``skimage.data.brick``, ``grass`` and ``gravel``; CC0), a classic
texture-classification task.  :func:`load_textures` cuts them into
non-overlapping square tiles, one class per photograph;
:func:`write_texture_folder` writes the tiles as an image folder (one
sub-folder per class, mixed file formats) for :func:`load_image_folder` and
the ``bowlrp train / explain / evaluate`` commands.

Tiles of one photograph are correlated (same wall, same lighting), so a
random split of the tiles measures how well a model recognises held-out
parts of the same surfaces, not other walls.
"""

import os

import cv2
import numpy as np
from sklearn.utils import Bunch

__all__ = ["TEXTURES", "load_textures", "write_texture_folder"]

#: The texture photographs of ``skimage.data`` (grayscale, 512 x 512).
TEXTURES = ("brick", "grass", "gravel")

_FORMATS = {
    "png": [],
    "jpg": [cv2.IMWRITE_JPEG_QUALITY, 95],
    "tif": [],
    "bmp": [],
    "webp": [cv2.IMWRITE_WEBP_QUALITY, 101],  # above 100: lossless
}


def _photograph(name):
    try:
        from skimage import data  # noqa: PLC0415  (optional dependency: the photographs live there)
    except ImportError as exc:
        raise ImportError(
            "the texture photographs ship inside scikit-image: pip install 'bowlrp[photos]' "
            "(or pip install scikit-image)"
        ) from exc
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; valid textures are {list(TEXTURES)}")
    img = np.asarray(getattr(data, name)())
    return img if img.dtype == np.uint8 else cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


def load_textures(names=TEXTURES, tile_size=64):
    """Cut the texture photographs into tiles, one class per photograph.

    Parameters
    ----------
    names : sequence of str, default=("brick", "grass", "gravel")
        Which photographs (classes), from :data:`TEXTURES`.
    tile_size : int, default=64
        Side of the square, non-overlapping tiles; a 512-pixel photograph
        gives ``(512 // tile_size) ** 2`` tiles.

    Returns
    -------
    data : Bunch
        ``images`` (ndarray (n, tile_size, tile_size), uint8), ``target``
        (ndarray of int), ``target_names`` (list of str), ``origins``
        (ndarray (n, 2): row and column of each tile in its photograph) and
        ``photographs`` (the full photographs, one per class).

    Examples
    --------
    >>> from bowlrp.datasets import load_textures
    >>> data = load_textures(tile_size=128)
    >>> data.images.shape, data.target_names
    ((48, 128, 128), ['brick', 'grass', 'gravel'])
    """
    names = list(names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"names must be distinct texture names from {list(TEXTURES)}, got {names!r}")
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 8:
        raise ValueError(f"tile_size must be an integer >= 8 (pixels), got {tile_size!r}")
    photos = [_photograph(n) for n in names]
    images, target, origins = [], [], []
    for k, img in enumerate(photos):
        if min(img.shape[:2]) < tile_size:
            raise ValueError(f"tile_size={tile_size} is larger than the {names[k]} photograph {img.shape}")
        for r in range(0, img.shape[0] - tile_size + 1, tile_size):
            for c in range(0, img.shape[1] - tile_size + 1, tile_size):
                images.append(img[r : r + tile_size, c : c + tile_size])
                target.append(k)
                origins.append((r, c))
    return Bunch(
        images=np.stack(images),
        target=np.asarray(target, dtype=np.intp),
        target_names=names,
        origins=np.asarray(origins, dtype=np.intp),
        photographs=photos,
    )


def write_texture_folder(folder, names=TEXTURES, tile_size=64, formats=("png", "jpg", "tif", "bmp", "webp")):
    """Write the texture tiles as an image folder ``folder/<texture>/<texture>_<row>_<col>.<ext>``.

    Parameters
    ----------
    folder : str or path-like
        Created if missing; existing files of the same names are replaced.
    names, tile_size
        As in :func:`load_textures`.
    formats : sequence of str, default=("png", "jpg", "tif", "bmp", "webp")
        File formats, used in turn tile after tile (JPEG at quality 95, WebP
        lossless), so that a folder holds every format the readers take.

    Returns
    -------
    paths : list of str
        The files written, in the order of :func:`load_textures`.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = write_texture_folder(folder, names=("brick", "grass"), tile_size=256)
    ...     len(paths), [os.path.relpath(p, folder) for p in paths[3:5]]  # formats taken in turn
    (8, ['brick/brick_256_256.bmp', 'grass/grass_000_000.webp'])
    """
    formats = list(formats)
    unknown = [f for f in formats if f not in _FORMATS]
    if not formats or unknown:
        raise ValueError(f"formats must be a non-empty list from {list(_FORMATS)}, got {formats!r}")
    data = load_textures(names, tile_size)
    paths = []
    for i, (img, k, (r, c)) in enumerate(zip(data.images, data.target, data.origins)):
        name = data.target_names[k]
        ext = formats[i % len(formats)]
        path = os.path.join(os.fspath(folder), name, f"{name}_{r:03d}_{c:03d}.{ext}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        ok, buf = cv2.imencode("." + ext, img, _FORMATS[ext])
        if not ok:  # pragma: no cover - depends on the OpenCV build
            raise OSError(f"OpenCV could not encode {ext} files; pass formats without {ext!r}")
        buf.tofile(path)
        paths.append(path)
    return paths
