"""A chain of layers (:class:`Sequential`), the trace of its forward pass, and layers rebuilt from configs.

The layers themselves are in :mod:`bowlrp.cnn.layers`; a network is a
:class:`Sequential` of them, saved and loaded through its ``config()``.
"""

import numpy as np

from .layers import AvgPool2d, Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, SumPool2d

__all__ = ["Sequential", "Trace", "layer_from_config"]

_TYPES = {c.__name__: c for c in (Conv2d, Linear, ReLU, MaxPool2d, SumPool2d, AvgPool2d, Flatten)}


def layer_from_config(cfg):
    """Build a layer (without weights) from its :meth:`Layer.config` dict.

    Examples
    --------
    >>> cfg = Conv2d(1, 8, 5, stride=2).config()
    >>> cfg["type"], cfg["stride"]
    ('Conv2d', [2, 2])
    >>> layer_from_config(cfg)
    Conv2d(in_channels=1, out_channels=8, kernel_size=[5, 5], stride=[2, 2], padding=[0, 0])
    """
    cfg = dict(cfg)
    kind = cfg.pop("type")
    if kind not in _TYPES:
        raise ValueError(f"unknown layer type {kind!r}; valid types: {sorted(_TYPES)}")
    return _TYPES[kind](**cfg)


class Sequential:
    """A chain of layers.

    ``forward(x)`` returns ``(out, traces)``; ``traces[k]`` is layer ``k``'s
    trace, and ``traces.inputs[k]`` its input activation.  ``backward(g,
    traces)`` returns the input gradient and the list of parameter gradients.

    Examples
    --------
    >>> import numpy as np
    >>> net = Sequential([Conv2d(1, 2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(8, 1)])
    >>> net.output_shape((1, 6, 6))
    (1,)
    >>> net = net.init(np.random.default_rng(0))  # He-normal weights, zero biases
    >>> out, trace = net.forward(np.zeros((5, 1, 6, 6)))
    >>> out.shape, [a.shape for a in trace.inputs[:2]]
    ((5, 1), [(5, 1, 6, 6), (5, 2, 4, 4)])
    """

    def __init__(self, layers):
        self.layers = list(layers)
        for k, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {k} ({type(layer).__name__}) is not a bowlrp.cnn layer")

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, k):
        return self.layers[k]

    def __repr__(self):
        return "Sequential([\n" + "".join(f"    {layer!r},\n" for layer in self.layers) + "])"

    def forward(self, x, upto=None):
        """Run the layers; return the output and a :class:`Trace`."""
        inputs, traces = [], []
        for layer in self.layers[:upto]:
            inputs.append(x)
            x, tr = layer.forward(x)
            traces.append(tr)
        return x, Trace(inputs, traces, x)

    def __call__(self, x):
        return self.forward(x)[0]

    def backward(self, g, trace):
        grads = [None] * len(self.layers)
        for k in range(len(self.layers) - 1, -1, -1):
            g, grads[k] = self.layers[k].backward(g, trace.traces[k])
        return g, grads

    def output_shape(self, shape):
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def init(self, rng, xp=np):
        for layer in self.layers:
            if hasattr(layer, "init"):
                layer.init(rng, xp)
        return self

    def config(self):
        return [layer.config() for layer in self.layers]

    @classmethod
    def from_config(cls, configs):
        return cls([layer_from_config(c) for c in configs])

    def parameters(self):
        """List of ``(layer_index, name)`` of every parameter."""
        return [(k, p) for k, layer in enumerate(self.layers) for p in layer.params]

    def to(self, xp, dtype=None):
        """Move every parameter to array module ``xp`` (and ``dtype``)."""
        from .._backend import asarray

        for layer in self.layers:
            for p in layer.params:
                setattr(layer, p, asarray(getattr(layer, p), xp, dtype=dtype))
        return self


class Trace:
    """What one forward pass leaves for the backward passes: per-layer inputs and traces.

    ``inputs[k]`` is the input of layer ``k``, ``traces[k]`` what its
    ``forward`` returned beside the output, ``output`` the network's output.

    Examples
    --------
    >>> import numpy as np
    >>> net = Sequential([Flatten(), Linear(4, 1, W=np.ones((4, 1)))])
    >>> out, trace = net.forward(np.ones((1, 1, 2, 2)))
    >>> trace.inputs[1], trace.output
    (array([[1., 1., 1., 1.]]), array([[4.]]))
    """

    __slots__ = ("inputs", "traces", "output")

    def __init__(self, inputs, traces, output):
        self.inputs, self.traces, self.output = inputs, traces, output
