"""Evaluating explanations: faithfulness, context use, complexity and SpRAy.

* :func:`region_perturbation` -- pixel region perturbation, MoRF/LeRF/random
  order, AOPC (paper 003, eq. 11-12; thesis Sec. 3.4.1).
* :func:`descriptor_perturbation` -- descriptor replacement for Bag-of-Words
  and Fisher-vector models with incremental encoding (thesis App. C.2, eq.
  C.1-C.2; :class:`GMMSampler`, :class:`FisherVectorUpdate`).
* :func:`context_ratio` -- outside-inside relevance ratio mu (eq. 4.11).
* :func:`heatmap_complexity` -- PNG size and entropy (paper 003, Fig. 5).
* :class:`SpRAy` -- spectral relevance analysis (thesis Ch. 6).
* :func:`occlusion` -- a model-agnostic baseline heatmap.
* ``bowlrp.evaluation.plots`` -- PNG figures (needs matplotlib).
"""

from .complexity import heatmap_complexity, heatmap_entropy, png_size
from .context import box_mask, context_ratio, context_ratio_per_class
from .descriptors import descriptor_perturbation
from .encoder_updates import BagOfWordsUpdate, FisherVectorUpdate, encoder_update, replacement_features
from .substitutes import DescriptorPool, GMMSampler
from .occlusion import occlusion
from .perturbation import PerturbationResult, aopc, region_perturbation, region_scores
from .spray import SpRAy, knn_affinity, laplacian_spectrum, pool_relevance

__all__ = [
    "BagOfWordsUpdate",
    "DescriptorPool",
    "FisherVectorUpdate",
    "GMMSampler",
    "PerturbationResult",
    "SpRAy",
    "aopc",
    "box_mask",
    "context_ratio",
    "context_ratio_per_class",
    "descriptor_perturbation",
    "encoder_update",
    "heatmap_complexity",
    "heatmap_entropy",
    "knn_affinity",
    "laplacian_spectrum",
    "occlusion",
    "png_size",
    "pool_relevance",
    "region_perturbation",
    "region_scores",
    "replacement_features",
]
