"""Descriptor-replacement perturbation for Bag-of-Words and Fisher-vector models (thesis App. C.2).

Instead of pixels, the local descriptors of an image are replaced, in the
order of their relevance ``R^(2)_l`` and in batches, by substitutes drawn near
the data manifold (:mod:`bowlrp.evaluation.substitutes`: from the model's GMM
for Fisher vectors, from a pool of training descriptors for k-means
vocabularies), and the decision function is recorded.  The encoded vectors
are updated incrementally with the encoder's own mapping and normalisation
(:mod:`bowlrp.evaluation.encoder_updates`, eq. C.1-C.2).
"""

import numpy as np
from sklearn.pipeline import Pipeline

from .._backend import to_numpy
from ..encoders.bow import BagOfWords
from ..encoders.descriptor_sets import check_descriptor_sets
from ..encoders.fisher import FisherVectorEncoder
from ._common import check_choice, check_positive_int, chunks, map_chunks, resolve_seed, select_scores
from .encoder_updates import (  # noqa: F401  (these names were defined here before)
    BagOfWordsUpdate,
    FisherVectorUpdate,
    encoder_update,
    is_update,
    replacement_features,
)
from .perturbation import PerturbationResult
from .substitutes import DescriptorPool, GMMSampler  # noqa: F401

__all__ = ["descriptor_perturbation"]

_ORDERS = ("morf", "lerf", "random")


def _split_pipeline(pipeline):
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline must be a fitted scikit-learn Pipeline, got {type(pipeline).__name__}")
    for e, (_, stage) in enumerate(pipeline.steps):
        if isinstance(stage, (BagOfWords, FisherVectorEncoder)) or is_update(stage):
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

    Examples
    --------
    A Bag-of-Words model on descriptor sets (the encoder is its first stage);
    replacing the most relevant descriptors first lowers the score faster
    than replacing them in random order:

    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> y = np.arange(20) % 2  # class 1: descriptors shifted along the first dimension
    >>> pipe = bowlrp.ExplainablePipeline([("bow", bowlrp.BagOfWords(n_words=4, random_state=0)),
    ...                                    ("svm", bowlrp.KernelSVC(kernel="hik"))]).fit(sets, y)
    >>> exp = pipe.explain(sets[:4])
    >>> pool = DescriptorPool(sets, random_state=0)
    >>> morf = descriptor_perturbation(pipe, sets[:4], exp, pool=pool, batch_size=5, n_steps=3, random_state=0)
    >>> rand = descriptor_perturbation(pipe, sets[:4], pool=pool, order="random", batch_size=5, n_steps=3,
    ...                                random_state=0)
    >>> morf.curves.shape, bool(morf.aopc > rand.aopc)
    ((4, 1, 4), True)
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
