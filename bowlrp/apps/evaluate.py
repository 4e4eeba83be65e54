"""Evaluate a trained model on an image folder: accuracy, and how faithful its explanations are.

* held-out accuracy and the confusion matrix;
* pixel region perturbation (paper 003, eq. 11-12; thesis Sec. 3.4.1) on a
  class-balanced sample: AOPC of the LRP heatmaps against occlusion
  heatmaps and a random order, most relevant regions first;
* descriptor replacement (thesis App. C.2): AOPC when the most relevant
  local descriptors are replaced by substitutes (drawn from other images'
  descriptors for Bag-of-Words models, from the GMM for Fisher vectors),
  against a random order;
* the conservation residual of the explanations;
* ``evaluation.json`` with every figure, and PNG plots.
"""

import json
import os
import time

import numpy as np
from sklearn.metrics import confusion_matrix

from ..datasets.folder import list_image_folder, read_images, warn_skipped
from ..encoders import FisherVectorEncoder
from ..evaluation import (
    DescriptorPool,
    GMMSampler,
    PerturbationResult,
    descriptor_perturbation,
    occlusion,
    region_perturbation,
)
from ..evaluation import plots
from .explain import check_output_folder
from .train import check_image_sizes, format_confusion

__all__ = ["evaluate_folder"]


def _labels(pipeline):
    return [c.item() if isinstance(c, np.generic) else c for c in pipeline.classes_]


def _score_columns(pipeline):
    """``X -> (n, n_classes)`` decision values, one column per class (binary: ``[-f, f]``)."""
    def scores(X):
        f = np.asarray(pipeline.decision_function(X), dtype=np.float64)
        return np.stack([-f.ravel(), f.ravel()], axis=1) if f.ndim == 1 or f.shape[1] == 1 else f
    return scores


def _explained_descriptor_curves(pipeline, X, relevance, col, n_classes, **kw):
    """Descriptor replacement following the explained score of each image.

    A binary model has one decision function ``f``; an image explained for
    ``classes_[0]`` explains ``-f``, so its curve is negated (AOPC is linear
    in the score, eq. 12).
    """
    if n_classes > 2:
        return descriptor_perturbation(pipeline, X, relevance, target=col, **kw)
    res = descriptor_perturbation(pipeline, X, relevance, **kw)
    sign = np.where(np.asarray(col) == 1, 1.0, -1.0)[:, None, None]
    return PerturbationResult(curves=res.curves * sign, order=res.order, flipped=res.flipped, params=res.params)


def _predict_batched(pipeline, images, batch=32):
    return np.concatenate([np.asarray(pipeline.predict(images[a : a + batch])) for a in range(0, len(images), batch)])


def _balanced_sample(target, n, rng):
    """Up to ``n`` indices, as equal as possible across the classes present."""
    by_class = [rng.permutation(np.flatnonzero(target == k)) for k in np.unique(target)]
    picked, k = [], 0
    while len(picked) < min(n, len(target)):
        for idx in by_class:
            if k < len(idx) and len(picked) < n:
                picked.append(idx[k])
        k += 1
    return np.sort(np.asarray(picked, dtype=np.intp))


