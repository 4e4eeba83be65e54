"""Evaluate LRP heatmaps of the toy-polygon HIK model (a small, quick run).

Pixel region perturbation (MoRF vs random order vs occlusion), descriptor
replacement, the context ratio mu per class, heatmap complexity and SpRAy,
with PNG figures in ``evaluate-toy/``.  About a minute on 2 cores.

    python examples/evaluate_toy.py
"""

import os

import numpy as np

from bowlrp.datasets import make_polygons
from bowlrp.apps.demo import toy_pipeline
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

out = "evaluate-toy"
os.makedirs(out, exist_ok=True)
data = make_polygons(n_train=1200, n_test_images=2, random_state=0)
pipe = toy_pipeline(random_state=0).fit(data.images, data.labels)
X, y = np.asarray(data.test_images), np.asarray(data.test_labels)
print("test accuracy", pipe.score(X, y))

# every tile explained for its own label; the object is the polygon (+1) or the round shape (-1)
exp = pipe.explain(X, target=y)
has_object = np.array([m.any() and not m.all() for m in np.where((y > 0)[:, None, None],
                                                                  data.test_polygon_masks, data.test_round_masks)])
masks = np.where((y > 0)[:, None, None], data.test_polygon_masks, data.test_round_masks)[has_object]
mu = context_ratio([exp.pixels[i] for i in np.flatnonzero(has_object)], masks=list(masks))
per_class = context_ratio_per_class(mu, y[has_object])
print("context ratio mu per class (eq. 4.11):", per_class)
plot_context_ratio(per_class, os.path.join(out, "mu_per_class.png"))

# perturbation on a few polygon tiles: f is explained as it is (positive = polygon)
sel = np.flatnonzero(y > 0)[:8]
f = pipe.decision_function
e = pipe.explain(X[sel])
kw = dict(region_size=9, n_steps=30, n_repeats=2, random_state=0, verbose=True)
res = {
    "LRP": region_perturbation(f, X[sel], e, **kw),
    "occlusion 9x9": region_perturbation(f, X[sel], occlusion(f, X[sel], patch_size=9), **kw),
    "random": region_perturbation(f, X[sel], None, order="random", **kw),
}
for k, r in res.items():
    print(f"pixel AOPC {k:>14}: {r.aopc:.4f}")
plot_perturbation_curves(res, os.path.join(out, "pixel_perturbation.png"), relative_to="random")

pool = DescriptorPool(pipe[:1].transform(data.images[:300]), random_state=0)
dkw = dict(pool=pool, batch_size=5, n_steps=10, n_repeats=5, random_state=0)
dres = {"LRP": descriptor_perturbation(pipe, X[sel], e, **dkw),
        "random": descriptor_perturbation(pipe, X[sel], None, order="random", **dkw)}
for k, r in dres.items():
    print(f"descriptor AOPC {k:>8}: {r.aopc:.4f}, flipped {r.flip_share:.2f}")
plot_perturbation_curves(dres, os.path.join(out, "descriptor_perturbation.png"), relative_to="random")

c = heatmap_complexity(exp.pixels[:50])
print("PNG bytes (median) %.0f, entropy (median) %.2f bits" % (np.median(c["png_bytes"]), np.median(c["entropy"])))

sp = SpRAy(grid=(17, 17), random_state=0).fit(exp.pixels)
print("SpRAy eigenvalues", np.round(sp.eigenvalues_, 3), "-> eigengap says", sp.n_clusters_, "cluster(s)")
plot_spray(sp, os.path.join(out, "spray.png"), labels=y)
