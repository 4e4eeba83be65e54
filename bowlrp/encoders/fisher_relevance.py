"""Relevance of Fisher-vector dimensions back to descriptor dimensions (thesis eq. 4.9-4.10, D.3).

The unnormalised vector of a cell is a sum of messages from its descriptors,
``x_d = sum_l z_ld`` with ``z_ld = Psi(l)_d / |L_cell|`` (eq. 4.9, 4.10; ``Psi``
of :mod:`bowlrp.encoders.fisher_math`).  A rule of :mod:`bowlrp.rules` sends
``R_d`` back as ``R_{l<-d} = sum_phi phi(z_ld) s_phi[d]``; the mean and variance
messages of descriptor dimension ``r`` go to dimension ``r`` (eq. D.3), the
weight messages, which belong to no dimension, are spread evenly over the
``D`` dimensions.

Two evaluations, both exact for the encoding that was computed:

* rules whose only transform is ``z`` (proportional, epsilon): the column
  sums are ``x`` itself, and ``sum_d z_ld t_d`` per descriptor dimension
  expands into one matrix product of the posteriors,
  ``y * (G' B_1) + y^2 * (G' B_2) + G' B_3`` (``linear_tables``, ``linear_messages``);
* the other rules need ``phi(z_ld)`` elementwise.  But ``z_ld`` is zero
  wherever ``gamma_k(l)`` is, and the posteriors are truncated
  (:func:`bowlrp.encoders.fisher_math.posteriors`), so the mean and variance
  messages are formed only for the (descriptor, component) pairs that carry
  mass: ``(n_pairs, 2D)`` values instead of ``(n, 2KD)``; for a weight
  message ``(gamma - pi) / sqrt(pi)`` a truncated posterior gives the constant
  ``-sqrt(pi)``.  The magnitude rule needs ``|z|`` (``abs_sums``,
  ``abs_messages``).  Alpha-beta needs the positive and negative parts:
  their column sums are formed directly (no difference of large numbers), and
  its messages ``z+ t+ + z- t-`` are formed pair by pair in that form, one
  factor of each product exactly zero (``sign_sums``, ``sign_messages``), so
  no message is the difference of two large terms either.  The flat rule
  counts messages pair by pair (``pair_sums``, ``pair_messages``).

Descriptors are ordered by their spatial *atom* (:mod:`bowlrp.encoders.pyramid`);
sums are formed per atom and combined per cell with the membership matrix.
"""

import warnings

import numpy as np

from .._backend import asarray
from .pca import combined, project
from ..rules import RTOL
from .fisher_math import SQRT2, augment, fisher_vectors, magnitude_bound, moments, rounding_bound, row_chunks
from .fisher_pairs import Pairs, abs_messages, abs_sums, pair_messages, pair_sums, sign_messages, sign_sums

# the message and sum functions are the encoder's relevance step (FisherVectorEncoder.relevance
# calls them); what a user meets is the warning
__all__ = ["ConservationWarning"]

#: Bound of a chunk whose elementwise passes should stay in cache (measured: 800 rows of D=80 take 2/3 of the
#: time of 3,000 in the proportional rule's messages).
_CACHE_CHUNK_BYTES = 2 << 20
#: A column sum ``x_d`` is a denominator only where it is known to this relative accuracy
#: (:func:`bowlrp.encoders.fisher_math.rounding_bound`); below, the column is not reached.
ACCURACY = 1e-8
#: Conservation of an exact rule is reported when it fails by more than this share of ``sum |R|``.
CONSERVATION_RTOL = 1e-6


