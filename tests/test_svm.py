"""Kernels and KernelSVC against slow references, exact decomposition, sklearn checks."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from bowlrp import KernelSVC
from bowlrp.svm import KernelOneClassSVM, make_kernel
from bowlrp.svm.decompose import KernelExpansion, explain_expansion

EXACT = ["additive_chi2", "hik", "linear"]


def _per_dim(name, w):
    """A kernel with weight w[d] on dimension d: one block per dimension."""
    return make_kernel(name, (1,) * len(w), w, np.ones(len(w)) if name in ("rbf", "chi2") else None)


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


def _k_exp_ref(name, x, y, sizes, beta, gammas):
    """sum_u beta_u exp(-gamma_u dist_u) by loops (eq. 2.67, A.4, A.6)."""
    total, start = 0.0, 0
    for size, b, g in zip(sizes, beta, gammas):
        dist = 0.0
        for d in range(start, start + size):
            if name == "rbf":
                dist += (x[d] - y[d]) ** 2
            elif x[d] + y[d] > 0:
                dist += (x[d] - y[d]) ** 2 / (x[d] + y[d])
        total += b * np.exp(-g * dist)
        start += size
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


@pytest.mark.parametrize("name", EXACT)
def test_gram_and_terms_match_reference(name):
    rng = np.random.default_rng(0)
    X, Y = _histograms(rng, 5, 7), _histograms(rng, 4, 7)
    w = rng.random(7) + 0.5
    kern = _per_dim(name, w)
    K = kern.gram(X, Y, np)
    for a in range(5):
        for b in range(4):
            assert K[a, b] == pytest.approx(_k_ref(name, X[a], Y[b], w), rel=1e-12, abs=1e-14)
    coef = rng.normal(size=(5, 4))
    T = kern.dimension_terms(X, Y, coef, np)
    for a in range(5):
        np.testing.assert_allclose(T[a], _terms_ref(name, X[a], Y, coef[a], w), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(T.sum(1), (K * coef).sum(1), rtol=1e-12)


@pytest.mark.parametrize("name", ["rbf", "chi2"])
def test_exponential_kernels_match_reference(name):
    rng = np.random.default_rng(1)
    X, Y = _histograms(rng, 4, 6), _histograms(rng, 3, 6)
    X[0] = Y[0]  # identical rows, including shared zeros (0/0 = 0)
    sizes, beta, gammas = (2, 4), np.array([0.7, 1.5]), np.array([2.0, 0.5])
    K = make_kernel(name, sizes, beta, gammas).gram(X, Y, np)
    for a in range(4):
        for b in range(3):
            assert K[a, b] == pytest.approx(_k_exp_ref(name, X[a], Y[b], sizes, beta, gammas), rel=1e-12)
    assert K[0, 0] == pytest.approx(beta.sum())
    with pytest.raises(ValueError, match="not sum-decomposable"):
        make_kernel(name, sizes, beta, gammas).dimension_terms(X, Y, np.ones((4, 3)), np)


@pytest.mark.parametrize("name", ["linear", "hik", "additive_chi2", "rbf", "chi2"])
def test_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(2)
    Y = _histograms(rng, 5, 6, zeros=0.2)
    P = rng.random((3, 6)) * 0.8 + 0.1  # inside the positive orthant, away from kinks of min
    coef = rng.normal(size=(3, 5))
    kern = make_kernel(name, (2, 4), (1.3, 0.6), (1.7, 0.4) if name in ("rbf", "chi2") else None)
    G = kern.gradient(P, Y, coef, np)
    h = 1e-6
    for a in range(3):
        for d in range(6):
            e = np.zeros(6)
            e[d] = h
            fp = kern.gram((P[a] + e)[None], Y, np)[0] @ coef[a]
            fm = kern.gram((P[a] - e)[None], Y, np)[0] @ coef[a]
            assert G[a, d] == pytest.approx((fp - fm) / (2 * h), rel=1e-5, abs=1e-7)


def test_chi2_gradient_at_shared_zero_is_the_one_sided_limit():
    kern = make_kernel("chi2", (2,), (1.0,), (1.0,))
    Y, coef = np.array([[0.0, 0.5]]), np.array([[1.0]])
    G0 = kern.gradient(np.array([[0.0, 0.5]]), Y, coef, np)
    Gh = kern.gradient(np.array([[1e-9, 0.5]]), Y, coef, np)
    np.testing.assert_allclose(G0, Gh, rtol=1e-6)


def test_additive_chi2_zero_over_zero():
    K = _per_dim("additive_chi2", np.ones(3)).gram(np.zeros((1, 3)), np.zeros((1, 3)), np)
    assert K[0, 0] == 0.0 and np.isfinite(K).all()


@pytest.mark.parametrize("name", ["linear", "hik", "additive_chi2"])
def test_binary_matches_sklearn_svc(name):
    rng = np.random.default_rng(1)
    X = _histograms(rng, 80, 6)
    y = np.where(X[:, 0] + X[:, 1] > X[:, 2] + X[:, 3], "pos", "neg")
    def kfun(A, B):
        return make_kernel(name, (6,)).gram(A, B, np)

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
        ref = SVC(kernel=lambda A, B: make_kernel("hik", (5,)).gram(A, B, np), C=5.0).fit(X, y == c)
        np.testing.assert_allclose(F[:, c], ref.decision_function(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), np.argmax(F, axis=1))
    assert ours.score(X, y) > 0.9


def test_block_weights_are_a_weighted_sum_of_block_kernels():
    rng = np.random.default_rng(3)
    X = _histograms(rng, 60, 6)
    y = (X[:, 0] > X[:, 4]).astype(int)
    m = KernelSVC(kernel="hik", blocks=(2, 4), block_weights=(3.0, 0.5)).fit(X, y)
    K = 3.0 * make_kernel("hik", (2,)).gram(X[:, :2], m.support_vectors_[:, :2], np) + 0.5 * make_kernel(
        "hik", (4,)
    ).gram(X[:, 2:], m.support_vectors_[:, 2:], np)
    np.testing.assert_allclose(m.decision_function(X), K @ m.dual_coef_[0] + m.intercept_[0], rtol=1e-12)


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_exact_decomposition_conserves(name, n_classes):
    rng = np.random.default_rng(4)
    X = _histograms(rng, 70, 8)
    y = np.argmax(X[:, :n_classes], axis=1)
    m = KernelSVC(kernel=name, C=3.0, blocks=(3, 5), block_weights=(1.0, 2.0)).fit(X, y)
    out = m.explain(X[:10])
    total = out.features.sum(1) + out.bias
    np.testing.assert_allclose(total, out.score, rtol=1e-10, atol=1e-12)
    assert np.abs(out.residual).max() <= 1e-10 * np.abs(out.score).max()
    F = m.decision_function(X[:10])
    if n_classes == 2:
        np.testing.assert_allclose(out.score, F)
        np.testing.assert_allclose(out.bias, m.intercept_[0])
        flipped = m.explain(X[:10], target=0)
        np.testing.assert_allclose(flipped.features, -out.features)
        np.testing.assert_allclose(flipped.score, -F)
    else:
        np.testing.assert_allclose(out.score, F.max(1))
        np.testing.assert_array_equal(out.target, np.argmax(F, 1))
        per = m.explain(X[:10], target=np.arange(10) % 3)
        np.testing.assert_allclose(per.score, F[np.arange(10), np.arange(10) % 3])
    # eq. 2.72 against the loop reference, sample 0
    row = 0 if n_classes == 2 else out.target[0]
    ref = _terms_ref(name, X[0], m.support_vectors_, m.dual_coef_[row], m.kernel_.dimension_weights())
    np.testing.assert_allclose(out.features[0], ref, rtol=1e-10, atol=1e-12)


def test_uniform_bias_spread_eq_2_73():
    rng = np.random.default_rng(5)
    X = _histograms(rng, 50, 4)
    y = (X[:, 0] > X[:, 1]).astype(int)
    m = KernelSVC(kernel="hik").fit(X, y)
    keep = m.explain(X[:5])
    uni = m.explain(X[:5], bias="uniform")
    np.testing.assert_allclose(uni.features, keep.features + keep.bias[:, None] / 4)
    np.testing.assert_array_equal(uni.bias, 0.0)
    np.testing.assert_allclose(uni.features.sum(1), uni.score, rtol=1e-12)


def test_errors_are_clear():
    rng = np.random.default_rng(6)
    X = _histograms(rng, 30, 4)
    y = (X[:, 0] > 0.5).astype(int)
    with pytest.raises(ValueError, match=r"valid kernels are \['additive_chi2', 'chi2', 'hik', 'linear', 'rbf'\]"):
        KernelSVC(kernel="chi3").fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        KernelSVC().fit(X, np.ones(30))
    with pytest.raises(ValueError, match="non-negative"):
        KernelSVC(kernel="hik").fit(X - 1, y)
    with pytest.raises(ValueError, match="blocks"):
        KernelSVC(blocks=(3, 3)).fit(X, y)
    with pytest.raises(ValueError, match="block_weights"):
        KernelSVC(blocks=(2, 2), block_weights=(1.0, -1.0)).fit(X, y)
    with pytest.raises(ValueError, match="n_candidates"):
        KernelSVC(kernel="rbf", n_candidates=0).fit(X, y)
    with pytest.raises(ValueError, match="C == 0, must be > 0"):
        KernelSVC(C=0).fit(X, y)
    with pytest.raises(NotFittedError):
        KernelSVC().decision_function(X)
    with pytest.raises(ValueError, match="NaN"):
        KernelSVC().fit(np.full((4, 2), np.nan), [0, 1, 0, 1])
    m = KernelSVC().fit(X, y)
    with pytest.raises(ValueError, match="not a class"):
        m.explain(X, target=7)
    with pytest.raises(ValueError, match="valid modes"):
        m.explain(X, bias="spread")
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
    if estimator.kernel not in ("hik", "additive_chi2", "chi2"):
        return {}
    why = "feeds negative data despite the positive_only tag; histogram kernels reject it"
    if isinstance(estimator, KernelOneClassSVM):
        return {"check_outliers_fit_predict": why, "check_outliers_train": why}
    return {"check_class_weight_classifiers": why}


@parametrize_with_checks(
    [KernelSVC(kernel=k) for k in ("linear", "hik", "additive_chi2", "rbf", "chi2")]
    + [KernelOneClassSVM(kernel=k) for k in ("hik", "rbf")],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---- Taylor decomposition (eq. 2.75-2.76, A.5, A.7) ---------------------------------------
def _grad_ref(name, root, SV, coef, sizes, beta, gammas):
    """sum_i coef_i d k(s_i, .)/dx_d at the root, by loops (eq. A.5, A.7 per block)."""
    G = np.zeros(len(root))
    for i, s in enumerate(SV):
        start = 0
        for size, b, g in zip(sizes, beta, gammas):
            blk = range(start, start + size)
            k = b * np.exp(-g * sum(
                (root[d] - s[d]) ** 2 if name == "rbf" else
                ((root[d] - s[d]) ** 2 / (root[d] + s[d]) if root[d] + s[d] > 0 else 0.0) for d in blk))
            for d in blk:
                if name == "rbf":
                    G[d] += coef[i] * k * (2 * s[d] - 2 * root[d]) * g  # eq. A.5, gamma = 1/sigma^2
                else:
                    q = 4 * s[d] ** 2 / (s[d] + root[d]) ** 2 if s[d] + root[d] > 0 else 0.0
                    G[d] += coef[i] * k * g * (q - 1)  # eq. A.7, gamma = sigma
            start += size
    return G


def _bisect_ref(f, x, r, tol=1e-5):
    """Plain bisection for f(g x + (1 - g) r) = 0 on g in [0, 1], one segment at a time."""
    lo, hi = 0.0, 1.0
    flo = f(r)
    for _ in range(200):
        mid = (lo + hi) / 2
        fm = f(mid * x + (1 - mid) * r)
        if abs(fm) <= tol:
            return mid
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return mid


@pytest.fixture(scope="module")
def taylor_data():
    rng = np.random.default_rng(8)
    X = _histograms(rng, 160, 6, zeros=0.2)
    y = (X[:, 0] + X[:, 1] > X[:, 2] + X[:, 3]).astype(int)
    return X, y


@pytest.mark.parametrize("name", ["rbf", "chi2"])
def test_taylor_roots_relevance_and_residual(name, taylor_data):
    X, y = taylor_data
    m = KernelSVC(kernel=name, C=10.0, blocks=(2, 4), block_weights=(1.0, 0.5), n_candidates=None,
                  random_state=0).fit(X, y)
    out = m.explain(X[:12])
    F = m.decision_function(X[:12])
    np.testing.assert_allclose(out.score, F)
    assert out.root_found.all()
    np.testing.assert_array_less(np.abs(m.decision_function(out.root)), 1e-5 + 1e-12)  # |f(root)| <= 1e-5
    np.testing.assert_allclose(out.bias, m.decision_function(out.root), atol=1e-12)
    np.testing.assert_allclose(out.residual, out.score - out.features.sum(1) - out.bias, atol=1e-12)
    k = m.kernel_
    for a in range(3):
        G = _grad_ref(name, out.root[a], m.support_vectors_, m.dual_coef_[0], k.block_sizes, k.block_weights,
                      k.gammas)
        np.testing.assert_allclose(out.features[a], (X[a] - out.root[a]) * G, rtol=1e-9, atol=1e-12)
        # the nearest root over the references: compare with plain bisection on every segment
        refs = m.reference_samples_
        opp = refs[(m.decision_function(refs) > 0) != (F[a] > 0)]
        f = lambda p: m.decision_function(p[None])[0]  # noqa: E731
        dists = [(1 - _bisect_ref(f, X[a], r)) * np.linalg.norm(X[a] - r) for r in opp]
        assert np.linalg.norm(X[a] - out.root[a]) == pytest.approx(min(dists), rel=1e-3, abs=1e-6)


def test_taylor_on_linear_model_is_exact(taylor_data):
    X, y = taylor_data
    m = KernelSVC(kernel="linear", C=1.0, random_state=0).fit(X, y)
    tay = m.explain(X[:10], decomposition="taylor")
    assert np.abs(tay.residual).max() < 1e-10  # first-order Taylor is exact for linear f
    exact_x, exact_root = m.explain(X[:10]), m.explain(tay.root)
    np.testing.assert_allclose(tay.features, exact_x.features - exact_root.features, atol=1e-12)


def test_taylor_with_user_references_and_no_opposite_side(taylor_data):
    X, y = taylor_data
    m = KernelSVC(kernel="rbf", C=10.0, random_state=0).fit(X, y)
    F = m.decision_function(X)
    same_side = X[F > 0][:5]
    out = m.explain(X[F > 0][:3], references=same_side)
    assert not out.root_found.any()  # no reference on the other side: reported, not hidden
    assert np.isfinite(out.features).all() and np.isfinite(out.residual).all()
    with pytest.raises(ValueError, match="references must have shape"):
        m.explain(X[:2], references=np.ones((3, 2)))
    with pytest.raises(ValueError, match="not sum-decomposable"):
        m.explain(X[:2], decomposition="exact")


@pytest.mark.parametrize("name", ["linear", "hik", "rbf"])
def test_bias_modes_conserve(name, taylor_data):
    X, y = taylor_data
    m = KernelSVC(kernel=name, C=1.0, random_state=0).fit(X, y)
    keep = m.explain(X[:5])
    for mode in ("uniform",) + (("weights",) if name == "linear" else ()):
        spread = m.explain(X[:5], bias=mode)
        np.testing.assert_array_equal(spread.bias, 0.0)
        np.testing.assert_allclose(spread.features.sum(1), keep.features.sum(1) + keep.bias, rtol=1e-10)
    if name == "linear":
        w = m.dual_coef_[0] @ m.support_vectors_
        spread = m.explain(X[:5], bias="weights")
        np.testing.assert_allclose(spread.features - keep.features, np.outer(keep.bias, w**2 / (w**2).sum()))
    else:
        with pytest.raises(ValueError, match="needs a linear kernel"):
            m.explain(X[:5], bias="weights")


def test_one_class_exact_inlierness_eq_A9():
    rng = np.random.default_rng(9)
    X = _histograms(rng, 80, 5)
    oc = KernelOneClassSVM(kernel="hik", nu=0.3).fit(X)
    out = oc.explain(X[:6])
    alpha = oc.dual_coef_[0]
    for a in range(6):
        ref = _terms_ref("hik", X[a], oc.support_vectors_, alpha, np.ones(5))
        np.testing.assert_allclose(out.features[a], ref, rtol=1e-10)
    np.testing.assert_allclose(out.bias, -oc.offset_)
    np.testing.assert_allclose(out.features.sum(1) + out.bias, oc.decision_function(X[:6]), rtol=1e-10)
    with pytest.raises(ValueError, match="target must be None"):
        oc.explain(X[:2], target=1)


def test_one_class_rbf_matches_sklearn_and_finds_roots():
    from sklearn.svm import OneClassSVM

    rng = np.random.default_rng(10)
    X = rng.normal(size=(120, 3))
    ours = KernelOneClassSVM(kernel="rbf", gamma=0.4, nu=0.2).fit(X)
    ref = OneClassSVM(kernel="rbf", gamma=0.4, nu=0.2).fit(X)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    out = ours.explain(X[:8])
    assert out.root_found.all() and np.abs(out.bias).max() <= 1e-5


# ---- root search: segments set aside, scores along segments, threads ---------------------
def _illinois_ref(f, fx, fr, tol, max_iter):
    """Illinois on one segment, g in [0, 1] (g = 1 at x), by a plain loop; returns (g, f(g))."""
    a, b, fa, fb, g, fg, side = 0.0, 1.0, fr, fx, 1.0, fx, 0
    if abs(fx) <= tol:
        return g, fg
    for _ in range(max_iter):
        c = b - fb * (b - a) / (fb - fa)
        fc = f(c)
        g, fg = c, fc
        if fc * fb > 0:
            if side == 1:
                fa /= 2
            b, fb, side = c, fc, 1
        else:
            a, fa, b, fb, side = b, fb, c, fc, -1
        if abs(fc) <= tol:
            break
    return g, fg


def _nearest_root_ref(score, X, refs, ref_scores, x_scores, tol, max_iter):
    """Every opposite-side segment searched to the end, then the nearest converged root (else least |f|)."""
    roots, found = [], []
    for a in range(len(X)):
        cands = []
        for b in np.flatnonzero(ref_scores[a] * x_scores[a] < 0):
            f = lambda g: score((g * X[a] + (1 - g) * refs[b])[None], np.array([a]))[0]  # noqa: E731
            g, fg = _illinois_ref(f, x_scores[a], ref_scores[a, b], tol, max_iter)
            cands.append((abs(fg) > tol, (1 - g) * np.linalg.norm(X[a] - refs[b]) if abs(fg) <= tol else abs(fg),
                          g * X[a] + (1 - g) * refs[b]))
        best = min(cands, key=lambda c: (c[0], c[1]))
        roots.append(best[2])
        found.append(not best[0])
    return np.array(roots), np.array(found)


@pytest.mark.parametrize("max_iter", [100, 3, 2])  # with 3 and 2 some searches stop without a root
def test_root_search_sets_aside_only_segments_that_cannot_be_nearest(max_iter):
    from bowlrp.svm.decompose import find_roots

    rng = np.random.default_rng(11)
    X = rng.random((30, 5))
    y = (X[:, 0] + X[:, 1] > X[:, 2] + X[:, 3]).astype(int)
    m = KernelSVC(kernel="chi2", C=10.0, random_state=0).fit(X, y)
    expansion = KernelExpansion(m.kernel_, m.support_vectors_, m.dual_coef_, m.intercept_)
    refs = m.reference_samples_
    calls = []

    def score(P, owners):
        calls.append(len(P))
        return expansion.outputs(P, np)[:, 0]

    Xe = X[:10]
    xs, rs = m.decision_function(Xe), np.tile(m.decision_function(refs), (10, 1))
    roots, root_scores, found = find_roots(score, Xe, refs, rs, xs, tol=1e-5, max_iter=max_iter)
    n_evals = sum(calls)
    calls.clear()
    ref_roots, ref_found = _nearest_root_ref(score, Xe, refs, rs, xs, 1e-5, max_iter)
    np.testing.assert_allclose(roots, ref_roots, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_allclose(root_scores, m.decision_function(roots), atol=1e-12)
    if max_iter == 100:
        assert found.all()
        assert n_evals < 0.6 * sum(calls)  # the reference searches every segment to its end
    if max_iter == 2:
        assert not found.any()  # no search converged: the segment end with the least |f| is kept


@pytest.mark.parametrize("name", ["rbf", "chi2", "hik"])
def test_segment_scores_match_the_expansion_at_the_points(name):
    from bowlrp.svm.segments import SegmentScores

    rng = np.random.default_rng(12)
    X = _histograms(rng, 90, 7)
    y = np.argmax(X[:, :3], axis=1)
    m = KernelSVC(kernel=name, C=5.0, blocks=(3, 4), block_weights=(0.7, 1.6), random_state=0).fit(X, y)
    expansion = KernelExpansion(m.kernel_, m.support_vectors_, m.dual_coef_, m.intercept_)
    refs = m.reference_samples_
    rows, signs = rng.integers(0, 3, 10), np.where(rng.random(10) < 0.5, -1.0, 1.0)
    along = SegmentScores(expansion, X[:10], refs, rows, signs, np)
    owners, ends, g = rng.integers(0, 10, 40), rng.integers(0, len(refs), 40), rng.random(40)
    g[:3] = (0.0, 1.0, 0.5)
    P = g[:, None] * X[:10][owners] + (1 - g[:, None]) * refs[ends]
    direct = m.decision_function(P)[np.arange(40), rows[owners]] * signs[owners]
    np.testing.assert_allclose(along(g, owners, ends), direct, rtol=1e-12, atol=1e-13)


def test_multiclass_taylor_roots_lie_on_the_explained_boundary():
    rng = np.random.default_rng(13)
    X = _histograms(rng, 120, 6)
    y = np.argmax(X[:, :3], axis=1)
    for name in ("rbf", "chi2"):
        m = KernelSVC(kernel=name, C=10.0, blocks=(2, 4), random_state=0).fit(X, y)
        target = np.arange(15) % 3
        out = m.explain(X[:15], target=target)
        F_root = m.decision_function(out.root)[np.arange(15), target]
        np.testing.assert_allclose(out.bias, F_root, atol=1e-12)
        assert np.abs(F_root[out.root_found]).max() <= 1e-5 + 1e-12 and out.root_found.mean() > 0.5


@pytest.mark.parametrize("name", ["rbf", "chi2"])
def test_threaded_chunks_give_the_single_thread_result(name, monkeypatch):
    import bowlrp.svm.kernels as kernels

    rng = np.random.default_rng(14)
    X, Y = _histograms(rng, 70, 40), _histograms(rng, 300, 40)  # several chunks of rows
    coef = rng.normal(size=(70, 300))
    kern = make_kernel(name, (15, 25), (1.0, 2.0), (0.5, 0.2))
    assert kernels._rows(300, 40) < 70
    monkeypatch.setattr(kernels, "n_threads", lambda: 1)
    one = kern.gram(X, Y, np), kern.gradient(X, Y, coef, np)
    monkeypatch.setattr(kernels, "n_threads", lambda: 3)
    three = kern.gram(X, Y, np), kern.gradient(X, Y, coef, np)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)


def test_kernel_threads_follow_omp_num_threads(monkeypatch):
    from bowlrp.svm.kernels import n_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert n_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert n_threads() >= 1


@pytest.mark.parametrize("n", [1, 16, 17])
def test_few_rows_run_their_products_on_one_blas_thread(n, monkeypatch):
    """Up to 16 rows, the decision function's and the exact decomposition's products run on one BLAS
    thread (they are matrix-vector products; a threaded one leaves OpenBLAS's worker spinning); more rows
    keep the configured threads; either way the setting is restored."""
    from threadpoolctl import threadpool_limits

    from test_blas import blas_thread_counts

    rng = np.random.default_rng(0)
    f = KernelExpansion(make_kernel("linear", (6,)), rng.standard_normal((3, 6)), rng.standard_normal((1, 3)),
                        np.array([0.1]))
    seen = []
    for name in ("gram", "dimension_terms"):
        orig = getattr(f.kernel, name)
        monkeypatch.setattr(f.kernel, name, lambda *a, orig=orig: seen.append(max(blas_thread_counts())) or orig(*a))
    X = rng.standard_normal((n, 6))
    with threadpool_limits(2, user_api="blas"):
        before = max(blas_thread_counts())
        exp = explain_expansion(f, X, rows=np.zeros(n, int), signs=np.ones(n), labels=np.ones(n))
        assert max(blas_thread_counts()) == before
    np.testing.assert_allclose(exp.features.sum(1) + exp.bias, exp.score, rtol=1e-12)
    assert seen == [1, 1] if n <= 16 else seen == [before, before]
