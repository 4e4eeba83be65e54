"""Bag-of-Words mapping and pooling as functions (thesis Sec. 2.4.1, eq. 2.65, 2.81-2.83, 2.86).

:class:`bowlrp.BagOfWords`, its relevance step and the descriptor-replacement
test of :mod:`bowlrp.evaluation` call these; none writes them again.
"""

import math

from .._backend import asarray

__all__ = ["TINY", "segment_max", "nearest_words", "rank_values", "soft_values", "pmeans_pool", "block_scale",
           "normalize_blocks"]

_CHUNK = 1 << 16  # descriptors per distance computation (bounds memory to ~70 MB)
_SOFT_CHUNK_ELEMS = 1 << 22  # float64 elements per soft-assignment distance block (~32 MB)
#: Mapping values below this are set to 0: a word reached only by a vanishing message would need
#: R_d / z_d, which overflows once z_d is subnormal (the rank mapping: beyond rank 332 for base 2).
TINY = 1e-100


def segment_max(values, segments, n_segments, xp):
    """Maximum of ``values`` per segment id (0 where a segment has no entry).

    One sort (``lexsort`` by segment, then value) instead of ``maximum.at``, so
    the same code runs on NumPy and CuPy.

    Examples
    --------
    >>> import numpy as np
    >>> segment_max(np.array([1.0, 5.0, 2.0, 3.0]), np.array([0, 0, 2, 2]), 4, np)
    array([5., 0., 3., 0.])
    """
    out = xp.zeros(n_segments, dtype=values.dtype)
    if values.size == 0:
        return out
    order = xp.lexsort(xp.stack([values, segments.astype(xp.float64)]))
    seg, val = segments[order], values[order]
    last = xp.concatenate([seg[1:] != seg[:-1], xp.ones(1, dtype=bool)])
    out[seg[last]] = val[last]
    return out


def nearest_words(D, vocab, r, xp):
    """Indices (n, r) of the ``r`` nearest words of each descriptor, nearest first (float32 distances).

    Examples
    --------
    >>> import numpy as np
    >>> vocab = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])  # three words
    >>> D = np.array([[0.9, 0.1], [0.0, 2.0]])  # two descriptors
    >>> nearest_words(D, vocab, 2, np)
    array([[1, 0],
           [2, 0]])
    """
    V = asarray(vocab, xp, dtype=xp.float32)
    idx = xp.empty((D.shape[0], r), dtype=xp.intp)
    vnorm = (V * V).sum(1)
    for a in range(0, D.shape[0], _CHUNK):
        Dc = asarray(D[a : a + _CHUNK], xp, dtype=xp.float32)
        d2 = vnorm[None, :] - 2.0 * (Dc @ V.T)  # ||l||^2 is constant per row
        if r == 1:
            idx[a : a + _CHUNK, 0] = xp.argmin(d2, axis=1)
        else:
            part = xp.argpartition(d2, r - 1, axis=1)[:, :r]
            order = xp.argsort(xp.take_along_axis(d2, part, axis=1), axis=1, kind="stable")
            idx[a : a + _CHUNK] = xp.take_along_axis(part, order, axis=1)
    return idx


def rank_values(n, r, rank_base, xp):
    """The rank mapping ``m_d(l) = p ** -rk_d(l)`` for ranks 1..r (eq. 2.86), (n, r); values below TINY are 0.

    Examples
    --------
    >>> import numpy as np
    >>> rank_values(2, 3, 2.0, np)  # base 2: the nearest word 1/2, the next 1/4, ...
    array([[0.5  , 0.25 , 0.125],
           [0.5  , 0.25 , 0.125]])
    """
    ranks = xp.arange(1, r + 1, dtype=xp.float64)
    weights = float(rank_base) ** -ranks
    weights = xp.where(weights >= TINY, weights, 0.0)
    return xp.broadcast_to(weights, (n, r)).copy()


