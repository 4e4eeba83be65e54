"""Fisher-vector encoder: forward against eq. 4.1-4.5 and LRP (eq. 4.8-4.10, D.3, 2.31) against loops."""

import math

import numpy as np
import pytest

from bowlrp.encoders.fisher import FisherVectorEncoder
from bowlrp.features.sift import DescriptorSet, _boxes
from bowlrp.rules import FLOOR, RTOL, get_rule

PYR = ((1, 1), (2, 2), (3, 1))


def random_sets(n_images=4, n_levels=2, shape=(60, 80), seed=0, n_range=(25, 45)):
    """Hand-made descriptor sets with random geometry (128-dim, like SIFT)."""
    rng = np.random.default_rng(seed)
    sets = []
    H, W = shape
    for _ in range(n_images):
        per = rng.integers(*n_range, size=n_levels)
        levels = np.repeat(np.arange(n_levels), per)
        n = len(levels)
        centers = np.stack([rng.integers(6, W - 6, n), rng.integers(6, H - 6, n)], 1).astype(float)
        sig = np.full(n, 1.0)
        boxes = _boxes(centers, 1.0, shape)
        desc = (rng.random((n, 128)) * 50 + 20 * rng.random((1, 128))).astype(np.float32)
        sets.append(DescriptorSet(desc, centers, sig, levels, np.zeros(n), boxes, shape, n_levels))
    return sets


# ------------------------------------------------------------------ slow references
def ref_posteriors(l, mu, var, w, threshold=0.0):
    """gamma_k(l) from the diagonal Gaussian densities, one component at a time; those below
    ``threshold`` (but never the largest) set to 0."""
    K, D = mu.shape
    logs = np.empty(K)
    for k in range(K):
        acc = math.log(w[k])
        for r in range(D):
            acc += -0.5 * math.log(2 * math.pi * var[k, r]) - 0.5 * (l[r] - mu[k, r]) ** 2 / var[k, r]
        logs[k] = acc
    m = logs.max()
    e = np.exp(logs - m)
    g = e / e.sum()
    return np.where((g < threshold) & (g < g.max()), 0.0, g)


def ref_embedding(l, mu, var, w, weights=True, threshold=0.0):
    """Psi_lambda(l) of eq. 4.4 from eq. 4.1-4.3, with loops."""
    K, D = mu.shape
    g = ref_posteriors(l, mu, var, w, threshold)
    out = [(g[k] - w[k]) / math.sqrt(w[k]) for k in range(K)] if weights else []
    out += [g[k] / math.sqrt(w[k]) * (l[r] - mu[k, r]) / math.sqrt(var[k, r]) for k in range(K) for r in range(D)]
    out += [
        g[k] / math.sqrt(w[k]) / math.sqrt(2) * ((l[r] - mu[k, r]) ** 2 / var[k, r] - 1)
        for k in range(K)
        for r in range(D)
    ]
    return np.array(out)


def ref_project(fv, s, d):
    p = fv.pcas_[s]
    if p is None:
        return np.asarray(d, float)
    return (np.asarray(d, float) - p.mean_) @ p.components_.T


