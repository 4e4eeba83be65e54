"""PCA of local descriptors as an explainable stage (thesis App. D.1.1, eq. 2.31).

The reference Fisher-vector model projects its SIFT descriptors onto 80
principal components before the GMM.  A projection is a linear map,
``y_j = sum_i W_ji c_i`` of the centred descriptor ``c = l - mean``, so its
relevance step is that of a linear mapping (eq. 2.31) with the messages

    z_lji = W_ji c_li

of descriptor ``l``, input dimension ``i``, output dimension ``j``.  The
centring is part of the input, there is no bias, and the proportional rule
conserves.  Every rule of :mod:`bowlrp.rules` is a sum of matrix products here:
each message transform splits into products of a factor of ``c`` and a factor
of ``W`` (``z+ = c+ W+ + c- W-``, ``z- = c+ W- + c- W+``, ``|z| = |c| |W|``,
``1[z != 0] = 1[c != 0] 1[W != 0]``), so nothing of size descriptors x inputs
x outputs is formed.

:class:`DescriptorPCA` is the stage (descriptor sets in, descriptor sets with
the same geometry out); :class:`bowlrp.FisherVectorEncoder` with ``pca=``
calls the same functions.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._backend import asarray, get_namespace, to_numpy
from .._validation import check_int
from ._buffers import Scratch, thread_scratch
from ..base import ExplainableTransformerMixin
from ..messages import _divide
from ..rules import FLOOR, RTOL, AlphaBeta, Proportional, mapping_rule, phi
from .descriptor_sets import ProjectedDescriptorSet, check_descriptor_sets

__all__ = ["DescriptorPCA", "project", "linear_map_relevance", "level_sample"]

_CHUNK_BYTES = 4 << 20  # bound of the temporaries of one chunk of descriptors (a few hundred: they stay in cache)


def level_sample(descs, levels, level, max_descriptors, rng):
    """The training descriptors of ``level`` (float64), at most ``max_descriptors`` of them (sorted sample).

    Examples
    --------
    >>> import numpy as np
    >>> descs = [np.arange(6.0).reshape(3, 2), np.arange(4.0).reshape(2, 2)]  # two images
    >>> levels = [np.array([0, 1, 0]), np.array([1, 1])]  # each descriptor's level (SIFT scale)
    >>> level_sample(descs, levels, 1, 10, np.random.default_rng(0))
    array([[2., 3.],
           [0., 1.],
           [2., 3.]])
    >>> level_sample(descs, levels, 1, 2, np.random.default_rng(0)).shape
    (2, 2)
    """
    pool = np.concatenate([np.asarray(to_numpy(d)[lv == level], dtype=np.float64) for d, lv in zip(descs, levels)])
    if len(pool) > max_descriptors:
        pool = pool[np.sort(rng.choice(len(pool), max_descriptors, replace=False))]
    return pool


def project(D, mean, components, xp, dtype):
    """``(Y, C)``: the projection ``Y = C W^T`` of the centred descriptors ``C = D - mean``, in ``dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> D, mean = np.array([[3.0, 1.0], [1.0, 4.0]]), np.array([1.0, 1.0])
    >>> Y, C = project(D, mean, np.array([[1.0, 0.0]]), np, np.float64)  # keep the first dimension
    >>> Y, C
    (array([[2.],
           [0.]]), array([[2., 0.],
           [0., 3.]]))
    """
    C = asarray(D, xp, dtype=dtype) - asarray(mean, xp, dtype=dtype)
    return C @ asarray(components, xp, dtype=dtype).T, C


def _factors(name, C, W, xp):
    """The message transform ``name`` of ``z_ji = W_ji c_i`` as a sum of products ``a_i b_ji``."""
    if name == "z":
        return [(C, W)]
    if name in ("pos", "neg"):
        Cp, Cn = xp.maximum(C, 0.0), xp.minimum(C, 0.0)
        Wp, Wn = xp.maximum(W, 0.0), xp.minimum(W, 0.0)
        return [(Cp, Wp), (Cn, Wn)] if name == "pos" else [(Cp, Wn), (Cn, Wp)]
    return [(phi(name, C, xp), phi(name, W, xp))]  # "abs", "one": multiplicative


def _chunk_rows(n, width):
    step = max(1, int(_CHUNK_BYTES // (8 * max(1, width))))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


# each transform as a combination of the positive and the negative part of the messages
_SIGNS = {"z": (1.0, 1.0), "pos": (1.0, 0.0), "neg": (0.0, 1.0), "abs": (1.0, -1.0)}
#: A sign part below this share of sum |z_ij| is summed directly, not as (z +- |z|) / 2.
_CONDITION = 1e-4


def _generic(C, W, R, rule, xp, Y):
    """Any rule through the factor products of each transform (the flat rule; rows that need care)."""
    names = list(rule.phis)
    terms = {p: _factors(p, C, W, xp) for p in names}
    sums = {p: (Y if p == "z" and Y is not None else sum(f @ g.T for f, g in fs)) for p, fs in terms.items()}
    if "abs" in sums:
        mag = sums["abs"]
    elif {"pos", "neg"} <= set(sums):
        mag = sums["pos"] - sums["neg"]
    else:
        mag = xp.abs(C) @ xp.abs(W).T
    scales, reached = rule.scales(tuple(sums[p] for p in names), mag, R, xp)
    out = xp.zeros(C.shape, dtype=xp.float64)
    for p, sc in zip(names, scales):
        for f, g in terms[p]:
            out += f * (sc @ g)
    return out, reached


def combined(coefs, arrays):
    """``sum_i coefs[i] * arrays[i]``; the array itself where one coefficient is 1 and the others 0."""
    picked = [x for c, x in zip(coefs, arrays) if c]
    if len(picked) == 1 and [c for c in coefs if c] == [1.0]:
        return picked[0]
    return sum(c * x for c, x in zip(coefs, arrays))


def _halves(coefs, arrays, out, xp):
    """``(x, f)`` with ``sum_i coefs[i] arrays[i] = 2 f x``: ``x`` a sum or difference of the arrays (written
    into ``out``, or one of them) where the non-zero coefficients have one magnitude ``2 f``, else their
    combination and ``f = 1/2``; ``(None, 0)`` when every coefficient is 0."""
    terms = [(c, x) for c, x in zip(coefs, arrays) if c]
    if not terms:
        return None, 0.0
    mags = {abs(c) for c, _ in terms}
    if len(mags) > 1:
        return sum(c * x for c, x in terms), 0.5
    (c0, x0), f = terms[0], mags.pop() / 2
    if len(terms) == 1:
        return (x0 if c0 > 0 else xp.negative(x0, out=out)), f
    x = xp.add(x0, terms[1][1], out=out) if c0 * terms[1][0] > 0 else xp.subtract(x0, terms[1][1], out=out)
    if c0 < 0:
        xp.negative(x, out=x)
    for c, y in terms[2:]:
        (xp.add if c * c0 > 0 else xp.subtract)(x, y, out=x)
    return x, f


def _scaled(f, M, half):
    """``f M`` with ``half = M / 2`` at hand."""
    return half if f == 0.5 else M if f == 1.0 else f * M


def _sign_rule(C, W, R, rule, xp, Y, out=None, aW=None, buf=None, halves=None):
    """Rules made of ``z``, ``z+``, ``z-``, ``|z|``: two or three matrix products per chunk (eq. 2.31).

    ``z+ = (z + |z|) / 2`` and ``z- = (z - |z|) / 2`` give the column sums from
    ``Y = C W^T`` and ``A = |C| |W|^T`` and the messages ``sum_phi phi(z) s_phi =
    z t + |z| a`` from ``C (t W)`` and ``|C| (a |W|)``.  Where a sign part is
    below ``_CONDITION`` of ``A`` that difference would lose digits, so those
    descriptors go through the direct products of :func:`_generic`.  The
    elementwise steps write into the reused buffers ``buf``
    (:class:`~bowlrp.encoders._buffers.Scratch`) and ``out`` (the result);
    ``aW`` is ``|W|`` when the caller has it, ``halves`` ``(W / 2, |W| / 2)``.
    The factors ``1/2`` of ``t`` and ``a`` go into those halved maps (exact: a
    power of two), and a product whose factor is 0 for every transform (``t``
    of the magnitude rule) is not formed.
    """
    names = list(rule.phis)
    Y = C @ W.T if Y is None else Y
    buf = Scratch(xp) if buf is None else buf
    if names == ["z"]:  # Cauchy-Schwarz: sum_i |c_i W_ji| <= ||c|| ||W_j||
        return _z_rule(C, W, R, rule, xp, Y, out, buf)
    aW = xp.abs(W) if aW is None else aW
    halves = (0.5 * W, 0.5 * aW) if halves is None else halves
    n, d_in = C.shape
    d_out = W.shape[0]
    aC = xp.abs(C, out=buf("aC", (n, d_in)))
    A = xp.matmul(aC, aW.T, out=buf("A", (n, d_out)))
    pos = xp.add(Y, A, out=buf("pos", (n, d_out)))
    pos *= 0.5
    neg = xp.subtract(Y, A, out=buf("neg", (n, d_out)))
    neg *= 0.5
    # min(z+, -z-) < _CONDITION A; where A = 0 every message is 0 and so are both parts
    low = xp.negative(neg, out=buf("low", (n, d_out)))
    xp.minimum(pos, low, out=low)
    cut = xp.multiply(A, _CONDITION, out=buf("cut", (n, d_out)))
    bad = xp.less(low, cut, out=buf("bad", (n, d_out), xp.bool_)).any(1)
    if type(rule).scales is AlphaBeta.scales:
        scales, reached = _alpha_beta_scales(rule, pos, neg, A, R, xp, buf)
    else:
        scales, reached = rule.scales(tuple(combined(_SIGNS[p], (pos, neg)) for p in names), A, R, xp)
    # t = sum_phi (sign+ + sign-) s_phi / 2 and a = sum_phi (sign+ - sign-) s_phi / 2
    t, ft = _halves([_SIGNS[p][0] + _SIGNS[p][1] for p in names], scales, buf("t", (n, d_out)), xp)
    a, fa = _halves([_SIGNS[p][0] - _SIGNS[p][1] for p in names], scales, buf("a", (n, d_out)), xp)
    del scales
    res = out if out is not None else xp.empty((n, d_in), dtype=xp.float64)
    if t is None:
        res[...] = 0.0
    else:
        xp.matmul(t, _scaled(ft, W, halves[0]), out=res)
        res *= C
    if a is not None:
        part = xp.matmul(a, _scaled(fa, aW, halves[1]), out=buf("msg", (n, d_in)))
        part *= aC
        res += part
    if bool(bad.any()):
        idx = xp.nonzero(bad)[0]
        res[idx], reached[idx] = _generic(C[idx], W, R[idx], rule, xp, Y[idx])
    return res, reached


def _alpha_beta_scales(rule, pos, neg, A, R, xp, buf):
    """:meth:`bowlrp.rules.AlphaBeta.scales` of ``(z+, z-)`` sums ``pos``, ``neg`` written into the buffers
    ``buf``: the same values, without a fresh array per step."""
    shape = A.shape
    tiny = xp.multiply(A, RTOL, out=buf("tiny", shape))
    if not bool(tiny.min() > FLOOR):
        xp.maximum(tiny, FLOOR, out=tiny)
    ok, num = buf("ok", shape, xp.bool_), buf("num", shape)
    xp.greater(pos, tiny, out=ok)  # z+_j > tiny
    s_pos = _divide(xp.multiply(R, rule.alpha, out=num), pos, ok, xp, out=buf("s+", shape))
    xp.less(neg, xp.negative(tiny, out=tiny), out=ok)  # z-_j < -tiny
    s_neg = _divide(xp.multiply(R, rule.beta, out=num), neg, ok, xp, out=buf("s-", shape))
    return (s_pos, s_neg), xp.greater(A, 0.0, out=buf("reached", shape, xp.bool_))


def _z_rule(C, W, R, rule, xp, Y, out, buf):
    """The rules of the message itself (proportional, epsilon): one matrix product per chunk (eq. 2.31).

    The messages' magnitude is bounded by Cauchy-Schwarz, ``sum_i |c_i W_ji|
    <= ||c|| ||W_j||``.  For the proportional rule the denominator's test
    (:func:`bowlrp.rules.usable`) and the division are written into the
    reused buffers ``buf`` (``RTOL`` folded into ``||W_j||``; the absolute
    floor compared only where some bound is below it).
    """
    n, d_out = Y.shape
    cn = xp.sqrt(xp.einsum("ij,ij->i", C, C))
    wn = xp.sqrt(xp.einsum("ij,ij->i", W, W))
    if type(rule) is not Proportional:
        (sc,), reached = rule.scales((Y,), cn[:, None] * wn[None, :], R, xp)
    else:
        bound = xp.multiply(cn[:, None], RTOL * wn[None, :], out=buf("bound", (n, d_out)))
        if not bool(bound.min() > FLOOR):
            xp.maximum(bound, FLOOR, out=bound)
        reached = xp.greater(xp.abs(Y, out=buf("absY", (n, d_out))), bound, out=buf("reached", (n, d_out), xp.bool_))
        sc = _divide(R, Y, reached, xp, out=buf("scale", (n, d_out)))
    res = xp.matmul(sc, W, out=out)
    res *= C
    return res, reached


def linear_map_relevance(C, W, R, rule, xp, Y=None, out=None, reduce=None):
    """Relevance of the inputs of ``y = W c`` per descriptor (eq. 2.31): ``(n, d_out) -> (n, d_in)``.

    Parameters
    ----------
    C : array (n, d_in)
        Centred descriptors (the inputs of the map).
    W : array (d_out, d_in)
        The map (PCA components).
    R : array (n, d_out), float64
        Relevance of the outputs.
    rule : Rule
        A mapping rule (:func:`bowlrp.rules.mapping_rule`).
    Y : array (n, d_out) or None
        ``C @ W.T`` in float64 when the caller has it (the column sums of the
        proportional and epsilon rules).
    out : array (n, d_in), float64, or None
        Where to write the result (a caller's reused buffer); a new array when None.
    reduce : callable or None
        A map ``(m, d_in) -> (m, w)`` (such as
        :func:`bowlrp.features.pixel_rules.bin_parts`) applied to each chunk
        of rows while it is in cache; ``out`` and the result are then ``(n, w)``.

    Returns
    -------
    array (n, d_in), float64
        Outputs none of whose messages is usable (``y_j = 0``, see
        :mod:`bowlrp.rules`) spread their relevance evenly over the inputs.

    Examples
    --------
    One output ``y = c_1 + c_2 = 2 - 1`` with relevance 3:

    >>> import numpy as np
    >>> from bowlrp.rules import Flat, mapping_rule
    >>> C, W, R = np.array([[2.0, -1.0]]), np.array([[1.0, 1.0]]), np.array([[3.0]])
    >>> linear_map_relevance(C, W, R, mapping_rule(), np)  # proportional: z_ij / y_j R_j
    array([[ 6., -3.]])
    >>> linear_map_relevance(C, W, R, Flat(), np)
    array([[1.5, 1.5]])
    """
    n, d_in = C.shape
    W = asarray(W, xp, dtype=xp.float64)
    if out is None and reduce is None:
        out = xp.empty((n, d_in), dtype=xp.float64)
    elif out is None and n == 0:
        return reduce(xp.zeros((1, d_in), dtype=xp.float64))[:0]
    signed = set(rule.phis) <= set(_SIGNS)
    aW = xp.abs(W) if signed else None
    halves = (0.5 * W, 0.5 * aW) if signed else None
    buf = thread_scratch(xp)
    for a, b in _chunk_rows(n, 6 * (d_in + W.shape[0])):
        Cc = C[a:b].astype(xp.float64, copy=False)
        Yc = None if Y is None else Y[a:b].astype(xp.float64, copy=False)
        res = out[a:b] if reduce is None else buf("result", (b - a, d_in))
        if signed:
            _, reached = _sign_rule(Cc, W, R[a:b], rule, xp, Yc, out=res, aW=aW, buf=buf, halves=halves)
        else:
            res[...], reached = _generic(Cc, W, R[a:b], rule, xp, Yc)
        if not bool(reached.all()):
            res += (xp.where(reached, 0.0, R[a:b]).sum(1) / d_in)[:, None]
        if reduce is not None:
            part = reduce(res)
            out = xp.empty((n, part.shape[1]), dtype=xp.float64) if out is None else out
            out[a:b] = part
    return out


class DescriptorPCA(ExplainableTransformerMixin, TransformerMixin, BaseEstimator):
    """PCA of local descriptors, one per descriptor level, explainable with LRP (App. D.1.1).

    Descriptor sets in, descriptor sets of ``n_components`` dimensions out:
    a :class:`bowlrp.DescriptorSet` becomes a
    :class:`~bowlrp.encoders.descriptor_sets.ProjectedDescriptorSet` with the
    same geometry (centres, boxes, levels), a plain ``(n_i, D)`` array an
    ``(n_i, n_components)`` array.  Its relevance step is the linear map of
    eq. 2.31 with any mapping rule (see the module docstring): relevance per
    output dimension ``(n_i, n_components)`` becomes relevance per input
    dimension ``(n_i, D)``; relevance per descriptor ``(n_i,)`` passes
    through unchanged (the projection maps each descriptor on its own).

    Parameters
    ----------
    n_components : int, default=80
        Output dimension (the thesis: 80 of SIFT's 128).
    max_descriptors : int, default=50000
        Training descriptors per level sampled for the fit.
    random_state : int, RandomState or None

    Attributes
    ----------
    pcas_ : list of sklearn.decomposition.PCA
        One per level.
    n_levels_ : int
    n_dims_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.random((40, 8)) for _ in range(3)]
    >>> pca = DescriptorPCA(n_components=3, random_state=0).fit(sets)
    >>> Y, trace = pca.forward(sets)
    >>> Y[0].shape
    (40, 3)
    >>> R = pca.relevance([y * 1.0 for y in Y], trace)   # R_j = y_j: the proportional rule gives c_i W_ji
    >>> R[0].shape, bool(np.allclose(R[0].sum(1), Y[0].sum(1)))
    ((40, 8), True)
    """

    input_kind = "descriptors"
    takes_mapping_rule = True

    def __init__(self, n_components=80, max_descriptors=50000, random_state=None):
        self.n_components = n_components
        self.max_descriptors = max_descriptors
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit one PCA per descriptor level on sampled training descriptors.

        Parameters
        ----------
        X : list of descriptor sets or (n_i, D) arrays
        y : ignored
        """
        check_int(self, "n_components", 1)
        check_int(self, "max_descriptors", 1)
        descs, levels, n_levels = check_descriptor_sets(X)
        D = descs[0].shape[1]
        if self.n_components > D:
            raise ValueError(f"n_components={self.n_components} exceeds the descriptor dimension {D}")
        rng = check_random_state(self.random_state)
        pcas = []
        for s in range(n_levels):
            pool = level_sample(descs, levels, s, self.max_descriptors, rng)
            if len(pool) < self.n_components:
                raise ValueError(
                    f"level {s} has {len(pool)} training descriptors, fewer than n_components="
                    f"{self.n_components}; use more images or fewer components"
                )
            pcas.append(PCA(n_components=self.n_components,
                            random_state=rng.randint(np.iinfo(np.int32).max)).fit(pool))
        self.pcas_ = pcas
        self.n_levels_ = n_levels
        self.n_dims_in_ = D
        self.n_features_in_ = D
        return self

    def _check(self, X):
        check_is_fitted(self, "pcas_")
        descs, levels, n_levels = check_descriptor_sets(X)
        if n_levels > self.n_levels_ or any(d.shape[1] != self.n_dims_in_ for d in descs):
            raise ValueError(
                f"descriptors do not match the fitted PCA ({self.n_levels_} level(s) of dimension "
                f"{self.n_dims_in_})"
            )
        return descs, levels

    def forward(self, X):
        """Project ``X``; return ``(sets, trace)`` (the trace holds the input descriptors, not copies)."""
        descs, levels = self._check(X)
        out = []
        for s_in, d, lv in zip(X, descs, levels):
            xp = get_namespace(d)
            Y = xp.empty((d.shape[0], self.n_components), dtype=xp.float64)
            for s in np.unique(lv):
                sel = np.flatnonzero(lv == s)
                p = self.pcas_[s]
                Y[xp.asarray(sel)] = project(d[xp.asarray(sel)], p.mean_, p.components_, xp, xp.float64)[0]
            out.append(ProjectedDescriptorSet(Y, s_in) if hasattr(s_in, "levels") else Y)
        return out, {"descriptors": descs, "levels": levels}

    def transform(self, X):
        """The projected descriptor sets (geometry kept)."""
        return self.forward(X)[0]

    def relevance(self, relevance, trace, rule=None):
        """Relevance per input dimension from relevance per output dimension (eq. 2.31).

        Parameters
        ----------
        relevance : list of arrays (n_i, n_components) or (n_i,)
        trace : dict
            From :meth:`forward` on the same inputs.
        rule : str, Rule or None
            A mapping rule (None: proportional).

        Returns
        -------
        list of arrays ``(n_i, n_dims_in_)``, or ``(n_i,)`` for per-descriptor input
        """
        rule = mapping_rule(rule)
        descs, levels = trace["descriptors"], trace["levels"]
        if len(relevance) != len(descs):
            raise ValueError(f"relevance has {len(relevance)} entries for {len(descs)} descriptor sets")
        result = []
        for i, (R, d, lv) in enumerate(zip(relevance, descs, levels)):
            xp = get_namespace(d)
            R = asarray(R, xp, dtype=xp.float64)
            if R.shape == (d.shape[0],):
                result.append(R)
                continue
            if R.shape != (d.shape[0], self.n_components):
                raise ValueError(
                    f"relevance[{i}] must have shape {(d.shape[0], self.n_components)} or {(d.shape[0],)}, "
                    f"got {tuple(R.shape)}"
                )
            out = xp.empty((d.shape[0], self.n_dims_in_), dtype=xp.float64)
            for s in np.unique(lv):
                sel = xp.asarray(np.flatnonzero(lv == s))
                p = self.pcas_[s]
                Y, C = project(d[sel], p.mean_, p.components_, xp, xp.float64)
                out[sel] = linear_map_relevance(C, p.components_, R[sel], rule, xp, Y=Y)
            result.append(out)
        return result

    def get_feature_names_out(self, input_features=None):
        """``pc0 .. pc{n_components-1}`` (per level)."""
        check_is_fitted(self, "pcas_")
        return np.array([f"pc{j}" for j in range(self.n_components)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = False
        return tags