def soft_values(D, vocab, idx, beta, xp):
    """Kernel-codebook weights ``exp(-beta ||l - c_d||^2)`` over the words ``idx``, summing to 1.

    Distances are recomputed in float64 from the differences (no
    cancellation), and the smallest is subtracted before ``exp`` so the
    nearest word gets ``exp(0) = 1`` before normalisation.  Weights below
    :data:`TINY` become 0, so the rows sum to 1 up to that.

    Examples
    --------
    >>> import numpy as np
    >>> vocab = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])  # three words
    >>> D = np.array([[0.9, 0.1], [0.0, 2.0]])  # two descriptors
    >>> soft_values(D, vocab, nearest_words(D, vocab, 2, np), 1.0, np).round(4)
    array([[0.69  , 0.31  ],
           [0.9526, 0.0474]])
    """
    V = asarray(vocab, xp, dtype=xp.float64)
    n, r = idx.shape
    vals = xp.empty((n, r), dtype=xp.float64)
    step = max(1, _SOFT_CHUNK_ELEMS // max(1, r * V.shape[1]))
    for a in range(0, n, step):
        Dc = asarray(D[a : a + step], xp, dtype=xp.float64)
        diff = Dc[:, None, :] - V[idx[a : a + step]]
        d2 = (diff * diff).sum(2)
        w = xp.exp(-beta * (d2 - d2.min(1, keepdims=True)))
        w = w / w.sum(1, keepdims=True)
        vals[a : a + step] = xp.where(w >= TINY, w, 0.0)
    return vals


def pmeans_pool(vals, cols, group, shape, p, xp):
    """p-means pooling (eq. 2.65, 2.81) and its forward messages (eq. 2.82, 2.83).

    Returns the pooled histogram ``(n_images, n_levels, K)`` and messages
    of the shape of ``vals``.  A word's messages are proportional to
    ``m_d(l) ** p`` (eq. 2.82) -- for ``p = inf`` to the indicator of the
    descriptors with the maximal mapping, ties sharing evenly (eq. 2.83) --
    and scaled to sum to the pooled value ``x_d``, so that rules whose
    result depends on the size of ``z_d`` (epsilon) see the feature the
    classifier saw.  The proportional, alpha-beta, magnitude and flat rules
    see only the proportions.  Powers are taken of ``m / max_l m`` so that
    large ``p`` neither overflows nor underflows the maximal term.

    ``vals`` (n, r) are the mapping values of each descriptor's ``r`` words,
    ``cols`` (n r,) their columns ``group * K + word`` in the flattened
    histogram, ``group`` (n,) each descriptor's ``image * n_levels + level``,
    and ``shape`` is ``(n_images, n_levels, K)``.

    Examples
    --------
    Two descriptors of one image, each mapped to its two nearest of three
    words by the rank mapping; max pooling (``p = inf``) splits the tie of
    word 0 evenly, mean pooling (``p = 1``) divides by the two descriptors:

    >>> import numpy as np
    >>> vocab = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])  # three words
    >>> D = np.array([[0.9, 0.1], [0.0, 2.0]])  # two descriptors
    >>> idx = nearest_words(D, vocab, 2, np)
    >>> vals, group = rank_values(2, 2, 2.0, np), np.zeros(2, dtype=np.intp)
    >>> hist, msgs = pmeans_pool(vals, idx.ravel(), group, (1, 1, 3), np.inf, np)
    >>> hist, msgs
    (array([[[0.25, 0.5 , 0.5 ]]]), array([[0.5  , 0.125],
           [0.5  , 0.125]]))
    >>> pmeans_pool(vals, idx.ravel(), group, (1, 1, 3), 1.0, np)[0]
    array([[[0.25, 0.25, 0.25]]])
    """
    n_groups, K = shape[0] * shape[1], shape[2]
    m = vals.ravel()
    n_cols = n_groups * K
    top = segment_max(m, cols, n_cols, xp)
    top_e = top[cols]
    ok = top_e > 0
    if math.isinf(p):
        w = ((m == top_e) & ok).astype(xp.float64)
        pooled = top
    else:
        w = xp.where(ok, m / xp.where(ok, top_e, 1.0), 0.0) ** p
        size = xp.maximum(xp.bincount(group, minlength=n_groups), 1).astype(xp.float64)
        mean = xp.bincount(cols, weights=w, minlength=n_cols) / xp.repeat(size, K)
        pooled = top * mean ** (1.0 / p)
    S = xp.bincount(cols, weights=w, minlength=n_cols)[cols]
    msgs = xp.where(S > 0, w / xp.where(S > 0, S, 1.0), 0.0) * pooled[cols]
    return pooled.reshape(shape), msgs.reshape(vals.shape)


def block_scale(hist, counts, normalize, xp):
    """The divisor of every block (..., n_levels) of pooled histograms ``hist`` (..., n_levels, K).

    ``"l1"``: the block's sum; ``"count"``: its number of descriptors
    ``counts`` (the ``1/|L|`` of eq. 2.65); ``None``: 1.  Zero divisors become 1.

    Examples
    --------
    >>> import numpy as np
    >>> hist = np.array([[[1.0, 3.0], [0.0, 0.0]]])  # one image, two levels of two words
    >>> block_scale(hist, np.array([4, 0]), "l1", np), block_scale(hist, np.array([4, 0]), "count", np)
    (array([[4., 1.]]), array([[4., 1.]]))
    """
    if normalize == "l1":
        scale = hist.sum(-1)
    elif normalize == "count":
        scale = asarray(counts, xp, dtype=xp.float64) + xp.zeros(hist.shape[:-1])
    else:
        scale = xp.ones(hist.shape[:-1])
    return xp.where(scale > 0, scale, 1.0)


def normalize_blocks(raw, counts, normalize, n_words, xp):
    """Per-block normalisation of raw pooled vectors ``raw`` (..., n_levels * n_words).

    Examples
    --------
    >>> import numpy as np
    >>> raw, counts = np.array([1.0, 3.0, 2.0, 2.0]), np.array([2, 4])  # two blocks of two words
    >>> normalize_blocks(raw, counts, "l1", 2, np)
    array([0.25, 0.75, 0.5 , 0.5 ])
    >>> normalize_blocks(raw, counts, "count", 2, np)
    array([0.5, 1.5, 0.5, 0.5])
    """
    h = raw.reshape(raw.shape[:-1] + (-1, n_words))
    return (h / block_scale(h, counts, normalize, xp)[..., None]).reshape(raw.shape)
