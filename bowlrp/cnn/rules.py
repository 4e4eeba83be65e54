"""LRP rules for the linear layers of a CNN, and composites that assign them.

A rule turns the relevance ``R`` of a linear layer's outputs ``z_j = sum_i
x_i w_ij + b_j`` into the relevance of its inputs.  Every rule here is written
with the layer's two primitives (``apply(x, W, b)`` and its transpose
``apply_T(s, W)``), so one implementation serves :class:`~.layers.Conv2d` and
:class:`~.layers.Linear`:

=================  =====================================================================  ==============
rule               ``R_i = sum_j q_ij / sum_i' q_i'j * R_j`` with ``q_ij =``               reference
=================  =====================================================================  ==============
``Epsilon(eps)``   ``z_ij``; denominator ``z_j + eps sign(z_j)`` (bias in ``z_j``)        thesis eq. 2.21-2.22
``AlphaBeta(a,b)`` ``a z+_ij / (z+_j + b+_j) + b z-_ij / (z-_j + b-_j)``, ``a + b = 1``  thesis eq. 2.26
``ZPlus()``        alpha-beta with ``alpha=1, beta=0``: ``x_i w+_ij`` for ``x >= 0``      paper 000 Sec. III.B
``WSquare()``      ``w_ij^2``                                                             paper 000 eq. 12
``Flat()``         ``1``                                                                  thesis eq. 2.27 ff.
``ZBox(l, h)``     ``x_i w_ij - l_i w+_ij - h_i w-_ij``                                   paper 000 Sec. III.B
=================  =====================================================================  ==============

**Alpha-beta convention.** bowlrp follows the thesis (eq. 2.26) and
``bowlrp.rules.AlphaBeta``: ``alpha + beta = 1`` with ``alpha >= 1``, so
``beta <= 0``; the negative part is *added* with weight ``beta``.  "Alpha-beta
2/1" is ``AlphaBeta(2, -1)`` here; it is ``alpha=2, beta=1`` in paper 000's
supplement and in zennit, whose ``alpha - beta = 1`` subtracts the negative
part.  The two are the same rule.

Where a rule's denominator is exactly zero the output's relevance is not
passed on (it is absorbed), so no NaN appears; conservation then fails for
that output only.  Positive parts of the bias enter the alpha-beta
denominators (paper 000, Supp. Sec. IV), so a positive bias absorbs relevance;
the epsilon rule's bias is part of ``z_j`` (thesis eq. 2.21).  The DTD rules
(w^2, flat, zB) normalise over the inputs only and conserve exactly.

A :class:`Composite` picks a rule for each linear layer: ``first_map`` for the
lowest linear layer (the one that sees pixels), ``layer_map`` by layer type
(``"conv"``, ``"linear"``); and how max pooling passes relevance on
(``maxpool="winner"``: all to the switch, like the gradient;
``"proportional"``: ``R_i = x_i / sum_window x * R_j``, paper 000 Sec. IV.B).
Sum and average pooling always redistribute proportionally (the z-rule of
their positive weights).  Presets are created by name with
:func:`get_composite`.
"""

from numbers import Real

from .._backend import get_namespace
from .layers import Conv2d, Linear, MaxPool2d, SumPool2d

__all__ = [
    "Epsilon",
    "AlphaBeta",
    "ZPlus",
    "WSquare",
    "Flat",
    "ZBox",
    "Composite",
    "get_rule",
    "get_composite",
    "RULES",
    "COMPOSITES",
    "safe_divide",
]


def safe_divide(a, b):
    """``a / b`` where ``b != 0``, else 0 (no warning, no NaN)."""
    xp = get_namespace(a, b)
    nz = b != 0
    return xp.where(nz, a / xp.where(nz, b, 1), 0)


def _number(name, v, lo=None):
    if not isinstance(v, Real) or isinstance(v, bool):
        raise ValueError(f"{name} must be a real number, got {v!r}")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v!r}")
    return float(v)


class Rule:
    """Base class of the linear-layer rules: ``relevance(layer, x, R) -> R_in``."""

    name = "rule"

    def relevance(self, layer, x, R):  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Epsilon(Rule):
    """``R_i = sum_j z_ij / (z_j + eps sign(z_j)) R_j``, ``z_j`` with bias (thesis eq. 2.21-2.22).

    ``sign(0) = +1`` (paper 000, Supp. Sec. IV).  ``epsilon=0`` is the plain
    z-rule (LRP-0, thesis eq. 2.21), which equals gradient x input on ReLU
    networks with zero biases.
    """

    name = "epsilon"

    def __init__(self, epsilon=1e-2):
        self.epsilon = _number("epsilon", epsilon, lo=0.0)

    def relevance(self, layer, x, R):
        z = layer.apply(x, layer.W, layer.b)
        if self.epsilon:
            z = z + self.epsilon * ((z >= 0) * 2.0 - 1.0)
        return x * layer.apply_T(safe_divide(R, z), layer.W, x.shape)


