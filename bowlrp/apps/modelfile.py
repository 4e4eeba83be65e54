"""Model files: a fitted pipeline with the metadata needed to use it safely later.

A model file is a joblib dump of a dict: the metadata (format, the bowlrp,
scikit-learn, NumPy and Python versions that wrote it, the model's name and
parameters, class names, the image size limits of training, the held-out
figures) and the fitted pipeline, pickled separately so that the versions are
checked *before* the pipeline is unpickled (unpickling under another version
is what breaks).

Loading runs pickle: open only model files you trust, as with any joblib or
pickle file.
"""

import datetime
import os
import pickle
import platform
import warnings

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from .. import __version__ as BOWLRP_VERSION

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "ModelVersionWarning", "load_model", "min_image_side",
           "read_metadata", "save_model"]

FORMAT = "bowlrp-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a bowlrp model, or one this version cannot use.

    A ``ValueError``, raised by :func:`read_metadata` and :func:`load_model`.

    Examples
    --------
    >>> import os, tempfile, joblib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = joblib.dump({"weights": [1, 2]}, os.path.join(folder, "other.joblib"))[0]
    ...     try:
    ...         load_model(path)
    ...     except ModelFileError as err:
    ...         print(*str(err).replace(repr(path), "<path>").split("; "), sep="\\n")
    <path> is not a bowlrp model file (it is a joblib file holding a dict with keys ['weights'])
    write model files with 'bowlrp train' or bowlrp.apps.modelfile.save_model
    """


class ModelVersionWarning(UserWarning):
    """A model file written by another (compatible) version of bowlrp or scikit-learn.

    Examples
    --------
    A model file marked as written by a development release of this
    version loads, with a warning:

    >>> import warnings, joblib, bowlrp
    >>> import os, tempfile, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, [0, 1] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = save_model(os.path.join(folder.name, "toy.joblib"), pipe, model="toy")
    >>> content = joblib.load(path)
    >>> content["bowlrp_version"] = bowlrp.__version__ + ".dev0"
    >>> _ = joblib.dump(content, path)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     loaded, meta = load_model(path)
    >>> caught[0].category.__name__, str(caught[0].message).endswith("Retrain it (bowlrp train) to be sure")
    ('ModelVersionWarning', True)
    >>> folder.cleanup()
    """


def _major_minor(version):
    parts = []
    for p in str(version).split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (2 - len(parts)))


def min_image_side(pipeline):
    """The smallest square image side the pipeline's dense SIFT can describe at every scale.

    Found with :func:`bowlrp.features.sift.grid_centers` (a level needs at
    least one descriptor whose square fits inside the image).  ``None`` when
    the pipeline does not start with a :class:`bowlrp.DenseSIFT`.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from bowlrp import BagOfWords, KernelSVC
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> min_image_side(toy_pipeline())  # its sigma=3 descriptors need 36 x 36 pixels
    36
    >>> print(min_image_side(make_pipeline(BagOfWords(), KernelSVC())))
    None
    """
    from ..features import DenseSIFT  # noqa: PLC0415
    from ..features.sift import grid_centers  # noqa: PLC0415

    first = pipeline.steps[0][1]
    if not isinstance(first, DenseSIFT):
        return None
    scales = first.scales if isinstance(first.scales, (tuple, list)) else (first.scales,)
    steps = first.steps if isinstance(first.steps, (tuple, list)) else (first.steps,) * len(scales)
    need = 1
    for sigma, step in zip(scales, steps):
        side = 1
        while len(grid_centers((side, side), float(sigma), int(step))) == 0:
            side += 1
        need = max(need, side)
    return need


def save_model(path, pipeline, *, model, params=None, class_names=None, max_side=None, training=None):
    """Write a fitted pipeline and its metadata to ``path`` (joblib, compressed).

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder is created.  An existing folder there is
        an error.
    pipeline : fitted ExplainablePipeline
    model : str
        The ready-made model's name (or any name of your own).
    params : dict or None
        The parameters overridden when the model was built.
    class_names : list of str or None
        Default: ``pipeline.classes_``.
    max_side : int or None
        The cap on the longer image side used in training; ``explain`` and
        ``evaluate`` read images with the same cap by default.
    training : dict or None
        Anything JSON-like to keep: sizes, held-out accuracy, the paths of
        the training and test images, run times.

    Returns
    -------
    str : the path written.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, [0, 1] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = save_model(os.path.join(folder.name, "models", "toy.joblib"), pipe, model="toy",
    ...                   class_names=["cat", "dog"], max_side=40)
    >>> os.path.relpath(path, folder.name), read_metadata(path)["class_names"]
    ('models/toy.joblib', ['cat', 'dog'])
    >>> folder.cleanup()
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"model file {path!r} is a folder; give a file name such as model.joblib")
    classes = [c.item() if isinstance(c, np.generic) else c for c in pipeline.classes_]
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bowlrp_version": BOWLRP_VERSION,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": str(model),
        "params": {k: repr(v) for k, v in (params or {}).items()},
        "classes": classes,
        "class_names": [str(c) for c in (class_names if class_names is not None else classes)],
        "max_side": None if max_side is None else int(max_side),
        "min_image_side": min_image_side(pipeline),
        "training": dict(training or {}),
    }
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    payload = dict(meta, pipeline_pickle=pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL))
    tmp = path + ".part"
    joblib.dump(payload, tmp, compress=3)
    os.replace(tmp, path)  # never leave a half-written model file under the real name
    return path


