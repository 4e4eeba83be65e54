"""CNNClassifier: the scikit-learn interface, explanations, persistence, training on toy polygons."""

import time

import numpy as np
import pytest
from sklearn.base import clone

import bowlrp
from bowlrp.cnn import (CNNClassifier, Conv2d, Flatten, Linear, MaxPool2d, ReLU)


def _blobs(n, n_classes=2, size=16, seed=0):
    """A dark square in one of ``n_classes`` horizontal positions: class = position."""
    rng = np.random.default_rng(seed)
    X = np.full((n, size, size), 200, np.uint8)
    y = rng.integers(0, n_classes, n)
    for i in range(n):
        c = 2 + y[i] * (size - 6) // max(n_classes - 1, 1)
        r = rng.integers(2, size - 6)
        X[i, r:r + 4, c:c + 4] = 40
    X = np.clip(X + rng.integers(-10, 10, X.shape), 0, 255).astype(np.uint8)
    return X, np.array(["a", "b", "c"])[y]


def _small_layers(n_out):
    return [Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 8 * 8, 8), ReLU(),
            Linear(8, n_out)]


@pytest.fixture(scope="module")
def binary():
    X, y = _blobs(160)
    clf = CNNClassifier(_small_layers(1), epochs=15, learning_rate=5e-3, nonpositive_bias=True,
                        random_state=0).fit(X, y)
    return clf, X, y


def test_fit_predict_decision_function(binary):
    clf, X, y = binary
    assert list(clf.classes_) == ["a", "b"]
    assert (clf.predict(X) == y).mean() >= 0.95
    f = clf.decision_function(X)
    assert f.shape == (len(X),) and f.dtype == np.float64
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(f > 0).astype(int)])
    P = clf.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1.0)
    assert clf.score(X, y) >= 0.95
    # biases kept <= 0 during training
    assert all((layer.b <= 0).all() for layer in clf.model_ if "b" in layer.params)
    # float images in [0, 1] give the same scores as uint8 / 255
    np.testing.assert_allclose(clf.decision_function(X / 255.0), f, rtol=1e-5, atol=1e-5)


def test_random_state_reproducible_and_clone():
    X, y = _blobs(40, seed=1)
    a = CNNClassifier(_small_layers(1), epochs=2, random_state=3).fit(X, y)
    b = clone(a).fit(X, y)
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))


@pytest.mark.parametrize("method", ["lrp", "gradient", "gradient_x_input", "deconvnet", "guided_backprop",
                                    "patternnet", "pattern_attribution"])
def test_explain_returns_explanation(binary, method):
    clf, X, _ = binary
    if method.startswith("pattern"):
        clf.fit_patterns(X)
    exp = clf.explain(X[:5], method=method)
    assert isinstance(exp, bowlrp.Explanation)
    assert len(exp.pixels) == 5 and exp.pixels[0].shape == (16, 16) and exp.pixels[0].dtype == np.float64
    assert exp.descriptors is None and exp.features.shape == (5, 8)
    np.testing.assert_allclose(exp.score, clf.decision_function(X[:5]), rtol=1e-5, atol=1e-5)
    assert exp.rule == ("lrp:dtd" if method == "lrp" else method)
    np.testing.assert_allclose(exp.residual, exp.score - np.array([p.sum() for p in exp.pixels]), atol=1e-12)


def test_dtd_explanation_conserves_on_trained_net(binary):
    clf, X, _ = binary
    f = clf.decision_function(X)
    pos = X[f > 0][:6]
    exp = clf.explain(pos, composite="dtd")
    np.testing.assert_allclose(exp.residual, 0, atol=1e-9 * np.abs(exp.score).max())
    assert min(p.min() for p in exp.pixels) >= -1e-12
    neg = clf.explain(pos, target="a")  # classes_[0]: explains -f(x)
    np.testing.assert_allclose(neg.score, -exp.score)
    assert list(neg.target) == ["a"] * len(pos)


def test_multiclass_targets():
    X, y = _blobs(90, n_classes=3, seed=2)
    clf = CNNClassifier(_small_layers(3), epochs=8, learning_rate=5e-3, random_state=0).fit(X, y)
    assert clf.decision_function(X).shape == (90, 3)
    exp = clf.explain(X[:4])
    np.testing.assert_array_equal(exp.target, clf.predict(X[:4]))
    np.testing.assert_allclose(exp.score, clf.decision_function(X[:4]).max(1), rtol=1e-5, atol=1e-5)
    exp = clf.explain(X[:4], target=["c", "a", "b", "c"], composite="z")
    np.testing.assert_allclose(exp.score, clf.decision_function(X[:4])[np.arange(4), [2, 0, 1, 2]],
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="is not a class of this model"):
        clf.explain(X[:2], target="d")


