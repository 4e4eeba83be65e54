"""Relevance rules for the mapping stages, as small validated objects.

A stage maps inputs ``i`` to outputs ``j`` with forward messages ``z_ij``,
aggregated as ``z_j = sum_i z_ij`` (eq. 2.8).  Every rule here sends the
relevance ``R_j`` of an output back as

    R_{i<-j} = sum_phi phi(z_ij) * s_phi[j]                    (eq. 2.11)

where each ``phi`` is an elementwise transform of the messages (``"z"``,
``"pos"``, ``"neg"``, ``"abs"`` or ``"one"``: the message itself, its positive
or negative part, its magnitude, or 1 where it is non-zero) and the scales
``s_phi[j]`` depend only on the output: on ``R_j`` and the column sums
``sum_i phi(z_ij)``.  That form lets a stage compute the column sums its own
way (a bincount for sparse Bag-of-Words mappings, matrix products for Fisher
vectors) and never materialise more than it must.  The input relevance is
``R_i = sum_j R_{i<-j}`` (eq. 2.12).

Rules are created by name with :func:`get_rule` (``get_rule("epsilon",
epsilon=1.0)``); an unknown name answers with the valid ones, and parameters
are validated when a rule is built.
"""

import math
from numbers import Real

__all__ = [
    "Rule",
    "Proportional",
    "Epsilon",
    "AlphaBeta",
    "Magnitude",
    "Flat",
    "get_rule",
    "phi",
    "redistribute_sparse",
    "RULES",
]

PHIS = ("z", "pos", "neg", "abs", "one")


def phi(name, z, xp):
    """Elementwise transform ``name`` of forward messages ``z`` (see module docstring)."""
    if name == "z":
        return z
    if name == "pos":
        return xp.maximum(z, 0.0)
    if name == "neg":
        return xp.minimum(z, 0.0)
    if name == "abs":
        return xp.abs(z)
    if name == "one":
        return (z != 0).astype(z.dtype)
    raise ValueError(f"unknown message transform {name!r}; valid: {list(PHIS)}")


def _safe_div(num, den, ok, xp):
    return xp.where(ok, num / xp.where(ok, den, 1.0), 0.0)


class Rule:
    """Base class of the mapping-stage rules.

    Attributes
    ----------
    name : str
        Registry name.
    exact : bool
        Whether the rule conserves relevance exactly for every output it
        reaches (``sum_i R_{i<-j} = R_j``).
    phis : tuple of str
        The message transforms the rule needs.
    """

    name = None
    exact = False
    phis = ("z",)

    def scales(self, sums, support, R, xp):
        """Per-output scales for each transform in :attr:`phis`.

        Parameters
        ----------
        sums : tuple of arrays (n_outputs,)
            ``sum_i phi(z_ij)`` for each ``phi`` in :attr:`phis`, in order.
        support : bool array (n_outputs,)
            Outputs with at least one non-zero message.
        R : array (n_outputs,)
            Relevance of the outputs.
        xp : module
            NumPy or CuPy.

        Returns
        -------
        scales : tuple of arrays (n_outputs,)
        reached : bool array (n_outputs,)
            Outputs whose relevance the messages carry back; the stage decides
            where the relevance of the others goes (e.g. eq. 2.79).
        """
        raise NotImplementedError

    def params(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.params() == other.params()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.params().items()))))


class Proportional(Rule):
    """``R_{i<-j} = z_ij / z_j R_j`` (eq. 2.10; for BoW eq. 2.78-2.79).

    Exact.  Outputs with ``z_j = 0`` are not reached, so that the stage can
    apply the zero-mapping case of eq. 2.79 instead of dividing by zero.
    """

    name = "z"
    exact = True
    phis = ("z",)

    def scales(self, sums, support, R, xp):
        (zj,) = sums
        reached = zj != 0
        return (_safe_div(R, zj, reached, xp),), reached


class Epsilon(Rule):
    """``R_{i<-j} = z_ij / (z_j + epsilon sign(z_j)) R_j`` with ``sign(0) = 1`` (eq. 2.22).

    Not exact: the stabiliser absorbs relevance, and without a bias term what
    reaches the inputs is ``R_j z_j / (z_j + epsilon sign(z_j))`` (eq. 2.23 with
    ``b_j = 0``).  Outputs without a non-zero message are not reached, nor
    (with ``epsilon=0``) outputs whose messages cancel to ``z_j = 0``: like the
    proportional rule, the stage then applies its zero-mapping case.

    Parameters
    ----------
    epsilon : float, default=1.0
        Stabiliser, ``>= 0`` (the thesis uses 1 and 100 for Fisher vectors).
    """

    name = "epsilon"
    phis = ("z",)

    def __init__(self, epsilon=1.0):
        if not isinstance(epsilon, Real) or isinstance(epsilon, bool) or not 0 <= epsilon < math.inf:
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        self.epsilon = float(epsilon)

    def scales(self, sums, support, R, xp):
        (zj,) = sums
        sign = xp.where(zj >= 0, 1.0, -1.0)
        den = zj + self.epsilon * sign
        reached = support & (den != 0)
        return (_safe_div(R, den, reached, xp),), reached