def _check_versions(meta, path):
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"model file {path!r} has format version {meta['format_version']}, newer than this bowlrp "
            f"({BOWLRP_VERSION}) reads ({FORMAT_VERSION}); upgrade bowlrp (pip install -U bowlrp)"
        )
    theirs, ours = meta.get("bowlrp_version", "?"), BOWLRP_VERSION
    if _major_minor(theirs)[0] != _major_minor(ours)[0]:
        raise ModelFileError(
            f"model file {path!r} was written by bowlrp {theirs}; this is bowlrp {ours}, another major "
            f"version whose models are not compatible. Retrain the model with this version "
            f"(bowlrp train), or install bowlrp=={theirs} to use it"
        )
    notes = []
    if theirs != ours:
        notes.append(f"bowlrp {theirs} (this is {ours})")
    sk = meta.get("sklearn_version", "?")
    if _major_minor(sk) != _major_minor(sklearn.__version__):
        notes.append(f"scikit-learn {sk} (this is {sklearn.__version__})")
    if notes:
        warnings.warn(
            f"model file {path!r} was written by {' and '.join(notes)}; it loads, but its results may "
            "differ slightly. Retrain it (bowlrp train) to be sure",
            ModelVersionWarning,
            stacklevel=3,
        )


#: How the files joblib writes begin: a pickle (protocol 2 and later), or zlib, gzip, bz2, xz, lzma, lz4.
_JOBLIB_MAGIC = (b"\x80", b"x", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00\x00", b"\x04\x22\x4d\x18")


def read_metadata(path):
    """The metadata dict of a model file, without unpickling its pipeline.

    The dict still holds the pickled pipeline's bytes under ``pipeline_pickle``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, [0, 1] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> meta = read_metadata(save_model(os.path.join(folder.name, "toy.joblib"), pipe, model="toy", max_side=40))
    >>> meta["format"], meta["model"], meta["classes"], meta["max_side"], meta["min_image_side"]
    ('bowlrp-model', 'toy', [0, 1], 40, 36)
    >>> folder.cleanup()
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    if os.path.isdir(path):
        raise ModelFileError(f"model file {path!r} is a folder, not a bowlrp model file")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(_JOBLIB_MAGIC):  # text, images, ...: what unpickling would say is meaningless
        raise ModelFileError(
            f"{path!r} is not a bowlrp model file: it is not a joblib file (a pickle, or a compressed one), "
            f"it starts with {head!r}; write model files with 'bowlrp train'"
        )
    try:
        obj = joblib.load(path)
    except Exception as exc:  # noqa: BLE001  (pickle raises anything on a foreign file)
        raise ModelFileError(
            f"{path!r} is not a bowlrp model file (it cannot be read as a joblib file: "
            f"{type(exc).__name__}: {exc}); write model files with 'bowlrp train'"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "pipeline_pickle" not in obj:
        what = f"a dict with keys {sorted(obj)[:6]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ModelFileError(
            f"{path!r} is not a bowlrp model file (it is a joblib file holding {what}); "
            "write model files with 'bowlrp train' or bowlrp.apps.modelfile.save_model"
        )
    return obj


def load_model(path):
    """Read a model file: ``(pipeline, metadata)``.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ModelFileError
        When it is not a bowlrp model file, was written by another major
        version of bowlrp or a newer file format, or its pipeline cannot be
        unpickled here.

    Warns
    -----
    ModelVersionWarning
        When another minor or patch version of bowlrp, or another
        scikit-learn version, wrote it.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, [0, 1] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> loaded, meta = load_model(save_model(os.path.join(folder.name, "toy.joblib"), pipe, model="toy"))
    >>> bool((loaded.predict(images) == pipe.predict(images)).all()), meta["model"], "pipeline_pickle" in meta
    (True, 'toy', False)
    >>> load_model(os.path.join(folder.name, "missing.joblib"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: model file '.../missing.joblib' does not exist
    >>> folder.cleanup()
    """
    path = os.fspath(path)
    obj = read_metadata(path)
    blob = obj.pop("pipeline_pickle")
    _check_versions(obj, path)
    with warnings.catch_warnings():
        # the version check above has said what scikit-learn would say about each estimator
        warnings.filterwarnings("ignore", category=InconsistentVersionWarning)
        try:
            pipeline = pickle.loads(blob)
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(
                f"the pipeline in model file {path!r} cannot be loaded with bowlrp {BOWLRP_VERSION} and "
                f"scikit-learn {sklearn.__version__} ({type(exc).__name__}: {exc}); it was written by bowlrp "
                f"{obj.get('bowlrp_version')} and scikit-learn {obj.get('sklearn_version')}. Retrain it"
            ) from None
    return pipeline, obj
