"""The explained score of a kernel expansion along the segments of the Taylor root search.

The root search (:func:`bowlrp.svm.decompose.find_roots`) evaluates
``s f_r(x~)`` at points ``x~ = g x + (1 - g) r`` between an input ``x`` and a
reference ``r`` (eq. 2.75-2.76).  :class:`SegmentScores` does this for a batch
of segments given as (input, reference, ``g``):

* **rbf**: along a segment the squared distance to a support vector ``s`` is a
  quadratic in ``g``,

      ||x~ - s||^2 = ||r - s||^2 + 2 g (x - r).(r - s) + g^2 ||x - r||^2,

  whose coefficients are inner products of inputs, references and support
  vectors (the Gram terms of the forward pass, eq. A.4), computed once per
  block by matrix products.  A candidate point then costs O(S) per block
  instead of O(S D); the value is exact up to rounding.
* every other kernel (chi2, eq. A.6, is a sum of ``D`` poles in ``g`` per
  support vector and has no such closed form): the points are formed and the
  expansion evaluated on them, chunked and threaded by the kernel, each point
  against only the support vectors of the output it explains (the outputs of
  a one-vs-rest model share the union of their support vectors).
"""

import numpy as np

from .._backend import asarray, to_numpy

__all__ = ["SegmentScores"]

_CHUNK = 1 << 17  # elements per temporary of the rbf evaluation


class SegmentScores:
    """``signs[a] f_{rows[a]}(g x_a + (1 - g) r_b)`` for batches of segments ``(a, b)``.

    Parameters
    ----------
    expansion : KernelExpansion
    X : array (n, D)
        The explained inputs.
    refs : array (m, D)
        The reference samples.
    rows : int array (n,)
        The output explained for each input.
    signs : array (n,)
        +1 or -1 per input.
    xp : module
        NumPy or CuPy, the module of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp import KernelSVC
    >>> from bowlrp.svm.decompose import KernelExpansion
    >>> X = np.random.default_rng(0).random((40, 4)); y = (X[:, 0] > X[:, 1]).astype(int)
    >>> m = KernelSVC(kernel="rbf").fit(X, y)
    >>> ex = KernelExpansion(m.kernel_, m.support_vectors_, m.dual_coef_, m.intercept_)
    >>> along = SegmentScores(ex, X[:2], X[2:5], rows=[0, 0], signs=[1.0, 1.0], xp=np)
    >>> g, owners, ends = np.array([0.25, 0.5]), np.array([0, 1]), np.array([0, 2])
    >>> P = g[:, None] * X[owners] + (1 - g[:, None]) * X[2:5][ends]
    >>> bool(np.allclose(along(g, owners, ends), m.decision_function(P), rtol=1e-12))
    True
    """

    def __init__(self, expansion, X, refs, rows, signs, xp):
        self.expansion, self.X, self.refs, self.xp = expansion, X, refs, xp
        self.rows, self.signs = asarray(rows, xp, dtype=xp.int64), asarray(signs, xp, dtype=xp.float64)
        kern = expansion.kernel
        self.quadratic = kern.name == "rbf"
        if self.quadratic:
            self._gram_terms(kern, *expansion.arrays(xp))
            return
        # per explained output only the support vectors it weighs: one-vs-rest outputs share their union
        dual = np.asarray(to_numpy(expansion.dual_coef), dtype=np.float64)
        SV = np.asarray(to_numpy(expansion.support_vectors), dtype=np.float64)
        self.parts = []
        for r in np.unique(to_numpy(rows)).tolist():
            used = np.flatnonzero(dual[r])
            self.parts.append((r, asarray(SV[used], xp, dtype=xp.float64), asarray(dual[r, used], xp, dtype=xp.float64),
                               float(to_numpy(expansion.intercept)[r])))

    def _gram_terms(self, kern, SV, coef, b):
        """The exponent ``log beta_u - gamma_u ||x~ - s||^2 = A + g (R - X + H1) + g^2 H2`` per block,
        from inner products computed once (all arrays (.., n_blocks, S) or (n, m, n_blocks))."""
        xp, X, refs = self.xp, self.X, self.refs
        A, R, Xs, H1, H2 = [], [], [], [], []
        for sl, gamma in zip(kern.block_slices(), kern.gammas):
            Xu, Ru, Su = X[:, sl], refs[:, sl], SV[:, sl]
            xx, rr, ss = (Xu * Xu).sum(1), (Ru * Ru).sum(1), (Su * Su).sum(1)
            xs, rs, xr = Xu @ Su.T, Ru @ Su.T, Xu @ Ru.T
            A.append(-gamma * (rr[:, None] + ss[None, :] - 2.0 * rs))  # ||r - s||^2
            R.append(-2.0 * gamma * rs)  # (x - r).(r - s) = (x.r - r.r) - x.s + r.s
            Xs.append(-2.0 * gamma * xs)
            H1.append(-2.0 * gamma * (xr - rr[None, :]))
            H2.append(-gamma * (xx[:, None] - 2.0 * xr + rr[None, :]))  # ||x - r||^2
        self.cap = xp.asarray(np.log(kern.block_weights))[:, None]  # where the distance is 0
        self.A = xp.stack(A, axis=1) + self.cap  # (m, U, S), beta_u folded into the exponent
        self.R, self.Xs = xp.stack(R, axis=1), xp.stack(Xs, axis=1)  # (m, U, S), (n, U, S)
        self.H1, self.H2 = xp.stack(H1, axis=2), xp.stack(H2, axis=2)  # (n, m, U)
        self.W = xp.concatenate([coef.T] * len(kern.block_sizes), axis=0)  # (U S, n_outputs)
        self.b = b

    def points(self, g, owners, ends):
        """The points ``g x + (1 - g) r``, shape (k, D)."""
        return g[:, None] * self.X[owners] + (1.0 - g[:, None]) * self.refs[ends]

    def __call__(self, g, owners, ends):
        """The explained score at parameter ``g`` (k,) of the segments from ``refs[ends]`` to ``X[owners]``."""
        xp = self.xp
        rows, signs = self.rows[owners], self.signs[owners]
        if not self.quadratic:
            P, kern = self.points(g, owners, ends), self.expansion.kernel
            if len(self.parts) == 1:
                _, SV, c, b = self.parts[0]
                return (kern.gram(P, SV, xp) @ c + b) * signs
            out = xp.empty(P.shape[0])
            for r, SV, c, b in self.parts:
                sel = xp.nonzero(rows == r)[0]
                if sel.shape[0]:
                    out[sel] = kern.gram(P[sel], SV, xp) @ c + b
            return out * signs
        k, (U, S) = g.shape[0], self.A.shape[1:]
        out = xp.empty((k, self.W.shape[1]))
        step = max(1, _CHUNK // (U * S))
        for lo in range(0, k, step):  # cache-sized chunks of segments
            o, e, gc = owners[lo : lo + step], ends[lo : lo + step], g[lo : lo + step, None, None]
            E = self.R[e] - self.Xs[o]
            E += self.H1[o, e][:, :, None]
            E *= gc
            E += self.A[e]
            E += (gc[:, :, 0] * gc[:, :, 0] * self.H2[o, e])[:, :, None]
            xp.minimum(E, self.cap, out=E)
            xp.exp(E, out=E)
            out[lo : lo + step] = E.reshape(E.shape[0], U * S) @ self.W
        out += self.b
        return out[xp.arange(k), rows] * signs
