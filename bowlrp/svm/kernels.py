"""Kernels on feature vectors: value, per-dimension terms, gradient.

A kernel here is a weighted sum of one base kernel per feature block
(eq. 2.67): ``k(x, y) = sum_u beta_u k_u(x_u, y_u)``.  The base kernels are

* sum-decomposable (eq. 2.69) ``k_u(x, y) = sum_d t(x_d, y_d)``: ``linear``
  (``x y``, eq. A.1), ``hik`` (``min(x, y)``, eq. A.2) and ``additive_chi2``
  (``2 x y / (x + y)``, 0/0 = 0).  Their SVM output splits exactly over input
  dimensions (eq. 2.70-2.72): :meth:`Kernel.dimension_terms`.
* exponential ``k_u(x, y) = exp(-gamma_u dist_u(x, y))``: ``rbf`` with the
  squared Euclidean distance (eq. A.4, ``gamma = 1 / sigma^2``) and ``chi2``
  with ``dist = sum_d (x_d - y_d)^2 / (x_d + y_d)``, 0/0 = 0 (eq. A.6,
  ``gamma = sigma``).  They are explained by Taylor decomposition and need
  :meth:`Kernel.gradient` (eq. A.5, A.7).

Every method takes ``xp`` (NumPy or CuPy) and works in chunks so that no
temporary exceeds about ``_MAX_ELEMENTS`` elements.
"""

import numpy as np

__all__ = ["Kernel", "KERNELS", "make_kernel", "kernel_names"]

_MAX_ELEMENTS = 1 << 18  # 256K float64 = 2 MB per temporary: cache-sized chunks run 2-3x faster than 32 MB ones


