"""Synthetic data sets for demonstrating and testing explanations."""

from .polygons import make_polygons

__all__ = ["make_polygons"]
