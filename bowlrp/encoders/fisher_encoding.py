"""The encoder's inner loop: truncated posteriors and moments of one level, chunk by chunk (eq. 4.1-4.3, 4.9).

:func:`level_moments` turns the descriptors of one level into the per-atom
moments ``S = gamma^T [y - c, (y - c)^2, 1]`` from which
:func:`bowlrp.encoders.fisher_math.fisher_vectors` forms the Fisher vectors
(eq. 4.1-4.3 averaged, 4.9), with the equations of
:mod:`bowlrp.encoders.fisher_math`.  Per chunk of rows there are three matrix
products -- the PCA projection, the log densities ``Z @ density_matrix`` of
all components and the moments ``gamma^T Z`` -- and what is not a product is
kept to few passes:

* the chunks are a few hundred rows, so the ``(rows, K)`` log densities stay
  in a core's cache between passes, and every buffer is allocated once per
  level and written with ``out=``;
* the PCA mean and the mixture's centre are subtracted in one pass before the
  projection (for orthonormal components ``W (l - m - W^T c) = y - c``);
* NumPy, ``posterior_threshold > 0``: the posteriors are truncated (about 5
  of 256 kept per SIFT descriptor with the thesis' model), so the moments are
  a sparse product, ``O(nnz D)``, in float64.  The kept posteriors are found
  with one comparison and one ``flatnonzero`` of the chunk (``nonzero`` of a
  2-D array is ten times slower).  In float32 only the entries within
  :func:`posterior_window` of a row's largest log density are exponentiated;
* CuPy or ``posterior_threshold = 0``: dense posteriors, a dense product.
"""

import math

import numpy as np

from .._backend import asarray
from . import fisher_math
from .fisher_math import is_sparse, moments

__all__ = []  # the encoder's own; the equations are in fisher_math

#: Rows per chunk by item size: a chunk's log densities and left factors (about 1 MiB) stay in a core's
#: L2 cache between the passes, and the products run at 90-95% of OpenBLAS' large-GEMM rate (measured
#: with K=256, D=80 on AMD EPYC, one thread; 512 float32 rows were 15% slower in all).
_CHUNK_ROWS = {4: 256, 8: 256}
#: Rows per sparse product of the moments (SciPy's overhead, tens of microseconds, is paid once per block).
_BLOCK_ROWS = 2048
#: exp(g) of a log density ``g`` above this (in magnitude) would leave float64's normal range.
_EXP_RANGE = 600.0
#: Posteriors of the trace are stored sparse below this share of the entries (else dense).
_MAX_DENSITY = 0.25


def posterior_window(threshold, n_components, dtype):
    """Log-density distance below a row's largest beyond which a posterior is dropped unevaluated, or None.

    An entry more than ``L`` below the largest has a posterior below ``e^-L``:
    it is truncated when ``e^-L <= threshold``, and all of them together change
    the normalisation ``sum_k exp(g_k - max)`` (at least 1) by less than half a
    rounding unit of ``dtype`` when ``K e^-L <= eps / 2``.  Only for float32
    (``L`` about 22, some 15 of 256 entries with the thesis' model): in float64
    the window holds about 55 entries, and exponentiating all is cheaper.

    Examples
    --------
    >>> import numpy as np
    >>> round(posterior_window(1e-6, 256, np.float32), 1), posterior_window(1e-6, 256, np.float64)
    (22.2, None)
    """
    if threshold <= 0 or np.dtype(dtype) != np.float32:
        return None
    eps = float(np.finfo(np.float32).eps)
    return max(-math.log(threshold), math.log(2.0 * n_components / eps))


def _kept(g, threshold, window, xp):
    """``(rows, cols, gamma)`` of the truncated posteriors (float64; ``gamma_k(l)`` of eq. 4.1-4.3) from the
    log densities ``g`` (m, K), in row-major order; ``g`` is overwritten.

    A posterior ``e_k / s`` (``e_k = exp(g_k - shift)``, ``s = sum_k e_k``) is
    kept when it is at least ``min(threshold, max_k e_k / s)``, i.e. when
    ``e_k >= min(max_k e_k, threshold s)``: the largest always, as in
    :func:`bowlrp.encoders.fisher_math.posteriors`.  The posteriors do not
    depend on the shift: it is the row's largest log density in float32, and
    in float64 only where ``exp`` would leave the normal range (a pass saved).
    """
    m, K = g.shape
    mx = g.max(1)
    if window is None:  # all entries exponentiated
        far = xp.abs(mx) > _EXP_RANGE
        if bool(far.any()):
            g[far] -= mx[far][:, None]
        top = xp.exp(xp.where(far, 0.0, mx))  # the largest e_k of each row
        xp.exp(g, out=g)
        s = g.sum(1)
        idx = xp.flatnonzero(g >= xp.minimum(top, threshold * s)[:, None])
        rows = idx // K
        e = g.reshape(-1)[idx].astype(xp.float64)
    else:  # only the entries within the window
        idx = xp.flatnonzero(g >= (mx - window)[:, None])
        rows = idx // K
        e = g.reshape(-1)[idx]
        e -= mx[rows]
        xp.exp(e, out=e)
        e = e.astype(xp.float64)
        s = xp.bincount(rows, weights=e, minlength=m)
        keep = xp.flatnonzero(e >= xp.minimum(1.0, threshold * s)[rows])
        idx, rows, e = idx[keep], rows[keep], e[keep]
    e /= s[rows]
    return rows, idx - rows * K, e


