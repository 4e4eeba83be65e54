"""BagOfWords: forward mapping, pooling and every backward rule against slow references."""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bowlrp import BagOfWords
from bowlrp.rules import get_rule
from test_rules import RULE_CASES, ref_rule


def _sets(rng, n_images=5, n_levels=2, dim=8, sizes=(3, 30)):
    out = []
    for _ in range(n_images):
        n = int(rng.integers(*sizes))
        out.append(
            SimpleNamespace(
                descriptors=rng.random((n, dim)).astype(np.float32),
                levels=rng.integers(0, n_levels, n),
                n_levels=n_levels,
            )
        )
    return out


def _ref_mapping(bow, d, level):
    """m_d(l) of eq. 2.86, hard assignment or soft assignment for one descriptor, as a dense vector."""
    V = bow.vocabularies_[level].astype(np.float64)
    dist = np.array([np.linalg.norm(d.astype(np.float64) - v) for v in V])
    order = np.argsort(dist, kind="stable")
    m = np.zeros(len(V))
    if bow.mapping == "hard":
        m[order[0]] = 1.0
    elif bow.mapping == "soft":
        near = order[: bow.n_ranks]
        beta = bow.soft_betas_[level]
        w = {k: np.exp(-beta * (dist[k] ** 2 - dist[near[0]] ** 2)) for k in near}
        for k in near:
            m[k] = w[k] / sum(w.values())
            m[k] = m[k] if m[k] >= 1e-100 else 0.0  # vanishing weights flushed (R_d / z_d would overflow)
    else:
        for rank, k in enumerate(order[: bow.n_ranks], start=1):
            m[k] = bow.rank_base ** -rank
    return m


