"""BagOfWords: forward mapping and proportional backward rule against slow references."""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bowlrp import BagOfWords
from bowlrp.rules import get_rule


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
    """m_d(l) of eq. 2.86 (or hard assignment) for one descriptor, as a dense vector."""
    V = bow.vocabularies_[level].astype(np.float64)
    dist = np.array([np.linalg.norm(d.astype(np.float64) - v) for v in V])
    order = np.argsort(dist, kind="stable")
    m = np.zeros(len(V))
    if bow.mapping == "hard":
        m[order[0]] = 1.0
    else:
        for rank, k in enumerate(order[: bow.n_ranks], start=1):
            m[k] = bow.rank_base ** -rank
    return m


def _ref_encode(bow, s):
    """Dense per-descriptor mappings (n_desc, L*K) and the pooled, normalised histogram."""
    K, L = bow.n_words, bow.n_levels_
    M = np.zeros((len(s.descriptors), L * K))
    for j, (d, lv) in enumerate(zip(s.descriptors, s.levels)):
        M[j, lv * K : (lv + 1) * K] = _ref_mapping(bow, d, lv)
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


def _ref_backward(bow, s, R):
    """Eq. 2.79-2.80 written as loops over descriptors and words."""
    M, x = _ref_encode(bow, s)
    K = bow.n_words
    Rl = np.zeros(len(M))
    for d in range(M.shape[1]):
        lv = d // K
        members = np.flatnonzero(s.levels == lv)
        if x[d] != 0:
            for j in range(len(M)):
                Rl[j] += M[j, d] / x[d] * R[d]
        elif len(members):
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
    X, trace = bow._forward(sets)
    R = rng.normal(size=X.shape)
    Rl = bow._relevance(R, trace, "z")
    for s, r, rl in zip(sets, R, Rl):
        np.testing.assert_allclose(rl, _ref_backward(bow, s, r), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rl.sum(), r.sum(), rtol=1e-12, atol=1e-12)


def test_zero_mapping_case_spreads_uniformly_within_block():
    # hard assignment to 6 words with 2 descriptors: at least 4 words unreached
    rng = np.random.default_rng(2)
    sets = _sets(rng, n_images=8, n_levels=1, sizes=(10, 20))
    bow = BagOfWords(n_words=6, mapping="hard", random_state=0).fit(sets)
    probe = [SimpleNamespace(descriptors=sets[0].descriptors[:2], levels=np.zeros(2, int), n_levels=1)]
    X, trace = bow._forward(probe)
    R = np.zeros_like(X)
    unreached = np.flatnonzero(X[0] == 0)
    assert len(unreached) >= 4
    R[0, unreached[0]] = 3.0
    np.testing.assert_allclose(bow._relevance(R, trace, "z")[0], [1.5, 1.5])


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
    X, trace = bow._forward([np.zeros((0, 8), np.float32)])
    with pytest.raises(ValueError, match="no descriptors"):
        bow._relevance(np.ones_like(X), trace, "z")
    with pytest.raises(ValueError, match="valid rules are"):
        bow._relevance(np.ones_like(X), trace, "zplus-typo")


def test_rule_registry():
    assert get_rule("proportional") == get_rule("z")
    with pytest.raises(ValueError, match=r"valid rules are \[.abs."):
        get_rule("lrp-eps")
