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
temporary exceeds about ``_MAX_ELEMENTS`` elements; on NumPy the chunks of the
exponential kernels run on :func:`n_threads` threads (NumPy's loops release the
GIL).
"""

import os

import numpy as np

from .._backend import to_numpy
from .._pool import run_all

__all__ = ["Kernel", "KERNELS", "make_kernel", "kernel_names", "n_threads"]

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


# --- threads for the chunked loops on NumPy arrays ------------------------------------------
def n_threads():
    """Threads for the NumPy chunk loops of the exponential kernels: the CPUs this process may run on,
    at most ``OMP_NUM_THREADS`` where that is set (as for scikit-learn's own threaded loops).

    Examples
    --------
    >>> n_threads() >= 1
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(n, int(limit)) if limit.isdigit() and int(limit) > 0 else n


def _over_rows(n_rows, step, work, xp):
    """Call ``work(lo, hi)`` on consecutive row ranges covering ``range(n_rows)``.

    On NumPy the ranges go to :func:`n_threads` threads, a few ranges per
    thread so that a thread that gets less CPU on a busy machine takes fewer
    (each ``work`` writes its own rows of a shared output; its loops release
    the GIL); ``work`` chunks its range into at most ``step`` rows itself.
    Small problems and CuPy arrays run inline.
    """
    chunks = -(-n_rows // step)
    threads = min(n_threads(), chunks) if xp is np else 1
    if threads <= 1:
        work(0, n_rows)
        return
    pieces = min(chunks, 4 * threads)
    cuts = [n_rows * t // pieces for t in range(pieces + 1)]
    run_all(work, list(zip(cuts[:-1], cuts[1:])), threads, "kernel")


# --- per-dimension base terms t(x, y) of the sum-decomposable kernels -------------------
def _t_linear(x, y, xp):
    return x * y


def _t_hik(x, y, xp):
    return xp.minimum(x, y)


def _t_additive_chi2(x, y, xp):
    return 2.0 * _harmonic(x, y, xp)


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

    Examples
    --------
    A histogram-intersection kernel over two blocks, the second weighted by
    1/2 (eq. 2.67), and its per-dimension terms (eq. 2.70), which sum to the
    kernel value:

    >>> import numpy as np
    >>> k = make_kernel("hik", (2, 1), block_weights=[1.0, 0.5])
    >>> k.block_slices(), k.dimension_weights()
    ([slice(0, 2, None), slice(2, 3, None)], array([1. , 1. , 0.5]))
    >>> X = np.array([[1.0, 0.0, 2.0]])
    >>> Y = np.array([[0.5, 1.0, 1.0], [2.0, 2.0, 0.0]])
    >>> k.gram(X, Y, np)
    array([[1., 1.]])
    >>> k.dimension_terms(X, Y, np.ones((1, 2)), np)  # coefficient 1 for both rows of Y
    array([[1.5, 0. , 0.5]])
    >>> make_kernel("rbf", (3,), gammas=[0.5]).sum_decomposable  # explained by Taylor instead
    False
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

    def block_slices(self):
        """The slice of each feature block, in order."""
        return list(self._slices())

    def dimension_weights(self, xp=np):
        """``beta_u`` repeated over the dimensions of block ``u``."""
        w = np.repeat(self.block_weights, self.block_sizes)
        return xp.asarray(w)

    def _unit_weights(self):
        """Whether every block weight is 1 (a product with them is then skipped: one pass fewer over D)."""
        return bool(np.all(self.block_weights == 1.0))

    def __repr__(self):
        return f"Kernel({self.name!r}, blocks={self.block_sizes})"

    # --------------------------------------------------------------------- value
    def gram(self, X, Y, xp):
        """``K[a, b] = k(X[a], Y[b])``, shape (n, m), float64."""
        spec = KERNELS[self.name]
        if self.name == "linear":
            return (X if self._unit_weights() else X * self.dimension_weights(xp)) @ Y.T
        if self.sum_decomposable:
            w = self.dimension_weights(xp)
            out = xp.empty((X.shape[0], Y.shape[0]), dtype=xp.float64)
            step = _rows(Y.shape[0], X.shape[1])
            for a in range(0, X.shape[0], step):
                out[a : a + step] = (spec["term"](X[a : a + step, None, :], Y[None, :, :], xp) * w).sum(2)
            return out
        return self._exp_blocks(X, Y, xp, weighted=True)

    def _block_sums(self, A, xp):
        """Sums of ``A`` over each block of its last axis, shape ``A.shape[:-1] + (n_blocks,)``."""
        if xp is np:
            return np.add.reduceat(A, np.cumsum((0,) + self.block_sizes[:-1]), axis=-1)
        return xp.stack([A[..., sl].sum(-1) for sl in self._slices()], axis=-1)

    def _block_distances(self, X, Y, xp):
        """``dist_u(X[a], Y[b])`` per block, shape (n, m, n_blocks) (eq. A.4, A.6)."""
        if self.name == "rbf":  # ||x||^2 + ||y||^2 - 2 x.y by matrix products
            d = xp.stack([(X[:, sl] * X[:, sl]).sum(1)[:, None] + (Y[:, sl] * Y[:, sl]).sum(1)[None, :]
                          - 2.0 * (X[:, sl] @ Y[:, sl].T) for sl in self._slices()], axis=2)
            return xp.maximum(d, 0.0)
        return self._chi2_distances(X, Y, xp)

    def _chi2_distances(self, X, Y, xp, finish=None, blocks=True):
        """chi2 block distances (eq. A.6) as ``sum_d x - 3 sum_d y + 4 sum_d y^2 / (x + y)`` (0/0 = 0).

        Three passes over each (rows, m, D) chunk (add, divide, block sums by a
        matrix product), the rest on (rows, m, n_blocks), where ``finish`` (if
        given) maps the chunk's distances to its part of the output, (rows, m,
        n_blocks) or, with ``blocks=False``, (rows, m).  The smallest normal
        float added to ``Y`` leaves every non-zero sum unchanged and turns 0/0
        into 0 / tiny = 0.
        """
        Yt, Y2 = Y + _TINY, Y * Y
        sx, sy = self._block_sums(X, xp), -3.0 * self._block_sums(Y, xp)
        shape = (X.shape[0], Y.shape[0]) + ((len(self.block_sizes),) if blocks else ())
        out = xp.empty(shape, dtype=xp.float64)
        step, U = _rows(Y.shape[0], X.shape[1]), len(self.block_sizes)
        member = np.zeros((X.shape[1], U))  # block sums as one matrix product: twice as fast as reduceat
        for u, sl in enumerate(self._slices()):
            member[sl, u] = 1.0
        member = xp.asarray(member)

        def work(lo, hi):
            buf = xp.empty((min(step, hi - lo),) + Y.shape, dtype=xp.float64)
            for a in range(lo, hi, step):
                t = buf[: min(step, hi - a)]
                b = a + t.shape[0]
                xp.add(X[a:b, None, :], Yt[None], out=t)
                xp.divide(Y2[None], t, out=t)
                d = (t.reshape(-1, t.shape[2]) @ member).reshape(t.shape[0], t.shape[1], U)
                d *= 4.0
                d += sy[None]
                d += sx[a:b, None, :]
                d = xp.maximum(d, 0.0)
                out[a:b] = d if finish is None else finish(d)

        _over_rows(X.shape[0], step, work, xp)
        return out

    def _exp_blocks(self, X, Y, xp, weighted=False):
        """``exp(-gamma_u dist_u)`` per block, shape (n, m, n_blocks); ``weighted``: summed with
        the weights ``beta_u``, the Gram matrix (n, m) (eq. 2.67)."""
        gammas, beta = xp.asarray(self.gammas), xp.asarray(self.block_weights)

        def finish(d):
            e = xp.exp(-d * gammas)
            return e @ beta if weighted else e

        if self.name == "rbf":
            return finish(self._block_distances(X, Y, xp))
        return self._chi2_distances(X, Y, xp, finish, blocks=not weighted)

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
        if self.name == "linear":
            T = X * (coef @ Y)
            return T if self._unit_weights() else T * self.dimension_weights(xp)
        w = self.dimension_weights(xp)
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
        # weight of support vector b in d f / d dist_u at P[a]: -gamma_u beta_u coef[a, b] k_u(Y[b], P[a])
        C = coef[:, :, None] * self._exp_blocks(P, Y, xp) * xp.asarray(-self.gammas * self.block_weights)
        if self.name == "rbf":  # d dist / d p = 2 (p - s) (eq. A.5): two matrix products per block
            for u, sl in enumerate(self._slices()):
                G[:, sl] = 2.0 * (C[:, :, u].sum(1)[:, None] * P[:, sl] - C[:, :, u] @ Y[:, sl])
            return G
        # chi2: d dist / d p = 1 - 4 s^2 / (p + s)^2 (eq. A.7), 1 at p = s = 0 (the one-sided limit)
        Csum, Yt = C.sum(1), Y + _TINY
        step = _rows(Y.shape[0], P.shape[1])

        def work(lo, hi):
            buf = xp.empty((min(step, hi - lo),) + Y.shape, dtype=xp.float64)
            for a in range(lo, hi, step):
                q = buf[: min(step, hi - a)]
                b = a + q.shape[0]
                xp.add(P[a:b, None, :], Yt[None], out=q)
                xp.divide(Y[None], q, out=q)
                xp.multiply(q, q, out=q)
                for u, sl in enumerate(self._slices()):
                    G[a:b, sl] = Csum[a:b, u, None] - 4.0 * xp.einsum("rs,rsd->rd", C[a:b, :, u], q[:, :, sl])

        _over_rows(P.shape[0], step, work, xp)
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
        n = S.shape[0]
        return to_numpy(self._block_distances(S, S, xp).sum((0, 1))) / max(n * (n - 1), 1)


KERNELS = {
    "linear": {"sum_decomposable": True, "nonnegative_input": False, "term": _t_linear},
    "hik": {"sum_decomposable": True, "nonnegative_input": True, "term": _t_hik},
    "additive_chi2": {"sum_decomposable": True, "nonnegative_input": True, "term": _t_additive_chi2},
    "rbf": {"sum_decomposable": False, "nonnegative_input": False},
    "chi2": {"sum_decomposable": False, "nonnegative_input": True},
}


def kernel_names():
    """The valid kernel names, sorted.

    Examples
    --------
    >>> kernel_names()
    ['additive_chi2', 'chi2', 'hik', 'linear', 'rbf']
    """
    return sorted(KERNELS)


def make_kernel(name, block_sizes, block_weights=None, gammas=None):
    """Build a :class:`Kernel`; unknown names list the valid ones.

    ``block_weights`` default to 1 for every block.

    Examples
    --------
    >>> k = make_kernel("chi2", (4, 4), gammas=[1.0, 2.0])
    >>> k.name, k.block_sizes, k.block_weights
    ('chi2', (4, 4), array([1., 1.]))
    >>> make_kernel("chi3", (4,))
    Traceback (most recent call last):
    ...
    ValueError: unknown kernel 'chi3'; valid kernels are ['additive_chi2', 'chi2', 'hik', 'linear', 'rbf']
    """
    if not isinstance(name, str) or name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; valid kernels are {kernel_names()}")
    if block_weights is None:
        block_weights = np.ones(len(block_sizes))
    return Kernel(name, block_sizes, block_weights, gammas)
