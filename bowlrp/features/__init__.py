"""Local feature extractors: dense SIFT descriptors and the pixel rules of their backward step.

One module per idea: :mod:`~bowlrp.features.geometry` (grid, descriptor
squares, spatial bins), :mod:`~bowlrp.features.orientation` (dominant
orientation), :mod:`~bowlrp.features.descriptors` (:class:`DescriptorSet`),
:mod:`~bowlrp.features.pixel_rules` (descriptor relevance to pixels) and
:mod:`~bowlrp.features.sift` (the :class:`DenseSIFT` stage, which re-exports
all of them).
"""

from .descriptors import DescriptorSet
from .geometry import bin_boxes, box_side, descriptor_boxes, grid_centers
from .orientation import dominant_orientations, orientation_histograms
from .pixel_rules import (
    PIXEL_RULES,
    bin_pixel_relevance,
    energy_pixel_relevance,
    flat_pixel_relevance,
    magnitude_pixel_relevance,
    pixel_relevance,
    shared_bin_relevance,
)
from .sift import DenseSIFT

__all__ = [
    "PIXEL_RULES",
    "DenseSIFT",
    "DescriptorSet",
    "bin_boxes",
    "bin_pixel_relevance",
    "box_side",
    "descriptor_boxes",
    "dominant_orientations",
    "energy_pixel_relevance",
    "flat_pixel_relevance",
    "grid_centers",
    "magnitude_pixel_relevance",
    "orientation_histograms",
    "pixel_relevance",
    "shared_bin_relevance",
]
