"""Composites: which rule each layer of a network applies on the way back (as zennit's composites).

A backward pass through a :class:`~.layers.Sequential` network asks every
layer's rule for ``relevance(layer, x, R, trace) -> R_in``.  The LRP rules of
the linear layers are the family of :mod:`bowlrp.rules` (the same objects the
mapping stages use); the rules here cover what only a network has:

=========================  =====================================================  ==========================
rule                       backward step                                          used by
=========================  =====================================================  ==========================
``Pass``                   ``R`` unchanged                                        ReLU under LRP
``Gradient``               the layer's own gradient (``W^T g``, ``g 1(y > 0)``,     gradient, gradient x input
                           the max-pool switches, a sum pool's spread)
``ReLUDeconvNet``          ``max(g, 0)``                                          DeconvNet (paper 004 eq. 2)
``ReLUGuidedBackprop``     ``max(g, 0) 1(y > 0)``                                 Guided Backprop (paper 004 eq. 2)
``Pattern(A)``             ``A^T g``                                              PatternNet (paper 002 eq. 3, 7)
``PatternAttribution(A)``  ``(W * A)^T r``                                        PatternAttribution (paper 002)
``WinnerTakesAll``         all of a pool's relevance to its switch                max pooling under LRP
``PoolProportional``       ``R_i = x_i / sum_window x * R_j`` (paper 000 IV.B)    sum/average pooling; max pooling
=========================  =====================================================  ==========================

A :class:`Composite` maps layer types to rules: ``layer_map`` by type
(``"conv"``, ``"linear"``, ``"relu"``, ``"sumpool"``; linear layers left out
use the proportional rule, LRP-0), ``first_map`` for the lowest linear layer
(the one that sees pixels), ``maxpool`` for max pooling, ``start`` for the
signal the backward pass starts from at the explained output (the score for
LRP and the pattern methods, so relevance sums to it; ``1`` for the
gradient-type methods) and ``multiply_input`` for gradient x input.  The
gradient-type methods are composites too (``"gradient"``, ``"deconvnet"``,
``"guided_backprop"``...), so one backward engine serves every method.
Presets are created by name with :func:`get_composite`.
"""

from .._backend import get_namespace
from ..rules import AlphaBeta, Epsilon, Flat, Proportional, Rule, WSquare, ZBox, ZPlus, get_rule
from .layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, SumPool2d

__all__ = [
    "Composite",
    "COMPOSITES",
    "GRADIENT_COMPOSITES",
    "get_composite",
    "pattern_composite",
    "Pass",
    "Gradient",
    "ReLUDeconvNet",
    "ReLUGuidedBackprop",
    "Pattern",
    "PatternAttribution",
    "WinnerTakesAll",
    "PoolProportional",
]

MAXPOOL_MODES = ("winner", "proportional")
STARTS = ("score", "unit")


class LayerRule:
    """Base of the network-only rules: ``relevance(layer, x, R, trace) -> R_in``."""

    def relevance(self, layer, x, R, trace=None):  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash(type(self))


class Pass(LayerRule):
    """Relevance passes unchanged (ReLU under LRP: the rule of the following linear layer decides).

    Examples
    --------
    >>> import numpy as np
    >>> Pass().relevance(None, np.array([-1.0, 2.0]), np.array([0.5, 0.5]))
    array([0.5, 0.5])
    """

    def relevance(self, layer, x, R, trace=None):
        return R


class Gradient(LayerRule):
    """The layer's own gradient with respect to its input (sensitivity).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(2, 1, W=np.array([[1.0], [2.0]]))
    >>> x, g = np.array([[1.0, -1.0]]), np.array([[3.0]])  # input, and the signal at the output
    >>> Gradient().relevance(layer, x, g, x)  # W^T g; the trace of a Linear is its input
    array([[3., 6.]])
    """

    def relevance(self, layer, x, R, trace=None):
        return layer.backward(R, trace)[0]


class ReLUDeconvNet(LayerRule):
    """DeconvNet's ReLU: ``max(g, 0)``, ignoring the forward state (paper 004, eq. 2).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import ReLU
    >>> ReLUDeconvNet().relevance(ReLU(), np.array([-1.0, 2.0]), np.array([0.5, -0.5]))
    array([0.5, 0. ])
    """

    def relevance(self, layer, x, R, trace=None):
        return get_namespace(R).maximum(R, 0)


