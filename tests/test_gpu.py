"""The same code on CuPy arrays gives the NumPy results (skipped without a CUDA device)."""

import numpy as np
import pytest

from bowlrp import BagOfWords, KernelSVC
from bowlrp._backend import cupy_available, get_namespace, to_numpy
from bowlrp.rules import get_rule
from bowlrp.svm import KERNELS, get_kernel

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available")]


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernels_on_gpu(cp, name):
    rng = np.random.default_rng(0)
    X, Y, w, coef = rng.random((6, 5)), rng.random((4, 5)), rng.random(5), rng.normal(size=(6, 4))
    kern = get_kernel(name)
    g = kern.gram(cp.asarray(X), cp.asarray(Y), cp.asarray(w), cp)
    t = kern.dimension_terms(cp.asarray(X), cp.asarray(Y), cp.asarray(coef), cp.asarray(w), cp)
    assert get_namespace(g, t) is cp
    np.testing.assert_allclose(to_numpy(g), kern.gram(X, Y, w, np), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(t), kern.dimension_terms(X, Y, coef, w, np), rtol=1e-12)


def test_proportional_rule_on_gpu(cp):
    z, cols = np.array([1.0, 2.0, 3.0, 0.0]), np.array([0, 0, 2, 3])
    v, reached = get_rule("z").fractions(cp.asarray(z), cp.asarray(cols), 4, cp)
    v0, r0 = get_rule("z").fractions(z, cols, 4, np)
    np.testing.assert_allclose(to_numpy(v), v0)
    np.testing.assert_array_equal(to_numpy(reached), r0)


def test_bow_forward_backward_on_gpu(cp):
    rng = np.random.default_rng(1)
    sets = [rng.random((int(rng.integers(5, 20)), 8)).astype(np.float32) for _ in range(5)]
    bow = BagOfWords(n_words=4, random_state=0).fit(sets)
    X, trace = bow._forward(sets)
    Xg, trace_g = bow._forward([cp.asarray(s) for s in sets])
    np.testing.assert_allclose(to_numpy(Xg), X, rtol=1e-6)
    R = rng.normal(size=X.shape)
    Rl = bow._relevance(R, trace, "z")
    Rlg = bow._relevance(cp.asarray(R), trace_g, "z")
    for a, b in zip(Rlg, Rl):
        np.testing.assert_allclose(to_numpy(a), b, rtol=1e-6, atol=1e-9)


def test_svm_decomposition_on_gpu(cp):
    rng = np.random.default_rng(2)
    X = rng.random((40, 6))
    y = (X[:, 0] > X[:, 1]).astype(int)
    svm = KernelSVC(kernel="hik").fit(X, y)
    out = svm._explain_output(X[:5])
    out_g = svm._explain_output(cp.asarray(X[:5]))
    np.testing.assert_allclose(to_numpy(out_g.features), out.features, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(out_g.score), out.score, rtol=1e-10)
