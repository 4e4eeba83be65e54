"""Incremental encoding for the descriptor-replacement test (thesis App. C.1-C.2).

When descriptors are replaced one batch at a time, the encoded vector is
updated instead of recomputed (eq. C.1-C.2): the raw sum-pooled vector
changes by ``m(l_sub) - m(l_k)`` per replaced descriptor, and the encoder's
normalisation is applied afterwards.  ``m(l)`` and the normalisation are the
encoder's own public methods, so the test measures the very model it
explains:

* :class:`BagOfWordsUpdate`: ``m(l)`` is
  :meth:`bowlrp.BagOfWords.map_descriptors` (eq. 2.86), the normalisation
  :meth:`bowlrp.BagOfWords.normalize_raw`, recomputed from the updated raw sum
  (``"l1"``), or from the number of descriptors per block, which replacement
  keeps (``"count"``);
* :class:`FisherVectorUpdate`: ``m(l)`` is ``Psi(l) / |cell|`` for every
  pyramid cell the descriptor lies in (:meth:`bowlrp.FisherVectorEncoder.embed`,
  eq. 4.1-4.3, 4.9-4.10; a substitute takes the place, and so the cells, of
  the descriptor it replaces, so the cell sizes do not change), the
  normalisation :meth:`bowlrp.FisherVectorEncoder.normalize_raw` (eq. 4.5).

An *update* has ``contributions(descriptors, level) -> (cols, vals)`` (the
unnormalised mapping, sparse), or ``bind(geometry, levels) ->
contributions(descriptors, level, index)`` when the mapping depends on where
a descriptor sits, and ``finish(raw, counts) -> features``;
:func:`encoder_update` returns it for a fitted encoder stage.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._backend import to_numpy
from ..encoders.bow import BagOfWords
from ..encoders.fisher import FisherVectorEncoder
from ..encoders.pyramid import n_cells
from .substitutes import fisher_stage

__all__ = ["BagOfWordsUpdate", "FisherVectorUpdate", "encoder_update", "replacement_features", "is_update"]


class BagOfWordsUpdate:
    """Incremental encoding for a fitted :class:`bowlrp.BagOfWords` (eq. C.2).

    ``contributions`` gives each descriptor's unnormalised mapping ``m(l)``
    (eq. 2.86) as word indices (with the block offset) and values;
    ``finish`` applies the encoder's per-block normalisation to raw pooled
    vectors.

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> update = BagOfWordsUpdate(bowlrp.BagOfWords(n_words=4, random_state=0).fit(sets))
    >>> cols, vals = update.contributions(sets[0][:2], 0)  # two descriptors, rank mapping
    >>> vals
    array([[0.5   , 0.25  , 0.125 , 0.0625],
           [0.5   , 0.25  , 0.125 , 0.0625]])
    """

    def __init__(self, bow):
        check_is_fitted(bow, "vocabularies_")
        self.bow = bow
        self.n_features = bow.n_features_out_
        self.n_levels = bow.n_levels_

    def contributions(self, descriptors, level):
        D = np.asarray(to_numpy(descriptors), dtype=np.float32)
        idx, vals = self.bow.map_descriptors(D, level)
        return idx, np.asarray(vals, dtype=np.float64)

    def finish(self, raw, counts):
        """Normalise raw pooled vectors ``raw`` (..., D) per block; ``counts`` (..., n_levels)."""
        return self.bow.normalize_raw(np.asarray(raw, dtype=np.float64), counts)


class FisherVectorUpdate:
    """Incremental encoding for a fitted :class:`bowlrp.FisherVectorEncoder` (eq. C.2 with eq. 4.1-4.5).

    ``embed`` is the encoder's :meth:`~bowlrp.FisherVectorEncoder.embed`
    (``Psi(l)``, one block, with the encoder's truncated posteriors);
    ``bind`` fixes an image's pyramid cells and cell sizes and returns
    ``contributions(descriptors, level, index)``, the columns and values
    ``Psi(l) / |cell|`` for every cell (one per pyramid grid) of descriptor
    ``index``; ``finish`` is the encoder's power and L2 normalisation.  The
    sum of the contributions over a descriptor set is the encoder's
    unnormalised vector, so the update equals ``encoder.transform`` of the
    perturbed set up to rounding for ``dtype="float64"`` encoders (a float32
    encoder differs by its own rounding, about 1e-6).

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> update = FisherVectorUpdate(bowlrp.FisherVectorEncoder(n_components=2, random_state=0).fit(sets))
    >>> update.n_features, update.embed(sets[0][:5], 0).shape  # K (1 + 2 D) = 14
    (14, (5, 14))
    """

    def __init__(self, fv):
        fv = fisher_stage(fv)
        self.encoder = fv
        self.n_features = fv.n_features_out_
        self.n_levels = fv.n_levels_
        self.n_cells = n_cells(fv.pyramid_)
        self.block = fv.block_size_

    def cells(self, geometry, n):
        """Cell (block index inside a level) of each of ``n`` descriptors per grid: ``(n, n_grids)``."""
        return self.encoder.descriptor_cells(geometry, n)

    def embed(self, descriptors, level):
        """Gradient vectors ``Psi(l)`` (eq. 4.1-4.3) of the descriptors of ``level``: ``(n, block_size_)``."""
        return to_numpy(self.encoder.embed(np.asarray(to_numpy(descriptors), dtype=np.float64), level))

    def bind(self, geometry, levels):
        """``contributions(descriptors, level, index)`` for one image (cells and cell sizes fixed)."""
        levels = np.asarray(levels, dtype=np.intp)
        cells = self.cells(geometry, len(levels))
        counts = np.zeros((self.n_levels, self.n_cells))
        for g in range(cells.shape[1]):
            np.add.at(counts, (levels, cells[:, g]), 1.0)
        B = self.block

        def contributions(descriptors, level, index):
            psi = self.embed(descriptors, level)
            cols, vals = [], []
            for g in range(cells.shape[1]):
                c = cells[index, g]
                blk = level * self.n_cells + c
                cols.append(blk[:, None] * B + np.arange(B))
                vals.append(psi / counts[level, c][:, None])
            return np.concatenate(cols, axis=1), np.concatenate(vals, axis=1)

        return contributions

    def finish(self, raw, counts=None):
        """Power and L2 normalisation (eq. 4.5) of unnormalised vectors ``raw`` (..., n_features)."""
        return self.encoder.normalize_raw(np.asarray(raw, dtype=np.float64))


def is_update(obj):
    """Whether ``obj`` has the update interface (``finish`` and ``contributions`` or ``bind``).

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> is_update(encoder_update(bowlrp.BagOfWords(n_words=4, random_state=0).fit(sets))), is_update(sets)
    (True, False)
    """
    return hasattr(obj, "finish") and (hasattr(obj, "contributions") or hasattr(obj, "bind"))


def encoder_update(stage):
    """The incremental-update object for an encoder stage (Bag-of-Words or Fisher vectors).

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> type(encoder_update(bowlrp.BagOfWords(n_words=4, random_state=0).fit(sets))).__name__
    'BagOfWordsUpdate'
    >>> encoder_update(bowlrp.KernelSVC())
    Traceback (most recent call last):
    ...
    TypeError: no descriptor-replacement update for KernelSVC; supported: BagOfWords, FisherVectorEncoder (or pass an object with contributions() or bind(), and finish())
    """
    if isinstance(stage, BagOfWords):
        return BagOfWordsUpdate(stage)
    if isinstance(stage, FisherVectorEncoder):
        return FisherVectorUpdate(stage)
    if is_update(stage):
        return stage
    raise TypeError(
        f"no descriptor-replacement update for {type(stage).__name__}; supported: BagOfWords, "
        "FisherVectorEncoder (or pass an object with contributions() or bind(), and finish())"
    )


def _contributor(update, geometry, levels):
    """``contributions(descriptors, level, index)`` for one image."""
    if hasattr(update, "bind"):
        return update.bind(geometry, levels)
    return lambda D, s, index: update.contributions(D, s)


def _add(raw, cols, vals, sign=1.0):
    raw += sign * np.bincount(np.ravel(cols), weights=np.ravel(vals), minlength=len(raw))


def replacement_features(update, descriptors, levels, order, substitutes, batch_size, n_steps, geometry=None):
    """Encoded vectors ``x^(0..L)`` after replacing descriptors batch by batch (eq. C.2).

    Parameters
    ----------
    update : BagOfWordsUpdate, FisherVectorUpdate (or compatible)
    descriptors : ndarray (n, n_dims) or DescriptorSet
        The image's descriptors (a DescriptorSet also gives the geometry).
    levels : ndarray (n,) of int
        Their levels (scales).
    order : ndarray of int
        Descriptor indices in perturbation order (at least ``batch_size * n_steps``,
        or all of them).
    substitutes : ndarray (len(order), n_dims)
        ``substitutes[j]`` replaces ``descriptors[order[j]]``; it must be of
        the same level, and it takes that descriptor's place (centre, pyramid
        cells).
    batch_size, n_steps : int
        Step ``k`` replaces ``order[(k-1)*batch_size : k*batch_size]``.
    geometry : DescriptorSet or None
        Descriptor centres and image shape, needed by Fisher-vector models
        with a spatial pyramid.

    Returns
    -------
    ndarray (n_steps + 1, n_features)
        Normalised features; row 0 equals ``encoder.transform`` of the
        unperturbed set.

    Examples
    --------
    Two steps of five replacements on a Fisher-vector encoder equal encoding
    the perturbed sets from scratch:

    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> fv = bowlrp.FisherVectorEncoder(n_components=2, random_state=0).fit(sets)
    >>> D, levels, substitutes = sets[0], np.zeros(20, dtype=int), sets[1]
    >>> F = replacement_features(encoder_update(fv), D, levels, np.arange(20), substitutes, 5, 2)
    >>> perturbed = D.copy(); perturbed[:5] = substitutes[:5]
    >>> F.shape, np.allclose(F[0], fv.transform([D])[0]), np.allclose(F[1], fv.transform([perturbed])[0])
    ((3, 14), True, True)
    """
    if hasattr(descriptors, "descriptors"):
        geometry = descriptors if geometry is None else geometry
        descriptors = descriptors.descriptors
    levels = np.asarray(levels, dtype=np.intp)
    contrib = _contributor(update, geometry, levels)
    raw = np.zeros(update.n_features)
    for s in range(update.n_levels):
        sel = np.flatnonzero(levels == s)
        if len(sel):
            _add(raw, *contrib(descriptors[sel], s, sel))
    counts = np.bincount(levels, minlength=update.n_levels)
    out = np.empty((n_steps + 1, update.n_features))
    out[0] = raw
    for k in range(1, n_steps + 1):
        sl = slice((k - 1) * batch_size, k * batch_size)
        idx = order[sl]
        for s in np.unique(levels[idx]):
            sel = levels[idx] == s
            _add(raw, *contrib(substitutes[sl][sel], s, idx[sel]))
            _add(raw, *contrib(descriptors[idx[sel]], s, idx[sel]), sign=-1.0)
        out[k] = raw
    return update.finish(out, counts[None, :])
