"""Deprecated: the LRP rules live in :mod:`bowlrp.rules`, the composites in :mod:`bowlrp.cnn.composites`.

This module re-exports them so that code importing ``bowlrp.cnn.rules``
keeps working; it warns once on import.
"""

import warnings

from ..rules import RULES, AlphaBeta, Epsilon, Flat, Magnitude, Proportional, Rule, WSquare, ZBox, ZPlus, get_rule
from .composites import COMPOSITES, Composite, get_composite

warnings.warn("bowlrp.cnn.rules is deprecated: import the rules from bowlrp.rules (or bowlrp.cnn) and the "
              "composites from bowlrp.cnn.composites", DeprecationWarning, stacklevel=2)

__all__ = ["AlphaBeta", "COMPOSITES", "Composite", "Epsilon", "Flat", "Magnitude", "Proportional", "RULES",
           "Rule", "WSquare", "ZBox", "ZPlus", "get_composite", "get_rule"]
