"""Fit a descriptor pipeline on image files: the sample and the features are computed on the workers.

A pipeline ``first step (images -> descriptors) -> descriptor stages ->
encoder (descriptors -> features) -> feature stages -> final estimator``
is fitted in two passes over the files, both through
:func:`~bowlrp.collection.engine.run_tasks` (this process, joblib workers or
a Dask cluster):

1. :func:`describe_sample`: each task reads one image, computes its
   descriptors with the first step and returns at most ``n_per_image``
   descriptors per level, drawn without replacement from the stream
   ``default_rng([seed, image index])``.  The client holds only the sample
   (about ``max_descriptors`` per level in all, the encoders' own cap) and
   fits the descriptor stages and the encoder on it.
2. :func:`image_features`: each task reads one image again and returns its
   feature vector from the fitted steps up to the encoder; the client
   stacks the ``(n_images, n_features)`` matrix and fits the rest.  An
   image whose every descriptor came back in the sample (it had no more
   than its share) is encoded on the client from those descriptors instead
   of being read and described again.

So the client's memory does not grow with the descriptors of the
collection (the sample, and the images held whole in it, total about
``max_descriptors`` per level), only with the feature matrix, and the
first step runs at most twice per image.  The draws depend only on the
seed and each image's position, so every backend fits the same model.
When no image has more descriptors than its share, the sample is every
descriptor in the order ``pipeline.fit`` sees them, nothing is described
twice, and the model equals ``pipeline.fit`` on the loaded images.
"""

import dataclasses
import math
import os

import numpy as np
from sklearn.utils import get_tags

from .._validation import resolve_seed
from ..datasets.folder import read_image
from .engine import dask_client, run_tasks

__all__ = ["DescriptorSample", "PipelineLayout", "describe_sample", "fit_collection", "fit_descriptor_stages",
           "fit_on_features", "image_features", "pipeline_layout"]


@dataclasses.dataclass
class PipelineLayout:
    """Positions in ``pipeline.steps``: the first step, the descriptor stages up to the encoder, the rest.

    Examples
    --------
    >>> from bowlrp.apps.demo import toy_pipeline  # DenseSIFT, BagOfWords, KernelSVC
    >>> layout = pipeline_layout(toy_pipeline())
    >>> layout, layout.encoder
    (PipelineLayout(first=0, encoder=1, final=2), 1)
    """

    first: int
    encoder: int
    final: int


def pipeline_layout(pipeline):
    """Where the descriptors become features in ``pipeline`` (a :class:`PipelineLayout`).

    The first step takes images (``input_kind == "images"``, e.g.
    :class:`bowlrp.DenseSIFT`); the steps after it that take descriptors
    (:class:`bowlrp.DescriptorPCA`, ...) end with the encoder
    (:class:`bowlrp.BagOfWords`, :class:`bowlrp.FisherVectorEncoder`);
    everything after the encoder takes feature vectors.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from bowlrp import BagOfWords, KernelSVC
    >>> pipeline_layout(make_pipeline(BagOfWords(), KernelSVC()))
    Traceback (most recent call last):
    ...
    ValueError: the first step 'bagofwords' must take images (input_kind 'images', e.g. DenseSIFT) to be fitted on image files; it takes 'descriptors'
    """
    steps = getattr(pipeline, "steps", None)
    if steps is None:
        raise TypeError(f"expected a scikit-learn Pipeline such as bowlrp.ExplainablePipeline, got "
                        f"{type(pipeline).__name__}")
    if any(s is None or (isinstance(s, str) and s == "passthrough") for _, s in steps):
        raise ValueError("the pipeline has 'passthrough' or None steps; remove them before fitting on a collection")
    kinds = [getattr(s, "input_kind", None) for _, s in steps]
    names = [n for n, _ in steps]
    if kinds[0] != "images":
        raise ValueError(f"the first step {names[0]!r} must take images (input_kind 'images', e.g. DenseSIFT) to be "
                         f"fitted on image files; it takes {kinds[0]!r}")
    k = 1
    while k < len(steps) - 1 and kinds[k] == "descriptors":
        k += 1
    if k == 1:
        raise ValueError(f"no encoder after the first step {names[0]!r}: the step after it ({names[1]!r}) must take "
                         "descriptors (BagOfWords, FisherVectorEncoder, DescriptorPCA)")
    return PipelineLayout(first=0, encoder=k - 1, final=len(steps) - 1)


