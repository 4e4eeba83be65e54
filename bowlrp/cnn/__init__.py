"""A small convolutional network on NumPy or CuPy, explained with LRP and baselines.

* :mod:`bowlrp.cnn.layers` -- Conv2d, ReLU, MaxPool2d, SumPool2d, AvgPool2d,
  Linear, Flatten, Sequential (stateless: forward returns a trace);
* :mod:`bowlrp.cnn.train` -- losses, SGD/Adam, the training loop;
* :mod:`bowlrp.cnn.rules` -- LRP rules and composites (presets by name);
* :mod:`bowlrp.cnn.analyzers` -- LRP, gradient, gradient x input, DeconvNet,
  Guided Backprop, PatternNet, PatternAttribution; pattern fitting;
* :mod:`bowlrp.cnn.classifier` -- :class:`CNNClassifier`, a scikit-learn
  classifier whose ``explain`` returns a :class:`bowlrp.Explanation`.

See docs/cnn.md.
"""

from .analyzers import METHODS, backward, explain_model, fit_patterns
from .classifier import CNNClassifier, default_layers
from .layers import (AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, SumPool2d,
                     Trace)
from .rules import (COMPOSITES, RULES, AlphaBeta, Composite, Epsilon, Flat, WSquare, ZBox, ZPlus,
                    get_composite, get_rule)
from .train import train

__all__ = [
    "AlphaBeta", "AvgPool2d", "CNNClassifier", "COMPOSITES", "Composite", "Conv2d", "Epsilon",
    "Flat", "Flatten", "Linear", "METHODS", "MaxPool2d", "ReLU", "RULES", "Sequential", "SumPool2d",
    "Trace", "WSquare", "ZBox", "ZPlus", "backward", "default_layers", "explain_model",
    "fit_patterns", "get_composite", "get_rule", "train",
]
