"""Descriptor-replacement perturbation for Bag-of-Words and Fisher-vector models (thesis App. C.2).

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
  :func:`encoder_update` returns it for a fitted encoder stage.  An update
  whose contributions depend on where a descriptor sits (the spatial pyramid
  of :class:`bowlrp.encoders.fisher.FisherVectorEncoder`) also has
  ``bind(geometry, levels) -> contributions(descriptors, level, index)``,
  which fixes the image's per-descriptor cells and cell counts.

For Fisher vectors (:class:`FisherVectorUpdate`) ``m(l)`` is the gradient
vector ``Psi(l)`` of eq. 4.1-4.3 divided by the size of each pyramid cell the
descriptor falls in (eq. 4.9-4.10); a substitute takes the place (and so the
cells) of the descriptor it replaces, so the cell sizes do not change and the
sum stays the exact unnormalised Fisher vector.  ``finish`` applies the
power and L2 normalisation (eq. 4.5).  :class:`GMMSampler` draws substitutes
from the encoder's GMM ``lambda = (pi_k, mu_k, sigma_k)``.
"""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._backend import to_numpy
from ..encoders.bow import BagOfWords, check_descriptor_sets
from ..encoders.fisher import FisherVectorEncoder, grid_cells
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
    "FisherVectorUpdate",
    "GMMSampler",
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
        idx, vals = self.bow.map_descriptors(D, level)
        return idx, np.asarray(vals, dtype=np.float64)

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


def _fisher_stage(model):
    """The fitted FisherVectorEncoder of ``model`` (an encoder or a pipeline holding one)."""
    if isinstance(model, Pipeline):
        stages = [st for _, st in model.steps if isinstance(st, FisherVectorEncoder)]
        if not stages:
            raise TypeError("the pipeline has no FisherVectorEncoder stage")
        model = stages[0]
    if not isinstance(model, FisherVectorEncoder):
        raise TypeError(f"expected a FisherVectorEncoder or a pipeline holding one, got {type(model).__name__}")
    check_is_fitted(model, "gmms_")
    return model


class GMMSampler:
    """Substitute descriptors drawn from a Fisher-vector model's GMM (thesis App. C.2).

    For level ``s`` a component ``k ~ pi`` is drawn, then ``y ~ N(mu_k,
    diag(sigma_k^2))`` in the space the GMM lives in.  With PCA, ``y`` is
    mapped back to descriptor space with the level's
    ``PCA.inverse_transform``: the substitute lies in the PCA subspace
    (``mean + W^T y``, no residual), and since the encoder projects it again
    with ``W (l - mean) = y`` the model sees exactly the GMM draw.  The
    substitutes are not valid SIFT descriptors (they can be negative); only
    the model's view of them matters here.  For draws of real descriptors use
    :class:`DescriptorPool` on training descriptors instead.

    Parameters
    ----------
    model : fitted FisherVectorEncoder, or a Pipeline holding one
    """

    def __init__(self, model):
        self.encoder = _fisher_stage(model)

    def sample(self, level, n, rng):
        """``n`` descriptors (n, n_dims_in_) of ``level``, float64."""
        fv = self.encoder
        if level >= fv.n_levels_:
            raise ValueError(f"the model has {fv.n_levels_} level(s), no GMM for level {level}")
        w = np.asarray(fv.weights_[level], dtype=np.float64)
        k = rng.choice(len(w), size=n, p=w / w.sum())
        y = fv.means_[level][k] + fv.sigmas_[level][k] * rng.standard_normal((n, fv.n_dims_))
        p = fv.pcas_[level]
        return p.inverse_transform(y) if p is not None else y


