"""The Fisher-vector equations as functions (thesis Sec. 4.2, eq. 4.1-4.5).

A diagonal GMM ``lambda = {(pi_k, mu_k, sigma_k)}`` maps a descriptor ``l``
(after the optional PCA: ``y``) to its gradients for the weights, means and
variances,

    Psi_pi_k(l)    = (gamma_k(l) - pi_k) / sqrt(pi_k)                          (4.1)
    Psi_mu_k(l)    = gamma_k(l) / sqrt(pi_k) * (y - mu_k) / sigma_k             (4.2)
    Psi_sigma_k(l) = gamma_k(l) / sqrt(2 pi_k) * ((y - mu_k)^2 / sigma_k^2 - 1)  (4.3)

concatenated as ``[w_1..w_K | mu_{1,1}..mu_{K,D} | sigma_{1,1}..sigma_{K,D}]``
(eq. 4.4, component-major; the weights only with ``include_weights``), averaged
over the descriptors of a cell (eq. 4.9-4.10) and power- and L2-normalised
(eq. 4.5).  The encoder (:class:`bowlrp.FisherVectorEncoder`), its relevance
step and the descriptor-replacement test of :mod:`bowlrp.evaluation` all call
these functions; none writes the equations again.

The averages never form the per-descriptor vectors: with ``Z = [y, y*y, 1]``
one matrix product gives the log densities of all components
(:func:`log_densities`), and a second, ``gamma^T Z``, the sufficient
statistics ``sum gamma y``, ``sum gamma y^2``, ``sum gamma`` from which
:func:`fisher_vectors` forms eq. 4.1-4.3 averaged.  :func:`embed` forms
``Psi(l)`` itself, for the few descriptors a perturbation replaces.

**Truncated posteriors.**  ``gamma_k(l)`` below ``threshold`` is set to 0
(never the largest posterior of a descriptor), as VLFeat's ``vl_fisher_encode``
skips posteriors below 1e-6.  Forward and backward use the same truncated
posteriors, so every rule is exact for the encoding that is computed.  The
messages of a descriptor then live on the few components that carry its
mass, which is what makes the non-linear rules cheap
(:mod:`bowlrp.encoders.fisher_relevance`).
"""

import math
from dataclasses import dataclass

import numpy as np

from .._backend import asarray

# the equations a reader may call to compute Fisher vectors by hand (eq. 4.1-4.5); the chunking,
# sparse-posterior and error-bound helpers the encoder uses are internal to it
__all__ = [
    "Mixture",
    "block_size",
    "augment",
    "log_densities",
    "posteriors",
    "moments",
    "fisher_vectors",
    "embed",
    "normalize",
]

SQRT2 = math.sqrt(2.0)


def block_size(n_components, n_dims, include_weights=True):
    """Length of one Fisher-vector block (eq. 4.4): ``K (1 + 2 D)``, or ``2 K D`` without weights.

    Examples
    --------
    >>> block_size(256, 80), block_size(256, 80, include_weights=False)
    (41216, 40960)
    """
    return n_components * (2 * n_dims + (1 if include_weights else 0))


