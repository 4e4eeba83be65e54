"""Descriptor replacement for Fisher-vector models (thesis App. C.2, eq. C.2)."""

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from bowlrp import DescriptorSet, KernelSVC, explain
from bowlrp.encoders.fisher import FisherVectorEncoder
from bowlrp.evaluation import (
    DescriptorPool,
    FisherVectorUpdate,
    GMMSampler,
    descriptor_perturbation,
    encoder_update,
    replacement_features,
)

H = W = 32
N_DIMS = 128


def _sets(rng, n, n_levels=2, marker=None):
    out = []
    for _ in range(n):
        counts = rng.integers(20, 30, size=n_levels)
        k = int(counts.sum())
        d = (rng.random((k, N_DIMS)) * 10).astype(np.float32)
        lv = np.repeat(np.arange(n_levels), counts).astype(np.intp)
        d[lv == 1, :3] += 5  # the levels look different
        if marker is not None:
            d[:5] = marker + rng.random((5, N_DIMS)).astype(np.float32)
        out.append(DescriptorSet(
            descriptors=d, centers=rng.random((k, 2)) * [W, H], sigmas=np.ones(k), levels=lv,
            angles=np.zeros(k), boxes=np.zeros((k, 4)), image_shape=(H, W), n_levels=n_levels,
        ))
    return out


def _with(s, d):
    return DescriptorSet(d, s.centers, s.sigmas, s.levels, s.angles, s.boxes, s.image_shape, s.n_levels)


@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(pca=5),
        dict(pca=5, pyramid=((1, 1), (2, 2), (3, 1))),
        dict(pyramid=((1, 1), (2, 2)), l2="block", include_weights=False),
        dict(pca=4, pyramid=((2, 2),), power=None, l2=None),
    ],
)
def test_fisher_replacement_matches_reencoding(params):
    rng = np.random.default_rng(0)
    train = _sets(rng, 8)
    fv = FisherVectorEncoder(n_components=4, random_state=0, **params).fit(train)
    update = encoder_update(fv)
    assert isinstance(update, FisherVectorUpdate)
    sampler = GMMSampler(fv)
    s = _sets(rng, 1)[0]
    order = rng.permutation(len(s))
    # float32, as a perturbed DescriptorSet holds them
    subs = np.concatenate([sampler.sample(int(s.levels[j]), 1, rng) for j in order]).astype(np.float32)
    batch, n_steps = 5, len(s) // 5
    F = replacement_features(update, s, s.levels, order, subs, batch, n_steps)
    assert F.shape == (n_steps + 1, fv.n_features_out_)
    ref = fv.transform([_with(s, _replaced(s.descriptors, order, subs, k * batch)) for k in range(n_steps + 1)])
    np.testing.assert_allclose(F, ref, rtol=1e-9, atol=1e-10)
    # the unnormalised vectors agree to rounding
    upd = FisherVectorUpdate(fv)
    raw = fv.forward([_with(s, _replaced(s.descriptors, order, subs, 3 * batch))])[1]["raw"][0]
    F_raw = replacement_features(_Raw(upd), s, s.levels, order, subs, batch, 3)[-1]
    np.testing.assert_allclose(F_raw, raw, rtol=1e-11, atol=1e-13)


def _replaced(d, order, subs, m):
    d = d.copy()
    d[order[:m]] = subs[:m]
    return d


class _Raw:
    """An update without normalisation (to compare the pooled vectors)."""

    def __init__(self, u):
        self.u, self.n_features, self.n_levels = u, u.n_features, u.n_levels

    def bind(self, geometry, levels):
        return self.u.bind(geometry, levels)

    def finish(self, raw, counts):
        return raw


def test_gmm_sampler_draws_from_the_gmm_through_the_pca():
    rng = np.random.default_rng(1)
    fv = FisherVectorEncoder(n_components=3, pca=4, random_state=0).fit(_sets(rng, 8))
    x = GMMSampler(fv).sample(1, 40000, np.random.default_rng(0))
    assert x.shape == (40000, N_DIMS)
    p = fv.pcas_[1]
    y = p.transform(x)
    np.testing.assert_allclose(p.inverse_transform(y), x, atol=1e-9)  # in the PCA subspace
    g = fv.gmms_[1]
    np.testing.assert_allclose(y.mean(0), g.weights_ @ g.means_, atol=0.05)
    with pytest.raises(ValueError, match="level"):
        GMMSampler(fv).sample(2, 1, rng)
    with pytest.raises(TypeError, match="FisherVectorEncoder"):
        GMMSampler(KernelSVC())


def test_pyramid_needs_geometry():
    rng = np.random.default_rng(2)
    train = _sets(rng, 6)
    fv = FisherVectorEncoder(n_components=3, pyramid=((2, 2),), random_state=0).fit(train)
    s = train[0]
    with pytest.raises(ValueError, match="geometry"):
        replacement_features(encoder_update(fv), s.descriptors, s.levels, np.arange(5), s.descriptors[:5], 5, 1)


def test_fisher_descriptor_perturbation_beats_random_and_flips():
    rng = np.random.default_rng(3)
    marker = np.full(N_DIMS, 30.0, np.float32)
    pos = _sets(rng, 14, n_levels=1, marker=marker)
    neg = _sets(rng, 14, n_levels=1)
    train, y = pos + neg, np.r_[np.ones(14), -np.ones(14)].astype(int)
    pipe = Pipeline([("fv", FisherVectorEncoder(n_components=3, pca=4, pyramid=((1, 1), (2, 2)), random_state=0)),
                     ("svm", KernelSVC(kernel="linear", C=10.0))]).fit(train, y)
    X = pos[:5]
    exp = explain(pipe, X, rule="epsilon", epsilon=1.0)
    kw = dict(pool=GMMSampler(pipe), batch_size=2, n_steps=4, n_repeats=2, random_state=0)
    morf = descriptor_perturbation(pipe, X, exp, **kw)
    rnd = descriptor_perturbation(pipe, X, None, order="random", **kw)
    np.testing.assert_allclose(morf.curves[:, 0, 0], pipe.decision_function(X), rtol=1e-10)
    assert morf.aopc > rnd.aopc
    assert morf.flip_share >= rnd.flip_share
    # training descriptors work as substitutes too, and the result does not depend on chunking
    pool = DescriptorPool(neg, random_state=0)
    a = descriptor_perturbation(pipe, X, exp, pool=pool, batch_size=2, n_steps=3, chunk_size=2, random_state=0)
    b = descriptor_perturbation(pipe, X, exp, pool=pool, batch_size=2, n_steps=3, chunk_size=16, random_state=0)
    np.testing.assert_allclose(a.curves, b.curves, rtol=1e-12)
