"""Baselines of bowlrp.cnn: gradient, DeconvNet, Guided Backprop (paper 004), PatternNet and
PatternAttribution (paper 002), checked on the papers' toy settings."""

import numpy as np
import pytest

from bowlrp.cnn import (Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, backward, explain_model,
                        fit_patterns)


def _cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _toy(n, mu, rng):
    """Paper 002's linear toy: x = a_s y + a_d eps, a_s = (1, 0), a_d = (1, 1), w = (1, -1)."""
    y = rng.uniform(-1, 1, n)
    eps = rng.normal(mu, 1.0, n)
    return np.outer(y, [1.0, 0.0]) + np.outer(eps, [1.0, 1.0]), y


def _linear_model():
    return Sequential([Linear(2, 1, W=np.array([[1.0], [-1.0]]), b=np.zeros(1))])


def test_linear_toy_patternnet_recovers_signal_gradient_methods_show_filter():
    rng = np.random.default_rng(0)
    X, y = _toy(100_000, 0.0, rng)
    net = _linear_model()
    np.testing.assert_allclose(net(X)[:, 0], y, atol=1e-12)  # w^T x = y
    patterns = fit_patterns(net, [X[:50_000], X[50_000:]])  # batches accumulate
    np.testing.assert_allclose(patterns[0][:, 0], [1.0, 0.0], atol=0.02)  # a = a_s (eq. 3)
    assert abs(net[0].W[:, 0] @ patterns[0][:, 0] - 1) < 1e-9  # w^T a = 1
    x = X[:5]
    pn, score, _ = explain_model(net, x, np.zeros(5, int), method="patternnet", patterns=patterns)
    np.testing.assert_allclose(pn, np.outer(score, [1.0, 0.0]), atol=0.03)  # signal s = a_s y
    pa, _, _ = explain_model(net, x, np.zeros(5, int), method="pattern_attribution", patterns=patterns)
    np.testing.assert_allclose(pa, np.outer(score, [1.0, 0.0]), atol=0.03)  # w * a y = (y, 0)
    for m in ("gradient", "deconvnet", "guided_backprop"):
        g, _, _ = explain_model(net, x, np.zeros(5, int), method=m)
        np.testing.assert_allclose(g, np.tile([1.0, -1.0], (5, 1)), atol=1e-12)  # the filter w
    gxi, _, _ = explain_model(net, x, np.zeros(5, int), method="gradient_x_input")
    np.testing.assert_allclose(gxi, x * [1.0, -1.0])  # contains the distractor


@pytest.mark.parametrize("mean,recovers", [("regime", True), ("global", False)])
def test_two_component_pattern_mean_choice(mean, recovers):
    """Eq. 7 with a ReLU neuron and a distractor of mean 1 (digest 002-(4) item 2):
    the per-regime mean E+[y] recovers a_s, the unconditional E[y] does not."""
    rng = np.random.default_rng(1)
    X, y = _toy(200_000, 1.0, rng)
    net = Sequential([Linear(2, 1, W=np.array([[1.0], [-1.0]]), b=np.zeros(1)), ReLU(),
                      Linear(1, 1, W=np.ones((1, 1)), b=np.zeros(1))])
    patterns = fit_patterns(net, [X], mean=mean)
    a = patterns[0][:, 0]
    assert abs(a @ [1.0, -1.0] - 1) < 1e-9  # normalised: w^T a+ = 1
    assert (np.abs(a - [1.0, 0.0]).max() < 0.03) == recovers
    np.testing.assert_allclose(patterns[2], [[1.0]])  # output layer: linear pattern
    assert patterns[1] is None


def _random_cnn(rng, n_filters=128, pool=False, n_out=2):
    layers = [Conv2d(1, n_filters, 3), ReLU()]
    side = 14
    if pool:
        layers.append(MaxPool2d(2))
        side = 7
    net = Sequential(layers + [Flatten(), Linear(n_filters * side * side, n_out)])
    return net.init(rng)


