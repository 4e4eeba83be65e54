"""The real-photograph demo: scikit-image's brick, grass and gravel photographs, end to end.

``bowlrp demo textures --out DIR`` runs what a user runs on their own
folder, on photographs that ship inside scikit-image (no download):

1. the three 512 x 512 photographs are cut into tiles and written as an image
   folder ``DIR/photos/<texture>/`` in five file formats
   (:func:`bowlrp.datasets.write_texture_folder`);
2. ``bowlrp train``: a ready-made model (``bow-hik``) with a stratified
   held-out quarter, accuracy and confusion matrix -> ``DIR/model.joblib``;
3. ``bowlrp explain`` on the held-out tiles -> ``DIR/report/index.html``;
4. ``bowlrp evaluate`` on the folder (the training tiles are left out) ->
   ``DIR/evaluation/``;
5. ``DIR/textures.png``: the panel of the most confidently classified
   held-out tile of each class, one under the other;
6. ``DIR/mosaic.png``: a mosaic of held-out tiles of all three textures,
   explained once for each class, with the share of each class's positive
   relevance that falls on its own tiles; ``DIR/summary.json``.
"""

import json
import os
import time

import cv2
import numpy as np

from ..datasets.folder import read_image
from ..datasets.textures import write_texture_folder
from .evaluate import evaluate_folder
from .explain import explain_paths
from .modelfile import load_model
from .train import train_folder

__all__ = ["mosaic_figure", "run_textures_demo", "stack_panels"]

#: Which class each tile of the mosaic shows (indices into the class names), row by row.
MOSAIC = ((0, 1, 2), (2, 0, 1))


def stack_panels(paths, out):
    """Stack PNG panels vertically (white background, left aligned) into one PNG.

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     a, b = os.path.join(folder, "a.png"), os.path.join(folder, "b.png")
    ...     _ = cv2.imwrite(a, np.zeros((10, 30, 3), np.uint8)), cv2.imwrite(b, np.zeros((20, 50, 3), np.uint8))
    ...     stacked = cv2.imread(stack_panels([a, b], os.path.join(folder, "both.png")))
    >>> stacked.shape, stacked[5, 40].tolist(), stacked[15, 40].tolist()  # a is padded with white
    ((30, 50, 3), [255, 255, 255], [0, 0, 0])
    """
    imgs = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
    width = max(im.shape[1] for im in imgs)
    rows = [np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=255) for im in imgs]
    if not cv2.imwrite(out, np.concatenate(rows, axis=0)):
        raise OSError(f"could not write {out!r}")
    return out