@dataclass(frozen=True, eq=False)
class Mixture:
    """A diagonal GMM in float64: ``means`` (K, D), ``sigmas`` (K, D) standard deviations, ``weights`` (K,).

    The derived arrays every equation needs are computed once here.
    :meth:`from_gmm` takes a fitted scikit-learn ``GaussianMixture``; a fitted
    :class:`bowlrp.FisherVectorEncoder` holds one per level in ``mixtures_``.

    Examples
    --------
    The Fisher vector of a cell by hand (eq. 4.1-4.4, 4.9), from the
    posteriors' moments, equals the mean of the descriptors' own gradient
    vectors:

    >>> import numpy as np
    >>> mix = Mixture(means=np.array([[-1.0], [1.0]]), sigmas=np.ones((2, 1)), weights=np.array([0.5, 0.5]))
    >>> Y = np.array([[-1.0], [0.0], [2.0]])  # three one-dimensional descriptors
    >>> mix.n_components, mix.n_dims, block_size(2, 1)
    (2, 1, 6)
    >>> Z = augment(Y, mix, np)
    >>> gamma = posteriors(Z, mix, np)
    >>> x = fisher_vectors(moments(gamma, Z)[None], np.array([3]), mix, True, np)
    >>> x.round(4)  # [weights | means | variances]
    array([[-0.0477,  0.0477,  0.2611,  0.1148, -0.2456,  0.1192]])
    >>> np.allclose(x[0], embed(Y, gamma, mix, True, np).mean(axis=0))
    True
    """

    means: np.ndarray
    sigmas: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        mu = np.asarray(self.means, dtype=np.float64)
        sig = np.asarray(self.sigmas, dtype=np.float64)
        w = np.asarray(self.weights, dtype=np.float64)
        var = sig * sig
        centre = w @ mu / w.sum()
        mc = mu - centre
        const = np.log(w) - 0.5 * (np.log(2 * np.pi * var).sum(1) + (mc * mc / var).sum(1))
        derived = {
            "means": mu, "sigmas": sig, "weights": w, "variances": var, "sqrt_weights": np.sqrt(w),
            # the products work on y - centre: the moments (y - centre)^2 cancel less than y^2
            "centre": centre, "centred_means": mc,
            # log(pi_k N(y; mu_k, sigma_k^2)) = [y - c, (y - c)^2, 1] @ density_matrix
            "density_matrix": np.vstack([(mc / var).T, (-0.5 / var).T, const[None, :]]),
            # the same less a constant: the posteriors do not change, float32 rounds the sums less
            "posterior_matrix": np.vstack([(mc / var).T, (-0.5 / var).T, (const - np.median(const))[None, :]]),
        }
        for k, v in derived.items():
            object.__setattr__(self, k, v)

    @property
    def n_components(self):
        return self.means.shape[0]

    @property
    def n_dims(self):
        return self.means.shape[1]

    @classmethod
    def from_gmm(cls, gmm):
        """From a fitted ``sklearn.mixture.GaussianMixture(covariance_type="diag")``."""
        return cls(gmm.means_, np.sqrt(gmm.covariances_), gmm.weights_)


def augment(Y, mixture, xp):
    """``Z = [y - c, (y - c)^2, 1]`` (n, 2D+1) in the dtype of ``Y``: the left factor of both products.

    ``c`` is the mixture's centre ``sum_k pi_k mu_k``; moments about it lose
    fewer digits to cancellation than moments about 0.

    Examples
    --------
    >>> import numpy as np
    >>> mix = Mixture(means=np.array([[-1.0], [1.0]]), sigmas=np.ones((2, 1)), weights=np.array([0.5, 0.5]))
    >>> Y = np.array([[-1.0], [0.0], [2.0]])  # three one-dimensional descriptors
    >>> augment(Y, mix, np)  # the centre is 0 here
    array([[-1.,  1.,  1.],
           [ 0.,  0.,  1.],
           [ 2.,  4.,  1.]])
    """
    n, D = Y.shape
    Z = xp.empty((n, 2 * D + 1), dtype=Y.dtype)
    xp.subtract(Y, asarray(mixture.centre, xp, dtype=Y.dtype), out=Z[:, :D])
    xp.multiply(Z[:, :D], Z[:, :D], out=Z[:, D : 2 * D])
    Z[:, 2 * D] = 1
    return Z


def log_densities(Z, mixture, xp):
    """``log(pi_k N(y_l; mu_k, sigma_k^2))`` (n, K) for ``Z = augment(Y, mixture)``: one matrix product.

    Examples
    --------
    >>> import numpy as np
    >>> mix = Mixture(means=np.array([[-1.0], [1.0]]), sigmas=np.ones((2, 1)), weights=np.array([0.5, 0.5]))
    >>> Y = np.array([[-1.0], [0.0], [2.0]])  # three one-dimensional descriptors
    >>> log_densities(augment(Y, mix, np), mix, np).round(4)
    array([[-1.6121, -3.6121],
           [-2.1121, -2.1121],
           [-6.1121, -2.1121]])
    """
    return Z @ asarray(mixture.density_matrix, xp, dtype=Z.dtype)


