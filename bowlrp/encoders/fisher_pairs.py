"""The messages of the (descriptor, component) pairs of a Fisher-vector level (thesis eq. 4.1-4.3, 4.9, D.3).

The alpha-beta, magnitude and flat rules of
:func:`bowlrp.encoders.fisher_relevance.level_relevance` need ``phi(z_ld)``
elementwise.  ``z_ld`` is zero wherever the (truncated) posterior
``gamma_k(l)`` is, so the mean and variance messages are formed only for
the pairs with ``gamma_k(l) > 0`` (:class:`Pairs`), chunk by chunk, and
reduced to per-atom column sums (``*_sums``) and per-descriptor-dimension
messages (``*_messages``).  A chunk's temporaries live in buffers reused
across chunks (:class:`~bowlrp.encoders._buffers.Scratch`).

The sign rules (alpha-beta) and the magnitude rule read the pairs as
standardised scores ``u = (y - mu_k) / sigma_k`` with the weight ``w =
gamma_k / sqrt(pi_k)`` of the pair: the mean message is ``w u`` and the
variance message ``w (u^2 - 1) / sqrt 2`` (eq. 4.2, 4.3), and since ``w > 0``
their positive and negative parts and magnitudes are ``w`` times those of
``u`` and ``u^2 - 1``.  The weights enter
as the entries of the sparse matrices that sum pairs per component or per
descriptor, so no message matrix is formed; ``x+ = max(x, 0)`` and ``x- = x -
x+`` are exact, and the messages ``x+ t+ + x- t-`` select a scale per entry
without a difference of large terms.

On NumPy a chunk costs a few dozen calls whatever its size, so the
per-pair weights, the weight messages and the sums of their parts (eq. 4.1)
are formed for the whole level at once.
"""

import numpy as np

from .._backend import asarray
from ..rules import phi
from ._buffers import thread_scratch
from .fisher_math import SQRT2, block_size, is_sparse, row_chunks

_PAIR_BYTES = 8 << 20  # bound of the temporaries of one chunk of (descriptor, component) pairs
#: The same for the scores of the sign and magnitude rules (formed again in each pass).  Fewer, larger
#: chunks mean fewer NumPy and SciPy calls, which the two level threads contend for under the GIL:
#: alpha-beta on a 480x360 photograph (thesis model, 2 cores, 2 MiB L2) took a median 368 / 294 / 280 /
#: 322 ms with 4 / 8 / 16 / 32 MiB.
_SCORE_BYTES = 16 << 20
_CACHE_BYTES = 128 << 20  # pairs kept between the two passes of a non-linear rule

# the encoder's relevance step (fisher_relevance.level_relevance) calls these; nothing here is for users
__all__ = []


def split_block(T, K, D, include_weights, xp):
    """``(T_w (..., K) or None, T_ms (..., K, 2D))`` of block-layout arrays ``T`` (..., B)."""
    off = K if include_weights else 0
    lead = T.shape[:-1]
    Tm = T[..., off : off + K * D].reshape(lead + (K, D))
    Ts = T[..., off + K * D :].reshape(lead + (K, D))
    return (T[..., :K] if include_weights else None), xp.concatenate([Tm, Ts], axis=-1)


_ARANGE = [np.arange(1 << 16, dtype=np.int32)]


def _arange32(m):
    """``0 .. m-1`` as int32 (a view of one kept array): SciPy checks and converts int64 index arrays."""
    if len(_ARANGE[0]) < m:
        _ARANGE[0] = np.arange(max(m, 2 * len(_ARANGE[0])), dtype=np.int32)
    return _ARANGE[0][:m]


