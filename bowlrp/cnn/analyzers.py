"""Explaining a CNN: LRP and the modified-gradient baselines, one backward engine.

All methods run the network forward once (keeping a :class:`~.network.Trace`)
and walk the layers backward once, each layer applying the rule its
:class:`~.composites.Composite` assigns:

======================== ======================= ========================== ======================
method                   linear layer            ReLU                       max pooling
======================== ======================= ========================== ======================
``gradient``             ``W^T g``               ``g 1(y > 0)``             switches
``gradient_x_input``     ``W^T g``               ``g 1(y > 0)``             switches; times the input at the end
``deconvnet``            ``W^T g``               ``max(g, 0)``              switches
``guided_backprop``      ``W^T g``               ``max(g, 0) 1(y > 0)``     switches
``patternnet``           ``A^T g`` (patterns)    ``g 1(y > 0)``             switches
``pattern_attribution``  ``(W * A+)^T r``        ``r 1(y > 0)``             switches
``lrp``                  the composite's rule    identity                   winner or proportional
======================== ======================= ========================== ======================

(paper 004 eq. 1-2 for the ReLU column; paper 002 for the patterns; the LRP
rules are in :mod:`bowlrp.rules`, the composites in
:mod:`bowlrp.cnn.composites`.)  Sum and average pooling pass the gradient back
unchanged and relevance proportionally.

Start values: the gradient-type methods start from ``1`` at the explained
output; ``lrp``, ``patternnet`` and ``pattern_attribution`` start from the
explained score ``y`` itself, so PatternNet returns the signal estimate ``a y``
(paper 002 eq. 3) rather than the bare pattern, and relevance sums to ``y``.

A negative score ``-f_k`` (a binary network explained for its first class)
is explained as an output of its own: the last linear layer is extended to
``[W, -W]`` and ``[b, -b]`` (:func:`signed_network`), so that every rule sees
the messages of ``-f_k`` and not those of ``f_k`` with the sign flipped
afterwards (which differs for the rules that split messages by sign: z+,
alpha-beta, DTD).
"""

import numpy as np

from .._backend import get_namespace
from .composites import GRADIENT_COMPOSITES, get_composite, pattern_composite
from .layers import Conv2d, Flatten, Linear, ReLU
from .network import Sequential

__all__ = ["METHODS", "backward", "explain_model", "fit_patterns", "method_composite", "signed_network",
           "signed_patterns", "walk"]

METHODS = ("lrp", "gradient", "gradient_x_input", "deconvnet", "guided_backprop",
           "patternnet", "pattern_attribution")


