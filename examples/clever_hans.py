"""
Find the Clever Hans: a planted watermark, seen in heatmaps and found by SpRAy
==============================================================================

The Fisher-vector model of Lapuschkin's thesis recognised horses by a
copyright tag in the corner of the photographs (Ch. 4), and SpRAy (Ch. 6)
found that strategy by clustering the explanations of the horse class.  Here
we plant such a mark (a white label with black bars, bottom-left) in half of
one class's training images, train a model, and ask three questions:

1. does the model depend on the mark? (a mark on the *other* class flips its
   decisions);
2. do the heatmaps show it? (the share of the positive relevance on the mark,
   against the mark's share of the area);
3. does SpRAy find it without being told? (its clusters of the class's
   explanations against the marked / unmarked truth: adjusted Rand index),
   and does it keep quiet for a model trained without the mark?

On photographs (scikit-image's gravel photograph, cut into two classes that
look alike) and on the toy polygons all three answers are yes.  ``python examples/clever_hans.py``
writes ``example_out/clever_hans/``; the documentation builds this page with
``BOWLRP_DOCS_FAST=1`` (the same photographs, the toy study left out).  The
full story, toy polygons included, is ``bowlrp demo clever-hans``.
"""

import os

import numpy as np
from threadpoolctl import threadpool_limits

from bowlrp.apps.clever_hans import photo_tiles, plot_overview, run_study
from bowlrp.apps.demo import toy_pipeline
from bowlrp.apps.models import make_model
from bowlrp.datasets import make_polygons

FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"
OUT = os.path.join("example_out", "clever_hans")
os.makedirs(OUT, exist_ok=True)
threadpool_limits(limits=1)  # threaded k-means is slow on a busy machine; these models are small

# %%
# Photographs: two classes that look alike, the mark in half of class A
# ---------------------------------------------------------------------
# Training tiles (64 x 64) come from the top half of the photograph, test
# tiles from the bottom half; alternate tiles go to class A and class B.  The
# mark is planted in half of class A's training *and* test tiles.

X_train, y_train, X_test, y_test = photo_tiles(("gravel", "gravel"))
rng = np.random.default_rng(0)
marked_train = (y_train == 0) & (rng.uniform(size=len(y_train)) < 0.5)
marked_test = (y_test == 0) & (rng.uniform(size=len(y_test)) < 0.5)


def fisher_model():
    return make_model("fv-linear", {"fv__n_components": 4, "fv__pca": 16}, random_state=0)


results = {}
for name, train_marks in (("photos", marked_train), ("photos-clean", np.zeros_like(marked_train))):
    r = run_study(X_train, y_train, X_test, y_test, 0, train_marks, marked_test, fisher_model)
    results[name] = r
    s = r["spray"]
    print(f"{name}: test accuracy {r['accuracy_clean_test']:.2f}; class B called A: "
          f"{r['other_class_called_marked_class']['clean']:.0%} clean, "
          f"{r['other_class_called_marked_class']['with_mark']:.0%} with the mark")
    print(f"  positive relevance on the mark {r['positive_relevance_on_mark']['marked']:.2f} "
          f"(mark area {r['mark_area']:.2f}); SpRAy: eigengap {s['eigengap']:.3f} -> {s['n_clusters']} "
          f"cluster(s) {s['cluster_sizes']}, marked per cluster {s['marked_per_cluster']}, ARI {s['ari']:.2f}")

# %%
# Toy polygons
# ------------
# The same on the thesis' toy task, the mark in half of the polygon tiles
# (a smaller model when the documentation is built).

if not FAST:
    d = make_polygons(n_train=600, n_test_images=2, lp_range=(3.0, 5.0), random_state=0)
    rng = np.random.default_rng(0)
    mtr = (d.labels == 1) & (rng.uniform(size=len(d.labels)) < 0.5)
    mte = (d.test_labels == 1) & (rng.uniform(size=len(d.test_labels)) < 0.5)
    r = run_study(d.images, d.labels, d.test_images, d.test_labels, 1, mtr, mte,
                  lambda: toy_pipeline(n_words=64, random_state=0),
                  extra_spray={"normalize": "l2"})
    results["toy"] = r
    print(f"toy: share of R+ on the mark {r['positive_relevance_on_mark']['marked']:.2f} "
          f"(area {r['mark_area']:.3f}); SpRAy ARI {r['spray']['ari']:.2f} (defaults), "
          f"{r['spray_normalised']['ari']:.2f} (each map scaled to unit L2 norm first)")

# %%
# The picture
# -----------
# One row per model: a marked test image, its heatmap, the mean heatmap of
# each SpRAy cluster (each map scaled to max abs(R) = 1 first), and the spectrum
# of the normalised Laplacian with the eigengap marked.

path = plot_overview(results, os.path.join(OUT, "clever_hans.png"))
print("wrote", path)
