"""
Your own photographs: an image folder in, a model and a heatmap gallery out
===========================================================================

The steps ``bowlrp train``, ``bowlrp explain`` and ``bowlrp evaluate`` take,
written out with the Python API, on real photographs that ship inside
scikit-image (brick, grass and gravel, cut into 64 x 64 tiles and written as
an image folder in five formats).  Replace ``photos`` by your own folder
(one sub-folder per class) to run it on your images.

It also measures conservation on the photographs: with the exact
decompositions (histogram intersection, linear Fisher vectors) the pixel
relevance plus the bias equals the decision function for the rules z and
flat (eq. 2.79, 2.27).  On a Bag-of-Words model every mapping contribution
is positive, so alpha-beta with alpha = 1, beta = 0 conserves too, and
alpha = 2, beta = -1 (eq. 2.26) multiplies the relevance by alpha because the
beta term has nothing to act on; Fisher-vector messages have both signs, and
both alpha-beta rules lose or add relevance there (``--model fv-linear``).
Epsilon absorbs part of it (eq. 2.22).

Run: ``python examples/photo_workflow.py [--out DIR] [--model bow-hik]`` (about 3 minutes on
2 cores).  The documentation builds this page with ``BOWLRP_DOCS_FAST=1``: 128 x 128 tiles (48
instead of 192), so its accuracy comes from 36 training tiles, and the gallery is written for
three held-out tiles only.
"""

import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from bowlrp.apps.explain import explain_paths
from bowlrp.apps.models import make_model
from bowlrp.datasets import load_image_folder, write_texture_folder

FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"

ap = argparse.ArgumentParser(description="Your own photographs: an image folder in, a model and a "
                             "heatmap gallery out.")
ap.add_argument("--out", default=os.path.join("example_out", "photo_workflow"), help="output folder")
ap.add_argument("--model", default="bow-hik", help="ready-made model (bow-hik, fv-linear, ...)")
args = ap.parse_args()

# %%
# An image folder and a model
# ---------------------------
# ``write_texture_folder`` writes ``photos/<class>/*.png|jpg|tif|bmp|webp``;
# ``load_image_folder`` reads any such folder (one sub-folder per class) and
# says which files it skipped.  ``make_model`` builds the ready-made models
# the ``bowlrp train --model`` option names.

photos = os.path.join(args.out, "_photos")  # your folder: photos/<class>/*.jpg|png|tif|bmp|webp
write_texture_folder(photos, tile_size=128 if FAST else 64)
data = load_image_folder(photos, gray=True)  # .images, .target, .target_names, .paths, .skipped
y = np.asarray(data.target_names)[data.target]
train, test = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=0)

pipe = make_model(args.model)  # e.g. make_model("bow-hik", {"bow__n_words": 256})
t = time.perf_counter()
pipe.fit([data.images[i] for i in train], y[train])
print(f"{args.model}: fitted on {len(train)} tiles in {time.perf_counter() - t:.1f} s")
X_test = [data.images[i] for i in test]
print(f"held-out accuracy {pipe.score(X_test, y[test]):.3f} on {len(test)} tiles")

# %%
# Conservation of each rule on the held-out photographs
# -----------------------------------------------------
# ``explain`` explains each tile's predicted class; ``Explanation.residual``
# is the decision function minus the pixel relevance and the bias.

RULES = [("z", {}), ("flat", {}), ("alphabeta", {"alpha": 1.0, "beta": 0.0}),
         ("alphabeta", {"alpha": 2.0, "beta": -1.0}), ("epsilon", {"epsilon": 0.01})]
labels, worst = [], []
for rule, params in RULES:
    exp = pipe.explain(X_test, rule=rule, **params)
    rel = np.abs(exp.residual) / np.abs(exp.score)
    labels.append(rule + "".join(f"\n{k}={v:g}" for k, v in params.items()))
    worst.append(max(float(rel.max()), 1e-17))  # a zero residual still gets a bar on the log scale
    print(f"rule {rule:9s} {str(params):30s} max |f - sum R_p - bias| / |f| = {rel.max():.1e}")

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.bar(range(len(worst)), worst, color="tab:blue")
ax.set_yscale("log")
ax.set_xticks(range(len(worst)), labels)
ax.set_xlabel("rule")
ax.set_ylabel("max |f - sum R_p - bias| / |f|")
ax.set_title(f"{args.model}: conservation on {len(test)} held-out photograph tiles")
fig.tight_layout()

# %%
# The gallery
# -----------
# ``explain_paths`` (what ``bowlrp explain`` runs) writes one panel per image
# (image, heatmap, overlay), ``index.html``, ``summary.csv`` and
# ``pixel_maps.npz``; a rerun skips the images already done.  The page shows
# the PNG files it wrote: ``heatmaps/<id>.png`` at the size the image was
# explained, ``panels/<id>.png`` titled, with a colour scale.

paths = [data.paths[i] for i in test]
classes = list(y[test])
if FAST:
    paths, classes = paths[:3], classes[:3]
report = os.path.join(args.out, "report")
rows = explain_paths(pipe, paths, report, folder_classes=classes,
                     title=f"{args.model} on the scikit-image textures")
print(f"gallery of {len(rows)} tiles: {os.path.join(report, 'index.html')}")

