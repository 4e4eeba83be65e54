"""Pixel AOPC of DenseSIFT's pixel rules, against 9x9 occlusion, in one run.

Run: python benchmarks/pixel_rules_aopc.py [--model fv-linear|bow-hik|thesis-toy] [--data toy|textures]
     [--n-tiles 20] [--seed 0] [--json out.json]

``--model``: a ready-made model of ``bowlrp.apps.models.make_model`` at its
defaults (``fv-linear``: rotated SIFT at 3 scales, step 4, PCA to 32, a GMM
of 32 components per scale, linear SVM; ``bow-hik``: rotated SIFT at 3
scales, 128 rank-mapped words per scale, histogram-intersection SVM), or
``thesis-toy``: ``pipelines/fisher_vector.py``'s ``make_pipeline`` scaled to
the toy (SIFT at scales 2 and 3, steps 6 and 9, rotated; PCA to 32; a GMM
of 16 components; no pyramid; a linear SVM).  ``--data toy``: trained on
the polygon tiles of ``make_polygons(n_train)``, evaluated on test tiles
that hold a polygon (drawn with ``--seed``); ``--data textures``: the
scikit-image photographs brick, grass and gravel cut into 64-pixel tiles
(``bowlrp.datasets.load_textures``), half for training, the others
evaluated for their true class.

Every mapping rule of ``--rules`` is explained once with
``keep_dimensions=True``; each pixel rule maps the same descriptor
relevance (per dimension for Fisher vectors, per descriptor for Bag of
Words, where only the rules that need no dimensions apply) to pixels
through ``DenseSIFT.relevance``.  Occlusion (``bowlrp.evaluation.occlusion``,
9x9 mean-filled patches) is the baseline.  Timings: ``explain`` is the
whole explanation (forward pass, relevance, the ``"auto"`` pixel map); each
pixel rule's mapping is timed on its own; the cost ratio is occlusion's
time over explain's (set OMP_NUM_THREADS=1 to compare one thread with one;
on a shared machine take them as rough).
Region perturbation (``bowlrp.evaluation.region_perturbation``): 9x9
regions, ``--steps`` steps, uniform noise (``--repeats`` draws) and blur;
a method's score is its AOPC minus that of random order on the same tile,
averaged over tiles, with the standard error over tiles; "minus occlusion"
is the paired difference to occlusion's score on the same tiles.  ``--json``
writes the scores, the timings and every tile's score.
"""

import argparse
import json
import time

import numpy as np

from bowlrp.apps.models import make_model
from bowlrp.datasets import load_textures, make_polygons
from bowlrp.evaluation import occlusion, region_perturbation
from bowlrp.features.pixel_rules import PIXEL_RULES
from pipelines.fisher_vector import make_pipeline

MAPPING_RULES = {
    "eps1": dict(rule="epsilon", epsilon=1.0),
    "eps100": dict(rule="epsilon", epsilon=100.0),
    "z": dict(rule="z"),
    "abs": dict(rule="abs"),
    "ab21": dict(rule="alphabeta", alpha=2.0, beta=-1.0),
}
PIXEL = [r for r in PIXEL_RULES if r != "auto"]
PER_DIMENSION = ("bins", "magnitude")  # the pixel rules that need relevance per descriptor dimension


