"""Explaining a CNN: LRP and the modified-gradient baselines, one backward engine.

All methods run the network forward once (keeping a :class:`~.layers.Trace`)
and walk the layers backward once; they differ only in what each layer does
with the signal coming from above:

====================== ======================= ========================== ===================
method                 linear layer            ReLU                       max pooling
====================== ======================= ========================== ===================
``gradient``           ``W^T g``               ``g 1(y > 0)``             switches
``gradient_x_input``   as gradient, times the input at the end
``deconvnet``          ``W^T g``               ``max(g, 0)``              switches
``guided_backprop``    ``W^T g``               ``max(g, 0) 1(y > 0)``     switches
``patternnet``         ``A^T g`` (patterns)    ``g 1(y > 0)``             switches
``pattern_attribution````(W * A+)^T r``        ``r 1(y > 0)``             switches
``lrp``                the composite's rule    identity                   winner or proportional
====================== ======================= ========================== ===================

(paper 004 eq. 1-2 for the ReLU column; paper 002 for the patterns; the LRP
rules are in :mod:`bowlrp.cnn.rules`.)  Sum and average pooling pass the
gradient back unchanged and relevance proportionally.

Start values: the gradient-type methods start from ``+-1`` at the explained
output (``-1`` where a binary model is explained for its negative class);
``lrp``, ``patternnet`` and ``pattern_attribution`` start from the explained
score ``y`` itself, so PatternNet returns the signal estimate ``a y`` (paper
002 eq. 3) rather than the bare pattern, and relevance sums to ``y``.
"""

import numpy as np

from .._backend import get_namespace
from .layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, SumPool2d
from .rules import get_composite, pool_relevance

__all__ = ["METHODS", "backward", "explain_model", "fit_patterns"]

METHODS = ("lrp", "gradient", "gradient_x_input", "deconvnet", "guided_backprop",
           "patternnet", "pattern_attribution")

_GRADIENT_LIKE = ("gradient", "gradient_x_input", "deconvnet", "guided_backprop")


