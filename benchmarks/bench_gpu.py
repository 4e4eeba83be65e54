"""GPU against CPU time of the device paths: encoding, kernels, relevance and the CNN, in one run.

Run: python benchmarks/bench_gpu.py [--repeat 3] [--scale 1.0]

Needs CuPy and a CUDA device; without them it says so and exits (nothing is
timed).  Descriptors come from dense SIFT on crops of scikit-image's
photographs (camera, brick, grass, gravel, coffee, astronaut), computed once
on the CPU and uploaded to the device once, as a pipeline keeps them there;
the GPU times are for data already on the device, with the device
synchronised before the clock stops, best of ``--repeat`` runs after one
warm-up run (CuPy compiles its kernels on first use).  The upload itself is
printed on its own line.  ``ratio`` is GPU time / CPU time (below 1: the GPU
is faster).

``--standin`` runs the same code on the strict CuPy stand-in of the test
suite (tests/cupy_standin.py), to check that the benchmark and every device
path it times still run; its "GPU" times are NumPy's plus the stand-in's
overhead, not GPU times.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from skimage import color, data

import bowlrp
from bowlrp import _backend
from bowlrp.cnn import CNNClassifier
from bowlrp.svm import make_kernel

_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class DeviceSet:
    """Descriptors on the device with their geometry on the host (what the stages after DenseSIFT take)."""

    descriptors: object
    levels: np.ndarray
    n_levels: int
    centers: np.ndarray
    image_shape: tuple


def device_module(standin):
    """CuPy (or the stand-in), installed as bowlrp's device backend; None without a GPU."""
    if standin:
        sys.path.insert(0, os.path.join(_HERE, os.pardir, "tests"))
        import cupy_standin  # noqa: PLC0415

        _backend._CUPY[:] = [cupy_standin]  # the test suite's switch; --standin only
        return cupy_standin
    if not _backend.cupy_available():
        return None
    import cupy  # noqa: PLC0415

    return cupy


