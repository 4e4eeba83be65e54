"""The public stage protocol, and the inputs that must not slip through it.

The pipeline walks only the public methods of its steps (``forward``,
``relevance``, ``explain``); these tests use the same methods, pass options
that no step takes, and feed the inputs a careful new user gets wrong.
"""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

import bowlrp
from bowlrp import BagOfWords, DenseSIFT, ExplainablePipeline, KernelSVC
from bowlrp._validation import ChannelsFirstWarning, check_images
from bowlrp.base import is_explainable_estimator, is_explainable_stage
from bowlrp.datasets import make_polygons
from bowlrp.rules import AlphaBeta, Epsilon, Flat, WSquare


@pytest.fixture(scope="module")
def toy():
    data = make_polygons(n_train=80, n_test_images=1, random_state=3)
    pipe = ExplainablePipeline([
        ("sift", DenseSIFT()),
        ("bow", BagOfWords(n_words=12, random_state=0)),
        ("svm", KernelSVC(kernel="hik")),
    ]).fit(data.images, data.labels)
    return data, pipe


def test_every_stage_follows_the_protocol(toy):
    _, pipe = toy
    for name, step in pipe.steps[:-1]:
        assert is_explainable_stage(step), name
        assert step.input_kind in ("images", "descriptors", "features")
    assert is_explainable_estimator(pipe.steps[-1][1])
    assert not is_explainable_stage(FunctionTransformer())
    assert not is_explainable_estimator(LinearSVC())


def test_pipeline_walk_equals_the_stages_by_hand(toy):
    data, pipe = toy
    X = data.test_images[:3]
    exp = pipe.explain(X, rule="epsilon", epsilon=0.5)
    sift, bow, svm = (s for _, s in pipe.steps)
    sets, t_sift = sift.forward(X)
    feats, t_bow = bow.forward(sets)
    out = svm.explain(feats)
    R_desc = bow.relevance(out.features, t_bow, Epsilon(0.5))
    R_pix = sift.relevance(R_desc, t_sift)
    for i in range(3):
        np.testing.assert_allclose(exp.descriptors[i], R_desc[i], rtol=1e-12)
        np.testing.assert_allclose(exp.pixels[i], R_pix[i], rtol=1e-12)
    np.testing.assert_allclose(exp.features, out.features)
    assert exp.rule == "epsilon"
    assert set(exp.stages) == {"sift", "bow"}


def test_options_nobody_takes_are_errors(toy):
    data, pipe = toy
    X = data.test_images[:2]
    with pytest.raises(TypeError, match=r"KernelSVC.explain takes no argument\(s\) \['method'\]"):
        pipe.explain(X, method="lrp")
    with pytest.raises(TypeError, match="parameters of a rule; pass rule= too"):
        pipe.explain(X, epsilon=1.0)
    with pytest.raises(TypeError, match="takes no parameters"):
        pipe.explain(X, rule="z", epsilon=1.0)
    with pytest.raises(ValueError, match="applies to network layers only"):
        pipe.explain(X, rule=WSquare())
    with pytest.raises(ValueError, match="unknown rule"):
        pipe.explain(X, rule="lrp-epsilon")
    with pytest.raises(ValueError, match="does not have"):
        pipe.explain(X, rule={"encoder": "z"})


def test_rule_per_step(toy):
    data, pipe = toy
    X = data.test_images[:2]
    a = pipe.explain(X, rule={"bow": AlphaBeta(1, 0), "sift": "flat"})
    b = pipe.explain(X, rule="alphabeta", alpha=1, beta=0)
    for i in range(2):
        np.testing.assert_allclose(a.pixels[i], b.pixels[i], rtol=1e-12)
    assert a.rule == "bow=alphabeta, sift=flat"
    with pytest.raises(ValueError, match="pixel rules are"):
        pipe.explain(X, rule={"sift": Epsilon(1.0)})


def test_lone_estimators_are_explained(toy):
    data, pipe = toy
    feats = pipe[:-1].transform(data.test_images[:4])
    svm = pipe.steps[-1][1]
    exp = bowlrp.explain(svm, feats)
    np.testing.assert_allclose(exp.features.sum(1) + exp.bias, svm.decision_function(feats), rtol=1e-10)
    assert exp.pixels is None and exp.descriptors is None
    y = svm.predict(pipe[:-1].transform(data.images))
    lin = LogisticRegression().fit(pipe[:-1].transform(data.images), y)
    exp = bowlrp.explain(lin, feats)
    np.testing.assert_allclose(exp.features.sum(1) + exp.bias, lin.decision_function(feats), rtol=1e-10)
    with pytest.raises(TypeError, match="FunctionTransformer cannot be explained"):
        bowlrp.explain(FunctionTransformer(), feats)


