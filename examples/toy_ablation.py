"""Which choices matter on the toy-polygon task (docs/toy_polygons.md)?

Trains the two-scale HIK pipeline of thesis Sec. 2.4.3 under variations of the
data and the descriptor and prints the tile accuracy of each, all on the same
test images.  Takes a few minutes on 2 cores.

Run: python examples/toy_ablation.py
"""

import time

import bowlrp
from bowlrp.datasets import make_polygons
from bowlrp.apps.demo import toy_pipeline

OLD_SHAPES = dict(shape_radius=(11.0, 17.0), lp_range=(2.0, 3.5))
VARIANTS = [
    ("small shapes, squarish round shapes; upright SIFT", 1200, OLD_SHAPES, False),
    ("small shapes, squarish round shapes; rotated SIFT", 1200, OLD_SHAPES, True),
    ("  ... with 2400 training tiles", 2400, OLD_SHAPES, True),
    ("small shapes, round shapes p in [2, 2.6]; rotated", 1200, dict(shape_radius=(11.0, 17.0)), True),
    ("defaults (r 14-21, p 2-2.6); upright SIFT", 1200, {}, False),
    ("defaults; rotated SIFT", 1200, {}, True),
    ("defaults; rotated SIFT, 2000 tiles (the demo)", 2000, {}, True),
]


def main():
    print(f"{'variant':52s} {'accuracy':>8s} {'seconds':>8s}")
    for name, n_train, data_kw, rotate in VARIANTS:
        t = time.perf_counter()
        data = make_polygons(n_train=n_train, n_test_images=4, random_state=0, **data_kw)
        pipe = toy_pipeline(random_state=0)
        pipe.set_params(sift=bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=rotate))
        pipe.fit(data.images, data.labels)
        acc = pipe.score(data.test_images, data.test_labels)
        print(f"{name:52s} {acc:8.3f} {time.perf_counter() - t:8.1f}", flush=True)


if __name__ == "__main__":
    main()
