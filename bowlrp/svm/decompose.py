"""Decomposing a kernel expansion ``f_r(x) = sum_i c_ri k(s_i, x) + b_r`` over inputs.

One engine for every kernel model bowlrp explains (``KernelSVC``,
``KernelOneClassSVM`` and scikit-learn's fitted linear models and SVMs):

* **exact** for sum-decomposable kernels (eq. 2.70-2.72, A.1, A.3, A.9): the
  relevance of dimension ``d`` is ``sum_i c_ri k_d(s_id, x_d)`` and the bias
  keeps ``b_r``;
* **Taylor** for differentiable kernels (eq. 2.75-2.76, A.5, A.7): a root
  ``x~`` on the decision boundary is searched on the segments between ``x``
  and reference samples scored with the opposite sign, the nearest root is
  kept, and ``R_d = (x - x~)_d df/dx_d(x~)``.  The bias term holds ``f(x~)``
  (zero up to the search tolerance) and ``residual = f(x) - sum_d R_d -
  f(x~)`` is the Taylor remainder.

Bias options for either (``bias=``): ``"keep"`` (its own term, eq. 2.72),
``"uniform"`` (spread evenly, eq. 2.73) and ``"weights"`` for linear models
(spread along ``w``, eq. 2.74; see :func:`spread_bias`).
"""

import contextlib
from dataclasses import dataclass

import numpy as np

from .._backend import asarray, get_namespace
from .._blas import one_thread
from ..explanation import Explanation
from .segments import SegmentScores

__all__ = ["KernelExpansion", "explain_expansion", "find_roots", "spread_bias", "BIAS_MODES", "DECOMPOSITIONS"]

BIAS_MODES = ("keep", "uniform", "weights")
_PER_ROUND = 2  # segments per input searched in each round after the first (all) one
DECOMPOSITIONS = ("auto", "exact", "taylor")
#: Products with at most this many rows against the support vectors run on one BLAS thread.  They are
#: matrix-vector products, bound by memory: with 1-16 rows of 165,000 features against 4 support
#: vectors, two OpenBLAS threads were at most 1.2x faster (2 cores), 1.6x only from 64 rows.  A
#: threaded call also leaves OpenBLAS's worker spinning for about 0.1 s (2^28 cycles), which took a
#: core from the threads of the next stage: 40-110 ms of CPU in each Fisher-vector relevance step
#: that followed an explanation's products.
_FEW_ROWS = 16


def _products_blas(n_rows, xp):
    """Context for products of ``n_rows`` rows against the support vectors: NumPy's BLAS on one thread for
    few rows (:data:`_FEW_ROWS`; the limit of whichever thread holds it, see
    :func:`bowlrp._blas.one_thread`), else nothing changed."""
    return one_thread() if xp is np and n_rows <= _FEW_ROWS else contextlib.nullcontext()


@dataclass
class KernelExpansion:
    """``f_r(x) = sum_i dual_coef[r, i] k(support_vectors[i], x) + intercept[r]``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.svm import make_kernel
    >>> f = KernelExpansion(make_kernel("linear", (2,)), support_vectors=np.array([[1.0, 0.0], [0.0, 1.0]]),
    ...                     dual_coef=np.array([[1.0, -1.0]]), intercept=np.array([0.5]))
    >>> f.outputs(np.array([[2.0, 1.0]]), np)  # 2 - 1 + 0.5
    array([[1.5]])
    >>> f.weight_vector(np)
    array([[ 1., -1.]])
    """

    kernel: object
    support_vectors: np.ndarray
    dual_coef: np.ndarray
    intercept: np.ndarray

    def arrays(self, xp):
        return (
            asarray(self.support_vectors, xp, dtype=xp.float64),
            asarray(self.dual_coef, xp, dtype=xp.float64),
            asarray(self.intercept, xp, dtype=xp.float64),
        )

    def outputs(self, X, xp):
        """All decision functions at ``X``, shape (n, n_outputs)."""
        SV, coef, b = self.arrays(xp)
        with _products_blas(X.shape[0], xp):
            return self.kernel.gram(X, SV, xp) @ coef.T + b

    def weight_vector(self, xp):
        """``w_r = sum_i c_ri beta s_i`` per output (linear kernels only), shape (n_outputs, D)."""
        SV, coef, _ = self.arrays(xp)
        with _products_blas(coef.shape[0], xp):
            return (coef @ SV) * self.kernel.dimension_weights(xp)


