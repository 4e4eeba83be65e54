"""DescriptorPCA: the PCA of App. D.1.1 as its own stage, forward and backward (eq. 2.31) against loops."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

import bowlrp
from bowlrp.encoders import DescriptorPCA, FisherVectorEncoder, ProjectedDescriptorSet
from bowlrp.features.sift import DescriptorSet, _boxes
from bowlrp.rules import FLOOR, RTOL, get_rule


def sets_with_geometry(n_images=3, n_levels=2, seed=0, d=16):
    rng = np.random.default_rng(seed)
    out = []
    H, W = 50, 70
    for _ in range(n_images):
        levels = np.repeat(np.arange(n_levels), rng.integers(20, 30, size=n_levels))
        n = len(levels)
        centers = np.stack([rng.integers(5, W - 5, n), rng.integers(5, H - 5, n)], 1).astype(float)
        desc = (rng.random((n, 128)) * 40 + 10 * rng.random((1, 128))).astype(np.float32)
        out.append(DescriptorSet(desc, centers, np.ones(n), levels, np.zeros(n), _boxes(centers, 1.0, (H, W)),
                                 (H, W), n_levels))
    return out


def ref_messages(rule, z, Rj):
    """R_{i<-j} for one output j with messages z, or None when j is not reached (see bowlrp.rules)."""
    zj, mag = z.sum(), np.abs(z).sum()
    tiny = max(RTOL * mag, FLOOR)
    if rule.name == "z":
        return z / zj * Rj if abs(zj) > tiny else None
    if rule.name == "epsilon":
        den = zj + rule.epsilon * (1.0 if zj >= 0 else -1.0)
        return z / den * Rj if mag > 0 and abs(den) > tiny else None
    if rule.name == "alphabeta":
        if mag == 0:
            return None
        zp, zn = np.maximum(z, 0), np.minimum(z, 0)
        a = rule.alpha * zp / zp.sum() * Rj if zp.sum() > tiny else 0 * z
        b = rule.beta * zn / zn.sum() * Rj if zn.sum() < -tiny else 0 * z
        return a + b
    if rule.name == "abs":
        return np.abs(z) / mag * Rj if mag > FLOOR else None
    if rule.name == "flat":
        one = (z != 0).astype(float)
        return one / one.sum() * Rj if one.sum() > 0 else None
    raise AssertionError(rule)


def ref_relevance(pca, ds, R, rule):
    """Eq. 2.31 with explicit messages z_ji = W_ji (l_i - mean_i), one descriptor at a time."""
    out = np.zeros((len(ds), pca.n_dims_in_))
    for t in range(len(ds)):
        p = pca.pcas_[ds.levels[t]]
        c = ds.descriptors[t].astype(np.float64) - p.mean_
        for j in range(pca.n_components):
            col = ref_messages(rule, p.components_[j] * c, R[t, j])
            out[t] += col if col is not None else R[t, j] / len(c)
    return out


@pytest.fixture(scope="module")
def fitted():
    sets = sets_with_geometry()
    return sets, DescriptorPCA(n_components=6, random_state=0).fit(sets)


def test_forward_is_sklearn_pca_per_level_and_keeps_geometry(fitted):
    sets, pca = fitted
    out = pca.transform(sets)
    for ds, o in zip(sets, out):
        assert isinstance(o, ProjectedDescriptorSet) and o.descriptors.shape == (len(ds), 6)
        assert o.centers is ds.centers and o.boxes is ds.boxes and o.image_shape == ds.image_shape
        np.testing.assert_array_equal(o.levels, ds.levels)
        for s in range(2):
            m = ds.levels == s
            np.testing.assert_allclose(o.descriptors[m], pca.pcas_[s].transform(ds.descriptors[m].astype(float)),
                                       rtol=1e-10, atol=1e-9)
    plain = pca.transform([ds.descriptors[ds.levels == 0] for ds in sets])  # plain arrays: one level
    assert isinstance(plain[0], np.ndarray) and plain[0].shape[1] == 6


@pytest.mark.parametrize("rule", ["z", ("epsilon", {"epsilon": 2.0}), ("alphabeta", {}),
                                  ("alphabeta", {"alpha": 1, "beta": 0}), "abs", "flat"])
def test_relevance_matches_explicit_messages(fitted, rule):
    sets, pca = fitted
    rule = get_rule(rule) if isinstance(rule, str) else get_rule(rule[0], **rule[1])
    Y, tr = pca.forward(sets[:2])
    rng = np.random.default_rng(1)
    R = [rng.standard_normal(y.descriptors.shape) * y.descriptors for y in Y]
    got = pca.relevance(R, tr, rule)
    for ds, r, g in zip(sets[:2], R, got):
        assert g.shape == (len(ds), 128)
        np.testing.assert_allclose(g, ref_relevance(pca, ds, r, rule), rtol=1e-9, atol=1e-11)
        if rule.exact and rule.name != "flat":
            np.testing.assert_allclose(g.sum(1), r.sum(1), rtol=1e-10, atol=1e-12)


def test_one_signed_messages_go_the_direct_way():
    """A descriptor whose messages are nearly all of one sign: (z +- |z|) / 2 would lose the small part,
    the direct products keep it (alpha-beta against explicit messages)."""
    rng = np.random.default_rng(3)
    train = [rng.random((60, 8)) for _ in range(3)]
    pca = DescriptorPCA(n_components=3, random_state=0).fit(train)
    p = pca.pcas_[0]
    c = np.sign(p.components_[0]) * 5.0  # c_i W_0i >= 0 for every i
    c[np.argmin(np.abs(p.components_[0]))] *= -1e-3  # one tiny negative message
    X = [np.vstack([p.mean_ + c, train[0][:4]])]
    Y, tr = pca.forward(X)
    R = [np.ones_like(Y[0])]
    rule = get_rule("alphabeta")
    got = pca.relevance(R, tr, rule)[0]
    ref = np.zeros_like(got)
    for t in range(len(X[0])):
        ct = X[0][t] - p.mean_
        for j in range(3):
            ref[t] += ref_messages(rule, p.components_[j] * ct, 1.0)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-13)


def test_per_descriptor_relevance_passes_through(fitted):
    sets, pca = fitted
    Y, tr = pca.forward(sets[:1])
    r = np.arange(len(sets[0]), dtype=float)
    np.testing.assert_array_equal(pca.relevance([r], tr)[0], r)
    with pytest.raises(ValueError, match="shape"):
        pca.relevance([np.ones((len(sets[0]), 5))], tr)


def test_stage_before_the_encoder_equals_the_encoders_pca(fitted):
    """DescriptorPCA -> FisherVectorEncoder(pca=None) is the encoder with pca= (same PCA): same vectors,
    same relevance per SIFT dimension."""
    sets, _ = fitted
    fv = FisherVectorEncoder(n_components=3, pca=6, pyramid=((1, 1), (2, 2)), random_state=0, max_iter=10).fit(sets)
    stage = DescriptorPCA(n_components=6)
    stage.pcas_, stage.n_levels_, stage.n_dims_in_, stage.n_features_in_ = fv.pcas_, 2, 128, 128
    fv2 = FisherVectorEncoder(n_components=3, pyramid=((1, 1), (2, 2)))
    for k, v in vars(fv).items():
        if k.endswith("_") and k not in ("pcas_",):
            setattr(fv2, k, v)
    fv2.pcas_, fv2.n_dims_in_ = [None, None], 6
    Y, trp = stage.forward(sets)
    F1, tr1 = fv.forward(sets)
    F2, tr2 = fv2.forward(Y)
    np.testing.assert_allclose(F2, F1, rtol=1e-9, atol=1e-12)
    R = np.random.default_rng(2).standard_normal(F1.shape) * F1
    for rule in ("z", "alphabeta"):
        a = fv.relevance(R, tr1, rule)
        b = stage.relevance(fv2.relevance(R, tr2, rule), trp, rule)
        for x, y in zip(a, b):
            np.testing.assert_allclose(y, x, rtol=1e-8, atol=1e-11)


def test_in_a_pipeline_to_pixels():
    """SIFT -> DescriptorPCA -> Fisher vectors -> linear SVM, explained to pixels through the stage."""
    rng = np.random.default_rng(0)
    imgs = (rng.random((8, 40, 40)) * 255).astype(np.uint8)
    imgs[::2, 10:25, 10:25] = 255
    pipe = bowlrp.ExplainablePipeline([
        ("sift", bowlrp.DenseSIFT(scales=(2.0,), steps=6)),
        ("pca", DescriptorPCA(n_components=8, random_state=0)),
        ("fv", FisherVectorEncoder(n_components=4, random_state=0, max_iter=20)),
        ("svm", bowlrp.KernelSVC(kernel="linear")),
    ]).fit(imgs, np.arange(8) % 2)
    exp = pipe.explain(imgs[:2], rule="epsilon", epsilon=0.1, keep_dimensions=True)
    assert exp.descriptors[0].shape[1] == 128 and set(exp.stages) == {"sift", "pca", "fv"}
    assert exp.stages["fv"][0].shape[1] == 8
    exp = pipe.explain(imgs[:2])
    for i in range(2):
        assert exp.pixels[i].sum() == pytest.approx(exp.score[i] - exp.bias[i], rel=1e-8, abs=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="n_components"):
        DescriptorPCA(n_components=0).fit([np.ones((10, 4))])
    with pytest.raises(ValueError, match="exceeds"):
        DescriptorPCA(n_components=5).fit([np.random.default_rng(0).random((10, 4))])
    pca = DescriptorPCA(n_components=2).fit([np.random.default_rng(0).random((10, 4))])
    with pytest.raises(ValueError, match="dimension"):
        pca.transform([np.ones((3, 5))])
    with pytest.raises(ValueError, match="mapping stages|network layers"):
        Y, tr = pca.forward([np.ones((3, 4))])
        pca.relevance([np.ones((3, 2))], tr, "wsquare")


def test_sklearn_pca_is_what_is_fitted():
    rng = np.random.default_rng(5)
    X = [rng.random((50, 6))]
    pca = DescriptorPCA(n_components=3, random_state=0).fit(X)
    ref = PCA(n_components=3).fit(X[0])
    np.testing.assert_allclose(np.abs(pca.pcas_[0].components_), np.abs(ref.components_), atol=1e-8)


@pytest.mark.parametrize("rule", ["z", "epsilon", "alphabeta", "abs", "flat"])
def test_reduce_per_chunk_and_unreached_outputs(rule):
    """``reduce`` applied chunk by chunk equals reducing the whole result; a descriptor at the mean (every
    message 0) and an output whose messages cancel spread their relevance evenly over the inputs."""
    from bowlrp.encoders import pca as pca_mod
    from bowlrp.features.pixel_rules import bin_parts

    rng = np.random.default_rng(4)
    W = np.linalg.qr(rng.normal(size=(32, 5)))[0].T
    C = rng.normal(size=(3000, 32))  # several chunks
    C[7] = 0.0
    C[11] = W[0]  # orthogonal to the other rows of W: y_1 .. y_4 cancel to rounding
    R = rng.normal(size=(3000, 5))
    rule = get_rule(rule)
    full = pca_mod.linear_map_relevance(C, W, R, rule, np, Y=C @ W.T)
    got = pca_mod.linear_map_relevance(C, W, R, rule, np, Y=C @ W.T, reduce=bin_parts)
    np.testing.assert_allclose(got, bin_parts(full), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(full[7], np.full(32, R[7].sum() / 32), rtol=1e-12)
    if rule.exact and rule.name != "flat":
        np.testing.assert_allclose(full.sum(1), R.sum(1), rtol=1e-9, atol=1e-12)
    if rule.name == "z":  # y_1 .. y_4 of row 11 are not usable: their relevance goes evenly, y_0's proportionally
        ref = W[0] * W[0] / (W[0] @ W[0]) * R[11, 0] + R[11, 1:].sum() / 32
        np.testing.assert_allclose(full[11], ref, rtol=1e-9)
    assert pca_mod.linear_map_relevance(C[:0], W, R[:0], rule, np, reduce=bin_parts).shape == (0, 32)