def _ref_encode(bow, s):
    """Forward messages (n_desc, L*K), each column summing to the pooled histogram, and the
    normalised histogram: sum pooling (eq. 2.77), p-means (eq. 2.65, 2.82) or max (eq. 2.83)."""
    K, L = bow.n_words, bow.n_levels_
    M = np.zeros((len(s.descriptors), L * K))
    for j, (d, lv) in enumerate(zip(s.descriptors, s.levels)):
        M[j, lv * K : (lv + 1) * K] = _ref_mapping(bow, d, lv)
    pooling = bow.pooling
    if pooling != "sum":
        for d in range(L * K):
            members = np.flatnonzero(s.levels == d // K)
            col = M[:, d].copy()
            M[:, d] = 0.0
            if not len(members) or not col.any():
                continue
            if pooling == "max" or pooling == np.inf:
                x = max(col[j] for j in members)
                ties = [j for j in members if col[j] == x]
                for j in ties:
                    M[j, d] = x / len(ties)
            else:
                p = float(pooling)
                x = (sum(col[j] ** p for j in members) / len(members)) ** (1 / p)
                for j in members:
                    M[j, d] = col[j] ** p / sum(col[i] ** p for i in members) * x
    x = M.sum(0)
    for lv in range(L):
        blk = slice(lv * K, (lv + 1) * K)
        if bow.normalize == "l1":
            z = x[blk].sum()
        elif bow.normalize == "count":
            z = (s.levels == lv).sum()
        else:
            z = 1.0
        if z > 0:
            M[:, blk] /= z
            x[blk] /= z
    return M, x


def _ref_backward(bow, s, R, rule="z", params=None):
    """Eq. 2.79-2.80 with any rule, written as loops over descriptors and words."""
    M, _ = _ref_encode(bow, s)
    messages, reached = ref_rule(rule, params or {}, M, R)
    K = bow.n_words
    Rl = messages.sum(1)
    for d in range(M.shape[1]):
        if reached[d]:
            continue
        members = np.flatnonzero(s.levels == d // K)
        if len(members):
            Rl[members] += R[d] / len(members)
        else:
            Rl += R[d] / len(M)
    return Rl


@pytest.mark.parametrize("mapping", ["rank", "hard"])
@pytest.mark.parametrize("normalize", ["l1", "count", None])
def test_forward_matches_reference(mapping, normalize):
    rng = np.random.default_rng(0)
    sets = _sets(rng)
    bow = BagOfWords(n_words=6, mapping=mapping, normalize=normalize, random_state=0).fit(sets)
    X = bow.transform(sets)
    assert X.shape == (len(sets), 12) and X.dtype == np.float64
    for s, x in zip(sets, X):
        np.testing.assert_allclose(x, _ref_encode(bow, s)[1], rtol=1e-12, atol=1e-15)
    if normalize == "l1":
        np.testing.assert_allclose(X.reshape(len(sets), 2, 6).sum(2), 1.0)


@pytest.mark.parametrize("mapping", ["rank", "hard"])
@pytest.mark.parametrize("normalize", ["l1", "count", None])
def test_backward_matches_reference_and_conserves(mapping, normalize):
    rng = np.random.default_rng(1)
    sets = _sets(rng, n_images=6)
    # one image whose descriptors are all level 0: block 1 has no descriptors
    sets[0].levels = np.zeros_like(sets[0].levels)
    bow = BagOfWords(n_words=7, mapping=mapping, normalize=normalize, random_state=0).fit(sets)
    X, trace = bow.forward(sets)
    R = rng.normal(size=X.shape)
    Rl = bow.relevance(R, trace, "z")
    for s, r, rl in zip(sets, R, Rl):
        np.testing.assert_allclose(rl, _ref_backward(bow, s, r), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rl.sum(), r.sum(), rtol=1e-12, atol=1e-12)


_POOLED_CONFIGS = [
    (mapping, pooling, normalize)
    for mapping in ("rank", "hard", "soft")
    for pooling, normalizes in (("sum", ("l1", "count", None)), (1.0, ("l1", None)), (3, ("l1", None)), ("max", ("l1", None)))
    for normalize in normalizes
]


@pytest.mark.parametrize("mapping,pooling,normalize", _POOLED_CONFIGS)
def test_every_rule_matches_reference(mapping, pooling, normalize):
    """Forward (mapping, pooling, normalisation) and backward through all rules against the loops."""
    rng = np.random.default_rng(11)
    sets = _sets(rng, n_images=5, sizes=(2, 15))
    sets[0].levels = np.zeros_like(sets[0].levels)  # block 1 of image 0 has no descriptors
    sets[1].descriptors = sets[1].descriptors[:1].copy()  # a single descriptor
    sets[1].levels = sets[1].levels[:1].copy()
    bow = BagOfWords(n_words=7, mapping=mapping, pooling=pooling, normalize=normalize, soft_beta="auto",
                     random_state=0).fit(sets)
    X, trace = bow.forward(sets)
    R = rng.normal(size=X.shape)
    R[:, ::5] = 0.0
    for s, x in zip(sets, X):
        np.testing.assert_allclose(x, _ref_encode(bow, s)[1], rtol=1e-10, atol=1e-14)
    for name, params in RULE_CASES:
        rule = get_rule(name, **params)
        Rl = bow.relevance(R, trace, rule)
        for s, r, rl in zip(sets, R, Rl):
            np.testing.assert_allclose(rl, _ref_backward(bow, s, r, name, params), rtol=1e-9, atol=1e-12,
                                       err_msg=f"rule {rule!r}")
            if rule.exact:
                np.testing.assert_allclose(rl.sum(), r.sum(), rtol=1e-10, atol=1e-12)


def test_max_pooling_ties_share_evenly():
    # hard assignment: every descriptor mapped to a word has the maximal value 1
    rng = np.random.default_rng(7)
    sets = _sets(rng, n_images=6, n_levels=1, sizes=(10, 20))
    bow = BagOfWords(n_words=3, mapping="hard", pooling="max", normalize=None, random_state=0).fit(sets)
    X, trace = bow.forward(sets[:1])
    np.testing.assert_array_equal(X[0], 1.0)  # every word is hit by 10+ descriptors
    words = np.asarray(trace["idx"])[:, 0]
    R = np.array([[3.0, 0.0, 0.0]])
    for rule in ("z", "flat", "abs", "alphabeta"):
        scale = 2.0 if rule == "alphabeta" else 1.0  # alpha R_j with only positive messages
        rl = bow.relevance(R, trace, rule)[0]
        np.testing.assert_allclose(rl, np.where(words == 0, 3.0 * scale / (words == 0).sum(), 0.0))


def test_pmeans_limits():
    rng = np.random.default_rng(8)
    sets = _sets(rng, n_images=6, sizes=(5, 20))

    def run(**kw):
        bow = BagOfWords(n_words=6, mapping="soft", n_ranks=3, random_state=0, **kw).fit(sets)
        X, trace = bow.forward(sets)
        return X, bow.relevance(R, trace, "epsilon")

    R = rng.normal(size=(len(sets), 12))
    # p = 1 is the mean: sum pooling divided by the descriptor count, messages included
    X1, R1 = run(pooling=1.0, normalize=None)
    Xc, Rc = run(pooling="sum", normalize="count")
    np.testing.assert_allclose(X1, Xc, rtol=1e-12)
    for a, b in zip(R1, Rc):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    # large p approaches max pooling (eq. 2.83) without overflow or underflow
    Xm, Rm = run(pooling="max", normalize="l1")
    Xp, Rp = run(pooling=1e5, normalize="l1")
    Xi, Ri = run(pooling=float("inf"), normalize="l1")
    np.testing.assert_allclose(Xp, Xm, rtol=1e-4)
    np.testing.assert_array_equal(Xi, Xm)
    for a, b, c in zip(Rp, Rm, Ri):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
        np.testing.assert_array_equal(b, c)


def test_soft_assignment():
    rng = np.random.default_rng(9)
    sets = _sets(rng, n_images=6, n_levels=2, sizes=(5, 20))
    bow = BagOfWords(n_words=5, mapping="soft", n_ranks=3, normalize=None, random_state=0).fit(sets)
    assert len(bow.soft_betas_) == 2 and all(b > 0 for b in bow.soft_betas_)
    X = bow.transform(sets)
    for s, x in zip(sets, X):  # the weights of each descriptor sum to 1
        np.testing.assert_allclose(x.reshape(2, 5).sum(1), np.bincount(s.levels, minlength=2), rtol=1e-12)
    # beta = 0: uniform over the n_ranks nearest words; a huge beta: hard assignment
    uni = BagOfWords(n_words=5, mapping="soft", n_ranks=3, soft_beta=0, normalize=None, random_state=0).fit(sets)
    _, tr = uni.forward(sets)
    np.testing.assert_allclose(np.asarray(tr["vals"]), 1 / 3)
    hard = BagOfWords(n_words=5, mapping="hard", normalize=None, random_state=0).fit(sets)
    sharp = BagOfWords(n_words=5, mapping="soft", n_ranks=5, soft_beta=1e6, normalize=None, random_state=0)
    np.testing.assert_allclose(sharp.fit(sets).transform(sets), hard.transform(sets), atol=1e-12)
    # descriptors far from every word: finite, still summing to 1
    far = [SimpleNamespace(descriptors=np.full((3, 8), 1e4, np.float32), levels=np.zeros(3, int), n_levels=2)]
    Xf, trf = sharp.forward(far)
    assert np.isfinite(Xf).all() and Xf.sum() == pytest.approx(3.0)
    assert all(np.isfinite(r).all() for r in sharp.relevance(np.ones_like(Xf), trf, "epsilon"))


@pytest.mark.parametrize("beta", [700.0, 740.0, 760.0])
def test_vanishing_soft_weights_do_not_overflow(beta):
    # the second word's weight exp(-beta * 0.96) is subnormal for beta >= 740: it must not reach a word alone
    train = [np.array([[0.0, 0.0], [1, 0], [0, 1], [1, 1]] * 10, np.float32)]
    bow = BagOfWords(n_words=4, mapping="soft", n_ranks=2, soft_beta=beta, normalize=None, random_state=0).fit(train)
    X, trace = bow.forward([np.array([[0.02, 0.0]], np.float32)])
    for name, params in RULE_CASES:
        rl = bow.relevance(np.ones_like(X), trace, get_rule(name, **params))[0]
        assert np.isfinite(rl).all()
        if get_rule(name, **params).exact:
            np.testing.assert_allclose(rl, [4.0])


def test_pooling_and_soft_validation():
    rng = np.random.default_rng(10)
    sets = _sets(rng)
    for bad in ("avg", 0.5, 0, True, float("nan"), None):
        with pytest.raises(ValueError, match="valid poolings"):
            BagOfWords(pooling=bad).fit(sets)
    for pooling in (2.0, "max"):
        with pytest.raises(ValueError, match="normalize='count'"):
            BagOfWords(pooling=pooling, normalize="count").fit(sets)
    for bad in (-1.0, "fast", float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match="soft_beta"):
            BagOfWords(mapping="soft", soft_beta=bad).fit(sets)
    with pytest.raises(ValueError, match=r"valid mappings are \['hard', 'rank', 'soft'\]"):
        BagOfWords(mapping="kernel").fit(sets)


def test_zero_mapping_case_spreads_uniformly_within_block():
    # hard assignment to 6 words with 2 descriptors: at least 4 words unreached
    rng = np.random.default_rng(2)
    sets = _sets(rng, n_images=8, n_levels=1, sizes=(10, 20))
    bow = BagOfWords(n_words=6, mapping="hard", random_state=0).fit(sets)
    probe = [SimpleNamespace(descriptors=sets[0].descriptors[:2], levels=np.zeros(2, int), n_levels=1)]
    X, trace = bow.forward(probe)
    R = np.zeros_like(X)
    unreached = np.flatnonzero(X[0] == 0)
    assert len(unreached) >= 4
    R[0, unreached[0]] = 3.0
    np.testing.assert_allclose(bow.relevance(R, trace, "z")[0], [1.5, 1.5])


def test_more_ranks_than_words_maps_every_word():
    rng = np.random.default_rng(6)
    sets = _sets(rng, n_levels=1)
    bow = BagOfWords(n_words=3, n_ranks=10, normalize=None, random_state=0).fit(sets)
    X = bow.transform(sets)
    for s, x in zip(sets, X):
        np.testing.assert_allclose(x, _ref_encode(bow, s)[1], rtol=1e-12)
        np.testing.assert_allclose(x.sum(), len(s.descriptors) * (0.5 + 0.25 + 0.125))


def test_plain_arrays_are_one_level():
    rng = np.random.default_rng(3)
    arrays = [rng.random((20, 5)) for _ in range(4)]
    bow = BagOfWords(n_words=4, random_state=0).fit(arrays)
    assert bow.n_levels_ == 1 and bow.transform(arrays).shape == (4, 4)
    assert list(bow.get_feature_names_out()[:2]) == ["level0_word0", "level0_word1"]


def test_deterministic_and_clone_pickle():
    rng = np.random.default_rng(4)
    sets = _sets(rng)
    a = BagOfWords(n_words=5, random_state=3).fit(sets)
    b = clone(a).fit(sets)
    np.testing.assert_array_equal(a.transform(sets), b.transform(sets))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.transform(sets), c.transform(sets))


def test_errors():
    rng = np.random.default_rng(5)
    sets = _sets(rng)
    with pytest.raises(NotFittedError):
        BagOfWords().transform(sets)
    with pytest.raises(ValueError, match="valid mappings"):
        BagOfWords(mapping="soft-ish").fit(sets)
    with pytest.raises(ValueError, match="n_words"):
        BagOfWords(n_words=0).fit(sets)
    with pytest.raises(ValueError, match="rank_base"):
        BagOfWords(rank_base=1.0).fit(sets)
    with pytest.raises(ValueError, match="fewer than n_words"):
        BagOfWords(n_words=10_000).fit(sets)
    with pytest.raises(TypeError, match="one descriptor set per image"):
        BagOfWords().fit(np.zeros((10, 8)))
    with pytest.raises(ValueError, match="empty"):
        BagOfWords().fit([])
    bad = [SimpleNamespace(descriptors=np.full((3, 8), np.nan), levels=np.zeros(3, int), n_levels=1)]
    with pytest.raises(ValueError, match="NaN"):
        BagOfWords().fit(bad)
    bow = BagOfWords(n_words=4, random_state=0).fit(sets)
    with pytest.raises(ValueError, match="do not match"):
        bow.transform([rng.random((5, 3))])
    X, trace = bow.forward([np.zeros((0, 8), np.float32)])
    with pytest.raises(ValueError, match="no descriptors"):
        bow.relevance(np.ones_like(X), trace, "z")
    with pytest.raises(ValueError, match="valid rules are"):
        bow.relevance(np.ones_like(X), trace, "zplus-typo")


def test_rule_registry():
    assert get_rule("proportional") == get_rule("z")
    with pytest.raises(ValueError, match=r"valid rules are \[.abs."):
        get_rule("lrp-eps")


def test_map_descriptors_is_eq_2_86_with_block_offset():
    rng = np.random.default_rng(11)
    sets = _sets(rng)
    bow = BagOfWords(n_words=6, random_state=0).fit(sets)
    d = sets[0].descriptors[:4]
    words, values = bow.map_descriptors(d, level=1)
    for j in range(4):
        dense = np.zeros(12)
        dense[words[j]] = values[j]
        np.testing.assert_allclose(dense[6:], _ref_mapping(bow, d[j], 1))
        assert not dense[:6].any()
    with pytest.raises(ValueError, match="level must be"):
        bow.map_descriptors(d, level=2)
