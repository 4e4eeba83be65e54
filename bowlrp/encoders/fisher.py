"""Fisher-vector encoding of local descriptors, forward and backward.

Forward (thesis Sec. 4.2, eq. 4.1-4.5): descriptors are optionally reduced by
PCA; a diagonal GMM ``lambda = {(pi_k, mu_k, sigma_k)}`` per descriptor level
(one per SIFT scale, the blocks concatenated, SPEC B4) maps every descriptor
``l`` to its gradients for the weights, means and variances

    Psi_pi_k(l)    = (gamma_k(l) - pi_k) / sqrt(pi_k)                       (4.1)
    Psi_mu_k(l)    = gamma_k(l) / sqrt(pi_k) * (l - mu_k) / sigma_k          (4.2)
    Psi_sigma_k(l) = gamma_k(l) / sqrt(2 pi_k) * ((l - mu_k)^2 / sigma_k^2 - 1)  (4.3)

which are averaged over the descriptors of each spatial-pyramid cell, then
power- and L2-normalised (eq. 4.5).  No per-descriptor embedding is ever
formed: the averages are computed from the sufficient statistics
``sum gamma``, ``gamma^T l`` and ``gamma^T l^2`` with matrix products.

Output layout (``feature_layout_``): blocks in the order level (SIFT scale),
pyramid grid, cell (row-major); each block is the vector of eq. 4.4 /
eq. 4.10,

    [ w_1 .. w_K | mu_{1,1} .. mu_{1,D}, .., mu_{K,D} | sigma_{1,1} .. sigma_{K,D} ]

(weights first and only if ``include_weights``; then component-major,
descriptor-dimension-minor means and variances), so inside a block dimension
``K + D k + r`` is the mean gradient of component ``k``, descriptor
dimension ``r``.

Backward (eq. 4.6-4.10, D.3): the linear SVM on the normalised vector
``Phi(x)`` is decomposed by :class:`bowlrp.KernelSVC` (eq. 4.8 = A.1).  As in
the thesis, the normalisation ``Phi`` is "resolved as part of the
classification function": the relevance of a normalised dimension is the
relevance of the same unnormalised dimension ``x_d`` (``Phi`` is a
sign-preserving, per-dimension rescaling; the map is the identity and
conserves exactly).  ``x_d = sum_l z_ld`` with ``z_ld = Psi(l)_d / |L_cell|``
(eq. 4.9, 4.10) is then decomposed with a rule of :mod:`bowlrp.rules` per
descriptor dimension (eq. D.3; the weight part, which belongs to no
dimension, is spread evenly over the ``D`` dimensions of the descriptor), and
back through the PCA as the linear map of eq. 2.31 applied to the centred
descriptor (no bias, so the proportional rule conserves).
"""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._backend import asarray, get_namespace, to_numpy
from .._validation import check_int
from ..base import ExplainableTransformerMixin
from ..rules import mapping_rule, phi
from .bow import check_descriptor_sets

__all__ = ["FisherVectorEncoder", "grid_cells"]

_L2 = ("global", "block", None)
_CHUNK_BYTES = 32 << 20  # bound for any (descriptors x K x D) temporary of the non-linear rules
_HOMOGENEOUS = {"z": True, "pos": True, "neg": True, "abs": True, "one": False}


def grid_cells(centers, image_shape, grid):
    """Cell index (row-major) of each descriptor centre ``(x, y)`` in a ``rows x cols`` grid."""
    rows, cols = grid
    H, W = image_shape
    r = np.clip(np.floor(np.asarray(centers[:, 1]) * rows / H), 0, rows - 1).astype(np.intp)
    c = np.clip(np.floor(np.asarray(centers[:, 0]) * cols / W), 0, cols - 1).astype(np.intp)
    return r * cols + c


