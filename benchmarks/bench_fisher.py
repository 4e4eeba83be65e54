"""Fisher-vector encoding and explanation: throughput, rules, explain/predict, peak memory.

Run: python benchmarks/bench_fisher.py [--repeat 3] [--components 256] [--pca 80] [--fit-iter 5]

Measured in one run, on photographs from scikit-image (camera, astronaut,
coffee, chelsea; gray, resized to 480x360), dense SIFT at the thesis' four
scales every 4 pixels, the thesis' model (K=256, PCA 80, 1x1 + 2x2 + 3x1
pyramid):

* the machine's float32 and float64 matrix-multiply rate (2048^2 GEMM, the
  better of one thread and the default);
* Fisher-vector encoding of one image: descriptors per second, and the rate
  of its GEMM work ``2 n (K (2D+1) + D_in D)`` (posteriors, PCA; the moments
  use the sparse truncated posteriors) and of the dense-equivalent count
  ``2 n (4 K D + D_in D)`` of a design without truncation, against the GEMM
  rate of the same precision (by wall and by CPU time);
* the error of float32 encoding against float64, and of the default posterior
  truncation against untruncated posteriors and scikit-image's
  ``fisher_vector``;
* the encoder's relevance step for every mapping rule against the
  proportional rule;
* explain() / predict() of the whole pipeline (SIFT included), and the minor
  page faults of one call of each (memory the allocator had given back to the
  system and the call touched afresh); again in fresh processes, with glibc's
  default allocator settings and with ``RETAINING_MALLOC``;
* peak memory (resident set, each in a fresh process) of predict and explain
  on one 4000x3000 photograph with K=16 (``--large-side`` to change).

Wall-clock times are the best of ``--repeat`` runs (explain/predict: of
``2 * repeat`` interleaved rounds, with the median of the rounds' own
ratios); CPU times (process time, all threads) are printed beside them
because on a shared machine wall time measures the other jobs as much as
this code.  Prints numbers, not
pass/fail: CI never times anything.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bowlrp  # noqa: E402
from pipelines.fisher_vector import THESIS_PYRAMID, THESIS_SCALES, make_pipeline  # noqa: E402

RULES = ("z", "epsilon", "alphabeta", "abs", "flat")


def best(f, repeat):
    """``(wall, cpu)``: the fastest of ``repeat`` runs of ``f()`` by wall time, and its process time."""
    out = (np.inf, np.inf)
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        f()
        t, c = time.perf_counter() - t, time.process_time() - c
        out = min(out, (t, c))
    return out


def gemm_rate(dtype, threads=None, n=2048, repeat=3):
    """``(by wall time, by CPU time)`` multiply-add rate of an ``n x n`` GEMM, FLOP/s."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.T.copy()
    with threadpool_limits(threads, user_api="blas"):
        t, c = best(lambda: a @ b, repeat)
    return 2 * n**3 / t, 2 * n**3 / c


def photos(shape=(360, 480)):
    import skimage.color
    import skimage.data
    import skimage.transform

    out = []
    for name in ("camera", "astronaut", "coffee", "chelsea"):
        im = getattr(skimage.data, name)()
        if im.ndim == 3:
            im = skimage.color.rgb2gray(im[..., :3])
        im = skimage.transform.resize(im, shape, anti_aliasing=True)
        out.append((255 * im / im.max()).astype(np.uint8))
    return out


def copy_encoder(fv, **params):
    """A fitted copy of ``fv`` with other (non-fitting) parameters."""
    enc = bowlrp.FisherVectorEncoder(**{**fv.get_params(), **params})
    for k, v in vars(fv).items():
        if k.endswith("_"):
            setattr(enc, k, v)
    return enc


