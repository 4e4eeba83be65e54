"""LRP rules: one family of small validated objects, for mapping stages and network layers.

**Mapping stages** (Bag-of-Words, Fisher vectors, PCA) map inputs ``i`` to
outputs ``j`` with forward messages ``z_ij``, aggregated as ``z_j = sum_i
z_ij`` (eq. 2.8).  A rule sends the relevance ``R_j`` of an output back as

    R_{i<-j} = sum_phi phi(z_ij) * s_phi[j]                    (eq. 2.11)

where each ``phi`` is an elementwise transform of the messages (``"z"``,
``"pos"``, ``"neg"``, ``"abs"`` or ``"one"``: the message itself, its positive
or negative part, its magnitude, or 1 where it is non-zero) and the scales
``s_phi[j]`` depend only on the output: on ``R_j``, the column sums ``sum_i
phi(z_ij)`` and the magnitude ``sum_i |z_ij|`` (:meth:`Rule.scales`).  That
form lets a stage compute the column sums its own way (a bincount for sparse
Bag-of-Words mappings, matrix products for Fisher vectors) and never
materialise more than it must.  The input relevance is ``R_i = sum_j
R_{i<-j}`` (eq. 2.12).

**Network layers** (:mod:`bowlrp.cnn`) are affine maps ``z_j = sum_i x_i w_ij
+ b_j``; :meth:`Rule.relevance` writes each rule with the layer's two
primitives ``apply(x, W, b)`` and its transpose ``apply_T(s, W, x_shape)``, so
one implementation serves convolutions and dense layers:

==================  ====================================================================  =====================
rule                ``R_i = sum_j q_ij / sum_i' q_i'j * R_j`` with ``q_ij =``             reference
==================  ====================================================================  =====================
``Proportional``    ``z_ij``; denominator ``z_j`` (bias in ``z_j``)                       thesis eq. 2.10, 2.21
``Epsilon(eps)``    ``z_ij``; denominator ``z_j + eps sign(z_j)`` (bias in ``z_j``)       thesis eq. 2.22
``AlphaBeta(a,b)``  ``a z+_ij / (z+_j + b+_j) + b z-_ij / (z-_j + b-_j)``, ``a + b = 1``  thesis eq. 2.26
``ZPlus()``         alpha-beta with ``alpha=1, beta=0``: ``x_i w+_ij`` for ``x >= 0``     paper 000 Sec. III.B
``Magnitude()``     ``|z_ij|``                                                            thesis eq. 2.7
``Flat()``          ``1`` (every input of the output alike)                               thesis eq. 2.27
``WSquare()``       ``w_ij^2`` (layers only)                                              paper 000 eq. 12
``ZBox(l, h)``      ``x_i w_ij - l_i w+_ij - h_i w-_ij`` (layers only)                    paper 000 Sec. III.B
==================  ====================================================================  =====================

**Alpha-beta convention.** bowlrp follows the thesis (eq. 2.26): ``alpha +
beta = 1`` with ``alpha >= 1``, so ``beta <= 0``; the negative part is *added*
with weight ``beta``.  "Alpha-beta 2/1" is ``AlphaBeta(2, -1)``; it is
``alpha=2, beta=1`` in paper 000's supplement and in zennit, whose ``alpha -
beta = 1`` subtracts the negative part.  The two are the same rule, and the
zennit spelling raises an error that says so.

**Vanishing denominators.** A denominator whose magnitude is below
``RTOL`` times the magnitude of the messages it sums (``sum_i |z_ij|``), or
below ``FLOOR``, is treated as zero: that output is *not reached* and the
stage applies its zero-mapping case (eq. 2.79), or (in a network) the
relevance is absorbed.  Dividing by it would give relevances of order
``R_j / RTOL`` that cancel in floating point, or overflow to inf and NaN
(subnormal sums of underflowing GMM posteriors), for no information.

Rules are created by name with :func:`get_rule` (``get_rule("epsilon",
epsilon=1.0)``); an unknown name answers with the valid ones, and parameters
are validated when a rule is built.
"""

import inspect
from numbers import Real

from ._backend import get_namespace
from ._validation import InvalidParameterError, check_number
from .messages import FLOOR, RTOL, _divide, _sign, phi, redistribute_sparse, usable

__all__ = [
    "Rule",
    "Proportional",
    "Epsilon",
    "AlphaBeta",
    "ZPlus",
    "Magnitude",
    "Flat",
    "WSquare",
    "ZBox",
    "get_rule",
    "rule_class",
    "rule_parameters",
    "mapping_rule",
    "phi",
    "redistribute_sparse",
    "usable",
    "RULES",
    "RTOL",
    "FLOOR",
]

