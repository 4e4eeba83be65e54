"""Spectral Relevance Analysis, SpRAy (thesis Ch. 6).

Relevance maps are sum-pooled to a coarse grid, a symmetric k-nearest-neighbour
graph is built over them (eq. 6.1, ``w_ij = max(w_ij, w_ji)``, ``k = ceil(ln
n)``), and the eigenvalues of its normalised Laplacian
``L = I - D^-1/2 W D^-1/2`` are inspected: near-zero eigenvalues followed by
a gap (the eigengap) count the groups of explanations, i.e. the model's
prediction strategies.  Spectral clustering and a t-SNE embedding (both from
scikit-learn) show the groups.
"""

from numbers import Integral

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import laplacian
from sklearn.base import BaseEstimator
from sklearn.cluster import SpectralClustering
from sklearn.manifold import TSNE
from sklearn.neighbors import kneighbors_graph

from ._common import check_heatmaps, resolve_seed

__all__ = ["SpRAy", "pool_relevance", "knn_affinity", "laplacian_spectrum"]


def pool_relevance(heatmaps, grid=(20, 20)):
    """Sum-pool each map onto a ``grid`` of cells (the thesis uses 20 x 20).

    Cell edges are ``round(linspace(0, H, gh + 1))``; maps of different sizes
    give vectors of the same length.

    Returns
    -------
    ndarray (n_maps, gh * gw)
    """
    maps = check_heatmaps(heatmaps)
    gh, gw = grid
    out = np.empty((len(maps), gh * gw))
    for i, h in enumerate(maps):
        H, W = h.shape
        if H < gh or W < gw:
            raise ValueError(f"map {i} of shape {h.shape} is smaller than the grid {grid}")
        re = np.rint(np.linspace(0, H, gh + 1)).astype(np.intp)
        ce = np.rint(np.linspace(0, W, gw + 1)).astype(np.intp)
        out[i] = np.add.reduceat(np.add.reduceat(h, re[:-1], axis=0), ce[:-1], axis=1).ravel()
    return out


def knn_affinity(X, n_neighbors=None):
    """Binary symmetric k-nearest-neighbour affinity (eq. 6.1), sparse (n, n).

    ``n_neighbors`` defaults to ``ceil(ln n)``, at least 1.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 3:
        raise ValueError(f"SpRAy needs at least 3 samples, got {n}")
    k = max(1, int(np.ceil(np.log(n)))) if n_neighbors is None else int(n_neighbors)
    if not 1 <= k < n:
        raise ValueError(f"n_neighbors must be in [1, {n - 1}], got {k}")
    W = kneighbors_graph(X, k, mode="connectivity", include_self=False)
    return sparse.csr_matrix(W.maximum(W.T))


def laplacian_spectrum(W, n_eigenvalues=10):
    """The smallest eigenvalues of the normalised Laplacian of ``W``, ascending."""
    Lap = laplacian(sparse.csr_matrix(W, dtype=np.float64), normed=True)
    Lap = Lap.toarray() if sparse.issparse(Lap) else np.asarray(Lap)
    ev = np.linalg.eigvalsh((Lap + Lap.T) / 2)
    return np.clip(ev[:n_eigenvalues], 0.0, None)


class SpRAy(BaseEstimator):
    """Spectral Relevance Analysis of a set of relevance maps (thesis Ch. 6).

    Parameters
    ----------
    grid : tuple of int, default=(20, 20)
        Sum-pooling grid (Sec. 6.3).
    n_neighbors : int or None
        ``k`` of the kNN graph; None uses ``ceil(ln n)``.
    n_clusters : int or None
        Clusters for spectral clustering; None takes the eigengap's estimate.
    n_eigenvalues : int, default=10
        Eigenvalues kept (and searched for the eigengap).
    embedding : bool, default=True
        Compute a 2-D t-SNE embedding of the pooled maps.
    perplexity : float, default=30.0
        t-SNE perplexity (lowered to ``(n - 1) / 3`` for few samples).
    random_state : int, RandomState or None

    Attributes
    ----------
    features_ : ndarray (n, gh * gw)   pooled maps
    affinity_ : sparse (n, n)          symmetric kNN graph (eq. 6.1)
    eigenvalues_ : ndarray             smallest Laplacian eigenvalues, ascending
    eigengap_ : ndarray                ``eigenvalues_[1:] - eigenvalues_[:-1]``
    n_clusters_ : int                  the eigengap's estimate ``argmax gap + 1``
    labels_ : ndarray (n,)             spectral-clustering labels
    embedding_ : ndarray (n, 2) or None
    """

    def __init__(self, grid=(20, 20), n_neighbors=None, n_clusters=None, n_eigenvalues=10, embedding=True,
                 perplexity=30.0, random_state=None):
        self.grid = grid
        self.n_neighbors = n_neighbors
        self.n_clusters = n_clusters
        self.n_eigenvalues = n_eigenvalues
        self.embedding = embedding
        self.perplexity = perplexity
        self.random_state = random_state

    def fit(self, heatmaps, y=None):
        """Pool, build the graph, compute the spectrum, cluster and embed ``heatmaps``.

        ``heatmaps`` may also be a 2-D array of already pooled maps (n, d).
        """
        if not isinstance(self.n_eigenvalues, Integral) or self.n_eigenvalues < 2:
            raise ValueError(f"n_eigenvalues must be an integer >= 2, got {self.n_eigenvalues!r}")
        if self.n_clusters is not None and (not isinstance(self.n_clusters, Integral) or self.n_clusters < 1):
            raise ValueError(f"n_clusters must be None or an integer >= 1, got {self.n_clusters!r}")
        if isinstance(heatmaps, np.ndarray) and heatmaps.ndim == 2:
            X = np.asarray(heatmaps, dtype=np.float64)
        else:
            X = pool_relevance(heatmaps, self.grid)
        seed = resolve_seed(self.random_state)
        self.features_ = X
        self.affinity_ = knn_affinity(X, self.n_neighbors)
        ev = laplacian_spectrum(self.affinity_, min(self.n_eigenvalues, len(X)))
        self.eigenvalues_ = ev
        self.eigengap_ = np.diff(ev)
        self.n_clusters_ = int(np.argmax(self.eigengap_)) + 1
        k = self.n_clusters_ if self.n_clusters is None else int(self.n_clusters)
        if k > 1:
            sc = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="kmeans")
            self.labels_ = sc.fit_predict(self.affinity_.toarray())
        else:
            self.labels_ = np.zeros(len(X), dtype=np.intp)
        self.embedding_ = None
        if self.embedding:
            perp = min(float(self.perplexity), max(1.0, (len(X) - 1) / 3.0))
            self.embedding_ = TSNE(n_components=2, perplexity=perp, random_state=seed, init="pca").fit_transform(X)
        return self

    def fit_predict(self, heatmaps, y=None):
        """Fit and return the cluster labels."""
        return self.fit(heatmaps).labels_