def test_save_load_roundtrip(binary, tmp_path):
    clf, X, _ = binary
    clf.fit_patterns(X)
    clf.save(tmp_path / "cnn.npz")
    again = CNNClassifier.load(tmp_path / "cnn.npz")
    np.testing.assert_array_equal(again.decision_function(X), clf.decision_function(X))
    np.testing.assert_array_equal(again.classes_, clf.classes_)
    a = clf.explain(X[:3], method="pattern_attribution")
    b = again.explain(X[:3], method="pattern_attribution")
    np.testing.assert_array_equal(np.stack(a.pixels), np.stack(b.pixels))


def test_input_validation_errors(binary):
    clf, X, y = binary
    with pytest.raises(ValueError, match="grayscale"):
        clf.predict(np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="outside"):
        clf.predict(np.full((2, 16, 16), 2.0))
    with pytest.raises(ValueError, match="trained on"):
        clf.predict(np.zeros((2, 20, 20), np.uint8))
    with pytest.raises(ValueError, match="different sizes"):
        clf.predict([np.zeros((16, 16)), np.zeros((16, 17))])
    with pytest.raises(ValueError, match="valid methods"):
        clf.explain(X[:1], method="occlusion")
    with pytest.raises(ValueError, match="valid presets"):
        clf.explain(X[:1], composite="nope")
    with pytest.raises(ValueError, match="valid values of loss"):
        CNNClassifier(loss="mse").fit(X, y)
    with pytest.raises(ValueError, match="valid values of optimizer"):
        CNNClassifier(optimizer="rmsprop").fit(X, y)
    with pytest.raises(ValueError, match="output has shape"):
        CNNClassifier(_small_layers(3), epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        CNNClassifier(epochs=1).fit(X[:3], ["a"] * 3)
    unfitted = CNNClassifier()
    with pytest.raises(Exception, match="not fitted"):
        unfitted.predict(X)
    fresh = CNNClassifier(_small_layers(1), epochs=1, random_state=0).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="fit_patterns"):
        fresh.explain(X[:1], method="patternnet")