class AlphaBeta(Rule):
    """``R_i = sum_j (alpha z+_ij / z+_j + beta z-_ij / z-_j) R_j`` (thesis eq. 2.26).

    ``z+_j = sum_i z+_ij + b+_j`` and ``z-_j = sum_i z-_ij + b-_j`` with
    ``z_ij = x_i w_ij`` split by sign (for any sign of ``x_i``).  Thesis
    convention: ``alpha + beta = 1``, ``alpha >= 1``, ``beta <= 0``
    (``AlphaBeta(2, -1)`` is "alpha-beta 2/1"; zennit's ``beta=1`` is ``beta=-1`` here).
    """

    name = "alphabeta"

    def __init__(self, alpha=2.0, beta=-1.0):
        alpha, beta = _number("alpha", alpha), _number("beta", beta)
        if abs(alpha + beta - 1.0) > 1e-12 or alpha < 1:
            hint = (f" (zennit / paper 000 write beta={beta:g} for what is beta={-beta:g} here)"
                    if abs(alpha - beta - 1.0) < 1e-12 and beta > 0 else "")
            raise ValueError(
                f"AlphaBeta needs alpha + beta = 1 with alpha >= 1 (thesis eq. 2.26), got "
                f"alpha={alpha:g}, beta={beta:g}{hint}; e.g. AlphaBeta(2, -1) or AlphaBeta(1, 0)"
            )
        self.alpha, self.beta = alpha, beta

    def relevance(self, layer, x, R):
        xp = get_namespace(x)
        W = layer.W
        xpos, xneg = xp.maximum(x, 0), xp.minimum(x, 0)
        Wpos, Wneg = xp.maximum(W, 0), xp.minimum(W, 0)
        b = layer.b

        def part(Wa, Wb, bias):  # messages x+ Wa + x- Wb (+ bias part)
            z = layer.apply(xpos, Wa, bias) + layer.apply(xneg, Wb)
            s = safe_divide(R, z)
            return xpos * layer.apply_T(s, Wa, x.shape) + xneg * layer.apply_T(s, Wb, x.shape)

        out = self.alpha * part(Wpos, Wneg, xp.maximum(b, 0))
        if self.beta:
            out = out + self.beta * part(Wneg, Wpos, xp.minimum(b, 0))
        return out


class ZPlus(AlphaBeta):
    """The z+-rule of Deep Taylor Decomposition (paper 000, Sec. III.B): ``q_ij = x_i w+_ij``.

    For inputs ``x >= 0`` (ReLU outputs) it is :class:`AlphaBeta` with
    ``alpha=1, beta=0``; a positive bias enters the denominator (paper 000,
    Sec. IV.D).
    """

    name = "zplus"

    def __init__(self):
        super().__init__(1.0, 0.0)

    def __repr__(self):
        return "ZPlus()"


class WSquare(Rule):
    """``R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j`` (paper 000, eq. 12).

    For a convolution the sum over ``i'`` runs over the inputs an output
    actually sees (zero padding is not an input), so the rule conserves at
    the border too.
    """

    name = "wsquare"

    def _weights(self, layer):
        return layer.W * layer.W

    def relevance(self, layer, x, R):
        xp = get_namespace(x)
        V = self._weights(layer)
        den = layer.apply(xp.ones_like(x), V)
        return layer.apply_T(safe_divide(R, den), V, x.shape)


class Flat(WSquare):
    """``R_i = sum_j 1 / (number of inputs of j) R_j``: every input of an output alike."""

    name = "flat"

    def _weights(self, layer):
        return get_namespace(layer.W).ones_like(layer.W)


class ZBox(Rule):
    """The z^B-rule (paper 000, Sec. III.B) for inputs bounded by ``low <= x <= high``.

    ``q_ij = x_i w_ij - l_i w+_ij - h_i w-_ij >= 0`` when ``l <= x <= h``.
    ``low`` and ``high`` are scalars or arrays broadcastable to one input
    sample (``(C, H, W)``); for bowlrp's images in [0, 1] the default is the
    box ``[0, 1]``.
    """

    name = "zbox"

    def __init__(self, low=0.0, high=1.0):
        if isinstance(low, Real) and isinstance(high, Real) and not low <= high:
            raise ValueError(f"ZBox needs low <= high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def relevance(self, layer, x, R):
        xp = get_namespace(x)
        low = xp.broadcast_to(xp.asarray(self.low, dtype=x.dtype), x.shape[1:])
        high = xp.broadcast_to(xp.asarray(self.high, dtype=x.dtype), x.shape[1:])
        lo = xp.broadcast_to(low, x.shape)
        hi = xp.broadcast_to(high, x.shape)
        W = layer.W
        Wpos, Wneg = xp.maximum(W, 0), xp.minimum(W, 0)
        den = layer.apply(x, W) - layer.apply(xp.ascontiguousarray(lo), Wpos) - \
            layer.apply(xp.ascontiguousarray(hi), Wneg)
        s = safe_divide(R, den)
        return x * layer.apply_T(s, W, x.shape) - lo * layer.apply_T(s, Wpos, x.shape) - \
            hi * layer.apply_T(s, Wneg, x.shape)


RULES = {
    "z": lambda: Epsilon(0.0),
    "epsilon": Epsilon,
    "alphabeta": AlphaBeta,
    "zplus": ZPlus,
    "wsquare": WSquare,
    "flat": Flat,
    "zbox": ZBox,
}


def get_rule(rule, **params):
    """Return a rule object from a name (``get_rule("epsilon", epsilon=0.1)``) or a Rule."""
    if isinstance(rule, Rule):
        if params:
            raise ValueError("parameters can only be given with a rule name, not with a Rule object")
        return rule
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"unknown LRP rule {rule!r}; valid rules: {sorted(RULES)}")
    return RULES[rule](**params)


