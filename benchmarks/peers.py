"""Our LRP explain() against occlusion, SHAP and LIME on a toy-polygon pipeline (HIK or Fisher vectors).

Measures in one run, on the same test tiles (polygon tiles, label +1):

* time per tile of each heatmap method, and its ratio to explain();
* pixel AOPC (paper 003, eq. 12; 9 x 9 regions, uniform noise, MoRF) and the
  random-order baseline on the same tiles;
* descriptor-replacement AOPC and flip share (thesis App. C.2) for the
  descriptor rankings of LRP, occlusion (mean of the map over each
  descriptor's box) and random order.

``--model hik`` (default) is the two-scale HIK Bag-of-Words toy model;
``--model fv`` the scaled-down Fisher-vector model of
``pipelines/fisher_vector.py`` (SIFT scales 2 and 3, steps 6 and 9, rotated;
GMM of ``--n-components`` components on a PCA to 32 dimensions, no pyramid,
linear SVM), explained with the epsilon rule (epsilon = 1), whose descriptor
substitutes are drawn from the model's GMM (thesis App. C.2).

SHAP's KernelExplainer and LIME's image explainer run only when importable
(``pip install shap lime``; bowlrp itself never imports them), each with 1000
samples on a grid of superpixels.

    python benchmarks/peers.py --n-train 1200 --n-tiles 8
    python benchmarks/peers.py --model fv --n-train 800 --n-tiles 8 --no-peers
"""

import argparse
import time

import numpy as np

from bowlrp import DenseSIFT, ExplainablePipeline, KernelSVC
from bowlrp.datasets import make_polygons
from bowlrp.apps.demo import toy_pipeline
from bowlrp.encoders.fisher import FisherVectorEncoder
from bowlrp.evaluation import DescriptorPool, GMMSampler, descriptor_perturbation, occlusion, region_perturbation


