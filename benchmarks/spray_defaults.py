"""SpRAy's preprocessing and graph choices on the watermark studies, over several seeds.

Run: python benchmarks/spray_defaults.py [--seeds 0 1 2 3] [--photo-seeds 0]

For each seed, the toy-polygon study of ``bowlrp demo clever-hans`` (a
Bag-of-Words model trained with the mark in half of the polygon tiles, and a
clean one trained without marks; the test tiles of the polygon class are
explained, half of them marked) is run once, and SpRAy is fitted on the same
maps with each setting below; the photograph studies likewise.  Printed per
run: the number of clusters the eigengap gives and the adjusted Rand index
against the marked / unmarked truth.  A model trained without the mark
should give one cluster (or clusters unrelated to the mark, ARI near 0).

Prints numbers, not pass/fail.
"""

import argparse
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bowlrp.apps.clever_hans import _data, run_study, spray_choices  # noqa: E402

SETTINGS = {
    "defaults (none, k=max(12, ceil(ln n)))": {},
    "none, k=ceil(ln n)": {"n_neighbors": "ln"},
    "none, k=8": {"n_neighbors": 8},
    "l2, k=max(12, ceil(ln n))": {"normalize": "l2"},
    "l2, k=ceil(ln n) (the earlier defaults)": {"normalize": "l2", "n_neighbors": "ln"},
    "absolute, none": {"part": "absolute"},
    "absolute, l2": {"part": "absolute", "normalize": "l2"},
}


def fit(maps, truth, params):
    """``(clusters, ARI)`` of SpRAy with ``params`` over its defaults (``n_neighbors="ln"``: ``ceil(ln n)``)."""
    setting = {"grid": (10, 10), "part": "signed", "normalize": "none", "n_neighbors": None, **params}
    row, = spray_choices(maps, truth, {k: (v,) for k, v in setting.items()}, random_state=0)
    return row["n_clusters"], row["ari"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3], help="toy-study seeds")
    ap.add_argument("--photo-seeds", type=int, nargs="*", default=[0], help="photograph-study seeds")
    args = ap.parse_args(argv)
    runs = [("toy", s) for s in args.seeds]
    runs += [(study, s) for s in args.photo_seeds for study in ("photos", "photos-distinct")]
    table = {}
    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        for study, seed in runs:
            Xtr, ytr, Xte, yte, mc, mtr, mte, _, factory = _data(study, 600, seed)
            for clean in (False, True):
                name = f"{study}{'-clean' if clean else ''} seed {seed}"
                r = run_study(Xtr, ytr, Xte, yte, mc, np.zeros_like(mtr) if clean else mtr, mte, factory,
                              random_state=seed)
                maps, truth = r["_arrays"]["maps"], r["_arrays"]["truth"]
                row = {}
                for label, params in SETTINGS.items():
                    row[label] = fit(maps, truth, params)
                table[name] = row
                print(f"{name}: {len(maps)} maps ({int(truth.sum())} marked), "
                      f"R+ on the mark {r['positive_relevance_on_mark']['marked']:.3f} "
                      f"(area {r['mark_area']:.3f}); {time.perf_counter() - t0:.0f} s so far", flush=True)
    names = list(table)
    print("\nclusters : ARI against the marked / unmarked truth")
    print("| setting | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label in SETTINGS:
        print(f"| {label} | " + " | ".join(f"{table[n][label][0]} : {table[n][label][1]:.2f}" for n in names) + " |")
    print(f"\n{time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