def mosaic_figure(pipeline, paths, folder_classes, class_names, path, layout=MOSAIC):
    """Explain a mosaic of held-out tiles once per class; write the figure, return the figures measured.

    The tiles of ``layout`` (class indices, row by row) are the first
    unused ones of ``paths`` of each class.  For every class ``c`` the
    mosaic is explained for ``c`` (rule z), and the share of the positive
    relevance that falls on the tiles of class ``c`` is measured: the
    heatmap localises the class when that share is well above the tiles'
    share of the area.

    Examples
    --------
    Four noise and four blurred-noise tiles, a 2 x 2 mosaic of both:

    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> rng = np.random.default_rng(0)
    >>> images = (rng.random((8, 40, 40)) * 255).astype(np.uint8)
    >>> images[4:] = [cv2.blur(im, (5, 5)) for im in images[4:]]
    >>> names = ["noise"] * 4 + ["blurred"] * 4
    >>> pipe = toy_pipeline(n_words=4).fit(images, names)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = [os.path.join(folder, f"{i}.png") for i in range(8)]
    ...     _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    ...     found = mosaic_figure(pipe, paths, names, ["noise", "blurred"], os.path.join(folder, "mosaic.png"),
    ...                           layout=((0, 1), (1, 0)))
    ...     figure_shape = cv2.imread(os.path.join(folder, "mosaic.png")).shape
    >>> found["noise"]["area_of_own_tiles"], found["blurred"]["relative_residual"] < 1e-9, figure_shape
    (0.5, True, (392, 1096, 3))
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    from .report import _colormap, colour_scale  # noqa: PLC0415

    pools = {k: [p for p, c in zip(paths, folder_classes) if c == name] for k, name in enumerate(class_names)}
    rows, owner = [], []
    for layout_row in layout:
        tiles = [read_image(pools[k].pop(0), gray=True) for k in layout_row]
        rows.append(np.concatenate(tiles, axis=1))
        owner.append(np.concatenate([np.full(t.shape, k) for t, k in zip(tiles, layout_row)], axis=1))
    mosaic, owner = np.concatenate(rows, axis=0), np.concatenate(owner, axis=0)
    classes = [c.item() if hasattr(c, "item") else c for c in pipeline.classes_]
    maps, figures = [], {}
    for k, name in enumerate(class_names):
        exp = pipeline.explain([mosaic], target=classes[[str(c) for c in classes].index(name)])
        R = np.asarray(exp.pixels[0], dtype=np.float64)
        maps.append(R)
        pos = np.clip(R, 0, None)
        figures[name] = {
            "positive_relevance_on_own_tiles": float(pos[owner == k].sum() / max(pos.sum(), 1e-300)),
            "area_of_own_tiles": float(np.mean(owner == k)),
            "score": float(exp.score[0]),
            "relative_residual": float(abs(exp.residual[0]) / max(abs(exp.score[0]), 1e-300)),
        }
    S = max(float(np.abs(R).max()) for R in maps) or 1.0
    h, w = mosaic.shape
    n = 1 + len(maps)
    zoom = max(1.0, 320 / w)  # small tiles are drawn enlarged, without smoothing
    pw, ph, gap, top, bottom, right = w * zoom, h * zoom, 12, 64, 8, 80
    Wf, Hf = 8 + n * pw + (n - 1) * gap + 12 + 12 + right, top + ph + bottom
    fig = Figure(figsize=(Wf / 100, Hf / 100), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_axes([(8 + j * (pw + gap)) / Wf, bottom / Hf, pw / Wf, ph / Hf]) for j in range(n)]
    axes[0].imshow(mosaic, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("held-out tiles", fontsize=8)
    th, tw = h // len(layout), w // len(layout[0])
    for r, layout_row in enumerate(layout):
        for c, k in enumerate(layout_row):
            axes[0].text(c * tw + 3, r * th + 10, class_names[k], fontsize=7, color="yellow",
                         bbox=dict(facecolor="black", alpha=0.6, pad=1, lw=0))
    for j, (name, R) in enumerate(zip(class_names, maps), start=1):
        im = axes[j].imshow(R, cmap=_colormap(), vmin=-S, vmax=S, interpolation="nearest")
        share = figures[name]["positive_relevance_on_own_tiles"]
        axes[j].set_title(f"explained: {name!r}\n{share:.0%} of R+ on its tiles", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    cax = fig.add_axes([(8 + n * pw + (n - 1) * gap + 12) / Wf, bottom / Hf, 12 / Wf, ph / Hf])
    colour_scale(fig, im, cax, S, "pixel relevance\nred: for, blue: against")
    fig.text(0.5, 1 - 4 / Hf, "a mosaic of held-out tiles, explained once for each class (rule z, common scale)",
             ha="center", va="top", fontsize=9)
    fig.savefig(path, format="png")
    return figures


def run_textures_demo(out="bowlrp-textures", tile_size=64, model="bow-hik", params=None, evaluate=True,
                      n_jobs=None, random_state=0, log=print):
    """Run the demo into ``out``; returns the summary dict (also ``summary.json``).

    Examples
    --------
    The demo trains and evaluates for a minute or more; a bad tile size is
    refused before any work:

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     run_textures_demo(os.path.join(folder, "demo"), tile_size=4, log=lambda line: None)
    Traceback (most recent call last):
    ...
    ValueError: tile_size must be an integer >= 8 (pixels), got 4
    """
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    photos = os.path.join(out, "photos")
    log(f"writing the scikit-image texture photographs as {tile_size} x {tile_size} tiles to {photos}/")
    paths = write_texture_folder(photos, tile_size=tile_size)
    log(f"      {len(paths)} files (png, jpg, tif, bmp, webp)")
    seconds = {}
    t = time.perf_counter()
    model_file = os.path.join(out, "model.joblib")
    _, train_summary = train_folder(photos, model, model_file, params=params, random_state=random_state,
                                    n_jobs=n_jobs, log=log)
    seconds["train"] = time.perf_counter() - t
    pipeline, meta = load_model(model_file)
    test = train_summary["test_paths"]
    t = time.perf_counter()
    log(f"explaining the {len(test)} held-out tiles -> {os.path.join(out, 'report', 'index.html')}")
    rows = explain_paths(
        pipeline, test, os.path.join(out, "report"), max_side=meta["max_side"],
        folder_classes=[os.path.basename(os.path.dirname(p)) for p in test], n_jobs=n_jobs,
        title=f"bowlrp: {model} on the scikit-image textures (held-out tiles)",
        meta={"model": model, "data": f"scikit-image brick, grass, gravel; {tile_size} x {tile_size} tiles"},
    )
    seconds["explain"] = time.perf_counter() - t
    ok = [r for r in rows if not r.get("error")]
    rel = np.array([r["relative_residual"] for r in ok])
    best = []
    for name in meta["class_names"]:
        mine = [r for r in ok if r["predicted"] == name and r.get("folder_class") == name]
        if mine:
            best.append(max(mine, key=lambda r: r["score"]))
    figure = stack_panels([os.path.join(out, "report", r["panel"]) for r in best], os.path.join(out, "textures.png"))
    mosaic = mosaic_figure(pipeline, test, [os.path.basename(os.path.dirname(p)) for p in test],
                           meta["class_names"], os.path.join(out, "mosaic.png"))
    for name, v in mosaic.items():
        log(f"      mosaic explained for {name!r}: {v['positive_relevance_on_own_tiles']:.0%} of the positive "
            f"relevance on its tiles ({v['area_of_own_tiles']:.0%} of the area)")
    summary = {
        "model": model, "tile_size": tile_size, "n_tiles": len(paths),
        "n_train": train_summary["n_train"], "n_test": train_summary["n_test"],
        "test_accuracy": train_summary.get("test_accuracy"),
        "confusion_matrix": train_summary.get("confusion_matrix"), "class_names": meta["class_names"],
        "conservation": {"max_relative_residual": float(rel.max()), "median_relative_residual": float(np.median(rel))},
        "figure": figure, "mosaic": mosaic,
    }
    if evaluate:
        t = time.perf_counter()
        log("evaluating on the held-out tiles")
        ev = evaluate_folder(pipeline, meta, photos, os.path.join(out, "evaluation"), n_sample=24, n_jobs=n_jobs,
                             random_state=random_state, log=log)
        seconds["evaluate"] = time.perf_counter() - t
        summary["evaluation"] = {k: ev[k] for k in ("accuracy", "pixel_perturbation", "descriptor_perturbation")}
    seconds["total"] = time.perf_counter() - t0
    summary["seconds"] = seconds
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    log(f"held-out accuracy {summary['test_accuracy']:.3f}; max |residual| / |f(x)| {rel.max():.1e}; "
        f"gallery {os.path.join(out, 'report', 'index.html')}; {seconds['total']:.0f} s")
    return summary
