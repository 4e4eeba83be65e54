"""Descriptor-replacement perturbation for Bag-of-Words models (thesis App. C.2).

Instead of pixels, the local descriptors of an image are replaced, in the
order of their relevance ``R^(2)_l`` and in batches, by substitutes drawn near
the data manifold: from the model's GMM for Fisher vectors, from a pool of
training descriptors for k-means vocabularies.  The encoded vector is updated
incrementally (eq. C.1-C.2): the raw sum-pooled vector changes by
``m(l_sub) - m(l_k)`` per replaced descriptor, and the encoder's
normalisation is applied afterwards.  For the L1 normaliser of
:class:`bowlrp.BagOfWords` this stays exact in general, because the
normaliser is recomputed from the updated raw sum (for hard and rank mapping
the mass per descriptor is constant, so it does not change; ``"count"``
depends on the number of descriptors per block, which replacement keeps).

Two small objects make the test pluggable:

* a *sampler* with ``sample(level, n, rng) -> (n, n_dims) array`` draws
  substitutes (:class:`DescriptorPool` for training descriptors; a
  Fisher-vector GMM sampler only needs the same method);
* an *encoder update* with ``contributions(descriptors, level) -> (cols,
  vals)`` (the unnormalised per-descriptor mapping ``m(l)``, sparse) and
  ``finish(raw, counts) -> features`` (the normalisation);
  :func:`encoder_update` returns it for a fitted encoder stage.
"""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._backend import to_numpy
from ..encoders.bow import BagOfWords, check_descriptor_sets
from ._common import (
    check_choice,
    check_positive_int,
    chunks,
    map_chunks,
    resolve_seed,
    select_scores,
)
from .perturbation import PerturbationResult

__all__ = [
    "BagOfWordsUpdate",
    "DescriptorPool",
    "descriptor_perturbation",
    "encoder_update",
    "replacement_features",
]

_ORDERS = ("morf", "lerf", "random")


class DescriptorPool:
    """Substitute descriptors sampled uniformly from a pool of (training) descriptors.

    Parameters
    ----------
    descriptor_sets : list of descriptor sets or (n_i, D) arrays
        For example ``pipeline[:-2].transform(training_images)``.
    max_per_level : int, default=20000
        Descriptors kept per level (uniform sample without replacement).
    random_state : int, RandomState or None
        Seeds the subsample.

    Notes
    -----
    Any object with a method ``sample(level, n, rng)`` returning an
    ``(n, n_dims)`` array can stand in for it, for example a sampler drawing
    from a Fisher-vector GMM ``lambda = (pi_k, mu_k, Sigma_k)`` (App. C.2).
    """

    def __init__(self, descriptor_sets, max_per_level=20000, random_state=None):
        descs, levels, n_levels = check_descriptor_sets(descriptor_sets, name="descriptor_sets")
        max_per_level = check_positive_int(max_per_level, "max_per_level")
        rng = np.random.default_rng(resolve_seed(random_state))
        allD = np.concatenate([np.asarray(to_numpy(d), dtype=np.float32) for d in descs])
        allL = np.concatenate(levels)
        self.pools_ = []
        for s in range(n_levels):
            p = allD[allL == s]
            if len(p) == 0:
                raise ValueError(f"the pool has no descriptors of level {s}")
            if len(p) > max_per_level:
                p = p[rng.choice(len(p), max_per_level, replace=False)]
            self.pools_.append(p)

    def sample(self, level, n, rng):
        """``n`` descriptors of ``level`` drawn uniformly with replacement."""
        if level >= len(self.pools_):
            raise ValueError(f"the pool has {len(self.pools_)} level(s), no descriptors of level {level}")
        pool = self.pools_[level]
        return pool[rng.integers(0, len(pool), size=n)]


class BagOfWordsUpdate:
    """Incremental encoding for a fitted :class:`bowlrp.BagOfWords` (eq. C.2).

    ``contributions`` gives each descriptor's unnormalised mapping ``m(l)``
    (eq. 2.86) as word indices (with the block offset) and values;
    ``finish`` applies the per-block normalisation to a raw pooled vector.
    """

    def __init__(self, bow):
        check_is_fitted(bow, "vocabularies_")
        self.bow = bow
        self.n_features = bow.n_features_out_
        self.n_levels = bow.n_levels_

    def contributions(self, descriptors, level):
        D = np.asarray(to_numpy(descriptors), dtype=np.float32)
        idx, vals = self.bow._assign(D, self.bow.vocabularies_[level], np)
        return idx + level * self.bow.n_words, np.asarray(vals, dtype=np.float64)

    def finish(self, raw, counts):
        """Normalise raw pooled vectors ``raw`` (..., D) per block; ``counts`` (..., n_levels)."""
        L, K = self.bow.n_levels_, self.bow.n_words
        h = raw.reshape(raw.shape[:-1] + (L, K))
        if self.bow.normalize == "l1":
            scale = h.sum(-1)
        elif self.bow.normalize == "count":
            scale = np.asarray(counts, dtype=np.float64)
        else:
            scale = np.ones(h.shape[:-1])
        scale = np.where(scale > 0, scale, 1.0)
        return (h / scale[..., None]).reshape(raw.shape)


