"""A small convolutional network on NumPy or CuPy, explained with LRP and baselines.

* :mod:`bowlrp.cnn.layers` -- Conv2d, ReLU, MaxPool2d, SumPool2d, AvgPool2d,
  Linear, Flatten, Sequential (stateless: forward returns a trace);
* :mod:`bowlrp.cnn.train` -- losses, SGD/Adam, the training loop;
* :mod:`bowlrp.cnn.composites` -- which rule each layer applies (presets by
  name, the gradient-type methods among them); the LRP rules themselves are
  the family of :mod:`bowlrp.rules`, shared with the mapping stages;
* :mod:`bowlrp.cnn.analyzers` -- the backward engine: LRP, gradient, gradient
  x input, DeconvNet, Guided Backprop, PatternNet, PatternAttribution;
  pattern fitting;
* :mod:`bowlrp.cnn.classifier` -- :class:`CNNClassifier`, a scikit-learn
  classifier whose ``explain`` returns a :class:`bowlrp.Explanation`.

See docs/cnn.md.
"""

from ..rules import RULES, AlphaBeta, Epsilon, Flat, Magnitude, Proportional, Rule, WSquare, ZBox, ZPlus, get_rule
from .analyzers import (METHODS, backward, explain_model, fit_patterns, method_composite, signed_network,
                        signed_patterns)
from .classifier import CNNClassifier, default_layers
from .composites import COMPOSITES, Composite, get_composite, pattern_composite
from .layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, SumPool2d
from .network import Sequential, Trace
from .train import train

__all__ = [
    "AlphaBeta", "AvgPool2d", "CNNClassifier", "COMPOSITES", "Composite", "Conv2d", "Epsilon",
    "Flat", "Flatten", "Linear", "METHODS", "Magnitude", "MaxPool2d", "Proportional", "ReLU", "RULES",
    "Rule", "Sequential", "SumPool2d", "Trace", "WSquare", "ZBox", "ZPlus", "backward", "default_layers",
    "explain_model", "fit_patterns", "get_composite", "get_rule", "method_composite", "pattern_composite",
    "signed_network", "signed_patterns", "train",
]
