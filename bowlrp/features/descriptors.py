"""The container of one image's dense SIFT descriptors and their geometry."""

from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["DescriptorSet", "make_keypoints"]


@dataclass(frozen=True, eq=False, repr=False)
class DescriptorSet:
    """The local descriptors of one image and their geometry.

    Descriptors are ordered by scale level, then row-major over the grid of
    that level.

    Attributes
    ----------
    descriptors : ndarray of shape (n, 128), dtype float32
        OpenCV SIFT descriptors, as OpenCV scales them (unit length, clipped at
        0.2, renormalised, times 512, saturated to 0..255).
    centers : ndarray of shape (n, 2), dtype float64
        Keypoint centres ``(x, y) = (column, row)`` in pixels.
    sigmas : ndarray of shape (n,), dtype float64
        Scale ``sigma`` of each descriptor (the keypoint size is ``2 sigma``).
    levels : ndarray of shape (n,), dtype intp
        Index of each descriptor's scale level (position in ``DenseSIFT.scales``).
    angles : ndarray of shape (n,), dtype float64
        Orientation of each descriptor in degrees, in the convention of
        ``cv2.KeyPoint.angle`` (image coordinates, ``y`` pointing down:
        ``atan2(dI/drow, dI/dcol)``, in ``[0, 360)``); 0 when rotation is off.
    boxes : ndarray of shape (n, 4), dtype intp
        ``(row0, col0, row1, col1)``, half-open: the square of side
        ``round(12 sigma)`` around the centre, clipped to the image (axis-aligned
        also for rotated descriptors).  This is ``area(l)`` of eq. 2.84, the
        pixels the flat rule spreads relevance over.
    image_shape : tuple of int
        ``(H, W)`` of the image.
    n_levels : int
        Number of scale levels (``len(DenseSIFT.scales)``); a level may hold
        no descriptors only if the set was built by hand.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.sift import DenseSIFT
    >>> ds = DenseSIFT(scales=(2.0,), steps=6).transform(np.zeros((1, 24, 36)))[0]
    >>> len(ds), ds.descriptors.shape, ds.boxes[0].tolist()
    (3, (3, 128), [0, 0, 24, 24])
    """

    descriptors: np.ndarray
    centers: np.ndarray
    sigmas: np.ndarray
    levels: np.ndarray
    angles: np.ndarray
    boxes: np.ndarray
    image_shape: tuple
    n_levels: int
    _level_bounds: np.ndarray = field(init=False, compare=False)

    def __post_init__(self):
        def coerce(name, dtype, shape_tail):
            arr = np.asarray(getattr(self, name), dtype=dtype)
            if shape_tail is not None:
                arr = arr.reshape((-1,) + shape_tail) if arr.size == 0 else arr
            object.__setattr__(self, name, arr)
            return arr

        d = coerce("descriptors", np.float32, (128,))
        n = d.shape[0]
        coerce("centers", np.float64, (2,))
        coerce("sigmas", np.float64, ())
        levels = coerce("levels", np.intp, ())
        coerce("angles", np.float64, ())
        coerce("boxes", np.intp, (4,))
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        object.__setattr__(self, "n_levels", int(self.n_levels))
        expected = {
            "descriptors": (n, 128),
            "centers": (n, 2),
            "sigmas": (n,),
            "levels": (n,),
            "angles": (n,),
            "boxes": (n, 4),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"DescriptorSet.{name} must have shape {shape}, got {getattr(self, name).shape}")
        if n and (np.any(np.diff(levels) < 0) or levels[0] < 0 or levels[-1] >= self.n_levels):
            raise ValueError("DescriptorSet.levels must be sorted and lie in 0..n_levels-1")
        b = self.boxes
        H, W = self.image_shape
        if n and (
            b[:, 0].min() < 0 or b[:, 1].min() < 0 or b[:, 2].max() > H or b[:, 3].max() > W
            or np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1])
        ):
            raise ValueError(
                "DescriptorSet.boxes must be half-open (row0, col0, row1, col1) ranges inside the "
                f"image of shape {self.image_shape} (clip them to 0..H and 0..W)"
            )
        bounds = np.searchsorted(levels, np.arange(self.n_levels + 1), side="left")
        object.__setattr__(self, "_level_bounds", bounds)

    def __len__(self):
        return self.descriptors.shape[0]

    def __repr__(self):
        counts = [s.stop - s.start for s in self.level_slices]
        return f"DescriptorSet(n={len(self)}, image_shape={self.image_shape}, per_level={counts})"

    def level_slice(self, level):
        """Slice of the descriptors of scale level ``level``."""
        if not 0 <= level < self.n_levels:
            raise IndexError(f"level must be in 0..{self.n_levels - 1}, got {level}")
        b = self._level_bounds
        return slice(int(b[level]), int(b[level + 1]))

    @property
    def level_slices(self):
        """Tuple with the slice of every scale level (descriptors are sorted by level)."""
        return tuple(self.level_slice(k) for k in range(self.n_levels))

    @property
    def areas(self):
        """Number of pixels ``|area(l)|`` of each (clipped) box (eq. 2.84)."""
        b = self.boxes
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def keypoints(self):
        """The ``cv2.KeyPoint`` list these descriptors were computed from."""
        return make_keypoints(self.centers, self.sigmas, self.angles)


def make_keypoints(centers, sigmas, angles):
    """``cv2.KeyPoint`` list of size ``2 sigma``, ``octave = 0``, at ``centers`` with ``angles`` (degrees).

    Examples
    --------
    >>> import numpy as np
    >>> kp = make_keypoints(np.array([[10.0, 12.0]]), np.array([2.0]), np.array([90.0]))
    >>> kp[0].pt, kp[0].size, kp[0].angle
    ((10.0, 12.0), 4.0, 90.0)
    """
    return [
        cv2.KeyPoint(float(x), float(y), 2.0 * float(s), float(a), 0.0, 0, -1)
        for (x, y), s, a in zip(centers.tolist(), sigmas.tolist(), angles.tolist())
    ]
