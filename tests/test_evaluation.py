"""Tests of bowlrp.evaluation on cases with known answers."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import Pipeline

from bowlrp import BagOfWords, DescriptorSet, KernelSVC, explain
from bowlrp.evaluation import (
    DescriptorPool,
    SpRAy,
    aopc,
    context_ratio,
    context_ratio_per_class,
    descriptor_perturbation,
    encoder_update,
    heatmap_complexity,
    occlusion,
    region_perturbation,
    region_scores,
    replacement_features,
)

M = 6  # region size used throughout


def region_model(images):
    """A model that only looks at the top-left M x M region: its mean intensity."""
    return np.array([float(np.asarray(x, np.float64)[:M, :M].mean()) for x in images])


def block_images(n=3, size=18):
    imgs = np.zeros((n, size, size))
    imgs[:, :M, :M] = 1.0
    return imgs


# ------------------------------------------------------------------ region perturbation
def test_aopc_formula():
    curves = np.array([[1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 1.0, 1.0]])
    np.testing.assert_allclose(aopc(curves, per_input=True), [0.75, 0.5])
    assert aopc(curves) == pytest.approx(0.625)


def test_region_scores_sum_cells():
    h = np.arange(20.0).reshape(4, 5)
    s = region_scores(h, 2)
    assert s.shape == (2, 3)
    assert s[0, 0] == h[:2, :2].sum() and s[1, 2] == h[2:, 4:].sum()
    assert s.sum() == pytest.approx(h.sum())


def test_one_region_model_morf_lerf_known_curves():
    imgs = block_images()
    maps = [np.pad(np.ones((M, M)), ((0, 12), (0, 12)))] * 3  # relevance exactly on the region
    mean = M * M / 18**2
    morf = region_perturbation(region_model, imgs, maps, region_size=M, replacement="mean", random_state=0)
    L = morf.n_steps
    assert L == 9
    np.testing.assert_allclose(morf.curves[:, 0, 0], 1.0)
    np.testing.assert_allclose(morf.curves[:, 0, 1:], mean)  # gone at step 1, nothing else matters
    assert morf.aopc == pytest.approx(L / (L + 1) * (1 - mean))
    lerf = region_perturbation(region_model, imgs, maps, region_size=M, order="lerf", replacement="mean")
    np.testing.assert_allclose(lerf.curves[:, 0, :-1], 1.0)  # the region comes last
    assert lerf.aopc == pytest.approx((1 - mean) / (L + 1))
    rnd = region_perturbation(region_model, imgs, None, region_size=M, order="random", replacement="mean",
                              n_repeats=4, random_state=0)
    assert lerf.aopc < rnd.aopc < morf.aopc
    assert morf.flip_share == 0.0  # scores stay positive


def test_uniform_noise_and_blur_replacements():
    imgs = (block_images(2) * 255).astype(np.uint8)
    maps = [np.pad(np.ones((M, M)), ((0, 12), (0, 12)))] * 2
    r = region_perturbation(region_model, imgs, maps, region_size=M, n_steps=1, n_repeats=8, random_state=1)
    # uniform noise over 0..255: the region's mean drops from 255 to about 127.5
    assert 110 < r.curves[:, :, 1].mean() < 145
    b = region_perturbation(region_model, imgs, maps, region_size=M, n_steps=1, replacement="blur")
    assert 0 < b.curves[0, 0, 1] < 255


def test_linear_model_true_contributions_beat_random():
    rng = np.random.default_rng(0)
    H = W = 24
    w = rng.normal(size=(H, W))
    imgs = rng.random((4, H, W))

    def linear(X):
        return np.array([float((w * x).sum()) for x in X])

    maps = [w * (x - 0.5) for x in imgs]  # exact contribution w.r.t. the noise mean
    kw = dict(region_size=4, n_steps=20, n_repeats=3, random_state=0)
    morf = region_perturbation(linear, imgs, maps, **kw)
    rnd = region_perturbation(linear, imgs, None, order="random", **kw)
    lerf = region_perturbation(linear, imgs, maps, order="lerf", **kw)
    assert morf.aopc > rnd.aopc + 1.0
    assert lerf.aopc < rnd.aopc - 1.0


def test_one_model_call_per_step_and_chunking_invariance():
    calls = []

    def f(X):
        calls.append(len(X))
        return region_model(X)

    rng = np.random.default_rng(0)
    imgs = rng.random((5, 12, 12))
    maps = [rng.normal(size=(12, 12)) for _ in range(5)]
    a = region_perturbation(f, imgs, maps, region_size=M, n_repeats=2, random_state=3)
    assert calls == [10] * (a.n_steps + 1)
    b = region_perturbation(region_model, imgs, maps, region_size=M, n_repeats=2, random_state=3, batch_size=2)
    np.testing.assert_array_equal(a.curves, b.curves)
    c = region_perturbation(region_model, imgs, maps, region_size=M, n_repeats=2, random_state=3, batch_size=2,
                            n_jobs=2)
    np.testing.assert_array_equal(a.curves, c.curves)


def test_region_perturbation_multicolumn_target():
    imgs = block_images(2)

    def two(X):
        s = region_model(X)
        return np.stack([-s, s], axis=1)

    maps = [np.pad(np.ones((M, M)), ((0, 12), (0, 12)))] * 2
    r = region_perturbation(two, imgs, maps, region_size=M, replacement="mean", target=1)
    np.testing.assert_allclose(r.curves[:, 0, 0], 1.0)
    with pytest.raises(ValueError, match="target"):
        region_perturbation(two, imgs, maps, region_size=M)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(order="best"), "unknown order"),
        (dict(replacement="zeros"), "unknown replacement"),
        (dict(region_size=0), "region_size"),
        (dict(n_steps=1000), "exceeds"),
    ],
)
def test_region_perturbation_validation(kwargs, match):
    imgs = block_images(2)
    maps = [np.ones((18, 18))] * 2
    with pytest.raises(ValueError, match=match):
        region_perturbation(region_model, imgs, maps, **kwargs)


def test_region_perturbation_map_checks():
    imgs = block_images(2)
    with pytest.raises(ValueError, match="needs heatmaps"):
        region_perturbation(region_model, imgs, None)
    with pytest.raises(ValueError, match="shape"):
        region_perturbation(region_model, imgs, [np.ones((5, 5))] * 2)
    with pytest.raises(ValueError, match="one map per image"):
        region_perturbation(region_model, imgs, [np.ones((18, 18))])


# ------------------------------------------------------------------ occlusion
def test_occlusion_one_region_model():
    imgs = block_images(2)
    maps = occlusion(region_model, imgs, patch_size=M, fill="zero")
    for h in maps:
        np.testing.assert_allclose(h[:M, :M], 1.0)  # covering the region removes the whole score
        np.testing.assert_allclose(h[M:, :], 0.0)
        np.testing.assert_allclose(h[:, M:], 0.0)
    # overlapping patches: the map is the mean drop of the covering patches
    h = occlusion(region_model, imgs[:1], patch_size=M, stride=3, fill="zero")[0]
    assert h[0, 0] == pytest.approx(1.0) and h[-1, -1] == 0.0 and 0 < h[M, M] < 1


# ------------------------------------------------------------------ descriptor replacement
def _random_sets(rng, n, two_levels=True):
    sets = []
    for _ in range(n):
        n0, n1 = rng.integers(15, 25), (rng.integers(10, 20) if two_levels else 0)
        k = n0 + n1
        d = rng.random((k, 128)).astype(np.float32) * 100
        d[:n0, :3] += 150  # the two levels look different
        sets.append(
            DescriptorSet(
                descriptors=d,
                centers=np.zeros((k, 2)),
                sigmas=np.ones(k),
                levels=np.r_[np.zeros(n0), np.ones(n1)].astype(np.intp),
                angles=np.zeros(k),
                boxes=np.zeros((k, 4)),
                image_shape=(8, 8),
                n_levels=2 if two_levels else 1,
            )
        )
    return sets


@pytest.mark.parametrize("mapping", ["rank", "hard", "soft"])
@pytest.mark.parametrize("normalize", ["l1", "count", None])
def test_replacement_features_match_reencoding(mapping, normalize):
    rng = np.random.default_rng(0)
    train = _random_sets(rng, 6)
    bow = BagOfWords(n_words=7, mapping=mapping, n_ranks=3, normalize=normalize, random_state=0).fit(train)
    update = encoder_update(bow)
    pool = DescriptorPool(train, random_state=0)
    s = _random_sets(rng, 1)[0]
    order = rng.permutation(len(s))
    subs = np.stack([pool.sample(int(s.levels[j]), 1, rng)[0] for j in order])
    batch, n_steps = 4, len(s) // 4
    F = replacement_features(update, s.descriptors, s.levels, order, subs, batch, n_steps)
    for k in range(n_steps + 1):
        d = s.descriptors.copy()
        d[order[: k * batch]] = subs[: k * batch]
        ref = bow.transform([DescriptorSet(d, s.centers, s.sigmas, s.levels, s.angles, s.boxes, s.image_shape,
                                           s.n_levels)])[0]
        np.testing.assert_allclose(F[k], ref, rtol=1e-12, atol=1e-13)


def _descriptor_pipeline(rng):
    """A linear-kernel BoW model on descriptor sets: class +1 images hold descriptors near word 0."""
    train = _random_sets(rng, 30, two_levels=False)
    y = np.where(np.arange(30) % 2 == 0, 1, -1)
    marker = np.full(128, 250.0, np.float32)
    for s, lab in zip(train, y):
        if lab > 0:
            s.descriptors[:6] = marker + rng.random((6, 128)).astype(np.float32)
    pipe = Pipeline([("bow", BagOfWords(n_words=6, mapping="hard", random_state=0)),
                     ("svm", KernelSVC(kernel="linear", C=10.0))]).fit(train, y)
    return pipe, train, y


def test_descriptor_perturbation_beats_random_and_flips():
    rng = np.random.default_rng(1)
    pipe, train, y = _descriptor_pipeline(rng)
    X = [s for s, lab in zip(train, y) if lab > 0][:5]
    exp = explain(pipe, X)
    pool = DescriptorPool([s for s, lab in zip(train, y) if lab < 0], random_state=0)
    kw = dict(pool=pool, batch_size=2, n_steps=5, n_repeats=2, random_state=0)
    morf = descriptor_perturbation(pipe, X, exp, **kw)
    rnd = descriptor_perturbation(pipe, X, None, order="random", **kw)
    np.testing.assert_allclose(morf.curves[:, 0, 0], pipe.decision_function(X), rtol=1e-10)
    assert morf.aopc > rnd.aopc
    assert morf.flip_share >= rnd.flip_share
    assert morf.flip_share > 0.5  # removing the six marker descriptors flips the decision
    with pytest.raises(ValueError, match="needs descriptor relevance"):
        descriptor_perturbation(pipe, X, None, pool=pool)
    with pytest.raises(TypeError, match="sample"):
        descriptor_perturbation(pipe, X, exp, pool=object())


# ------------------------------------------------------------------ context ratio
def test_context_ratio_inside_outside_uniform():
    inside = np.zeros((10, 10))
    inside[2:5, 2:5] = 1.0
    outside = 1.0 - inside
    box = (2, 2, 5, 5)
    mu = context_ratio([inside, outside, np.ones((10, 10))], boxes=[box, box, box])
    assert mu[0] == 0.0 and np.isinf(mu[1]) and mu[2] == pytest.approx(1.0)
    masks = [inside.astype(bool)] * 3
    np.testing.assert_array_equal(context_ratio([inside, outside, np.ones((10, 10))], masks=masks), mu)
    # negative relevance is ignored by default (eq. 4.11 on positive relevance)
    h = inside - outside
    assert context_ratio([h], boxes=[box])[0] == 0.0
    assert context_ratio([h], boxes=[box], positive=False)[0] == pytest.approx(-1.0)
    per = context_ratio_per_class([0.5, 1.5, 2.0, np.inf], ["a", "a", "b", "b"])
    assert per["a"]["mean"] == 1.0 and per["b"]["median"] == 2.0 and per["b"]["n"] == 2
    with pytest.raises(ValueError, match="exactly one"):
        context_ratio([h])


# ------------------------------------------------------------------ complexity
def test_complexity_smooth_vs_noisy():
    rng = np.random.default_rng(0)
    smooth = np.zeros((64, 64))
    smooth[20:40, 20:40] = 1.0
    noisy = rng.normal(size=(64, 64))
    c = heatmap_complexity([smooth, noisy, np.zeros((64, 64))])
    assert c["png_bytes"][0] < c["png_bytes"][1]
    assert c["entropy"][0] < c["entropy"][1]
    assert c["entropy"][2] == 0.0
    # two levels in equal parts (well, 400 of 4096): a known entropy
    p = 400 / 4096
    assert c["entropy"][0] == pytest.approx(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


# ------------------------------------------------------------------ SpRAy
@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
def test_spray_finds_planted_clusters_by_eigengap():
    rng = np.random.default_rng(0)
    maps, truth = [], []
    for c, (r, q) in enumerate([(2, 2), (2, 12), (12, 7)]):
        for _ in range(25):
            h = rng.normal(scale=0.05, size=(20, 20))
            h[r : r + 5, q : q + 5] += 1.0  # three strategies, i.i.d. noise within each
            maps.append(h)
            truth.append(c)
    sp = SpRAy(grid=(10, 10), embedding=False, random_state=0).fit(maps)
    assert sp.n_clusters_ == 3
    np.testing.assert_allclose(sp.eigenvalues_[:3], 0.0, atol=1e-8)  # three disconnected components
    assert sp.eigenvalues_[3] > 0.1
    assert adjusted_rand_score(truth, sp.labels_) == 1.0
    emb = SpRAy(grid=(10, 10), random_state=0).fit(maps[::5]).embedding_
    assert emb.shape == (15, 2)


# ------------------------------------------------------------------ plots
def test_plots_write_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    from bowlrp.evaluation.plots import plot_context_ratio, plot_perturbation_curves, plot_spray

    imgs = block_images(2)
    maps = [np.pad(np.ones((M, M)), ((0, 12), (0, 12)))] * 2
    res = {
        "ideal": region_perturbation(region_model, imgs, maps, region_size=M, replacement="mean"),
        "random": region_perturbation(region_model, imgs, None, region_size=M, order="random", replacement="mean"),
    }
    p1 = plot_perturbation_curves(res, str(tmp_path / "curves.png"), relative_to="random")
    p2 = plot_context_ratio({"a": {"mean": 1.0, "median": 0.9, "n": 3}}, str(tmp_path / "mu.png"))
    rng = np.random.default_rng(0)
    sp = SpRAy(grid=(4, 4), random_state=0).fit([rng.random((8, 8)) for _ in range(12)])
    p3 = plot_spray(sp, str(tmp_path / "spray.png"))
    for p in (p1, p2, p3):
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
