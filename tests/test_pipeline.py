"""End to end: exact conservation on random pipelines, slow reference chain, toy result, errors."""

import json

import cv2
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import bowlrp
from bowlrp.__main__ import main
from bowlrp.datasets import make_polygons
from bowlrp.apps.demo import region_means, toy_pipeline
from test_bow import _ref_backward
from test_svm import _terms_ref


def _random_images(rng, n, shape):
    imgs = (rng.random((n,) + shape) * 60 + 100).astype(np.uint8)
    for im in imgs:
        for _ in range(3):
            r, c = rng.integers(0, shape[0] - 10), rng.integers(0, shape[1] - 10)
            im[r : r + rng.integers(4, 20), c : c + rng.integers(4, 20)] = rng.integers(0, 255)
    return imgs


def _random_pipeline(rng, kernel, n_classes):
    n_words = int(rng.integers(3, 9))
    sift = bowlrp.DenseSIFT(
        scales=(1.5, 2.5), steps=(int(rng.integers(4, 8)), int(rng.integers(5, 10))), rotate=bool(rng.integers(2))
    )
    bow = bowlrp.BagOfWords(
        n_words=n_words,
        mapping=str(rng.choice(["rank", "hard"])),
        n_ranks=int(rng.integers(1, 4)),
        normalize=[None, "l1", "count"][int(rng.integers(3))],
        random_state=0,
    )
    svm = bowlrp.KernelSVC(kernel=kernel, C=float(rng.choice([0.1, 1.0, 10.0])), blocks=(n_words, n_words),
                           block_weights=tuple(rng.random(2) + 0.5))
    return bowlrp.ExplainablePipeline([("sift", sift), ("bow", bow), ("svm", svm)])


@pytest.mark.parametrize("kernel", ["linear", "hik", "additive_chi2"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_conservation_on_random_pipelines(kernel, n_classes, seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(40, 60)), int(rng.integers(40, 70)))
    X = _random_images(rng, 24, shape)
    y = np.arange(24) % n_classes
    pipe = _random_pipeline(rng, kernel, n_classes).fit(X, y)
    exp = pipe.explain(X[:6])
    F = pipe.decision_function(X[:6])
    expected = F if n_classes == 2 else F[np.arange(6), exp.target]
    np.testing.assert_allclose(exp.score, expected, rtol=1e-12)
    tol = 1e-8 * np.abs(exp.score) + 1e-12
    for i in range(6):
        assert exp.pixels[i].shape == shape and exp.pixels[i].dtype == np.float64
        assert abs(exp.pixels[i].sum() + exp.bias[i] - exp.score[i]) <= tol[i]
        assert abs(exp.descriptors[i].sum() + exp.bias[i] - exp.score[i]) <= tol[i]
        assert abs(exp.features[i].sum() + exp.bias[i] - exp.score[i]) <= tol[i]
    assert np.all(np.abs(exp.residual) <= tol)


def test_matches_slow_reference_chain():
    """features (eq. 2.72) -> descriptors (eq. 2.79) -> pixels (eq. 2.85), all by loops."""
    rng = np.random.default_rng(3)
    X = _random_images(rng, 16, (48, 48))
    y = np.arange(16) % 2
    pipe = _random_pipeline(rng, "hik", 2).fit(X, y)
    sift, bow, svm = (s for _, s in pipe.steps)
    exp = pipe.explain(X[:3])
    sets = sift.transform(X[:3])
    feats = bow.transform(sets)
    for i in range(3):
        Rf = _terms_ref("hik", feats[i], svm.support_vectors_, svm.dual_coef_[0], svm.kernel_.dimension_weights())
        np.testing.assert_allclose(exp.features[i], Rf, rtol=1e-10, atol=1e-13)
        Rl = _ref_backward(bow, sets[i], Rf)
        np.testing.assert_allclose(exp.descriptors[i], Rl, rtol=1e-9, atol=1e-12)
        P = np.zeros((48, 48))
        for r, (r0, c0, r1, c1) in zip(Rl, sets[i].boxes):
            P[r0:r1, c0:c1] += r / ((r1 - r0) * (c1 - c0))
        np.testing.assert_allclose(exp.pixels[i], P, rtol=1e-9, atol=1e-12)


def test_plain_sklearn_pipeline_and_stateless():
    rng = np.random.default_rng(4)
    X = _random_images(rng, 20, (50, 50))
    y = np.arange(20) % 2
    pipe = Pipeline([("sift", bowlrp.DenseSIFT()), ("bow", bowlrp.BagOfWords(n_words=4, random_state=0)),
                     ("svm", bowlrp.KernelSVC())]).fit(X, y)
    before = {k: v for k, v in vars(pipe.steps[1][1]).items()}
    a = bowlrp.explain(pipe, X[:3])
    b = bowlrp.explain(pipe, X[:3])
    np.testing.assert_array_equal(a.pixels[0], b.pixels[0])
    assert vars(pipe.steps[1][1]).keys() == before.keys()  # nothing cached on the estimator
    neg = bowlrp.explain(pipe, X[:3], target=0)
    np.testing.assert_allclose(neg.pixels[1], -a.pixels[1])
    uni = bowlrp.explain(pipe, X[:3], bias="uniform")
    np.testing.assert_array_equal(uni.bias, 0.0)
    np.testing.assert_allclose([p.sum() for p in uni.pixels], uni.score, rtol=1e-10)


def test_fitted_pipeline_pickles_and_clones():
    import pickle

    from sklearn.base import clone

    rng = np.random.default_rng(7)
    X = _random_images(rng, 12, (50, 50))
    pipe = toy_pipeline(n_words=4).fit(X, np.arange(12) % 2)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.explain(X[:2]).pixels[1], pipe.explain(X[:2]).pixels[1])
    fresh = clone(pipe)
    assert fresh.get_params()["bow__n_words"] == 4
    with pytest.raises(NotFittedError):
        fresh.explain(X[:2])