def ref_cells(ds, grids):
    """List over grids, cells of boolean membership masks (descriptor centre in the cell)."""
    H, W = ds.image_shape
    out = []
    for rows, cols in grids:
        for r in range(rows):
            for c in range(cols):
                m = np.array([
                    min(int(y * rows // H), rows - 1) == r and min(int(x * cols // W), cols - 1) == c
                    for x, y in ds.centers
                ])
                out.append(m)
    return out


def ref_encode(fv, ds, grids, power, l2):
    """Eq. 4.1-4.5 per level and cell, then power and L2 normalisation."""
    blocks = []
    for s in range(fv.n_levels_):
        mu, var, w = fv.means_[s], fv.sigmas_[s] ** 2, fv.weights_[s]
        for mask in ref_cells(ds, grids):
            sel = np.flatnonzero(mask & (ds.levels == s))
            x = np.zeros(fv.block_size_)
            for i in sel:
                x += ref_embedding(ref_project(fv, s, ds.descriptors[i]), mu, var, w, fv.include_weights,
                                   fv.posterior_threshold)
            blocks.append(x / len(sel) if len(sel) else x)
    x = np.concatenate(blocks)
    if power is not None:
        x = np.sign(x) * np.abs(x) ** power
    if l2 == "global":
        x = x / np.linalg.norm(x)
    elif l2 == "block":
        x = np.concatenate([b / np.linalg.norm(b) if np.linalg.norm(b) > 0 else b
                            for b in np.split(x, len(blocks))])
    return x


def ref_relevance(fv, ds, grids, R, rule):
    """LRP for one image with explicit messages z_ld = Psi(l)_d / |L_cell| (eq. 4.9, 4.10),
    per descriptor dimension (eq. D.3, weight part spread evenly) and back through PCA (eq. 2.31)."""
    K, D = fv.n_components, fv.n_dims_
    out = np.zeros((len(ds), fv.n_dims_in_))
    b = 0
    for s in range(fv.n_levels_):
        mu, var, w = fv.means_[s], fv.sigmas_[s] ** 2, fv.weights_[s]
        Rdim = np.zeros((len(ds), D))
        for mask in ref_cells(ds, grids):
            sel = np.flatnonzero(mask & (ds.levels == s))
            Rc = R[b : b + fv.block_size_]
            b += fv.block_size_
            Z = np.array([ref_embedding(ref_project(fv, s, ds.descriptors[i]), mu, var, w, fv.include_weights,
                                        fv.posterior_threshold) for i in sel]) / max(len(sel), 1)
            for j in range(fv.block_size_):
                z = Z[:, j]
                col = rule_messages(rule, z, Rc[j])
                if col is None:  # no usable message: the zero-mapping case, evenly over the cell (eq. 2.79)
                    col = np.full(len(sel), Rc[j] / max(len(sel), 1))
                for t, i in enumerate(sel):
                    if fv.include_weights and j < K:
                        Rdim[i] += col[t] / D
                    else:
                        r = (j - (K if fv.include_weights else 0)) % D
                        Rdim[i, r] += col[t]
        for i in np.flatnonzero(ds.levels == s):
            if fv.pcas_[s] is None:
                out[i] = Rdim[i]
                continue
            c = np.asarray(ds.descriptors[i], float) - fv.pcas_[s].mean_
            Wp = fv.pcas_[s].components_
            for j in range(D):
                col = rule_messages(rule, Wp[j] * c, Rdim[i, j])
                out[i] += col if col is not None else Rdim[i, j] / len(c)
    return out


def rule_messages(rule, z, Rj):
    """R_{i<-j} for one output j with messages z (eq. 2.10, 2.22, 2.26, magnitude); None when the
    output is not reached.

    A denominator below RTOL times sum |z| (or below FLOOR) counts as zero
    (bowlrp.rules).
    """
    zj = z.sum()
    mag = np.abs(z).sum()
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
        bb = rule.beta * zn / zn.sum() * Rj if zn.sum() < -tiny else 0 * z
        return a + bb
    if rule.name == "abs":
        return np.abs(z) / mag * Rj if mag > FLOOR else None
    if rule.name == "flat":
        one = (z != 0).astype(float)
        return one / one.sum() * Rj if one.sum() > 0 else None
    raise AssertionError(rule)


# ------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def sets():
    return random_sets()


@pytest.mark.parametrize(
    "pca,grids,weights,power,l2,threshold",
    [
        (None, ((1, 1),), True, 0.5, "global", 1e-6),
        (None, ((1, 1),), True, 0.5, "global", 0.0),
        (6, PYR, True, 0.5, "global", 1e-6),
        (5, PYR, False, None, "block", 1e-6),
        (5, PYR, True, 0.5, "global", 0.2),
        (None, ((2, 1),), True, 0.3, None, 0.0),
    ],
)
def test_forward_matches_reference(sets, pca, grids, weights, power, l2, threshold):
    fv = FisherVectorEncoder(n_components=3, pca=pca, pyramid=grids, include_weights=weights, power=power,
                             l2=l2, posterior_threshold=threshold, random_state=0, max_iter=20)
    use = sets if pca is not None else [_Six(s) for s in sets]  # raw 6-dim descriptors keep loops small
    fv.fit(use)
    F = fv.transform(use)
    assert F.shape == (len(use), fv.n_features_out_)
    for i, ds in enumerate(use):
        np.testing.assert_allclose(F[i], ref_encode(fv, ds, tuple(grids), power, l2), rtol=1e-10, atol=1e-12)


class _Six:
    """A descriptor set whose descriptors are the first six SIFT dimensions (raw, no PCA)."""

    def __init__(self, ds):
        self.descriptors = ds.descriptors[:, :6].astype(np.float64)
        self.levels, self.n_levels = ds.levels, ds.n_levels
        self.centers, self.image_shape = ds.centers, ds.image_shape

    def __len__(self):
        return len(self.levels)


@pytest.mark.parametrize("threshold", [0.0, 1e-6])
def test_matches_scikit_image(sets, threshold):
    """Untruncated posteriors reproduce scikit-image's fisher_vector; the default truncation (posteriors
    below 1e-6 set to 0) changes the unnormalised vector by at most 3e-6 here."""
    skf = pytest.importorskip("skimage.feature")
    fv = FisherVectorEncoder(n_components=4, pca=8, power=None, l2=None, posterior_threshold=threshold,
                             random_state=0, max_iter=20)
    fv.fit([s.descriptors for s in sets])
    F = fv.transform([s.descriptors for s in sets])
    K, D = 4, 8
    for i, s in enumerate(sets):
        Y = fv.pcas_[0].transform(s.descriptors.astype(np.float64))
        ref = skf.fisher_vector(Y, fv.gmms_[0], improved=False)
        ref[K + K * D :] *= -1  # scikit-image's variance part has the opposite sign of eq. 4.3
        if threshold == 0:
            np.testing.assert_allclose(F[i], ref, rtol=1e-8, atol=1e-10)
        else:
            assert 0 < np.abs(F[i] - ref).max() <= 3e-6


def test_layout_and_names(sets):
    fv = FisherVectorEncoder(n_components=2, pca=3, pyramid=((1, 1), (2, 2)), random_state=0, max_iter=5).fit(sets)
    assert fv.block_size_ == 2 * (1 + 2 * 3)
    assert fv.n_features_out_ == 2 * 5 * fv.block_size_
    names = fv.get_feature_names_out()
    assert len(names) == fv.n_features_out_
    assert names[0] == "level0_grid1x1_cell0_w_k0"
    assert names[2 + 3 * 1 + 2] == "level0_grid1x1_cell0_mu_k1_d2"
    assert fv.feature_layout_[-1]["level"] == 1 and fv.feature_layout_[-1]["cell"] == 3


@pytest.mark.parametrize("rule", ["z", ("epsilon", {"epsilon": 0.5}), ("alphabeta", {}),
                                  ("alphabeta", {"alpha": 1, "beta": 0}), "abs", "flat"])
@pytest.mark.parametrize("weights,threshold,scaled", [(True, 1e-6, True), (False, 1e-6, True),
                                                      (True, 0.05, False), (True, 0.0, True)])
def test_relevance_matches_reference(sets, rule, weights, threshold, scaled):
    """Every rule against explicit messages; ``scaled=False`` puts relevance on Fisher dimensions whose
    messages were all truncated, which then go the zero-mapping way."""
    rule = get_rule(rule) if isinstance(rule, str) else get_rule(rule[0], **rule[1])
    fv = FisherVectorEncoder(n_components=3, pca=4, pyramid=PYR, include_weights=weights, random_state=0,
                             posterior_threshold=threshold, max_iter=10).fit(sets)
    use = sets[:2]
    F, tr = fv.forward(use)
    rng = np.random.default_rng(1)
    R = rng.standard_normal(F.shape) * (F if scaled else 1.0)
    got = fv.relevance(R, tr, rule)
    for i, ds in enumerate(use):
        np.testing.assert_allclose(got[i], ref_relevance(fv, ds, PYR, R[i], rule), rtol=1e-9,
                                   atol=1e-12 if scaled else 1e-10)  # unscaled R: R_d / z_d amplifies rounding


@pytest.mark.parametrize("dimension_relevance", [True, False])
def test_proportional_rule_conserves(sets, dimension_relevance):
    fv = FisherVectorEncoder(n_components=5, pca=10, pyramid=PYR, random_state=0, max_iter=20,
                             dimension_relevance=dimension_relevance).fit(sets)
    F, tr = fv.forward(sets)
    R = np.random.default_rng(2).standard_normal(F.shape)
    got = fv.relevance(R, tr, "z")
    for i in range(len(sets)):
        assert got[i].shape == ((len(sets[i]), 128) if dimension_relevance else (len(sets[i]),))
        assert abs(got[i].sum() - R[i].sum()) <= 1e-10 * np.abs(R[i]).sum()


def test_epsilon_absorbs_eq_2_23(sets):
    """Without PCA, what reaches the descriptors is sum_d R_d x_d / (x_d + eps sign(x_d)) (eq. 2.23, b = 0)."""
    use = [_Six(s) for s in sets]
    fv = FisherVectorEncoder(n_components=3, pyramid=PYR, random_state=0, max_iter=10).fit(use)
    F, tr = fv.forward(use)
    R = np.random.default_rng(3).standard_normal(F.shape)
    for eps in (0.1, 1.0, 100.0):
        got = fv.relevance(R, tr, get_rule("epsilon", epsilon=eps))
        x = tr["raw"]
        expected = (R * x / (x + eps * np.where(x >= 0, 1.0, -1.0))).sum(1)
        np.testing.assert_allclose([g.sum() for g in got], expected, rtol=1e-10)
        if eps == 100.0:
            assert np.all(np.abs(expected) < 0.05 * np.abs(R).sum(1))


def test_empty_cell_and_unreached_dimensions_conserve():
    """A pyramid cell without descriptors: its relevance goes to the image's descriptors."""
    sets = random_sets(n_images=2, n_levels=1, seed=5)
    fv = FisherVectorEncoder(n_components=3, pca=4, pyramid=((1, 1), (4, 4)), random_state=0,
                             max_iter=10).fit(sets)
    one = sets[0]
    keep = one.centers[:, 0] < 30  # the right part of the image has no descriptors
    ds = DescriptorSet(one.descriptors[keep], one.centers[keep], one.sigmas[keep], one.levels[keep],
                       one.angles[keep], one.boxes[keep], one.image_shape, 1)
    F, tr = fv.forward([ds])
    R = np.random.default_rng(0).standard_normal(F.shape)
    for rule in ("z", "abs"):
        got = fv.relevance(R, tr, rule)
        assert abs(got[0].sum() - R.sum()) <= 1e-10 * np.abs(R).sum()


def test_float32_close_to_float64(sets):
    kw = dict(n_components=4, pca=8, pyramid=PYR, random_state=0, max_iter=10)
    a = FisherVectorEncoder(**kw).fit(sets)
    b = FisherVectorEncoder(**kw, dtype="float32").fit(sets)
    np.testing.assert_allclose(a.transform(sets), b.transform(sets), atol=2e-4)


def test_errors(sets):
    with pytest.raises(ValueError, match="l2"):
        FisherVectorEncoder(l2="l1").fit(sets)
    with pytest.raises(ValueError, match="pyramid"):
        FisherVectorEncoder(pyramid=((0, 1),)).fit(sets)
    for bad, name in [(dict(posterior_threshold=1.0), "posterior_threshold"), (dict(dtype="float16"), "dtype"),
                      (dict(blas_threads=0), "blas_threads"), (dict(power=0), "power"),
                      (dict(reg_covar=-1.0), "reg_covar")]:
        with pytest.raises(ValueError, match=name):
            FisherVectorEncoder(**bad).fit(sets)
    fv = FisherVectorEncoder(n_components=2, pca=3, pyramid=PYR, max_iter=5, random_state=0).fit(sets)
    with pytest.raises(ValueError, match="geometry"):
        fv.transform([s.descriptors for s in sets])


def test_nonlinear_kernel_on_fisher_vectors_is_explained_by_taylor():
    """An rbf SVM on Fisher vectors: Taylor decomposition (eq. 2.75-2.76) at a root, then the
    proportional rule back to descriptor dimensions; conserved up to the reported remainder."""
    import bowlrp
    from sklearn.pipeline import Pipeline

    sets = random_sets(n_images=24, seed=4)
    y = np.arange(24) % 2
    for s, label in zip(sets, y):  # make the classes separable: shift one class's descriptors
        s.descriptors[:] += 15.0 * label
    pipe = Pipeline([("fv", FisherVectorEncoder(n_components=3, pca=6, random_state=0, max_iter=20)),
                     ("svm", bowlrp.KernelSVC(kernel="rbf", C=10.0, random_state=0))]).fit(sets, y)
    exp = bowlrp.explain(pipe, sets[:6])
    assert exp.root_found.all() and np.abs(exp.bias).max() <= 1e-5
    np.testing.assert_allclose(exp.score, pipe.decision_function(sets[:6]), rtol=1e-10)
    for i in range(6):
        # the Fisher-vector step conserves what the Taylor step attributes to the features
        assert exp.descriptors[i].sum() == pytest.approx(exp.features[i].sum(), rel=1e-8, abs=1e-12)
    # the residual is the Taylor remainder of the SVM step: f(x) - sum_d R_d - f(root)
    np.testing.assert_allclose(exp.residual, exp.score - exp.features.sum(1) - exp.bias, rtol=1e-8, atol=1e-12)
    assert np.median(np.abs(exp.residual) / np.abs(exp.score)) < 0.5


# ---------------------------------------------------------------- public contributions, precision
def test_embed_and_normalize_raw_are_the_encoding(sets):
    """transform = normalize_raw(sum over each cell of embed / |cell|): the functions the evaluation calls."""
    fv = FisherVectorEncoder(n_components=4, pca=5, pyramid=PYR, random_state=0, max_iter=10).fit(sets)
    F, tr = fv.forward(sets[:2])
    for i, ds in enumerate(sets[:2]):
        raw = np.zeros(fv.n_features_out_)
        cells = fv.descriptor_cells(ds, len(ds))
        for s in range(fv.n_levels_):
            sel = np.flatnonzero(ds.levels == s)
            psi = fv.embed(ds.descriptors[sel], s)
            for g in range(cells.shape[1]):
                for c in np.unique(cells[sel, g]):
                    m = cells[sel, g] == c
                    b0 = (s * 8 + c) * fv.block_size_
                    raw[b0 : b0 + fv.block_size_] += psi[m].sum(0) / m.sum()
        np.testing.assert_allclose(raw, tr["raw"][i], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(fv.normalize_raw(raw), F[i], rtol=1e-9, atol=1e-12)


def test_float32_encoding_conserves_exactly(sets):
    """float32 products change the encoding by ~1e-6; the relevance step recomputes its sums in float64."""
    kw = dict(n_components=4, pca=8, pyramid=PYR, random_state=0, max_iter=10)
    a = FisherVectorEncoder(**kw).fit(sets)
    b = FisherVectorEncoder(**kw, dtype="float32").fit(sets)
    Fa, Fb = a.transform(sets), b.forward(sets)
    assert np.abs(Fa - Fb[0]).max() < 2e-5
    R = np.random.default_rng(0).standard_normal(Fa.shape) * Fb[0]
    for rule in ("z", "abs"):
        got = b.relevance(R, Fb[1], rule)
        for i in range(len(sets)):
            assert abs(got[i].sum() - R[i].sum()) <= 1e-10 * np.abs(R[i]).sum()


def clustered_sets(n_images=3, K=12, n_per=40, seed=7, spread=40.0):
    """Descriptor sets around K far-apart centres: posteriors underflow to exactly 0 far from a centre."""
    rng = np.random.default_rng(seed)
    centres = rng.random((K, 128)) * spread * 10
    out = []
    H, W = 60, 80
    for _ in range(n_images):
        n = n_per
        lab = rng.integers(0, K, n)
        desc = (centres[lab] + rng.standard_normal((n, 128)) * spread).astype(np.float32)
        centers = np.stack([rng.integers(6, W - 6, n), rng.integers(6, H - 6, n)], 1).astype(float)
        levels = np.zeros(n, np.intp)
        out.append(DescriptorSet(desc, centers, np.ones(n), levels, np.zeros(n), _boxes(centers, 1.0, (H, W)),
                                 (H, W), 1))
    return out


@pytest.mark.parametrize("rule", ["z", ("alphabeta", {}), "abs", "flat"])
def test_sparse_posteriors_match_reference(rule, monkeypatch):
    """K=12 on clustered data: the posteriors are stored sparse; small chunks exercise the chunk loop
    and the pairs formed again after the cache is full."""
    from bowlrp.encoders import fisher_math as fm
    from bowlrp.encoders import fisher_pairs as frl

    rule = get_rule(rule) if isinstance(rule, str) else get_rule(rule[0], **rule[1])
    sets = clustered_sets()
    fv = FisherVectorEncoder(n_components=12, pca=4, pyramid=((1, 1), (2, 2)), random_state=0, max_iter=20,
                             posterior_threshold=1e-4).fit(sets)
    F, tr = fv.forward(sets[:1])
    assert fm.is_sparse(tr["images"][0]["levels"][0]["G"])
    R = np.random.default_rng(4).standard_normal(F.shape) * F
    whole = fv.relevance(R, tr, rule)[0]
    np.testing.assert_allclose(whole, ref_relevance(fv, sets[0], ((1, 1), (2, 2)), R[0], rule), rtol=1e-9,
                               atol=1e-12)
    monkeypatch.setattr(frl, "_PAIR_BYTES", 3000)
    monkeypatch.setattr(frl, "_CACHE_BYTES", 10000)
    np.testing.assert_allclose(fv.relevance(R, tr, rule)[0], whole, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- degenerate models
def _degenerate_pipeline(pca):
    """A model whose GMM was fitted on constant images (all SIFT descriptors 0), its SVM on noise."""
    import warnings

    from pipelines.fisher_vector import make_pipeline

    rng = np.random.default_rng(0)
    const = [np.full((64, 64), v, np.uint8) for v in (0, 40, 80, 120, 160, 200)]
    noise = [(rng.random((64, 64)) * 255).astype(np.uint8) for _ in range(8)]
    pipe = make_pipeline(scales=(2.0,), steps=6, n_components=16, pca=pca, pyramid=((1, 1),), max_iter=20)
    sift, fv, svm = (s for _, s in pipe.steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EM on identical points does not converge
        fv.fit(sift.fit_transform(const))
    svm.fit(fv.transform(sift.transform(noise)), [0, 1] * 4)
    return pipe, noise


@pytest.mark.parametrize("pca", [8, None])
def test_degenerate_model_conserves(pca):
    pipe, noise = _degenerate_pipeline(pca)
    for rule in ("z", "abs"):
        exp = pipe.explain(noise[:3], rule=rule)
        for i in range(3):
            assert np.isfinite(exp.descriptors[i]).all()
            assert abs(exp.descriptors[i].sum() - exp.features[i].sum()) <= 1e-8 * np.abs(exp.features[i]).sum()


def test_conservation_failure_is_reported(sets):
    """An exact rule that loses relevance (here a deliberately broken one) raises a ConservationWarning."""
    from bowlrp.encoders import ConservationWarning
    from bowlrp.rules import Proportional

    class Leaky(Proportional):
        def scales(self, sums, magnitude, R, xp):
            (s,), reached = super().scales(sums, magnitude, R, xp)
            return (0.5 * s,), reached

    fv = FisherVectorEncoder(n_components=3, pca=4, random_state=0, max_iter=10).fit(sets)
    F, tr = fv.forward(sets[:1])
    with pytest.warns(ConservationWarning, match="did not conserve"):
        fv.relevance(F, tr, Leaky())


@pytest.mark.parametrize("shape,step", [((0,), 4), ((7,), 3), ((5, 6), 4), ((3, 4), 100), ((2, 9), 1)])
def test_sum_of_magnitudes_in_chunks_is_the_plain_sum(shape, step):
    """The conservation check's ``sum |R|``, formed chunk by chunk through one buffer, is ``abs(R).sum()``
    (also for a strided view and a size that is no multiple of the chunk)."""
    from bowlrp.encoders.fisher_relevance import _sum_abs

    a = np.random.default_rng(0).standard_normal(shape)
    for view in (a, a.T, a[::2]):
        np.testing.assert_allclose(_sum_abs(view, np, step=step), np.abs(view).sum(), rtol=1e-14, atol=0)


@pytest.mark.parametrize("threshold", [0.0, 1e-6])
def test_alphabeta_finite_when_posteriors_underflow(threshold):
    """K=16 on clustered data: many posteriors are exactly 0 or near the subnormal range; alpha-beta stays
    finite and every rule that must conserve does."""
    sets = clustered_sets(n_images=4, K=16, n_per=60, seed=3, spread=25.0)
    fv = FisherVectorEncoder(n_components=16, pca=6, pyramid=((1, 1), (2, 2)), posterior_threshold=threshold,
                             random_state=0, max_iter=30).fit(sets)
    F, tr = fv.forward(sets)
    if threshold == 0:
        g = fv.posteriors(sets[0].descriptors, 0)
        assert (g == 0).mean() > 0.2 and ((g > 0) & (g < 1e-250)).any()  # underflowed and near-subnormal
    R = np.random.default_rng(0).standard_normal(F.shape) * F
    for rule in (get_rule("alphabeta"), get_rule("alphabeta", alpha=1, beta=0), get_rule("abs")):
        got = fv.relevance(R, tr, rule)
        for i, r in enumerate(got):
            assert np.isfinite(r).all()
            if rule.exact:
                assert abs(r.sum() - R[i].sum()) <= 1e-10 * np.abs(R[i]).sum()


@pytest.mark.parametrize("pca", [4, None])
def test_trace_without_projected_descriptors(sets, pca, monkeypatch):
    """Large levels keep only the posteriors in the trace; the relevance step projects again (same result)."""
    from bowlrp.encoders import fisher as fisher_module

    use = sets if pca else [_Six(s) for s in sets]
    fv = FisherVectorEncoder(n_components=3, pca=pca, pyramid=PYR, random_state=0, max_iter=10).fit(use)
    F, tr = fv.forward(use[:2])
    R = np.random.default_rng(1).standard_normal(F.shape) * F
    want = {r: fv.relevance(R, tr, r) for r in ("z", "alphabeta", "abs", "flat")}
    monkeypatch.setattr(fisher_module, "_TRACE_BYTES", 0)
    F2, tr2 = fv.forward(use[:2])
    assert tr2["images"][0]["levels"][0]["Y"] is None
    np.testing.assert_array_equal(F2, F)
    for r, w in want.items():
        for a, b in zip(fv.relevance(R, tr2, r), w):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