MAXPOOL_MODES = ("winner", "proportional")


class Composite:
    """Which rule each linear layer of a network uses (like zennit's composites).

    Parameters
    ----------
    layer_map : dict
        ``{"conv": rule, "linear": rule}`` (rule objects or names); a layer
        type left out uses ``Epsilon(0)`` (the z-rule).
    first_map : rule or None
        Rule of the lowest linear layer (the one that sees the pixels);
        ``None``: as ``layer_map`` says.
    maxpool : {"winner", "proportional"}
        ``"winner"`` sends a pool's relevance to its switch (winner-take-all,
        as the gradient); ``"proportional"`` splits it over the window in
        proportion to the activations ``x_i >= 0`` (paper 000, Sec. IV.B).
    name : str
    """

    def __init__(self, layer_map=None, first_map=None, maxpool="winner", name="custom"):
        layer_map = dict(layer_map or {})
        bad = set(layer_map) - {"conv", "linear"}
        if bad:
            raise ValueError(f"layer_map keys must be 'conv' or 'linear', got {sorted(bad)}")
        self.layer_map = {k: get_rule(v) for k, v in layer_map.items()}
        self.first_map = None if first_map is None else get_rule(first_map)
        if maxpool not in MAXPOOL_MODES:
            raise ValueError(f"unknown maxpool mode {maxpool!r}; valid modes: {list(MAXPOOL_MODES)}")
        self.maxpool = maxpool
        self.name = name

    def rules_for(self, model):
        """One rule (or ``None`` for non-linear layers) per layer of ``model``."""
        linear = [k for k, layer in enumerate(model) if isinstance(layer, (Conv2d, Linear))]
        out = [None] * len(model)
        for k in linear:
            kind = "conv" if isinstance(model[k], Conv2d) else "linear"
            out[k] = self.layer_map.get(kind) or Epsilon(0.0)
        if linear and self.first_map is not None:
            out[linear[0]] = self.first_map
        return out

    def __repr__(self):
        return (f"Composite(layer_map={self.layer_map!r}, first_map={self.first_map!r}, "
                f"maxpool={self.maxpool!r}, name={self.name!r})")


def _presets():
    return {
        # LRP-0 everywhere: gradient x input on ReLU nets with zero biases
        "z": lambda: Composite({"conv": Epsilon(0.0), "linear": Epsilon(0.0)}),
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
    }


COMPOSITES = tuple(_presets())


def get_composite(composite="dtd", **kwargs):
    """Return a :class:`Composite` from a preset name or a Composite.

    Presets: ``"z"``, ``"epsilon"`` (eps = 0.01), ``"alphabeta_2_1"``,
    ``"alphabeta_1_0"``, ``"alphabeta_2_1_epsilon_flat"`` (thesis Ch. 6
    footnote), ``"dtd"`` (zB on the first layer with the box [0, 1], z+
    elsewhere, proportional max pooling; paper 000) and ``"dtd_wsquare"``.
    ``maxpool=...`` overrides the preset's max-pooling mode.
    """
    if isinstance(composite, Composite):
        return composite
    presets = _presets()
    if not isinstance(composite, str) or composite not in presets:
        raise ValueError(f"unknown LRP composite {composite!r}; valid presets: {sorted(presets)}")
    comp = presets[composite]()
    comp.name = composite
    if "maxpool" in kwargs:
        mode = kwargs.pop("maxpool")
        if mode not in MAXPOOL_MODES:
            raise ValueError(f"unknown maxpool mode {mode!r}; valid modes: {list(MAXPOOL_MODES)}")
        comp.maxpool = mode
    if kwargs:
        raise TypeError(f"unexpected arguments {sorted(kwargs)}")
    return comp


def pool_relevance(layer, x, R, trace, maxpool):
    """Relevance through a pooling layer (proportional, or winner-take-all for max pooling)."""
    if isinstance(layer, MaxPool2d) and maxpool == "winner":
        return layer.route(R, trace)
    summer = SumPool2d(layer.kernel_size, layer.stride)
    return x * summer.apply_T(safe_divide(R, summer.apply(x)), x.shape)