def spread_bias(R, Rb, mode, w_rows, xp):
    """Spread the bias relevance ``Rb`` over the features.

    ``"uniform"``: ``R_d += Rb / D`` (eq. 2.73).  ``"weights"``: along ``w``
    (eq. 2.74).  Eq. 2.74 prints ``R_d += w_d / ||w||_2 R_b``, whose weights do
    not sum to one, so relevance would not be conserved; bowlrp uses the
    squared components of the unit vector ``w / ||w||``, ``w_d^2 / ||w||^2``,
    which sum to one (the weights of the w^2 rule, eq. 2.28).

    Returns ``(R, Rb)``, the bias relevance after spreading (zero unless
    ``mode="keep"``).

    Examples
    --------
    >>> import numpy as np
    >>> R, Rb = np.array([[1.0, 2.0]]), np.array([0.5])
    >>> spread_bias(R, Rb, "uniform", None, np)
    (array([[1.25, 2.25]]), array([0.]))
    >>> spread_bias(R, Rb, "weights", np.array([[3.0, 4.0]]), np)  # shares 9/25 and 16/25
    (array([[1.18, 2.32]]), array([0.]))
    """
    if mode == "keep":
        return R, Rb
    if mode == "uniform":
        return R + (Rb / R.shape[1])[:, None], xp.zeros_like(Rb)
    w2 = w_rows * w_rows
    norm = w2.sum(1, keepdims=True)
    share = w2 / xp.where(norm > 0, norm, 1.0)
    share = xp.where(norm > 0, share, 1.0 / R.shape[1])
    return R + share * Rb[:, None], xp.zeros_like(Rb)


