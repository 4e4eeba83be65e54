"""Data sets: synthetic toy polygons, and readers for users' own photographs."""

from .folder import (
    IMAGE_EXTENSIONS,
    SkippedFilesWarning,
    find_images,
    list_image_folder,
    load_image_folder,
    read_image,
    read_images,
)
from .polygons import make_polygons
from .textures import TEXTURES, load_textures, write_texture_folder

__all__ = [
    "IMAGE_EXTENSIONS",
    "SkippedFilesWarning",
    "TEXTURES",
    "find_images",
    "list_image_folder",
    "load_image_folder",
    "load_textures",
    "make_polygons",
    "read_image",
    "read_images",
    "write_texture_folder",
]