def _chunks(bounds, step):
    """``(atom, lo, hi)``: row ranges inside the atoms of ``bounds``, at most ``step`` rows of about equal size."""
    for a in range(len(bounds) - 1):
        lo, hi = int(bounds[a]), int(bounds[a + 1])
        parts = max(1, -(-(hi - lo) // step))
        cuts = np.linspace(lo, hi, parts + 1).round().astype(int)
        for b in range(parts):
            if cuts[b + 1] > cuts[b]:
                yield a, int(cuts[b]), int(cuts[b + 1])


def _stack_rows(parts, empty_shape, dt, xp):
    """Row-wise concatenation of posterior chunks (dense arrays or SciPy sparse matrices)."""
    if not parts:
        return xp.zeros(empty_shape, dtype=dt)
    if any(is_sparse(p) for p in parts):
        from scipy.sparse import csr_matrix, vstack  # noqa: PLC0415

        return vstack([p if is_sparse(p) else csr_matrix(p) for p in parts], format="csr")
    return xp.concatenate(parts) if len(parts) > 1 else parts[0]


class _Factors:
    """The left factors of one level's products, in buffers reused by every chunk.

    ``fill(rows, off)`` writes ``Y - c`` (m, D) and ``Z = [y - c, (y - c)^2,
    1]`` (:func:`bowlrp.encoders.fisher_math.augment`) of ``m <= inner`` rows
    in ``dt``, and ``Z`` in float64 when ``exact`` (the moments' factor, rows
    ``off:off + m`` of a buffer of ``outer`` rows, for one sparse product per
    block).  ``projection`` is ``(mean, components)`` of the PCA or None.
    """

    def __init__(self, mixture, projection, d_in, inner, outer, dt, exact, xp):
        D = mixture.n_dims
        c = np.asarray(mixture.centre, dtype=np.float64)
        if projection is None:
            self.W, shift = None, c
        else:  # W (l - mean - W^T c) = W (l - mean) - c for orthonormal rows of W
            mean, comps = (np.asarray(a, dtype=np.float64) for a in projection)
            self.W = asarray(comps.T, xp, dtype=dt)
            shift = mean + comps.T @ c
        self.shift = asarray(shift, xp, dtype=dt)
        self.C = xp.empty((inner, d_in), dtype=dt) if projection is not None else None
        self.Y = xp.empty((inner, D), dtype=dt)
        self.Y2 = xp.empty((inner, D), dtype=dt)
        self.Z64 = xp.empty((outer, 2 * D + 1), dtype=xp.float64) if exact or dt == xp.float64 else None
        self.Z = self.Z64 if dt == xp.float64 else xp.empty((inner, 2 * D + 1), dtype=dt)
        for z in (self.Z, self.Z64):
            if z is not None:
                z[:, 2 * D] = 1
        self.D, self.xp, self.outer = D, xp, dt == xp.float64

    def fill(self, rows, off=0):
        """The factors ``(Y - c, Z, Z64)`` of ``rows`` (m, d_in)."""
        xp, m, D = self.xp, rows.shape[0], self.D
        Y = self.Y[:m]
        Z = self.Z[off : off + m] if self.outer else self.Z[:m]
        if self.W is None:
            xp.subtract(rows, self.shift, out=Y)
        else:
            C = self.C[:m]
            xp.subtract(rows, self.shift, out=C)
            xp.matmul(C, self.W, out=Y)
        xp.multiply(Y, Y, out=self.Y2[:m])
        Z[:, :D] = Y  # whole-row copies: elementwise passes over a strided (m, D) block are many times slower
        Z[:, D : 2 * D] = self.Y2[:m]
        if self.Z64 is None or self.Z64 is self.Z:
            return Y, Z, Z
        Z64 = self.Z64[off : off + m]
        Z64[...] = Z
        return Y, Z, Z64


def level_moments(D, sel, atom, n_atoms, to_gmm, mixture, threshold, keep, xp, dt, width_in, keep_y=True,
                  projection=None):
    """Moments per spatial atom of one level's descriptors, in chunks of bounded memory.

    Parameters
    ----------
    D : array (n_all, d_in)
        An image's descriptors; ``sel`` (n,) the rows of this level, ``atom``
        (n,) their atoms (:func:`bowlrp.encoders.pyramid.pyramid_atoms`).
    to_gmm : callable
        Rows of ``D`` -> the descriptors the GMM sees, in ``dt``: the PCA
        projection, or the identity (used only without ``projection``).
    keep : bool
        Also return the posteriors (and, with ``keep_y``, the projected
        descriptors): the trace of the relevance step.
    width_in : int
        Descriptor dimension ``d_in``.
    projection : (mean, components) or None
        The PCA as arrays (the faster path: centring and projection in
        buffers); None applies ``to_gmm``.

    Returns
    -------
    S : array (n_atoms, K, 2D+1), float64
        :func:`bowlrp.encoders.fisher_math.moments` per atom.  With truncated
        posteriors (``threshold > 0``) the product is float64 (sparse on NumPy,
        dense on CuPy): moments about the centre cancel in the variance part
        (eq. 4.3), and float32 sums lost up to 1e-4 of the encoding there;
        without truncation it is in ``dt``.
    order, bounds : arrays
        This level's rows sorted by atom, and each atom's range in that order.
    Y, G : arrays (n, D) and (n, K) (``G`` possibly sparse), or None
        In atom order (only with ``keep``).
    """
    K, Dp = mixture.n_components, mixture.n_dims
    sel, atom = np.asarray(sel), np.asarray(atom)
    order = np.argsort(atom, kind="stable")
    bounds = np.searchsorted(atom[order], np.arange(n_atoms + 1))
    rows_np = sel[order]
    n = len(rows_np)
    first = int(rows_np[0]) if n else 0
    contiguous = n > 0 and int(rows_np[-1]) - first == n - 1 and bool((np.diff(rows_np) == 1).all())
    rows_all = None if contiguous else xp.asarray(rows_np)
    step = min(_CHUNK_ROWS.get(np.dtype(dt).itemsize, 256), max(n, 1))
    outer = min(_BLOCK_ROWS, max(n, 1))
    if projection is None and to_gmm is not None:
        width_in = Dp  # the buffers hold what to_gmm returns; centring comes after it
    fac = _Factors(mixture, projection, width_in, step, outer, dt, threshold > 0, xp)
    P = asarray(mixture.posterior_matrix, xp, dtype=dt)
    window = posterior_window(threshold, K, dt)
    g_buf = xp.empty((step, K), dtype=dt)
    Y_all = xp.empty((n, Dp), dtype=dt) if keep and keep_y else None
    G_parts = []
    S = xp.zeros((n_atoms, K, 2 * Dp + 1), dtype=xp.float64)
    c = asarray(mixture.centre, xp, dtype=dt)
    for a, blo, bhi in _chunks(bounds, outer):  # a block: one sparse product
        pairs = []
        for _, lo, hi in _chunks(np.array([blo, bhi]), step):  # a chunk: the products in cache
            m, off = hi - lo, lo - blo
            rows = D[first + lo : first + hi] if contiguous else D[rows_all[lo:hi]]
            Yc, Z, Z64 = fac.fill(rows if projection is not None else to_gmm(rows), off)
            g = xp.matmul(Z, P, out=g_buf[:m])
            if Y_all is not None:
                xp.add(Yc, c, out=Y_all[lo:hi])
            if threshold == 0:
                G = fisher_math.normalised_posteriors(g, threshold, xp)
                S[a] += moments(G, Z)
                if keep:
                    G_parts.append(G.copy())
                continue
            r, comp, e = _kept(g, threshold, window, xp)
            if xp is not np:  # dense on the device: the same posteriors, a dense product
                G = xp.zeros((m, K), dtype=xp.float64)
                G[r, comp] = e
                S[a] += moments(G, Z64)
                if keep:
                    G_parts.append(G.astype(dt))
                continue
            pairs.append((r + off, comp, e))
        if not pairs:
            continue
        from scipy.sparse import csc_matrix, csr_matrix  # noqa: PLC0415

        r, comp, e = (np.concatenate(p) for p in zip(*pairs))
        comp, M = comp.astype(np.int32), bhi - blo
        indptr = np.zeros(M + 1, np.int32)
        np.cumsum(np.bincount(r, minlength=M), out=indptr[1:])
        S[a] += csc_matrix((e, comp, indptr), shape=(K, M)) @ fac.Z64[:M]  # gamma^T Z, float64
        if keep:
            G = csr_matrix((e.astype(dt), comp, indptr), shape=(M, K))
            G_parts.append(G if len(e) <= _MAX_DENSITY * M * K else G.toarray())
    G_all = _stack_rows(G_parts, (0, K), dt, xp) if keep else None
    return S, order, bounds, Y_all, G_all