@dataclasses.dataclass
class DescriptorSample:
    """The outcome of :func:`describe_sample`, one entry per path.

    Attributes
    ----------
    sets : list of (DescriptorSet or None)
        The sampled descriptors of each image (None where it failed).
    shapes : list of (tuple or None)
        ``(H, W)`` of each image as read (None where it could not be read).
    errors : list of (int, str, str)
        ``(index, path, reason)`` of the images that failed.
    n_per_image : int
        The cap per image and level that was used.
    whole : list of bool
        Whether each set holds every descriptor of its image (no level had
        more than ``n_per_image``).

    Examples
    --------
    :func:`describe_sample` returns one; made by hand for two images, the
    second unreadable:

    >>> import numpy as np
    >>> sample = DescriptorSample(sets=[np.zeros((3, 128)), None], shapes=[(40, 40), None],
    ...                           errors=[(1, "b.png", "the file is empty")], n_per_image=5, whole=[True, False])
    >>> [None if s is None else s.shape for s in sample.whole_sets()]
    [(3, 128), None]
    """

    sets: list
    shapes: list
    errors: list
    n_per_image: int
    whole: list

    def whole_sets(self):
        """The sets that hold their image's every descriptor, None for the others (for :func:`image_features`)."""
        return [s if w else None for s, w in zip(self.sets, self.whole)]


def _subsample(ds, k, rng):
    """At most ``k`` descriptors of each level of ``ds``, in their original order."""
    if not hasattr(ds, "levels"):  # a plain (n, d) array: one level
        n = len(ds)
        return ds if n <= k else ds[np.sort(rng.choice(n, k, replace=False))]
    levels = np.asarray(ds.levels)
    keep = []
    for s in range(int(getattr(ds, "n_levels", levels.max() + 1 if levels.size else 1))):
        idx = np.flatnonzero(levels == s)
        keep.append(idx if len(idx) <= k else idx[np.sort(rng.choice(len(idx), k, replace=False))])
    keep = np.concatenate(keep) if keep else np.zeros(0, np.intp)
    if len(keep) == len(levels):
        return ds
    fields = {f.name: getattr(ds, f.name) for f in dataclasses.fields(ds) if f.init}
    per_row = {name: v[keep] for name, v in fields.items() if isinstance(v, np.ndarray) and len(v) == len(levels)}
    return dataclasses.replace(ds, **per_row)


def _read(path, max_side, gray):
    return read_image(path, max_side=max_side, gray=gray)


def _sample_task(first, path, index, max_side, gray, k, seed):
    """One image on a worker: ``(index, shape, sampled descriptors, whole, error)``."""
    try:
        image = _read(path, max_side, gray)
    except (OSError, ValueError) as exc:
        return index, None, None, False, str(exc)
    try:
        (ds,) = first.transform([image])
    except ValueError as exc:
        return index, image.shape[:2], None, False, str(exc)
    sample = _subsample(ds, k, np.random.default_rng([seed, index]))
    return index, image.shape[:2], sample, sample is ds, None


def _max_descriptors(pipeline, layout):
    caps = [s.get_params().get("max_descriptors") for _, s in pipeline.steps[1:layout.encoder + 1]]
    caps = [c for c in caps if isinstance(c, (int, np.integer)) and c > 0]
    return int(max(caps)) if caps else 50000


def describe_sample(pipeline, paths, *, n_per_image=None, n_images=None, max_side=None, gray=True, random_state=0,
                    n_jobs=None, client=None, verbose=True):
    """Pass 1: on the workers, each image's descriptors, sampled down to ``n_per_image`` per level.

    Parameters
    ----------
    pipeline : Pipeline
        Its first step computes the descriptors (:func:`pipeline_layout`).
    paths : sequence of str
        Image files.
    n_per_image : int or None
        Cap per image and level; default ``ceil(max_descriptors /
        n_images)``, with ``max_descriptors`` the largest of the descriptor
        stages' caps (50000 by default), so that the whole sample is about
        what the encoder would sample itself.
    n_images : int or None
        The number of images the sample is for (default ``len(paths)``;
        :func:`bowlrp.apps.train.train_folder` describes every image but
        fits on its training share).
    max_side : int or None
        Cap on the longer side when reading (:func:`bowlrp.datasets.read_image`).
    gray : bool, default=True
        Read as grayscale (what dense SIFT computes on).
    random_state : int, RandomState, Generator or None
        Seeds the per-image draws (``default_rng([seed, index])``).
    n_jobs, client
        As in :func:`~bowlrp.collection.engine.run_tasks`; ``client`` may be
        a scheduler address.
    verbose : bool
        Progress bar.

    Returns
    -------
    DescriptorSample

    Examples
    --------
    Six 40 x 40 images with 9 descriptors at sigma 2 and one at sigma 3;
    at most 5 per image and level are kept:

    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(folder.name, f"{i}.png") for i in range(6)]
    >>> _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    >>> sample = describe_sample(toy_pipeline(n_words=4), paths, n_per_image=5, verbose=False)
    >>> sample.shapes[0], np.bincount(sample.sets[0].levels), sample.whole[0], sample.errors
    ((40, 40), array([5, 1]), False, [])
    >>> folder.cleanup()
    """
    layout = pipeline_layout(pipeline)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("paths is empty: pass at least one image file")
    if n_per_image is None:
        n_per_image = math.ceil(_max_descriptors(pipeline, layout) / max(1, n_images or len(paths)))
    if isinstance(n_per_image, bool) or not isinstance(n_per_image, (int, np.integer)) or n_per_image < 1:
        raise ValueError(f"n_per_image must be a positive integer, got {n_per_image!r}")
    seed = resolve_seed(random_state)
    first = pipeline.steps[layout.first][1]
    sets, shapes, whole, errors = [None] * len(paths), [None] * len(paths), [False] * len(paths), []
    tasks = ((first, os.path.abspath(p), i, max_side, gray, int(n_per_image), seed) for i, p in enumerate(paths))
    with dask_client(client) as dask:
        for i, shape, ds, all_of_it, err in run_tasks(_sample_task, tasks, n_jobs=n_jobs, client=dask,
                                                      total=len(paths), desc="sampling descriptors", unit="image",
                                                      verbose=verbose):
            shapes[i], sets[i], whole[i] = (tuple(int(v) for v in shape) if shape is not None else None), ds, all_of_it
            if err is not None:
                errors.append((i, paths[i], err))
    errors.sort()
    return DescriptorSample(sets=sets, shapes=shapes, errors=errors, n_per_image=int(n_per_image), whole=whole)


