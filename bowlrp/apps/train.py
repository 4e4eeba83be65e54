"""Train a ready-made model on an image folder, with a stratified held-out test split.

The images are never held together: :mod:`bowlrp.collection.fit` samples
descriptors per image and computes the feature vectors on workers (this
process, joblib workers or a Dask cluster), and the client fits the
encoder on the sample and the SVM on the features.
"""

import math
import os
import time

import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

from ..collection.engine import dask_client
from ..collection.fit import describe_sample, fit_descriptor_stages, fit_on_features, image_features, pipeline_layout
from ..datasets.folder import list_image_folder, warn_skipped
from .modelfile import min_image_side, save_model
from .models import MODELS, make_model

__all__ = ["check_image_sizes", "format_confusion", "train_folder"]


def format_confusion(cm, names):
    """A confusion matrix as aligned text: rows are the true classes, columns the predictions.

    Examples
    --------
    >>> print(format_confusion([[3, 1], [0, 4]], ["cat", "dog"]))
    true \\ predicted
               cat    dog
       cat       3      1
       dog       0      4
    """
    names = [str(n) for n in names]
    width = max(6, *(len(n) for n in names), len(str(int(np.max(cm)) if np.size(cm) else 0)))
    head = " " * (width + 2) + " ".join(f"{n:>{width}}" for n in names)
    lines = ["true \\ predicted", head]
    for n, row in zip(names, np.asarray(cm)):
        lines.append(f"{n:>{width}}  " + " ".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)