class FisherVectorUpdate:
    """Incremental encoding for a fitted :class:`FisherVectorEncoder` (eq. C.2 with eq. 4.1-4.5).

    Everything is recomputed in float64 from the encoder's public fitted
    attributes (``pcas_``, ``means_``, ``sigmas_``, ``weights_``, ``pyramid``,
    ``include_weights``, ``power``, ``l2``), with the block layout of
    ``feature_layout_``.  ``embed`` gives each descriptor's gradient vector
    ``Psi(l)`` (one block, eq. 4.1-4.3; posteriors of the diagonal GMM after
    the PCA projection); ``bind`` fixes an image's pyramid cells and cell
    sizes and returns ``contributions(descriptors, level, index)``, the
    columns and values ``Psi(l) / |cell|`` for every cell (one per pyramid
    grid) of descriptor ``index``; ``finish`` is the power and L2
    normalisation.  The sum of the contributions over a descriptor set is the
    encoder's unnormalised vector, so the update equals
    ``encoder.transform`` of the perturbed set; it is exact up to rounding
    for ``dtype="float64"`` encoders (a float32 encoder differs by its own
    rounding, about 1e-6).
    """

    def __init__(self, fv):
        fv = _fisher_stage(fv)
        self.encoder = fv
        self.n_features = fv.n_features_out_
        self.n_levels = fv.n_levels_
        self.grids = tuple((int(r), int(c)) for r, c in fv.pyramid)
        self.n_cells = sum(r * c for r, c in self.grids)
        self.block = fv.block_size_
        self._first = np.cumsum([0] + [r * c for r, c in self.grids])[:-1]

    def cells(self, geometry, n):
        """Cell (block index inside a level) of each of ``n`` descriptors per grid: ``(n, n_grids)``."""
        if self.grids == ((1, 1),):
            return np.zeros((n, 1), np.intp)
        if not hasattr(geometry, "centers"):
            raise ValueError(
                "a Fisher-vector model with a spatial pyramid needs descriptor geometry: pass "
                "DescriptorSets (DenseSIFT output) or geometry=the image's DescriptorSet"
            )
        centers = np.asarray(to_numpy(geometry.centers))
        return np.stack(
            [f + grid_cells(centers, geometry.image_shape, g) for f, g in zip(self._first, self.grids)], axis=1
        ).astype(np.intp)

    def embed(self, descriptors, level):
        """Gradient vectors ``Psi(l)`` (eq. 4.1-4.3) of the descriptors of ``level``: ``(n, block_size_)``."""
        fv = self.encoder
        Y = np.asarray(to_numpy(descriptors), dtype=np.float64)
        p = fv.pcas_[level]
        if p is not None:
            Y = (Y - p.mean_) @ np.asarray(p.components_, dtype=np.float64).T
        mu, sig, w = fv.means_[level], fv.sigmas_[level], fv.weights_[level]
        var = sig * sig
        const = np.log(w) - 0.5 * (np.log(2 * np.pi * var).sum(1) + (mu * mu / var).sum(1))
        logp = (Y * Y) @ (-0.5 / var).T + Y @ (mu / var).T + const
        g = np.exp(logp - logp.max(1, keepdims=True))
        g /= g.sum(1, keepdims=True)
        sq = np.sqrt(w)
        n = len(Y)
        u = (Y[:, None, :] - mu[None]) / sig[None]
        a = (g / sq)[:, :, None]
        parts = [(g - w) / sq] if fv.include_weights else []
        parts += [(a * u).reshape(n, -1), (a * (u * u - 1.0) / np.sqrt(2.0)).reshape(n, -1)]
        return np.concatenate(parts, axis=1)

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
        fv = self.encoder
        x = np.asarray(raw, dtype=np.float64)
        if fv.power is not None:
            x = np.sign(x) * np.abs(x) ** float(fv.power)
        if fv.l2 == "global":
            nrm = np.sqrt((x * x).sum(-1, keepdims=True))
            x = x / np.where(nrm > 0, nrm, 1.0)
        elif fv.l2 == "block":
            xb = x.reshape(x.shape[:-1] + (-1, self.block))
            nrm = np.sqrt((xb * xb).sum(-1, keepdims=True))
            x = (xb / np.where(nrm > 0, nrm, 1.0)).reshape(x.shape)
        return x


def _is_update(obj):
    return hasattr(obj, "finish") and (hasattr(obj, "contributions") or hasattr(obj, "bind"))


def encoder_update(stage):
    """The incremental-update object for an encoder stage (Bag-of-Words or Fisher vectors)."""
    if isinstance(stage, BagOfWords):
        return BagOfWordsUpdate(stage)
    if isinstance(stage, FisherVectorEncoder):
        return FisherVectorUpdate(stage)
    if _is_update(stage):
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


def _split_pipeline(pipeline):
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline must be a fitted scikit-learn Pipeline, got {type(pipeline).__name__}")
    for e, (_, stage) in enumerate(pipeline.steps):
        if isinstance(stage, (BagOfWords, FisherVectorEncoder)) or _is_update(stage):
            if e == len(pipeline.steps) - 1:
                break
            return pipeline[:e] if e else None, stage, pipeline[e + 1 :]
    raise ValueError(
        "descriptor_perturbation needs a pipeline with a Bag-of-Words or Fisher-vector stage followed by a "
        f"classifier; got steps {[n for n, _ in pipeline.steps]}"
    )


def _descriptor_chunk(front, update, back, X, relevance, first, batch, n_steps, order, n_repeats, sampler, target, seed):
    sets = front.transform(X) if front is not None else X
    descs, levels, _ = check_descriptor_sets(sets)
    sets = list(sets)
    feats = []
    for j, (D, lv) in enumerate(zip(descs, levels)):
        D = np.asarray(to_numpy(D))
        if D.dtype.kind != "f":
            D = D.astype(np.float64)
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
                r = r.reshape(len(D), -1).sum(1)  # per-dimension relevance (FV, eq. D.3) -> per descriptor
                o = np.lexsort((tie, -r if order == "morf" else r))
            o = o[:n_rep]
            subs = np.empty((n_rep, D.shape[1]), D.dtype)  # as the perturbed set would hold them
            for s in np.unique(lv[o]):
                sel = lv[o] == s
                subs[sel] = sampler.sample(int(s), int(sel.sum()), rng)
            geom = sets[j] if hasattr(sets[j], "centers") else None
            feats.append(replacement_features(update, D, lv, o, subs, batch, n_steps, geometry=geom))
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
        Stages up to a :class:`bowlrp.BagOfWords` or
        :class:`bowlrp.encoders.fisher.FisherVectorEncoder` encoder, then the
        classifier (anything with ``decision_function`` on the features).
    X : images (or descriptor sets when the encoder is the first stage)
    relevance : list of (n_i,) arrays, Explanation, or None
        Descriptor relevance ``R^(2)_l`` (eq. 2.80), e.g. ``exp.descriptors``;
        arrays ``(n_i, n_dims)`` of relevance per descriptor dimension (Fisher
        vectors, eq. D.3) are summed per descriptor.  None only with
        ``order="random"``.
    pool : DescriptorPool, GMMSampler or sampler
        Where substitutes come from (``sample(level, n, rng)``); for Fisher
        vectors the thesis draws them from the model's GMM:
        ``GMMSampler(pipeline)``.  A substitute
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