def dataset(name, n_train, n_tiles, seed):
    rng = np.random.default_rng(seed)
    if name == "toy":
        data = make_polygons(n_train=n_train, n_test_images=2, random_state=seed)
        pos = np.flatnonzero(np.asarray(data.test_labels) > 0)
        tiles = np.sort(rng.choice(pos, size=min(n_tiles, len(pos)), replace=False))
        X = np.asarray(data.test_images)[tiles]
        return data.images, data.labels, X, None, np.asarray(data.test_images), np.asarray(data.test_labels)
    tex = load_textures(tile_size=64)
    perm = rng.permutation(len(tex.images))
    tr, te = perm[: len(perm) // 2], perm[len(perm) // 2:]
    X, y = tex.images[te], tex.target[te]
    return tex.images[tr], tex.target[tr], X[:n_tiles], y[:n_tiles], X, y


def model(name, n_components, seed):
    if name == "thesis-toy":
        return make_pipeline(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_components=n_components or 16,
                             pca=32, pyramid=((1, 1),), random_state=seed)
    params = {"fv__n_components": n_components} if n_components and name.startswith("fv") else None
    return make_model(name, params, random_state=seed)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("fv-linear", "bow-hik", "thesis-toy"), default="fv-linear")
    ap.add_argument("--data", choices=("toy", "textures"), default="toy")
    ap.add_argument("--n-train", type=int, default=800, help="toy training tiles")
    ap.add_argument("--n-tiles", type=int, default=20, help="tiles evaluated")
    ap.add_argument("--n-components", type=int, default=None, help="GMM components (default: the model's)")
    ap.add_argument("--rules", default="eps1,eps100,z", help=f"mapping rules, from {list(MAPPING_RULES)}")
    ap.add_argument("--steps", type=int, default=30, help="perturbation steps L")
    ap.add_argument("--repeats", type=int, default=3, help="noise draws for uniform noise and random order")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    X_train, y_train, X, target, X_test, y_test = dataset(args.data, args.n_train, args.n_tiles, args.seed)
    pipe = model(args.model, args.n_components, args.seed).fit(X_train, y_train)
    fisher = "fv" in pipe.named_steps
    acc = float(np.mean(pipe.predict(X_test) == y_test))
    f = pipe.decision_function
    print(f"{args.model} on {args.data}: {len(X)} tiles of {X.shape[1]}x{X.shape[2]} px, "
          f"test accuracy {acc:.3f} on {len(X_test)} tiles (fit {time.perf_counter() - t0:.0f} s)", flush=True)

    sift = pipe.named_steps["sift"]
    _, trace = sift.forward(X)
    maps, seconds = {}, {}
    t = time.perf_counter()
    f(X)
    seconds["predict"] = time.perf_counter() - t
    for rn in args.rules.split(","):
        t = time.perf_counter()
        exp = pipe.explain(X, target=target, keep_dimensions=True, **MAPPING_RULES[rn])
        seconds[f"explain {rn}"] = time.perf_counter() - t
        for pr in PIXEL:
            if pr in PER_DIMENSION and not fisher:
                continue
            t = time.perf_counter()
            maps[f"LRP {rn} / {pr}"] = sift.relevance(exp.descriptors, trace, rule=pr)
            seconds[f"pixel rule {pr}"] = time.perf_counter() - t  # the last mapping rule's
    t = time.perf_counter()
    maps["occlusion 9x9"] = occlusion(f, X, patch_size=9, target=target)
    seconds["occlusion 9x9"] = time.perf_counter() - t
    print("ms per tile: " + ", ".join(f"{k} {1e3 * v / len(X):.1f}" for k, v in seconds.items()), flush=True)
    for rn in args.rules.split(","):
        print(f"cost ratio occlusion / explain {rn}: "
              f"{seconds['occlusion 9x9'] / seconds[f'explain {rn}']:.0f}", flush=True)

    scores, per_tile = {}, {}
    for repl, reps in (("uniform", args.repeats), ("blur", 1)):
        kw = dict(region_size=9, n_steps=args.steps, random_state=args.seed, replacement=repl, target=target)
        base = region_perturbation(f, X, None, order="random", n_repeats=args.repeats, **kw).aopc_per_input
        for name, m in maps.items():
            per_tile.setdefault(name, {})[repl] = region_perturbation(f, X, m, n_repeats=reps, **kw).aopc_per_input - base
        print(f"{repl} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    def mean_se(d):
        return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))

    occ = per_tile["occlusion 9x9"]
    print("\n| method | ms/tile | uniform noise | minus occlusion | blur | minus occlusion |\n|---|---|---|---|---|---|")
    for name, d in per_tile.items():
        scores[name] = {r: mean_se(d[r]) for r in d} | {f"{r} - occlusion": mean_se(d[r] - occ[r]) for r in d}
        key = "occlusion 9x9" if name == "occlusion 9x9" else "explain " + name.split()[1]
        cells = [f"{1e3 * seconds[key] / len(X):.0f}"]
        for r in ("uniform", "blur"):
            cells.append("{:.3f} ± {:.3f}".format(*scores[name][r]))
            cells.append("" if name == "occlusion 9x9" else "{:+.3f} ± {:.3f}".format(*scores[name][f"{r} - occlusion"]))
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(args=vars(args), accuracy=acc, n_tiles=len(X), seconds=seconds, scores=scores,
                       per_tile={k: {r: v.tolist() for r, v in d.items()} for k, d in per_tile.items()}), fh,
                      indent=1)


if __name__ == "__main__":
    main()