def check_image_sizes(pipeline, images, paths):
    """Raise a ``ValueError`` naming the images smaller than the model's descriptors need.

    ``images`` are arrays or their ``(H, W)`` shapes.

    Examples
    --------
    >>> from bowlrp.apps.demo import toy_pipeline  # sigma 3 descriptors: 36 x 36 pixels
    >>> check_image_sizes(toy_pipeline(), [(40, 40), (30, 50)], ["a.png", "b.png"])
    Traceback (most recent call last):
    ...
    ValueError: 1 image(s) are too small for the model: its largest SIFT scale needs at least 36 x 36 pixels; b.png (30 x 50). Remove them, use larger images (or a larger max side), or choose smaller scales (--param sift__scales=...)
    """
    need = min_image_side(pipeline)
    if need is None:
        return
    shapes = [tuple(getattr(im, "shape", im)[:2]) for im in images]
    small = [(p, sh) for p, sh in zip(paths, shapes) if min(sh) < need]
    if small:
        shown = ", ".join(f"{p} ({h} x {w})" for p, (h, w) in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise ValueError(
            f"{len(small)} image(s) are too small for the model: its largest SIFT scale needs at least "
            f"{need} x {need} pixels; {shown}{more}. Remove them, use larger images (or a larger max side), "
            "or choose smaller scales (--param sift__scales=...)"
        )


def train_folder(folder, model="bow-hik", out=None, *, params=None, test_size=0.25, max_side="model",
                 random_state=0, n_jobs=None, client=None, log=print, verbose=True):
    """Train ready-made model ``model`` on ``folder/<class>/*`` and report held-out accuracy.

    Parameters
    ----------
    folder : str
        An image folder (:func:`bowlrp.datasets.list_image_folder`).
    model : str
        A name of :func:`bowlrp.apps.models.model_names`.
    out : str or None
        Where to save the model file (:func:`bowlrp.apps.modelfile.save_model`).
    params : dict or None
        Parameter overrides (``{"bow__n_words": 256}``).
    test_size : float in (0, 1) or 0
        Share of each class held out for testing (stratified); ``0`` trains
        on everything and reports no held-out figures.
    max_side : int, None or "model"
        Cap on the longer side of every image; ``"model"`` uses the model's
        default (640), ``None`` none.
    random_state : int
        Seeds the split, the descriptor sample and the model.
    n_jobs : int or None
        joblib worker processes reading images, computing dense SIFT, the
        descriptor sample and the feature vectors.
    client : dask.distributed.Client, str or None
        Do that on a Dask cluster instead (a client or a scheduler address);
        the workers must read ``folder`` under the same path.
    log : callable
        Where progress lines go.

    Returns
    -------
    pipeline : fitted ExplainablePipeline
    summary : dict
        Sizes, held-out accuracy, confusion matrix, run times.

    Examples
    --------
    Four noise images and four blurred ones per class folder, a vocabulary
    of 4 words per scale; two images (one per class) are held out:

    >>> import os, tempfile, cv2, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> root = tempfile.TemporaryDirectory()
    >>> for c, name in enumerate(["noise", "blurred"]):
    ...     os.makedirs(os.path.join(root.name, "photos", name))
    ...     for i in range(4):
    ...         im = (rng.random((40, 40)) * 255).astype(np.uint8)
    ...         _ = cv2.imwrite(os.path.join(root.name, "photos", name, f"{i}.png"), cv2.blur(im, (5, 5)) if c else im)
    >>> pipe, summary = train_folder(os.path.join(root.name, "photos"), params={"bow__n_words": 4},
    ...                              out=os.path.join(root.name, "model.joblib"), log=lambda line: None, verbose=False)
    >>> summary["class_names"], summary["n_train"], summary["n_test"], int(np.sum(summary["confusion_matrix"]))
    (['blurred', 'noise'], 6, 2, 2)
    >>> os.path.exists(os.path.join(root.name, "model.joblib")), pipe.named_steps["svm"].blocks
    (True, (4, 4, 4))
    >>> root.cleanup()
    """
    t0 = time.perf_counter()
    pipe = make_model(model, params, random_state=random_state)
    cap = MODELS[model].max_side if max_side == "model" else max_side
    if not (isinstance(test_size, (int, float)) and not isinstance(test_size, bool) and 0 <= test_size < 1):
        raise ValueError(f"test_size must be a share in [0, 1), got {test_size!r}")
    listing = list_image_folder(folder)
    names = listing.target_names
    where = " on the Dask cluster" if client is not None else (f" on {n_jobs} workers" if n_jobs not in (None, 1) else "")
    log(f"[1/3] reading {folder}{where}: image sizes and a sample of descriptors per image"
        + (f" (longer side capped at {cap} px)" if cap else ""))
    with dask_client(client) as dask:
        sample = describe_sample(pipe, listing.paths, n_images=math.ceil(len(listing.paths) * (1 - test_size)),
                                 max_side=cap, random_state=random_state, n_jobs=n_jobs, client=dask,
                                 verbose=verbose)
        kept = np.array([i for i, sh in enumerate(sample.shapes) if sh is not None], dtype=np.intp)
        failed = [(p, r) for i, p, r in sample.errors if sample.shapes[i] is None]
        target = listing.target[kept]
        missing = [names[k] for k in range(len(names)) if not np.any(target == k)]
        if missing:
            bad = "; ".join(f"{p} ({r})" for p, r in failed[:5])
            raise ValueError(f"class(es) {missing} of {os.fspath(folder)!r} have no readable image; "
                             f"unreadable files: {bad}")
        warn_skipped(listing.skipped + failed)
        paths = [listing.paths[i] for i in kept]
        shapes = [sample.shapes[i] for i in kept]
        y = np.asarray(names, dtype=object)[target]
        counts = np.bincount(target, minlength=len(names))
        log("      " + ", ".join(f"{n}: {c}" for n, c in zip(names, counts)) + f" images ({len(y)} in all)")
        if len(names) < 2:
            raise ValueError(f"{folder!r} has one class ({names[0]!r}); a classifier needs at least two class folders")
        check_image_sizes(pipe, shapes, paths)
        undescribed = [(i, p, r) for i, p, r in sample.errors if sample.shapes[i] is not None]
        if undescribed:
            raise ValueError(f"{len(undescribed)} image(s) could not be described: "
                             + "; ".join(f"{p}: {r}" for _, p, r in undescribed[:5]))
        idx = np.arange(len(y))
        if test_size > 0:
            n_test = int(np.ceil(test_size * len(y)))
            if counts.min() < 2 or n_test < len(names):
                raise ValueError(
                    f"a held-out split of {test_size:g} needs at least 2 images per class and {len(names)} test "
                    f"images; the smallest class has {counts.min()}. Add images, or pass --test-size 0"
                )
            tr, te = train_test_split(idx, test_size=test_size, stratify=target, random_state=random_state)
        else:
            tr, te = idx, idx[:0]
        again = len(y) - sum(sample.whole[i] for i in kept)
        log(f"[2/3] fitting {model} on {len(tr)} images: "
            f"{'vocabulary' if MODELS[model].encoder == 'bow' else 'PCA and GMM'} on "
            f"{sum(len(sample.sets[kept[i]]) for i in tr)} sampled descriptors, then the feature vectors "
            f"of all {len(y)} images" + (f" ({again} described again{where})" if again else "") + ", then the SVM")
        t = time.perf_counter()
        fit_descriptor_stages(pipe, [sample.sets[kept[i]] for i in tr])  # in the order pipe.fit would see them
        whole = sample.whole_sets()
        held = [whole[i] for i in kept]  # images described whole are not described again
        del sample
        F, errors = image_features(pipe, paths, descriptors=held, max_side=cap, n_jobs=n_jobs, client=dask,
                                   verbose=verbose)
        if errors:
            raise ValueError(f"{len(errors)} image(s) could not be encoded (changed while training?): "
                             + "; ".join(f"{p}: {r}" for _, p, r in errors[:5]))
        fit_on_features(pipe, F[tr], y[tr].astype(str))
    fit_s = time.perf_counter() - t
    summary = {
        "model": model, "params": {k: repr(v) for k, v in (params or {}).items()}, "folder": os.path.abspath(folder),
        "class_names": list(names), "n_images": int(len(y)), "n_train": int(len(tr)), "n_test": int(len(te)),
        "test_size": test_size, "random_state": random_state, "max_side": cap,
        "skipped": [list(s) for s in listing.skipped + failed],
        "image_shapes": {"min": [int(min(sh[k] for sh in shapes)) for k in (0, 1)],
                         "max": [int(max(sh[k] for sh in shapes)) for k in (0, 1)]},
        "train_paths": [os.path.abspath(paths[i]) for i in tr],
        "test_paths": [os.path.abspath(paths[i]) for i in te],
        "seconds": {"fit": fit_s},
    }
    if len(te):
        log(f"[3/3] testing on {len(te)} held-out images")
        t = time.perf_counter()
        pred = pipe[pipeline_layout(pipe).encoder + 1:].predict(F[te])  # their features are computed already
        summary["seconds"]["predict_test"] = time.perf_counter() - t
        truth = y[te].astype(str)
        cm = confusion_matrix(truth, pred, labels=list(names))
        acc = float(np.mean(pred == truth))
        summary.update(test_accuracy=acc, confusion_matrix=cm.tolist())
        log(f"      held-out accuracy {acc:.3f} ({int(np.sum(pred == truth))} of {len(te)})")
        log("      " + format_confusion(cm, names).replace("\n", "\n      "))
    else:
        log("[3/3] no held-out split (test_size 0): no test figures")
    summary["seconds"]["total"] = time.perf_counter() - t0
    if out is not None:
        save_model(out, pipe, model=model, params=params, class_names=names, max_side=cap, training=summary)
        log(f"saved {out} ({os.path.getsize(out) / 1e6:.1f} MB) in {summary['seconds']['total']:.0f} s")
    return pipe, summary