def photographs(n, side):
    """``n`` grayscale ``side x side`` crops of scikit-image's photographs, uint8."""
    sources = [data.camera(), data.brick(), data.grass(), data.gravel(),
               (color.rgb2gray(data.coffee()) * 255).astype(np.uint8),
               (color.rgb2gray(data.astronaut()) * 255).astype(np.uint8)]
    crops = []
    for k in range(n):
        img = sources[k % len(sources)]
        r = (k // len(sources)) * side // 2 % max(1, img.shape[0] - side)
        crops.append(np.ascontiguousarray(img[r:r + side, :side]))
    return np.stack(crops)


def timer(xp, repeat):
    sync = xp.cuda.Device().synchronize if xp is not np else (lambda: None)

    def best(f):
        f()  # warm-up: kernel compilation, memory pool
        sync()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            f()
            sync()
            times.append(time.perf_counter() - t)
        return min(times)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="problem size factor (1: the sizes above)")
    ap.add_argument("--standin", action="store_true", help="run on the CuPy stand-in (checks, no GPU times)")
    args = ap.parse_args()
    cp = device_module(args.standin)
    if cp is None:
        print("bench_gpu: no GPU here. It needs CuPy (pip install 'bowlrp[gpu]', the wheel matching your CUDA) "
              "and a CUDA device; nothing was timed.")
        return 0
    if args.standin:
        print("bench_gpu --standin: the 'GPU' column is the CuPy stand-in (NumPy underneath): a check that the "
              "device paths run, not a measurement of a GPU.")
    else:
        dev = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        print(f"GPU: {dev['name'].decode() if isinstance(dev['name'], bytes) else dev['name']}, CuPy {cp.__version__}")
    s = args.scale
    best_cpu, best_gpu = timer(np, args.repeat), timer(cp, args.repeat)
    rows = []

    def row(name, f_cpu, f_gpu):
        t_cpu, t_gpu = best_cpu(f_cpu), best_gpu(f_gpu)
        rows.append((name, t_cpu, t_gpu))
        print(f"{name:44s} {1e3 * t_cpu:10.1f} {1e3 * t_gpu:10.1f} {t_gpu / t_cpu:8.3f} {t_cpu / t_gpu:8.1f}x",
              flush=True)

    n_img, side = max(2, round(8 * s)), max(64, round(256 * s))
    images = photographs(n_img, side)
    labels = np.arange(n_img) % 2
    sift = bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(4, 6))
    sets = sift.transform(images)
    n_desc = sum(len(d) for d in sets)
    t = time.perf_counter()
    dsets = [DeviceSet(cp.asarray(d.descriptors), d.levels, d.n_levels, d.centers, d.image_shape) for d in sets]
    cp.cuda.Device().synchronize()
    print(f"{n_img} photograph crops of {side}x{side}, {n_desc} SIFT descriptors; upload to the device "
          f"{1e3 * (time.perf_counter() - t):.1f} ms")
    print(f"{'':44s} {'CPU ms':>10s} {'GPU ms':>10s} {'ratio':>8s} {'speed-up':>9s}")

    # encoding
    K_bow, K_fv = max(8, round(256 * s)), max(4, round(64 * s))
    bow = bowlrp.BagOfWords(n_words=K_bow, random_state=0).fit(sets)
    fv = bowlrp.FisherVectorEncoder(n_components=K_fv, pca=min(64, max(8, round(64 * s))), random_state=0).fit(sets)
    row(f"encoding: Bag of Words, rank, K={K_bow}", lambda: bow.forward(sets), lambda: bow.forward(dsets))
    row(f"encoding: Fisher vectors, K={K_fv}, PCA", lambda: fv.forward(sets), lambda: fv.forward(dsets))

    # kernels
    rng = np.random.default_rng(0)
    n, S, D = max(20, round(500 * s)), max(40, round(1000 * s)), max(16, round(512 * s))
    X, SV, coef = rng.random((n, D)), rng.random((S, D)), rng.normal(size=(n, S))
    Xg, SVg, cg = cp.asarray(X), cp.asarray(SV), cp.asarray(coef)
    for name in ("hik", "chi2", "rbf"):
        kern = make_kernel(name, (D,), None, None if name == "hik" else [1.0 / D])
        row(f"kernel: {name} Gram {n}x{S}, D={D}", lambda: kern.gram(X, SV, np), lambda: kern.gram(Xg, SVg, cp))
        row(f"kernel: {name} gradient", lambda: kern.gradient(X, SV, coef, np),
            lambda: kern.gradient(Xg, SVg, cg, cp))

    # relevance
    Xb, tb = bow.forward(sets)
    Xbg, tbg = bow.forward(dsets)
    Xf, tf = fv.forward(sets)
    Xfg, tfg = fv.forward(dsets)
    Rb, Rf = rng.normal(size=Xb.shape), rng.normal(size=Xf.shape)
    Rbg, Rfg = cp.asarray(Rb), cp.asarray(Rf)
    for rule in ("z", "alphabeta"):
        row(f"relevance: Bag of Words, {rule}", lambda: bow.relevance(Rb, tb, rule),
            lambda: bow.relevance(Rbg, tbg, rule))
        row(f"relevance: Fisher vectors, {rule}", lambda: fv.relevance(Rf, tf, rule),
            lambda: fv.relevance(Rfg, tfg, rule))
    for kernel in ("hik", "rbf"):
        svm = bowlrp.KernelSVC(kernel=kernel, random_state=0).fit(Xb, labels)
        row(f"relevance: KernelSVC {kernel} explain ({'exact' if kernel == 'hik' else 'Taylor'})",
            lambda: svm.explain(Xb), lambda: svm.explain(Xbg))
    for name, pipe_enc, enc_cpu in (("Bag of Words + hik", bow, Xb), ("Fisher vectors + linear", fv, Xf)):
        svm = bowlrp.KernelSVC(kernel="hik" if pipe_enc is bow else "linear").fit(enc_cpu, labels)
        tail = bowlrp.ExplainablePipeline([("enc", pipe_enc), ("svm", svm)])
        row(f"relevance: explain {name}", lambda: bowlrp.explain(tail, sets), lambda: bowlrp.explain(tail, dsets))

    # the CNN
    n_tiles, tile = max(16, round(256 * s)), 102
    tiles = np.stack([img[:tile, :tile] for img in photographs(n_tiles, max(tile, side))])
    y = (tiles.reshape(n_tiles, -1).mean(1) > np.median(tiles)).astype(int)
    kw = dict(epochs=1, batch_size=32, random_state=0)
    cnn_cpu, cnn_gpu = CNNClassifier(device="cpu", **kw), CNNClassifier(device="cuda", **kw)
    row(f"CNN: one training epoch, {n_tiles} tiles {tile}x{tile}", lambda: cnn_cpu.fit(tiles, y),
        lambda: cnn_gpu.fit(tiles, y))
    for method in ("lrp", "gradient"):
        row(f"CNN: explain {method}", lambda: cnn_cpu.explain(tiles, method=method),
            lambda: cnn_gpu.explain(tiles, method=method))
    ratios = np.array([g / c for _, c, g in rows])
    print(f"median GPU/CPU ratio over {len(rows)} rows: {np.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
