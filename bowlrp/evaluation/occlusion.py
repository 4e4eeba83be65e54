"""Occlusion: a model-agnostic heatmap baseline (sliding ``m x m`` patch).

The relevance of a patch is the drop of the score when the patch is covered,
``f(x) - f(x_occluded)``; a pixel gets the mean drop of the patches covering
it.  It needs one model call per patch position, against LRP's one forward
and one backward pass, and is here so that perturbation tests have a
baseline to beat.
"""

import numpy as np

from ._common import check_choice, check_images_list, check_positive_int, chunks, map_chunks, select_scores

__all__ = ["occlusion"]

_FILLS = ("mean", "zero")


def _positions(length, m, stride):
    if m >= length:
        return [0]
    pos = list(range(0, length - m + 1, stride))
    if pos[-1] != length - m:
        pos.append(length - m)  # the last patch touches the border
    return pos


def _occlude_image(predict, img, m, stride, fill, target, batch):
    H, W = img.shape[:2]
    if fill == "mean":
        value = img.reshape(H * W, -1).mean(0)
        value = (np.rint(value) if img.dtype.kind in "ui" else value).astype(img.dtype).reshape(img.shape[2:])
    else:
        value = np.zeros(img.shape[2:], img.dtype)
    corners = [(r, c) for r in _positions(H, m, stride) for c in _positions(W, m, stride)]
    base = select_scores(predict([img]), None if target is None else [target], 1)[0]
    drops = np.empty(len(corners))
    for a, b in chunks(len(corners), batch):
        batch_imgs = []
        for r, c in corners[a:b]:
            x = np.array(img, copy=True)
            x[r : r + m, c : c + m] = value
            batch_imgs.append(x)
        t = None if target is None else np.full(b - a, target)
        drops[a:b] = base - select_scores(predict(batch_imgs), t, b - a)
    acc = np.zeros((H, W))
    cnt = np.zeros((H, W))
    for d, (r, c) in zip(drops, corners):
        acc[r : r + m, c : c + m] += d
        cnt[r : r + m, c : c + m] += 1
    return acc / np.maximum(cnt, 1)


def _occlude_chunk(predict, imgs, m, stride, fill, targets, batch):
    return [
        _occlude_image(predict, img, m, stride, fill, None if targets is None else targets[j], batch)
        for j, img in enumerate(imgs)
    ]


def occlusion(
    predict,
    images,
    *,
    patch_size=9,
    stride=None,
    fill="mean",
    target=None,
    batch_size=256,
    n_jobs=None,
    verbose=False,
):
    """Occlusion heatmaps: mean score drop of the ``m x m`` patches covering each pixel.

    Parameters
    ----------
    predict : callable
        ``predict(list_of_images) -> scores`` (n,) or (n, n_classes), e.g.
        ``pipeline.decision_function``.
    images : list of ndarray or ndarray (n, H, W[, 3])
    patch_size : int, default=9
    stride : int or None
        Step between patch positions; None uses ``patch_size`` (a tiling,
        the last row and column of patches moved to touch the border).
    fill : {"mean", "zero"}, default="mean"
        The image's mean value (a flat patch: no gradients for SIFT) or 0.
    target : int, array-like or None
        Column of a multi-column ``predict``.
    batch_size : int, default=256
        Occluded images per model call.
    n_jobs : int or None
        joblib workers over images.
    verbose : bool

    Returns
    -------
    list of ndarray (H, W)
        Positive where covering the pixel lowers the score.

    Examples
    --------
    A model that scores the mean of an image's top-left 4 x 4 corner:

    >>> import numpy as np
    >>> def predict(images):
    ...     return np.array([np.asarray(im, dtype=float)[:4, :4].mean() for im in images])
    >>> image = np.zeros((8, 8)); image[:4, :4] = 1.0
    >>> (heatmap,) = occlusion(predict, [image], patch_size=4, fill="zero")
    >>> heatmap[::4, ::4]  # one value per 4 x 4 patch: only the corner matters
    array([[1., 0.],
           [0., 0.]])
    """
    if not callable(predict):
        raise TypeError(f"predict must be a callable images -> scores, got {type(predict).__name__}")
    imgs = check_images_list(images)
    m = check_positive_int(patch_size, "patch_size")
    stride = m if stride is None else check_positive_int(stride, "stride")
    check_choice(fill, "fill", _FILLS)
    batch_size = check_positive_int(batch_size, "batch_size")
    tgt = None if target is None else np.broadcast_to(np.asarray(target), (len(imgs),))
    args = [
        (predict, imgs[a:b], m, stride, fill, None if tgt is None else tgt[a:b], batch_size)
        for a, b in chunks(len(imgs), 1)
    ]
    return [h for part in map_chunks(_occlude_chunk, args, n_jobs, verbose, desc="occlusion", unit="image") for h in part]
