"""Encoders: from a set of local descriptors per image to one feature vector."""

from .bow import BagOfWords
from .fisher import FisherVectorEncoder

__all__ = ["BagOfWords", "FisherVectorEncoder"]