def test_errors_for_users():
    rng = np.random.default_rng(5)
    X = _random_images(rng, 12, (50, 50))
    y = np.arange(12) % 2
    pipe = toy_pipeline(n_words=4)
    with pytest.raises(NotFittedError):
        pipe.explain(X)
    with pytest.raises(ValueError, match="2 classes"):
        pipe.fit(X, np.ones(12))
    pipe.fit(X, y)
    with pytest.raises(ValueError, match="valid rules"):
        pipe.explain(X[:2], rule="lrp.epsilon")
    with pytest.raises(ValueError, match="NaN"):
        pipe.explain(np.full((2, 50, 50), np.nan))
    with pytest.raises(ValueError, match="smaller|too small|minimum"):
        pipe.explain(np.zeros((2, 20, 20), np.uint8))
    with pytest.raises((ValueError, TypeError), match="images"):
        pipe.explain(np.zeros((50, 50), np.uint8))
    with pytest.raises(ValueError, match="valid kernels"):
        toy_pipeline(n_words=4, kernel="rbf2").fit(X, y)
    with pytest.raises(TypeError, match="cannot be explained"):
        bowlrp.explain(Pipeline([("s", StandardScaler()), ("m", StandardScaler())]).fit(np.ones((3, 2))), X)


def test_save_png_and_merge(tmp_path):
    rng = np.random.default_rng(6)
    X = _random_images(rng, 10, (50, 50))
    pipe = toy_pipeline(n_words=4).fit(X, np.arange(10) % 2)
    exp = pipe.explain(X[:4])
    path = exp.save_png(tmp_path / "sub" / "h.png", i=1, image=X[1])
    img = cv2.imread(str(path))
    assert img.shape == (50, 104, 3)
    merged = exp.merge([[0, 0], [0, 10], [10, 0], [10, 10]], (60, 60))
    np.testing.assert_allclose(merged[:10, :10], exp.pixels[0][:10, :10])
    np.testing.assert_allclose(merged[30, 30], np.mean([p[30 - r, 30 - c] for p, (r, c) in
                                                        zip(exp.pixels, [(0, 0), (0, 10), (10, 0), (10, 10)])]))
    two = exp.merge([[0, 0], [0, 10], [10, 0], [10, 10]], (60, 60), indices=[1, 2])
    np.testing.assert_allclose(two[0, 10:50], exp.pixels[1][0, :40])
    assert two[0, 0] == 0 and two[59, 59] == 0  # no tile covers these pixels
    with pytest.raises(ValueError, match="one \\(row, col\\) per explained tile"):
        exp.merge([[0, 0]], (60, 60))


@pytest.fixture(scope="module")
def toy():
    data = make_polygons(n_train=1200, n_test_images=2, random_state=1)
    pipe = toy_pipeline(random_state=0).fit(data.images, data.labels)
    return data, pipe


def test_toy_polygons_reduced(toy):
    """Thesis Sec. 2.4.3 at reduced size: >= 90% tile accuracy, polygons carry positive evidence."""
    data, pipe = toy
    acc = pipe.score(data.test_images, data.test_labels)
    assert acc >= 0.90, acc
    exp = pipe.explain(data.test_images)
    m = region_means(exp.pixels, data.test_polygon_masks, data.test_round_masks)
    assert m["polygons"] > 0
    assert m["polygons"] > m["round_shapes"] and m["polygons"] > m["background"]
    assert np.max(np.abs(exp.residual) / np.abs(exp.score)) < 1e-8


def test_demo_cli_writes_files(tmp_path):
    main(["demo", "--out", str(tmp_path), "--n-train", "160", "--n-test-images", "1", "--n-words", "16"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["models"]) == {"hik", "chi2"}
    for name, m in summary["models"].items():
        assert set(m["mean_pixel_relevance"]) == {"polygons", "round_shapes", "background"}
        assert 0 <= m["test_accuracy"] <= 1
    assert summary["models"]["hik"]["residual"]["max_relative"] < 1e-8
    assert summary["models"]["chi2"]["residual"]["roots_found"] > 0.9
    img = cv2.imread(str(tmp_path / "test_image_0.png"))
    assert img is not None and img.shape[:2] == (408, 3 * 408 + 2 * 4)  # image | HIK | chi2