def grid_segments(shape, cells):
    """Label image of a ``cells x cells`` grid of superpixels."""
    H, W = shape
    r = np.minimum(np.arange(H) * cells // H, cells - 1)
    c = np.minimum(np.arange(W) * cells // W, cells - 1)
    return r[:, None] * cells + c[None, :]


def masked(image, segments, z, fill):
    """Images with the superpixels where ``z == 0`` set to ``fill``, one per row of ``z``."""
    out = np.repeat(image[None], len(z), axis=0)
    for i, zi in enumerate(z):
        off = np.isin(segments, np.flatnonzero(zi == 0))
        out[i][off] = fill
    return out


def spread(values, segments):
    """A pixel map spreading each superpixel's value evenly over its pixels."""
    area = np.bincount(segments.ravel())
    return (np.asarray(values) / area)[segments]


def shap_maps(f, images, cells, nsamples, seed):
    import shap  # noqa: PLC0415  (optional peer)

    maps = []
    for img in images:
        seg = grid_segments(img.shape, cells)
        fill = np.uint8(np.rint(img.mean()))
        g = lambda z, img=img, seg=seg, fill=fill: f(list(masked(img, seg, z, fill)))  # noqa: E731
        ex = shap.KernelExplainer(g, np.zeros((1, cells * cells)), seed=seed)
        sv = ex.shap_values(np.ones((1, cells * cells)), nsamples=nsamples, silent=True)
        maps.append(spread(np.asarray(sv).reshape(-1), seg))
    return maps


def lime_maps(f, images, cells, nsamples, seed):
    from lime import lime_image  # noqa: PLC0415  (optional peer)

    maps = []
    for img in images:
        seg = grid_segments(img.shape, cells)
        fill = int(np.rint(img.mean()))

        def proba(batch):
            s = f([b[..., 0].astype(np.uint8) for b in batch])
            p = 1.0 / (1.0 + np.exp(-s))
            return np.stack([1 - p, p], axis=1)

        ex = lime_image.LimeImageExplainer(random_state=seed)
        e = ex.explain_instance(
            np.repeat(img[..., None], 3, axis=2), proba, labels=(1,), top_labels=None, hide_color=fill,
            num_samples=nsamples, batch_size=200, segmentation_fn=lambda x, seg=seg: seg,
        )
        w = np.zeros(cells * cells)
        for k, v in e.local_exp[1]:
            w[k] = v
        maps.append(spread(w, seg))
    return maps


def descriptor_relevance_from_map(sets, maps):
    """Rank descriptors by the mean of a pixel map over their boxes (for pixel-only methods)."""
    out = []
    for s, h in zip(sets, maps):
        out.append(np.array([h[r0:r1, c0:c1].mean() for r0, c0, r1, c1 in s.boxes]))
    return out


def fv_pipeline(n_components=16, pca=32, random_state=0):
    """The Fisher-vector model of ``pipelines/fisher_vector.py`` scaled down for toy polygons."""
    return ExplainablePipeline([
        ("sift", DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)),
        ("fv", FisherVectorEncoder(n_components=n_components, pca=pca, pyramid=((1, 1),),
                                   random_state=random_state)),
        ("svm", KernelSVC(kernel="linear", C=1.0)),
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("hik", "fv"), default="hik", help="HIK Bag-of-Words or Fisher vectors")
    ap.add_argument("--n-components", type=int, default=16, help="GMM components (--model fv)")
    ap.add_argument("--n-train", type=int, default=1200)
    ap.add_argument("--n-test-images", type=int, default=2)
    ap.add_argument("--n-tiles", type=int, default=8, help="polygon test tiles explained by every method")
    ap.add_argument("--region", type=int, default=9, help="region / occlusion patch size")
    ap.add_argument("--steps", type=int, default=30, help="pixel perturbation steps L")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1000, help="SHAP / LIME samples")
    ap.add_argument("--cells", type=int, default=6, help="superpixel grid for SHAP / LIME (cells x cells)")
    ap.add_argument("--no-peers", action="store_true", help="skip SHAP and LIME")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    data = make_polygons(n_train=args.n_train, n_test_images=args.n_test_images, random_state=args.seed)
    if args.model == "fv":
        pipe = fv_pipeline(n_components=args.n_components, random_state=args.seed)
        explain_kw = dict(rule="epsilon", epsilon=1.0)
    else:
        pipe = toy_pipeline(random_state=args.seed)
        explain_kw = {}
    pipe.fit(data.images, data.labels)
    f = pipe.decision_function
    acc = pipe.score(data.test_images, data.test_labels)
    rng = np.random.default_rng(args.seed)
    pos = np.flatnonzero(np.asarray(data.test_labels) > 0)
    tiles = np.sort(rng.choice(pos, size=min(args.n_tiles, len(pos)), replace=False))
    X = np.asarray(data.test_images)[tiles]
    n = len(X)
    print(f"model: {args.model}, n_train={args.n_train}, test accuracy {acc:.3f} on {len(data.test_images)} tiles; "
          f"{n} polygon tiles evaluated (fit+setup {time.perf_counter() - t0:.0f} s)")

    timings, maps = {}, {}
    t = time.perf_counter()
    f(X)
    timings["predict()"] = (time.perf_counter() - t) / n
    t = time.perf_counter()
    exp = pipe.explain(X, **explain_kw)
    timings["LRP explain()"] = (time.perf_counter() - t) / n
    maps["LRP explain()"] = exp.pixels
    t = time.perf_counter()
    maps[f"occlusion {args.region}x{args.region}"] = occlusion(f, X, patch_size=args.region)
    timings[f"occlusion {args.region}x{args.region}"] = (time.perf_counter() - t) / n
    if not args.no_peers:
        for name, fn in (("SHAP Kernel", shap_maps), ("LIME", lime_maps)):
            try:
                t = time.perf_counter()
                maps[name] = fn(f, X, args.cells, args.samples, args.seed)
                timings[name] = (time.perf_counter() - t) / n
            except ImportError as e:
                print(f"{name}: skipped ({e})")

    kw = dict(region_size=args.region, n_steps=args.steps, n_repeats=args.repeats, random_state=args.seed)
    pix = {name: region_perturbation(f, X, m, **kw) for name, m in maps.items()}
    pix["random order"] = region_perturbation(f, X, None, order="random", **kw)

    sets = pipe[:1].transform(X)
    if args.model == "fv":
        pool = GMMSampler(pipe)  # substitutes from the model's GMM (App. C.2)
    else:
        pool = DescriptorPool(pipe[:1].transform(data.images[:300]), random_state=args.seed)
    n_desc = min(len(s) for s in sets)
    dkw = dict(pool=pool, batch_size=max(1, n_desc // 50), n_steps=10, n_repeats=5, random_state=args.seed)
    desc = {"LRP explain()": descriptor_perturbation(pipe, X, exp, **dkw)}
    for name, m in maps.items():
        if name != "LRP explain()":
            desc[name] = descriptor_perturbation(pipe, X, descriptor_relevance_from_map(sets, m), **dkw)
    desc["random order"] = descriptor_perturbation(pipe, X, None, order="random", **dkw)

    base = timings["LRP explain()"]
    r_pix = pix["random order"].aopc
    r_desc = desc["random order"].aopc
    print(f"\npixel perturbation: {args.region}x{args.region} regions, uniform noise, L={args.steps}, "
          f"{args.repeats} repeats; descriptor replacement: {dkw['batch_size']} of >= {n_desc} descriptors "
          f"per step, 10 steps, 5 repeats, substitutes from "
          f"{'the GMM' if args.model == 'fv' else 'training descriptors'}")
    print(f"{'method':<18}{'ms/tile':>10}{'x predict':>11}{'x explain':>11}{'pixel AOPC':>12}{'- random':>10}"
          f"{'desc AOPC':>11}{'- random':>10}{'flips':>7}")
    for name in list(maps) + ["random order"]:
        tm = timings.get(name)
        ms = f"{1e3 * tm:10.1f}" if tm else f"{'':>10}"
        xp = f"{tm / timings['predict()']:11.1f}" if tm else f"{'':>11}"
        xe = f"{tm / base:11.1f}" if tm else f"{'':>11}"
        print(f"{name:<18}{ms}{xp}{xe}{pix[name].aopc:12.4f}{pix[name].aopc - r_pix:10.4f}"
              f"{desc[name].aopc:11.4f}{desc[name].aopc - r_desc:10.4f}{desc[name].flip_share:7.2f}")
    print(f"{'predict()':<18}{1e3 * timings['predict()']:10.1f}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return pix, desc, timings


if __name__ == "__main__":
    main()
