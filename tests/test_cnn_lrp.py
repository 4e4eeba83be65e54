"""LRP rules of bowlrp.cnn against slow reference loops, and the papers' properties.

Every rule is re-implemented below as loops over output and input neurons,
straight from its equation, on the dense matrix of the layer (built by loops
over the convolution's positions), and compared with the vectorised code.
"""

import numpy as np
import pytest

from bowlrp.cnn import (AlphaBeta, AvgPool2d, Composite, Conv2d, Epsilon, Flat, Flatten, Linear,
                        MaxPool2d, ReLU, Sequential, SumPool2d, WSquare, ZBox, ZPlus,
                        explain_model, get_composite, get_rule)
from bowlrp.cnn.composites import Pass
from bowlrp.rules import Magnitude, Proportional

# ---------------------------------------------------------------- reference implementations


def dense_form(layer, in_shape):
    """Dense weights Wd (D, J), bias bd (J,) and connectivity C (D, J) of a linear layer, by loops."""
    if isinstance(layer, Linear):
        return layer.W.copy(), layer.b.copy(), np.ones(layer.W.shape, bool)
    C_in, H, W = in_shape
    O, _, kh, kw = layer.W.shape
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    _, Ho, Wo = layer.output_shape(in_shape)
    D, J = C_in * H * W, O * Ho * Wo
    Wd, Cd, bd = np.zeros((D, J)), np.zeros((D, J), bool), np.zeros(J)
    for o in range(O):
        for y in range(Ho):
            for x in range(Wo):
                j = np.ravel_multi_index((o, y, x), (O, Ho, Wo))
                bd[j] = layer.b[o]
                for c in range(C_in):
                    for i in range(kh):
                        for k in range(kw):
                            r, q = y * sh + i - ph, x * sw + k - pw
                            if 0 <= r < H and 0 <= q < W:  # padding is not an input
                                d = np.ravel_multi_index((c, r, q), (C_in, H, W))
                                Wd[d, j] = layer.W[o, c, i, k]
                                Cd[d, j] = True
    return Wd, bd, Cd


def reference_rule(rule, x, Wd, bd, Cd, R):
    """One sample: x (D,), R (J,) -> R_in (D,), with explicit loops over j and i."""
    D, J = Wd.shape
    out = np.zeros(D)
    for j in range(J):
        ins = [i for i in range(D) if Cd[i, j]]
        z = {i: x[i] * Wd[i, j] for i in ins}
        if isinstance(rule, (Epsilon, Proportional)):  # thesis eq. 2.21-2.22 (Proportional: eps = 0)
            zj = sum(z.values()) + bd[j]
            eps = rule.epsilon if isinstance(rule, Epsilon) else 0.0
            den = zj + eps * (1 if zj >= 0 else -1)
            magnitude = sum(abs(v) for v in z.values()) + abs(bd[j])
            usable = abs(den) > max(1e-10 * magnitude, 1e-290) if eps == 0 else den != 0
            for i in ins:
                out[i] += z[i] / den * R[j] if usable else 0.0
        elif isinstance(rule, Magnitude):  # |z_ij| / sum |z_ij| (thesis eq. 2.7), bias left out
            den = sum(abs(v) for v in z.values())
            for i in ins:
                out[i] += abs(z[i]) / den * R[j] if den else 0.0
        elif isinstance(rule, AlphaBeta):  # thesis eq. 2.26, denominators with b+ / b-
            zp = sum(max(v, 0) for v in z.values()) + max(bd[j], 0)
            zn = sum(min(v, 0) for v in z.values()) + min(bd[j], 0)
            for i in ins:
                if zp != 0:
                    out[i] += rule.alpha * max(z[i], 0) / zp * R[j]
                if zn != 0:
                    out[i] += rule.beta * min(z[i], 0) / zn * R[j]
        elif isinstance(rule, Flat):
            for i in ins:
                out[i] += R[j] / len(ins)
        elif isinstance(rule, WSquare):  # paper 000 eq. 12
            den = sum(Wd[i, j] ** 2 for i in ins)
            for i in ins:
                out[i] += Wd[i, j] ** 2 / den * R[j] if den else 0.0
        elif isinstance(rule, ZBox):  # paper 000 Sec. III.B
            lo, hi = rule.low, rule.high
            q = {i: z[i] - lo * max(Wd[i, j], 0) - hi * min(Wd[i, j], 0) for i in ins}
            den = sum(q.values())
            for i in ins:
                out[i] += q[i] / den * R[j] if den else 0.0
        else:  # pragma: no cover
            raise TypeError(rule)
    return out


