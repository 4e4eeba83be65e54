"""Mapping-stage rules against slow references written straight from the equations.

``ref_rule`` loops over outputs ``j`` and inputs ``i`` of a dense message
matrix; ``test_bow.py`` reuses it for the Bag-of-Words backward pass.
"""

import math

import numpy as np
import pytest

from bowlrp.rules import RULES, AlphaBeta, Epsilon, Proportional, Rule, get_rule, redistribute_sparse

RULE_CASES = [
    ("z", {}),
    ("epsilon", {"epsilon": 1.0}),
    ("epsilon", {"epsilon": 0.01}),
    ("epsilon", {"epsilon": 0.0}),
    ("alphabeta", {"alpha": 2.0, "beta": -1.0}),
    ("alphabeta", {"alpha": 1.0, "beta": 0.0}),
    ("abs", {}),
    ("flat", {}),
]
EXACT = {"z", "abs", "flat"}


def _sign(v):
    """sign with sign(0) = 1 (eq. 2.22)."""
    return 1.0 if v >= 0 else -1.0


def ref_rule(name, params, Z, R):
    """Slow ``R_{i<-j}`` for a dense message matrix ``Z`` (n_in, n_out) and output relevance ``R``.

    Returns the messages (n_in, n_out) and the outputs the messages reach
    (the others are left to the stage, e.g. the zero-mapping case eq. 2.79).
    """
    n_in, n_out = Z.shape
    out = np.zeros((n_in, n_out))
    reached = np.zeros(n_out, dtype=bool)
    for j in range(n_out):
        col = Z[:, j]
        zj = sum(col[i] for i in range(n_in))
        nonzero = [i for i in range(n_in) if col[i] != 0]
        if name == "z":  # eq. 2.10
            if zj != 0:
                reached[j] = True
                for i in range(n_in):
                    out[i, j] = col[i] / zj * R[j]
        elif name == "epsilon":  # eq. 2.22, sign(0) = 1
            den = zj + params["epsilon"] * _sign(zj)
            if nonzero and den != 0:
                reached[j] = True
                for i in range(n_in):
                    out[i, j] = col[i] / den * R[j]
        elif name == "alphabeta":  # eq. 2.26, alpha + beta = 1
            a, b = params["alpha"], params["beta"]
            zp = sum(max(col[i], 0.0) for i in range(n_in))
            zn = sum(min(col[i], 0.0) for i in range(n_in))
            if nonzero:
                reached[j] = True
            for i in range(n_in):
                if zp > 0:
                    out[i, j] += a * max(col[i], 0.0) / zp * R[j]
                if zn < 0:
                    out[i, j] += b * min(col[i], 0.0) / zn * R[j]
        elif name == "abs":  # magnitudes only (the counter-example of eq. 2.7)
            za = sum(abs(col[i]) for i in range(n_in))
            if za > 0:
                reached[j] = True
                for i in range(n_in):
                    out[i, j] = abs(col[i]) / za * R[j]
        elif name == "flat":  # eq. 2.27 over the receptive field {i : z_ij != 0}
            if nonzero:
                reached[j] = True
                for i in nonzero:
                    out[i, j] = R[j] / len(nonzero)
        else:
            raise AssertionError(name)
    return out, reached