def find_roots(score, X, refs, ref_scores, x_scores, tol=1e-5, max_iter=100, n_candidates=None,
               segment_score=None):
    """Nearest root of ``score`` on the segments between each ``x`` and its references.

    Illinois (regula falsi) search on ``x~ = g x + (1 - g) r`` for every pair
    of an input ``x`` and a reference ``r`` scored with the opposite sign, all
    pairs at once; a pair stops when ``|score(x~)| <= tol``.  Of the converged
    roots of an input the one nearest to ``x`` is kept (thesis Sec. 2.4.2).

    The search on a segment never leaves its bracket, so the root it ends on
    lies ``(1 - g) ||x - r||`` from ``x`` with ``g`` inside the current
    bracket.  A segment whose nearest possible root is farther from ``x`` than
    the farthest possible root of another segment of the same input (or a
    root found there) is set aside; should that other segment end without a
    root after all, the segments set aside against it are searched on.  After
    a first step on every segment, each round steps the two segments of each
    input whose roots may lie nearest, so that the others are set aside
    before they cost evaluations.  Every segment that could hold the nearest
    root is searched step for step as without this, so the result is the
    same, with fewer evaluations (a tenth fewer on the toy chi2 and rbf models).

    Parameters
    ----------
    score : callable (points (k, D), owners (k,)) -> (k,), or None
        The explained score of input ``owners[k]`` at ``points[k]``.
    X : array (n, D)
    refs : array (m, D)
    ref_scores : array (n, m)
        ``score`` of input ``a`` at reference ``b``.
    x_scores : array (n,)
    tol, max_iter : stopping rule (``max_iter`` steps per segment).
    n_candidates : int or None
        Search only the segments to the ``n_candidates`` opposite-side
        references nearest to each input (None: all of them).  The nearest
        root almost always lies towards a near reference; fewer segments make
        the search proportionally cheaper.
    segment_score : callable (g (k,), owners (k,), ends (k,)) -> (k,), optional
        The score at ``g X[owners] + (1 - g) refs[ends]``, used instead of
        ``score`` (e.g. :class:`bowlrp.svm.segments.SegmentScores`, which
        evaluates rbf expansions from terms computed once per segment).

    Returns
    -------
    roots : array (n, D)
        The root per input; where no reference has the opposite sign, the
        reference with the smallest ``|score|`` (``found`` is False there).
    root_scores : array (n,)
    found : bool array (n,)
        Whether a root with ``|score| <= tol`` was found.

    Examples
    --------
    The boundary of ``f(p) = p_1 + p_2 - 1`` between ``x = (2, 2)`` and two
    references with ``f < 0``; the root towards ``(0, 0)`` is the nearer:

    >>> import numpy as np
    >>> def f(points, owners):
    ...     return points.sum(axis=1) - 1.0
    >>> X, refs = np.array([[2.0, 2.0]]), np.array([[0.0, 0.0], [-2.0, 0.0]])
    >>> roots, root_scores, found = find_roots(f, X, refs, f(refs, None)[None, :], f(X, None))
    >>> roots, found
    (array([[0.5, 0.5]]), array([ True]))
    """
    xp = get_namespace(X)
    n, m = ref_scores.shape
    opposite = (ref_scores * x_scores[:, None]) < 0
    if n_candidates is not None and n_candidates < m:
        d2 = (X * X).sum(1)[:, None] + (refs * refs).sum(1)[None, :] - 2.0 * (X @ refs.T)
        d2 = xp.where(opposite, d2, xp.inf)
        near = xp.argsort(d2, axis=1)[:, :n_candidates]
        keep = xp.zeros_like(opposite)
        xp.put_along_axis(keep, near, True, axis=1)
        opposite = opposite & keep
    pa, pb = xp.nonzero(opposite)
    if segment_score is None:
        def segment_score(g, owners, ends):
            return score(g[:, None] * X[owners] + (1.0 - g[:, None]) * refs[ends], owners)

    def per_input_min(values):  # min over the segments of each input, shape (n,)
        table = xp.full((n, m), xp.inf)
        table[pa, pb] = values
        return table.min(1) if m else xp.full(n, xp.inf)

    k = pa.shape[0]
    length = xp.sqrt(((X[pa] - refs[pb]) ** 2).sum(1))
    ga = xp.zeros(k)  # parameter of the reference end
    gb = xp.ones(k)  # parameter of the input end
    fa, fb = ref_scores[pa, pb], x_scores[pa]
    g = xp.ones(k)
    fg = fb.copy()
    searching = (xp.abs(fb) > tol) & (max_iter > 0)
    steps = xp.zeros(k, dtype=xp.int64)
    side = xp.zeros(k, dtype=xp.int8)
    aside = xp.zeros(k, dtype=bool)  # still searching, but farther than a root of the same input
    least = xp.full(k, xp.inf)  # the least root distance of a segment set aside
    first = True
    while True:
        act = xp.nonzero(searching & ~aside)[0]
        if act.shape[0] and not first:  # per input, the segments whose roots may lie nearest go first
            act = _nearest_first(act, pa, (1.0 - xp.maximum(ga, gb)) * length,
                                 (1.0 - xp.minimum(ga, gb)) * length, _PER_ROUND, xp)
        first = False
        if act.shape[0] == 0:  # search on what was set aside against a segment that did not converge
            nearest = per_input_min(xp.where(xp.abs(fg) <= tol, (1.0 - g) * length, xp.inf))
            resume = aside & ~(least > nearest[pa])
            if not bool(resume.any()):
                break
            aside = aside & ~resume
            continue
        a, b, fa_, fb_ = ga[act], gb[act], fa[act], fb[act]
        c = b - fb_ * (b - a) / (fb_ - fa_)
        fc = segment_score(c, pa[act], pb[act])
        g[act], fg[act] = c, fc
        same = fc * fb_ > 0  # the root lies between a and c
        # Illinois: when the same end is kept twice, halve its value
        keep_a = same & (side[act] == 1)
        fa_ = xp.where(keep_a, fa_ / 2, fa_)
        new_a = xp.where(same, a, b)
        new_fa = xp.where(same, fa_, fb_)
        ga[act], fa[act] = new_a, new_fa
        gb[act], fb[act] = c, fc
        side[act] = xp.where(same, 1, -1).astype(xp.int8)
        steps[act] += 1
        searching[act] = (xp.abs(fc) > tol) & (steps[act] < max_iter)
        # root distance bounds: [(1 - hi) L, (1 - lo) L] while searching, (1 - g) L once converged
        live = searching & ~aside
        near_end = (1.0 - xp.maximum(ga, gb)) * length
        far_end = xp.where(live, (1.0 - xp.minimum(ga, gb)) * length,
                           xp.where(xp.abs(fg) <= tol, (1.0 - g) * length, xp.inf))
        drop = live & (near_end > per_input_min(far_end)[pa])
        least = xp.where(drop, near_end, least)
        aside = aside | drop
    return _nearest_roots(X, refs, ref_scores, pa, pb, g, fg, (1.0 - g) * length, xp.abs(fg) <= tol)