def posteriors(Z, mixture, xp, threshold=0.0):
    """Soft assignments ``gamma_k(l)`` (n, K), in the dtype of ``Z`` (the GMM's posteriors).

    Posteriors below ``threshold`` become 0, except each descriptor's
    largest (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> mix = Mixture(means=np.array([[-1.0], [1.0]]), sigmas=np.ones((2, 1)), weights=np.array([0.5, 0.5]))
    >>> Y = np.array([[-1.0], [0.0], [2.0]])  # three one-dimensional descriptors
    >>> Z = augment(Y, mix, np)
    >>> posteriors(Z, mix, np).round(4)
    array([[0.8808, 0.1192],
           [0.5   , 0.5   ],
           [0.018 , 0.982 ]])
    >>> posteriors(Z, mix, np, threshold=0.2).round(4)  # truncated: rows no longer sum to 1
    array([[0.8808, 0.    ],
           [0.5   , 0.5   ],
           [0.    , 0.982 ]])
    """
    return normalised_posteriors(log_densities(Z, mixture, xp), threshold, xp)


def normalised_posteriors(g, threshold, xp):
    """Posteriors (n, K) from log densities ``g`` (overwritten), truncated as in :func:`posteriors`.

    ``g`` may be shifted by any constant (the posteriors do not change).
    """
    g -= g.max(1, keepdims=True)
    xp.exp(g, out=g)
    top = 1.0 / g.sum(1, keepdims=True)  # the largest posterior of each row (exp(0) = 1 before dividing)
    g *= top
    if threshold > 0:
        g[g < xp.minimum(top, threshold)] = 0
    return g


def is_sparse(gamma):
    """Whether ``gamma`` is a SciPy sparse matrix (see :func:`compress`)."""
    return hasattr(gamma, "tocsr")


def compress(gamma, xp, max_density=0.25):
    """Truncated posteriors as a SciPy CSR matrix when they are sparse enough (NumPy only).

    After truncation a descriptor keeps a few of the ``K`` posteriors (about 5
    of 256 for SIFT with the thesis' model), so the moments and the relevance
    step cost ``O(nnz D)`` instead of ``O(n K D)``.  Dense posteriors
    (``threshold=0``) and CuPy arrays are returned as they are.  (The encoder
    forms its sparse posteriors directly, :mod:`bowlrp.encoders.fisher_encoding`.)
    """
    if xp is not np or gamma.size == 0:
        return gamma
    idx = np.flatnonzero(gamma)
    if len(idx) > max_density * gamma.size:
        return gamma
    from scipy.sparse import csr_matrix  # noqa: PLC0415

    rows, cols = np.divmod(idx, gamma.shape[1])
    indptr = np.zeros(gamma.shape[0] + 1, np.intp)
    np.cumsum(np.bincount(rows, minlength=gamma.shape[0]), out=indptr[1:])
    return csr_matrix((gamma.reshape(-1)[idx], cols, indptr), shape=gamma.shape)


def moments(gamma, Z):
    """``gamma^T Z`` (K, 2D+1): ``[sum gamma y | sum gamma y^2 | sum gamma]`` per component (``y`` about
    the centre, see :func:`augment`).

    ``gamma`` dense or a SciPy sparse matrix.

    Examples
    --------
    >>> import numpy as np
    >>> mix = Mixture(means=np.array([[-1.0], [1.0]]), sigmas=np.ones((2, 1)), weights=np.array([0.5, 0.5]))
    >>> Y = np.array([[-1.0], [0.0], [2.0]])  # three one-dimensional descriptors
    >>> Z = augment(Y, mix, np)
    >>> moments(posteriors(Z, mix, np), Z).round(4)  # per component: sum gamma y, sum gamma y^2, sum gamma
    array([[-0.8448,  0.9527,  1.3988],
           [ 1.8448,  4.0473,  1.6012]])
    """
    out = gamma.T @ Z
    return np.asarray(out) if is_sparse(gamma) else out