class Rule:
    """Base class of the LRP rules.

    Attributes
    ----------
    name : str
        Registry name (:func:`get_rule`).
    exact : bool
        Whether the rule conserves relevance exactly for every output it
        reaches in a mapping stage (``sum_i R_{i<-j} = R_j``).
    phis : tuple of str
        The message transforms the mapping form needs.
    stages : tuple of str
        Where the rule applies: ``"mapping"`` (:meth:`scales`) and/or
        ``"layer"`` (:meth:`relevance`).

    Examples
    --------
    A mapping stage passes the column sums of the messages ``z_ij`` (here 3
    inputs, 2 outputs) and gets one scale per output, ``R_{i<-j} = z_ij s_j``:

    >>> import numpy as np
    >>> z = np.array([[2.0, 1.0], [-1.0, 0.0], [3.0, 0.0]])
    >>> rule = Proportional()
    >>> rule.phis, rule.exact, rule.stages
    (('z',), True, ('mapping', 'layer'))
    >>> (s,), reached = rule.scales((z.sum(0),), np.abs(z).sum(0), np.array([12.0, 5.0]), np)
    >>> s, reached
    (array([3., 5.]), array([ True,  True]))
    >>> z * s  # each column sums to its output's relevance
    array([[ 6.,  5.],
           [-3.,  0.],
           [ 9.,  0.]])
    """

    name = None
    exact = False
    phis = ("z",)
    stages = ("mapping", "layer")

    def scales(self, sums, magnitude, R, xp):
        """Per-output scales for each transform in :attr:`phis` (mapping stages, eq. 2.11).

        Parameters
        ----------
        sums : tuple of arrays (n_outputs,)
            ``sum_i phi(z_ij)`` for each ``phi`` in :attr:`phis`, in order.
        magnitude : array (n_outputs,)
            ``sum_i |z_ij|`` (a stage may pass an upper bound of it); zero for
            outputs without a non-zero message.
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
        raise ValueError(
            f"the {self.name!r} rule applies to network layers only; mapping stages take "
            f"{sorted(n for n, c in RULES.items() if 'mapping' in c.stages)}"
        )

    def relevance(self, layer, x, R, trace=None):
        """Relevance of the inputs ``x`` of a linear layer from the relevance ``R`` of its outputs."""
        raise ValueError(f"the {self.name!r} rule applies to mapping stages only, not to network layers")

    def params(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.params() == other.params()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.params().items()))))


def _z_layer(layer, x, R, epsilon):
    """Proportional / epsilon rule on a layer: ``x * W^T (R / (z + eps sign z))`` (eq. 2.21-2.22)."""
    xp = get_namespace(x)
    z = layer.apply(x, layer.W, layer.b)
    if epsilon:
        den = z + epsilon * _sign(z, xp)
        ok = xp.abs(den) > FLOOR
    else:
        den = z
        mag = layer.apply(xp.abs(x), xp.abs(layer.W), xp.abs(layer.b))
        ok = usable(den, mag, xp)
    return x * layer.apply_T(_divide(R, den, ok, xp), layer.W, x.shape)


class Proportional(Rule):
    """``R_{i<-j} = z_ij / z_j R_j`` (eq. 2.10; for BoW eq. 2.78-2.79; LRP-0 on layers, eq. 2.21).

    Exact in mapping stages.  Outputs with a vanishing ``z_j`` are not
    reached, so that the stage can apply the zero-mapping case of eq. 2.79
    instead of dividing by zero.  On a layer the bias is part of ``z_j``
    (eq. 2.21); on ReLU networks with zero biases the rule equals gradient x
    input.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> Proportional().relevance(layer, x, R)
    array([[ 6., -3.,  9.]])
    """

    name = "z"
    exact = True
    phis = ("z",)

    def scales(self, sums, magnitude, R, xp):
        (zj,) = sums
        reached = usable(zj, magnitude, xp)
        return (_divide(R, zj, reached, xp),), reached

    def relevance(self, layer, x, R, trace=None):
        return _z_layer(layer, x, R, 0.0)


class Epsilon(Rule):
    """``R_{i<-j} = z_ij / (z_j + epsilon sign(z_j)) R_j`` with ``sign(0) = 1`` (eq. 2.22).

    Not exact: the stabiliser absorbs relevance, and without a bias term what
    reaches the inputs is ``R_j z_j / (z_j + epsilon sign(z_j))`` (eq. 2.23 with
    ``b_j = 0``).  Outputs without a non-zero message are not reached, nor
    (with ``epsilon=0``) outputs whose messages cancel to a vanishing ``z_j``:
    like the proportional rule, the stage then applies its zero-mapping case.
    On a layer the bias is part of ``z_j`` (thesis eq. 2.21).

    Parameters
    ----------
    epsilon : float, default=1.0
        Stabiliser, ``>= 0``.  The thesis uses 1 and 100 for Fisher vectors;
        on a CNN's logits a smaller value (the ``"epsilon"`` composite: 0.01)
        absorbs less.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> rel = Epsilon(1.0).relevance(layer, x, R)  # denominator z_j + 1 = 5
    >>> rel
    array([[ 4.8, -2.4,  7.2]])
    >>> float(rel.sum())  # the stabiliser absorbed 12 / 5
    9.6
    """

    name = "epsilon"
    phis = ("z",)

    def __init__(self, epsilon=1.0):
        self.epsilon = check_number(epsilon, "epsilon", low=0)

    def scales(self, sums, magnitude, R, xp):
        (zj,) = sums
        den = zj + self.epsilon * _sign(zj, xp)
        reached = (magnitude > 0) & usable(den, magnitude, xp)
        return (_divide(R, den, reached, xp),), reached

    def relevance(self, layer, x, R, trace=None):
        return _z_layer(layer, x, R, self.epsilon)


class AlphaBeta(Rule):
    """``R_{i<-j} = (alpha z+_ij / z+_j + beta z-_ij / z-_j) R_j`` (eq. 2.26).

    The thesis' convention: ``alpha + beta = 1`` with ``alpha >= 1``, so
    ``beta <= 0`` (``alpha=2, beta=-1`` is "alpha-beta 2/1"; ``alpha=1,
    beta=0`` is the z+ rule).  The positive messages receive ``alpha R_j`` and
    the negative ones ``beta R_j``; relevance is conserved exactly for outputs
    with both positive and negative messages.  Where all messages have one
    sign (or one part vanishes, see the module docstring), only the other part
    is sent: ``alpha R_j`` (or ``beta R_j``), as the equation reads.  On a
    layer ``z+_ij = (x_i w_ij)^+`` for inputs of any sign, and the positive
    (negative) part of the bias enters the positive (negative) denominator
    (paper 000, Supp. Sec. IV), so a positive bias absorbs relevance.

    Parameters
    ----------
    alpha : float, default=2.0
    beta : float, default=-1.0

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> AlphaBeta(2, -1).relevance(layer, x, R)  # 2 x 12 over (2, 3), -1 x 12 to the -1
    array([[  9.6, -12. ,  14.4]])
    >>> AlphaBeta(2, 1)  # the zennit spelling of the same rule
    Traceback (most recent call last):
    ...
    bowlrp._validation.InvalidParameterError: alpha-beta needs alpha + beta = 1 and alpha >= 1 (thesis eq. 2.26), got alpha=2, beta=1 (zennit and paper 000 write beta=1 for what is beta=-1 here); e.g. alpha=2, beta=-1 or alpha=1, beta=0
    """

    name = "alphabeta"
    phis = ("pos", "neg")

    def __init__(self, alpha=2.0, beta=-1.0):
        alpha = check_number(alpha, "alpha")
        beta = check_number(beta, "beta")
        if not (abs(alpha + beta - 1.0) <= 1e-12 and alpha >= 1):
            hint = (f" (zennit and paper 000 write beta={beta:g} for what is beta={-beta:g} here)"
                    if abs(alpha - beta - 1.0) < 1e-12 and beta > 0 else "")
            raise InvalidParameterError(
                f"alpha-beta needs alpha + beta = 1 and alpha >= 1 (thesis eq. 2.26), got alpha={alpha:g}, "
                f"beta={beta:g}{hint}; e.g. alpha=2, beta=-1 or alpha=1, beta=0"
            )
        self.alpha = alpha
        self.beta = beta

    def scales(self, sums, magnitude, R, xp):
        zp, zn = sums
        tiny = xp.maximum(RTOL * magnitude, FLOOR)
        return (
            _divide(self.alpha * R, zp, zp > tiny, xp),
            _divide(self.beta * R, zn, zn < -tiny, xp),
        ), magnitude > 0

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        W, b = layer.W, layer.b
        xpos, xneg = xp.maximum(x, 0), xp.minimum(x, 0)
        Wpos, Wneg = xp.maximum(W, 0), xp.minimum(W, 0)

        def part(Wa, Wb, bias, sign):  # messages x+ Wa + x- Wb (+ the bias part of that sign)
            z = layer.apply(xpos, Wa, bias) + layer.apply(xneg, Wb)
            s = _divide(R, z, sign * z > FLOOR, xp)
            return xpos * layer.apply_T(s, Wa, x.shape) + xneg * layer.apply_T(s, Wb, x.shape)

        out = self.alpha * part(Wpos, Wneg, xp.maximum(b, 0), 1.0)
        if self.beta:
            out = out + self.beta * part(Wneg, Wpos, xp.minimum(b, 0), -1.0)
        return out


class ZPlus(AlphaBeta):
    """The z+-rule of Deep Taylor Decomposition (paper 000, Sec. III.B): ``q_ij = x_i w+_ij``.

    For inputs ``x >= 0`` (ReLU outputs) it is :class:`AlphaBeta` with
    ``alpha=1, beta=0``; a positive bias enters the denominator (paper 000,
    Sec. IV.D).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> ZPlus().relevance(layer, x, R)  # the positive messages 2 and 3 share R
    array([[4.8, 0. , 7.2]])
    >>> rule = ZPlus()
    >>> rule.alpha, rule.beta
    (1.0, 0.0)
    """

    name = "zplus"

    def __init__(self):
        super().__init__(1.0, 0.0)

    def params(self):
        return {}


class Magnitude(Rule):
    """``R_{i<-j} = |z_ij| / sum_i' |z_i'j| R_j``: magnitudes only.

    Conserves exactly, but every input of an output gets relevance of the
    output's sign: the counter-example of eq. 2.7, compared in Fig. 4.3.  On a
    layer ``|z_ij| = |x_i| |w_ij|`` and the bias is left out, so it conserves
    there too.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> Magnitude().relevance(layer, x, R)  # |z| = 2, 1, 3: all of the output's sign
    array([[4., 2., 6.]])
    """

    name = "abs"
    exact = True
    phis = ("abs",)

    def scales(self, sums, magnitude, R, xp):
        (za,) = sums
        reached = za > FLOOR
        return (_divide(R, za, reached, xp),), reached

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        ax, aW = xp.abs(x), xp.abs(layer.W)
        den = layer.apply(ax, aW)
        return ax * layer.apply_T(_divide(R, den, den > FLOOR, xp), aW, x.shape)


class _WeightOnly(Rule):
    """Rules whose messages depend on the weights only (DTD's w^2 and flat rules)."""

    def _weights(self, W):
        raise NotImplementedError

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        V = self._weights(layer.W.astype(x.dtype, copy=False))  # in the explanation's precision
        den = layer.apply(xp.ones_like(x), V)
        return layer.apply_T(_divide(R, den, den > FLOOR, xp), V, x.shape)


class Flat(_WeightOnly):
    """``R_{i<-j} = R_j / #{inputs of j}``: every input of an output alike (the flat rule, eq. 2.27).

    In a mapping stage the inputs of an output are those that send it a
    non-zero message (its receptive field in a sparse mapping); in a layer,
    every input the output sees (zero padding is not an input).  Exact.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> Flat().relevance(layer, x, R)
    array([[4., 4., 4.]])
    """

    name = "flat"
    exact = True
    phis = ("one",)

    def scales(self, sums, magnitude, R, xp):
        (n,) = sums
        reached = n > 0
        return (_divide(R, n, reached, xp),), reached

    def _weights(self, W):
        return get_namespace(W).ones_like(W)


class WSquare(_WeightOnly):
    """``R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j`` (paper 000, eq. 12); network layers only.

    For a convolution the sum over ``i'`` runs over the inputs an output
    actually sees (zero padding is not an input), so the rule conserves at
    the border too.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> WSquare().relevance(layer, x, R)  # w^2 = 1, 1, 4
    array([[2., 2., 8.]])
    """

    name = "wsquare"
    exact = True
    stages = ("layer",)

    def _weights(self, W):
        return W * W


class ZBox(Rule):
    """The z^B-rule (paper 000, Sec. III.B) for inputs bounded by ``low <= x <= high``; layers only.

    ``q_ij = x_i w_ij - l_i w+_ij - h_i w-_ij >= 0`` when ``l <= x <= h``.
    ``low`` and ``high`` are scalars or arrays broadcastable to one input
    sample (``(C, H, W)``); for bowlrp's images in [0, 1] the default is the
    box ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> ZBox(0.0, 2.0).relevance(layer, x, R)  # q = 2, -1 + 2 (the w < 0 input at h = 2), 3
    array([[4., 2., 6.]])
    """

    name = "zbox"
    exact = True
    stages = ("layer",)

    def __init__(self, low=0.0, high=1.0):
        if isinstance(low, Real) and isinstance(high, Real):
            low, high = check_number(low, "low"), check_number(high, "high")
            if not low <= high:
                raise InvalidParameterError(f"ZBox needs low <= high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def params(self):
        return {"low": self.low, "high": self.high}

    def __eq__(self, other):
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self):
        return hash((type(self), repr(self)))

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        lo = xp.broadcast_to(xp.asarray(self.low, dtype=x.dtype), x.shape[1:])
        hi = xp.broadcast_to(xp.asarray(self.high, dtype=x.dtype), x.shape[1:])
        lo, hi = xp.ascontiguousarray(xp.broadcast_to(lo, x.shape)), xp.ascontiguousarray(xp.broadcast_to(hi, x.shape))
        W = layer.W
        Wpos, Wneg = xp.maximum(W, 0), xp.minimum(W, 0)
        den = layer.apply(x, W) - layer.apply(lo, Wpos) - layer.apply(hi, Wneg)
        s = _divide(R, den, den > FLOOR, xp)
        return x * layer.apply_T(s, W, x.shape) - lo * layer.apply_T(s, Wpos, x.shape) - \
            hi * layer.apply_T(s, Wneg, x.shape)


RULES = {cls.name: cls for cls in (Proportional, Epsilon, AlphaBeta, ZPlus, Magnitude, Flat, WSquare, ZBox)}
_ALIASES = {"proportional": "z", "lrp0": "z", "alpha-beta": "alphabeta", "alpha_beta": "alphabeta",
            "magnitude": "abs", "z+": "zplus", "w2": "wsquare", "w^2": "wsquare", "zb": "zbox"}


def rule_class(name):
    """The rule class registered under ``name`` (aliases allowed); unknown names raise ``ValueError``.

    Examples
    --------
    >>> rule_class("alpha-beta")
    <class 'bowlrp.rules.AlphaBeta'>
    >>> rule_class("z+").__name__
    'ZPlus'
    """
    key = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else None
    if key not in RULES:
        valid = sorted(RULES) + sorted(_ALIASES)
        raise ValueError(f"unknown rule {name!r}; valid rules are {valid}")
    return RULES[key]


def get_rule(rule, **params):
    """Return a :class:`Rule` for ``rule`` (a name or a Rule instance).

    Examples
    --------
    >>> get_rule("z")
    Proportional()
    >>> get_rule("epsilon", epsilon=100)
    Epsilon(epsilon=100.0)
    >>> get_rule("alphabeta", alpha=1, beta=0)
    AlphaBeta(alpha=1.0, beta=0.0)
    """
    if isinstance(rule, Rule):
        if params:
            raise TypeError("rule parameters go into the Rule object when passing an instance, "
                            f"e.g. Epsilon(epsilon=...); got {sorted(params)} with {rule!r}")
        return rule
    cls = rule_class(rule)
    unknown = sorted(set(params) - set(rule_parameters(cls.name)))
    if unknown:
        raise TypeError(f"rule {cls.name!r} takes no parameters {unknown}; its parameters are "
                        f"{rule_parameters(cls.name)}")
    return cls(**params)


def rule_parameters(name):
    """The parameter names of rule ``name`` (``[]`` for rules without parameters).

    Examples
    --------
    >>> rule_parameters("alphabeta")
    ['alpha', 'beta']
    >>> rule_parameters("flat")
    []
    """
    cls = rule_class(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]


def mapping_rule(rule=None):
    """The rule a mapping stage applies: ``None`` is the proportional rule; layer-only rules are refused.

    Examples
    --------
    >>> mapping_rule()
    Proportional()
    >>> mapping_rule("epsilon")
    Epsilon(epsilon=1.0)
    >>> mapping_rule("wsquare")
    Traceback (most recent call last):
    ...
    ValueError: the 'wsquare' rule applies to network layers only; mapping stages take ['abs', 'alphabeta', 'epsilon', 'flat', 'z', 'zplus']
    """
    rule = Proportional() if rule is None else get_rule(rule)
    if "mapping" not in rule.stages:
        rule.scales(None, None, None, None)  # raises the message naming the valid rules
    return rule
