"""Data sets: synthetic toy polygons, and readers for users' own photographs."""

from .folder import IMAGE_EXTENSIONS, read_image
from .polygons import make_polygons

__all__ = ["make_polygons", "read_image", "IMAGE_EXTENSIONS"]