class ConservationWarning(UserWarning):
    """An exact rule did not conserve relevance (``sum R_in != sum R_out`` beyond rounding).

    The Fisher-vector encoder warns for each image where the descriptors'
    relevance under an exact rule (``Rule.exact``) differs from that of the
    Fisher dimensions by more than ``CONSERVATION_RTOL`` of ``sum |R|``.
    Turn it into an error where a lost share must stop the run.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from bowlrp.rules import Proportional
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always", ConservationWarning)
    ...     check_conservation(Proportional(), "image 0", np.array([0.5]), np.array([1.0]), np)
    >>> caught[0].category.__name__, str(caught[0].message)[:60]
    ('ConservationWarning', "the 'z' rule did not conserve relevance through the Fisher-v")
    """


def check_conservation(rule, where, R_in, R_out, xp):
    """Warn (:class:`ConservationWarning`) when the exact ``rule`` lost more than ``CONSERVATION_RTOL``."""
    if not rule.exact:
        return
    got, want = float(R_in.sum()), float(R_out.sum())
    scale = _sum_abs(R_out, xp)
    if abs(got - want) > CONSERVATION_RTOL * scale:
        warnings.warn(
            f"the {rule.name!r} rule did not conserve relevance through the Fisher-vector encoder for "
            f"{where}: the descriptors sum to {got:.6g}, the Fisher dimensions to {want:.6g} "
            f"(sum |R| = {scale:.6g}); the model may be degenerate (fitted on constant images?)",
            ConservationWarning, stacklevel=4,
        )


def _sum_abs(a, xp, step=1 << 16):
    """``sum |a|`` as a float; on NumPy in chunks of ``step`` values through one small buffer.

    An image's Fisher relevance has over a million entries (10 MB in
    float64): ``abs(a)`` whole would be a fresh array, whose pages the
    allocator takes from the system on every call.

    Examples
    --------
    >>> import numpy as np
    >>> _sum_abs(np.array([[1.0, -2.0], [-3.0, 4.0]]), np, step=3)
    10.0
    """
    if xp is not np:
        return float(xp.abs(a).sum())
    flat = np.ascontiguousarray(a).reshape(-1)
    buf = np.empty(min(step, flat.size))
    total = 0.0
    for lo in range(0, flat.size, step):
        part = flat[lo : lo + step]
        total += float(np.abs(part, out=buf[: part.size]).sum())
    return total


# sum_l phi(z_l / N) = sum_l phi(z_l) / N for these transforms; "one" counts messages
_HOMOGENEOUS = {"z": True, "pos": True, "neg": True, "abs": True, "one": False}
# each transform as a combination of the positive and the negative part of the messages
_SIGNS = {"z": (1.0, 1.0), "pos": (1.0, 0.0), "neg": (0.0, 1.0), "abs": (1.0, -1.0)}


def atom_moments(Y, G, bounds, mixture, xp):
    """``moments`` (n_atoms, K, 2D+1) in float64 of rows sorted by atom (``bounds``)."""
    n_atoms, K, D = len(bounds) - 1, G.shape[1], Y.shape[1]
    S = xp.zeros((n_atoms, K, 2 * D + 1), dtype=xp.float64)
    for a, lo, hi in row_chunks(bounds, 2 * D + 1 + K):
        S[a] += moments(G[lo:hi].astype(np.float64), augment(Y[lo:hi].astype(xp.float64), mixture, xp))
    return S


def cell_statistics(S_atoms, membership, atom_sizes, mixture, include_weights, xp, x=None):
    """``(x, S, counts)`` per cell from per-atom moments: unnormalised vectors, moments, sizes.

    ``x`` is taken as given when the caller has the vectors these moments
    gave (the forward pass's, eq. 4.1-4.3 averaged), else formed from them.
    """
    Mb = asarray(membership, xp)
    n_at = S_atoms.shape[0]
    S = (Mb @ S_atoms.reshape(n_at, -1)).reshape((Mb.shape[0],) + S_atoms.shape[1:])
    counts = np.asarray(membership) @ np.asarray(atom_sizes, dtype=np.float64)
    if x is None:
        x = fisher_vectors(S, counts, mixture, include_weights, xp)
    return x, S, counts


