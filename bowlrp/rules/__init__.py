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

from ..messages import FLOOR, RTOL, phi, redistribute_sparse, usable
from ._base import Rule
from ._input_layers import Flat, WSquare, ZBox
from ._lrp import AlphaBeta, Epsilon, Magnitude, Proportional, ZPlus

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


for _cls in (Rule, *RULES.values()):
    _cls.__module__ = __name__  # documented, printed and pickled as bowlrp.rules.<name>
del _cls
