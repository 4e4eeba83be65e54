"""Bag-of-Words encoding of local descriptors, forward and backward.

Forward (thesis Sec. 2.4.1, eq. 2.65, 2.86): a k-means vocabulary per
descriptor level (one per SIFT scale, the blocks concatenated); each
descriptor ``l`` is mapped to the words ``d`` by hard assignment, by the rank
mapping ``m_d(l) = p ** -rk_d(l)`` or by soft (kernel-codebook) assignment
over its ``n`` nearest words; the mappings are pooled per image and block (sum
pooling, p-means pooling eq. 2.65/2.81, or max pooling) and normalised.

Backward (eq. 2.77-2.83): the relevance ``R_d`` of a word is redistributed to
the descriptors mapped to it by a rule of :mod:`bowlrp.rules` applied to the
forward messages ``z_ld`` -- ``m_d(l)`` for sum pooling, proportional to
``m_d(l) ** p`` for p-means pooling (eq. 2.82) and to the indicator of the
maximal mapping for max pooling (eq. 2.83); words no descriptor of the image
maps to spread their relevance uniformly over the descriptors of their block
(the zero-mapping case of eq. 2.79).
"""

import math
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._backend import asarray, get_namespace, to_numpy
from .._validation import check_int
from ..base import ExplainableTransformerMixin
from ..rules import mapping_rule, redistribute_sparse
from .bow_math import block_scale, nearest_words, normalize_blocks, pmeans_pool, rank_values, soft_values
from .descriptor_sets import check_descriptor_sets

__all__ = ["BagOfWords", "check_descriptor_sets"]