def encoding(fv, sets, svm, repeat, rates):
    n = len(sets[0])
    K, D, Din = fv.n_components, fv.n_dims_, fv.n_dims_in_
    dense = 2.0 * n * (4 * K * D + Din * D)  # the four products of a dense design, and the PCA
    gemm = 2.0 * n * (K * (2 * D + 1) + Din * D)  # what is a GEMM here: posteriors and PCA
    F64 = None
    for dtype in ("float64", "float32"):
        enc = copy_encoder(fv, dtype=dtype)
        enc.transform(sets)
        t, c = best(lambda: enc.transform(sets), repeat)
        F = enc.transform(sets)
        (rw, rc), r32c = rates[dtype], rates["float32"][1]
        print(f"encode {dtype}: {t * 1e3:.0f} ms (CPU {c * 1e3:.0f} ms) = {n / t:,.0f} descriptors/s; GEMM work "
              f"{gemm / t / 1e9:.1f} GFLOP/s = {gemm / t / rw:.0%} of the {dtype} GEMM rate by wall time, "
              f"{gemm / c / rc:.0%} by CPU time; dense-equivalent {dense / t / rw:.0%} / {dense / c / rc:.0%} "
              f"({dense / c / r32c:.0%} of float32's by CPU time)")
        if F64 is None:
            F64 = F
        else:
            d = np.abs(F - F64)
            dd = np.abs(svm.decision_function(F) - svm.decision_function(F64)).max()
            print(f"  float32 against float64: max |difference| {d.max():.1e} (features of unit norm), relative L2 "
                  f"{np.linalg.norm(F - F64) / np.linalg.norm(F64):.1e}, decision {dd:.1e}")
    exact = copy_encoder(fv, posterior_threshold=0.0).transform(sets)
    ds = sets[0]
    pairs = np.mean([(fv.posteriors(ds.descriptors[ds.levels == s], s) > 0).sum(1).mean() for s in range(fv.n_levels_)])
    f_exact = svm.decision_function(exact)
    print(f"posterior truncation {fv.posterior_threshold:g} against none: relative L2 "
          f"{np.linalg.norm(F64 - exact) / np.linalg.norm(exact):.1e}, decision "
          f"{np.abs(svm.decision_function(F64) - f_exact).max():.1e} (|decision| {np.abs(f_exact).max():.2f}); "
          f"posteriors kept: {pairs:.1f} of {K} per descriptor")
    try:
        from skimage.feature import fisher_vector
    except ImportError:
        return
    sel = sets[0].levels == 0
    Y = fv.project(sets[0].descriptors[sel], 0, np.float64)
    ref = fisher_vector(Y, fv.gmms_[0], improved=False)
    ref[K + K * D :] *= -1  # scikit-image's variance part has the opposite sign of eq. 4.3
    B = fv.block_size_
    for thr in (0.0, fv.posterior_threshold):
        x = copy_encoder(fv, posterior_threshold=thr).forward(sets)[1]["raw"][0, :B]  # level 0, the 1x1 cell
        print(f"  scikit-image fisher_vector (level 0, whole image) against threshold {thr:g}: relative L2 "
              f"{np.linalg.norm(x - ref) / np.linalg.norm(ref):.1e}")


def rules(fv, sets, svm, repeat):
    for dtype in ("float64", "float32"):
        enc = copy_encoder(fv, dtype=dtype)
        F, tr = enc.forward(sets)
        R = svm.explain(F).features
        times = {r: best(lambda r=r: enc.relevance(R, tr, r), repeat) for r in RULES}  # the same repeats for all
        tz, cz = times["z"]
        print(f"relevance {dtype}: " + ", ".join(f"{r} {t * 1e3:.0f} ms ({t / tz:.1f}x; CPU {c * 1e3:.0f} ms, "
                                                 f"{c / cz:.1f}x)" for r, (t, c) in times.items()))
    coarse = copy_encoder(fv, posterior_threshold=1e-4)  # fewer pairs: a faster, less exact encoding
    Fc, trc = coarse.forward(sets)
    R = svm.explain(Fc).features
    times = {r: best(lambda r=r: coarse.relevance(R, trc, r), 1) for r in ("z", "alphabeta", "abs")}
    tz, cz = times["z"]
    exact = copy_encoder(fv, posterior_threshold=0.0).transform(sets)
    err = np.linalg.norm(Fc - exact) / np.linalg.norm(exact)
    print(f"posterior_threshold=1e-4 (relative L2 to untruncated {err:.1e}): "
          + ", ".join(f"{r} {t * 1e3:.0f} ms ({t / tz:.1f}x; CPU {c / cz:.1f}x)" for r, (t, c) in times.items()))


