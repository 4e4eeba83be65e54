"""Spectral Relevance Analysis, SpRAy (thesis Ch. 6, Algorithm 3).

SpRAy finds the prediction strategies of a model in the explanations of one
class: maps that put their relevance in the same places (the copyright tag
of the horse photographs, Ch. 4 and Sec. 6.3) form a group of their own.

1. Preprocessing: each relevance map is sum-pooled onto a fixed grid (maps
   of any size give vectors of one length).  By default the pooled maps are
   compared as they are: relevance is conserved, so a mark that the model
   uses *adds* relevance in one place, and normalising each map to unit
   norm shrinks exactly that excess (Sec. 6.2 leaves the preprocessing open:
   "suitable preprocessing choices can be used to focus the following steps
   on certain characteristics").  ``normalize="l2"`` compares maps by where
   their relevance lies alone, whatever the size of the score.
2. A symmetric k-nearest-neighbour affinity ``W`` (eq. 6.1, ``w_ij =
   max(w_ij, w_ji)``), with ``k = max(12, ceil(ln n))`` below ``n``: ``ceil(ln
   n)`` (von Luxburg 2007) is the asymptotic bound for a connected graph,
   and on sets of 50 to 100 maps it let the graph fall apart into small
   groups of similar maps.
3. The spectrum of the normalised Laplacian ``L_sym = I - D^-1/2 W D^-1/2``
   (eq. 6.2; Ng et al. 2002): as many near-zero eigenvalues as there are
   well-separated groups, then a jump, the eigengap ``lambda_{k+1} -
   lambda_k``, that says how many.
4. Spectral clustering on the eigenvectors of the ``k`` smallest eigenvalues
   (rows normalised, k-means; Ng et al. 2002) and a 2-D embedding for the
   eye: t-SNE on the distances ``1 / (W + eps)`` derived from the affinity
   (Sec. 6.2, perplexity 7, early exaggeration 6 as in Sec. 6.3), or the
   spectral embedding itself.
"""

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import laplacian
from scipy.sparse.linalg import eigsh
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from sklearn.neighbors import kneighbors_graph

from .._validation import check_choice, check_number
from ._common import check_heatmaps, resolve_seed

__all__ = [
    "SpRAy",
    "pool_relevance",
    "normalize_maps",
    "knn_affinity",
    "laplacian_spectrum",
    "spectral_decomposition",
    "eigengap",
    "default_neighbors",
    "MIN_NEIGHBORS",
    "NORMALIZATIONS",
    "RELEVANCE_PARTS",
]

#: Per-map normalisations of the pooled maps (:func:`normalize_maps`).
NORMALIZATIONS = ("none", "sum", "l2", "max")
#: Which part of the relevance is pooled.
RELEVANCE_PARTS = ("signed", "positive", "absolute")

# Above this many maps the spectrum is computed by Lanczos iteration instead of a dense eigensolver.
_DENSE_LIMIT = 1500
#: The fewest neighbours of the default kNN graph (:func:`default_neighbors`).
MIN_NEIGHBORS = 12


def default_neighbors(n):
    """The default ``k`` of the kNN graph for ``n`` maps: ``max(12, ceil(ln n))``, at most ``n - 1``.

    ``ceil(ln n)`` is von Luxburg's (2007) bound for a connected kNN graph as
    ``n`` grows; 12 is the smallest ``k`` of those measured (``ceil(ln n)``, 8,
    10, 12) at which SpRAy, on maps compared as they are, separated the
    marked explanations of the toy-polygon and the look-alike photograph
    watermark studies at four seeds each (ARI at least 0.9) and found a single
    group in the explanations of each of their models trained without the
    mark (docs/clever_hans.md).

    Examples
    --------
    >>> default_neighbors(50), default_neighbors(10), default_neighbors(10**6)
    (12, 9, 14)
    """
    n = int(n)
    if n < 3:
        raise ValueError(f"SpRAy needs at least 3 maps, got {n}")
    return min(n - 1, max(MIN_NEIGHBORS, int(np.ceil(np.log(n)))))


