"""Layers of a small convolutional network on NumPy or CuPy arrays.

Arrays are ``(N, C, H, W)`` for images and ``(N, D)`` for vectors.  Every
layer is stateless between calls: ``forward(x)`` returns the output *and a
trace* (what the backward step needs: the input and, for max pooling, the
switches), and ``backward(grad, trace)`` returns the input gradient and the
parameter gradients.  Nothing is cached on the layers, so explanations and
gradients are thread-safe (the design of ``bowlrp.base``).

The two linear layers (:class:`Conv2d`, :class:`Linear`) also expose the
primitives the LRP rules and the modified-gradient baselines are built from:

``apply(x, W, b)``
    the layer's affine map with weights ``W`` (any array of the weight's
    shape: ``W+``, ``W**2``, a pattern ``A``...) and bias ``b`` (or None);
``apply_T(g, W, x_shape)``
    the transpose of ``apply(., W, None)``, i.e. the gradient with respect to
    the input: ``sum_j W_ij g_j``.

Convolution is im2col (a strided view of the padded input) followed by one
GEMM; its transpose loops over the ``kh * kw`` kernel offsets only, never over
pixels or neurons.
"""

import numpy as np

from .._backend import get_namespace

__all__ = [
    "Layer",
    "Conv2d",
    "Linear",
    "ReLU",
    "MaxPool2d",
    "SumPool2d",
    "AvgPool2d",
    "Flatten",
]