def _segments(seg, n_seg, xp, weights=None):
    """``X -> out`` with ``out[s] = sum of the rows weights[i] X[i] with seg[i] == s`` (n_seg, X.shape[1]).

    Built once per chunk and applied to several arrays: on NumPy a sparse
    (n_seg, len(seg)) matrix holding the weights (ones when None), elsewhere a
    ``bincount`` per call.
    """
    if xp is np:
        from scipy.sparse import csc_matrix  # noqa: PLC0415

        m = len(seg)  # column i holds its one entry in row seg[i]: built without sorting
        data = np.ones(m) if weights is None else weights
        S = csc_matrix((data, seg, _arange32(m + 1)), shape=(n_seg, m))
        return lambda X: np.asarray(S @ X)

    def total(X):
        w = X.shape[1]
        flat = (seg[:, None] * w + xp.arange(w)[None, :]).ravel()
        vals = X if weights is None else X * weights[:, None]
        return xp.bincount(flat, weights=vals.ravel(), minlength=n_seg * w).reshape(n_seg, w)
    return total


def _segment_sum(X, seg, n_seg, xp):
    """``out[s] = sum of the rows X[i] with seg[i] == s`` (n_seg, X.shape[1])."""
    return _segments(seg, n_seg, xp)(X)


def _row_sum(X, indptr, rows, xp, weights=None):
    """Sums of consecutive row segments of ``X`` (segment ``i`` is ``indptr[i]:indptr[i+1]``), rows weighted."""
    n = len(indptr) - 1
    if xp is np:
        from scipy.sparse import csr_matrix  # noqa: PLC0415

        data = np.ones(X.shape[0]) if weights is None else weights
        S = csr_matrix((data, _arange32(X.shape[0]), indptr), shape=(n, X.shape[0]))
        return np.asarray(S @ X)
    return _segment_sum(X if weights is None else X * weights[:, None], rows, n, xp)