def faults(f):
    """Minor page faults of one call of ``f()`` (fresh pages the process touched: the allocator returned them)."""
    import resource  # noqa: PLC0415

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def explain_ratio(pipe, x, repeat):
    """explain() / predict() from interleaved rounds (each round: predict, explain z, explain epsilon).

    The best time of each over ``2 * repeat`` rounds gives the ratio; the median of the rounds' own ratios
    is printed beside it, since on a shared machine a slow spell then hits both sides of a ratio alike.
    """
    rules = ("z", "epsilon")
    calls = {"predict": lambda: pipe.predict(x), **{r: (lambda r=r: pipe.explain(x, rule=r)) for r in rules}}
    for f in calls.values():
        f()
    times = {k: [] for k in calls}
    for _ in range(2 * repeat):
        for k, f in calls.items():
            t, c = time.perf_counter(), time.process_time()
            f()
            times[k].append((time.perf_counter() - t, time.process_time() - c))
    (tp, cp), fp = min(times["predict"]), faults(calls["predict"])
    for rule in rules:
        (tx, cx), fx = min(times[rule]), faults(calls[rule])
        med = np.median([e[0] / p[0] for e, p in zip(times[rule], times["predict"])])
        print(f"pipeline (SIFT included), rule {rule}: predict {tp * 1e3:.0f} ms, explain {tx * 1e3:.0f} ms, "
              f"ratio {tx / tp:.2f} (median of {len(times[rule])} rounds {med:.2f}; CPU {cp * 1e3:.0f} / "
              f"{cx * 1e3:.0f} ms, {cx / cp:.2f}); minor page faults per call {fp:,} / {fx:,}")


_MEMORY_CHILD = r"""
import json, sys, threading, time, tracemalloc
import joblib, numpy as np, psutil
sys.path.insert(0, {root!r})
pipe = joblib.load({model!r})
img = np.load({image!r})
proc = psutil.Process()
base = proc.memory_info().rss
peak, done = [base], threading.Event()

def watch():  # the resident set, sampled every millisecond
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.001)

threading.Thread(target=watch, daemon=True).start()
tracemalloc.start()
t = time.perf_counter()
if {mode!r} == "predict":
    pipe.predict([img])
else:
    exp = pipe.explain([img])
    assert abs(exp.pixels[0].sum() + exp.bias[0] - exp.score[0]) <= 1e-6 * abs(exp.score[0]) + 1e-9
t = time.perf_counter() - t
traced = tracemalloc.get_traced_memory()[1]
done.set()
time.sleep(0.01)
print(json.dumps({{"rss": peak[0] - base, "traced": traced, "s": t}}))
"""


_RATIO_CHILD = r"""
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import joblib, numpy as np
from bench_fisher import explain_ratio
explain_ratio(joblib.load({model!r}), [np.load({image!r})], {repeat!r})
"""
#: glibc's allocator keeps freed memory for reuse up to these sizes (mallopt(3)); its default gives the heap's
#: top back to the system after each call, and the next call touches fresh pages.
RETAINING_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def explain_ratio_fresh(pipe, x, repeat, root, tmp="/tmp"):
    """explain() / predict() in a fresh process, with glibc's default allocator settings and with
    :data:`RETAINING_MALLOC`."""
    import joblib

    model, image = os.path.join(tmp, "bench_fisher_ratio.joblib"), os.path.join(tmp, "bench_fisher_ratio.npy")
    joblib.dump(pipe, model)
    np.save(image, x[0])
    code = _RATIO_CHILD.format(root=root, bench=os.path.join(root, "benchmarks"), model=model, image=image,
                               repeat=repeat)
    for label, extra in (("fresh process, glibc defaults", {}),
                         ("fresh process, " + " ".join(f"{k}={v}" for k, v in RETAINING_MALLOC.items()),
                          RETAINING_MALLOC)):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, **extra})
        for line in res.stdout.strip().splitlines():
            print(f"{label}: {line}")
    for f in (model, image):
        os.remove(f)