def pool_relevance(heatmaps, grid=(20, 20), part="signed"):
    """Sum-pool each map onto a ``grid`` of cells (Sec. 6.3 uses 20 x 20).

    Cell edges are ``round(linspace(0, H, gh + 1))``; maps of different sizes
    give vectors of the same length.

    Parameters
    ----------
    heatmaps : list of (H, W) arrays, a stack (n, H, W) or an Explanation
    grid : (int, int)
    part : {"signed", "positive", "absolute"}
        Pool the relevance as it is, only its positive part (the evidence
        *for* the class), or its magnitude.

    Returns
    -------
    ndarray (n_maps, gh * gw)

    Examples
    --------
    >>> import numpy as np
    >>> pool_relevance([np.ones((4, 6))], grid=(2, 3)).tolist()
    [[4.0, 4.0, 4.0, 4.0, 4.0, 4.0]]
    """
    maps = check_heatmaps(heatmaps)
    check_choice(part, "part", RELEVANCE_PARTS)
    gh, gw = (check_number(g, "grid", low=1, integer=True) for g in grid)
    out = np.empty((len(maps), gh * gw))
    for i, h in enumerate(maps):
        H, W = h.shape
        if H < gh or W < gw:
            raise ValueError(f"map {i} of shape {h.shape} is smaller than the grid {tuple(grid)}; use a coarser grid")
        if part == "positive":
            h = np.maximum(h, 0.0)
        elif part == "absolute":
            h = np.abs(h)
        re = np.rint(np.linspace(0, H, gh + 1)).astype(np.intp)
        ce = np.rint(np.linspace(0, W, gw + 1)).astype(np.intp)
        out[i] = np.add.reduceat(np.add.reduceat(h, re[:-1], axis=0), ce[:-1], axis=1).ravel()
    return out


def normalize_maps(X, normalize="l2"):
    """Scale each row of ``X`` (pooled maps): ``"sum"`` to unit sum of magnitudes, ``"l2"`` to unit
    Euclidean norm, ``"max"`` to unit largest magnitude, ``"none"`` leaves them.

    All-zero rows stay zero.

    Examples
    --------
    >>> normalize_maps([[3.0, -4.0], [0.0, 0.0]])
    array([[ 0.6, -0.8],
           [ 0. ,  0. ]])
    >>> normalize_maps([[3.0, -4.0]], "max")
    array([[ 0.75, -1.  ]])
    >>> try:
    ...     normalize_maps([[3.0, -4.0]], "L1")
    ... except ValueError as err:  # an InvalidParameterError, as scikit-learn raises
    ...     print(err)
    unknown normalize 'L1'; valid values of normalize are ['none', 'sum', 'l2', 'max']
    """
    check_choice(normalize, "normalize", NORMALIZATIONS)
    X = np.asarray(X, dtype=np.float64)
    if normalize == "none":
        return X.copy()
    A = np.abs(X)
    scale = {"sum": lambda: A.sum(1), "l2": lambda: np.sqrt((X * X).sum(1)), "max": lambda: A.max(1)}[normalize]()
    return X / np.where(scale > 0, scale, 1.0)[:, None]