def encoder_update(stage):
    """The incremental-update object for an encoder stage (only Bag-of-Words so far)."""
    if isinstance(stage, BagOfWords):
        return BagOfWordsUpdate(stage)
    if hasattr(stage, "contributions") and hasattr(stage, "finish"):
        return stage
    raise TypeError(
        f"no descriptor-replacement update for {type(stage).__name__}; supported: BagOfWords "
        "(or pass an object with contributions() and finish())"
    )


def _pool(update, D, levels, n_levels):
    """Raw pooled vector of a descriptor set and its per-level counts (eq. C.1)."""
    raw = np.zeros(update.n_features)
    for s in range(n_levels):
        sel = levels == s
        if sel.any():
            cols, vals = update.contributions(D[sel], s)
            np.add.at(raw, cols.ravel(), vals.ravel())
    counts = np.bincount(levels, minlength=n_levels)
    return raw, counts


def replacement_features(update, descriptors, levels, order, substitutes, batch_size, n_steps):
    """Encoded vectors ``x^(0..L)`` after replacing descriptors batch by batch (eq. C.2).

    Parameters
    ----------
    update : BagOfWordsUpdate (or compatible)
    descriptors : ndarray (n, n_dims)
        The image's descriptors.
    levels : ndarray (n,) of int
        Their levels (scales).
    order : ndarray of int
        Descriptor indices in perturbation order (at least ``batch_size * n_steps``,
        or all of them).
    substitutes : ndarray (len(order), n_dims)
        ``substitutes[j]`` replaces ``descriptors[order[j]]``; it must be of
        the same level.
    batch_size, n_steps : int
        Step ``k`` replaces ``order[(k-1)*batch_size : k*batch_size]``.

    Returns
    -------
    ndarray (n_steps + 1, n_features)
        Normalised features; row 0 equals ``encoder.transform`` of the
        unperturbed set.
    """
    levels = np.asarray(levels, dtype=np.intp)
    raw, counts = _pool(update, descriptors, levels, update.n_levels)
    out = np.empty((n_steps + 1, update.n_features))
    out[0] = raw
    for k in range(1, n_steps + 1):
        sl = slice((k - 1) * batch_size, k * batch_size)
        idx = order[sl]
        for s in np.unique(levels[idx]):
            sel = levels[idx] == s
            c_new, v_new = update.contributions(substitutes[sl][sel], s)
            c_old, v_old = update.contributions(descriptors[idx[sel]], s)
            np.add.at(raw, c_new.ravel(), v_new.ravel())
            np.add.at(raw, c_old.ravel(), -v_old.ravel())
        out[k] = raw
    return update.finish(out, counts[None, :])


def _split_pipeline(pipeline):
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline must be a fitted scikit-learn Pipeline, got {type(pipeline).__name__}")
    for e, (_, stage) in enumerate(pipeline.steps):
        if isinstance(stage, BagOfWords) or (hasattr(stage, "contributions") and hasattr(stage, "finish")):
            if e == len(pipeline.steps) - 1:
                break
            return pipeline[:e] if e else None, stage, pipeline[e + 1 :]
    raise ValueError(
        "descriptor_perturbation needs a pipeline with a Bag-of-Words stage followed by a classifier; "
        f"got steps {[n for n, _ in pipeline.steps]}"
    )


