"""How much a model relies on context: the outside-inside relevance ratio (thesis eq. 4.11)."""

import numpy as np

from ._common import check_heatmaps

__all__ = ["box_mask", "context_ratio", "context_ratio_per_class"]


def box_mask(shape, boxes):
    """Boolean (H, W) mask of the union of half-open ``(row0, col0, row1, col1)`` boxes.

    Examples
    --------
    >>> box_mask((4, 5), [(1, 1, 3, 4)]).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    m = np.zeros(shape[:2], dtype=bool)
    b = np.asarray(boxes, dtype=np.intp).reshape(-1, 4)
    for r0, c0, r1, c1 in b:
        if r1 <= r0 or c1 <= c0:
            raise ValueError(f"box {(r0, c0, r1, c1)} is empty; boxes are (row0, col0, row1, col1), half-open")
        m[max(r0, 0) : r1, max(c0, 0) : c1] = True
    return m


def context_ratio(heatmaps, masks=None, boxes=None, positive=True):
    """Outside-inside relevance ratio ``mu`` per image (eq. 4.11).

    ``mu = (1/|P_out| sum_{q in P_out} R_q) / (1/|P_in| sum_{p in P_in} R_p)``:
    the mean relevance outside the object over the mean inside.  A high value
    says the model uses much context.

    Parameters
    ----------
    heatmaps : list of (H, W) arrays or Explanation
    masks : list of (H, W) bool arrays, optional
        The object pixels ``P_in`` of each image.
    boxes : list of box arrays, optional
        Instead of masks: per image one ``(row0, col0, row1, col1)`` box or an
        ``(n_boxes, 4)`` array (half-open, like ``DescriptorSet.boxes``); the
        union is ``P_in``.
    positive : bool, default=True
        Use only the positive relevance ``max(R, 0)`` (the thesis reads eq.
        4.11 on the distribution of positive values); False uses signed ``R``.

    Returns
    -------
    ndarray (n_images,)
        ``mu`` per image; ``inf`` when the inside holds no (positive)
        relevance and the outside does, ``nan`` when neither does.

    Examples
    --------
    Relevance 2 inside the object's box, 0.5 around it:

    >>> import numpy as np
    >>> h = np.full((10, 10), 0.5); h[2:6, 2:6] = 2.0
    >>> context_ratio([h], boxes=[(2, 2, 6, 6)])
    array([0.25])
    >>> context_ratio([h], masks=[h > 1])  # the same object as a mask
    array([0.25])
    """
    maps = check_heatmaps(heatmaps)
    if (masks is None) == (boxes is None):
        raise ValueError("pass exactly one of masks= or boxes=")
    if masks is not None:
        if len(masks) != len(maps):
            raise ValueError(f"got {len(masks)} masks for {len(maps)} heatmaps")
        ins = [np.asarray(m, dtype=bool) for m in masks]
    else:
        if len(boxes) != len(maps):
            raise ValueError(f"got {len(boxes)} boxes for {len(maps)} heatmaps")
        ins = [box_mask(h.shape, b) for h, b in zip(maps, boxes)]
    mu = np.empty(len(maps))
    for i, (h, m) in enumerate(zip(maps, ins)):
        if m.shape != h.shape:
            raise ValueError(f"mask {i} has shape {m.shape}, its heatmap {h.shape}")
        if m.all() or not m.any():
            raise ValueError(f"mask {i} must have pixels both inside and outside the object")
        r = np.maximum(h, 0.0) if positive else h
        out, inn = r[~m].mean(), r[m].mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            mu[i] = out / inn if inn != 0 else (np.nan if out == 0 else np.inf * np.sign(out))
    return mu


def context_ratio_per_class(mu, labels):
    """Mean and median ``mu`` per class (the thesis' Fig. 4.4 / Table 4.2 summary).

    Returns
    -------
    dict
        ``{label: {"mean": float, "median": float, "n": int}}``; images with
        a non-finite ``mu`` are left out of mean and median.

    Examples
    --------
    >>> import numpy as np
    >>> context_ratio_per_class([0.5, 1.5, 0.2, np.inf], ["cat", "cat", "dog", "dog"])
    {'cat': {'mean': 1.0, 'median': 1.0, 'n': 2}, 'dog': {'mean': 0.2, 'median': 0.2, 'n': 2}}
    """
    mu = np.asarray(mu, dtype=np.float64)
    labels = np.asarray(labels)
    if mu.shape != labels.shape:
        raise ValueError(f"mu has shape {mu.shape}, labels {labels.shape}")
    out = {}
    for c in np.unique(labels):
        v = mu[(labels == c) & np.isfinite(mu)]
        key = c.item() if hasattr(c, "item") else c
        out[key] = {
            "mean": float(v.mean()) if v.size else float("nan"),
            "median": float(np.median(v)) if v.size else float("nan"),
            "n": int((labels == c).sum()),
        }
    return out