class ReLUGuidedBackprop(LayerRule):
    """Guided Backprop's ReLU: ``max(g, 0) 1(y > 0)`` (paper 004, eq. 2).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import ReLU
    >>> ReLUGuidedBackprop().relevance(ReLU(), np.array([-1.0, 2.0]), np.array([0.5, 0.5]))  # off at -1
    array([0. , 0.5])
    """

    def relevance(self, layer, x, R, trace=None):
        return get_namespace(R).maximum(R, 0) * (x > 0)


class Pattern(LayerRule):
    """PatternNet: the signal goes back through the pattern ``A`` instead of ``W`` (paper 002, eq. 3).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(2, 1, W=np.array([[1.0], [2.0]]))
    >>> x, g = np.array([[1.0, -1.0]]), np.array([[3.0]])  # input, and the signal at the output
    >>> Pattern(np.array([[0.5], [0.25]])).relevance(layer, x, g)  # A^T g
    array([[1.5 , 0.75]])
    """

    def __init__(self, pattern):
        self.pattern = pattern

    def relevance(self, layer, x, R, trace=None):
        return layer.apply_T(R, self.pattern, x.shape)

    def __eq__(self, other):
        return self is other

    __hash__ = object.__hash__


class PatternAttribution(Pattern):
    """PatternAttribution: back through ``W * A`` (paper 002, Sec. 4).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(2, 1, W=np.array([[1.0], [2.0]]))
    >>> x, g = np.array([[1.0, -1.0]]), np.array([[3.0]])  # input, and the signal at the output
    >>> PatternAttribution(np.array([[0.5], [0.25]])).relevance(layer, x, g)  # (W * A)^T g
    array([[1.5, 1.5]])
    """

    def relevance(self, layer, x, R, trace=None):
        return layer.apply_T(R, layer.W * self.pattern, x.shape)


class WinnerTakesAll(LayerRule):
    """A max pool's relevance all to its switch (the winning input), as the gradient routes it.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import MaxPool2d
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pool = MaxPool2d(2)
    >>> out, trace = pool.forward(x)
    >>> WinnerTakesAll().relevance(pool, x, out, trace)[0, 0]
    array([[ 0.,  0.,  0.,  0.],
           [ 0.,  5.,  0.,  7.],
           [ 0.,  0.,  0.,  0.],
           [ 0., 13.,  0., 15.]])
    """

    def relevance(self, layer, x, R, trace=None):
        return layer.route(R, trace)


class PoolProportional(LayerRule):
    """``R_i = x_i / sum_window x * R_j`` over each pooling window (paper 000, Sec. IV.B).

    The z-rule of the pool's positive unit weights: for sum and average
    pooling the forward messages themselves; for max pooling a common
    proportional alternative to winner-take-all.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import MaxPool2d
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pool = MaxPool2d(2)
    >>> out, trace = pool.forward(x)
    >>> R = PoolProportional().relevance(pool, x, out, trace)
    >>> R[0, 0, :2, :2], float(R.sum())  # the window 0, 1, 4, 5 shares the 5 it pooled
    (array([[0. , 0.5],
           [2. , 2.5]]), 40.0)
    """

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x, R)
        summer = SumPool2d(layer.kernel_size, layer.stride)
        den = summer.apply(x)
        s = xp.where(den != 0, R / xp.where(den != 0, den, 1), 0)
        return x * summer.apply_T(s, x.shape)


class _Reshape(LayerRule):
    def relevance(self, layer, x, R, trace=None):
        return R.reshape(x.shape)


def _layer_rule(value, where):
    if isinstance(value, (Rule, LayerRule)):
        return value
    if isinstance(value, str):
        return get_rule(value)
    raise TypeError(f"{where} must be a rule name or a rule object, got {type(value).__name__}")


