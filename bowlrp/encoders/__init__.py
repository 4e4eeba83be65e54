"""Encoders: from a set of local descriptors per image to one feature vector.

* :class:`BagOfWords` -- visual-word histograms (``bow.py``; the mapping and
  pooling functions in ``bow_math.py``).
* :class:`FisherVectorEncoder` -- improved Fisher vectors (``fisher.py``; the
  equations in ``fisher_math.py``, the relevance step in
  ``fisher_relevance.py``, the spatial pyramid in ``pyramid.py``).
* :class:`DescriptorPCA` -- PCA of the descriptors as an explainable stage
  (``pca.py``).
"""

from .bow import BagOfWords
from .descriptor_sets import ProjectedDescriptorSet, check_descriptor_sets
from .fisher import ConservationWarning, FisherVectorEncoder
from .pca import DescriptorPCA

__all__ = ["BagOfWords", "ConservationWarning", "DescriptorPCA", "FisherVectorEncoder", "ProjectedDescriptorSet",
           "check_descriptor_sets"]
