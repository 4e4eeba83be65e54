"""The thesis' toy-polygon Bag-of-Words model (Sec. 2.4.3, Fig. 2.13).

Dense SIFT at sigma 2 and 3 on grids 6 and 9 pixels apart, each descriptor
rotated to its dominant gradient orientation; one k-means vocabulary of 128
words per scale with the rank mapping of eq. 2.86 (p = 2, n = 4), sum pooling
and L1 normalisation per block; a kernel SVM with one kernel per scale
(eq. 2.67, equal weights).  Default kernel: histogram intersection.

>>> from pipelines.toy_polygons import make_pipeline
>>> pipe = make_pipeline(n_words=32)
>>> [name for name, _ in pipe.steps]
['sift', 'bow', 'svm']
"""

from bowlrp.apps.demo import toy_pipeline


def make_pipeline(n_words=128, kernel="hik", C=1.0, random_state=0, verbose=False):
    """Unfitted toy-polygon pipeline; see the module docstring."""
    return toy_pipeline(n_words=n_words, kernel=kernel, C=C, random_state=random_state, verbose=verbose)
