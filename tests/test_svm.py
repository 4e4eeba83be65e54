"""Kernels and KernelSVC against slow references, exact decomposition, sklearn checks."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from bowlrp import KernelSVC
from bowlrp.svm import KERNELS, get_kernel


def _k_ref(name, x, y, w):
    """k(x, y) by a loop over dimensions."""
    total = 0.0
    for d in range(len(x)):
        if name == "linear":
            t = x[d] * y[d]
        elif name == "hik":
            t = min(x[d], y[d])
        else:
            t = 0.0 if x[d] + y[d] == 0 else 2 * x[d] * y[d] / (x[d] + y[d])
        total += w[d] * t
    return total


def _terms_ref(name, x, SV, coef, w):
    """R_d = sum_i coef_i w_d k_d(sv_i[d], x[d]) (eq. 2.72), by loops."""
    R = np.zeros(len(x))
    for i, sv in enumerate(SV):
        for d in range(len(x)):
            e = np.zeros(len(x))
            e[d] = 1.0
            R[d] += coef[i] * _k_ref(name, sv, x, w * e)
    return R


def _histograms(rng, n, d, zeros=0.3):
    X = rng.random((n, d))
    X[rng.random((n, d)) < zeros] = 0.0
    return X


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_gram_and_terms_match_reference(name):
    rng = np.random.default_rng(0)
    X, Y = _histograms(rng, 5, 7), _histograms(rng, 4, 7)
    w = rng.random(7) + 0.5
    kern = get_kernel(name)
    K = kern.gram(X, Y, w, np)
    for a in range(5):
        for b in range(4):
            assert K[a, b] == pytest.approx(_k_ref(name, X[a], Y[b], w), rel=1e-12, abs=1e-14)
    coef = rng.normal(size=(5, 4))
    T = kern.dimension_terms(X, Y, coef, w, np)
    for a in range(5):
        np.testing.assert_allclose(T[a], _terms_ref(name, X[a], Y, coef[a], w), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(T.sum(1), (K * coef).sum(1), rtol=1e-12)


def test_additive_chi2_zero_over_zero():
    kern = get_kernel("additive_chi2")
    K = kern.gram(np.zeros((1, 3)), np.zeros((1, 3)), np.ones(3), np)
    assert K[0, 0] == 0.0 and np.isfinite(K).all()


@pytest.mark.parametrize("name", ["linear", "hik", "additive_chi2"])
def test_binary_matches_sklearn_svc(name):
    rng = np.random.default_rng(1)
    X = _histograms(rng, 80, 6)
    y = np.where(X[:, 0] + X[:, 1] > X[:, 2] + X[:, 3], "pos", "neg")
    w = np.ones(6)

    def kfun(A, B):
        return get_kernel(name).gram(A, B, w, np)

    ref = SVC(kernel=kfun, C=2.0).fit(X, y)
    ours = KernelSVC(kernel=name, C=2.0).fit(X, y)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    np.testing.assert_array_equal(ours.support_, np.sort(ref.support_))


def test_multiclass_is_one_vs_rest():
    rng = np.random.default_rng(2)
    X = _histograms(rng, 90, 5, zeros=0.0)
    y = np.argmax(X[:, :3], axis=1)
    ours = KernelSVC(kernel="hik", C=5.0).fit(X, y)
    F = ours.decision_function(X)
    assert F.shape == (90, 3)
    for c in range(3):
        ref = SVC(kernel=lambda A, B: get_kernel("hik").gram(A, B, np.ones(5), np), C=5.0).fit(X, y == c)
        np.testing.assert_allclose(F[:, c], ref.decision_function(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), np.argmax(F, axis=1))
    assert ours.score(X, y) > 0.9


def test_block_weights_are_a_weighted_sum_of_block_kernels():
    rng = np.random.default_rng(3)
    X = _histograms(rng, 60, 6)
    y = (X[:, 0] > X[:, 4]).astype(int)
    m = KernelSVC(kernel="hik", blocks=(2, 4), block_weights=(3.0, 0.5)).fit(X, y)
    kern = get_kernel("hik")
    K = 3.0 * kern.gram(X[:, :2], m.support_vectors_[:, :2], np.ones(2), np) + 0.5 * kern.gram(
        X[:, 2:], m.support_vectors_[:, 2:], np.ones(4), np
    )
    np.testing.assert_allclose(m.decision_function(X), K @ m.dual_coef_[0] + m.intercept_[0], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_exact_decomposition_conserves(name, n_classes):
    rng = np.random.default_rng(4)
    X = _histograms(rng, 70, 8)
    y = np.argmax(X[:, :n_classes], axis=1)
    m = KernelSVC(kernel=name, C=3.0, blocks=(3, 5), block_weights=(1.0, 2.0)).fit(X, y)
    out = m._explain_output(X[:10])
    total = out.features.sum(1) + out.bias
    np.testing.assert_allclose(total, out.score, rtol=1e-10, atol=1e-12)
    assert np.abs(out.residual).max() <= 1e-10 * np.abs(out.score).max()
    F = m.decision_function(X[:10])
    if n_classes == 2:
        np.testing.assert_allclose(out.score, F)
        np.testing.assert_allclose(out.bias, m.intercept_[0])
        flipped = m._explain_output(X[:10], target=0)
        np.testing.assert_allclose(flipped.features, -out.features)
        np.testing.assert_allclose(flipped.score, -F)
    else:
        np.testing.assert_allclose(out.score, F.max(1))
        np.testing.assert_array_equal(out.target, np.argmax(F, 1))
        per = m._explain_output(X[:10], target=np.arange(10) % 3)
        np.testing.assert_allclose(per.score, F[np.arange(10), np.arange(10) % 3])
    # eq. 2.72 against the loop reference, sample 0
    row = 0 if n_classes == 2 else out.target[0]
    ref = _terms_ref(name, X[0], m.support_vectors_, m.dual_coef_[row], m.dimension_weights_)
    np.testing.assert_allclose(out.features[0], ref, rtol=1e-10, atol=1e-12)


def test_uniform_bias_spread_eq_2_73():
    rng = np.random.default_rng(5)
    X = _histograms(rng, 50, 4)
    y = (X[:, 0] > X[:, 1]).astype(int)
    m = KernelSVC(kernel="hik").fit(X, y)
    keep = m._explain_output(X[:5])
    uni = m._explain_output(X[:5], bias="uniform")
    np.testing.assert_allclose(uni.features, keep.features + keep.bias[:, None] / 4)
    np.testing.assert_array_equal(uni.bias, 0.0)
    np.testing.assert_allclose(uni.features.sum(1), uni.score, rtol=1e-12)


def test_errors_are_clear():
    rng = np.random.default_rng(6)
    X = _histograms(rng, 30, 4)
    y = (X[:, 0] > 0.5).astype(int)
    with pytest.raises(ValueError, match=r"valid kernels are \['additive_chi2', 'hik', 'linear'\]"):
        KernelSVC(kernel="chi3").fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        KernelSVC().fit(X, np.ones(30))
    with pytest.raises(ValueError, match="non-negative"):
        KernelSVC(kernel="hik").fit(X - 1, y)
    with pytest.raises(ValueError, match="blocks"):
        KernelSVC(blocks=(3, 3)).fit(X, y)
    with pytest.raises(ValueError, match="block_weights"):
        KernelSVC(blocks=(2, 2), block_weights=(1.0, -1.0)).fit(X, y)
    with pytest.raises(ValueError, match="C must be"):
        KernelSVC(C=0).fit(X, y)
    with pytest.raises(NotFittedError):
        KernelSVC().decision_function(X)
    with pytest.raises(ValueError, match="NaN"):
        KernelSVC().fit(np.full((4, 2), np.nan), [0, 1, 0, 1])
    m = KernelSVC().fit(X, y)
    with pytest.raises(ValueError, match="not a class"):
        m._explain_output(X, target=7)
    with pytest.raises(ValueError, match="valid modes"):
        m._explain_output(X, bias="spread")
    with pytest.raises(ValueError, match="features"):
        m.decision_function(X[:, :3])


def test_pickle_and_clone():
    rng = np.random.default_rng(7)
    X = _histograms(rng, 40, 4)
    y = (X[:, 0] > X[:, 1]).astype(int)
    m = KernelSVC(kernel="additive_chi2", blocks=(2, 2)).fit(X, y)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m.decision_function(X), m2.decision_function(X))
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "dual_coef_")


def _expected_failures(estimator):
    if get_kernel(estimator.kernel).nonnegative_input:
        return {
            "check_class_weight_classifiers": (
                "feeds negative blob data despite the positive_only tag; histogram kernels reject it"
            )
        }
    return {}


@parametrize_with_checks(
    [KernelSVC(kernel="linear"), KernelSVC(kernel="hik"), KernelSVC(kernel="additive_chi2")],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