class _blas_threads:
    """Context limiting BLAS threads (SPEC: 10x oversubscription losses); ``work`` is informative."""

    def __init__(self, setting, work, xp):
        self.limit = None
        if xp is np:
            if setting == "auto":
                # After scikit-learn's OpenMP k-means (GMM init) spins, threaded OpenBLAS calls
                # were 20x slower on 2 busy cores; one thread measured no slower at any size.
                self.limit = 1
            elif setting is not None:
                self.limit = int(setting)
        self._ctx = None

    def __enter__(self):
        if self.limit is not None:
            from threadpoolctl import threadpool_limits  # noqa: PLC0415

            self._ctx = threadpool_limits(limits=self.limit, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
        return False


class FisherVectorEncoder(ExplainableTransformerMixin, TransformerMixin, BaseEstimator):
    """Improved Fisher vectors with a diagonal GMM per descriptor level, explainable with LRP.

    Parameters
    ----------
    n_components : int, default=256
        GMM components ``K`` per level (the thesis: 256).
    pca : int or None, default=None
        Reduce the descriptors to this many dimensions with scikit-learn's PCA
        (one per level) before the GMM (the thesis: 80); ``None`` keeps them.
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
    max_descriptors : int, default=50000
        Training descriptors per level sampled for the PCA and the GMM.
    reg_covar : float, default=1e-3
        Added to the GMM variances (scikit-learn's ``reg_covar``).
    max_iter : int, default=100
        EM iterations.
    dimension_relevance : bool, default=True
        ``_relevance`` returns relevance per descriptor dimension (eq. D.3;
        arrays ``(n_i, n_dims_in)``, back through the PCA), which
        :class:`bowlrp.DenseSIFT` maps to the 4x4 spatial bins; ``False``
        returns one value per descriptor (``(n_i,)``).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the matrix products.  float32 is about twice as fast;
        conservation then holds to about 1e-6 instead of 1e-12.
    blas_threads : "auto", int or None, default="auto"
        ``"auto"``: single-threaded BLAS inside :meth:`fit`, the encoding
        and the relevance step (parallelise over images instead).  On a
        shared 2-core machine threaded BLAS made fit 3-5x slower (4.3 s
        against 13-21 s) and encoding right after a fit 20x slower (OpenMP
        threads of scikit-learn's k-means still spinning), while one thread
        was never measurably slower; an int: that many threads; ``None``:
        leave BLAS alone.
    random_state : int, RandomState or None

    Attributes
    ----------
    pcas_ : list of PCA or None
    gmms_ : list of GaussianMixture
        One per level.
    means_, sigmas_, weights_ : list of ndarray
        ``(K, D)``, ``(K, D)`` (standard deviations), ``(K,)`` per level.
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
        try:
            grids = tuple((int(r), int(c)) for r, c in self.pyramid)
        except (TypeError, ValueError):
            raise ValueError(f"pyramid must be a sequence of (rows, cols) pairs, got {self.pyramid!r}") from None
        if not grids or any(r < 1 or c < 1 for r, c in grids):
            raise ValueError(f"pyramid must be a non-empty sequence of positive (rows, cols), got {self.pyramid!r}")
        if self.power is not None and (not isinstance(self.power, Real) or not 0 < self.power <= 1):
            raise ValueError(f"power must be None or a number in (0, 1], got {self.power!r}")
        if self.l2 not in _L2:
            raise ValueError(f"unknown l2 {self.l2!r}; valid values are {list(_L2)}")
        if self.dtype not in ("float64", "float32", np.float64, np.float32):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if not isinstance(self.reg_covar, Real) or self.reg_covar < 0:
            raise ValueError(f"reg_covar must be a number >= 0, got {self.reg_covar!r}")
        bt = self.blas_threads
        if not (bt is None or bt == "auto" or (isinstance(bt, Integral) and not isinstance(bt, bool) and bt >= 1)):
            raise ValueError(f"blas_threads must be 'auto', None or a positive integer, got {bt!r}")
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
            pool = [np.asarray(to_numpy(d)[lv == s], dtype=np.float64) for d, lv in zip(descs, levels)]
            pool = np.concatenate(pool)
            if len(pool) > self.max_descriptors:
                pool = pool[np.sort(rng.choice(len(pool), self.max_descriptors, replace=False))]
            if len(pool) < max(self.n_components, 2):
                raise ValueError(
                    f"level {s} has only {len(pool)} training descriptors, fewer than "
                    f"n_components={self.n_components}; use more images or fewer components"
                )
            with _blas_threads(self.blas_threads, 0, np):  # EM: many mid-sized products, 1 thread wins
                if self.pca is not None:
                    p = PCA(n_components=self.pca, random_state=rng.randint(np.iinfo(np.int32).max)).fit(pool)
                    pool = p.transform(pool)
                else:
                    p = None
                g = GaussianMixture(
                    n_components=self.n_components,
                    covariance_type="diag",
                    reg_covar=self.reg_covar,
                    max_iter=self.max_iter,
                    random_state=rng.randint(np.iinfo(np.int32).max),
                ).fit(pool)
            pcas.append(p)
            gmms.append(g)
        self.pcas_ = pcas
        self.gmms_ = gmms
        self.means_ = [g.means_.astype(np.float64) for g in gmms]
        self.sigmas_ = [np.sqrt(g.covariances_.astype(np.float64)) for g in gmms]
        self.weights_ = [g.weights_.astype(np.float64) for g in gmms]
        self.n_levels_ = n_levels
        self.n_dims_in_ = D_in
        self.n_dims_ = self.pca if self.pca is not None else D_in
        K, D = self.n_components, self.n_dims_
        self.block_size_ = K * (2 * D + (1 if self.include_weights else 0))
        layout, start = [], 0
        for s in range(n_levels):
            for g, (r, c) in enumerate(grids):
                for cell in range(r * c):
                    layout.append({"level": s, "grid": (r, c), "cell": cell, "start": start,
                                   "stop": start + self.block_size_})
                    start += self.block_size_
        self.feature_layout_ = layout
        self.block_sizes_ = (self.block_size_,) * len(layout)
        self.n_features_out_ = start
        return self

    # ----------------------------------------------------------------- helpers
    def _dtype(self, xp):
        return xp.float32 if self.dtype in ("float32", np.float32) else xp.float64

    def _project(self, s, D, xp, dt):
        """PCA projection of level ``s``; returns ``(Y, centred input or None)``."""
        p = self.pcas_[s]
        if p is None:
            return asarray(D, xp, dtype=dt), None
        C = asarray(D, xp, dtype=dt) - asarray(p.mean_, xp, dtype=dt)
        W = asarray(p.components_, xp, dtype=dt)
        Y = C @ W.T
        if p.whiten:  # pragma: no cover - whiten is not exposed
            Y = Y / asarray(np.sqrt(p.explained_variance_), xp, dtype=dt)
        return Y, C

    def _posteriors(self, s, Y, xp):
        """Soft assignments ``gamma_k(l)`` (n, K) of the diagonal GMM of level ``s`` (GEMM form)."""
        dt = Y.dtype
        mu = asarray(self.means_[s], xp, dtype=dt)
        prec = asarray(1.0 / self.sigmas_[s] ** 2, xp, dtype=dt)
        var = self.sigmas_[s] ** 2
        const = np.log(self.weights_[s]) - 0.5 * (np.log(2 * np.pi * var).sum(1) + (self.means_[s] ** 2 / var).sum(1))
        logp = (Y * Y) @ (-0.5 * prec).T + Y @ (mu * prec).T + asarray(const, xp, dtype=dt)
        logp = logp - logp.max(1, keepdims=True)
        g = xp.exp(logp)
        return g / g.sum(1, keepdims=True)

    def _cells(self, ds, n, grids):
        """Atom (intersection of all cells) of each descriptor and the atoms of each cell."""
        if grids == ((1, 1),):
            return np.zeros(n, np.intp), [[np.array([0])]]
        if not hasattr(ds, "centers"):
            raise ValueError(
                "a spatial pyramid needs descriptor geometry: pass DescriptorSets (DenseSIFT output), "
                "or use pyramid=((1, 1),)"
            )
        code = np.zeros(n, np.int64)
        for r, c in grids:
            code = code * (r * c) + grid_cells(ds.centers, ds.image_shape, (r, c))
        uniq, atom = np.unique(code, return_inverse=True)
        # decode each atom's cell per grid
        cell_of_atom = []
        rem = uniq.copy()
        for r, c in reversed(grids):
            cell_of_atom.append(rem % (r * c))
            rem = rem // (r * c)
        cell_of_atom = cell_of_atom[::-1]
        members = []
        for g, (r, c) in enumerate(grids):
            members.append([np.flatnonzero(cell_of_atom[g] == cell) for cell in range(r * c)])
        return atom.reshape(-1).astype(np.intp), members

    # ----------------------------------------------------------------- forward
    def forward(self, X):
        """Encode ``X``; return ``(features, trace)`` for :meth:`relevance`.

        The trace holds per image and level the projected descriptors, their
        posteriors, their spatial atoms and the unnormalised Fisher vector of
        every cell (the column sums of the proportional rule).
        """
        check_is_fitted(self, "gmms_")
        grids = self._check_params()
        descs, levels, n_levels = check_descriptor_sets(X)
        if n_levels > self.n_levels_ or any(d.shape[1] != self.n_dims_in_ for d in descs):
            raise ValueError(
                f"descriptors do not match the fitted model ({self.n_levels_} level(s) of dimension "
                f"{self.n_dims_in_})"
            )
        xp = get_namespace(*descs)
        dt = self._dtype(xp)
        n_img = len(descs)
        K, D = self.n_components, self.n_dims_
        work = max(len(d) for d in descs) * K * D * 4 + (D * self.n_dims_in_ * max(len(d) for d in descs))
        out = xp.zeros((n_img, self.n_features_out_), dtype=xp.float64)
        traces = []
        with _blas_threads(self.blas_threads, work, xp):
            n_cells = sum(r * c for r, c in grids)
            for i, (d, lv) in enumerate(zip(descs, levels)):
                tr_img = {"levels": []}
                atom_all, members = self._cells(X[i], len(lv), grids)
                for s in range(self.n_levels_):
                    sel = np.flatnonzero(lv == s)
                    atom = atom_all[sel]
                    Y, C = self._project(s, d[sel] if len(sel) != len(lv) else d, xp, dt)
                    gamma = self._posteriors(s, Y, xp) if len(sel) else xp.zeros((0, K), dtype=dt)
                    order = np.argsort(atom, kind="stable")
                    n_atoms = sum(len(m) for m in members[0]) if members else 1
                    bounds = np.searchsorted(atom[order], np.arange(n_atoms + 1))
                    stats = self._atom_stats(Y, gamma, order, bounds, xp)
                    x_cells, counts = self._cell_vectors(s, stats, bounds, members, xp)
                    b0 = s * n_cells * self.block_size_
                    out[i, b0 : b0 + n_cells * self.block_size_] = x_cells.reshape(-1)
                    tr_img["levels"].append({
                        "sel": sel, "Y": Y, "C": C, "gamma": gamma, "order": order, "bounds": bounds,
                        "members": members, "x": x_cells, "counts": counts,
                    })
                tr_img["n"] = len(lv)
                traces.append(tr_img)
        features = self._normalise(out, xp)
        return features, {"images": traces, "raw": out}

    def _atom_stats(self, Y, gamma, order, bounds, xp):
        """``(S0, S1, S2)`` per atom: ``sum gamma``, ``gamma^T Y``, ``gamma^T Y^2`` (matrix products)."""
        n_atoms = len(bounds) - 1
        K, D = self.n_components, self.n_dims_
        S0 = xp.zeros((n_atoms, K), dtype=xp.float64)
        S1 = xp.zeros((n_atoms, K, D), dtype=xp.float64)
        S2 = xp.zeros((n_atoms, K, D), dtype=xp.float64)
        Ys, Gs = (Y, gamma) if n_atoms == 1 else (Y[xp.asarray(order)], gamma[xp.asarray(order)])
        for a in range(n_atoms):
            lo, hi = int(bounds[a]), int(bounds[a + 1])
            if hi == lo:
                continue
            G, Ya = Gs[lo:hi], Ys[lo:hi]
            S0[a] = G.sum(0)
            GT = G.T
            S1[a] = GT @ Ya
            S2[a] = GT @ (Ya * Ya)
        return S0, S1, S2

    def _cell_vectors(self, s, stats, bounds, members, xp):
        """Unnormalised Fisher vectors (eq. 4.1-4.5 before normalisation) of every cell."""
        S0a, S1a, S2a = stats
        na = np.diff(bounds).astype(np.float64)
        mu = asarray(self.means_[s], xp)
        sig = asarray(self.sigmas_[s], xp)
        w = asarray(self.weights_[s], xp)
        sq = xp.sqrt(w)
        rows, counts = [], []
        for grid_members in members:
            for atoms in grid_members:
                N = float(na[atoms].sum())
                counts.append(N)
                if N == 0:
                    rows.append(xp.zeros(self.block_size_, dtype=xp.float64))
                    continue
                idx = xp.asarray(atoms)
                S0 = S0a[idx].sum(0)
                S1 = S1a[idx].sum(0)
                S2 = S2a[idx].sum(0)
                parts = []
                if self.include_weights:
                    parts.append((S0 - N * w) / (sq * N))
                xm = (S1 - mu * S0[:, None]) / (sig * sq[:, None] * N)
                xs = ((S2 - 2 * mu * S1 + mu * mu * S0[:, None]) / sig**2 - S0[:, None]) / (
                    math.sqrt(2.0) * sq[:, None] * N
                )
                parts += [xm.reshape(-1), xs.reshape(-1)]
                rows.append(xp.concatenate(parts))
        return xp.stack(rows), np.array(counts)

    def _normalise(self, x, xp):
        """Power and L2 normalisation (eq. 4.5), globally or per block."""
        if self.power is not None:
            x = xp.sign(x) * xp.abs(x) ** float(self.power)
        if self.l2 == "global":
            nrm = xp.sqrt((x * x).sum(1, keepdims=True))
            x = x / xp.where(nrm > 0, nrm, 1.0)
        elif self.l2 == "block":
            n = x.shape[0]
            xb = x.reshape(n, -1, self.block_size_)
            nrm = xp.sqrt((xb * xb).sum(2, keepdims=True))
            x = (xb / xp.where(nrm > 0, nrm, 1.0)).reshape(n, -1)
        return x

    def transform(self, X):
        """Return the improved Fisher vectors, shape ``(n_images, n_features_out_)``."""
        return self.forward(X)[0]

    # ---------------------------------------------------------------- backward
    def relevance(self, relevance, trace, rule=None):
        """Redistribute Fisher-vector relevance to descriptors (eq. 4.8-4.10, D.3, 2.31).

        Parameters
        ----------
        relevance : array of shape (n_images, n_features_out_)
            Relevance of each normalised Fisher dimension (eq. 4.8, from
            ``KernelSVC(kernel="linear")``); it is taken as the relevance of
            the unnormalised dimension (see the module docstring).
        trace : dict
            From :meth:`forward` on the same images.
        rule : str, Rule or None
            None or ``"z"`` (proportional, exact), ``"epsilon"``, ``"alphabeta"``,
            ``"abs"``, ``"flat"``.  Rules with only the ``"z"`` message
            transform (z, epsilon) use matrix products; the others evaluate
            the messages in chunks of bounded size.  The same rule is used for
            the PCA step.

        Returns
        -------
        list of arrays
            ``(n_i, n_dims_in_)`` relevance per descriptor dimension when
            ``dimension_relevance``, else ``(n_i,)`` per descriptor.  A Fisher
            dimension none of whose messages is non-zero (posteriors that
            underflow, or a cell without descriptors) spreads its relevance
            evenly over the descriptors of its cell and, for mean and variance
            dimensions, over descriptor dimension ``r`` (weight dimensions:
            over all dimensions); an empty cell's relevance goes evenly to all
            the image's descriptors (the zero-mapping case, eq. 2.79).
        """
        rule = mapping_rule(rule)
        raw = trace["raw"]
        xp = get_namespace(raw)
        R = asarray(relevance, xp, dtype=xp.float64)
        if R.shape != raw.shape:
            raise ValueError(f"relevance must have shape {tuple(raw.shape)}, got {tuple(R.shape)}")
        grids = self._check_params()
        n_cells = sum(r * c for r, c in grids)
        K, D = self.n_components, self.n_dims_
        result = []
        for i, tr in enumerate(trace["images"]):
            if tr["n"] == 0:
                raise ValueError(f"image {i} has no descriptors: its relevance cannot be attributed")
            work = tr["n"] * K * D * 6
            Rd = xp.zeros((tr["n"], self.n_dims_in_), dtype=xp.float64)
            spill = 0.0
            with _blas_threads(self.blas_threads, work, xp):
                for s, lt in enumerate(tr["levels"]):
                    b0 = s * n_cells * self.block_size_
                    Rl = R[i, b0 : b0 + n_cells * self.block_size_].reshape(n_cells, self.block_size_)
                    if len(lt["sel"]) == 0:
                        spill = spill + Rl.sum()
                        continue
                    Rdim, lost = self._level_relevance(s, lt, Rl, rule, xp)
                    spill = spill + lost
                    Rdim = self._pca_relevance(s, lt["C"], lt["Y"], Rdim, rule, xp)
                    Rd[xp.asarray(lt["sel"])] += Rdim
            Rd += float(spill) / (tr["n"] * self.n_dims_in_)
            result.append(Rd if self.dimension_relevance else Rd.sum(1))
        return result

    def _level_relevance(self, s, lt, Rl, rule, xp):
        """Relevance per (projected) descriptor dimension for one level of one image (eq. D.3)."""
        K, D = self.n_components, self.n_dims_
        counts = lt["counts"]
        x = lt["x"]  # (n_cells, B) unnormalised vectors = column sums of z
        Y, gamma = lt["Y"], lt["gamma"]
        order, bounds, members = lt["order"], lt["bounds"], lt["members"]
        n_atoms = len(bounds) - 1
        cells = [atoms for gm in members for atoms in gm]
        # column sums of every message transform, per cell
        linear = tuple(rule.phis) == ("z",)
        if linear:
            sums = (x,)
            S0 = xp.zeros((len(cells), K), dtype=xp.float64)
            g_at = gamma if n_atoms == 1 else gamma[xp.asarray(order)]
            for c, atoms in enumerate(cells):
                for a in atoms:
                    S0[c] += g_at[int(bounds[a]) : int(bounds[a + 1])].sum(0)
            magnitude = self._magnitude_bound(s, x, S0, counts, xp)
        else:
            sums, magnitude = self._phi_sums(s, lt, rule, cells, xp)
        scales, reached = rule.scales(sums, magnitude, Rl, xp)
        # effective per-atom scales T_a = sum_{cells c containing a} s_c * h(phi, N_c)
        T = []
        for p, sc in zip(rule.phis, scales):
            Tp = xp.zeros((n_atoms, self.block_size_), dtype=xp.float64)
            for c, atoms in enumerate(cells):
                if counts[c] == 0:
                    continue
                h = 1.0 / counts[c] if _HOMOGENEOUS[p] else 1.0
                for a in atoms:
                    Tp[int(a)] += sc[c] * h
            T.append(Tp)
        n = Y.shape[0]
        Rdim = xp.zeros((n, D), dtype=xp.float64)
        inv_order = xp.asarray(order)
        for a in range(n_atoms):
            lo, hi = int(bounds[a]), int(bounds[a + 1])
            if hi == lo:
                continue
            rows = inv_order[lo:hi] if n_atoms > 1 else slice(lo, hi)
            Ya, Ga = Y[rows], gamma[rows]
            if linear:
                Rdim[rows] = self._messages_linear(s, Ya, Ga, T[0][a], xp)
            else:
                Rdim[rows] = self._messages_phi(s, Ya, Ga, [t[a] for t in T], rule.phis, xp)
        # zero-mapping case: unreached dimensions spread over their cell
        lost_img = 0.0
        unreached = xp.where(reached, 0.0, Rl)
        if bool((~reached).any()):
            atom_of = xp.zeros(n, dtype=xp.intp)
            for a in range(n_atoms):
                rows = inv_order[int(bounds[a]) : int(bounds[a + 1])] if n_atoms > 1 else slice(None)
                atom_of[rows] = a
            for c, atoms in enumerate(cells):
                u = unreached[c]
                if counts[c] == 0:
                    lost_img = lost_img + u.sum()
                    continue
                off = K if self.include_weights else 0
                per_dim = u[off : off + K * D].reshape(K, D).sum(0) + u[off + K * D :].reshape(K, D).sum(0)
                if self.include_weights:
                    per_dim = per_dim + u[:K].sum() / D
                inside = xp.asarray(np.isin(to_numpy(atom_of), atoms))
                Rdim[inside] += per_dim / counts[c]
        return Rdim, lost_img

    def _magnitude_bound(self, s, x, S0, counts, xp):
        """An upper bound of ``sum_l |z_ld|`` per cell and Fisher dimension, from the cell statistics.

        With ``u = (l - mu_k) / sigma_k`` and ``Q_k = sum_l gamma_k(l) u^2``
        (read back from the variance part of the unnormalised vector, eq.
        4.3), Cauchy-Schwarz bounds the mean part by ``sqrt(S0_k Q_k) / (sqrt(pi_k)
        N)``, ``|u^2 - 1| <= u^2 + 1`` the variance part by ``(Q_k + S0_k) /
        (sqrt(2 pi_k) N)`` and ``|gamma - pi| <= gamma + pi`` the weight part by
        ``(S0_k + N pi_k) / (sqrt(pi_k) N)``.  The rules compare their
        denominators with it (:data:`bowlrp.rules.RTOL`).
        """
        K, D = self.n_components, self.n_dims_
        w = asarray(self.weights_[s], xp, dtype=xp.float64)
        sq = xp.sqrt(w)
        N = asarray(counts, xp, dtype=xp.float64)
        Ns = xp.where(N > 0, N, 1.0)
        off = K if self.include_weights else 0
        xs = x[:, off + K * D:].reshape(-1, K, D)
        Q = xp.maximum(math.sqrt(2.0) * sq[None, :, None] * Ns[:, None, None] * xs + S0[:, :, None], 0.0)
        scale = (sq[None, :, None] * Ns[:, None, None])
        mag_m = xp.sqrt(S0[:, :, None] * Q) / scale
        mag_s = (Q + S0[:, :, None]) / (math.sqrt(2.0) * scale)
        parts = [(S0 + Ns[:, None] * w) / (sq * Ns[:, None])] if self.include_weights else []
        mag = xp.concatenate(parts + [mag_m.reshape(len(N), -1), mag_s.reshape(len(N), -1)], axis=1)
        return xp.where((N > 0)[:, None], mag, 0.0)

    def _gmm(self, s, xp, dt):
        mu = asarray(self.means_[s], xp, dtype=dt)
        sig = asarray(self.sigmas_[s], xp, dtype=dt)
        w = asarray(self.weights_[s], xp, dtype=dt)
        return mu, sig, w

    def _messages_linear(self, s, Y, G, T, xp):
        """``sum_d z_ld T_d`` per descriptor dimension with matrix products (eq. D.3 factorised).

        ``T`` is the per-atom scale vector (one block).  Mean part:
        ``Y (G' @ T_mu/sigma) - G' @ (mu T_mu/sigma)``; variance part expanded
        in powers of ``Y``; weight part spread evenly over the dimensions.
        """
        K, D = self.n_components, self.n_dims_
        dt = Y.dtype
        mu, sig, w = self._gmm(s, xp, xp.float64)
        sq = xp.sqrt(w)
        off = K if self.include_weights else 0
        Tm = T[off : off + K * D].reshape(K, D)
        Ts = T[off + K * D :].reshape(K, D) / math.sqrt(2.0)
        var = sig * sig
        B = xp.concatenate(
            [Tm / sig, mu * Tm / sig, Ts / var, 2 * mu * Ts / var, (mu * mu / var - 1.0) * Ts], axis=1
        )
        Gp = G / asarray(sq, xp, dtype=dt)
        P = (Gp @ asarray(B, xp, dtype=dt)).astype(xp.float64)
        Y64 = Y.astype(xp.float64)
        Rd = (
            Y64 * P[:, :D] - P[:, D : 2 * D] + Y64 * Y64 * P[:, 2 * D : 3 * D] - Y64 * P[:, 3 * D : 4 * D]
            + P[:, 4 * D :]
        )
        if self.include_weights:
            Tw = T[:K]
            rw = G.astype(xp.float64) @ (Tw / sq) - (sq * Tw).sum()
            Rd = Rd + rw[:, None] / D
        return Rd

    def _embeddings(self, s, Y, G, xp):
        """Per-descriptor embeddings ``Psi`` of a small chunk: weight (n, K), mean and variance (n, K, D)."""
        mu, sig, w = self._gmm(s, xp, xp.float64)
        sq = xp.sqrt(w)
        Y = Y.astype(xp.float64)
        G = G.astype(xp.float64)
        u = (Y[:, None, :] - mu[None]) / sig[None]
        a = (G / sq)[:, :, None]
        pm = a * u
        ps = a * (u * u - 1.0) / math.sqrt(2.0)
        pw = (G - w) / sq if self.include_weights else None
        return pw, pm, ps

    def _chunks(self, n):
        step = max(1, int(_CHUNK_BYTES // (8 * 3 * self.n_components * self.n_dims_)))
        return [(a, min(n, a + step)) for a in range(0, n, step)]

    def _phi_sums(self, s, lt, rule, cells, xp):
        """Column sums ``sum_l phi(z_ld)`` per cell for non-linear transforms (chunked embeddings)."""
        Y, gamma, order, bounds = lt["Y"], lt["gamma"], lt["order"], lt["bounds"]
        counts = lt["counts"]
        n_atoms = len(bounds) - 1
        names = list(dict.fromkeys(list(rule.phis) + ["abs"]))
        acc = {p: xp.zeros((n_atoms, self.block_size_), dtype=xp.float64) for p in names}
        ordx = xp.asarray(order)
        for a in range(n_atoms):
            lo, hi = int(bounds[a]), int(bounds[a + 1])
            for c0, c1 in self._chunks(hi - lo):
                rows = ordx[lo + c0 : lo + c1]
                pw, pm, ps = self._embeddings(s, Y[rows], gamma[rows], xp)
                for p in names:
                    parts = [phi(p, pw, xp).sum(0)] if self.include_weights else []
                    parts += [phi(p, pm, xp).sum(0).reshape(-1), phi(p, ps, xp).sum(0).reshape(-1)]
                    acc[p][a] += xp.concatenate(parts)
        out = {p: xp.zeros((len(cells), self.block_size_), dtype=xp.float64) for p in names}
        for c, atoms in enumerate(cells):
            if counts[c] == 0:
                continue
            for p in names:
                h = 1.0 / counts[c] if _HOMOGENEOUS[p] else 1.0
                out[p][c] = acc[p][xp.asarray(atoms)].sum(0) * h
        return tuple(out[p] for p in rule.phis), out["abs"]

    def _messages_phi(self, s, Y, G, Ts, phis, xp):
        """``sum_phi sum_d phi(Psi(l)_d) T_phi,d`` per descriptor dimension (chunked)."""
        K, D = self.n_components, self.n_dims_
        out = xp.zeros((Y.shape[0], D), dtype=xp.float64)
        off = K if self.include_weights else 0
        for c0, c1 in self._chunks(Y.shape[0]):
            pw, pm, ps = self._embeddings(s, Y[c0:c1], G[c0:c1], xp)
            for p, T in zip(phis, Ts):
                Tm = T[off : off + K * D].reshape(K, D)
                Ts_ = T[off + K * D :].reshape(K, D)
                r = (phi(p, pm, xp) * Tm[None]).sum(1) + (phi(p, ps, xp) * Ts_[None]).sum(1)
                if self.include_weights:
                    r = r + (phi(p, pw, xp) @ T[:K])[:, None] / D
                out[c0:c1] += r
        return out

    def _pca_relevance(self, s, C, Y, Rdim, rule, xp):
        """Relevance of the PCA outputs back to the centred input dimensions (eq. 2.31, App. D.1.1).

        ``y_j = sum_i W_ji c_i`` with the centred descriptor ``c = l - mean``:
        messages ``z_ij = W_ji c_i`` and no bias, so the proportional rule
        conserves.  Outputs with ``y_j = 0`` spread their relevance evenly over
        the input dimensions.
        """
        p = self.pcas_[s]
        if p is None:
            return Rdim
        W = asarray(p.components_, xp, dtype=xp.float64)
        C = C.astype(xp.float64)
        Y = Y.astype(xp.float64)
        n, Din = C.shape
        if tuple(rule.phis) == ("z",):
            magnitude = xp.abs(C) @ xp.abs(W).T
            (sc,), reached = rule.scales((Y,), magnitude, Rdim, xp)
            out = C * (sc @ W)
        else:
            out = xp.zeros((n, Din), dtype=xp.float64)
            step = max(1, int(_CHUNK_BYTES // (8 * W.size * 2)))
            reached = xp.zeros(Rdim.shape, dtype=bool)
            for a in range(0, n, step):
                Z = W[None] * C[a : a + step, None, :]  # (m, D', Din)
                trans = [phi(q, Z, xp) for q in rule.phis]
                sums = tuple(t.sum(2) for t in trans)
                scs, reached[a : a + step] = rule.scales(sums, xp.abs(Z).sum(2), Rdim[a : a + step], xp)
                out[a : a + step] = sum((t * sc[:, :, None]).sum(1) for t, sc in zip(trans, scs))
        lost = xp.where(reached, 0.0, Rdim).sum(1)
        return out + lost[:, None] / Din

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