def linear_tables(T, mixture, include_weights, xp, out=None):
    """``(B, const)``: the right factors of :func:`linear_messages` for the per-atom scales ``T`` (n_atoms, B).

    ``T`` is the per-message scale of each atom (the rule's scale times ``1 /
    |L_cell|``, summed over the atom's cells).  With ``u = (y - mu) / sigma``
    and ``G' = gamma / sqrt(pi)``, the mean part of ``sum_d z_ld T_d`` is ``G'
    (T_mu u)`` and the variance part ``G' (T_sigma (u^2 - 1) / sqrt 2)`` (eq.
    4.2, 4.3); in powers of ``y - c`` (about the mixture's centre) they are
    ``(y - c) (G' B_1) + (y - c)^2 (G' B_2) + G' B_3``.  The weight messages
    ``(gamma - pi) / sqrt(pi)`` (eq. 4.1), spread evenly over the ``D``
    dimensions, add ``T_w / D`` to every column of ``B_3`` and the constant
    ``-sum_k sqrt(pi_k) T_w,k / D``.  Returns ``B = [B_1 | B_2 | B_3] /
    sqrt(pi)`` (n_atoms, K, 3D; written into ``out`` when given) and the
    constants (n_atoms,), None without weight messages.
    """
    K, D = mixture.n_components, mixture.n_dims
    mu, sig, var = (asarray(a, xp) for a in (mixture.centred_means, mixture.sigmas, mixture.variances))
    sq = asarray(mixture.sqrt_weights, xp)[:, None]
    off, n = (K if include_weights else 0), T.shape[0]
    Tm = T[:, off : off + K * D].reshape(n, K, D)
    Ts = T[:, off + K * D :].reshape(n, K, D)
    a_s = 1.0 / (SQRT2 * var * sq)  # the variance scales' factor
    B = xp.empty((n, K, 3 * D), dtype=xp.float64) if out is None else out
    B1, B2, B3 = B[..., :D], B[..., D : 2 * D], B[..., 2 * D :]
    xp.multiply(Tm, 1.0 / (sig * sq), out=B1)
    xp.multiply(Ts, -2.0 * mu * a_s, out=B2)
    B1 += B2
    xp.multiply(Ts, (mu * mu - var) * a_s, out=B3)
    xp.multiply(Tm, -mu / (sig * sq), out=B2)
    B3 += B2
    xp.multiply(Ts, a_s, out=B2)
    if not include_weights:
        return B, None
    Tw = T[:, :K]
    B3 += (Tw / (D * sq[:, 0]))[:, :, None]
    return B, -(Tw * sq[:, 0]).sum(1) / D