def fisher_vectors(S, counts, mixture, include_weights, xp, out=None):
    """Unnormalised Fisher vectors (eq. 4.1-4.3 averaged over each cell, eq. 4.9-4.10) from moments.

    Parameters
    ----------
    S : array (n_cells, K, 2D+1), float64
        :func:`moments` (about the mixture's centre) summed over each cell's descriptors.
    counts : array (n_cells,)
        Descriptors per cell ``|L_cell|``; cells without descriptors get zeros.
    out : array (n_cells, block_size), float64, optional
        Written in place of a new array.

    Returns
    -------
    array (n_cells, block_size)

    Examples
    --------
    See :class:`Mixture` for a whole cell; a cell without descriptors is zero:

    >>> import numpy as np
    >>> mix = Mixture(means=np.array([[-1.0], [1.0]]), sigmas=np.ones((2, 1)), weights=np.array([0.5, 0.5]))
    >>> Y = np.array([[-1.0], [0.0], [2.0]])  # three one-dimensional descriptors
    >>> S = moments(posteriors(augment(Y, mix, np), mix, np), augment(Y, mix, np))
    >>> fisher_vectors(np.stack([S, 0 * S]), np.array([3, 0]), mix, False, np).round(4)
    array([[ 0.2611,  0.1148, -0.2456,  0.1192],
           [ 0.    ,  0.    ,  0.    ,  0.    ]])
    """
    K, D = mixture.n_components, mixture.n_dims
    mu, sig, var = (asarray(a, xp) for a in (mixture.centred_means, mixture.sigmas, mixture.variances))
    w, sq = asarray(mixture.weights, xp), asarray(mixture.sqrt_weights, xp)
    N = asarray(counts, xp, dtype=xp.float64)
    n, off = len(N), (K if include_weights else 0)
    # 1 / N per cell; 0 for an empty cell, whose moments are 0 (x = 0 there)
    inv = xp.where(N > 0, 1.0 / xp.where(N > 0, N, 1.0), 0.0)[:, None, None]
    x = xp.empty((n, off + 2 * K * D), dtype=xp.float64) if out is None else out
    xm, xs = x[:, off : off + K * D].reshape(n, K, D), x[:, off + K * D :].reshape(n, K, D)
    S1, S2, S0 = S[..., :D], S[..., D : 2 * D], S[..., 2 * D :]
    # eq. 4.2 averaged: sum gamma (y - mu) / (sigma sqrt(pi) N)
    xp.multiply(mu, S0, out=xm)
    xp.subtract(S1, xm, out=xm)
    xm *= (1.0 / (sig * sq[:, None]))[None]
    xm *= inv
    # eq. 4.3 averaged: sum gamma ((y - mu)^2 / sigma^2 - 1) / (sqrt(2 pi) N), (y - mu)^2 from moments about c
    xp.multiply(2 * mu, S1, out=xs)
    xp.subtract(S2, xs, out=xs)
    xs += (mu * mu)[None] * S0
    xs /= var[None]
    xs -= S0
    xs *= (1.0 / (SQRT2 * sq))[None, :, None]
    xs *= inv
    if include_weights:  # eq. 4.1 averaged
        xp.multiply(N[:, None], w[None], out=x[:, :K])
        xp.subtract(S0[..., 0], x[:, :K], out=x[:, :K])
        x[:, :K] *= (1.0 / sq)[None]
        x[:, :K] *= inv[:, :, 0]
    return x


def embed(Y, gamma, mixture, include_weights, xp):
    """Per-descriptor gradient vectors ``Psi(l)`` (n, block_size) of eq. 4.1-4.4, float64.

    Examples
    --------
    >>> import numpy as np
    >>> mix = Mixture(means=np.array([[-1.0], [1.0]]), sigmas=np.ones((2, 1)), weights=np.array([0.5, 0.5]))
    >>> Y = np.array([[-1.0], [0.0], [2.0]])  # three one-dimensional descriptors
    >>> gamma = posteriors(augment(Y, mix, np), mix, np)
    >>> embed(Y[1:2], gamma[1:2], mix, True, np).round(4)  # y = 0, one sigma from both means: only the mean gradients
    array([[ 0.    ,  0.    ,  0.7071, -0.7071,  0.    ,  0.    ]])
    """
    mu, sig = asarray(mixture.means, xp), asarray(mixture.sigmas, xp)
    w, sq = asarray(mixture.weights, xp), asarray(mixture.sqrt_weights, xp)
    Y = Y.astype(xp.float64)
    g = gamma.astype(xp.float64)
    n = Y.shape[0]
    u = (Y[:, None, :] - mu[None]) / sig[None]
    a = (g / sq)[:, :, None]
    parts = [(g - w) / sq] if include_weights else []
    parts += [(a * u).reshape(n, -1), (a * (u * u - 1.0) / SQRT2).reshape(n, -1)]
    return xp.concatenate(parts, axis=1)