def test_guided_backprop_class_insensitive_gradient_not():
    """Paper 004, Sec. 3 / Fig. 7: GBP maps of two logits nearly coincide; saliency maps do not."""
    rng = np.random.default_rng(2)
    net = _random_cnn(rng)
    x = rng.uniform(0, 1, (3, 1, 16, 16))
    maps = {m: [explain_model(net, x, [k] * 3, method=m)[0] for k in (0, 1)]
            for m in ("guided_backprop", "gradient")}
    for i in range(3):
        assert _cos(*(m[i] for m in maps["guided_backprop"])) > 0.85
        assert abs(_cos(*(m[i] for m in maps["gradient"]))) < 0.3


def test_deconvnet_without_pooling_is_input_independent_and_with_pooling_is_not():
    """Digest 004-(2) item 3: no max pooling -> the DeconvNet map does not depend on x."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (2, 1, 16, 16))
    net = _random_cnn(rng, n_filters=8)
    d, _, _ = explain_model(net, x, [0, 0], method="deconvnet")
    np.testing.assert_allclose(d[0], d[1], atol=1e-12)
    net = _random_cnn(rng, n_filters=8, pool=True)
    d, _, _ = explain_model(net, x, [0, 0], method="deconvnet")
    assert not np.allclose(d[0], d[1])


def test_relu_backward_rules_exact():
    """Paper 004 eq. 1-2 at one ReLU: saliency g 1(y>0), DeconvNet max(g, 0), GBP both."""
    net = Sequential([ReLU()])
    x = np.array([[-1.0, 2.0, 3.0, -4.0]])
    _, tr = net.forward(x)
    g = np.array([[1.0, -1.0, 2.0, -3.0]])
    np.testing.assert_array_equal(backward(net, tr, g, "gradient"), [[0, -1, 2, 0]])
    np.testing.assert_array_equal(backward(net, tr, g, "deconvnet"), [[1, 0, 2, 0]])
    np.testing.assert_array_equal(backward(net, tr, g, "guided_backprop"), [[0, 0, 2, 0]])


def test_patterns_of_conv_net_normalised_and_patternnet_is_modified_backprop():
    """Paper 002: w^T a = 1 per neuron; PatternNet = the gradient with W replaced by A."""
    rng = np.random.default_rng(4)
    net = Sequential([Conv2d(1, 3, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(3 * 4 * 4, 2)])
    net.init(rng)
    X = rng.uniform(0, 1, (50, 1, 8, 8))
    pats = fit_patterns(net, [X[:25], X[25:]])
    A = pats[0].reshape(3, -1)
    np.testing.assert_allclose((A * net[0].W.reshape(3, -1)).sum(1), 1.0, rtol=1e-9)
    np.testing.assert_allclose((pats[4] * net[4].W).sum(0), 1.0, rtol=1e-9)
    # PatternNet = gradient of a network whose weights are the patterns, with the original ReLU masks
    x = X[:2]
    pn, score, trace = explain_model(net, x, [0, 1], method="patternnet", patterns=pats)
    swapped = Sequential([Conv2d(1, 3, 3, padding=1, W=pats[0], b=net[0].b), ReLU(), MaxPool2d(2),
                          Flatten(), Linear(48, 2, W=pats[4], b=net[4].b)])
    R = np.zeros((2, 2))
    R[[0, 1], [0, 1]] = score
    g = R
    for k in range(len(net) - 1, -1, -1):  # explicit layer-by-layer loop
        layer, xin, tr = swapped[k], trace.inputs[k], trace.traces[k]
        if isinstance(layer, (Conv2d, Linear)):
            g = layer.apply_T(g, layer.W, xin.shape)
        else:
            g = layer.backward(g, tr)[0]
    np.testing.assert_allclose(pn, g, atol=1e-12)
