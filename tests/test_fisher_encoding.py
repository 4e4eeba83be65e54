"""The encoder's inner loop (bowlrp.encoders.fisher_encoding) against the plain equations of fisher_math."""

import numpy as np
import pytest

from bowlrp.encoders import fisher_encoding as fe
from bowlrp.encoders import fisher_math as fm


def _mixture(K=24, D=5, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.random(K) + 0.1
    return fm.Mixture(means=rng.normal(size=(K, D)) * 3, sigmas=rng.random((K, D)) + 0.3, weights=w / w.sum())


def _dense_truncated(g, threshold):
    """Truncated posteriors of log densities ``g`` by the plain formula (fisher_math.posteriors)."""
    return fm.normalised_posteriors(g.astype(np.float64), threshold, np)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threshold", [1e-6, 1e-3])
def test_kept_posteriors_match_the_dense_formula(dtype, threshold):
    rng = np.random.default_rng(1)
    g = (rng.normal(size=(300, 40)) * 15).astype(dtype)
    g[:5] -= 5000.0  # rows far below 0: exp needs the shift in float64
    g[5:8] += 900.0  # and above
    g[8, :] = 3.0  # all equal: every posterior is 1/K
    want = _dense_truncated(g, threshold)
    window = fe.posterior_window(threshold, g.shape[1], dtype)
    r, c, e = fe._kept(g.copy(), threshold, window, np)
    got = np.zeros_like(want)
    got[r, c] = e
    assert (np.diff(r * g.shape[1] + c) > 0).all()  # row-major order, no duplicates
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-300)
    assert ((got > 0) == (want > 0)).mean() > 0.999  # only posteriors at the threshold itself may differ
    assert (got.max(1) > 0).all()  # the largest posterior of a row is always kept


def test_window_leaves_out_only_what_rounding_hides():
    K = 256
    L = fe.posterior_window(1e-6, K, np.float32)
    assert np.exp(-L) <= 1e-6 and K * np.exp(-L) <= float(np.finfo(np.float32).eps) / 2 * (1 + 1e-9)
    assert fe.posterior_window(0.0, K, np.float32) is None and fe.posterior_window(1e-6, K, np.float64) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("projection", [False, True])
def test_level_moments_match_the_equations(dtype, projection, monkeypatch):
    """Small chunks and blocks: the per-atom moments equal gamma^T Z of the plain functions."""
    monkeypatch.setattr(fe, "_CHUNK_ROWS", {4: 16, 8: 16})
    monkeypatch.setattr(fe, "_BLOCK_ROWS", 40)
    rng = np.random.default_rng(2)
    mix = _mixture(D=5)
    d_in = 7 if projection else 5
    comps = np.linalg.qr(rng.normal(size=(d_in, 5)))[0].T  # orthonormal rows, as PCA's
    mean = rng.normal(size=d_in)
    X = rng.normal(size=(230, d_in)).astype(np.float32) * 3
    sel = np.sort(rng.choice(230, 150, replace=False))
    atom = rng.integers(0, 3, len(sel))
    proj = (mean, comps) if projection else None

    def to_gmm(rows):
        return ((rows - mean) @ comps.T).astype(dtype) if projection else rows.astype(dtype)

    S, order, bounds, Y, G = fe.level_moments(X, sel, atom, 3, to_gmm, mix, 1e-6, True, np, dtype, d_in,
                                              projection=proj)
    Yr = ((X[sel].astype(np.float64) - mean) @ comps.T) if projection else X[sel].astype(np.float64)
    Z = fm.augment(Yr, mix, np)
    gam = fm.posteriors(Z, mix, np, 1e-6)
    want = np.stack([fm.moments(gam[atom == a], Z[atom == a]) for a in range(3)])
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(S, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_array_equal(sel[order], sel[np.argsort(atom, kind="stable")])
    np.testing.assert_allclose(Y, Yr[order], rtol=1e-5, atol=1e-5)
    Gd = G.toarray() if fm.is_sparse(G) else G
    np.testing.assert_allclose(Gd, gam[order], rtol=tol, atol=1e-7)


def test_normalize_and_fisher_vectors_in_place():
    rng = np.random.default_rng(3)
    mix = _mixture(K=4, D=3)
    S = np.abs(rng.normal(size=(2, 4, 7)))
    x = fm.fisher_vectors(S, np.array([5, 0]), mix, True, np)
    out = np.full_like(x, np.nan)
    assert fm.fisher_vectors(S, np.array([5, 0]), mix, True, np, out=out) is out
    np.testing.assert_array_equal(out, x)
    assert (x[1] == 0).all()
    for power, l2 in [(0.5, "global"), (0.3, "block"), (None, "global"), (None, None)]:
        want = np.sign(x) * np.abs(x) ** power if power else x.copy()
        if l2 == "global":
            want = want / np.linalg.norm(want, axis=-1, keepdims=True).clip(1e-300)
        elif l2 == "block":
            wb = want.reshape(2, -1, 4)
            want = (wb / np.linalg.norm(wb, axis=-1, keepdims=True).clip(1e-300)).reshape(want.shape)
        got = fm.normalize(x, power, l2, 4, np)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
        y = x.copy()
        assert fm.normalize(y, power, l2, 4, np, out=y) is y
        np.testing.assert_array_equal(y, got)