def normalize(x, power, l2, block, xp, out=None):
    """Power and L2 normalisation (eq. 4.5) of vectors ``x`` (..., n_features).

    ``power``: exponent of ``sign(x)|x|^power`` or None; ``l2``: ``"global"``
    (whole vector), ``"block"`` (every ``block`` consecutive dimensions) or
    None.  ``out`` (may be ``x`` itself) receives the result.

    Examples
    --------
    >>> import numpy as np
    >>> normalize(np.array([[16.0, -4.0]]), 0.5, None, 2, np)  # power only
    array([[ 4., -2.]])
    >>> normalize(np.array([[16.0, -9.0]]), 0.5, "global", 2, np)  # then L2
    array([[ 0.8, -0.6]])
    """
    if out is None:
        out = xp.empty(x.shape, dtype=xp.result_type(x.dtype, xp.float32))
    flat_in, flat = x.reshape(-1), out.reshape(-1)
    step = 1 << 16  # elementwise passes over blocks that stay in cache
    tmp = xp.empty(min(step, flat.size), dtype=out.dtype)
    for lo in range(0, flat.size, step):
        src, dst, t = flat_in[lo : lo + step], flat[lo : lo + step], tmp[: min(step, flat.size - lo)]
        if power is None:
            dst[...] = src
            continue
        xp.abs(src, out=t)
        if float(power) == 0.5:
            xp.sqrt(t, out=t)
        else:
            xp.power(t, float(power), out=t)
        xp.copysign(t, src, out=dst)
    if l2 is not None:
        xb = out.reshape(out.shape[:-1] + (-1, block)) if l2 == "block" else out
        nrm = xp.sqrt(xp.einsum("...i,...i->...", xb, xb))[..., None]
        xb /= xp.where(nrm > 0, nrm, 1.0)
    return out


def magnitude_bound(x, S0, counts, mixture, include_weights, xp):
    """An upper bound of ``sum_l |z_ld|`` per cell and Fisher dimension, from the cell statistics.

    With ``u = (y - mu_k) / sigma_k`` and ``Q_k = sum_l gamma_k(l) u^2`` (read
    back from the variance part of the unnormalised vector ``x``, eq. 4.3),
    Cauchy-Schwarz bounds the mean part by ``sqrt(S0_k Q_k) / (sqrt(pi_k) N)``,
    ``|u^2 - 1| <= u^2 + 1`` the variance part by ``(Q_k + S0_k) / (sqrt(2
    pi_k) N)`` and ``|gamma - pi| <= gamma + pi`` the weight part by ``(S0_k +
    N pi_k) / (sqrt(pi_k) N)``; zero for a cell without descriptors.  The
    rules compare their denominators with it (:data:`bowlrp.rules.RTOL`).
    Formed in place in the result, factors per (cell, component) folded
    into one pass each.
    """
    K, D = mixture.n_components, mixture.n_dims
    w = asarray(mixture.weights, xp)
    sq = asarray(mixture.sqrt_weights, xp)
    N = asarray(counts, xp, dtype=xp.float64)
    n, off = len(N), (K if include_weights else 0)
    Ns = xp.where(N > 0, N, 1.0)[:, None]
    inv = xp.where(N > 0, 1.0, 0.0)[:, None] / (sq[None] * Ns)  # 1 / (sqrt(pi_k) N), 0 for an empty cell
    out = xp.empty(x.shape, dtype=xp.float64)
    om, os_ = out[:, off : off + K * D].reshape(n, K, D), out[:, off + K * D :].reshape(n, K, D)
    xp.multiply(x[:, off + K * D :].reshape(n, K, D), (SQRT2 * sq[None] * Ns)[:, :, None], out=os_)
    os_ += S0[:, :, None]
    xp.maximum(os_, 0.0, out=os_)  # Q
    xp.sqrt(os_, out=om)
    om *= (xp.sqrt(S0) * inv)[:, :, None]
    os_ += S0[:, :, None]
    os_ *= (inv / SQRT2)[:, :, None]
    if include_weights:
        xp.multiply(S0 + Ns * w[None], inv, out=out[:, :K])
    return out