class Pairs:
    """The (descriptor, component) pairs of one level with ``gamma_k(l) > 0``, chunk by chunk.

    Iterating yields ``(atom, lo, hi, rows, indptr, comps, M, e, w)`` per row
    chunk ``lo:hi``: each pair's row (relative to ``lo``; ``indptr`` delimits
    the rows), component, ``M = [Psi_mu_k(l) | Psi_sigma_k(l)]`` (n_pairs, 2D;
    eq. 4.2, 4.3), the weight message ``e = Psi_pi_k(l)`` (eq. 4.1) and ``w =
    gamma_k(l) / sqrt(pi_k)``, all float64.  Chunks are kept for a second
    pass while they fit in ``_CACHE_BYTES``; the others are formed again.
    With ``scores`` (the sign and magnitude rules), ``M``
    is replaced by the scores ``U = (y - mu_k) / sigma_k`` (n_pairs, D), so
    that ``M = [w U | w (U^2 - 1) / sqrt 2]``; they live in a reused buffer
    of the calling thread (:func:`~bowlrp.encoders._buffers.thread_scratch`),
    valid until the next chunk, and are formed again in each pass (on a
    shared machine the fresh pages of a cache cost more than the gathers).

    The level's pairs, in row order, are also kept whole: ``rows``,
    ``comps``, ``e`` and ``w`` (``level``) and each pair's atom (``atoms``),
    from which :meth:`atom_sums` and :meth:`row_sums` sum per-pair values
    per (atom, component) and per descriptor in one call for the level.
    """

    def __init__(self, Y, G, bounds, mixture, xp, scores=False):
        self.Y, self.G, self.mixture, self.xp = Y, G, mixture, xp
        self.scores = scores
        D, n = mixture.n_dims, G.shape[0]
        self.sqrt_weights = asarray(mixture.sqrt_weights, xp)
        if is_sparse(G):  # the level's pairs in row order, as the CSR matrix stores them
            self.ptr = G.indptr
            rows, comps = np.repeat(np.arange(n), np.diff(G.indptr)), G.indices
            g = np.asarray(G.data, dtype=np.float64)
        else:
            self.ptr = None
            rows, comps = xp.nonzero(G)
            g = G[rows, comps].astype(xp.float64)
        self.level = (rows, comps) + _weights(g, self.sqrt_weights[comps])
        nnz = len(g)
        per_row = max(1.0, nnz / max(n, 1))
        width, budget = (7 * D, _SCORE_BYTES) if scores else (6 * D, _PAIR_BYTES)
        self.chunks = list(row_chunks(bounds, int(per_row * width) + 1, budget=budget))
        self.kept, self.room = {}, 0 if scores else _CACHE_BYTES
        self.scratch = thread_scratch(xp)
        self.sizes = np.diff(np.asarray(bounds)).astype(np.float64)  # rows per atom
        self.row_atoms = asarray(np.repeat(np.arange(len(self.sizes)), np.diff(np.asarray(bounds))), xp)
        self.atoms = self.row_atoms[rows]
        self.means, self.inv_sigmas = asarray(mixture.means, xp), 1.0 / asarray(mixture.sigmas, xp)

    def __iter__(self):
        for i, (a, lo, hi) in enumerate(self.chunks):
            if i in self.kept:
                yield (a, lo, hi) + self.kept[i]
                continue
            item = self._form(lo, hi)
            size = item[3].nbytes
            if size <= self.room:
                self.kept[i] = item
                self.room -= size
            yield (a, lo, hi) + item

    def atom_sums(self, values, n_atoms):
        """``out[a, k] = sum of values[p]`` over the level's pairs ``p`` of atom ``a`` and component ``k``."""
        xp, K = self.xp, self.mixture.n_components
        _, comps = self.level[:2]
        key = self.atoms * K + comps
        return xp.bincount(key, weights=values, minlength=n_atoms * K).reshape(n_atoms, K)

    def row_sums(self, values):
        """``out[l] = sum of values[p]`` over the pairs ``p`` of descriptor ``l`` (n,), in pair order."""
        return self.xp.bincount(self.level[0], weights=values, minlength=self.G.shape[0])

    def _form(self, lo, hi):
        xp, G, D = self.xp, self.G, self.mixture.n_dims
        if self.ptr is not None:  # slices of the level's pairs
            p0, p1 = int(self.ptr[lo]), int(self.ptr[hi])
            indptr = self.ptr[lo : hi + 1] - self.ptr[lo]
            rows, comps, gp, e = (v[p0:p1] for v in self.level)
            rows = rows - lo
        else:
            sub = G[lo:hi]
            rows, comps = xp.nonzero(sub)
            indptr = xp.searchsorted(rows, xp.arange(hi - lo + 1))
            gp, e = _weights(sub[rows, comps].astype(xp.float64), self.sqrt_weights[comps])
        # U = (y - mu_k) / sigma_k, then M = [gp U | gp (U^2 - 1) / sqrt 2]: gathers into reused buffers
        buf = self.scratch
        U = buf.take(asarray(self.Y[lo:hi], xp, dtype=xp.float64), rows, "U")
        U -= buf.take(self.means, comps, "tmp")
        U *= buf.take(self.inv_sigmas, comps, "tmp")
        if self.scores:
            return rows, indptr, comps, U, e, gp
        tmp = buf("tmp", U.shape)
        M = xp.empty((len(rows), 2 * D), dtype=xp.float64)
        xp.multiply(U, gp[:, None], out=M[:, :D])
        xp.multiply(U, U, out=tmp)
        tmp -= 1.0
        xp.multiply(tmp, (gp / SQRT2)[:, None], out=M[:, D:])
        return rows, indptr, comps, M, e, gp


def _weights(g, sq):
    """``(w, e)`` of pairs with posteriors ``g`` and ``sqrt(pi_k)`` ``sq``: ``w = g / sqrt(pi_k)`` and the
    weight message ``e = (g - pi_k) / sqrt(pi_k)`` (eq. 4.1)."""
    return g / sq, (g - sq * sq) / sq


