"""bowlrp: Layer-wise Relevance Propagation for Bag-of-Words kernel-SVM pipelines.

Typical use::

    import bowlrp
    pipe = bowlrp.ExplainablePipeline([
        ("sift", bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)),
        ("bow", bowlrp.BagOfWords(n_words=128, mapping="rank")),
        ("svm", bowlrp.KernelSVC(kernel="hik")),
    ]).fit(images, labels)
    exp = pipe.explain(test_images)
    exp.pixels[0]          # (H, W) relevance; sums to exp.score[0] - exp.bias[0]
"""

from .encoders import BagOfWords, DescriptorPCA, FisherVectorEncoder
from .features import DenseSIFT, DescriptorSet
from .explanation import Explanation
from .pipeline import ExplainablePipeline, explain
from .svm import KernelOneClassSVM, KernelSVC
from .cnn import CNNClassifier
from . import cnn, datasets, evaluation, viz  # noqa: E402, F401  (subpackages users reach as bowlrp.<name>)

__version__ = "0.1.0"

from .collection import explain_collection  # noqa: E402  (after __version__, which model files record)

__all__ = [
    "BagOfWords",
    "DescriptorPCA",
    "FisherVectorEncoder",
    "DenseSIFT",
    "DescriptorSet",
    "Explanation",
    "ExplainablePipeline",
    "KernelSVC",
    "KernelOneClassSVM",
    "CNNClassifier",
    "explain",
    "explain_collection",
]