class Composite:
    """Which rule each layer of a network uses on the way back (like zennit's composites).

    Parameters
    ----------
    layer_map : dict
        ``{"conv": rule, "linear": rule, "relu": rule, "sumpool": rule}``:
        rule objects (:mod:`bowlrp.rules` for linear layers, or those of this
        module) or rule names.  Linear layers left out use the proportional
        rule (LRP-0); ReLU passes relevance unchanged; sum and average pooling
        redistribute proportionally.
    first_map : rule or None
        Rule of the lowest linear layer (the one that sees the pixels);
        ``None``: as ``layer_map`` says.
    maxpool : {"winner", "proportional"}
        ``"winner"`` sends a pool's relevance to its switch (winner-take-all,
        as the gradient); ``"proportional"`` splits it over the window in
        proportion to the activations ``x_i >= 0`` (paper 000, Sec. IV.B).
    start : {"score", "unit"}
        The backward signal at the explained output: the score itself (LRP,
        the pattern methods) or ``1`` (the gradient-type methods).
    multiply_input : bool
        Multiply the signal at the input by the input (gradient x input).
    name : str

    Examples
    --------
    >>> from bowlrp.rules import AlphaBeta, Epsilon, Flat
    >>> comp = Composite({"conv": AlphaBeta(2, -1), "linear": Epsilon(0.01)}, first_map=Flat())
    >>> comp.maxpool, comp.start
    ('winner', 'score')
    """

    _KEYS = ("conv", "linear", "relu", "sumpool")

    def __init__(self, layer_map=None, first_map=None, maxpool="winner", start="score", multiply_input=False,
                 name="custom"):
        layer_map = dict(layer_map or {})
        bad = set(layer_map) - set(self._KEYS)
        if bad:
            raise ValueError(f"layer_map keys must be among {list(self._KEYS)}, got {sorted(bad)}")
        self.layer_map = {k: _layer_rule(v, f"layer_map[{k!r}]") for k, v in layer_map.items()}
        for k in ("conv", "linear"):
            r = self.layer_map.get(k)
            if isinstance(r, Rule) and "layer" not in r.stages:
                raise ValueError(f"layer_map[{k!r}]: the {r.name!r} rule applies to mapping stages only")
        self.first_map = None if first_map is None else _layer_rule(first_map, "first_map")
        if maxpool not in MAXPOOL_MODES:
            raise ValueError(f"unknown maxpool mode {maxpool!r}; valid modes: {list(MAXPOOL_MODES)}")
        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; valid: {list(STARTS)}")
        self.maxpool = maxpool
        self.start = start
        self.multiply_input = bool(multiply_input)
        self.name = name

    def rules_for(self, model):
        """One rule per layer of ``model`` (each with ``relevance(layer, x, R, trace)``)."""
        linear = [k for k, layer in enumerate(model) if isinstance(layer, (Conv2d, Linear))]
        out = []
        for k, layer in enumerate(model):
            if isinstance(layer, (Conv2d, Linear)):
                kind = "conv" if isinstance(layer, Conv2d) else "linear"
                rule = self.layer_map.get(kind) or Proportional()
                if self.first_map is not None and k == linear[0]:
                    rule = self.first_map
            elif isinstance(layer, ReLU):
                rule = self.layer_map.get("relu") or Pass()
            elif isinstance(layer, MaxPool2d):
                rule = WinnerTakesAll() if self.maxpool == "winner" else PoolProportional()
            elif isinstance(layer, (SumPool2d, AvgPool2d)):
                rule = self.layer_map.get("sumpool") or PoolProportional()
            elif isinstance(layer, Flatten):
                rule = _Reshape()
            else:  # pragma: no cover - only the layers above exist
                raise TypeError(f"no backward rule for layer {type(layer).__name__}")
            out.append(rule)
        return out

    def __repr__(self):
        return (f"Composite(layer_map={self.layer_map!r}, first_map={self.first_map!r}, "
                f"maxpool={self.maxpool!r}, start={self.start!r}, multiply_input={self.multiply_input!r}, "
                f"name={self.name!r})")


def _gradient(relu, multiply_input=False):
    g = Gradient()
    return lambda: Composite({"conv": g, "linear": g, "relu": relu, "sumpool": g}, start="unit",
                             multiply_input=multiply_input)


def _presets():
    return {
        # LRP-0 everywhere: gradient x input on ReLU nets with zero biases
        "z": lambda: Composite({"conv": Proportional(), "linear": Proportional()}),
        "epsilon": lambda: Composite({"conv": Epsilon(1e-2), "linear": Epsilon(1e-2)}),
        "alphabeta_2_1": lambda: Composite({"conv": AlphaBeta(2, -1), "linear": AlphaBeta(2, -1)}),
        "alphabeta_1_0": lambda: Composite({"conv": ZPlus(), "linear": ZPlus()}),
        # thesis Ch. 6 footnote: alpha-beta 2/1 on convolutions, epsilon on dense layers, flat at the input
        "alphabeta_2_1_epsilon_flat": lambda: Composite(
            {"conv": AlphaBeta(2, -1), "linear": Epsilon(1e-2)}, first_map=Flat()),
        # Deep Taylor Decomposition, training-free (paper 000 Sec. IV.B-D): zB first, z+ elsewhere
        "dtd": lambda: Composite({"conv": ZPlus(), "linear": ZPlus()}, first_map=ZBox(0.0, 1.0),
                                 maxpool="proportional"),
        "dtd_wsquare": lambda: Composite({"conv": ZPlus(), "linear": ZPlus()}, first_map=WSquare(),
                                         maxpool="proportional"),
        # the gradient-type methods (paper 004): only the ReLU rule differs
        "gradient": _gradient(Gradient()),
        "gradient_x_input": _gradient(Gradient(), multiply_input=True),
        "deconvnet": _gradient(ReLUDeconvNet()),
        "guided_backprop": _gradient(ReLUGuidedBackprop()),
    }


