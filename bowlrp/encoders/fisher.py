"""Fisher-vector encoding of local descriptors, forward and backward (thesis Sec. 4.2-4.3, App. D.1).

Forward (eq. 4.1-4.5): descriptors are optionally reduced by PCA; a diagonal
GMM per descriptor level (one per SIFT scale, the blocks concatenated) maps
every descriptor to its gradient vector ``Psi(l)``; the vectors are averaged
per spatial-pyramid cell and power- and L2-normalised.  The equations are the
functions of :mod:`bowlrp.encoders.fisher_math`, the pyramid is
:mod:`bowlrp.encoders.pyramid`, the PCA :mod:`bowlrp.encoders.pca`.

Output layout (``feature_layout_``): blocks in the order level (SIFT scale),
pyramid grid, cell (row-major); each block is ``[w_1 .. w_K | mu_{1,1} ..
mu_{K,D} | sigma_{1,1} .. sigma_{K,D}]`` (weights only if
``include_weights``), so inside a block dimension ``K + D k + r`` is the mean
gradient of component ``k``, descriptor dimension ``r``.

Backward (eq. 4.6-4.10, D.3): the linear SVM on the normalised vector
``Phi(x)`` is decomposed by :class:`bowlrp.KernelSVC` (eq. 4.8 = A.1).  As in
the thesis, ``Phi`` is "resolved as part of the classification function": the
relevance of a normalised dimension is the relevance of the same
unnormalised dimension (``Phi`` is a sign-preserving, per-dimension
rescaling; the map is the identity and conserves exactly).  ``x_d = sum_l
z_ld`` is then decomposed with a rule of :mod:`bowlrp.rules` per descriptor
dimension (:mod:`bowlrp.encoders.fisher_relevance`) and back through the PCA
as the linear map of eq. 2.31.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._backend import asarray, get_namespace
from .._validation import check_choice, check_int, check_number
from ..base import ExplainableTransformerMixin
from ..rules import mapping_rule
from . import fisher_math as fm
from ._threads import blas_threads, map_tasks, task_threads
from .descriptor_sets import check_descriptor_sets
from .fisher_encoding import level_moments
from .fisher_math import row_chunks
from .fisher_relevance import (ConservationWarning, ProjectedRows, atom_moments, cell_statistics, check_conservation,
                               level_relevance, reduced_width)
from .pca import level_sample, linear_map_relevance, project
from .pyramid import block_layout, check_pyramid, descriptor_cells, grid_cells, n_cells, pyramid_atoms

__all__ = ["FisherVectorEncoder", "ConservationWarning", "grid_cells"]

_L2 = ("global", "block", None)
_TRACE_BYTES = 64 << 20  # projected descriptors of a level kept in the trace up to this size


_DTYPES = ("float64", "float32")
class FisherVectorEncoder(ExplainableTransformerMixin, TransformerMixin, BaseEstimator):
    """Improved Fisher vectors with a diagonal GMM per descriptor level, explainable with LRP.

    Parameters
    ----------
    n_components : int, default=256
        GMM components ``K`` per level (the thesis: 256).
    pca : int or None, default=None
        Reduce the descriptors to this many dimensions with scikit-learn's PCA
        (one per level) before the GMM (the thesis: 80); ``None`` keeps them.
        The same as a :class:`bowlrp.DescriptorPCA` stage before the encoder.
    pyramid : sequence of (rows, cols), default=((1, 1),)
        Spatial-pyramid grids; every cell is its own block.  A descriptor
        belongs to the cell its centre ``(x, y)`` falls in
        (``row = floor(y rows / H)``, ``col = floor(x cols / W)``).  The
        thesis' model: ``((1, 1), (2, 2), (3, 1))`` (3x1 = three horizontal
        stripes).  Needs descriptor sets with geometry unless ``((1, 1),)``.
    include_weights : bool, default=True
        Include the weight gradients (eq. 4.1); ``False`` drops them (the
        reduced FV of Chatfield et al.).
    power : float or None, default=0.5
        Exponent of the power normalisation ``sign(x)|x|^power`` (eq. 4.5);
        ``None`` skips it.
    l2 : {"global", "block", None}, default="global"
        L2 normalisation of the whole vector (eq. 4.5), of every block
        (level x cell) separately, or none.
    posterior_threshold : float in [0, 1), default=1e-6
        Posteriors ``gamma_k(l)`` below it are set to 0 (never a descriptor's
        largest), in the encoding and in its relevance alike, as VLFeat's
        Fisher-vector encoder skips posteriors below 1e-6.  Every rule is
        exact for the encoding computed; the encoding differs from the
        untruncated one by little (measured in ``docs/fisher.md``), and the
        alpha-beta, magnitude and flat rules only form messages of the pairs
        that carry mass.  ``0`` keeps every posterior (scikit-image's
        ``fisher_vector``).
    max_descriptors : int, default=50000
        Training descriptors per level sampled for the PCA and the GMM.
    reg_covar : float, default=1e-3
        Added to the GMM variances (scikit-learn's ``reg_covar``).
    max_iter : int, default=100
        EM iterations.
    dimension_relevance : bool, default=True
        :meth:`relevance` returns relevance per descriptor dimension (eq. D.3;
        arrays ``(n_i, n_dims_in_)``, back through the PCA), which
        :class:`bowlrp.DenseSIFT` maps to the 4x4 spatial bins; ``False``
        returns one value per descriptor (``(n_i,)``).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the encoding's PCA and log-density products.
        ``"float32"`` is about 1.5x faster (CPU time, the thesis' model) and
        changes the normalised encoding by about 1e-4 relative L2 -- the terms
        of the log densities' product cancel -- as much as the default
        posterior truncation does (measured in ``docs/fisher.md``).  The
        moments of truncated posteriors are summed in float64 either way, and
        the relevance step recomputes its column sums in float64 from the same
        posteriors, so conservation stays exact.
    blas_threads : "auto", int or None, default="auto"
        BLAS threads inside the encoding and the relevance step.  ``"auto"``
        measures one thread against the current setting on the shape of the
        encoder's products (once per process and shape, again after five
        minutes) and takes the faster: threaded BLAS was measured twice as fast
        on an idle machine and many times slower on a busy one or right after
        scikit-learn's OpenMP k-means.  ``fit`` runs EM single-threaded.  An
        int: that many threads; ``None``: leave BLAS alone.
    random_state : int, RandomState or None

    Attributes
    ----------
    pcas_ : list of PCA or None
    gmms_ : list of GaussianMixture
        One per level.
    mixtures_ : list of bowlrp.encoders.fisher_math.Mixture
        The GMMs in float64 with their derived arrays.
    means_, sigmas_, weights_ : list of ndarray
        ``(K, D)``, ``(K, D)`` (standard deviations), ``(K,)`` per level.
    pyramid_ : tuple of (rows, cols)
    n_levels_ : int
    n_dims_in_ : int
    n_dims_ : int
        Dimension ``D`` the GMM sees (after PCA).
    block_size_ : int
        ``K (1 + 2D)`` or ``2 K D``.
    block_sizes_ : tuple of int
        Size of every block (level x cell), in output order.
    feature_layout_ : list of dict
        One entry per block: ``level``, ``grid``, ``cell``, ``start``, ``stop``.
    n_features_out_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.random((60, 8)) for _ in range(4)]
    >>> fv = FisherVectorEncoder(n_components=3, random_state=0).fit(sets)
    >>> fv.transform(sets).shape
    (4, 51)
    """

    input_kind = "descriptors"
    takes_mapping_rule = True

    def __init__(
        self,
        n_components=256,
        pca=None,
        pyramid=((1, 1),),
        include_weights=True,
        power=0.5,
        l2="global",
        posterior_threshold=1e-6,
        max_descriptors=50000,
        reg_covar=1e-3,
        max_iter=100,
        dimension_relevance=True,
        dtype="float64",
        blas_threads="auto",
        random_state=None,
    ):
        self.n_components = n_components
        self.pca = pca
        self.pyramid = pyramid
        self.include_weights = include_weights
        self.power = power
        self.l2 = l2
        self.posterior_threshold = posterior_threshold
        self.max_descriptors = max_descriptors
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.dimension_relevance = dimension_relevance
        self.dtype = dtype
        self.blas_threads = blas_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ params
    def _check_params(self):
        check_int(self, "n_components", 1)
        check_int(self, "pca", 1, allow_none=True)
        check_int(self, "max_descriptors", 1)
        check_int(self, "max_iter", 1)
        grids = check_pyramid(self.pyramid)
        check_number(self.power, "power", low=0, high=1, low_open=True, allow_none=True)
        check_choice(self.l2, "l2", _L2)
        check_choice(np.dtype(self.dtype).name if self.dtype is not None else None, "dtype", _DTYPES)
        check_number(self.reg_covar, "reg_covar", low=0)
        check_number(self.posterior_threshold, "posterior_threshold", low=0, high=1, high_open=True)
        bt = self.blas_threads
        if not (bt is None or bt == "auto"):
            check_number(bt, "blas_threads", low=1, integer=True)
        return grids

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Fit one PCA (optional) and one diagonal GMM per level on sampled training descriptors.

        Parameters
        ----------
        X : list of descriptor sets
            Output of :meth:`bowlrp.DenseSIFT.transform` (or 2-D arrays).
        y : ignored
        """
        grids = self._check_params()
        descs, levels, n_levels = check_descriptor_sets(X)
        rng = check_random_state(self.random_state)
        D_in = descs[0].shape[1]
        if self.pca is not None and self.pca > D_in:
            raise ValueError(f"pca={self.pca} exceeds the descriptor dimension {D_in}")
        pcas, gmms = [], []
        for s in range(n_levels):
            pool = level_sample(descs, levels, s, self.max_descriptors, rng)
            if len(pool) < max(self.n_components, 2):
                raise ValueError(
                    f"level {s} has only {len(pool)} training descriptors, fewer than "
                    f"n_components={self.n_components}; use more images or fewer components"
                )
            with blas_threads(self.blas_threads):  # EM: many mid-sized products, one thread wins
                p = None
                if self.pca is not None:
                    p = PCA(n_components=self.pca, random_state=rng.randint(np.iinfo(np.int32).max)).fit(pool)
                    pool = p.transform(pool)
                g = GaussianMixture(
                    n_components=self.n_components, covariance_type="diag", reg_covar=self.reg_covar,
                    max_iter=self.max_iter, random_state=rng.randint(np.iinfo(np.int32).max),
                ).fit(pool)
            pcas.append(p)
            gmms.append(g)
        self.pcas_ = pcas
        self.gmms_ = gmms
        self.mixtures_ = [fm.Mixture.from_gmm(g) for g in gmms]
        self.means_ = [m.means for m in self.mixtures_]
        self.sigmas_ = [m.sigmas for m in self.mixtures_]
        self.weights_ = [m.weights for m in self.mixtures_]
        self.pyramid_ = grids
        self.n_levels_ = n_levels
        self.n_dims_in_ = D_in
        self.n_features_in_ = D_in
        self.n_dims_ = self.pca if self.pca is not None else D_in
        self.block_size_ = fm.block_size(self.n_components, self.n_dims_, self.include_weights)
        self.feature_layout_ = block_layout(n_levels, grids, self.block_size_)
        self.block_sizes_ = (self.block_size_,) * len(self.feature_layout_)
        self.n_features_out_ = len(self.feature_layout_) * self.block_size_
        return self

    # ---------------------------------------------- per-descriptor contributions
    def _dtype(self, xp):
        return xp.float32 if np.dtype(self.dtype) == np.float32 else xp.float64

    def _threads(self, xp, dt):
        """``(n_tasks_threads, BLAS context)``: levels on several threads with one BLAS thread each, or
        one after the other with the BLAS setting."""
        shape = (dt, 2 * self.n_dims_ + 1, self.n_components)
        n = task_threads(self.blas_threads, xp, shape)
        return n, blas_threads(1 if n > 1 else self.blas_threads, xp, shape)

    def project(self, descriptors, level, dtype=None):
        """The descriptors of ``level`` as the GMM sees them (after the PCA), ``(n, n_dims_)``."""
        check_is_fitted(self, "gmms_")
        xp = get_namespace(descriptors)
        dt = self._dtype(xp) if dtype is None else dtype
        p = self.pcas_[level]
        if p is None:
            return asarray(descriptors, xp, dtype=dt)
        return project(descriptors, p.mean_, p.components_, xp, dt)[0]

    def posteriors(self, descriptors, level):
        """Truncated posteriors ``gamma_k(l)`` (n, K) of the descriptors of ``level`` (float64)."""
        xp = get_namespace(descriptors)
        Y = self.project(descriptors, level, xp.float64)
        return fm.posteriors(fm.augment(Y, self.mixtures_[level], xp), self.mixtures_[level], xp, self.posterior_threshold)

    def embed(self, descriptors, level):
        """Gradient vectors ``Psi(l)`` (eq. 4.1-4.4) of descriptors of ``level``: ``(n, block_size_)``, float64.

        What one descriptor adds to the unnormalised vector of each cell it
        lies in is ``Psi(l) / |L_cell|`` (eq. 4.9-4.10); :meth:`normalize_raw`
        turns the sum into the encoding.  The posteriors are truncated as in
        :meth:`transform`.
        """
        xp = get_namespace(descriptors)
        Y = self.project(descriptors, level, xp.float64)
        g = fm.posteriors(fm.augment(Y, self.mixtures_[level], xp), self.mixtures_[level], xp, self.posterior_threshold)
        return fm.embed(Y, g, self.mixtures_[level], self.include_weights, xp)

    def normalize_raw(self, raw):
        """Power and L2 normalisation (eq. 4.5) of unnormalised vectors ``raw`` ``(..., n_features_out_)``."""
        check_is_fitted(self, "gmms_")
        return fm.normalize(raw, self.power, self.l2, self.block_size_, get_namespace(raw))

    def descriptor_cells(self, geometry, n):
        """Block index inside a level of ``n`` descriptors, one column per pyramid grid: ``(n, n_grids)``.

        ``geometry`` is the image's descriptor set (centres and image shape).
        """
        check_is_fitted(self, "gmms_")
        return descriptor_cells(geometry, n, self.pyramid_)

    # ----------------------------------------------------------------- forward
    def _check_input(self, X):
        check_is_fitted(self, "gmms_")
        self._check_params()
        descs, levels, n_levels = check_descriptor_sets(X)
        if n_levels > self.n_levels_ or any(d.shape[1] != self.n_dims_in_ for d in descs):
            raise ValueError(
                f"descriptors do not match the fitted model ({self.n_levels_} level(s) of dimension "
                f"{self.n_dims_in_})"
            )
        return descs, levels

    def _encode_level(self, i, s, X, d, lv, atoms, keep, xp, dt, out):
        """Write the unnormalised cell vectors of level ``s`` of image ``i`` into ``out`` (n_cells, B); return
        the level's trace."""
        atom_all, membership = atoms
        sel = np.flatnonzero(lv == s)
        p = self.pcas_[s]
        to_gmm = ((lambda rows: project(rows, p.mean_, p.components_, xp, dt)[0]) if p is not None
                  else (lambda rows: asarray(rows, xp, dtype=dt)))
        keep_y = len(sel) * self.n_dims_ * np.dtype(dt).itemsize <= _TRACE_BYTES  # else formed again later
        S, order, bounds, Y, G = level_moments(d, sel, atom_all[sel], membership.shape[1], to_gmm,
                                               self.mixtures_[s], self.posterior_threshold, keep, xp, dt,
                                               self.n_dims_in_, keep_y,
                                               projection=None if p is None else (p.mean_, p.components_))
        Mb = asarray(membership, xp)  # per-atom moments -> per-cell moments -> eq. 4.1-4.3 averaged
        Sc = (Mb @ S.reshape(S.shape[0], -1)).reshape((Mb.shape[0],) + S.shape[1:])
        counts = np.asarray(membership) @ np.diff(bounds).astype(np.float64)
        fm.fisher_vectors(Sc, counts, self.mixtures_[s], self.include_weights, xp, out=out)
        return None if not keep else {"sel": sel, "order": order, "bounds": bounds, "Y": Y, "G": G,
                                      "S": S if dt == xp.float64 else None}

    def _encode(self, X, keep):
        descs, levels = self._check_input(X)
        xp = get_namespace(*descs)
        dt = self._dtype(xp)
        nc, B = n_cells(self.pyramid_), self.block_size_
        raw = xp.zeros((len(descs), self.n_features_out_), dtype=xp.float64)
        atoms = [pyramid_atoms(X[i], len(lv), self.pyramid_) for i, lv in enumerate(levels)]
        tasks = [(i, s, X, descs[i], levels[i], atoms[i], keep, xp, dt,
                  raw[i, s * nc * B : (s + 1) * nc * B].reshape(nc, B))
                 for i in range(len(descs)) for s in range(self.n_levels_)]
        n_threads, blas = self._threads(xp, dt)
        with blas:
            done = map_tasks(self._encode_level, tasks, n_threads)  # each writes its part of raw
        traces = [{"n": len(lv), "membership": atoms[i][1], "descriptors": descs[i], "levels": []}
                  for i, lv in enumerate(levels)]
        for (i, *_), lt in zip(tasks, done):
            if keep:
                traces[i]["levels"].append(lt)
        if not keep:  # raw is not returned: normalised in place
            return fm.normalize(raw, self.power, self.l2, self.block_size_, xp, out=raw), None
        return self.normalize_raw(raw), {"images": traces, "raw": raw}

    def forward(self, X):
        """Encode ``X``; return ``(features, trace)`` for :meth:`relevance`.

        The trace holds per image and level the projected descriptors and
        their posteriors (in the encoder's dtype), sorted by spatial atom,
        and the unnormalised vectors (``trace["raw"]``, the column sums of
        the proportional rule).  Nothing of size descriptors x Fisher
        dimensions.
        """
        return self._encode(X, keep=True)

    def transform(self, X):
        """Return the improved Fisher vectors, shape ``(n_images, n_features_out_)``."""
        return self._encode(X, keep=False)[0]

    # ---------------------------------------------------------------- backward
    def relevance(self, relevance, trace, rule=None, reduce=None):
        """Redistribute Fisher-vector relevance to descriptors (eq. 4.8-4.10, D.3, 2.31).

        Parameters
        ----------
        relevance : array of shape ``(n_images, n_features_out_)``
            Relevance of each normalised Fisher dimension (eq. 4.8, from
            ``KernelSVC(kernel="linear")``); it is taken as the relevance of
            the unnormalised dimension (see the module docstring).
        trace : dict
            From :meth:`forward` on the same images.
        rule : str, Rule or None
            None or ``"z"`` (proportional, exact), ``"epsilon"``,
            ``"alphabeta"``, ``"abs"``, ``"flat"``; the same rule is used for
            the PCA step.  Proportional and epsilon are matrix products; the
            others form the messages of the (descriptor, component) pairs
            with a non-zero posterior.
        reduce : callable or None
            With ``dimension_relevance``, a map ``(m, n_dims_in_) -> (m, w)``
            that keeps row sums (such as
            :func:`bowlrp.features.pixel_rules.bin_parts`), applied to each
            chunk of descriptor rows as it is formed, so that the ``(n,
            n_dims_in_)`` float64 result is never held.

        Returns
        -------
        list of arrays
            ``(n_i, n_dims_in_)`` relevance per descriptor dimension when
            ``dimension_relevance`` (``(n_i, w)`` with ``reduce``; what is lost
            to unusable messages is then spread evenly over the ``w``
            columns), else ``(n_i,)`` per descriptor.  A Fisher
            dimension without a usable message (posteriors all truncated, or
            messages that cancel) spreads its relevance evenly over the
            descriptors of its cell (mean and variance dimensions over
            descriptor dimension ``r``, weight dimensions over all); an empty
            cell's relevance goes evenly to all the image's descriptors (the
            zero-mapping case, eq. 2.79).  An exact rule that fails to conserve
            by more than ``1e-6`` of ``sum |R|`` raises a
            :class:`ConservationWarning`.
        """
        rule = mapping_rule(rule)
        raw = trace["raw"]
        xp = get_namespace(raw)
        R = asarray(relevance, xp, dtype=xp.float64)
        if R.shape != raw.shape:
            raise ValueError(f"relevance must have shape {tuple(raw.shape)}, got {tuple(R.shape)}")
        check_is_fitted(self, "gmms_")
        nc, B = n_cells(self.pyramid_), self.block_size_
        tasks, owners = [], []
        for i, tr in enumerate(trace["images"]):
            if tr["n"] == 0:
                raise ValueError(f"image {i} has no descriptors: its relevance cannot be attributed")
            for s, lt in enumerate(tr["levels"]):
                part = slice(s * nc * B, (s + 1) * nc * B)
                tasks.append((s, tr, lt, R[i, part].reshape(nc, B), raw[i, part].reshape(nc, B), rule, xp))
                owners.append(i)
        reduce = reduce if self.dimension_relevance else None
        width = (1 if not self.dimension_relevance else self.n_dims_in_ if reduce is None
                 else reduced_width(reduce, self.n_dims_in_, xp))
        out = [xp.zeros((tr["n"], width), dtype=xp.float64) for tr in trace["images"]]
        tasks = [t + (out[i], reduce) for t, i in zip(tasks, owners)]
        n_threads, blas = self._threads(xp, xp.float64)
        with blas:
            lost = map_tasks(self._level_relevance, tasks, n_threads)  # each writes its rows of out[i]
        result = []
        for i, Rd in enumerate(out):
            if spread := sum(l for l, o in zip(lost, owners) if o == i):  # empty cells' (usually none)
                Rd += spread / Rd.size
            check_conservation(rule, f"image {i}", Rd, R[i], xp)
            result.append(Rd if self.dimension_relevance else Rd[:, 0])
        return result

    def _level_relevance(self, s, tr, lt, Rl, raw, rule, xp, Rd, reduce=None):
        """Write level ``s``'s relevance into its rows of ``Rd``; return what is lost (eq. 4.9-4.10, D.3, 2.31).
        ``raw``: the level's forward unnormalised vectors, the column sums where its float64 moments are kept."""
        if len(lt["sel"]) == 0:
            return float(Rl.sum())
        mix, p = self.mixtures_[s], self.pcas_[s]
        rows = xp.asarray(lt["sel"][lt["order"]])
        G, bounds = lt["G"], lt["bounds"]
        Y = lt["Y"] if lt["Y"] is not None else ProjectedRows(tr["descriptors"], rows, p, xp)
        S = lt["S"] if lt["S"] is not None else atom_moments(Y, G, bounds, mix, xp)
        x, Sc, counts = cell_statistics(S, tr["membership"], np.diff(bounds), mix, self.include_weights, xp,
                                        x=raw if lt["S"] is not None else None)
        Rdim, lost = level_relevance(Y, G, bounds, tr["membership"], counts, x, Sc, Rl, rule, mix,
                                     self.include_weights, xp)
        if p is None:
            Rd[rows] = self._kept(Rdim, reduce)
            return lost
        d, kept = tr["descriptors"], (lt["Y"] if lt["Y"] is not None and lt["Y"].dtype == xp.float64 else None)
        mean = None if kept is None else asarray(p.mean_, xp, dtype=xp.float64)
        rows_kept = None if self.dimension_relevance and reduce is None else (lambda r: self._kept(r, reduce))
        for _, lo, hi in row_chunks(np.array([0, len(rows)]), self.n_dims_in_, budget=1 << 20):  # in cache
            if kept is None:
                Yc, C = project(d[rows[lo:hi]], p.mean_, p.components_, xp, xp.float64)
            else:  # the forward pass's projection: only the centring is formed again
                Yc, C = kept[lo:hi], xp.subtract(d[rows[lo:hi]], mean, dtype=xp.float64)
            Rd[rows[lo:hi]] = linear_map_relevance(C, p.components_, Rdim[lo:hi], rule, xp, Y=Yc, reduce=rows_kept)
        return lost

    def _kept(self, r, reduce):
        """What the result keeps of the rows ``r`` of per-dimension relevance."""
        return r.sum(1, keepdims=True) if not self.dimension_relevance else r if reduce is None else reduce(r)

    def get_feature_names_out(self, input_features=None):
        """Names ``level{s}_grid{r}x{c}_cell{j}_{w|mu|sigma}_k{k}[_d{r}]`` of the output features."""
        check_is_fitted(self, "gmms_")
        K, D = self.n_components, self.n_dims_
        names = []
        for b in self.feature_layout_:
            pre = f"level{b['level']}_grid{b['grid'][0]}x{b['grid'][1]}_cell{b['cell']}"
            if self.include_weights:
                names += [f"{pre}_w_k{k}" for k in range(K)]
            for part in ("mu", "sigma"):
                names += [f"{pre}_{part}_k{k}_d{r}" for k in range(K) for r in range(D)]
        return np.array(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = False
        return tags