def _pair(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    try:
        a, b = (int(t) for t in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    return a, b


def _as_strided(xp, x, shape, strides):
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def _windows(x, kh, kw, sh, sw):
    """Strided view ``(N, C, Ho, Wo, kh, kw)`` of the windows of ``x`` (no copy)."""
    xp = get_namespace(x)
    N, C, H, W = x.shape
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    s = x.strides
    return _as_strided(xp, x, (N, C, Ho, Wo, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3]))


def _scatter_windows(cols, x_shape, kh, kw, sh, sw):
    """Transpose of :func:`_windows`: add ``cols (N, C, Ho, Wo, kh, kw)`` into an ``x_shape`` array."""
    xp = get_namespace(cols)
    N, C, Ho, Wo = cols.shape[:4]
    out = xp.zeros(x_shape, dtype=cols.dtype)
    for i in range(kh):  # loop over kernel offsets only
        for j in range(kw):
            out[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += cols[:, :, :, :, i, j]
    return out


class Layer:
    """Base class: a layer without parameters is the identity.

    A layer's ``forward(x)`` returns ``(output, trace)``, ``backward(g,
    trace)`` the input gradient and the parameter gradients; nothing is kept
    on the layer between the two.

    Examples
    --------
    >>> import numpy as np
    >>> Layer().forward(np.ones(2))
    (array([1., 1.]), None)
    """

    params = ()

    def forward(self, x):
        return x, None

    def backward(self, g, trace):
        return g, {}

    def output_shape(self, shape):
        """Shape of one output sample given one input sample's shape."""
        return shape

    def config(self):
        return {"type": type(self).__name__}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class _LinearLayer(Layer):
    """An affine layer ``z = apply(x, W, b)``; subclasses define apply / apply_T."""

    params = ("W", "b")

    def forward(self, x):
        return self.apply(x, self.W, self.b), x

    def backward(self, g, x):
        return self.apply_T(g, self.W, x.shape), self.param_grads(g, x)


class Linear(_LinearLayer):
    """Fully connected layer ``z_j = sum_i x_i W_ij + b_j`` (weights ``W`` of shape (in, out)).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Linear(2, 1, W=np.array([[1.0], [2.0]]), b=np.array([0.5]))
    >>> out, trace = layer.forward(np.array([[1.0, 1.0]]))  # the trace is the input
    >>> out
    array([[3.5]])
    """

    def __init__(self, in_features, out_features, W=None, b=None):
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.W = np.zeros((self.in_features, self.out_features)) if W is None else W
        self.b = np.zeros(self.out_features) if b is None else b

    def init(self, rng, xp=np):
        """He-normal weights, zero biases."""
        W = rng.standard_normal((self.in_features, self.out_features)) * np.sqrt(2.0 / self.in_features)
        self.W, self.b = xp.asarray(W), xp.zeros(self.out_features)

    def apply(self, x, W, b=None):
        z = x @ W.astype(x.dtype, copy=False)
        return z if b is None else z + b.astype(x.dtype, copy=False)

    def apply_T(self, g, W, x_shape=None):
        return g @ W.astype(g.dtype, copy=False).T

    def param_grads(self, g, x):
        return {"W": x.T @ g, "b": g.sum(0)}

    def output_shape(self, shape):
        if tuple(shape) != (self.in_features,):
            raise ValueError(f"Linear({self.in_features}, ...) got inputs of shape {tuple(shape)}; "
                             "put a Flatten() before it or fix in_features")
        return (self.out_features,)

    def config(self):
        return {"type": "Linear", "in_features": self.in_features, "out_features": self.out_features}


class Conv2d(_LinearLayer):
    """2-D convolution (cross-correlation) with weights ``W`` of shape (out, in, kh, kw).

    ``z[n, o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] * xpad[n, c, y*s + i, x*s + j]``
    with zero padding ``padding`` on each side.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)  # one sample, one channel, 4 x 4
    >>> conv = Conv2d(1, 1, 2, W=np.ones((1, 1, 2, 2)), b=np.array([-1.0]))
    >>> conv.forward(x)[0]  # sums of 2 x 2 windows, minus 1
    array([[[[ 9., 13., 17.],
             [25., 29., 33.],
             [41., 45., 49.]]]])
    >>> conv.output_shape((1, 4, 4))
    (1, 3, 3)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, W=None, b=None):
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self.W = np.zeros(shape) if W is None else W
        self.b = np.zeros(self.out_channels) if b is None else b

    def init(self, rng, xp=np):
        """He-normal weights, zero biases."""
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        W = rng.standard_normal(self.W.shape) * np.sqrt(2.0 / fan_in)
        self.W, self.b = xp.asarray(W), xp.zeros(self.out_channels)

    def _pad(self, x):
        xp = get_namespace(x)
        ph, pw = self.padding
        if ph == 0 and pw == 0:
            return x
        return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))

    def patches(self, x):
        """im2col: ``(N, Ho, Wo, C*kh*kw)`` patches of the padded input (a copy)."""
        xp = get_namespace(x)
        kh, kw = self.kernel_size
        win = _windows(self._pad(x), kh, kw, *self.stride)  # (N, C, Ho, Wo, kh, kw)
        N, C, Ho, Wo = win.shape[:4]
        return xp.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(N, Ho, Wo, C * kh * kw)

    def apply(self, x, W, b=None):
        cols = self.patches(x)
        Wm = W.astype(x.dtype, copy=False).reshape(W.shape[0], -1)
        z = cols @ Wm.T  # (N, Ho, Wo, O): one GEMM
        if b is not None:
            z = z + b.astype(x.dtype, copy=False)
        return z.transpose(0, 3, 1, 2)

    def apply_T(self, g, W, x_shape):
        N, C, H, Wd = x_shape
        ph, pw = self.padding
        kh, kw = self.kernel_size
        O, Ho, Wo = g.shape[1:]
        Wm = W.astype(g.dtype, copy=False).reshape(O, -1)
        cols = g.transpose(0, 2, 3, 1) @ Wm  # (N, Ho, Wo, C*kh*kw)
        cols = cols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 1, 2, 4, 5)
        out = _scatter_windows(cols, (N, C, H + 2 * ph, Wd + 2 * pw), kh, kw, *self.stride)
        return out[:, :, ph:ph + H, pw:pw + Wd] if (ph or pw) else out

    def param_grads(self, g, x):
        cols = self.patches(x)
        gm = g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])  # (P, O)
        dW = (gm.T @ cols.reshape(-1, cols.shape[-1])).reshape(self.W.shape)
        return {"W": dW, "b": gm.sum(0)}

    def output_shape(self, shape):
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise ValueError(f"Conv2d({self.in_channels}, ...) got inputs of shape {tuple(shape)}; "
                             f"expected ({self.in_channels}, H, W)")
        _, H, W = shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        if Ho < 1 or Wo < 1:
            raise ValueError(f"Conv2d kernel {self.kernel_size} does not fit inputs of shape {tuple(shape)}")
        return (self.out_channels, Ho, Wo)

    def config(self):
        return {"type": "Conv2d", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}


class ReLU(Layer):
    """``max(0, x)``; the backward step uses the subgradient 0 at 0.

    Examples
    --------
    >>> import numpy as np
    >>> ReLU().forward(np.array([-1.0, 0.0, 2.0]))[0]
    array([0., 0., 2.])
    """

    def forward(self, x):
        xp = get_namespace(x)
        return xp.maximum(x, 0), x

    def backward(self, g, x):
        return g * (x > 0), {}


class _Pool(Layer):
    def __init__(self, kernel_size=2, stride=None):
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")

    def output_shape(self, shape):
        C, H, W = shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
        if Ho < 1 or Wo < 1:
            raise ValueError(f"{type(self).__name__} window {self.kernel_size} does not fit inputs of "
                             f"shape {tuple(shape)}")
        return (C, Ho, Wo)

    def config(self):
        return {"type": type(self).__name__, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride)}


class SumPool2d(_Pool):
    """Sum over each ``kernel_size`` window (no padding; a ragged border is dropped).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)  # one sample, one channel, 4 x 4
    >>> SumPool2d(2).forward(x)[0]
    array([[[[10., 18.],
             [42., 50.]]]])
    """

    scale = 1.0

    def apply(self, x):
        win = _windows(x, *self.kernel_size, *self.stride)
        return win.sum(axis=(4, 5)) * self.scale

    def apply_T(self, g, x_shape):
        xp = get_namespace(g)
        kh, kw = self.kernel_size
        cols = xp.broadcast_to((g * self.scale)[..., None, None], g.shape + (kh, kw))
        return _scatter_windows(cols, x_shape, kh, kw, *self.stride)

    def forward(self, x):
        return self.apply(x), x.shape

    def backward(self, g, x_shape):
        return self.apply_T(g, x_shape), {}


class AvgPool2d(SumPool2d):
    """Mean over each ``kernel_size`` window (a sum pool scaled by ``1 / (kh kw)``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)  # one sample, one channel, 4 x 4
    >>> AvgPool2d(2).forward(x)[0]
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """

    def __init__(self, kernel_size=2, stride=None):
        super().__init__(kernel_size, stride)
        self.scale = 1.0 / (self.kernel_size[0] * self.kernel_size[1])


class MaxPool2d(_Pool):
    """Maximum over each window; the trace keeps the switches (first argmax).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)  # one sample, one channel, 4 x 4
    >>> pool = MaxPool2d(2)
    >>> out, trace = pool.forward(x)
    >>> out
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> pool.route(np.ones_like(out), trace)[0, 0]  # back to the winners
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]])
    """

    def forward(self, x):
        xp = get_namespace(x)
        kh, kw = self.kernel_size
        win = _windows(x, kh, kw, *self.stride)
        flat = win.reshape(win.shape[:4] + (kh * kw,))
        arg = xp.argmax(flat, axis=-1)
        out = xp.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        return out, (x.shape, arg)

    def route(self, g, trace):
        """Send ``g`` to the switches (the gradient; winner-take-all relevance)."""
        xp = get_namespace(g)
        x_shape, arg = trace
        kh, kw = self.kernel_size
        onehot = arg[..., None] == xp.arange(kh * kw)
        cols = (g[..., None] * onehot).reshape(g.shape + (kh, kw))
        return _scatter_windows(cols, x_shape, kh, kw, *self.stride)

    def backward(self, g, trace):
        return self.route(g, trace), {}


class Flatten(Layer):
    """``(N, C, H, W) -> (N, C*H*W)``.

    Examples
    --------
    >>> import numpy as np
    >>> Flatten().forward(np.zeros((5, 2, 3, 3)))[0].shape
    (5, 18)
    """

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, g, shape):
        return g.reshape(shape), {}

    def output_shape(self, shape):
        return (int(np.prod(shape)),)