def linear_messages(Y, G, B, const, centre, xp, lo=0, hi=None, out=None):
    """``sum_d z_ld T_d`` per descriptor dimension of rows ``lo:hi`` (n, D), matrix products only (eq. D.3).

    ``B`` (K, 3D) is one atom's :func:`linear_tables`, ``const`` (a number
    or a row (D,)) what is added to every row and ``centre`` the mixture's
    centre ``c``: with ``P = G B`` the messages are
    ``((y - c) P_2 + P_1) (y - c) + P_3 + const``, formed in place in chunks
    that stay in a core's cache.  ``G`` dense or sparse
    (:func:`bowlrp.encoders.fisher_math.compress`); ``Y`` an array or
    anything that gives rows by slicing; the result goes into ``out`` when
    given.
    """
    hi = Y.shape[0] if hi is None else hi
    D = B.shape[1] // 3
    out = xp.empty((hi - lo, D), dtype=xp.float64) if out is None else out
    step = max(1, int(_CACHE_CHUNK_BYTES // (8 * 4 * D)))
    Yc_buf = xp.empty((min(step, max(hi - lo, 1)), D), dtype=xp.float64)
    for a in range(lo, hi, step):
        b = min(hi, a + step)
        P = G[a:b].astype(np.float64, copy=False) @ B
        P = np.asarray(P) if xp is np else P
        Yc = xp.subtract(Y[a:b], centre, out=Yc_buf[: b - a], dtype=xp.float64)
        r = xp.multiply(Yc, P[:, D : 2 * D], out=out[a - lo : b - lo])
        r += P[:, :D]
        r *= Yc
        r += P[:, 2 * D :]
        r += const
    return out


def level_relevance(Y, G, bounds, membership, counts, x, S, R, rule, mixture, include_weights, xp):
    """Relevance per (projected) descriptor dimension of one level of one image (eq. 4.9-4.10, D.3).

    Parameters
    ----------
    Y, G : arrays (n, D), (n, K)
        Descriptors (after PCA) and their (truncated) posteriors, rows
        sorted by atom (``G`` dense or sparse); ``bounds`` (n_atoms + 1,)
        delimits the atoms.
    membership : array (n_cells, n_atoms)
        :func:`bowlrp.encoders.pyramid.pyramid_atoms`.
    counts : array (n_cells,)
        Descriptors per cell.
    x, S : arrays (n_cells, B), (n_cells, K, 2D+1), float64
        Unnormalised cell vectors (the column sums of ``z``) and the cell
        moments they were formed from.  For the proportional and epsilon
        rules a column whose ``x_d`` is not known to ``ACCURACY`` (rounding of
        the moments, :func:`~bowlrp.encoders.fisher_math.rounding_bound`) is not
        reached.
    R : array (n_cells, B)
        Relevance of the level's Fisher dimensions.

    Returns
    -------
    Rdim : array (n, D), float64
    lost : float
        Relevance of cells without descriptors (the caller spreads it over
        the whole image).  Dimensions of a non-empty cell none of whose
        messages is usable (posteriors all truncated, or messages that cancel)
        spread their relevance over the cell's descriptors, in dimension ``r``
        for mean and variance parts and evenly for weights (eq. 2.79).
    """
    K, D = mixture.n_components, mixture.n_dims
    S0 = S[..., -1]
    Mb = asarray(membership, xp)
    N = asarray(counts, xp, dtype=xp.float64)
    inv_n = xp.where(N > 0, 1.0 / xp.where(N > 0, N, 1.0), 0.0)[:, None]
    phis = tuple(rule.phis)
    Rdim = xp.zeros(Y.shape, dtype=xp.float64)
    n_atoms = len(bounds) - 1
    pairs = None if phis == ("z",) else Pairs(Y, G, bounds, mixture, xp, scores=set(phis) <= set(_SIGNS))
    if phis == ("z",) or phis == ("abs",):
        if phis == ("z",):
            sums = (x,)
            magnitude = magnitude_bound(x, S0, counts, mixture, include_weights, xp)
            xp.maximum(magnitude, rounding_bound(S, counts, mixture, include_weights, xp,
                                                 factor=8.0 / (RTOL * ACCURACY)), out=magnitude)
        else:
            sums = ((Mb @ abs_sums(pairs, n_atoms, include_weights, xp)) * inv_n,)
            magnitude = sums[0]
        (sc,), reached = rule.scales(sums, magnitude, R, xp)
        T = Mb.T @ (sc * inv_n)
        if phis == ("z",):  # the zero-mapping rows (below) go into each atom's constant
            spread, lost = _unreached(reached, R, Mb, N, inv_n, K, D, include_weights, xp)
            c, table = asarray(mixture.centre, xp), xp.empty((1, K, 3 * D), dtype=xp.float64)
            for a in range(len(bounds) - 1):  # one atom's table at a time: it stays in cache
                lo, hi = int(bounds[a]), int(bounds[a + 1])
                if hi > lo:
                    _, const = linear_tables(T[a : a + 1], mixture, include_weights, xp, out=table)
                    if const is not None:
                        spread[a] += const[0]
                    linear_messages(Y, G, table[0], spread[a], c, xp, lo, hi, out=Rdim[lo:hi])
            return Rdim, lost
        abs_messages(pairs, T, Y, include_weights, xp, out=Rdim)
    elif set(phis) <= set(_SIGNS):  # alpha-beta: positive and negative parts
        pos, neg = (Mb @ t for t in sign_sums(pairs, n_atoms, include_weights, xp))
        pos *= inv_n
        neg *= inv_n
        sums = tuple(combined(_SIGNS[p], (pos, neg)) for p in phis)
        scales, reached = rule.scales(sums, pos - neg, R, xp)
        del sums, pos, neg
        Tp, Tn = (combined([_SIGNS[p][i] for p in phis], scales) * inv_n for i in (0, 1))
        sign_messages(pairs, Mb.T @ Tp, Mb.T @ Tn, Y, include_weights, xp, out=Rdim)
    else:  # the flat rule counts messages
        need = tuple(dict.fromkeys(phis + ("abs",)))
        atom = pair_sums(pairs, n_atoms, need, include_weights, xp)
        cell = {p: (Mb @ atom[p]) * (inv_n if _HOMOGENEOUS[p] else 1.0) for p in need}
        scales, reached = rule.scales(tuple(cell[p] for p in phis), cell["abs"], R, xp)
        T = {p: Mb.T @ (sc * (inv_n if _HOMOGENEOUS[p] else 1.0)) for p, sc in zip(phis, scales)}
        Rdim += pair_messages(pairs, T, Y, include_weights, xp)
    per_atom, lost = _unreached(reached, R, Mb, N, inv_n, K, D, include_weights, xp)
    for a in range(n_atoms):  # added atom by atom: no (n, D) temporary
        lo, hi = int(bounds[a]), int(bounds[a + 1])
        Rdim[lo:hi] += per_atom[a]
    return Rdim, lost


def _unreached(reached, R, Mb, N, inv_n, K, D, include_weights, xp):
    """The zero-mapping case (eq. 2.79): ``(per_atom, lost)``, what each row of an atom gets (n_atoms, D) of
    the relevance no usable message carries, spread evenly over its cell, and what empty cells hold."""
    U = xp.where(reached, 0.0, R)
    off, n_cells = (K if include_weights else 0), U.shape[0]
    per_dim = U[:, off : off + K * D].reshape(n_cells, K, D).sum(1)  # (n_cells, D): mean, then variance parts
    per_dim += U[:, off + K * D :].reshape(n_cells, K, D).sum(1)
    if include_weights:
        per_dim += U[:, :K].sum(1)[:, None] / D
    return Mb.T @ (per_dim * inv_n), float((per_dim.sum(1) * (N == 0)).sum())


class ProjectedRows:
    """The projected descriptors of one level, formed on demand from the descriptors (``rows[lo:hi]``)."""

    def __init__(self, d, rows, pca, xp):
        self.d, self.rows, self.pca, self.xp = d, rows, pca, xp
        self.shape = (len(rows), pca.n_components_ if pca is not None else d.shape[1])

    def __getitem__(self, sl):
        rows = self.d[self.rows[sl]]
        if self.pca is None:
            return asarray(rows, self.xp, dtype=self.xp.float64)
        return project(rows, self.pca.mean_, self.pca.components_, self.xp, self.xp.float64)[0]


def reduced_width(reduce, n_dims, xp):
    """The width ``w`` of the rows ``reduce`` makes of ``(m, n_dims)`` descriptor relevance, checked on one row."""
    if not callable(reduce):
        raise TypeError(f"reduce must be a callable (m, {n_dims}) -> (m, w) or None, got {reduce!r}")
    probe = reduce(xp.zeros((1, n_dims), dtype=xp.float64))
    if getattr(probe, "ndim", 0) != 2 or probe.shape[0] != 1:
        raise ValueError(f"reduce must map (m, {n_dims}) rows to (m, w) rows; it gave {getattr(probe, 'shape', probe)} "
                         "for one row")
    return int(probe.shape[1])