def backward(model, trace, R, method="lrp", composite="dtd", patterns=None, upto=0, start=None):
    """Walk the layers of ``model`` backward from ``R`` (the output signal).

    ``R`` is the signal at the output of layer ``start`` (default: the last
    layer); returns the signal at the input of layer ``upto`` (default: the
    network input).  ``patterns`` (from :func:`fit_patterns`) is needed by the two
    pattern methods.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {list(METHODS)}")
    comp = get_composite(composite) if method == "lrp" else None
    rules = comp.rules_for(model) if comp is not None else None
    if method in ("patternnet", "pattern_attribution"):
        if patterns is None:
            raise ValueError(f"method {method!r} needs patterns: fit them with fit_patterns(model, X) "
                             "(CNNClassifier.fit_patterns(images))")
    xp = get_namespace(R)
    first = len(model) - 1 if start is None else start
    for k in range(first, upto - 1, -1):
        layer, x, tr = model[k], trace.inputs[k], trace.traces[k]
        if isinstance(layer, (Conv2d, Linear)):
            if method == "lrp":
                R = rules[k].relevance(layer, x, R)
            elif method == "patternnet":
                R = layer.apply_T(R, patterns[k], x.shape)
            elif method == "pattern_attribution":
                R = layer.apply_T(R, layer.W * patterns[k], x.shape)
            else:
                R = layer.apply_T(R, layer.W, x.shape)
        elif isinstance(layer, ReLU):
            if method in ("deconvnet", "guided_backprop"):
                R = xp.maximum(R, 0)
            if method in ("gradient", "gradient_x_input", "guided_backprop", "patternnet",
                          "pattern_attribution"):
                R = R * (x > 0)
        elif isinstance(layer, (MaxPool2d, SumPool2d, AvgPool2d)):
            if method == "lrp":
                R = pool_relevance(layer, x, R, tr, comp.maxpool)
            else:
                R = layer.backward(R, tr)[0]
        elif isinstance(layer, Flatten):
            R = R.reshape(x.shape)
        else:  # pragma: no cover - only the layers above exist
            raise TypeError(f"no backward step for layer {type(layer).__name__}")
    if method == "gradient_x_input":
        R = R * trace.inputs[upto]
    return R


def explain_model(model, x, target_index, sign=None, method="lrp", composite="dtd", patterns=None):
    """Explain output ``target_index[n]`` of ``model`` for each input ``x[n]``.

    ``sign`` (``+-1`` per sample, default ``+1``) flips the explained score
    (a binary model explained for its negative class).  Returns ``(R_in,
    score, trace)`` where ``score[n] = sign[n] * f(x)[n, target_index[n]]``.
    """
    xp = get_namespace(x)
    out, trace = model.forward(x)
    n = len(x)
    idx = xp.asarray(target_index)
    sign = xp.ones(n, dtype=out.dtype) if sign is None else xp.asarray(sign, dtype=out.dtype)
    score = sign * out[xp.arange(n), idx]
    R = xp.zeros_like(out)
    R[xp.arange(n), idx] = sign if method in _GRADIENT_LIKE else score
    return backward(model, trace, R, method, composite, patterns), score, trace


def _followed_by_relu(model, k):
    return k + 1 < len(model) and isinstance(model[k + 1], ReLU)


def fit_patterns(model, batches, mean="regime"):
    """Fit PatternNet / PatternAttribution patterns on data (paper 002, eq. 3 and 7).

    For each linear layer and each output neuron ``j`` with filter ``w_j``
    and pre-activation without bias ``y_j = w_j^T x`` (for a convolution:
    per output channel, statistics pooled over all positions of the im2col
    patches, zero padding included):

    * a layer followed by a ReLU gets the two-component pattern's positive
      part (eq. 7), estimated over the inputs where the ReLU is on
      (``y_j + b_j > 0``, the actual state):
      ``a+_j = cov+[x, y_j] / (w_j^T cov+[x, y_j])`` with
      ``cov+[x, y] = E+[x y] - E+[x] m`` where ``m = E+[y]`` for
      ``mean="regime"`` (default) or the unconditional ``m = E[y]`` for
      ``mean="global"`` (eq. 7 as printed; iNNvestigate);
    * any other linear layer (the output layer) gets the linear pattern
      ``a_j = cov[x, y_j] / var(y_j)`` (eq. 3).

    Every pattern satisfies ``w_j^T a_j = 1``.  A neuron that is never on gets
    a zero pattern.  Returns a list with one array per layer (the shape of
    the layer's ``W``) and ``None`` for layers without weights.

    ``batches`` is an iterable of input batches (N, C, H, W); statistics are
    accumulated in float64.
    """
    if mean not in ("regime", "global"):
        raise ValueError(f"unknown mean {mean!r}; valid: ['regime', 'global']")
    lin = [k for k, layer in enumerate(model) if isinstance(layer, (Conv2d, Linear))]
    stats = {}
    xp = np
    for xb in batches:
        xp = get_namespace(xb)
        _, trace = model.forward(xb)
        for k in lin:
            layer, x = model[k], trace.inputs[k].astype(xp.float64)
            if isinstance(layer, Conv2d):
                X = layer.patches(x).reshape(-1, int(np.prod(layer.W.shape[1:])))
                Wm = layer.W.astype(xp.float64).reshape(layer.W.shape[0], -1)  # (O, D)
            else:
                X, Wm = x, layer.W.astype(xp.float64).T
            Y = X @ Wm.T  # (P, O), no bias
            M = (Y + layer.b.astype(xp.float64) > 0) if _followed_by_relu(model, k) else xp.ones_like(Y, dtype=bool)
            Mf = M.astype(xp.float64)
            MY = Mf * Y
            s = stats.setdefault(k, [0.0] * 6)
            for i, v in enumerate((Mf.sum(0), Mf.T @ X, MY.sum(0), MY.T @ X, Y.sum(0), float(len(Y)))):
                s[i] = s[i] + v
    patterns = [None] * len(model)
    for k in lin:
        layer = model[k]
        cnt, sx, sy, sxy, sy_all, n_all = stats[k]
        safe = xp.maximum(cnt, 1.0)[:, None]
        m = (sy[:, None] / safe) if mean == "regime" else (sy_all / n_all)[:, None]
        cov = sxy / safe - (sx / safe) * m  # (O, D)
        Wm = (layer.W.reshape(layer.W.shape[0], -1) if isinstance(layer, Conv2d) else layer.W.T).astype(xp.float64)
        den = (Wm * cov).sum(1, keepdims=True)
        ok = (cnt[:, None] > 0) & (den != 0)
        A = xp.where(ok, cov / xp.where(ok, den, 1.0), 0.0)
        patterns[k] = A.reshape(layer.W.shape) if isinstance(layer, Conv2d) else A.T
    return patterns
