"""
Evaluate the heatmaps of a toy-polygon model
============================================

Do the heatmaps of the two-scale HIK model (thesis Sec. 2.4.3) point at what
the model uses?  This example measures them the ways ``bowlrp.evaluation``
offers: the context ratio mu per class (thesis eq. 4.11), pixel region
perturbation against a random order and against 9x9 occlusion (paper 003,
AOPC), descriptor replacement (thesis App. C.2), heatmap complexity (paper
003, Fig. 5) and SpRAy (thesis Ch. 6).  The figures are the PNG files that
``bowlrp.evaluation.plots`` writes (to ``example_out/evaluate_toy/``).

``python examples/evaluate_toy.py`` trains on 1200 tiles and takes about a
minute on 2 cores.  The documentation builds this page with
``BOWLRP_DOCS_FAST=1``: 300 training tiles, 4 tiles instead of 8 in the
perturbation tests and fewer steps and repetitions, so the numbers on this
page are noisier than a full run's.
"""

import os

import numpy as np

from bowlrp.apps.demo import toy_pipeline
from bowlrp.datasets import make_polygons
from bowlrp.evaluation import (
    DescriptorPool,
    SpRAy,
    context_ratio,
    context_ratio_per_class,
    descriptor_perturbation,
    heatmap_complexity,
    occlusion,
    region_perturbation,
)
from bowlrp.evaluation.plots import plot_context_ratio, plot_perturbation_curves, plot_spray

FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"
OUT = os.path.join("example_out", "evaluate_toy")
os.makedirs(OUT, exist_ok=True)

data = make_polygons(n_train=300 if FAST else 1200, n_test_images=1 if FAST else 2, random_state=0)
pipe = toy_pipeline(random_state=0).fit(data.images, data.labels)
X, y = np.asarray(data.test_images), np.asarray(data.test_labels)
print(f"test accuracy on {len(X)} tiles: {pipe.score(X, y):.3f}")

# %%
# Context ratio mu
# ----------------
# Every tile is explained for its own label, and mu compares the mean positive
# relevance outside the tile's objects with the mean inside (eq. 4.11).  The
# objects are the polygons for positive tiles and the round shapes for
# negative ones; tiles without such an object are left out.  mu below 1 means
# the model's evidence sits on the objects rather than their surroundings.

exp = pipe.explain(X, target=y)
objects = np.where((y > 0)[:, None, None], data.test_polygon_masks, data.test_round_masks)
has_object = objects.any(axis=(1, 2)) & ~objects.all(axis=(1, 2))
mu = context_ratio([exp.pixels[i] for i in np.flatnonzero(has_object)], masks=list(objects[has_object]))
per_class = context_ratio_per_class(mu, y[has_object])
print("context ratio mu per class (eq. 4.11):", per_class)
plot_context_ratio(per_class, os.path.join(OUT, "mu_per_class.png"))

# %%
# Pixel region perturbation
# -------------------------
# The most relevant 9x9 regions of a few polygon tiles are replaced by uniform
# noise first (MoRF), and the score ``f`` is followed.  Uniform noise adds
# edges and corners, so for this model even a random order *raises* the
# score: read the AOPC of a heatmap against the random order's, as the right
# panel does.

sel = np.flatnonzero(y > 0)[:4 if FAST else 8]
f = pipe.decision_function
e = pipe.explain(X[sel])
kw = dict(region_size=9, n_steps=15 if FAST else 30, n_repeats=1 if FAST else 2, random_state=0)
res = {
    "LRP": region_perturbation(f, X[sel], e, **kw),
    "occlusion 9x9": region_perturbation(f, X[sel], occlusion(f, X[sel], patch_size=9), **kw),
    "random": region_perturbation(f, X[sel], None, order="random", **kw),
}
for k, r in res.items():
    print(f"pixel AOPC {k:>14}: {r.aopc:.4f}")
plot_perturbation_curves(res, os.path.join(OUT, "pixel_perturbation.png"), relative_to="random")
# sphinx_gallery_thumbnail_number = 2

# %%
# Descriptor replacement
# ----------------------
# For Bag-of-Words models the sharper test perturbs what the model sees: the
# most relevant SIFT descriptors are replaced, five at a time, by descriptors
# drawn from training images of the same scale, and the encoding is updated
# incrementally (thesis App. C.2, eq. C.2).  ``flipped`` is the share of tiles
# whose decision changed by the last step.

pool = DescriptorPool(pipe[:1].transform(data.images[:100 if FAST else 300]), random_state=0)
dkw = dict(pool=pool, batch_size=5, n_steps=10, n_repeats=2 if FAST else 5, random_state=0)
dres = {"LRP": descriptor_perturbation(pipe, X[sel], e, **dkw),
        "random": descriptor_perturbation(pipe, X[sel], None, order="random", **dkw)}
for k, r in dres.items():
    print(f"descriptor AOPC {k:>8}: {r.aopc:.4f}, flipped {r.flip_share:.2f}")
plot_perturbation_curves(dres, os.path.join(OUT, "descriptor_perturbation.png"), relative_to="random")

# %%
# Complexity and SpRAy
# --------------------
# The PNG size and the entropy of a heatmap measure how much structure it
# has.  SpRAy pools the maps onto a coarse grid, joins them in a
# nearest-neighbour graph and reads the number of prediction strategies off
# the eigengap of its Laplacian; the t-SNE embedding is coloured by label.

c = heatmap_complexity(exp.pixels[:50])
print("PNG bytes (median) %.0f, entropy (median) %.2f bits" % (np.median(c["png_bytes"]), np.median(c["entropy"])))

sp = SpRAy(grid=(17, 17), random_state=0).fit(exp.pixels)
print("SpRAy eigenvalues", np.round(sp.eigenvalues_, 3), "-> eigengap says", sp.n_clusters_, "cluster(s)")
plot_spray(sp, os.path.join(OUT, "spray.png"), labels=y)