@pytest.mark.parametrize("loss,optimizer", [("hinge", "sgd"), ("cross_entropy", "sgd"), ("hinge", "adam")])
def test_losses_and_optimizers_train(loss, optimizer):
    X, y = _blobs(120, seed=4)
    clf = CNNClassifier(_small_layers(1), loss=loss, optimizer=optimizer, learning_rate=0.01, epochs=10,
                        random_state=0).fit(X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    if optimizer == "adam":  # plain SGD plateaus on this tiny problem for a while
        assert clf.score(X, y) >= 0.9


def test_optimizer_steps_follow_their_formulas():
    from bowlrp.cnn.train import SGD, Adam, loss_and_grad

    p, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    sgd = SGD(learning_rate=0.1, momentum=0.9)
    p1 = sgd.step("w", p, g)
    np.testing.assert_allclose(p1, p - 0.1 * g)
    np.testing.assert_allclose(sgd.step("w", p1, g), p1 + 0.9 * (-0.1 * g) - 0.1 * g)
    adam = Adam(learning_rate=0.1)
    np.testing.assert_allclose(adam.step("w", p, g), p - 0.1 * g / (np.abs(g) + 1e-8))  # first step: sign
    # loss gradients against finite differences
    rng = np.random.default_rng(0)
    for K in (1, 3):
        f = rng.standard_normal((4, K))
        y = rng.integers(0, max(K, 2), 4)
        for loss in ("cross_entropy", "hinge"):
            _, gf = loss_and_grad(f, y, loss)
            num = np.zeros_like(f)
            for idx in np.ndindex(f.shape):
                fp, fm = f.copy(), f.copy()
                fp[idx] += 1e-6
                fm[idx] -= 1e-6
                num[idx] = (loss_and_grad(fp, y, loss)[0] - loss_and_grad(fm, y, loss)[0]) / 2e-6
            np.testing.assert_allclose(gf, num, rtol=1e-4, atol=1e-7)


def _polygon_accuracy(n_train, epochs):
    from bowlrp.datasets import make_polygons

    d = make_polygons(n_train=n_train, n_test_images=2, random_state=0)
    t0 = time.perf_counter()
    clf = CNNClassifier(epochs=epochs, augment=True, nonpositive_bias=True, learning_rate=3e-3,
                        random_state=0).fit(d.images, d.labels)
    return clf.score(d.test_images, d.test_labels), time.perf_counter() - t0


def test_trains_on_toy_polygons_reduced():
    """800 tiles, 15 epochs (about 23 s of one core): measured 0.82 test tile accuracy."""
    acc, _ = _polygon_accuracy(800, 15)
    assert acc >= 0.78


@pytest.mark.slow
def test_trains_on_toy_polygons_to_90_percent():
    """2000 tiles, 20 epochs (about 75 s of one core): measured 0.97 test tile accuracy."""
    acc, seconds = _polygon_accuracy(2000, 20)
    assert acc >= 0.90
    assert seconds < 300


def test_pipeline_explain_hands_over_to_the_network(binary):
    """bowlrp.explain on a Pipeline ending in a CNN uses the network's own LRP."""
    import bowlrp
    from sklearn.pipeline import Pipeline

    clf, X, _ = binary
    pipe = Pipeline([("cnn", clf)])
    via_pipe = bowlrp.explain(pipe, X[:3], method="lrp", composite="epsilon")
    direct = clf.explain(X[:3], method="lrp", composite="epsilon")
    np.testing.assert_allclose(via_pipe.pixels[1], direct.pixels[1])
    np.testing.assert_allclose(via_pipe.score, clf.decision_function(X[:3]), rtol=1e-5)


def test_per_image_targets_across_batches(binary):
    clf, X, _ = binary
    t = np.where(np.arange(len(X[:10])) % 2 == 0, clf.classes_[0], clf.classes_[1])
    whole = clf.explain(X[:10], target=t, method="gradient")
    small = clf.explain(X[:10], target=t, method="gradient", batch_size=3)
    np.testing.assert_allclose(small.score, whole.score)
    np.testing.assert_array_equal(small.target, t)
    with pytest.raises(ValueError, match="one per image"):
        clf.explain(X[:10], target=t[:4])


def test_pipeline_options_go_to_the_network_or_fail(binary):
    """The pipeline hands every option to the step that takes it; one nobody takes is an error."""
    from sklearn.pipeline import Pipeline

    from bowlrp.rules import Epsilon

    clf, X, _ = binary
    pipe = Pipeline([("cnn", clf)])
    via_rule = bowlrp.explain(pipe, X[:3], rule="epsilon", epsilon=0.01)
    direct = clf.explain(X[:3], composite=bowlrp.cnn.get_composite(Epsilon(0.01)))
    np.testing.assert_allclose(via_rule.pixels[2], direct.pixels[2])
    assert via_rule.rule == "epsilon"
    for bad in ({"bias": "uniform"}, {"references": X[:2]}, {"decomposition": "exact"}):
        with pytest.raises(TypeError, match="CNNClassifier.explain takes no argument"):
            bowlrp.explain(pipe, X[:2], **bad)
    with pytest.raises(ValueError, match="either rule or composite"):
        clf.explain(X[:1], rule="epsilon", composite="dtd")


def _negated(clf):
    """A copy of a binary network with its output layer negated: f -> -f."""
    import copy

    neg = copy.deepcopy(clf)
    last = neg.model_[len(neg.model_) - 1]
    last.W, last.b = -last.W, -last.b
    return neg


@pytest.mark.parametrize("composite", ["dtd", "alphabeta_2_1", "alphabeta_1_0", "epsilon", "z"])
def test_binary_first_class_is_lrp_of_the_negated_network(binary, composite):
    """classes_[0] explains -f with the rule applied to the messages of -f (not minus the map of f)."""
    clf, X, _ = binary
    neg = _negated(clf)
    first = clf.explain(X[:6], target=clf.classes_[0], composite=composite)
    ref = neg.explain(X[:6], target=clf.classes_[1], composite=composite)
    np.testing.assert_allclose(first.score, -clf.decision_function(X[:6]), rtol=1e-5, atol=1e-6)
    for a, b in zip(first.pixels, ref.pixels):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    if composite in ("dtd", "alphabeta_1_0"):  # sign-splitting rules: not the negated map of class 1
        second = clf.explain(X[:6], target=clf.classes_[1], composite=composite)
        assert not np.allclose(np.stack(first.pixels), -np.stack(second.pixels))


def test_mixed_targets_in_one_batch_match_separate_calls(binary):
    clf, X, _ = binary
    t = np.array([clf.classes_[k % 2] for k in range(8)])
    mixed = clf.explain(X[:8], target=t, composite="dtd")
    for k in range(8):
        alone = clf.explain(X[k:k + 1], target=t[k], composite="dtd")
        np.testing.assert_allclose(mixed.pixels[k], alone.pixels[0], rtol=1e-9, atol=1e-12)


def test_diverging_training_stops_with_an_error():
    X, y = _blobs(40, seed=2)
    with pytest.raises(FloatingPointError, match="training diverged.*lower learning_rate"):
        CNNClassifier(_small_layers(1), optimizer="adam", learning_rate=1e30, epochs=5,
                      random_state=0).fit(X, y)


@pytest.mark.parametrize("method", ["patternnet", "pattern_attribution"])
def test_pattern_methods_for_the_first_class(binary, method):
    """-f through the patterns: the output layer's pattern is negated with its weights."""
    clf, X, _ = binary
    clf.fit_patterns(X[:40])
    neg = _negated(clf)
    neg.patterns_ = list(clf.patterns_)
    last = len(clf.model_) - 1
    neg.patterns_[last] = -clf.patterns_[last]
    first = clf.explain(X[:4], target=clf.classes_[0], method=method)
    ref = neg.explain(X[:4], target=clf.classes_[1], method=method)
    for a, b in zip(first.pixels, ref.pixels):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