def test_a_step_without_relevance_is_named(toy):
    data, pipe = toy
    bad = Pipeline([("sift", pipe.steps[0][1]), ("bow", pipe.steps[1][1]),
                    ("scale", FunctionTransformer(lambda x: x * 2)), ("svm", pipe.steps[2][1])])
    with pytest.raises(TypeError, match="step 'scale' \\(FunctionTransformer\\) has no relevance step"):
        bowlrp.explain(bad, data.test_images[:1])


def test_references_errors_name_references():
    data = make_polygons(n_train=80, n_test_images=1, random_state=5)
    pipe = ExplainablePipeline([
        ("sift", DenseSIFT()), ("bow", BagOfWords(n_words=8, random_state=0)), ("svm", KernelSVC(kernel="rbf")),
    ]).fit(data.images, data.labels)
    with pytest.raises(ValueError, match="references"):
        pipe.explain(data.test_images[:1], references=np.full((2, 102, 102), 3.0))
    svm = pipe.steps[-1][1]
    with pytest.raises(ValueError, match="references"):
        svm.explain(pipe[:-1].transform(data.test_images[:1]), references=np.full((2, 16), np.nan))
    with pytest.raises(ValueError, match=r"references must have shape \(\w, 16\)"):
        svm.explain(pipe[:-1].transform(data.test_images[:1]), references=np.ones((2, 5)))


def test_adapters_refuse_nan_features():
    rng = np.random.default_rng(0)
    X = rng.random((30, 4))
    y = (X[:, 0] > 0.5).astype(int)
    model = LinearSVC().fit(X, y)
    bad = X[:2].copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bowlrp.explain(model, bad)


def test_channels_first_images_are_detected():
    rng = np.random.default_rng(0)
    base = rng.random((40, 50))
    rgb = np.stack([base, 0.9 * base + 0.05, 0.8 * base + 0.1 * rng.random((40, 50))], axis=-1)
    with pytest.raises(ValueError, match="channels-first .* np.moveaxis"):
        check_images(np.moveaxis(rgb, -1, 0)[None])
    with pytest.warns(ChannelsFirstWarning, match="channels of one colour image"):
        check_images(np.moveaxis(rgb, -1, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(check_images(rng.random((3, 40, 50)))) == 3  # three different images: no warning
        assert len(check_images(list(np.moveaxis(rgb, -1, 0)))) == 3  # a list says "three images"


def test_heatmap_and_png_inputs(toy, tmp_path):
    data, pipe = toy
    exp = pipe.explain(data.test_images[:2])
    for bad in (0, -1.0, np.nan, np.inf, "1"):
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            exp.heatmap(0, scale=bad)
    assert exp.heatmap(1, scale=2 * np.abs(exp.pixels[1]).max()).shape == (102, 102, 3)
    with pytest.raises(IndexError, match="out of range"):
        exp.heatmap(5)
    with pytest.raises(ValueError, match="but the relevance map of input 0 has shape"):
        exp.save_png(tmp_path / "a.png", 0, image=np.zeros((102, 90), np.uint8))
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        exp.save_png(tmp_path / "b.png", 0, image=data.test_images[0].astype(float))
    assert (tmp_path / exp.save_png(tmp_path / "c.png", 0, image=data.test_images[0])).exists()
    origins = np.array([[0, 0], [0, 34]])
    assert exp.merge(origins, (102, 136)).shape == (102, 136)
    with pytest.raises(ValueError, match="fractional"):
        exp.merge(origins + 0.5, (102, 136))
    with pytest.raises(ValueError, match="NaN"):
        exp.merge(np.array([[0.0, np.nan], [0.0, 34.0]]), (102, 136))
    with pytest.raises(IndexError, match="indices must lie"):
        exp.merge(origins, (102, 136), indices=[0, 7])


def test_deprecated_names_still_work():
    with pytest.warns(DeprecationWarning, match="OutputRelevance is deprecated"):
        from bowlrp.base import OutputRelevance
    assert OutputRelevance is bowlrp.Explanation
    import importlib
    import sys

    sys.modules.pop("bowlrp.cnn.rules", None)
    with pytest.warns(DeprecationWarning, match="bowlrp.cnn.rules is deprecated"):
        legacy = importlib.import_module("bowlrp.cnn.rules")
    assert legacy.Epsilon is Epsilon and legacy.Flat is Flat