def _sparse_case(seed, n_in=7, n_out=9):
    """Random sparse messages with negative values, zeros, empty and cancelling columns."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n_in, n_out)) * (rng.random((n_in, n_out)) < 0.5)
    Z[:, 0] = 0.0  # empty column
    Z[:, 1] = np.abs(Z[:, 1]) + 0.1  # all positive
    Z[:, 2] = -np.abs(Z[:, 2]) - 0.1  # all negative
    Z[:, 3] = 0.0
    Z[:2, 3] = [1.5, -1.5]  # cancels to z_j = 0 with non-zero messages (sign(0) = 1)
    Z[:, 4] = 0.0
    Z[3, 4] = 2.0  # a single message
    R = rng.normal(size=n_out)
    R[5] = 0.0
    # stored entries: every non-zero message plus some explicit zeros
    keep = (Z != 0) | (rng.random(Z.shape) < 0.3)
    rows, cols = np.nonzero(keep)
    return Z, R, rows, cols


def _run(rule, Z, R, rows, cols):
    msgs, reached = redistribute_sparse(rule, Z[rows, cols], cols, Z.shape[1], R, np)
    dense = np.zeros_like(Z)
    np.add.at(dense, (rows, cols), msgs)
    return dense, reached


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name,params", RULE_CASES)
def test_rule_matches_reference(name, params, seed):
    Z, R, rows, cols = _sparse_case(seed)
    dense, reached = _run(get_rule(name, **params), Z, R, rows, cols)
    ref, ref_reached = ref_rule(name, params, Z, R)
    np.testing.assert_array_equal(reached, ref_reached)
    np.testing.assert_allclose(dense, ref, rtol=1e-12, atol=1e-14)
    assert np.isfinite(dense).all()


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_rules_conserve(name):
    rule = get_rule(name)
    assert rule.exact
    for seed in range(10):
        Z, R, rows, cols = _sparse_case(seed, n_in=12, n_out=15)
        dense, reached = _run(rule, Z, R, rows, cols)
        np.testing.assert_allclose(dense.sum(0)[reached], R[reached], rtol=1e-10, atol=1e-14)
        assert not dense[:, ~reached].any()
        # every output with a non-zero message is reached (except z-rule outputs with z_j = 0)
        support = (Z != 0).any(0)
        expect = Z.sum(0) != 0 if name == "z" else support
        np.testing.assert_array_equal(reached, expect)


@pytest.mark.parametrize("eps", [0.0, 0.01, 1.0, 100.0])
def test_epsilon_conserves_what_eq_2_23_says(eps):
    rule = get_rule("epsilon", epsilon=eps)
    assert not rule.exact
    for seed in range(10):
        Z, R, rows, cols = _sparse_case(seed)
        dense, reached = _run(rule, Z, R, rows, cols)
        zj = Z.sum(0)
        sign = np.where(zj >= 0, 1.0, -1.0)
        den = zj + eps * sign
        expect = np.where(reached, R * zj / np.where(reached, den, 1.0), 0.0)
        np.testing.assert_allclose(dense.sum(0), expect, rtol=1e-10, atol=1e-14)


def test_epsilon_sign_of_zero_is_one():
    Z = np.array([[1.5], [-1.5]])
    dense, reached = _run(get_rule("epsilon", epsilon=0.5), Z, np.array([2.0]), np.array([0, 1]), np.array([0, 0]))
    assert reached[0]
    np.testing.assert_allclose(dense[:, 0], [1.5 / 0.5 * 2.0, -1.5 / 0.5 * 2.0])
    # with epsilon = 0 nothing can be carried: the output is left to the stage
    dense, reached = _run(get_rule("epsilon", epsilon=0.0), Z, np.array([2.0]), np.array([0, 1]), np.array([0, 0]))
    assert not reached[0] and not dense.any()


@pytest.mark.parametrize("alpha,beta", [(2.0, -1.0), (1.0, 0.0), (3.0, -2.0)])
def test_alphabeta_parts(alpha, beta):
    rule = get_rule("alphabeta", alpha=alpha, beta=beta)
    for seed in range(10):
        Z, R, rows, cols = _sparse_case(seed)
        dense, _ = _run(rule, Z, R, rows, cols)
        pos_part = np.where(Z > 0, dense, 0.0).sum(0)
        neg_part = np.where(Z < 0, dense, 0.0).sum(0)
        has_pos, has_neg = (Z > 0).any(0), (Z < 0).any(0)
        np.testing.assert_allclose(pos_part[has_pos], alpha * R[has_pos], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(neg_part[has_neg], beta * R[has_neg], rtol=1e-10, atol=1e-14)
        both = has_pos & has_neg
        np.testing.assert_allclose(dense.sum(0)[both], R[both], rtol=1e-10, atol=1e-14)
        assert not dense[Z == 0].any()


def test_magnitude_rule_gives_every_input_the_output_sign():
    Z = np.array([[2.0], [-1.0], [0.5]])
    dense, _ = _run(get_rule("abs"), Z, np.array([-3.5]), np.array([0, 1, 2]), np.array([0, 0, 0]))
    np.testing.assert_allclose(dense[:, 0], [-2.0, -1.0, -0.5])


def test_flat_ignores_zero_messages():
    Z = np.array([[2.0], [0.0], [-7.0]])
    dense, _ = _run(get_rule("flat"), Z, np.array([4.0]), np.array([0, 1, 2]), np.array([0, 0, 0]))
    np.testing.assert_allclose(dense[:, 0], [2.0, 0.0, 2.0])


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: AlphaBeta(alpha=2, beta=0), "alpha \\+ beta = 1"),
        (lambda: AlphaBeta(alpha=0.5, beta=0.5), "alpha >= 1"),
        (lambda: AlphaBeta(alpha=-1, beta=2), "alpha >= 1"),
        (lambda: AlphaBeta(alpha=math.nan, beta=0), "finite"),
        (lambda: AlphaBeta(alpha="2", beta=-1), "number"),
        (lambda: Epsilon(-1e-3), "epsilon"),
        (lambda: Epsilon(math.nan), "epsilon"),
        (lambda: Epsilon(math.inf), "epsilon"),
        (lambda: Epsilon(True), "epsilon"),
        (lambda: get_rule("alphabeta", alpha=1.5, beta=-1.0), "alpha \\+ beta = 1"),
        (lambda: get_rule("epsilon", epsilon=-1), "epsilon"),
    ],
)
def test_parameters_validated_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_get_rule_names_and_params():
    assert get_rule("epsilon", epsilon=100) == Epsilon(100.0)
    assert get_rule("epsilon", epsilon=100).epsilon == 100.0
    assert get_rule("alpha-beta", alpha=1, beta=0) == AlphaBeta(1.0, 0.0)
    assert get_rule("Proportional") == Proportional()
    assert isinstance(get_rule("flat"), Rule)
    r = get_rule("abs")
    assert get_rule(r) is r
    with pytest.raises(ValueError, match="valid rules are") as err:
        get_rule("lrp.epsilon")
    for name in RULES:
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="valid rules are"):
        get_rule(3)
    with pytest.raises(TypeError, match="takes no parameters"):
        get_rule("z", epsilon=1.0)
    with pytest.raises(TypeError, match="Rule object"):
        get_rule(r, epsilon=1.0)
    assert len({get_rule("epsilon", epsilon=1), get_rule("epsilon", epsilon=1.0)}) == 1


# ------------------------------------------------------------ vanishing denominators (module docstring)


def test_subnormal_positive_sum_is_no_denominator():
    """GMM posteriors underflow: a positive part of 5e-324 must not give inf (and then inf * 0 = NaN)."""
    rule = AlphaBeta(2, -1)
    (sp, sn), reached = rule.scales((np.array([5e-324]), np.array([-1.0])), np.array([1.0]), np.array([1.0]), np)
    assert np.isfinite(sp).all() and np.isfinite(sn).all()
    assert sp[0] == 0.0 and sn[0] == 1.0 and reached[0]  # only the negative part is sent: beta R
    z = np.array([5e-324, 0.0, -1.0])
    msgs, _ = redistribute_sparse(rule, z, np.zeros(3, np.intp), 1, np.array([1.0]), np)
    np.testing.assert_array_equal(msgs, [0.0, 0.0, -1.0])


@pytest.mark.parametrize("name,params", RULE_CASES)
def test_nearly_cancelling_messages_are_not_amplified(name, params):
    """z_j = 1e-14 of messages of size 1: no relevance of order R / 1e-14 (it would cancel in floating point)."""
    z = np.array([1.0, -1.0 + 1e-14, 0.5, -0.5])
    cols = np.zeros(4, np.intp)
    msgs, reached = redistribute_sparse(get_rule(name, **params), z, cols, 1, np.array([1.0]), np)
    assert np.isfinite(msgs).all()
    eps = params.get("epsilon")
    assert np.abs(msgs).max() <= (2.0 if not eps else 1.0 / eps)  # epsilon bounds the gain by 1 / epsilon
    if name == "z":
        assert not reached[0]  # the stage applies its zero-mapping case instead


@pytest.mark.parametrize("name,params", RULE_CASES)
@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1.0, 1e200])
def test_finite_at_every_scale(name, params, scale):
    Z, R, rows, cols = _sparse_case(3)
    msgs, _ = redistribute_sparse(get_rule(name, **params), Z[rows, cols] * scale, cols, Z.shape[1], R, np)
    assert np.isfinite(msgs).all()