COMPOSITES = tuple(_presets())
GRADIENT_COMPOSITES = ("gradient", "gradient_x_input", "deconvnet", "guided_backprop")


def get_composite(composite="dtd", **kwargs):
    """Return a :class:`Composite` from a preset name, a Composite, or one rule for every linear layer.

    Presets: ``"z"``, ``"epsilon"`` (eps = 0.01), ``"alphabeta_2_1"``,
    ``"alphabeta_1_0"``, ``"alphabeta_2_1_epsilon_flat"`` (thesis Ch. 6
    footnote), ``"dtd"`` (zB on the first layer with the box [0, 1], z+
    elsewhere, proportional max pooling; paper 000), ``"dtd_wsquare"``, and
    the gradient-type methods ``"gradient"``, ``"gradient_x_input"``,
    ``"deconvnet"``, ``"guided_backprop"``.  A :class:`bowlrp.rules.Rule`
    gives the composite applying it to every convolution and dense layer.
    ``maxpool=...`` overrides the max-pooling mode.

    Examples
    --------
    >>> get_composite("dtd").first_map
    ZBox(low=0.0, high=1.0)
    >>> from bowlrp.rules import Epsilon
    >>> get_composite(Epsilon(0.1)).layer_map["conv"]
    Epsilon(epsilon=0.1)
    """
    if isinstance(composite, Composite):
        comp = composite
    elif isinstance(composite, Rule):
        comp = Composite({"conv": composite, "linear": composite}, name=composite.name)
    else:
        presets = _presets()
        if not isinstance(composite, str) or composite not in presets:
            raise ValueError(f"unknown LRP composite {composite!r}; valid presets: {sorted(presets)} "
                             "(or a bowlrp.cnn.Composite, or a bowlrp.rules rule)")
        comp = presets[composite]()
        comp.name = composite
    if "maxpool" in kwargs:
        mode = kwargs.pop("maxpool")
        if mode not in MAXPOOL_MODES:
            raise ValueError(f"unknown maxpool mode {mode!r}; valid modes: {list(MAXPOOL_MODES)}")
        comp = Composite(comp.layer_map, comp.first_map, mode, comp.start, comp.multiply_input, comp.name)
    if kwargs:
        raise TypeError(f"get_composite takes only maxpool=..., got unexpected arguments {sorted(kwargs)}")
    return comp


class _PatternComposite(Composite):
    def __init__(self, patterns, attribution):
        rule = PatternAttribution if attribution else Pattern
        super().__init__({"relu": Gradient(), "sumpool": Gradient()}, start="score",
                         name="pattern_attribution" if attribution else "patternnet")
        self._rules = {k: rule(A) for k, A in enumerate(patterns) if A is not None}

    def rules_for(self, model):
        out = super().rules_for(model)
        for k, layer in enumerate(model):
            if isinstance(layer, (Conv2d, Linear)):
                if k not in self._rules:
                    raise ValueError(f"no pattern for layer {k}; fit the patterns on this network")
                out[k] = self._rules[k]
        return out


def pattern_composite(patterns, attribution=False):
    """The PatternNet (or PatternAttribution) composite for fitted ``patterns`` (paper 002).

    Examples
    --------
    >>> import numpy as np
    >>> comp = pattern_composite([np.ones((2, 1))], attribution=True)  # one pattern per linear layer
    >>> comp.name, comp.start
    ('pattern_attribution', 'score')

    ``patterns`` is the list :func:`bowlrp.cnn.fit_patterns` returns: one
    array per linear layer (``None`` elsewhere).  ReLUs and pooling pass the
    signal back as the gradient does.
    """
    return _PatternComposite(patterns, attribution)