def reference_pool(layer, x, R, mode):
    """Max/sum pooling relevance by loops over windows (one sample, (C, H, W))."""
    C = x.shape[0]
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    out = np.zeros_like(x)
    for c in range(C):
        for y in range(R.shape[1]):
            for q in range(R.shape[2]):
                win = x[c, y * sh:y * sh + kh, q * sw:q * sw + kw]
                if mode == "winner":
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    out[c, y * sh + a, q * sw + b] += R[c, y, q]
                else:
                    if win.sum() != 0:
                        out[c, y * sh:y * sh + kh, q * sw:q * sw + kw] += win / win.sum() * R[c, y, q]
    return out


# ---------------------------------------------------------------- fast rules = reference

RULE_CASES = [Epsilon(0.0), Epsilon(0.5), Proportional(), AlphaBeta(2, -1), AlphaBeta(1, 0), AlphaBeta(3, -2),
              ZPlus(), Magnitude(), WSquare(), Flat(), ZBox(-1.0, 2.0)]
LAYER_CASES = [
    (lambda: Conv2d(2, 3, 3, stride=1, padding=1), (2, 5, 4)),
    (lambda: Conv2d(2, 2, (3, 2), stride=2, padding=(0, 1)), (2, 6, 5)),
    (lambda: Linear(7, 4), (7,)),
]


@pytest.mark.parametrize("rule", RULE_CASES, ids=repr)
@pytest.mark.parametrize("make,in_shape", LAYER_CASES, ids=["conv_pad", "conv_stride", "linear"])
def test_rule_matches_reference_loops(rule, make, in_shape):
    rng = np.random.default_rng(0)
    layer = make()
    layer.init(rng)
    layer.b = rng.standard_normal(layer.b.shape) * 0.5
    x = rng.uniform(-1, 2, (2,) + in_shape)  # inside the ZBox bounds
    z = layer.apply(x, layer.W, layer.b)
    R = rng.standard_normal(z.shape)
    fast = rule.relevance(layer, x, R)
    Wd, bd, Cd = dense_form(layer, in_shape)
    for n in range(2):
        ref = reference_rule(rule, x[n].ravel(), Wd, bd, Cd, R[n].ravel())
        np.testing.assert_allclose(fast[n].ravel(), ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls", [MaxPool2d, SumPool2d, AvgPool2d])
@pytest.mark.parametrize("mode", ["winner", "proportional"])
def test_pool_relevance_matches_reference(cls, mode):
    rng = np.random.default_rng(1)
    layer = cls(3, 2)
    x = rng.uniform(0, 1, (2, 2, 7, 8))
    out, tr = layer.forward(x)
    R = rng.standard_normal(out.shape)
    fast = Composite(maxpool=mode).rules_for(Sequential([layer]))[0].relevance(layer, x, R, tr)
    ref_mode = mode if cls is MaxPool2d else "proportional"
    for n in range(2):
        np.testing.assert_allclose(fast[n], reference_pool(layer, x[n], R[n], ref_mode), atol=1e-12)


def test_zero_denominator_absorbs_without_nan():
    layer = Linear(3, 2, W=np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]), b=np.zeros(2))
    x = np.array([[1.0, 1.0, 1.0]])
    for rule in RULE_CASES:
        out = rule.relevance(layer, x, np.array([[1.0, 1.0]]))
        assert np.isfinite(out).all(), rule


# ---------------------------------------------------------------- conservation (paper 000, thesis)


def _random_net(rng, nonpositive_bias=True, zero_bias=False, out=1):
    net = Sequential([Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(4, 6, 3), ReLU(),
                      SumPool2d(2), Flatten(), Linear(6 * 2 * 2, 8), ReLU(), Linear(8, out)])
    net.init(rng)
    for layer in net:
        if "b" in layer.params:
            b = 0.1 * rng.standard_normal(layer.b.shape)
            layer.b = np.zeros_like(b) if zero_bias else (-np.abs(b) if nonpositive_bias else b)
    return net