def _rows(n_other, width):
    """Rows per chunk so that a (rows, n_other, width) temporary stays bounded."""
    return max(1, _MAX_ELEMENTS // max(1, n_other * width))


_TINY = np.finfo(np.float64).tiny


def _chi2_div(num, den, xp):
    """num / den with 0/0 = 0 for the chi2 kernels (den >= 0)."""
    return num / xp.where(den > 0, den, 1.0)


def _harmonic(x, y, xp):
    """``x y / (x + y)`` with 0/0 = 0 for non-negative inputs, in one pass: adding
    the smallest normal float leaves every non-zero sum unchanged."""
    return x * y / (x + y + _TINY)


# --- per-dimension base terms t(x, y) of the sum-decomposable kernels -------------------
def _t_linear(x, y, xp):
    return x * y


def _t_hik(x, y, xp):
    return xp.minimum(x, y)


def _t_additive_chi2(x, y, xp):
    return 2.0 * _harmonic(x, y, xp)


# --- per-dimension distance terms of the exponential kernels --------------------------------
def _dd_rbf(p, s, xp):
    """d dist / d p_d for rbf: 2 (p - s)."""
    return 2.0 * (p - s)


def _dd_chi2(p, s, xp):
    """d dist / d p_d for chi2: 1 - 4 s^2 / (p + s)^2 (eq. A.7); at p = s = 0 the
    one-sided derivative for non-negative inputs, 1."""
    den = (p + s) ** 2
    return 1.0 - 4.0 * _chi2_div(s * s, den, xp)


class Kernel:
    """A fitted kernel: base kernel, feature blocks, block weights and widths.

    Parameters
    ----------
    name : str
        One of :data:`KERNELS`.
    block_sizes : tuple of int
        Sizes of the consecutive feature blocks.
    block_weights : array of shape (n_blocks,)
        ``beta_u`` of eq. 2.67.
    gammas : array of shape (n_blocks,) or None
        ``gamma_u`` of the exponential kernels.
    """

    def __init__(self, name, block_sizes, block_weights, gammas=None):
        if name not in KERNELS:
            raise ValueError(f"unknown kernel {name!r}; valid kernels are {kernel_names()}")
        self.name = name
        self.block_sizes = tuple(int(b) for b in block_sizes)
        self.block_weights = np.asarray(block_weights, dtype=np.float64)
        self.gammas = None if gammas is None else np.asarray(gammas, dtype=np.float64)
        self.sum_decomposable = KERNELS[name]["sum_decomposable"]
        self.nonnegative_input = KERNELS[name]["nonnegative_input"]
        if not self.sum_decomposable and (self.gammas is None or self.gammas.shape != self.block_weights.shape):
            raise ValueError(f"the {name!r} kernel needs one gamma per block")

    # ------------------------------------------------------------------ helpers
    def _slices(self):
        start = 0
        for size in self.block_sizes:
            yield slice(start, start + size)
            start += size

    def dimension_weights(self, xp=np):
        """``beta_u`` repeated over the dimensions of block ``u``."""
        w = np.repeat(self.block_weights, self.block_sizes)
        return xp.asarray(w)

    def __repr__(self):
        return f"Kernel({self.name!r}, blocks={self.block_sizes})"

    # --------------------------------------------------------------------- value
    def gram(self, X, Y, xp):
        """``K[a, b] = k(X[a], Y[b])``, shape (n, m), float64."""
        spec = KERNELS[self.name]
        if self.name == "linear":
            return (X * self.dimension_weights(xp)) @ Y.T
        if self.sum_decomposable:
            w = self.dimension_weights(xp)
            out = xp.empty((X.shape[0], Y.shape[0]), dtype=xp.float64)
            step = _rows(Y.shape[0], X.shape[1])
            for a in range(0, X.shape[0], step):
                out[a : a + step] = (spec["term"](X[a : a + step, None, :], Y[None, :, :], xp) * w).sum(2)
            return out
        return self._exp_blocks(X, Y, xp) @ xp.asarray(self.block_weights)

    def _distances(self, X, Y, sl, xp):
        """Block distance ``dist_u(X[a], Y[b])``, shape (n, m)."""
        Xu, Yu = X[:, sl], Y[:, sl]
        if self.name == "rbf":  # ||x||^2 + ||y||^2 - 2 x.y by matrix products
            d = (Xu * Xu).sum(1)[:, None] + (Yu * Yu).sum(1)[None, :] - 2.0 * (Xu @ Yu.T)
            return xp.maximum(d, 0.0)
        # sum_d (x - y)^2 / (x + y) = sum_d x + sum_d y - 4 sum_d x y / (x + y)
        out = Xu.sum(1)[:, None] + Yu.sum(1)[None, :]
        step = _rows(Y.shape[0], Xu.shape[1])
        for a in range(0, X.shape[0], step):
            out[a : a + step] -= 4.0 * _harmonic(Xu[a : a + step, None, :], Yu[None, :, :], xp).sum(2)
        return xp.maximum(out, 0.0)

    def _exp_blocks(self, X, Y, xp):
        """``exp(-gamma_u dist_u)`` per block, shape (n, m, n_blocks)."""
        return xp.stack(
            [xp.exp(-g * self._distances(X, Y, sl, xp)) for g, sl in zip(self.gammas, self._slices())], axis=2
        )

    # ------------------------------------------------------- exact decomposition
    def dimension_terms(self, X, Y, coef, xp):
        """``T[a, d] = sum_b coef[a, b] beta_u(d) t(Y[b, d], X[a, d])`` (eq. 2.70, A.1, A.3).

        Only for sum-decomposable kernels; ``T.sum(1) == (gram(X, Y) * coef).sum(1)``.

        Parameters
        ----------
        X : array (n, D)
        Y : array (S, D)
            Support vectors.
        coef : array (n, S)
            Dual coefficients ``alpha_i y_i`` to use for each row of ``X``.
        """
        if not self.sum_decomposable:
            raise ValueError(f"the {self.name!r} kernel is not sum-decomposable; use a Taylor decomposition")
        w = self.dimension_weights(xp)
        if self.name == "linear":
            return X * (coef @ Y) * w
        term = KERNELS[self.name]["term"]
        out = xp.empty(X.shape, dtype=xp.float64)
        step = _rows(Y.shape[0], X.shape[1])
        for a in range(0, X.shape[0], step):
            t = term(X[a : a + step, None, :], Y[None, :, :], xp)  # (rows, S, D)
            out[a : a + step] = xp.einsum("rs,rsd->rd", coef[a : a + step], t)
        return out * w

    # ------------------------------------------------------------------ gradient
    def gradient(self, P, Y, coef, xp):
        """``G[a, d] = d/dp_d sum_b coef[a, b] k(Y[b], p) at p = P[a]`` (eq. A.5, A.7).

        Parameters
        ----------
        P : array (n, D)
            Points at which to differentiate.
        Y : array (S, D)
        coef : array (n, S)
        """
        w = self.dimension_weights(xp)
        if self.sum_decomposable:
            if self.name == "linear":
                return (coef @ Y) * w
            deriv = {"hik": lambda p, s: (p < s).astype(xp.float64),
                     "additive_chi2": lambda p, s: 2.0 * _chi2_div(s * s, (p + s) ** 2, xp)}[self.name]
            return self._weighted_sum(deriv, P, Y, coef, xp) * w
        G = xp.empty(P.shape, dtype=xp.float64)
        blocks = self._exp_blocks(P, Y, xp)  # (n, S, U)
        dd = {"rbf": _dd_rbf, "chi2": _dd_chi2}[self.name]
        for u, (g, sl) in enumerate(zip(self.gammas, self._slices())):
            c = coef * blocks[:, :, u] * (-g * self.block_weights[u])  # (n, S)
            G[:, sl] = self._weighted_sum(lambda p, s: dd(p, s, xp), P[:, sl], Y[:, sl], c, xp)
        return G

    def _weighted_sum(self, f, P, Y, coef, xp):
        """``out[a, d] = sum_b coef[a, b] f(P[a, d], Y[b, d])`` in bounded chunks."""
        out = xp.empty(P.shape, dtype=xp.float64)
        step = _rows(Y.shape[0], P.shape[1])
        for a in range(0, P.shape[0], step):
            t = f(P[a : a + step, None, :], Y[None, :, :])
            out[a : a + step] = xp.einsum("rs,rsd->rd", coef[a : a + step], t)
        return out

    def mean_distances(self, X, xp=np, max_samples=500, random_state=0):
        """Mean block distances over pairs of rows of ``X`` (the width heuristic)."""
        rng = np.random.default_rng(random_state)
        idx = rng.choice(X.shape[0], min(X.shape[0], max_samples), replace=False)
        S = X[xp.asarray(idx)] if xp is not np else X[idx]
        means = []
        for sl in self._slices():
            d = self._distances(S, S, sl, xp)
            n = d.shape[0]
            means.append(float(d.sum()) / max(n * (n - 1), 1))
        return np.array(means)


KERNELS = {
    "linear": {"sum_decomposable": True, "nonnegative_input": False, "term": _t_linear},
    "hik": {"sum_decomposable": True, "nonnegative_input": True, "term": _t_hik},
    "additive_chi2": {"sum_decomposable": True, "nonnegative_input": True, "term": _t_additive_chi2},
    "rbf": {"sum_decomposable": False, "nonnegative_input": False},
    "chi2": {"sum_decomposable": False, "nonnegative_input": True},
}


def kernel_names():
    """The valid kernel names, sorted."""
    return sorted(KERNELS)


def make_kernel(name, block_sizes, block_weights=None, gammas=None):
    """Build a :class:`Kernel`; unknown names list the valid ones."""
    if not isinstance(name, str) or name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; valid kernels are {kernel_names()}")
    if block_weights is None:
        block_weights = np.ones(len(block_sizes))
    return Kernel(name, block_sizes, block_weights, gammas)