def rounding_bound(S, counts, mixture, include_weights, xp, factor=8.0):
    """A bound of the rounding error of :func:`fisher_vectors` (float64) per cell and dimension.

    The variance part is formed from ``S2 - 2 mu S1 + mu^2 S0`` (moments
    about the centre), which cancels when the descriptors lie far from the
    centre compared with the component's width.  With ``sum gamma |y - c| <=
    sqrt(S0 S2)`` the terms are bounded by ``(S2 + 2 |mu| sqrt(S0 S2) + mu^2
    S0) / sigma^2 + S0 = (sqrt(S2) + |mu| sqrt(S0))^2 / sigma^2 + S0``, and
    the mean part's by ``sqrt(S0) (sqrt(S2) + |mu| sqrt(S0)) / sigma``; the
    error is at most ``factor`` machine epsilons of them.
    :func:`bowlrp.encoders.fisher_relevance.level_relevance` counts a column
    sum that is not many times larger than this as zero.
    """
    K, D = mixture.n_components, mixture.n_dims
    mu = xp.abs(asarray(mixture.centred_means, xp))
    sig, var = asarray(mixture.sigmas, xp), asarray(mixture.variances, xp)
    w, sq = asarray(mixture.weights, xp), asarray(mixture.sqrt_weights, xp)
    N = asarray(counts, xp, dtype=xp.float64)
    n, off = len(N), (K if include_weights else 0)
    Ns = xp.where(N > 0, N, 1.0)[:, None]
    eps = factor * np.finfo(np.float64).eps
    r0 = xp.sqrt(xp.maximum(S[..., 2 * D], 0.0))  # sqrt(S0) (n, K)
    inv = eps / (sq[None] * Ns)
    out = xp.empty((n, off + 2 * K * D), dtype=xp.float64)
    em, es = out[:, off : off + K * D].reshape(n, K, D), out[:, off + K * D :].reshape(n, K, D)
    xp.maximum(S[..., D : 2 * D], 0.0, out=es)
    xp.sqrt(es, out=es)
    xp.multiply(mu[None], r0[:, :, None], out=em)
    es += em  # t = sqrt(S2) + |mu| sqrt(S0)
    xp.multiply(es, (1.0 / sig)[None], out=em)
    em *= (r0 * inv)[:, :, None]
    es *= es
    es *= (1.0 / var)[None]
    es += (r0 * r0)[:, :, None]
    es *= (inv / SQRT2)[:, :, None]
    if include_weights:
        xp.multiply(r0 * r0 + N[:, None] * w[None], inv, out=out[:, :K])
    return out


def row_chunks(bounds, width, itemsize=8, budget=16 << 20):
    """``(atom, lo, hi)`` row ranges of at most ``budget`` bytes of ``width`` values each, inside atoms."""
    step = max(1, int(budget // (itemsize * max(1, width))))
    for a in range(len(bounds) - 1):
        for lo in range(int(bounds[a]), int(bounds[a + 1]), step):
            yield a, lo, min(int(bounds[a + 1]), lo + step)


def level_moments(*args, **kwargs):
    """Moments per spatial atom of one level: :func:`bowlrp.encoders.fisher_encoding.level_moments`."""
    from .fisher_encoding import level_moments as impl  # noqa: PLC0415  (that module imports this one)

    return impl(*args, **kwargs)
