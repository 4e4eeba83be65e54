"""The result of an explanation: relevance at every stage, the score, and how well it is conserved."""

from dataclasses import dataclass, field
from numbers import Integral
from typing import Optional

import numpy as np

from ._backend import to_numpy
from ._validation import check_images
from .viz import gray_rgb, heatmap_rgb, merge_tiles, save_png, side_by_side

__all__ = ["Explanation"]


@dataclass
class Explanation:
    """The result of explaining a batch of inputs.

    Each stage's relevance is kept, so conservation can be checked layer by
    layer: ``pixels[i].sum() + bias[i] == descriptors[i].sum() + bias[i] ==
    features[i].sum() + bias[i] == score[i]`` up to ``residual[i]``.

    Attributes
    ----------
    pixels : list of ndarray (H_i, W_i) or None
        Pixel relevance per image (eq. 2.85); ``None`` when the explained
        model does not start from images.
    descriptors : list of ndarray (n_i,) or (n_i, n_dims), or None
        Relevance of each local descriptor (eq. 2.80); per descriptor
        dimension (eq. D.3) for encoders that go that deep (Fisher vectors).
    features : ndarray (n, n_features)
        Relevance of each feature the classifier sees (eq. 2.72).
    bias : ndarray (n,)
        Relevance kept by the classifier's bias.
    score : ndarray (n,)
        The explained score ``f(x)``.
    target : ndarray (n,)
        The class explained for each input.
    residual : ndarray (n,)
        ``score - sum(input relevance) - bias``, at the input layer: zero up to
        rounding for exact rules, the Taylor remainder for Taylor
        decompositions, the absorbed relevance for epsilon-type rules.
    rule : str or None
        The rule used at the mapping stages (or the CNN's method).
    root : ndarray (n, n_features) or None
        Taylor decompositions: the root point on the decision boundary used
        for each input (in the classifier's feature space).
    root_found : ndarray (n,) of bool or None
        Taylor decompositions: whether a root with ``|f| <= 1e-5`` was found.
    stages : dict
        Relevance of the input of every pipeline step, by step name (the
        arrays of the fields above, as the step returned them).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp import Explanation
    >>> exp = Explanation(pixels=[np.array([[1.0, -1.0], [0.5, 0.0]])], descriptors=None,
    ...                   features=np.array([[0.5]]), bias=np.array([0.1]), score=np.array([0.6]),
    ...                   target=np.array([1]), residual=np.array([0.0]))
    >>> exp.heatmap(0).shape
    (2, 2, 3)
    """

    pixels: Optional[list]
    descriptors: Optional[list]
    features: np.ndarray
    bias: np.ndarray
    score: np.ndarray
    target: np.ndarray
    residual: np.ndarray
    rule: Optional[str] = "z"
    root: Optional[np.ndarray] = None
    root_found: Optional[np.ndarray] = None
    stages: dict = field(default_factory=dict, repr=False)

    def __len__(self):
        return len(self.score)

    def _index(self, i):
        if isinstance(i, bool) or not isinstance(i, Integral):
            raise TypeError(f"i must be an integer index of an explained input, got {i!r}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"i={i} is out of range for an explanation of {n} input(s)")
        return int(i) % n

    def _pixels(self, what):
        if self.pixels is None:
            raise ValueError(f"this explanation has no pixel relevance to {what} (the model does not start "
                             "from images)")
        return self.pixels

    def heatmap(self, i=0, scale=None):
        """RGB heatmap (uint8) of image ``i`` (eq. 2.62 with own or given scale).

        Parameters
        ----------
        i : int
            Which explained input.
        scale : float > 0 or None
            Common normalisation ``S`` (eq. 2.62), e.g. the largest ``max |R|``
            of several maps drawn side by side; ``None``: the map's own maximum.
        """
        return heatmap_rgb(self._pixels("draw")[self._index(i)], scale)

    def save_png(self, path, i=0, image=None, scale=None):
        """Write the heatmap of input ``i`` as a PNG; with ``image``, side by side.

        Parameters
        ----------
        path : str or path-like
        i : int
            Which explained input.
        image : array or None
            The input image (as given to ``explain``: uint8 0..255 or float in
            ``[0, 1]``, of the map's height and width), drawn left of the heatmap.
        scale : float > 0 or None
            Common normalisation ``S`` (eq. 2.62); ``None``: the map's own maximum.

        Returns
        -------
        str
            The path written.
        """
        k = self._index(i)
        heat = self.heatmap(k, scale)
        if image is not None:
            (img,) = check_images([np.asarray(to_numpy(image))], name="image")
            if img.shape[:2] != heat.shape[:2]:
                raise ValueError(
                    f"image has shape {img.shape[:2]} but the relevance map of input {k} has shape "
                    f"{heat.shape[:2]}; pass the image that was explained"
                )
            heat = side_by_side(gray_rgb(img), heat)
        return save_png(path, heat)

    def merge(self, origins, shape, indices=None):
        """Merge the pixel maps of tiles into one large map (average of overlaps, Sec. 2.4.3).

        Parameters
        ----------
        origins : array (len(self), 2)
            (row, col) of each explained tile in its large image, whole pixels.
        shape : (H, W)
            Shape of the large image.
        indices : array of int or None
            Which explained tiles belong to this large image (default: all).

        Examples
        --------
        ``exp.merge(data.test_origins, (408, 408), indices=np.flatnonzero(data.test_source == 0))``
        """
        pixels = self._pixels("merge")
        origins = np.asarray(origins)
        if origins.shape != (len(self), 2):
            raise ValueError(f"origins must have one (row, col) per explained tile: shape ({len(self)}, 2), "
                             f"got {origins.shape}")
        if indices is None:
            idx = np.arange(len(self))
        else:
            idx = np.asarray(indices)
            if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
                raise TypeError(f"indices must be a 1-D array of integer tile indices, got {idx.dtype} "
                                f"of shape {idx.shape}")
            if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
                raise IndexError(f"indices must lie in 0..{len(self) - 1}, got {idx.min()}..{idx.max()}")
        return merge_tiles([pixels[k] for k in idx], origins[idx], shape)
