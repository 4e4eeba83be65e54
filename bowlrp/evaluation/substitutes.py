"""Where substitute descriptors come from in the descriptor-replacement test (thesis App. C.2).

A *sampler* has ``sample(level, n, rng) -> (n, n_dims) array``:
:class:`DescriptorPool` draws training descriptors, :class:`GMMSampler` draws
from a Fisher-vector model's GMM, as the thesis does.
"""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._backend import to_numpy
from ..encoders.descriptor_sets import check_descriptor_sets
from ..encoders.fisher import FisherVectorEncoder
from ._common import check_positive_int, resolve_seed

__all__ = ["DescriptorPool", "GMMSampler", "fisher_stage"]


class DescriptorPool:
    """Substitute descriptors sampled uniformly from a pool of (training) descriptors.

    Parameters
    ----------
    descriptor_sets : list of descriptor sets or (n_i, D) arrays
        For example ``pipeline[:-2].transform(training_images)``.
    max_per_level : int, default=20000
        Descriptors kept per level (uniform sample without replacement).
    random_state : int, RandomState or None
        Seeds the subsample.

    Notes
    -----
    Any object with a method ``sample(level, n, rng)`` returning an
    ``(n, n_dims)`` array can stand in for it, for example a sampler drawing
    from a Fisher-vector GMM ``lambda = (pi_k, mu_k, Sigma_k)`` (App. C.2).

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> pool = DescriptorPool(sets, random_state=0)
    >>> pool.sample(0, 3, np.random.default_rng(0)).shape
    (3, 3)
    """

    def __init__(self, descriptor_sets, max_per_level=20000, random_state=None):
        descs, levels, n_levels = check_descriptor_sets(descriptor_sets, name="descriptor_sets")
        max_per_level = check_positive_int(max_per_level, "max_per_level")
        rng = np.random.default_rng(resolve_seed(random_state))
        allD = np.concatenate([np.asarray(to_numpy(d), dtype=np.float32) for d in descs])
        allL = np.concatenate(levels)
        self.pools_ = []
        for s in range(n_levels):
            p = allD[allL == s]
            if len(p) == 0:
                raise ValueError(f"the pool has no descriptors of level {s}")
            if len(p) > max_per_level:
                p = p[rng.choice(len(p), max_per_level, replace=False)]
            self.pools_.append(p)

    def sample(self, level, n, rng):
        """``n`` descriptors of ``level`` drawn uniformly with replacement."""
        if level >= len(self.pools_):
            raise ValueError(f"the pool has {len(self.pools_)} level(s), no descriptors of level {level}")
        pool = self.pools_[level]
        return pool[rng.integers(0, len(pool), size=n)]


def fisher_stage(model):
    """The fitted FisherVectorEncoder of ``model`` (an encoder or a pipeline holding one).

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> pipe = bowlrp.ExplainablePipeline([("fv", bowlrp.FisherVectorEncoder(n_components=2, random_state=0)),
    ...                                    ("svm", bowlrp.KernelSVC(kernel="linear"))]).fit(sets, np.arange(20) % 2)
    >>> fisher_stage(pipe) is pipe.named_steps["fv"]
    True
    """
    if isinstance(model, Pipeline):
        stages = [st for _, st in model.steps if isinstance(st, FisherVectorEncoder)]
        if not stages:
            raise TypeError("the pipeline has no FisherVectorEncoder stage")
        model = stages[0]
    if not isinstance(model, FisherVectorEncoder):
        raise TypeError(f"expected a FisherVectorEncoder or a pipeline holding one, got {type(model).__name__}")
    check_is_fitted(model, "gmms_")
    return model


class GMMSampler:
    """Substitute descriptors drawn from a Fisher-vector model's GMM (thesis App. C.2).

    For level ``s`` a component ``k ~ pi`` is drawn, then ``y ~ N(mu_k,
    diag(sigma_k^2))`` in the space the GMM lives in.  With PCA, ``y`` is
    mapped back to descriptor space with the level's
    ``PCA.inverse_transform``: the substitute lies in the PCA subspace
    (``mean + W^T y``, no residual), and since the encoder projects it again
    with ``W (l - mean) = y`` the model sees exactly the GMM draw.  The
    substitutes are not valid SIFT descriptors (they can be negative); only
    the model's view of them matters here.  For draws of real descriptors use
    :class:`DescriptorPool` on training descriptors instead.

    Parameters
    ----------
    model : fitted FisherVectorEncoder, or a Pipeline holding one

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.standard_normal((20, 3)) + [2.0 * (i % 2), 0, 0] for i in range(20)]  # 20 "images"
    >>> fv = bowlrp.FisherVectorEncoder(n_components=2, random_state=0).fit(sets)
    >>> GMMSampler(fv).sample(0, 5, np.random.default_rng(0)).shape
    (5, 3)
    """

    def __init__(self, model):
        self.encoder = fisher_stage(model)

    def sample(self, level, n, rng):
        """``n`` descriptors ``(n, n_dims_in_)`` of ``level``, float64."""
        fv = self.encoder
        if level >= fv.n_levels_:
            raise ValueError(f"the model has {fv.n_levels_} level(s), no GMM for level {level}")
        w = np.asarray(fv.weights_[level], dtype=np.float64)
        k = rng.choice(len(w), size=n, p=w / w.sum())
        y = fv.means_[level][k] + fv.sigmas_[level][k] * rng.standard_normal((n, fv.n_dims_))
        p = fv.pcas_[level]
        return p.inverse_transform(y) if p is not None else y