class AlphaBeta(Rule):
    """``R_{i<-j} = (alpha z+_ij / z+_j + beta z-_ij / z-_j) R_j`` (eq. 2.26).

    The thesis' convention: ``alpha + beta = 1`` with ``alpha >= 1``, so
    ``beta <= 0`` (``alpha=2, beta=-1`` is "alpha-beta 2/1"; ``alpha=1,
    beta=0`` is the z+ rule).  The positive messages receive ``alpha R_j`` and
    the negative ones ``beta R_j``; relevance is conserved exactly for outputs
    with both positive and negative messages.  Where all messages have one
    sign, only that part is sent: ``alpha R_j`` (or ``beta R_j``), as the
    equation reads.

    Parameters
    ----------
    alpha : float, default=2.0
    beta : float, default=-1.0
    """

    name = "alphabeta"
    phis = ("pos", "neg")

    def __init__(self, alpha=2.0, beta=-1.0):
        for n, v in (("alpha", alpha), ("beta", beta)):
            if not isinstance(v, Real) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{n} must be a finite number, got {v!r}")
        if not (abs(alpha + beta - 1.0) <= 1e-12 and alpha >= 1):
            raise ValueError(
                f"alpha-beta needs alpha + beta = 1 and alpha >= 1 (eq. 2.26), got alpha={alpha}, beta={beta}; "
                "e.g. alpha=2, beta=-1 or alpha=1, beta=0"
            )
        self.alpha = float(alpha)
        self.beta = float(beta)

    def scales(self, sums, support, R, xp):
        zp, zn = sums
        return (
            _safe_div(self.alpha * R, zp, zp > 0, xp),
            _safe_div(self.beta * R, zn, zn < 0, xp),
        ), support


class Magnitude(Rule):
    """``R_{i<-j} = |z_ij| / sum_i' |z_i'j| R_j``: magnitudes only.

    Conserves exactly, but every input of an output gets relevance of the
    output's sign: the counter-example of eq. 2.7, compared in Fig. 4.3.
    """

    name = "abs"
    exact = True
    phis = ("abs",)

    def scales(self, sums, support, R, xp):
        (za,) = sums
        return (_safe_div(R, za, support, xp),), support


class Flat(Rule):
    """``R_{i<-j} = R_j / #{i : z_ij != 0}`` (the flat rule, eq. 2.27).

    Spreads each output's relevance evenly over the inputs that send it a
    non-zero message (its receptive field in a sparse mapping).  Exact.
    """

    name = "flat"
    exact = True
    phis = ("one",)

    def scales(self, sums, support, R, xp):
        (n,) = sums
        return (_safe_div(R, n, support, xp),), support


RULES = {cls.name: cls for cls in (Proportional, Epsilon, AlphaBeta, Magnitude, Flat)}
_ALIASES = {"proportional": "z", "alpha-beta": "alphabeta", "alpha_beta": "alphabeta", "magnitude": "abs"}


def get_rule(rule, **params):
    """Return a :class:`Rule` for ``rule`` (a name or a Rule instance).

    Examples
    --------
    >>> get_rule("z")
    Proportional()
    >>> get_rule("epsilon", epsilon=100)
    Epsilon(epsilon=100.0)
    """
    if isinstance(rule, Rule):
        if params:
            raise TypeError("rule parameters go into the Rule object when passing an instance")
        return rule
    if isinstance(rule, str):
        key = _ALIASES.get(rule.lower(), rule.lower())
        if key in RULES:
            try:
                return RULES[key](**params)
            except TypeError:
                raise TypeError(f"rule {key!r} takes no parameters {sorted(params)}") from None
    valid = sorted(RULES) + sorted(_ALIASES)
    raise ValueError(f"unknown rule {rule!r}; valid rules are {valid}")


def redistribute_sparse(rule, z, cols, n_cols, R, xp):
    """Apply ``rule`` to sparse forward messages.

    Parameters
    ----------
    rule : Rule
    z : array (n_entries,)
        Forward messages ``z_ij`` that may be non-zero.
    cols : int array (n_entries,)
        Output ``j`` of each message.
    n_cols : int
    R : array (n_cols,)
        Relevance of the outputs.

    Returns
    -------
    messages : array (n_entries,)
        ``R_{i<-j}`` for each stored message.
    reached : bool array (n_cols,)
        Outputs whose relevance the messages carry back.
    """
    support = xp.bincount(cols, weights=xp.abs(z), minlength=n_cols) > 0
    transformed = [phi(p, z, xp) for p in rule.phis]
    sums = tuple(xp.bincount(cols, weights=t, minlength=n_cols) for t in transformed)
    scales, reached = rule.scales(sums, support, R, xp)
    messages = sum(t * s[cols] for t, s in zip(transformed, scales))
    return messages, reached