def abs_sums(pairs, n_atoms, include_weights, xp):
    """``sum_l |Psi(l)_d|`` per atom (n_atoms, B), from the pairs with a non-zero posterior.

    ``pairs`` formed with ``scores=True``: ``|Psi_mu| = w |u|``, ``|Psi_sigma|
    = w |u^2 - 1| / sqrt 2`` (eq. 4.2, 4.3), summed with the weights ``w`` as
    the entries of the sparse sum matrix.  A truncated posterior's weight
    message is ``-sqrt(pi_k)``: each row adds ``sqrt(pi_k)`` and each pair the
    difference to its own ``|e|``.
    """
    mix = pairs.mixture
    K, D = mix.n_components, mix.n_dims
    acc = xp.zeros((n_atoms, block_size(K, D, include_weights)), dtype=xp.float64)
    off = K if include_weights else 0
    buf = pairs.scratch
    for a, lo, hi, rows, indptr, comps, U, e, w in pairs:
        total = _segments(comps, K, xp, weights=w)
        V = xp.multiply(U, U, out=buf("tmp", U.shape))
        V -= 1.0
        mean, var = _atom_parts(acc, a, off, K, D)
        mean += total(xp.abs(U, out=U))
        var += total(xp.abs(V, out=V))
    if include_weights:
        sq, (_, comps, _, e) = pairs.sqrt_weights, pairs.level
        acc[:, :K] += pairs.atom_sums(xp.abs(e) - sq[comps], n_atoms) + asarray(pairs.sizes, xp)[:, None] * sq
    acc[:, off + K * D :] /= SQRT2
    return acc


def _parts(T, K, D, include_weights):
    """``(T_w (n, K) or None, T_mu (n, K, D), T_sigma (n, K, D))`` of block-layout rows ``T`` (n, B), as views
    where the array library can (each atom's ``(K, D)`` part is contiguous either way)."""
    off = K if include_weights else 0
    n = T.shape[0]
    return ((T[:, :K] if include_weights else None), T[:, off : off + K * D].reshape(n, K, D),
            T[:, off + K * D : off + 2 * K * D].reshape(n, K, D))


def _atom_parts(acc, a, off, K, D):
    """The mean and variance parts (K, D) of row ``a`` of the block-layout array ``acc``: views (a contiguous
    slice reshaped) that sums are added into."""
    return acc[a, off : off + K * D].reshape(K, D), acc[a, off + K * D : off + 2 * K * D].reshape(K, D)


def _blocks(w, ms, include_weights, xp):
    """Block layout (n_atoms, B) from weight (n_atoms, K) and mean|variance (n_atoms, K, 2D) parts."""
    n_atoms, K, D2 = ms.shape
    D = D2 // 2
    parts = [w] if include_weights else []
    return xp.concatenate(parts + [ms[..., :D].reshape(n_atoms, K * D), ms[..., D:].reshape(n_atoms, K * D)], axis=1)


def abs_messages(pairs, T, Y, include_weights, xp, out=None):
    """``sum_d |Psi(l)_d| T[atom(l), d]`` per descriptor dimension (n, D), float64; ``T`` (n_atoms, B).

    ``pairs`` formed with ``scores=True``: per pair ``|u| t_mu + |u^2 - 1|
    t_sigma / sqrt 2``, then the pairs of a descriptor summed with their
    weights ``w`` (eq. 4.2, 4.3, D.3).  Written into ``out`` when given.
    """
    mix = pairs.mixture
    K, D = mix.n_components, mix.n_dims
    Tw, Tm, Ts = _parts(T, K, D, include_weights)
    tables = [Tm, Ts / SQRT2]
    buf = pairs.scratch
    out = xp.empty(Y.shape, dtype=xp.float64) if out is None else out
    if include_weights:
        sq, (_, comps, _, e) = pairs.sqrt_weights, pairs.level
        rw = pairs.row_sums((xp.abs(e) - sq[comps]) * Tw[pairs.atoms, comps])
        rw = (rw + (sq * Tw).sum(1)[pairs.row_atoms]) / D
    for a, lo, hi, rows, indptr, comps, U, e, w in pairs:
        V = xp.multiply(U, U, out=buf("tmp", U.shape))
        V -= 1.0
        acc = buf.take(tables[0][a], comps, "acc")
        acc *= xp.abs(U, out=U)
        scale = buf.take(tables[1][a], comps, "scale")
        scale *= xp.abs(V, out=V)
        acc += scale
        r = _row_sum(acc, indptr, rows, xp, weights=w)
        if include_weights:
            r += rw[lo:hi, None]
        out[lo:hi] = r
    return out