def _descriptor_chunk(front, update, back, X, relevance, first, batch, n_steps, order, n_repeats, sampler, target, seed):
    sets = front.transform(X) if front is not None else X
    descs, levels, _ = check_descriptor_sets(sets)
    feats = []
    for j, (D, lv) in enumerate(zip(descs, levels)):
        D = np.asarray(to_numpy(D), dtype=np.float32)
        n_rep = n_steps * batch
        if n_rep > len(D):
            raise ValueError(
                f"image {first + j} has {len(D)} descriptors, fewer than n_steps * batch_size = {n_rep}"
            )
        if relevance is not None and len(relevance[j]) != len(D):
            raise ValueError(
                f"relevance[{first + j}] has {len(relevance[j])} entries for {len(D)} descriptors"
            )
        for rep in range(n_repeats):
            rng = np.random.default_rng([seed, first + j, rep])
            tie = rng.random(len(D))
            if order == "random":
                o = np.argsort(tie)
            else:
                r = np.asarray(to_numpy(relevance[j]), dtype=np.float64)
                o = np.lexsort((tie, -r if order == "morf" else r))
            o = o[:n_rep]
            subs = np.empty((n_rep, D.shape[1]), np.float32)
            for s in np.unique(lv[o]):
                sel = lv[o] == s
                subs[sel] = sampler.sample(int(s), int(sel.sum()), rng)
            feats.append(replacement_features(update, D, lv, o, subs, batch, n_steps))
    F = np.concatenate(feats)
    tgt = None
    if target is not None:
        tgt = np.repeat(np.broadcast_to(np.asarray(target), (len(descs),)), n_repeats * (n_steps + 1))
    scores = select_scores(back.decision_function(F), tgt, len(F))
    return scores.reshape(len(descs), n_repeats, n_steps + 1)


def descriptor_perturbation(
    pipeline,
    X,
    relevance=None,
    *,
    pool,
    batch_size=10,
    n_steps=None,
    order="morf",
    n_repeats=1,
    target=None,
    chunk_size=16,
    n_jobs=None,
    random_state=None,
    verbose=False,
):
    """Replace the most relevant local descriptors by sampled ones and record ``f`` (App. C.2).

    Parameters
    ----------
    pipeline : fitted Pipeline
        Stages up to a :class:`bowlrp.BagOfWords` encoder, then the
        classifier (anything with ``decision_function`` on the features).
    X : images (or descriptor sets when the encoder is the first stage)
    relevance : list of (n_i,) arrays, Explanation, or None
        Descriptor relevance ``R^(2)_l`` (eq. 2.80), e.g. ``exp.descriptors``;
        None only with ``order="random"``.
    pool : DescriptorPool or sampler
        Where substitutes come from (``sample(level, n, rng)``).  A substitute
        has the level of the descriptor it replaces.
    batch_size : int, default=10
        Descriptors replaced per step (the thesis: 100 of ~69,000).
    n_steps : int or None
        ``L``; None replaces every descriptor of the image with the fewest.
    order : {"morf", "lerf", "random"}, default="morf"
    n_repeats : int, default=1
        Repetitions with fresh substitutes (the thesis: 5).
    target : int, array-like or None
        Column of the decision function for multi-class models.
    chunk_size : int, default=16
        Images per joblib task; the classifier is called once per task.
    n_jobs : int or None
    random_state : int, RandomState or None
    verbose : bool

    Returns
    -------
    PerturbationResult
        ``.aopc`` (eq. 12 on the descriptor curve, thesis Fig. 4.3) and
        ``.flip_share`` (share of decisions whose sign flipped by step ``L``).
    """
    front, stage, back = _split_pipeline(pipeline)
    update = encoder_update(stage)
    check_choice(order, "order", _ORDERS)
    batch_size = check_positive_int(batch_size, "batch_size")
    n_repeats = check_positive_int(n_repeats, "n_repeats")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if not hasattr(pool, "sample"):
        raise TypeError("pool must be a DescriptorPool or an object with sample(level, n, rng)")
    if hasattr(relevance, "descriptors"):
        relevance = relevance.descriptors
    if relevance is None and order != "random":
        raise ValueError(f"order={order!r} needs descriptor relevance; only order='random' runs without it")
    n = len(X)
    if relevance is not None and len(relevance) != n:
        raise ValueError(f"got relevance for {len(relevance)} inputs and {n} inputs")
    if n_steps is None:
        sets = front.transform(X) if front is not None else X
        n_min = min(len(d) for d in check_descriptor_sets(sets)[0])
        n_steps = n_min // batch_size
    n_steps = check_positive_int(n_steps, "n_steps")
    seed = resolve_seed(random_state)
    tgt = None if target is None else np.broadcast_to(np.asarray(target), (n,))
    args = [
        (
            front,
            update,
            back,
            X[a:b],
            None if relevance is None else relevance[a:b],
            a,
            batch_size,
            n_steps,
            order,
            n_repeats,
            pool,
            None if tgt is None else tgt[a:b],
            seed,
        )
        for a, b in chunks(n, chunk_size)
    ]
    curves = np.concatenate(map_chunks(_descriptor_chunk, args, n_jobs, verbose, desc=f"replace ({order})"))
    return PerturbationResult(
        curves=curves,
        order=order,
        flipped=np.sign(curves) != np.sign(curves[:, :, :1]),
        params={"batch_size": batch_size, "n_steps": n_steps, "n_repeats": n_repeats, "replacement": "descriptors"},
    )