@pytest.mark.parametrize("preset", ["dtd", "dtd_wsquare"])
def test_dtd_conserves_and_is_positive(preset):
    """Paper 000 Props. 1-3 / Sec. IV.C: training-free DTD on a ReLU net with b <= 0."""
    rng = np.random.default_rng(2)
    checked = 0
    for trial in range(6):
        net = _random_net(rng)
        x = rng.uniform(0, 1, (8, 1, 12, 12))
        f = net(x)[:, 0]
        if not (f > 0).any():
            continue
        x, f = x[f > 0], f[f > 0]
        R, score, _ = explain_model(net, x, np.zeros(len(x), int), method="lrp", composite=preset)
        np.testing.assert_allclose(R.sum(axis=(1, 2, 3)), f, rtol=1e-10)
        assert (R >= -1e-12 * f.max()).all()
        checked += len(x)
    assert checked >= 5


def test_dtd_zero_output_gives_zero_heatmap():
    """Def. 3 (consistency): f(x) = 0 implies R = 0."""
    rng = np.random.default_rng(3)
    net = _random_net(rng)
    net[-1].W = np.zeros_like(net[-1].W)  # f(x) = 0 for every x
    net[-1].b = np.zeros(1)
    x = rng.uniform(0, 1, (3, 1, 12, 12))
    R, score, _ = explain_model(net, x, np.zeros(3, int), composite="dtd")
    assert np.all(score == 0) and np.all(R == 0)


@pytest.mark.parametrize("rule", [Epsilon(0.0), AlphaBeta(2, -1), AlphaBeta(1, 0), Flat(), WSquare()],
                         ids=repr)
def test_rules_conserve_per_layer_with_zero_bias(rule):
    rng = np.random.default_rng(4)
    layer = Conv2d(2, 3, 3, padding=1)
    layer.init(rng)
    x = rng.standard_normal((2, 2, 5, 5))
    z = layer.apply(x, layer.W, layer.b)
    R = rng.uniform(0.1, 1, z.shape)
    out = rule.relevance(layer, x, R)
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), R.sum(axis=(1, 2, 3)), rtol=1e-10)


def test_lrp_z_equals_gradient_times_input_with_zero_biases():
    """Paper 002 (citing Shrikumar et al.): LRP-0 = x * df/dx on ReLU/max-pool nets without bias."""
    rng = np.random.default_rng(5)
    net = _random_net(rng, zero_bias=True, out=3)
    x = rng.uniform(-1, 1, (4, 1, 12, 12))
    t = np.array([0, 1, 2, 1])
    lrp, s1, _ = explain_model(net, x, t, method="lrp", composite="z")
    gxi, s2, _ = explain_model(net, x, t, method="gradient_x_input")
    np.testing.assert_allclose(lrp, gxi, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lrp.sum(axis=(1, 2, 3)), s1, rtol=1e-9)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    net = _random_net(rng, nonpositive_bias=False, out=2)
    x = rng.uniform(0, 1, (1, 1, 12, 12))
    g, _, _ = explain_model(net, x, [1], method="gradient")
    h = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp_, xm = x.copy(), x.copy()
        xp_[idx] += h
        xm[idx] -= h
        num[idx] = (net(xp_)[0, 1] - net(xm)[0, 1]) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_composite_assignment_and_presets():
    net = _random_net(np.random.default_rng(7))
    rules = get_composite("alphabeta_2_1_epsilon_flat").rules_for(net)
    assert isinstance(rules[0], Flat)
    assert isinstance(rules[3], AlphaBeta) and rules[3].beta == -1
    assert isinstance(rules[7], Epsilon) and isinstance(rules[9], Epsilon)
    assert isinstance(rules[1], Pass) and not isinstance(rules[2], (Flat, AlphaBeta, Epsilon))
    dtd = get_composite("dtd")
    assert isinstance(dtd.rules_for(net)[0], ZBox) and dtd.maxpool == "proportional"
    assert get_composite("dtd", maxpool="winner").maxpool == "winner"
    comp = Composite({"conv": "zplus"}, first_map="flat")
    r = comp.rules_for(net)
    assert isinstance(r[0], Flat) and isinstance(r[3], ZPlus) and isinstance(r[7], Proportional)