def sign_sums(pairs, n_atoms, include_weights, xp):
    """``(sum_l Psi(l)_d^+, sum_l Psi(l)_d^-)`` per atom, two (n_atoms, B) arrays, each summed directly.

    ``pairs`` formed with ``scores=True``.  The positive and negative parts
    of ``u`` and of ``u^2 - 1`` are summed with the pair weights ``w`` as the
    entries of one sparse matrix of the pairs' components per chunk (eq.
    4.2, 4.3: ``Psi_mu^+ = w u^+``, ``Psi_sigma^+ = w (u^2 - 1)^+ / sqrt 2``),
    built once and applied to each of the four parts in turn (the parts side
    by side as one ``(pairs, 4D)`` operand saved 25 µs of product per chunk of
    about 900 pairs, and each strided write into it cost 17 µs more).
    """
    mix = pairs.mixture
    K, D = mix.n_components, mix.n_dims
    B, off = block_size(K, D, include_weights), K if include_weights else 0
    acc_p = xp.zeros((n_atoms, B), dtype=xp.float64)
    acc_n = xp.zeros((n_atoms, B), dtype=xp.float64)
    buf = pairs.scratch
    for a, lo, hi, rows, indptr, comps, U, e, w in pairs:
        total = _segments(comps, K, xp, weights=w)
        zero = buf.zeros(U.shape)
        part = xp.maximum(U, zero, out=buf("tmp", U.shape))  # the gathers' buffer, spent
        (mp, vp), (mn, vn) = _atom_parts(acc_p, a, off, K, D), _atom_parts(acc_n, a, off, K, D)
        mp += total(part)
        mn += total(xp.subtract(U, part, out=part))  # u- = u - u+, exactly
        V = xp.multiply(U, U, out=U)  # v = u^2 - 1 in place of u: fewer buffers in cache
        V -= 1.0
        vp += total(xp.maximum(V, zero, out=part))
        V -= part
        vn += total(V)
    if include_weights:  # a truncated posterior's weight message is -sqrt(pi_k) < 0
        sq, (_, comps, _, e) = pairs.sqrt_weights, pairs.level
        acc_p[:, :K] += pairs.atom_sums(xp.maximum(e, 0.0), n_atoms)
        acc_n[:, :K] += (pairs.atom_sums(xp.minimum(e, 0.0) + sq[comps], n_atoms)
                         - asarray(pairs.sizes, xp)[:, None] * sq)
    acc_p[:, off + K * D :] /= SQRT2
    acc_n[:, off + K * D :] /= SQRT2
    return acc_p, acc_n


