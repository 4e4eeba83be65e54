"""Encoders: from a set of local descriptors per image to one feature vector."""

from .bow import BagOfWords

__all__ = ["BagOfWords"]
