"""Kernel functions: value (Gram matrix) and per-dimension terms.

A kernel is *sum-decomposable* when ``k(x, y) = sum_d k_d(x_d, y_d)``
(eq. 2.69).  For those the SVM output splits exactly over input dimensions
(eq. 2.70-2.72); :meth:`Kernel.dimension_terms` computes that split.

Every kernel takes a weight per input dimension, which is how a weighted sum
of one kernel per feature block (eq. 2.67) is expressed for sum-decomposable
kernels: ``sum_u beta_u k(x_u, y_u) = sum_d w_d k_d(x_d, y_d)`` with ``w_d =
beta_u`` for the dimensions ``d`` of block ``u``.

All functions take ``xp`` (NumPy or CuPy, see :mod:`bowlrp._backend`) and work
in chunks so that no temporary exceeds about ``_MAX_ELEMENTS`` elements.
"""

__all__ = ["Kernel", "LinearKernel", "HistogramIntersectionKernel", "AdditiveChi2Kernel", "KERNELS", "get_kernel"]

_MAX_ELEMENTS = 1 << 22  # 4M float64 = 32 MB per temporary


def _chunk(n_other, width):
    """Rows per chunk so that a (rows, n_other, width) temporary stays bounded."""
    return max(1, _MAX_ELEMENTS // max(1, n_other * width))


class Kernel:
    """A kernel on feature vectors.

    Attributes
    ----------
    name : str
        The name used in ``KernelSVC(kernel=name)``.
    sum_decomposable : bool
        Whether ``k(x, y) = sum_d k_d(x_d, y_d)`` (eq. 2.69).
    nonnegative_input : bool
        Whether inputs must be non-negative (histogram kernels).
    """

    name = None
    sum_decomposable = False
    nonnegative_input = False

    def gram(self, X, Y, weights, xp):
        """Return ``K[a, b] = k(X[a], Y[b])`` with per-dimension ``weights``."""
        raise NotImplementedError

    def dimension_terms(self, X, Y, coef, weights, xp):
        """Return ``T[a, d] = sum_b coef[a, b] w_d k_d(Y[b, d], X[a, d])`` (eq. 2.70).

        Only for sum-decomposable kernels; ``T.sum(1) == (gram(X, Y) * coef).sum(1)``.

        Parameters
        ----------
        X : array (n, D)
        Y : array (S, D)
            Support vectors.
        coef : array (n, S)
            Dual coefficients ``alpha_i y_i`` to use for each row of ``X``.
        weights : array (D,)
        """
        raise NotImplementedError

    def _pairwise_sum(self, term, X, Y, weights, xp):
        out = xp.empty((X.shape[0], Y.shape[0]), dtype=xp.float64)
        step = _chunk(Y.shape[0], X.shape[1])
        for a in range(0, X.shape[0], step):
            out[a : a + step] = (term(X[a : a + step, None, :], Y[None, :, :]) * weights).sum(2)
        return out

    def _weighted_terms(self, term, X, Y, coef, weights, xp):
        out = xp.empty(X.shape, dtype=xp.float64)
        step = _chunk(Y.shape[0], X.shape[1])
        for a in range(0, X.shape[0], step):
            t = term(X[a : a + step, None, :], Y[None, :, :])  # (rows, S, D)
            out[a : a + step] = xp.einsum("rs,rsd->rd", coef[a : a + step], t)
        return out * weights

    def __repr__(self):
        return f"{type(self).__name__}()"


class LinearKernel(Kernel):
    """``k(x, y) = sum_d w_d x_d y_d``; relevance ``R_d = x_d w_d`` (eq. A.1)."""

    name = "linear"
    sum_decomposable = True

    def gram(self, X, Y, weights, xp):
        return (X * weights) @ Y.T

    def dimension_terms(self, X, Y, coef, weights, xp):
        return X * (coef @ Y) * weights


class HistogramIntersectionKernel(Kernel):
    """``k(x, y) = sum_d w_d min(x_d, y_d)`` (eq. A.2); relevance eq. A.3."""

    name = "hik"
    sum_decomposable = True
    nonnegative_input = True

    def gram(self, X, Y, weights, xp):
        return self._pairwise_sum(lambda a, b: xp.minimum(a, b), X, Y, weights, xp)

    def dimension_terms(self, X, Y, coef, weights, xp):
        return self._weighted_terms(lambda a, b: xp.minimum(a, b), X, Y, coef, weights, xp)


class AdditiveChi2Kernel(Kernel):
    """``k(x, y) = sum_d w_d 2 x_d y_d / (x_d + y_d)`` with ``0/0 = 0``.

    The positive-definite additive chi2 kernel on histograms (Vedaldi and
    Zisserman); scikit-learn's ``additive_chi2_kernel`` is a different
    (negative, conditionally definite) form.  Sum-decomposable, so its
    relevance is exact (eq. 2.72).
    """

    name = "additive_chi2"
    sum_decomposable = True
    nonnegative_input = True

    @staticmethod
    def _term(xp):
        def term(a, b):
            s = a + b
            return 2.0 * a * b / xp.where(s > 0, s, 1.0)

        return term

    def gram(self, X, Y, weights, xp):
        return self._pairwise_sum(self._term(xp), X, Y, weights, xp)

    def dimension_terms(self, X, Y, coef, weights, xp):
        return self._weighted_terms(self._term(xp), X, Y, coef, weights, xp)


KERNELS = {k.name: k for k in (LinearKernel, HistogramIntersectionKernel, AdditiveChi2Kernel)}


def get_kernel(name):
    """Return the kernel object for ``name``; unknown names list the valid ones."""
    if isinstance(name, Kernel):
        return name
    if isinstance(name, str) and name in KERNELS:
        return KERNELS[name]()
    raise ValueError(f"unknown kernel {name!r}; valid kernels are {sorted(KERNELS)}")