def knn_affinity(X, n_neighbors=None):
    """Binary symmetric k-nearest-neighbour affinity (eq. 6.1), sparse (n, n).

    ``n_neighbors`` defaults to :func:`default_neighbors` ``(n)``.

    Examples
    --------
    Two groups of three pooled maps, each map joined to its two nearest:

    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]])
    >>> knn_affinity(X, n_neighbors=2).toarray().astype(int)
    array([[0, 1, 1, 0, 0, 0],
           [1, 0, 1, 0, 0, 0],
           [1, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 1, 1],
           [0, 0, 0, 1, 0, 1],
           [0, 0, 0, 1, 1, 0]])
    >>> knn_affinity(X, n_neighbors=6)
    Traceback (most recent call last):
    ...
    ValueError: n_neighbors must be in [1, 5] for 6 maps, got 6
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 3:
        raise ValueError(f"SpRAy needs at least 3 maps, got {n}")
    k = default_neighbors(n) if n_neighbors is None else int(n_neighbors)
    if not 1 <= k < n:
        raise ValueError(f"n_neighbors must be in [1, {n - 1}] for {n} maps, got {k}")
    W = kneighbors_graph(X, k, mode="connectivity", include_self=False)
    return sparse.csr_matrix(W.maximum(W.T))


def spectral_decomposition(W, n_eigenvalues=10):
    """The ``n_eigenvalues`` smallest eigenvalues of ``L_sym`` (eq. 6.2), ascending, and their eigenvectors.

    Returns
    -------
    eigenvalues : ndarray (m,)
    eigenvectors : ndarray (n, m)

    Examples
    --------
    A graph of two separate triangles: eigenvalue 0 twice (one per
    connected component), and in the first two eigenvectors the maps of one
    triangle sit at the same point:

    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]])
    >>> ev, vec = spectral_decomposition(knn_affinity(X, n_neighbors=2), n_eigenvalues=3)
    >>> np.round(ev, 3), vec.shape
    (array([0. , 0. , 1.5]), (6, 3))
    >>> bool(np.allclose(vec[0, :2], vec[2, :2])), bool(np.allclose(vec[0, :2], vec[3, :2]))
    (True, False)
    """
    W = sparse.csr_matrix(W, dtype=np.float64)
    n = W.shape[0]
    m = min(int(n_eigenvalues), n)
    Lap = laplacian(W, normed=True)
    if n <= _DENSE_LIMIT or m >= n - 1:
        Lap = Lap.toarray() if sparse.issparse(Lap) else np.asarray(Lap)
        ev, vec = np.linalg.eigh((Lap + Lap.T) / 2)
        ev, vec = ev[:m], vec[:, :m]
    else:
        # the smallest eigenvalues of L_sym are the largest of 2 I - L_sym (whose spectrum lies in [0, 2])
        shifted = sparse.identity(n, format="csr") * 2.0 - sparse.csr_matrix(Lap)
        ev, vec = eigsh(shifted, k=m, which="LA", v0=np.ones(n))
        order = np.argsort(2.0 - ev)
        ev, vec = 2.0 - ev[order], vec[:, order]
    return np.clip(ev, 0.0, None), vec


def laplacian_spectrum(W, n_eigenvalues=10):
    """The smallest eigenvalues of the normalised Laplacian of ``W``, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]])
    >>> laplacian_spectrum(knn_affinity(X, n_neighbors=2), n_eigenvalues=4).round(3)  # two groups: 0 twice
    array([0. , 0. , 1.5, 1.5])
    """
    return spectral_decomposition(W, n_eigenvalues)[0]


def eigengap(eigenvalues):
    """The number of groups the spectrum shows and the size of its gap: ``k = argmax_k (lambda_{k+1} - lambda_k)``.

    Examples
    --------
    >>> eigengap([0.0, 0.0, 0.01, 0.4, 0.45])
    (3, 0.39)
    """
    ev = np.asarray(eigenvalues, dtype=np.float64)
    if ev.ndim != 1 or len(ev) < 2:
        raise ValueError(f"eigengap needs at least 2 eigenvalues, got {ev.shape}")
    gaps = np.diff(ev)
    k = int(np.argmax(gaps))
    return k + 1, float(round(gaps[k], 12))


class SpRAy(BaseEstimator):
    """Spectral Relevance Analysis of a set of relevance maps (thesis Ch. 6, Algorithm 3).

    Parameters
    ----------
    grid : (int, int), default=(10, 10)
        Sum-pooling grid (Sec. 6.3 uses 20 x 20 on Pascal VOC photographs
        and reports the same results at 5 x 5, 10 x 10 and 50 x 50).
    part : {"signed", "positive", "absolute"}, default="signed"
        Which part of the relevance is pooled (:func:`pool_relevance`).
    normalize : {"none", "sum", "l2", "max"}, default="none"
        Per-map normalisation of the pooled maps (:func:`normalize_maps`).
        ``"none"`` lets the relevance a mark adds count (see the module
        notes); ``"l2"`` makes SpRAy blind to the size of each score, for
        maps whose scores differ for reasons of no interest.
    n_neighbors : int or None
        ``k`` of the kNN graph; None uses :func:`default_neighbors`,
        ``max(12, ceil(ln n))`` below ``n``.
    n_clusters : int or None
        Clusters for spectral clustering; None takes the eigengap's estimate.
    n_eigenvalues : int, default=10
        Eigenvalues kept and searched for the eigengap (at most that many
        minus one clusters).
    embedding : {"tsne", "spectral", None}, default="tsne"
        2-D embedding: t-SNE on the affinity-derived distances ``1 / (W +
        eps)`` (Sec. 6.2), the eigenvectors of the second and third smallest
        eigenvalues, or none.  ``True`` and ``False`` mean "tsne" and None.
    perplexity : float, default=7.0
        t-SNE perplexity (Sec. 6.3), lowered to ``(n - 1) / 3`` for few maps.
    early_exaggeration : float, default=6.0
        t-SNE early exaggeration (Sec. 6.3).
    random_state : int, RandomState or None
        Seeds k-means and t-SNE.

    Attributes
    ----------
    features_ : ndarray (n, gh * gw)
        The pooled, normalised maps.
    affinity_ : sparse (n, n)
        The symmetric kNN graph (eq. 6.1).
    eigenvalues_ : ndarray (n_eigenvalues,)
        Smallest eigenvalues of ``L_sym``, ascending.
    eigengaps_ : ndarray (n_eigenvalues - 1,)
        ``eigenvalues_[1:] - eigenvalues_[:-1]``.
    n_clusters_ : int
        The eigengap's estimate ``argmax gap + 1`` (whatever ``n_clusters`` is).
    eigengap_ : float
        The largest gap, ``eigenvalues_[n_clusters_] - eigenvalues_[n_clusters_ - 1]``.
    labels_ : ndarray (n,)
        Spectral-clustering labels, 0 .. k-1, numbered by decreasing size.
    embedding_ : ndarray (n, 2) or None

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.evaluation import SpRAy
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.normal(scale=0.1, size=(40, 20, 20))
    >>> maps[:20, 15:, :5] += 1.0          # half the maps: relevance on a corner mark
    >>> maps[20:, 8:13, 8:13] += 1.0       # the other half: on the object in the centre
    >>> s = SpRAy(embedding=None, random_state=0).fit(maps)
    >>> s.n_clusters_, sorted(np.bincount(s.labels_).tolist()), len(set(s.labels_[:20]))
    (2, [20, 20], 1)
    """

    def __init__(self, grid=(10, 10), part="signed", normalize="none", n_neighbors=None, n_clusters=None,
                 n_eigenvalues=10, embedding="tsne", perplexity=7.0, early_exaggeration=6.0, random_state=None):
        self.grid = grid
        self.part = part
        self.normalize = normalize
        self.n_neighbors = n_neighbors
        self.n_clusters = n_clusters
        self.n_eigenvalues = n_eigenvalues
        self.embedding = embedding
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.random_state = random_state

    def _embedding_kind(self):
        if self.embedding is True:
            return "tsne"
        if self.embedding is False or self.embedding is None:
            return None
        return check_choice(self.embedding, "embedding", ("tsne", "spectral", None))

    def preprocess(self, heatmaps):
        """Pool and normalise ``heatmaps`` (step 1); a 2-D array (n, d) is taken as pooled already."""
        if isinstance(heatmaps, np.ndarray) and heatmaps.ndim == 2:
            X = np.asarray(heatmaps, dtype=np.float64)
            if not np.isfinite(X).all():
                raise ValueError("the pooled maps contain NaN or infinite values")
        else:
            X = pool_relevance(heatmaps, tuple(self.grid), self.part)
        return normalize_maps(X, self.normalize)

    def fit(self, heatmaps, y=None):
        """Preprocess, build the graph, compute the spectrum, cluster and embed ``heatmaps``.

        ``heatmaps`` may be a list of (H, W) maps (sizes may differ), a stack
        (n, H, W), an :class:`bowlrp.Explanation`, or a 2-D array (n, d) of
        already pooled maps.
        """
        check_number(self.n_eigenvalues, "n_eigenvalues", low=2, integer=True)
        check_number(self.n_clusters, "n_clusters", low=1, integer=True, allow_none=True)
        check_number(self.n_neighbors, "n_neighbors", low=1, integer=True, allow_none=True)
        check_number(self.perplexity, "perplexity", low=0, low_open=True)
        check_number(self.early_exaggeration, "early_exaggeration", low=1)
        kind = self._embedding_kind()
        X = self.preprocess(heatmaps)
        n = len(X)
        if self.n_clusters is not None and self.n_clusters > n:
            raise ValueError(f"n_clusters={self.n_clusters} is more than the {n} maps; lower n_clusters")
        seed = resolve_seed(self.random_state)
        self.features_ = X
        self.affinity_ = knn_affinity(X, self.n_neighbors)
        k_wanted = 1 if self.n_clusters is None else int(self.n_clusters)
        m = min(n, max(int(self.n_eigenvalues), k_wanted, 3))
        ev, vec = spectral_decomposition(self.affinity_, m)
        self.eigenvalues_ = ev[: min(int(self.n_eigenvalues), n)]
        self.eigengaps_ = np.diff(self.eigenvalues_)
        self.n_clusters_, self.eigengap_ = eigengap(self.eigenvalues_)
        k = self.n_clusters_ if self.n_clusters is None else int(self.n_clusters)
        self.labels_ = self._cluster(vec[:, :k], k, seed)
        self.embedding_ = None
        if kind == "spectral":
            self.embedding_ = vec[:, 1:3].copy()
        elif kind == "tsne":
            self.embedding_ = self._tsne(n, seed)
        return self

    @staticmethod
    def _cluster(U, k, seed):
        """k-means on the row-normalised eigenvectors (Ng et al. 2002); labels numbered by decreasing size."""
        if k == 1:
            return np.zeros(len(U), dtype=np.intp)
        norms = np.linalg.norm(U, axis=1, keepdims=True)
        U = U / np.where(norms > 0, norms, 1.0)
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(U)
        order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
        rank = np.empty(k, dtype=np.intp)
        rank[order] = np.arange(k)
        return rank[labels]

    def _tsne(self, n, seed):
        """t-SNE on ``1 / (W + eps)`` (Sec. 6.2): neighbours at distance 1, the rest far apart."""
        eps = 1e-3
        D = 1.0 / (self.affinity_.toarray() + eps)
        np.fill_diagonal(D, 0.0)
        perp = min(float(self.perplexity), max(1.0, (n - 1) / 3.0))
        tsne = TSNE(n_components=2, perplexity=perp, early_exaggeration=float(self.early_exaggeration),
                    metric="precomputed", init="random", random_state=seed)
        return tsne.fit_transform(D)

    def fit_predict(self, heatmaps, y=None):
        """Fit and return the cluster labels."""
        return self.fit(heatmaps).labels_

    def cluster_means(self, heatmaps, normalize=True, size=None):
        """The mean map of each cluster; each map is scaled to ``max |R| = 1`` first when ``normalize`` (eq. 2.62).

        Maps of different sizes are resized (area averaging) to ``size`` =
        (H, W), by default the median height and width of the maps.

        Returns
        -------
        ndarray (n_clusters, H, W)
        """
        maps = check_heatmaps(heatmaps)
        if len(maps) != len(self.labels_):
            raise ValueError(f"got {len(maps)} maps for {len(self.labels_)} clustered ones; pass the maps fitted")
        shapes = {h.shape for h in maps}
        if size is None:
            size = maps[0].shape if len(shapes) == 1 else tuple(int(np.median([h.shape[d] for h in maps]))
                                                                for d in (0, 1))
        H, W = (check_number(v, "size", low=1, integer=True) for v in size)
        if normalize:
            maps = [h / (np.abs(h).max() or 1.0) for h in maps]
        A = np.stack([h if h.shape == (H, W) else cv2.resize(h, (W, H), interpolation=cv2.INTER_AREA) for h in maps])
        k = int(self.labels_.max()) + 1
        return np.stack([A[self.labels_ == c].mean(axis=0) for c in range(k)])