_MAPPINGS = ("hard", "rank", "soft")
_NORMALIZE = ("l1", "count", None)
_POOLINGS = ("sum", "max", "a float p >= 1 (p-means)")
class BagOfWords(ExplainableTransformerMixin, TransformerMixin, BaseEstimator):
    """Visual-word histograms with one k-means vocabulary per descriptor level.

    Parameters
    ----------
    n_words : int, default=128
        Vocabulary size per level (the thesis' toy: 128 per SIFT scale).
    mapping : {"rank", "hard", "soft"}, default="rank"
        ``"rank"``: ``m_d(l) = rank_base ** -rk_d(l)`` for the ``n_ranks``
        nearest words, ranks counted from 1 (eq. 2.86); ``"hard"``: 1 for the
        nearest word (vector quantisation); ``"soft"``: kernel-codebook
        assignment (van Gemert et al.) over the ``n_ranks`` nearest words,
        ``m_d(l) = exp(-soft_beta ||l - c_d||^2)`` normalised to sum 1 over
        those words (computed in float64 relative to the nearest word, so the
        nearest word always gets the largest value and the sum is never 0;
        weights below 1e-100 are set to 0 so that no ``R_d / z_d`` overflows).
    rank_base : float, default=2.0
        ``p`` of eq. 2.86, must be > 1.
    n_ranks : int, default=4
        ``n`` of eq. 2.86: how many nearest words a descriptor maps to (all
        ``n_words`` when larger, as eq. 2.86 reads then); also the number of
        words of the soft assignment.
    soft_beta : float >= 0 or "auto", default="auto"
        Bandwidth ``beta`` of the soft assignment (``1 / (2 sigma^2)`` of a
        Gaussian kernel); ignored by the other mappings.  ``"auto"`` sets it
        per level at fit time to the inverse mean squared distance of the
        training descriptors to their nearest word (``soft_betas_``), which
        adapts it to the descriptors' scale.  ``0`` spreads each descriptor
        evenly over its ``n_ranks`` nearest words.
    pooling : "sum", "max" or float p >= 1, default="sum"
        How the mappings of a block's descriptors are aggregated per word:
        ``"sum"`` adds them; a number ``p`` takes the p-mean
        ``(1/|L| sum_l m_d(l)^p)^(1/p)`` over the block's descriptors ``L``
        (eq. 2.65, 2.81; ``p=1`` is the mean); ``"max"`` (or ``p=inf``) the
        maximum, the limit ``p -> inf``.
    normalize : {"l1", "count", None}, default="l1"
        Per block, after pooling: ``"l1"`` divides the pooled histogram by its
        sum (the toy experiment), ``"count"`` by the number of descriptors of
        the block (the ``1/|L|`` of eq. 2.65 for sum pooling), ``None`` keeps
        the pooled values.  p-means and max pooling take only ``"l1"`` or
        ``None``: the p-mean already holds the ``1/|L|``, and dividing a maximum
        by the descriptor count has no meaning, so ``"count"`` raises there.
    max_descriptors : int, default=50000
        Descriptors per level sampled (uniformly, without replacement) from the
        training set for k-means.
    n_init : int, default=1
        k-means restarts.
    max_iter : int, default=100
        k-means iterations.
    random_state : int, RandomState or None
        Seeds the descriptor sample and k-means.

    Attributes
    ----------
    vocabularies_ : list of ndarray of shape (n_words, n_dims)
        Cluster centres per level.
    n_levels_ : int
        Number of descriptor levels (vocabularies).
    soft_betas_ : tuple of float
        Soft-assignment bandwidth per level (``soft_beta``, or the fitted value
        for ``"auto"``); only with ``mapping="soft"``.
    block_sizes_ : tuple of int
        Output features per level; the output is the concatenation of blocks.
    n_features_out_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.random((50, 8)) for _ in range(4)]
    >>> bow = BagOfWords(n_words=5, random_state=0).fit(sets)
    >>> bow.transform(sets).shape
    (4, 5)
    """

    input_kind = "descriptors"
    takes_mapping_rule = True

    def __init__(
        self,
        n_words=128,
        mapping="rank",
        rank_base=2.0,
        n_ranks=4,
        soft_beta="auto",
        pooling="sum",
        normalize="l1",
        max_descriptors=50000,
        n_init=1,
        max_iter=100,
        random_state=None,
    ):
        self.n_words = n_words
        self.mapping = mapping
        self.rank_base = rank_base
        self.n_ranks = n_ranks
        self.soft_beta = soft_beta
        self.pooling = pooling
        self.normalize = normalize
        self.max_descriptors = max_descriptors
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    # ------------------------------------------------------------------ params
    def _check_params(self):
        for name in ("n_words", "n_ranks", "max_descriptors", "n_init", "max_iter"):
            check_int(self, name, 1)
        if self.mapping not in _MAPPINGS:
            raise ValueError(f"unknown mapping {self.mapping!r}; valid mappings are {list(_MAPPINGS)}")
        if self.normalize not in _NORMALIZE:
            raise ValueError(f"unknown normalize {self.normalize!r}; valid values are {list(_NORMALIZE)}")
        if not isinstance(self.rank_base, Real) or not self.rank_base > 1:
            raise ValueError(f"rank_base must be a number > 1, got {self.rank_base!r}")
        sb = self.soft_beta
        if not (sb == "auto" if isinstance(sb, str) else
                isinstance(sb, Real) and not isinstance(sb, bool) and 0 <= sb < math.inf):
            raise ValueError(f"soft_beta must be 'auto' or a finite number >= 0, got {sb!r}")
        p = self._pool_p()
        if p is not None and self.normalize == "count":
            raise ValueError(
                f"normalize='count' divides by the number of descriptors, which pooling={self.pooling!r} "
                "already does (the 1/|L| of the p-mean, eq. 2.65) or which has no meaning for a maximum; "
                "use normalize='l1' or normalize=None"
            )

    def _pool_p(self):
        """``None`` for sum pooling, else the p of the p-mean (``inf`` for max pooling)."""
        v = self.pooling
        if isinstance(v, str):
            if v == "sum":
                return None
            if v == "max":
                return math.inf
        elif isinstance(v, Real) and not isinstance(v, bool) and v >= 1:
            return float(v)
        raise ValueError(
            f"unknown pooling {v!r}; valid poolings are 'sum', 'max' or a number p >= 1 (p-means, eq. 2.65)"
        )

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Learn one k-means vocabulary per level from sampled training descriptors.

        Parameters
        ----------
        X : list of descriptor sets
            Output of :meth:`bowlrp.DenseSIFT.transform` (or 2-D arrays).
        y : ignored
        """
        self._check_params()
        descs, levels, n_levels = check_descriptor_sets(X)
        rng = check_random_state(self.random_state)
        vocabularies, betas = [], []
        for s in range(n_levels):
            pool = [np.asarray(to_numpy(d)[lv == s], dtype=np.float32) for d, lv in zip(descs, levels)]
            pool = np.concatenate(pool) if pool else np.empty((0, descs[0].shape[1]), np.float32)
            if len(pool) > self.max_descriptors:
                pool = pool[rng.choice(len(pool), self.max_descriptors, replace=False)]
            if len(pool) < self.n_words:
                raise ValueError(
                    f"level {s} has only {len(pool)} training descriptors, fewer than "
                    f"n_words={self.n_words}; use more training images or a smaller vocabulary"
                )
            km = KMeans(
                n_clusters=self.n_words,
                n_init=self.n_init,
                max_iter=self.max_iter,
                random_state=rng.randint(np.iinfo(np.int32).max),
            ).fit(pool)
            vocabularies.append(km.cluster_centers_.astype(np.float32))
            if self.mapping == "soft":
                if self.soft_beta == "auto":
                    mean_d2 = float(km.inertia_) / len(pool)
                    betas.append(1.0 / mean_d2 if mean_d2 > 0 else 1.0)
                else:
                    betas.append(float(self.soft_beta))
        self.vocabularies_ = vocabularies
        if self.mapping == "soft":
            self.soft_betas_ = tuple(betas)
        self.n_levels_ = n_levels
        self.n_dims_in_ = descs[0].shape[1]
        self.block_sizes_ = (self.n_words,) * n_levels
        self.n_features_out_ = self.n_words * n_levels
        return self

    # ----------------------------------------------------------------- forward
    def _n_mapped(self):
        """How many words each descriptor maps to."""
        return 1 if self.mapping == "hard" else min(self.n_ranks, self.n_words)

    def map_descriptors(self, descriptors, level=0):
        """The mapping ``m_d(l)`` of descriptors onto the words of one level, before pooling.

        Parameters
        ----------
        descriptors : array (n, n_dims)
        level : int
            Which vocabulary (SIFT scale).

        Returns
        -------
        words : int array (n, r)
            Output feature index of each mapped word (the level's block offset
            included), nearest first.
        values : float64 array (n, r)
            ``m_d(l)`` (eq. 2.86 for ``"rank"``; 1 for ``"hard"``; the kernel
            codebook weights for ``"soft"``).
        """
        check_is_fitted(self, "vocabularies_")
        if not 0 <= level < self.n_levels_:
            raise ValueError(f"level must be in [0, {self.n_levels_}), got {level!r}")
        xp = get_namespace(descriptors)
        beta = self.soft_betas_[level] if self.mapping == "soft" else None
        idx, vals = self._assign(descriptors, self.vocabularies_[level], xp, beta)
        return idx + level * self.n_words, vals

    def _assign(self, D, vocab, xp, beta=None):
        """Word indices (n, r) and mapping values (n, r) of descriptors ``D`` (eq. 2.86, soft)."""
        idx = nearest_words(D, vocab, self._n_mapped(), xp)
        if self.mapping == "hard":
            vals = xp.ones((D.shape[0], 1), dtype=xp.float64)
        elif self.mapping == "soft":
            vals = soft_values(D, vocab, idx, beta, xp)
        else:
            vals = rank_values(D.shape[0], idx.shape[1], self.rank_base, xp)
        return idx, vals

    def normalize_raw(self, raw, counts):
        """Per-block normalisation (``normalize``) of raw pooled vectors ``raw`` ``(..., n_features_out_)``.

        ``raw`` is the sum of :meth:`map_descriptors` over an image's
        descriptors (sum pooling); ``counts`` (..., n_levels) holds the
        descriptors per block (used by ``normalize="count"``).  :meth:`forward`
        applies the same function (:func:`~bowlrp.encoders.bow_math.block_scale`).
        """
        check_is_fitted(self, "vocabularies_")
        return normalize_blocks(raw, counts, self.normalize, self.n_words, get_namespace(raw))

    def forward(self, X):
        """Encode ``X`` and return ``(features, trace)`` for :meth:`relevance`.

        The trace holds, per image, the sparse forward messages ``z_ld``
        (word index and message of each descriptor's mapping: ``m_d(l)`` for
        sum pooling, eq. 2.77, the p-means messages of
        :func:`~bowlrp.encoders.bow_math.pmeans_pool`
        otherwise; already scaled by the block normalisation) and each
        descriptor's block.  Each word's messages sum to its output feature.
        """
        check_is_fitted(self, "vocabularies_")
        descs, levels, n_levels = check_descriptor_sets(X)
        if n_levels > self.n_levels_ or any(d.shape[1] != self.n_dims_in_ for d in descs):
            raise ValueError(
                f"descriptors do not match the fitted vocabularies ({self.n_levels_} level(s) of "
                f"dimension {self.n_dims_in_})"
            )
        xp = get_namespace(*descs)
        n, K, L = len(descs), self.n_words, self.n_levels_
        counts = np.array([len(d) for d in descs])
        offsets = np.concatenate([[0], np.cumsum(counts)])
        allD = xp.concatenate([asarray(d, xp, dtype=xp.float32) for d in descs])
        allL = xp.asarray(np.concatenate(levels))
        image_of = xp.asarray(np.repeat(np.arange(n), counts))
        r = self._n_mapped()
        idx = xp.zeros((allD.shape[0], r), dtype=xp.intp)
        vals = xp.zeros((allD.shape[0], r), dtype=xp.float64)
        for s in range(L):
            sel = xp.nonzero(allL == s)[0]
            if sel.size:
                idx[sel], vals[sel] = self.map_descriptors(allD[sel], level=s)
        group = image_of * L + allL  # (image, block) of each descriptor
        cols = (image_of[:, None] * (L * K) + idx).ravel()
        p = self._pool_p()
        if p is None:  # sum pooling; the messages are the mappings (eq. 2.77 without 1/|L|)
            hist = xp.bincount(cols, weights=vals.ravel(), minlength=n * L * K).reshape(n, L, K)
        else:
            hist, vals = pmeans_pool(vals, cols, group, (n, L, K), p, xp)
        # per-block normalisation, after pooling
        counts_b = xp.bincount(group, minlength=n * L).reshape(n, L)
        scale = block_scale(hist, counts_b, self.normalize, xp)
        features = (hist / scale[:, :, None]).reshape(n, L * K)
        vals = vals / scale.reshape(-1)[group][:, None]
        trace = {
            "idx": idx,
            "vals": vals,
            "group": group,
            "image_of": image_of,
            "offsets": offsets,
            "features": features,
        }
        return features, trace

    def transform(self, X):
        """Return the Bag-of-Words features, shape ``(n_images, n_features_out_)``."""
        return self.forward(X)[0]

    # ---------------------------------------------------------------- backward
    def relevance(self, relevance, trace, rule=None):
        """Redistribute feature relevance to descriptors (eq. 2.78-2.80).

        Parameters
        ----------
        relevance : array of shape ``(n_images, n_features_out_)``
            Relevance of each Bag-of-Words dimension (``R^(3)_d``).
        trace : dict
            From :meth:`forward` on the same images.
        rule : str, Rule or None
            A rule of :mod:`bowlrp.rules` (None: the proportional rule): ``"z"`` (proportional, eq. 2.78),
            ``"epsilon"``, ``"alphabeta"``, ``"abs"``, ``"flat"``.

        Returns
        -------
        list of arrays of shape (n_i,)
            Relevance of each descriptor of each image (``R^(2)_l``, eq. 2.80).
            Words of a block that no descriptor of the image maps to spread
            their relevance uniformly over the block's descriptors (eq. 2.79);
            a block without descriptors spreads it over all the image's
            descriptors.
        """
        rule = mapping_rule(rule)
        idx, vals, group = trace["idx"], trace["vals"], trace["group"]
        image_of, offsets = trace["image_of"], trace["offsets"]
        xp = get_namespace(idx, vals)
        R = asarray(relevance, xp, dtype=xp.float64)
        n, DK = R.shape
        L = self.n_levels_
        K = DK // L
        counts = np.diff(offsets)
        if (counts == 0).any():
            bad = int(np.flatnonzero(counts == 0)[0])
            raise ValueError(f"image {bad} has no descriptors: its relevance cannot be attributed")
        cols = (image_of[:, None] * DK + idx).ravel()
        Rflat = R.reshape(-1)
        messages, reached = redistribute_sparse(rule, vals.ravel(), cols, n * DK, Rflat, xp)
        per_desc = messages.reshape(idx.shape).sum(1)
        # zero-mapping case (eq. 2.79): unreached words spread over their block
        lost = xp.where(reached, 0.0, Rflat).reshape(n * L, K).sum(1)
        n_in_group = xp.bincount(group, minlength=n * L)
        empty = n_in_group == 0
        lost_img = xp.where(empty, lost, 0.0).reshape(n, L).sum(1)  # blocks without descriptors
        per_desc = per_desc + xp.where(empty, 0.0, lost / xp.maximum(n_in_group, 1))[group]
        per_desc = per_desc + (lost_img / xp.asarray(counts))[image_of]
        return [per_desc[offsets[i] : offsets[i + 1]] for i in range(n)]

    def get_feature_names_out(self, input_features=None):
        """Names ``level{s}_word{k}`` of the output features."""
        check_is_fitted(self, "vocabularies_")
        return np.array(
            [f"level{s}_word{k}" for s in range(self.n_levels_) for k in range(self.n_words)], dtype=object
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = False
        return tags