def _stats(result):
    per = np.asarray(result.aopc_per_input, dtype=np.float64)
    se = float(per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float("nan")
    return {"aopc": float(per.mean()), "se": se, "flip_share": float(result.flip_share), "n": int(len(per))}


def evaluate_folder(pipeline, meta, folder, out, *, n_sample=12, region_size=None, n_steps=16, n_repeats=2,
                    replacement="uniform", include_train=False, max_side="model", n_jobs=None, random_state=0,
                    log=print, verbose=True):
    """Evaluate ``pipeline`` on ``folder/<class>/*`` and write ``evaluation.json`` and plots to ``out``.

    Parameters
    ----------
    pipeline : fitted ExplainablePipeline
    meta : dict
        The model file's metadata (:func:`bowlrp.apps.modelfile.load_model`):
        class names, image cap, the paths it was trained on.
    folder : str
        Image folder whose class folders are classes of the model.
    out : str
        Output folder.
    n_sample : int, default=12
        Images (balanced over classes) for the perturbation tests.
    region_size : int or None
        Side of the perturbed square regions; ``None``: an eighth of the
        smallest sample image's shorter side (at least 4), so that every
        image has about 64 regions.
    n_steps : int, default=16
        Perturbation steps ``L`` (eq. 11-12): regions replaced one after the
        other, and the number of descriptor batches replaced (at most all).
        The pixel test costs ``n_sample * (n_steps + 1) * (2 + n_repeats)``
        predictions, occlusion ``n_sample`` times the number of regions.
    n_repeats : int, default=2
        Repetitions of the random orders and of the replacement noise.
    replacement : {"uniform", "blur", "mean"}
        What replaces a region (paper 003: uniform noise).
    include_train : bool, default=False
        Keep images the model was trained on (by default they are left out
        and the count is reported, so the figures are held-out figures).
    max_side : int, None or "model"
        Cap on the longer side; ``"model"`` reads images as in training.
    n_jobs : int or None
    random_state : int

    Returns
    -------
    dict : the figures written to ``evaluation.json``.

    Examples
    --------
    A full run explains, perturbs and plots (a few seconds on small
    images); before any image is read, the folder's classes are checked
    against the model's:

    >>> import os, tempfile, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, ["cat", "dog"] * 3)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     for name in ("cat", "horse"):
    ...         os.makedirs(os.path.join(root, "photos", name))
    ...         open(os.path.join(root, "photos", name, "1.png"), "w").close()
    ...     evaluate_folder(pipe, {}, os.path.join(root, "photos"), os.path.join(root, "eval"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: class folder(s) ['horse'] of '...photos' are not classes of the model; its classes are ['cat', 'dog'] (evaluate needs images in folders named after the model's classes)
    """
    t0 = time.perf_counter()
    out = check_output_folder(out)
    rng = np.random.default_rng(random_state)
    classes = _labels(pipeline)
    listing = list_image_folder(folder)
    unknown = [c for c in listing.target_names if c not in [str(k) for k in classes]]
    if unknown:
        raise ValueError(
            f"class folder(s) {unknown} of {folder!r} are not classes of the model; its classes are "
            f"{[str(c) for c in classes]} (evaluate needs images in folders named after the model's classes)"
        )
    paths = list(listing.paths)
    truth = np.asarray(listing.target_names, dtype=object)[listing.target]
    trained = set(meta.get("training", {}).get("train_paths", []))
    n_excluded = 0
    if trained and not include_train:
        keep = np.array([os.path.abspath(p) not in trained for p in paths], dtype=bool)
        n_excluded = int((~keep).sum())
        if not keep.any():
            raise ValueError(
                f"every image in {folder!r} was used to train the model; evaluate it on other images, "
                "or pass --include-train to evaluate on the training images anyway"
            )
        paths = [p for p, k in zip(paths, keep) if k]
        truth = truth[keep]
        if n_excluded:
            log(f"      left out {n_excluded} image(s) the model was trained on (--include-train keeps them)")
    cap = meta.get("max_side") if max_side == "model" else max_side
    log(f"[1/5] reading {len(paths)} images from {folder}")
    images, kept, failed = read_images(paths, max_side=cap, gray=True, n_jobs=n_jobs, verbose=verbose)
    warn_skipped(listing.skipped + failed)
    if not images:
        raise ValueError(f"no readable image in {folder!r}")
    paths = [paths[i] for i in kept]
    truth = truth[kept].astype(str)
    check_image_sizes(pipeline, images, paths)

    log(f"[2/5] predicting {len(images)} images")
    t = time.perf_counter()
    pred = _predict_batched(pipeline, images).astype(str)
    predict_s = time.perf_counter() - t
    names = [str(c) for c in classes]
    cm = confusion_matrix(truth, pred, labels=names)
    acc = float(np.mean(pred == truth))
    log(f"      accuracy {acc:.3f} ({int(np.sum(pred == truth))} of {len(pred)})")
    log("      " + format_confusion(cm, names).replace("\n", "\n      "))

    sample = _balanced_sample(np.array([names.index(t) for t in truth]), n_sample, rng)
    Xs = [images[i] for i in sample]
    col = np.array([names.index(p) for p in pred[sample]])
    log(f"[3/5] explaining {len(Xs)} sample images (their predicted class)")
    t = time.perf_counter()
    exp = pipeline.explain(Xs, target=[classes[c] for c in col])
    explain_s = time.perf_counter() - t
    rel = np.abs(exp.residual) / np.maximum(np.abs(exp.score), 1e-300)
    scores = _score_columns(pipeline)
    m = region_size or max(4, min(min(x.shape[:2]) for x in Xs) // 8)
    n_cells = min(-(-x.shape[0] // m) * -(-x.shape[1] // m) for x in Xs)
    L = min(n_steps, n_cells)
    seed = int(rng.integers(2**31))
    kw = dict(region_size=m, n_steps=L, target=col, replacement=replacement, n_jobs=n_jobs,
              random_state=seed, verbose=verbose)
    log(f"[4/5] pixel perturbation: the first {L} of {n_cells} regions of {m} x {m} px, "
        "LRP against occlusion and random order")
    t = time.perf_counter()
    occ = occlusion(scores, Xs, patch_size=m, target=col, n_jobs=n_jobs, verbose=verbose)
    occlusion_s = time.perf_counter() - t
    pixel = {
        "LRP": region_perturbation(scores, Xs, exp.pixels, **kw),
        f"occlusion {m}x{m}": region_perturbation(scores, Xs, occ, **kw),
        "random": region_perturbation(scores, Xs, None, order="random", n_repeats=n_repeats, **kw),
    }
    log("[5/5] descriptor replacement (App. C.2)")
    encoder = pipeline.steps[1][1]
    if isinstance(encoder, FisherVectorEncoder):
        pool, pool_what = GMMSampler(pipeline), "draws from the model's GMM"
    else:
        rest = np.setdiff1d(np.arange(len(images)), sample)
        src = rest if len(rest) >= 4 else np.arange(len(images))
        src = rng.permutation(src)[:200]
        pool = DescriptorPool(pipeline[:1].transform([images[i] for i in src]), random_state=seed)
        pool_what = f"descriptors of {len(src)} other evaluated images" if len(rest) >= 4 else \
            f"descriptors of {len(src)} evaluated images (too few others)"
    n_desc = min(len(d) for d in pipeline[:1].transform(Xs))
    batch = max(1, n_desc // (4 * n_steps))  # the first quarter of the descriptors in n_steps batches
    D = min(n_steps, n_desc // batch)
    dkw = dict(pool=pool, batch_size=batch, n_steps=D, n_repeats=n_repeats,
               n_jobs=n_jobs, random_state=seed, verbose=verbose)
    desc = {
        "LRP": _explained_descriptor_curves(pipeline, Xs, exp.descriptors, col, len(classes), **dkw),
        "random": _explained_descriptor_curves(pipeline, Xs, None, col, len(classes), order="random", **dkw),
    }
    files = {
        "pixel_perturbation": plots.plot_perturbation_curves(
            pixel, os.path.join(out, "pixel_perturbation.png"), relative_to="random",
            title=f"pixel regions {m}x{m} replaced ({replacement}), most relevant first"),
        "descriptor_perturbation": plots.plot_perturbation_curves(
            desc, os.path.join(out, "descriptor_perturbation.png"), relative_to="random",
            title=f"{batch} descriptors replaced per step, most relevant first"),
        "confusion_matrix": _plot_confusion(cm, names, os.path.join(out, "confusion_matrix.png"), acc),
    }
    summary = {
        "model": meta.get("model"), "folder": os.path.abspath(folder), "n_images": len(images),
        "n_left_out_training_images": n_excluded, "skipped": [list(s) for s in listing.skipped + failed],
        "accuracy": acc, "class_names": names, "confusion_matrix": cm.tolist(),
        "sample": {"n": len(Xs), "paths": [paths[i] for i in sample]},
        "conservation": {"max_relative_residual": float(rel.max()), "median_relative_residual": float(np.median(rel)),
                         "rule": exp.rule},
        "pixel_perturbation": {"region_size": m, "n_steps": L, "n_regions": n_cells, "replacement": replacement,
                               "n_repeats_random": n_repeats, **{k: _stats(v) for k, v in pixel.items()}},
        "descriptor_perturbation": {"batch_size": batch, "n_steps": D, "n_descriptors_min": n_desc,
                                    "substitutes": pool_what,
                                    "n_repeats": n_repeats, **{k: _stats(v) for k, v in desc.items()}},
        "seconds": {"predict": predict_s, "explain_sample": explain_s, "occlusion_sample": occlusion_s,
                    "total": time.perf_counter() - t0},
        "files": {k: os.path.basename(v) for k, v in files.items()},
    }
    with open(os.path.join(out, "evaluation.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    for what, res in (("pixel", pixel), ("descriptor", desc)):
        for k, v in res.items():
            s = _stats(v)
            log(f"      {what} AOPC {k:>16}: {s['aopc']:.4g} +- {s['se']:.2g}")
    log(f"      conservation: max |residual| / |f(x)| {rel.max():.1e}")
    return summary


def _plot_confusion(cm, names, path, acc):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    n = len(names)
    fig = Figure(figsize=(1.2 + 0.7 * n, 1.0 + 0.6 * n), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (folder)")
    ax.set_title(f"confusion matrix, accuracy {acc:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, label="images")
    fig.savefig(path, format="png")
    return path