def fit_descriptor_stages(pipeline, sets):
    """Fit the steps after the first one up to the encoder on sampled descriptor sets, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4)
    >>> sets = pipe[0].transform(images)  # DenseSIFT learns nothing
    >>> fit_descriptor_stages(pipe, sets)[:2].transform(images).shape  # 4 words at each of the 2 scales
    (6, 8)
    >>> fit_descriptor_stages(pipe, sets[:5] + [None])
    Traceback (most recent call last):
    ...
    ValueError: some descriptor sets are missing (images that failed); leave them out first
    """
    layout = pipeline_layout(pipeline)
    if any(s is None for s in sets):
        raise ValueError("some descriptor sets are missing (images that failed); leave them out first")
    X = list(sets)
    for _, stage in pipeline.steps[1:layout.encoder]:
        X = stage.fit(X).transform(X)
    pipeline.steps[layout.encoder][1].fit(X)
    return pipeline


def _feature_task(prefix, path, index, max_side, gray):
    """One image on a worker: ``(index, feature vector, error)``."""
    try:
        image = _read(path, max_side, gray)
        return index, np.asarray(prefix.transform([image]))[0], None
    except (OSError, ValueError) as exc:
        return index, None, str(exc)


def image_features(pipeline, paths, *, descriptors=None, max_side=None, gray=True, n_jobs=None, client=None,
                   verbose=True, chunk=256):
    """Pass 2: the feature vector of every image from the fitted steps up to the encoder, on the workers.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted up to its encoder (:func:`fit_descriptor_stages`).
    paths : sequence of str
    descriptors : list of (DescriptorSet or None) or None
        The whole descriptor sets of some images, one entry per path
        (:meth:`DescriptorSample.whole_sets`): those are encoded here from
        the sets, ``chunk`` at a time, and not read again.
    max_side, gray, n_jobs, client, verbose
        As in :func:`describe_sample`.
    chunk : int, default=256
        How many held sets are encoded at a time here.  They total about
        ``max_descriptors`` descriptors per level (each has at most its
        share), so this pass is short next to the workers'.

    Returns
    -------
    F : ndarray (n_images, n_features)
        Rows of failed images are NaN.
    errors : list of (int, str, str)
        ``(index, path, reason)``.

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(folder.name, f"{i}.png") for i in range(6)]
    >>> _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    >>> pipe = fit_descriptor_stages(toy_pipeline(n_words=4), toy_pipeline()[0].transform(images))
    >>> F, errors = image_features(pipe, paths + [os.path.join(folder.name, "gone.png")], verbose=False)
    >>> F.shape, bool(np.isnan(F[6]).all()), errors[0][0], np.allclose(F[:6], pipe[:2].transform(images))
    ((7, 8), True, 6, True)
    >>> folder.cleanup()
    """
    layout = pipeline_layout(pipeline)
    prefix = pipeline[:layout.encoder + 1]
    paths = [os.fspath(p) for p in paths]
    held = list(descriptors) if descriptors is not None else [None] * len(paths)
    if len(held) != len(paths):
        raise ValueError(f"descriptors has {len(held)} entries for {len(paths)} paths")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    F, errors = None, []

    def put(i, row):
        nonlocal F
        if F is None:
            F = np.full((len(paths), row.shape[0]), np.nan, dtype=row.dtype)
        F[i] = row

    mine = [i for i, s in enumerate(held) if s is not None]
    for a in range(0, len(mine), chunk):
        part = mine[a:a + chunk]
        for i, row in zip(part, np.asarray(pipeline[1:layout.encoder + 1].transform([held[i] for i in part]))):
            put(i, row)
    todo = [i for i, s in enumerate(held) if s is None]
    tasks = ((prefix, os.path.abspath(paths[i]), i, max_side, gray) for i in todo)
    with dask_client(client) as dask:
        for i, row, err in run_tasks(_feature_task, tasks, n_jobs=n_jobs, client=dask, total=len(todo),
                                     desc="encoding", unit="image", verbose=verbose and bool(todo)):
            if err is not None:
                errors.append((i, paths[i], err))
            else:
                put(i, row)
    if F is None:
        F = np.full((len(paths), 0), np.nan)
    errors.sort()
    return F, errors


