"""The thesis' Fisher-vector model (Ch. 4, after Chatfield et al. 2011), scaled by parameters.

Dense upright SIFT at four scales (spatial bins of 4, 6, 8 and 10 pixels,
i.e. ``sigma = bin / 3``) every 4 pixels; PCA to 80 dimensions; a diagonal
GMM of 256 components per scale; improved Fisher vectors (weights, means and
variances; power 0.5 and L2 normalisation, eq. 4.5) over a 1x1 + 2x2 + 3x1
spatial pyramid; a linear SVM.  Explanations go down to the descriptor
dimensions (eq. D.3) and, through the PCA, to the 4 x 4 spatial bins of
every SIFT descriptor (App. D.1.2).

The full model has ``4 scales x 8 cells x 256 x 161 = 1,318,912`` features;
tests and the toy task use it scaled down:

>>> from pipelines.fisher_vector import make_pipeline
>>> pipe = make_pipeline(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_components=16, pca=32,
...                      pyramid=((1, 1),))
>>> [name for name, _ in pipe.steps]
['sift', 'fv', 'svm']
"""

from bowlrp import DenseSIFT, ExplainablePipeline, KernelSVC
from bowlrp.encoders.fisher import FisherVectorEncoder

THESIS_SCALES = (4 / 3, 2.0, 8 / 3, 10 / 3)
THESIS_PYRAMID = ((1, 1), (2, 2), (3, 1))


def make_pipeline(
    scales=THESIS_SCALES,
    steps=4,
    rotate=False,
    n_components=256,
    pca=80,
    pyramid=THESIS_PYRAMID,
    include_weights=True,
    C=1.0,
    max_descriptors=50000,
    max_iter=100,
    dtype="float64",
    random_state=0,
    n_jobs=None,
):
    """Unfitted Fisher-vector pipeline; see the module docstring for the defaults."""
    return ExplainablePipeline([
        ("sift", DenseSIFT(scales=scales, steps=steps, rotate=rotate, n_jobs=n_jobs)),
        ("fv", FisherVectorEncoder(
            n_components=n_components, pca=pca, pyramid=pyramid, include_weights=include_weights,
            max_descriptors=max_descriptors, max_iter=max_iter, dtype=dtype, random_state=random_state,
        )),
        ("svm", KernelSVC(kernel="linear", C=C)),
    ])
