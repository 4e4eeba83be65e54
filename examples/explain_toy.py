"""
Explain a Bag-of-Words kernel SVM, step by step
===============================================

Dense SIFT at two scales, one rank-mapped Bag-of-Words vocabulary per scale
and a histogram-intersection kernel SVM, trained on the toy polygons of
Lapuschkin's thesis (Sec. 2.4.3): a tile is positive when a regular polygon's
centre lies inside it, negative when it shows round shapes or background.
One forward and one backward pass give every pixel a relevance score; pixel
relevance plus the bias adds up to the SVM's output, exactly.

``python examples/explain_toy.py`` trains on 1200 tiles (about 30 s on 2
cores) and writes PNG files to ``example_out/explain_toy/``.  The
documentation builds this page with ``BOWLRP_DOCS_FAST=1``: 300 training
tiles, so the accuracy and the heatmaps shown here come from a smaller model
than a full run gives.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

import bowlrp
from bowlrp.datasets import make_polygons

FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"
OUT = os.path.join("example_out", "explain_toy")

# %%
# Data and model
# --------------
# ``make_polygons`` draws large grayscale images of polygons and round
# lp-shapes, cuts 102x102 training tiles from them, and cuts test tiles at a
# stride of 34 px from separate large test images (100 tiles per image).

data = make_polygons(n_train=300 if FAST else 1200, n_test_images=1, random_state=0)

pipe = bowlrp.ExplainablePipeline([
    ("sift", bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)),
    ("bow", bowlrp.BagOfWords(n_words=128, mapping="rank", random_state=0)),
    ("svm", bowlrp.KernelSVC(kernel="hik", blocks=(128, 128))),
]).fit(data.images, data.labels)
print(f"{len(data.images)} training tiles; test tile accuracy: "
      f"{pipe.score(data.test_images, data.test_labels):.3f}")

# %%
# One forward and one backward pass
# ---------------------------------
# ``explain`` walks the pipeline forward once and then backward through the
# SVM (eq. 2.70-2.72), the Bag-of-Words mapping (eq. 2.79-2.80) and the flat
# rule from descriptors to pixels (eq. 2.85).  On a binary model
# ``target=None`` explains ``f(x)`` itself: positive relevance speaks for
# ``classes_[1]``, the polygons.

exp = pipe.explain(data.test_images)
i = int(np.argmax(exp.score))  # the most confident polygon tile
print(f"tile {i}: f(x) = {exp.score[i]:.4f} = pixels {exp.pixels[i].sum():.4f} + bias {exp.bias[i]:.4f}"
      f" (residual {exp.residual[i]:.1e})")
print(f"  {len(exp.descriptors[i])} descriptors, {exp.features.shape[1]} Bag-of-Words features")

# %%
# Heatmaps
# --------
# Each tile's map is shown on its own symmetric colour scale (red for the
# polygon class, blue against).  The large test image's map averages the maps
# of the overlapping tiles that cover each pixel (``Explanation.merge``); the
# average is for display and does not conserve relevance.

merged = exp.merge(data.test_origins, data.test_big_images[0].shape)
panels = [
    ("test tile %d" % i, data.test_images[i], None),
    ("its pixel relevance", exp.pixels[i], "relevance"),
    ("large test image", data.test_big_images[0], None),
    ("merged tile heatmaps", merged, "mean relevance of the covering tiles"),
]
fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
for ax, (title, img, label) in zip(axes, panels):
    if label is None:
        im = ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        cbar = fig.colorbar(im, ax=ax, fraction=0.046)
        cbar.set_label("grey value")
    else:
        v = float(np.abs(img).max()) or 1.0
        im = ax.imshow(img, cmap="seismic", vmin=-v, vmax=v)
        cbar = fig.colorbar(im, ax=ax, fraction=0.046)
        cbar.set_label(label)
    ax.set_title(title)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
fig.tight_layout()

# %%
# The same heatmaps as PNG files
# ------------------------------
# ``Explanation.save_png`` writes a tile next to its heatmap with bowlrp's own
# colour map (the eq. 2.62 normalisation); ``bowlrp.viz`` composes larger
# figures.

os.makedirs(OUT, exist_ok=True)
exp.save_png(os.path.join(OUT, "tile.png"), i=i, image=data.test_images[i])
bowlrp.viz.save_png(os.path.join(OUT, "merged.png"), bowlrp.viz.side_by_side(
    bowlrp.viz.gray_rgb(data.test_big_images[0]), bowlrp.viz.heatmap_rgb(merged)))
print(f"wrote {OUT}/tile.png and {OUT}/merged.png")
