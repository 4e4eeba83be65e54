"""The same code on CuPy arrays gives the NumPy results (skipped without a CUDA device)."""

import numpy as np
import pytest

from bowlrp import BagOfWords, KernelSVC
from bowlrp._backend import cupy_available, get_namespace, to_numpy
from bowlrp.rules import get_rule, redistribute_sparse
from bowlrp.svm import make_kernel

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available")]


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.mark.parametrize("name", ["linear", "hik", "additive_chi2", "rbf", "chi2"])
def test_kernels_on_gpu(cp, name):
    rng = np.random.default_rng(0)
    X, Y, coef = rng.random((6, 5)), rng.random((4, 5)), rng.normal(size=(6, 4))
    kern = make_kernel(name, (2, 3), (1.0, 0.5), (1.5, 0.7) if name in ("rbf", "chi2") else None)
    Xg, Yg, cg = cp.asarray(X), cp.asarray(Y), cp.asarray(coef)
    g = kern.gram(Xg, Yg, cp)
    assert get_namespace(g) is cp
    np.testing.assert_allclose(to_numpy(g), kern.gram(X, Y, np), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(kern.gradient(Xg, Yg, cg, cp)), kern.gradient(X, Y, coef, np), rtol=1e-10)
    if kern.sum_decomposable:
        np.testing.assert_allclose(to_numpy(kern.dimension_terms(Xg, Yg, cg, cp)),
                                   kern.dimension_terms(X, Y, coef, np), rtol=1e-12)


@pytest.mark.parametrize("name", ["z", "epsilon", "alphabeta", "abs", "flat"])
def test_rules_on_gpu(cp, name):
    z, cols, R = np.array([1.0, -2.0, 3.0, 0.5]), np.array([0, 0, 2, 3]), np.array([1.0, 2.0, -1.0, 0.5])
    rule = get_rule(name)
    m, reached = redistribute_sparse(rule, cp.asarray(z), cp.asarray(cols), 4, cp.asarray(R), cp)
    m0, r0 = redistribute_sparse(rule, z, cols, 4, R, np)
    np.testing.assert_allclose(to_numpy(m), m0)
    np.testing.assert_array_equal(to_numpy(reached), r0)


def test_bow_forward_backward_on_gpu(cp):
    rng = np.random.default_rng(1)
    sets = [rng.random((int(rng.integers(5, 20)), 8)).astype(np.float32) for _ in range(5)]
    bow = BagOfWords(n_words=4, random_state=0).fit(sets)
    X, trace = bow.forward(sets)
    Xg, trace_g = bow.forward([cp.asarray(s) for s in sets])
    np.testing.assert_allclose(to_numpy(Xg), X, rtol=1e-6)
    R = rng.normal(size=X.shape)
    Rl = bow.relevance(R, trace, "z")
    Rlg = bow.relevance(cp.asarray(R), trace_g, "z")
    for a, b in zip(Rlg, Rl):
        np.testing.assert_allclose(to_numpy(a), b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kernel", ["hik", "rbf"])
def test_svm_decomposition_on_gpu(cp, kernel):
    rng = np.random.default_rng(2)
    X = rng.random((40, 6))
    y = (X[:, 0] > X[:, 1]).astype(int)
    svm = KernelSVC(kernel=kernel, random_state=0).fit(X, y)
    out = svm.explain(X[:5])
    out_g = svm.explain(cp.asarray(X[:5]))
    np.testing.assert_allclose(to_numpy(out_g.features), out.features, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(out_g.score), out.score, rtol=1e-10)