def fit_on_features(pipeline, F, y):
    """Fit the steps after the encoder (feature stages, then the final estimator) on ``F``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = fit_descriptor_stages(toy_pipeline(n_words=4), toy_pipeline()[0].transform(images))
    >>> fit_on_features(pipe, pipe[:2].transform(images), [0, 1] * 3).predict(images).shape
    (6,)
    """
    layout = pipeline_layout(pipeline)
    for _, stage in pipeline.steps[layout.encoder + 1:layout.final]:
        F = stage.fit_transform(F, y)
    pipeline.steps[layout.final][1].fit(F, y)
    return pipeline


def _raise_failed(errors, what):
    shown = "; ".join(f"{p}: {r}" for _, p, r in errors[:5])
    more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
    raise ValueError(f"{len(errors)} image(s) could not be {what}: {shown}{more}. Remove them from paths (or "
                     "use bowlrp.apps.train.train_folder, which leaves unreadable files out)")


def fit_collection(pipeline, paths, y, *, max_side=None, gray=True, random_state=0, n_jobs=None, client=None,
                   verbose=True):
    """Fit ``pipeline`` on image files, with the descriptor sample and the features computed on the workers.

    Parameters
    ----------
    pipeline : ExplainablePipeline
        Unfitted or fitted; fitted in place.  Its first step computes
        descriptors from images and learns nothing (:class:`bowlrp.DenseSIFT`).
    paths : sequence of str
        Image files, readable from every worker under the same path.
    y : array-like of shape (n_images,)
        Labels.
    max_side, gray, random_state, n_jobs, client, verbose
        As in :func:`describe_sample`.

    Returns
    -------
    pipeline : the fitted pipeline

    Raises
    ------
    ValueError
        When an image cannot be read or described (all are needed).

    Examples
    --------
    Six small images hold fewer descriptors than the sample takes, so the
    model is the one ``pipeline.fit`` gives on the images in memory:

    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(folder.name, f"{i}.png") for i in range(6)]
    >>> _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    >>> pipe = fit_collection(toy_pipeline(n_words=4), paths, [0, 1] * 3, verbose=False)
    >>> same = toy_pipeline(n_words=4).fit(images, [0, 1] * 3)
    >>> bool(np.allclose(pipe.decision_function(images), same.decision_function(images)))
    True
    >>> fit_collection(toy_pipeline(), paths, [0, 1])
    Traceback (most recent call last):
    ...
    ValueError: y must have one label per path: 6 paths, y of shape (2,)
    >>> folder.cleanup()
    """
    paths = [os.fspath(p) for p in paths]
    y = np.asarray(y)
    if y.shape != (len(paths),):
        raise ValueError(f"y must have one label per path: {len(paths)} paths, y of shape {y.shape}")
    layout = pipeline_layout(pipeline)
    name, first = pipeline.steps[layout.first]
    if get_tags(first).requires_fit:
        raise ValueError(f"the first step {name!r} ({type(first).__name__}) learns from images, which "
                         "fit_collection never holds together; fit the pipeline with pipeline.fit(images, y)")
    with dask_client(client) as dask:
        sample = describe_sample(pipeline, paths, max_side=max_side, gray=gray, random_state=random_state,
                                 n_jobs=n_jobs, client=dask, verbose=verbose)
        if sample.errors:
            _raise_failed(sample.errors, "read or described")
        fit_descriptor_stages(pipeline, sample.sets)
        held = sample.whole_sets()
        del sample
        F, errors = image_features(pipeline, paths, descriptors=held, max_side=max_side, gray=gray, n_jobs=n_jobs,
                                   client=dask, verbose=verbose)
    if errors:
        _raise_failed(errors, "encoded")
    return fit_on_features(pipeline, F, y)