def sign_messages(pairs, Tp, Tn, Y, include_weights, xp, out=None):
    """``sum_d (Psi(l)_d^+ Tp[atom(l), d] + Psi(l)_d^- Tn[atom(l), d])`` per descriptor dimension (n, D).

    ``pairs`` formed with ``scores=True``.  Per pair and dimension ``u+ tp_mu
    + u- tn_mu + v+ tp_sigma + v- tn_sigma`` with ``v = u^2 - 1`` and the
    scales gathered for the pair's component (the variance scales divided by
    ``sqrt 2``): in each product pair one factor is exactly zero, so the sum
    selects the scale of the message's sign.  The pairs of a descriptor are
    then summed with their weights ``w`` (one sparse product, eq. 4.2, 4.3,
    D.3).  Written into ``out`` when given.
    """
    mix = pairs.mixture
    K, D = mix.n_components, mix.n_dims
    (Tpw, Tpm, Tps), (Tnw, Tnm, Tns) = _parts(Tp, K, D, include_weights), _parts(Tn, K, D, include_weights)
    tables = [Tpm, Tnm, Tps / SQRT2, Tns / SQRT2]
    buf = pairs.scratch
    out = xp.empty(Y.shape, dtype=xp.float64) if out is None else out
    if include_weights:
        sq, (_, comps, _, e) = pairs.sqrt_weights, pairs.level
        at = pairs.atoms
        v = xp.maximum(e, 0.0) * Tpw[at, comps] + (xp.minimum(e, 0.0) + sq[comps]) * Tnw[at, comps]
        rw = (pairs.row_sums(v) - (sq * Tnw).sum(1)[pairs.row_atoms]) / D
    for a, lo, hi, rows, indptr, comps, U, e, w in pairs:
        zero = buf.zeros(U.shape)
        part = xp.maximum(U, zero, out=buf("tmp", U.shape))  # the gathers' buffer, spent
        acc = buf.take(tables[0][a], comps, "acc")
        acc *= part
        xp.subtract(U, part, out=part)  # u-
        scale = buf.take(tables[1][a], comps, "scale")
        scale *= part
        acc += scale
        V = xp.multiply(U, U, out=U)  # v = u^2 - 1 in place of u
        V -= 1.0
        xp.maximum(V, zero, out=part)
        V -= part
        scale = buf.take(tables[2][a], comps, "scale")
        scale *= part
        acc += scale
        scale = buf.take(tables[3][a], comps, "scale")
        scale *= V
        acc += scale
        r = _row_sum(acc, indptr, rows, xp, weights=w)
        if include_weights:
            r += rw[lo:hi, None]
        out[lo:hi] = r
    return out


def _weight_messages(G, lo, hi, mixture, xp):
    """``Psi_pi(l)`` (eq. 4.1) of rows ``lo:hi``: (n, K) float64, dense."""
    w, sq = asarray(mixture.weights, xp), asarray(mixture.sqrt_weights, xp)
    g = G[lo:hi]
    g = g.toarray() if is_sparse(g) else g.astype(xp.float64)
    return (g - w) / sq


def pair_sums(pairs, n_atoms, phis, include_weights, xp):
    """``sum_l phi(Psi(l)_d)`` per atom for each transform in ``phis``: dict of (n_atoms, B) arrays."""
    mix = pairs.mixture
    K, D = mix.n_components, mix.n_dims
    acc_ms = {p: xp.zeros((n_atoms, K, 2 * D), dtype=xp.float64) for p in phis}
    acc_w = {p: xp.zeros((n_atoms, K), dtype=xp.float64) for p in phis}
    for a, lo, hi, rows, indptr, comps, M, e, _ in pairs:
        for p in phis:
            acc_ms[p][a] += _segment_sum(phi(p, M, xp), comps, K, xp)
        if include_weights:
            Wm = _weight_messages(pairs.G, lo, hi, mix, xp)
            for p in phis:
                acc_w[p][a] += phi(p, Wm, xp).sum(0)
    return {p: _blocks(acc_w[p], acc_ms[p], include_weights, xp) for p in phis}


def pair_messages(pairs, T, Y, include_weights, xp):
    """``sum_phi sum_d phi(Psi(l)_d) T_phi[atom(l), d]`` per descriptor dimension (n, D), float64.

    ``T`` maps each transform to its per-atom scales (n_atoms, B).
    """
    mix = pairs.mixture
    K, D = mix.n_components, mix.n_dims
    split = {p: split_block(t, K, D, include_weights, xp) for p, t in T.items()}
    out = xp.zeros(Y.shape, dtype=xp.float64)
    for a, lo, hi, rows, indptr, comps, M, e, _ in pairs:
        P = sum(phi(p, M, xp) * Tms[a][comps] for p, (_, Tms) in split.items())
        r = _row_sum(P[:, :D] + P[:, D:], indptr, rows, xp)
        if include_weights:
            Wm = _weight_messages(pairs.G, lo, hi, mix, xp)
            r += (sum(phi(p, Wm, xp) @ tw[a] for p, (tw, _) in split.items()) / D)[:, None]
        out[lo:hi] = r
    return out