def _nearest_first(act, owners, near_end, far_end, per_input, xp):
    """The ``per_input`` segments of ``act`` of each input with the nearest possible roots (then the
    nearest farthest ones)."""
    order = act[xp.lexsort(xp.stack([far_end[act], near_end[act], owners[act].astype(xp.float64)]))]
    grouped = owners[order]
    rank = xp.arange(order.shape[0]) - xp.searchsorted(grouped, grouped, side="left")
    return xp.sort(order[rank < per_input])


def _nearest_roots(X, refs, ref_scores, pa, pb, g, fg, dist, converged):
    """Per input, the converged segment root nearest to ``x`` (else the least ``|f|``), vectorised."""
    xp = get_namespace(X)
    n, m = ref_scores.shape
    k = pa.shape[0]
    has_root = xp.zeros(n, dtype=bool)
    has_root[pa[converged]] = True
    key = xp.where(has_root[pa], xp.where(converged, dist, xp.inf), xp.abs(fg))
    table = xp.full((n, m), xp.inf)
    table[pa, pb] = key
    index = xp.full((n, m), -1, dtype=xp.int64)
    index[pa, pb] = xp.arange(k)
    rows = xp.arange(n)
    best = index[rows, xp.argmin(table, axis=1)] if m else xp.full(n, -1, dtype=xp.int64)
    has_segment = best >= 0  # argmin takes the first of equal keys, as a loop over the segments would
    best = xp.where(has_segment, best, 0)
    fallback = xp.argmin(xp.abs(ref_scores), axis=1)  # no reference on the other side
    if k:
        gb = g[best][:, None]
        roots = xp.where(has_segment[:, None], gb * X + (1.0 - gb) * refs[pb[best]], refs[fallback])
        root_scores = xp.where(has_segment, fg[best], ref_scores[rows, fallback])
        found = has_segment & converged[best]
    else:
        roots, root_scores, found = refs[fallback], ref_scores[rows, fallback], xp.zeros(n, dtype=bool)
    return roots, root_scores, found