def test_errors_list_valid_names():
    with pytest.raises(ValueError, match="valid presets: .*dtd"):
        get_composite("dtdd")
    with pytest.raises(ValueError, match="valid rules are .*zplus"):
        get_rule("z-plus")
    with pytest.raises(ValueError, match="beta=1 for what is beta=-1"):
        AlphaBeta(2, 1)
    with pytest.raises(ValueError, match="alpha >= 1"):
        AlphaBeta(0.5, 0.5)
    with pytest.raises(ValueError, match="epsilon == -1, must be >= 0"):
        Epsilon(-1)
    with pytest.raises(ValueError, match="valid modes"):
        Composite(maxpool="max")
    with pytest.raises(ValueError, match="layer_map keys must be among .*'conv', 'linear'"):
        Composite({"dense": "z"})
    net = _random_net(np.random.default_rng(8))
    with pytest.raises(ValueError, match="valid methods"):
        explain_model(net, np.zeros((1, 1, 12, 12)), [0], method="smoothgrad")
    with pytest.raises(ValueError, match="fit_patterns"):
        explain_model(net, np.zeros((1, 1, 12, 12)), [0], method="patternnet")


def _tiny_binary(w):
    """Flatten -> Linear(eye(4, 3)) -> ReLU -> Linear(w): on x = ones the hidden units are all 1."""
    return Sequential([Flatten(), Linear(4, 3, W=np.eye(4, 3), b=np.zeros(3)), ReLU(),
                       Linear(3, 1, W=np.asarray(w, float)[:, None], b=np.zeros(1))])


def test_negative_class_minimal_case():
    """-f is explained with the rule applied to its own messages (the output layer negated)."""
    x = np.ones((1, 1, 2, 2))
    R, score, _ = explain_model(_tiny_binary([1, -1, -2]), x, [0], sign=[-1], composite=get_composite(AlphaBeta(2, -1)))
    np.testing.assert_allclose(score, [2.0])
    np.testing.assert_allclose(R.ravel(), [-4.0, 8 / 3, 16 / 3, 0.0])
    R, score, _ = explain_model(_tiny_binary([-1, -1, -2]), x, [0], sign=[-1], composite="dtd")
    np.testing.assert_allclose(score, [4.0])
    np.testing.assert_allclose(R.ravel(), [1.0, 1.0, 2.0, 0.0])
    neg = _tiny_binary([1, 1, 2])  # the negated network, explained for +f
    ref, _, _ = explain_model(neg, x, [0], composite="dtd")
    np.testing.assert_allclose(R, ref)


@pytest.mark.parametrize("method", ["gradient", "guided_backprop", "deconvnet", "gradient_x_input"])
def test_negative_class_gradient_methods_flip_sign(method):
    rng = np.random.default_rng(9)
    net = _random_net(rng, out=1)
    x = rng.uniform(0, 1, (2, 1, 12, 12))
    pos, s_pos, _ = explain_model(net, x, [0, 0], method=method)
    neg, s_neg, _ = explain_model(net, x, [0, 0], sign=[-1, -1], method=method)
    np.testing.assert_allclose(s_neg, -s_pos)
    if method == "gradient" or method == "gradient_x_input":
        np.testing.assert_allclose(neg, -pos, atol=1e-12)


def test_gradient_type_methods_are_composites():
    from bowlrp.cnn.composites import ReLUDeconvNet, ReLUGuidedBackprop

    net = _random_net(np.random.default_rng(10))
    assert isinstance(get_composite("guided_backprop").rules_for(net)[1], ReLUGuidedBackprop)
    assert isinstance(get_composite("deconvnet").rules_for(net)[1], ReLUDeconvNet)
    assert get_composite("gradient").start == "unit" and get_composite("dtd").start == "score"
    x = np.random.default_rng(11).uniform(0, 1, (2, 1, 12, 12))
    a, _, _ = explain_model(net, x, [0, 0], method="guided_backprop")
    b, _, _ = explain_model(net, x, [0, 0], method="lrp", composite="guided_backprop")
    np.testing.assert_allclose(a, b)


def test_wsquare_of_float32_weights_in_the_explanation_precision():
    W = np.array([[0.1], [0.3], [-0.7]])
    layer32 = Linear(3, 1, W=W.astype(np.float32), b=np.zeros(1, np.float32))
    layer64 = Linear(3, 1, W=W.astype(np.float32).astype(np.float64), b=np.zeros(1))
    x, R = np.ones((1, 3)), np.ones((1, 1))
    np.testing.assert_allclose(WSquare().relevance(layer32, x, R), WSquare().relevance(layer64, x, R), rtol=1e-15)