def memory(side, root, tmp="/tmp"):
    """Peak memory of predict and explain of one ``side x (3/4 side)`` photograph, each in a fresh process."""
    import joblib
    import skimage.color
    import skimage.data
    import skimage.transform

    big = skimage.transform.resize(skimage.color.rgb2gray(skimage.data.astronaut()), (side * 3 // 4, side))
    big = (255 * big).astype(np.uint8)
    pipe = make_pipeline(scales=(2.0, 3.0), steps=(6, 9), n_components=16, pca=32, pyramid=((1, 1),), max_iter=20)
    pipe.fit(photos(), [0, 1, 0, 1])
    model, image = os.path.join(tmp, "bench_fisher_model.joblib"), os.path.join(tmp, "bench_fisher_image.npy")
    joblib.dump(pipe, model)
    np.save(image, big)
    out = {}
    for mode in ("predict", "explain"):
        code = _MEMORY_CHILD.format(root=root, model=model, image=image, mode=mode)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    n = len(pipe.steps[0][1].transform([big])[0])
    p, x = out["predict"], out["explain"]
    print(f"{big.shape[1]}x{big.shape[0]} photograph, {n:,} descriptors, K=16, PCA 32: peak resident memory "
          f"predict {p['rss'] / 2**20:.0f} MiB, explain {x['rss'] / 2**20:.0f} MiB, ratio {x['rss'] / p['rss']:.2f} "
          f"(NumPy allocations: {p['traced'] / 2**20:.0f} / {x['traced'] / 2**20:.0f} MiB, "
          f"{x['traced'] / p['traced']:.2f}); {p['s']:.0f} s / {x['s']:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--components", type=int, default=256)
    ap.add_argument("--pca", type=int, default=80)
    ap.add_argument("--fit-iter", type=int, default=5)
    ap.add_argument("--large-side", type=int, default=4000, help="0 skips the memory measurement")
    args = ap.parse_args()
    blas = ", ".join(sorted({i["internal_api"] + ":" + str(i["num_threads"]) for i in threadpool_info()}))
    print(f"BLAS: {blas}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rates = {}
    for dt in ("float32", "float64"):
        (dw, dc), (ow, oc) = gemm_rate(dt), gemm_rate(dt, 1)
        rates[dt] = (max(dw, ow), max(dc, oc))
        print(f"GEMM 2048^2 {dt}: {dw / 1e9:.1f} GFLOP/s by wall time, {dc / 1e9:.1f} by CPU time "
              f"(one thread {ow / 1e9:.1f} / {oc / 1e9:.1f})")

    images = photos()
    pipe = make_pipeline(scales=THESIS_SCALES, steps=4, n_components=args.components, pca=args.pca,
                         pyramid=THESIS_PYRAMID, max_descriptors=20000, max_iter=args.fit_iter)
    t = time.perf_counter()
    pipe.fit(images, [0, 1, 0, 1])
    print(f"fit on 4 photographs (K={args.components}, PCA {args.pca}, {args.fit_iter} EM iterations): "
          f"{time.perf_counter() - t:.0f} s")
    sift, fv, svm = (s for _, s in pipe.steps)
    x = images[:1]
    sets = sift.transform(x)
    print(f"one 480x360 photograph: {len(sets[0]):,} descriptors ({len(sift.scales)} scales, step 4), "
          f"{fv.n_features_out_:,} Fisher dimensions")
    encoding(fv, sets, svm, args.repeat, rates)
    rules(fv, sets, svm, args.repeat)
    explain_ratio(pipe, x, args.repeat)
    explain_ratio_fresh(pipe, x, args.repeat, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if args.large_side:
        memory(args.large_side, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


if __name__ == "__main__":
    main()