def method_composite(method="lrp", composite="dtd", patterns=None):
    """The :class:`~.composites.Composite` that implements ``method``.

    ``"lrp"`` uses ``composite`` (a preset name, a Composite or a rule); the
    gradient-type methods are presets of their own; the pattern methods need
    ``patterns`` from :func:`fit_patterns`.

    Examples
    --------
    >>> method_composite("lrp", "alphabeta_2_1").layer_map["conv"]
    AlphaBeta(alpha=2.0, beta=-1.0)
    >>> comp = method_composite("guided_backprop")
    >>> comp.layer_map["relu"], comp.start
    (ReLUGuidedBackprop(), 'unit')
    >>> method_composite("patternnet")
    Traceback (most recent call last):
    ...
    ValueError: method 'patternnet' needs patterns: fit them with fit_patterns(model, X) (CNNClassifier.fit_patterns(images))
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {list(METHODS)}")
    if method == "lrp":
        return get_composite(composite)
    if method in GRADIENT_COMPOSITES:
        return get_composite(method)
    if patterns is None:
        raise ValueError(f"method {method!r} needs patterns: fit them with fit_patterns(model, X) "
                         "(CNNClassifier.fit_patterns(images))")
    return pattern_composite(patterns, attribution=method == "pattern_attribution")


def backward(model, trace, R, method="lrp", composite="dtd", patterns=None, upto=0, start=None):
    """Walk the layers of ``model`` backward from ``R`` (the output signal).

    ``R`` is the signal at the output of layer ``start`` (default: the last
    layer); returns the signal at the input of layer ``upto`` (default: the
    network input; gradient x input multiplies by that layer's input).
    ``composite`` may also be a :class:`~.composites.Composite` built by
    :func:`method_composite`; ``patterns`` (from :func:`fit_patterns`) is
    needed by the two pattern methods.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear, ReLU, Sequential
    >>> net = Sequential([Linear(2, 2, W=np.array([[1.0, -1.0], [1.0, 2.0]])), ReLU(),
    ...                   Linear(2, 1, W=np.array([[1.0], [1.0]]))])
    >>> x = np.array([[1.0, 0.5]])  # hidden units 1.5 and 0 after the ReLU: f(x) = 1.5
    >>> out, trace = net.forward(x)
    >>> backward(net, trace, out, composite="z")  # LRP-0 from the score: sums to 1.5
    array([[1. , 0.5]])
    >>> backward(net, trace, np.ones_like(out), method="gradient")
    array([[1., 1.]])
    """
    comp = method_composite(method, composite, patterns)
    R, _ = walk(model, trace, R, comp, upto=upto, start=start)
    return R


def walk(model, trace, R, comp, upto=0, start=None, record=()):
    """The backward loop of :func:`backward` for a built composite ``comp``.

    Returns the signal at the input of layer ``upto`` and a dict with the
    signal at the input of every layer in ``record`` (before gradient x
    input multiplies by the input).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear, ReLU, Sequential
    >>> net = Sequential([Linear(2, 2, W=np.array([[1.0, -1.0], [1.0, 2.0]])), ReLU(),
    ...                   Linear(2, 1, W=np.array([[1.0], [1.0]]))])
    >>> x = np.array([[1.0, 0.5]])  # hidden units 1.5 and 0 after the ReLU: f(x) = 1.5
    >>> out, trace = net.forward(x)
    >>> R, kept = walk(net, trace, out, method_composite("lrp", "z"), record=(2,))
    >>> R, kept[2]  # the pixels' relevance, and the hidden units'
    (array([[1. , 0.5]]), array([[1.5, 0. ]]))
    """
    rules = comp.rules_for(model)
    first = len(model) - 1 if start is None else start
    kept = {}
    for k in range(first, upto - 1, -1):
        R = rules[k].relevance(model[k], trace.inputs[k], R, trace.traces[k])
        if k in record:
            kept[k] = R
    if comp.multiply_input:
        R = R * trace.inputs[upto]
    return R, kept


def signed_network(model):
    """``model`` with its last linear layer doubled to ``[W, -W]``, ``[b, -b]``: outputs ``[f, -f]``.

    Output ``j`` is ``f_j`` and output ``K + j`` is ``-f_j`` (``K`` outputs).
    Only layers without parameters that keep the order of the outputs
    (Flatten) may follow the last linear layer; a network ending in a
    non-linearity has no linear ``-f`` and raises ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear, ReLU, Sequential
    >>> net = Sequential([Linear(2, 2, W=np.array([[1.0, -1.0], [1.0, 2.0]])), ReLU(),
    ...                   Linear(2, 1, W=np.array([[1.0], [1.0]]))])
    >>> x = np.array([[1.0, 0.5]])  # hidden units 1.5 and 0 after the ReLU: f(x) = 1.5
    >>> signed_network(net)(x)
    array([[ 1.5, -1.5]])
    """
    last = max(k for k, layer in enumerate(model) if isinstance(layer, (Conv2d, Linear)))
    tail = model.layers[last + 1:]
    if any(not isinstance(layer, Flatten) for layer in tail):
        raise ValueError("explaining the negated score -f needs a network whose output layer is linear "
                         f"(Linear or Conv2d, then only Flatten); this one ends in {tail}")
    layer = model[last]
    W, b = layer.W, layer.b
    xp = get_namespace(W)
    if isinstance(layer, Linear):
        new = Linear(layer.in_features, 2 * layer.out_features,
                     W=xp.concatenate([W, -W], axis=1), b=xp.concatenate([b, -b]))
    else:
        new = Conv2d(layer.in_channels, 2 * layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                     W=xp.concatenate([W, -W], axis=0), b=xp.concatenate([b, -b]))
    return Sequential(model.layers[:last] + [new] + list(tail))


def signed_patterns(model, patterns):
    """The patterns of :func:`signed_network`: the last linear layer's ``A`` doubled to ``[A, -A]``.

    ``None`` stays ``None`` (no patterns fitted).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear, ReLU, Sequential
    >>> net = Sequential([Linear(2, 2, W=np.array([[1.0, -1.0], [1.0, 2.0]])), ReLU(),
    ...                   Linear(2, 1, W=np.array([[1.0], [1.0]]))])
    >>> x = np.array([[1.0, 0.5]])  # hidden units 1.5 and 0 after the ReLU: f(x) = 1.5
    >>> patterns = fit_patterns(net, [np.random.default_rng(0).standard_normal((200, 2))])
    >>> patterns[2].shape, signed_patterns(net, patterns)[2].shape
    ((2, 1), (2, 2))
    """
    if patterns is None:
        return None
    last = max(k for k, layer in enumerate(model) if isinstance(layer, (Conv2d, Linear)))
    A = patterns[last]
    xp = get_namespace(A)
    out = list(patterns)
    out[last] = xp.concatenate([A, -A], axis=1 if isinstance(model[last], Linear) else 0)
    return out


def explain_model(model, x, target_index, sign=None, method="lrp", composite="dtd", patterns=None):
    """Explain output ``target_index[n]`` of ``model`` for each input ``x[n]``.

    ``sign`` (``+-1`` per sample, default ``+1``) flips the explained score (a
    binary model explained for its negative class); a negative sign explains
    ``-f`` as its own output (:func:`signed_network`).  Returns ``(R_in,
    score, trace)`` where ``score[n] = sign[n] * f(x)[n, target_index[n]]``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear, ReLU, Sequential
    >>> net = Sequential([Linear(2, 2, W=np.array([[1.0, -1.0], [1.0, 2.0]])), ReLU(),
    ...                   Linear(2, 1, W=np.array([[1.0], [1.0]]))])
    >>> x = np.array([[1.0, 0.5]])  # hidden units 1.5 and 0 after the ReLU: f(x) = 1.5
    >>> R, score, trace = explain_model(net, x, [0], composite="z")
    >>> R, score
    (array([[1. , 0.5]]), array([1.5]))
    >>> explain_model(net, x, [0], sign=[-1], composite="z")[1]  # -f as an output of its own
    array([-1.5])
    """
    xp = get_namespace(x)
    n = len(x)
    idx = xp.asarray(target_index)
    if sign is not None and bool((xp.asarray(sign) < 0).any()):
        out0 = model(x[:1])
        K = out0.reshape(1, -1).shape[1]
        idx = xp.where(xp.asarray(sign) < 0, idx + K, idx)
        patterns = signed_patterns(model, patterns)
        model = signed_network(model)
    comp = method_composite(method, composite, patterns)
    out, trace = model.forward(x)
    flat = out.reshape(n, -1)
    score = flat[xp.arange(n), idx]
    R = xp.zeros_like(flat)
    R[xp.arange(n), idx] = 1.0 if comp.start == "unit" else score
    return backward(model, trace, R.reshape(out.shape), composite=comp), score, trace


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

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear, ReLU, Sequential
    >>> net = Sequential([Linear(2, 2, W=np.array([[1.0, -1.0], [1.0, 2.0]])), ReLU(),
    ...                   Linear(2, 1, W=np.array([[1.0], [1.0]]))])
    >>> x = np.array([[1.0, 0.5]])  # hidden units 1.5 and 0 after the ReLU: f(x) = 1.5
    >>> patterns = fit_patterns(net, [np.random.default_rng(0).standard_normal((200, 2))])
    >>> [None if a is None else a.shape for a in patterns]
    [(2, 2), None, (2, 1)]
    >>> np.allclose((net[0].W * patterns[0]).sum(axis=0), 1.0)  # w_j^T a_j = 1 per neuron
    True
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
