"""Local feature extractors: dense SIFT descriptors with a flat-rule backward step."""

from .sift import DenseSIFT, DescriptorSet, flat_pixel_relevance, grid_centers

__all__ = ["DenseSIFT", "DescriptorSet", "flat_pixel_relevance", "grid_centers"]