def explain_expansion(expansion, X, rows, signs, labels, bias="keep", decomposition="auto",
                      references=None, tol=1e-5, max_iter=100, n_candidates=10, outputs=None):
    """Decompose ``signs * f_rows(x)`` of a kernel expansion over the features of ``X``.

    Parameters
    ----------
    expansion : KernelExpansion
    X : array (n, D)
    rows : int array (n,)
        The output explained for each input.
    signs : array (n,)
        +1 or -1 (a binary model explained for its negative class).
    labels : array (n,)
        The explained class labels (stored in the result).
    bias : {"keep", "uniform", "weights"}
    decomposition : {"auto", "exact", "taylor"}
        ``"auto"``: exact for sum-decomposable kernels, Taylor otherwise.
    references : array (m, D) or None
        Taylor reference samples (required for Taylor).
    tol, max_iter : root search stopping rule (``|f(x~)| <= tol``).
    n_candidates : int or None
        Segments searched per input: to its nearest opposite-side references
        (see :func:`find_roots`).
    outputs : array (n, n_outputs) or None
        ``expansion.outputs(X)`` when the caller already has them (e.g. to
        choose the targets); computed otherwise.

    Returns
    -------
    Explanation
        ``features`` (the relevance of the inputs), ``bias``, ``score``,
        ``target``, ``residual``; with ``root`` (n, D) and ``root_found`` (n,)
        for Taylor decompositions.  ``rule`` is ``"exact"`` or ``"taylor"``.

    Examples
    --------
    A histogram-intersection expansion is decomposed exactly (eq. 2.70-2.72):

    >>> import numpy as np
    >>> from bowlrp.svm import make_kernel
    >>> SV, coef = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, -1.0]])
    >>> f = KernelExpansion(make_kernel("hik", (2,)), SV, coef, intercept=np.array([0.25]))
    >>> exp = explain_expansion(f, np.array([[0.5, 0.25]]), rows=[0], signs=[1.0], labels=[1])
    >>> exp.rule, exp.features, exp.bias, exp.score  # 0.5 - 0.25 + 0.25
    ('exact', array([[ 0.5 , -0.25]]), array([0.25]), array([0.5]))

    An rbf expansion by Taylor at a root found towards a reference:

    >>> g = KernelExpansion(make_kernel("rbf", (2,), gammas=[0.5]), SV, coef, intercept=np.array([0.0]))
    >>> exp = explain_expansion(g, np.array([[2.0, 0.0]]), rows=[0], signs=[1.0], labels=[1],
    ...                         references=np.array([[0.0, 2.0]]))
    >>> exp.rule, exp.root, exp.root_found
    ('taylor', array([[1., 1.]]), array([ True]))
    """
    if bias not in BIAS_MODES:
        raise ValueError(f"unknown bias mode {bias!r}; valid modes are {list(BIAS_MODES)}")
    if decomposition not in DECOMPOSITIONS:
        raise ValueError(f"unknown decomposition {decomposition!r}; valid: {list(DECOMPOSITIONS)}")
    kern = expansion.kernel
    if bias == "weights" and kern.name != "linear":
        raise ValueError(f"bias='weights' spreads the bias along w and needs a linear kernel, not {kern.name!r}")
    taylor = decomposition == "taylor" or (decomposition == "auto" and not kern.sum_decomposable)
    if decomposition == "exact" and not kern.sum_decomposable:
        raise ValueError(f"the {kern.name!r} kernel is not sum-decomposable; use decomposition='taylor'")
    xp = get_namespace(X)
    SV, coef_all, b_all = expansion.arrays(xp)
    rows_x = xp.asarray(rows)
    signs_x = asarray(signs, xp, dtype=xp.float64)
    coef = coef_all[rows_x] * signs_x[:, None]
    F = expansion.outputs(X, xp) if outputs is None else asarray(outputs, xp, dtype=xp.float64)
    score = F[xp.arange(F.shape[0]), rows_x] * signs_x
    # w along which bias="weights" spreads (eq. 2.74): one more pass over the support vectors, so only then
    w_rows = expansion.weight_vector(xp)[rows_x] * signs_x[:, None] if bias == "weights" else None
    root = found = None
    if not taylor:
        with _products_blas(X.shape[0], xp):
            R = kern.dimension_terms(X, SV, coef, xp)
        Rb = b_all[rows_x] * signs_x
    else:
        if references is None or len(references) == 0:
            raise ValueError("a Taylor decomposition needs reference samples (references=...)")
        refs = asarray(references, xp, dtype=xp.float64)
        ref_scores = (expansion.outputs(refs, xp)[:, rows_x] * signs_x).T  # (n, m)
        along = SegmentScores(expansion, X, refs, rows_x, signs_x, xp)
        root, Rb, found = find_roots(None, X, refs, ref_scores, score, tol=tol, max_iter=max_iter,
                                     n_candidates=n_candidates, segment_score=along)
        with _products_blas(X.shape[0], xp):
            R = (X - root) * kern.gradient(root, SV, coef, xp)
    R, Rb = spread_bias(R, Rb, bias, w_rows, xp)
    residual = score - R.sum(1) - Rb
    return Explanation(pixels=None, descriptors=None, features=R, bias=Rb, score=score, target=labels,
                       residual=residual, rule="taylor" if taylor else "exact", root=root, root_found=found)
