"""What the encoders take: one set of local descriptors per image, with or without geometry."""

import numpy as np

from .._backend import get_namespace

__all__ = ["check_descriptor_sets", "ProjectedDescriptorSet"]


def check_descriptor_sets(X, name="X"):
    """Return ``(descriptors, levels, n_levels)`` lists for a batch of descriptor sets.

    Accepts a list of objects with ``descriptors`` (n_i, D) and ``levels``
    (n_i,) attributes (such as :class:`bowlrp.DescriptorSet` or
    :class:`ProjectedDescriptorSet`) or a list of plain 2-D arrays (one level).

    Examples
    --------
    >>> import numpy as np
    >>> descs, levels, n_levels = check_descriptor_sets([np.zeros((3, 4)), np.ones((2, 4))])
    >>> [d.shape for d in descs], levels, n_levels
    ([(3, 4), (2, 4)], [array([0, 0, 0]), array([0, 0])], 1)
    >>> check_descriptor_sets(np.zeros((2, 3, 4)))
    Traceback (most recent call last):
    ...
    TypeError: X must be a list with one descriptor set per image (the output of DenseSIFT.transform, or a list of (n_i, D) arrays), got an array of shape (2, 3, 4)
    """
    if isinstance(X, np.ndarray) and X.dtype != object:
        raise TypeError(
            f"{name} must be a list with one descriptor set per image (the output of "
            f"DenseSIFT.transform, or a list of (n_i, D) arrays), got an array of shape {X.shape}"
        )
    if not isinstance(X, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list of descriptor sets, got {type(X).__name__}")
    if len(X) == 0:
        raise ValueError(f"{name} is empty: pass at least one descriptor set")
    descs, levels, n_levels = [], [], 1
    width = None
    for i, s in enumerate(X):
        if hasattr(s, "descriptors") and hasattr(s, "levels"):
            d, lv = s.descriptors, np.asarray(s.levels, dtype=np.intp)
            n_levels = max(n_levels, int(getattr(s, "n_levels", lv.max() + 1 if lv.size else 1)))
        else:
            d = s
            lv = None
        xp = get_namespace(d)
        if not hasattr(d, "ndim") or d.ndim != 2:
            raise ValueError(
                f"{name}[{i}] must be a descriptor set or a 2-D (n_descriptors, n_dims) array; "
                f"got {type(d).__name__} with shape {getattr(d, 'shape', None)}"
            )
        if d.dtype.kind not in "fiu":
            raise TypeError(f"{name}[{i}] has dtype {d.dtype}; descriptors must be real numbers")
        if d.size and not bool(xp.isfinite(d).all()):
            raise ValueError(f"{name}[{i}] contains NaN or infinite values")
        if width is None:
            width = d.shape[1]
        elif d.shape[1] != width:
            raise ValueError(f"{name}[{i}] has descriptors of dimension {d.shape[1]}, earlier ones {width}")
        if lv is None:
            lv = np.zeros(d.shape[0], dtype=np.intp)
        elif lv.shape != (d.shape[0],):
            raise ValueError(f"{name}[{i}].levels must have one entry per descriptor")
        descs.append(d)
        levels.append(lv)
    return descs, levels, n_levels


class ProjectedDescriptorSet:
    """Descriptors of another dimension with the geometry of the set they were computed from.

    The output of :class:`bowlrp.DescriptorPCA`: ``descriptors`` (n, d) are
    new, everything else (``centers``, ``sigmas``, ``levels``, ``angles``,
    ``boxes``, ``image_shape``, ``n_levels``) is read from ``source``, so the
    spatial pyramid of a Fisher-vector encoder and the pixel rules of
    :class:`bowlrp.DenseSIFT` see the original geometry.

    Parameters
    ----------
    descriptors : array (n, d)
    source : DescriptorSet (or any object with ``levels``), or None
        ``None``: one level, no geometry.

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> image = (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)
    >>> (sift,) = bowlrp.DenseSIFT(scales=(2.0,), steps=(8,)).fit_transform([image])
    >>> short = ProjectedDescriptorSet(sift.descriptors[:, :8], sift)  # 8 of 128 dimensions
    >>> short.descriptors.shape, short.centers.shape, short.image_shape
    ((4, 8), (4, 2), (32, 32))
    """

    _GEOMETRY = ("centers", "sigmas", "angles", "boxes", "image_shape")

    def __init__(self, descriptors, source=None):
        self.descriptors = descriptors
        self.source = source
        if source is None:
            self.levels = np.zeros(descriptors.shape[0], dtype=np.intp)
            self.n_levels = 1
        else:
            self.levels = np.asarray(source.levels, dtype=np.intp)
            self.n_levels = int(getattr(source, "n_levels", self.levels.max() + 1 if self.levels.size else 1))
        if self.levels.shape != (descriptors.shape[0],):
            raise ValueError(
                f"got {descriptors.shape[0]} descriptors for a source set of {self.levels.shape[0]}"
            )

    def __getattr__(self, name):
        if name in ProjectedDescriptorSet._GEOMETRY and self.__dict__.get("source") is not None:
            return getattr(self.__dict__["source"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __len__(self):
        return self.descriptors.shape[0]

    def __repr__(self):
        return f"ProjectedDescriptorSet(n={len(self)}, dims={self.descriptors.shape[1]}, source={self.source!r})"
