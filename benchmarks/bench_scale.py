"""Collections on one machine and on a local Dask cluster: throughput, overhead per task, client memory.

Run: python benchmarks/bench_scale.py [--sizes 200,2000] [--n-speed 400] [--workers 1,2] [--photos 24]
                                      [--no-train] [--serial-memory] [--max-descriptors 20000]
                                      [--out DIR] [--json results.json]

The defaults take about 8 minutes on a shared 2-core machine.

What it measures, all with :func:`bowlrp.explain_collection` (``gallery=False``:
per-image maps and rows, no PNG panels) on toy-polygon tiles written as PNG
files (102 x 102, a one-scale 16-word HIK model):

- **throughput**: images per second in this process (serial), on joblib
  workers (``n_jobs``) and on a ``LocalCluster`` of 1, 2, ... worker
  processes with one thread each, on a warm cluster (each worker has read
  the model; starting the cluster is timed separately), in wall time and in
  CPU time: the CPU seconds of this process and of all its child processes
  (the joblib and Dask workers and nannies; the scheduler runs here) per
  image, which a busy machine disturbs much less than the wall clock;
- **overhead per task**: ``(t_cluster(1 worker) - t_serial) / n`` in wall
  and CPU time, and the same for an empty task through the same engine
  (:func:`bowlrp.collection.run_tasks`);
- **client memory**: for each collection size, in a fresh *client* process
  that connects to a cluster started by this script: the peak of Python
  allocations during the run (``tracemalloc``), what of them is still held
  after it, and the peak resident size sampled every 20 ms during the run
  (``psutil``).  The cluster's scheduler and workers run in other
  processes, so only the client is measured.  The "in memory" rows hold
  every image and result the way ``pipe.explain(images)`` /
  ``pipe.fit(images, y)`` do, for comparison; with ``--serial-memory`` also
  one process doing everything (client and worker), which takes minutes
  more;
- with ``--photos N``: the same throughput on N photographs of scikit-image
  (camera, astronaut, coffee, brick, grass, gravel, ...; 172 x 448 to 427 x 640 px)
  with the ready-made ``bow-hik`` model trained on the texture tiles;
- **client memory while fitting** (unless ``--no-train``): the same for
  :func:`bowlrp.collection.fit_collection`.  Its client holds the descriptor
  sample, about ``max_descriptors`` descriptors in all, and the feature
  matrix.  The toy pipeline here samples ``--max-descriptors 20000``
  (default), so that both default sizes sample at the cap: 200 tiles of
  196 descriptors are 39200, under the encoders' default cap of 50000, and
  with that cap the sample itself would grow from 200 to 2000 images (and
  then no more).

Absolute figures depend on the machine and on what else runs on it (the
script prints the load average); the ratios and the growth with the
collection size are the point.
"""

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

import cv2
import numpy as np
import psutil  # a dependency of dask.distributed


def toy_pipeline(max_descriptors=50000):
    import bowlrp

    return bowlrp.ExplainablePipeline([
        ("sift", bowlrp.DenseSIFT(scales=(2.0,), steps=(6,))),
        ("bow", bowlrp.BagOfWords(n_words=16, max_descriptors=max_descriptors, random_state=0)),
        ("svm", bowlrp.KernelSVC(kernel="hik")),
    ])


def write_images(folder, images, ext=".png"):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        p = os.path.join(folder, f"img_{i:05d}{ext}")
        arr = cv2.cvtColor(im, cv2.COLOR_RGB2BGR) if im.ndim == 3 else im
        assert cv2.imwrite(p, arr), p
        paths.append(p)
    return paths


def prepare_toy(root, n_images):
    """``n_images`` test tiles as PNG files and a model fitted on 300 other tiles; returns (paths, model file)."""
    from bowlrp.apps.modelfile import save_model
    from bowlrp.datasets import make_polygons

    data = make_polygons(n_train=n_images + 300, n_test_images=1, random_state=0)
    paths = write_images(os.path.join(root, "tiles"), data.images[:n_images])
    pipe = toy_pipeline().fit(data.images[n_images:], data.labels[n_images:])
    model = save_model(os.path.join(root, "toy.joblib"), pipe, model="toy")
    labels = os.path.join(root, "labels.npy")
    np.save(labels, np.asarray(data.labels[:n_images]))
    return paths, model, labels


def photo_inputs(root, n):
    """``n`` photographs of scikit-image as JPEG files (a few crops and flips of each)."""
    import skimage.data as sd

    names = ["camera", "astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "text", "moon"]
    base = []
    for name in names:
        try:
            im = getattr(sd, name)()
        except Exception:  # noqa: BLE001  (a data file this scikit-image lacks)
            continue
        base.append(np.ascontiguousarray(im[..., :3] if im.ndim == 3 else im))
    ims = [base[i % len(base)] if (i // len(base)) % 2 == 0 else base[i % len(base)][:, ::-1] for i in range(n)]
    return write_images(os.path.join(root, "photos"), [np.ascontiguousarray(a) for a in ims], ext=".jpg")


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return None


# ---------------------------------------------------------------- child: one measured client
class RSSPeak:
    """The largest resident size of this process, sampled every ``every`` seconds while running."""

    def __init__(self, every=0.02):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._proc = psutil.Process()

    def __enter__(self):
        self.start = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def child(args):
    """Run one explain (or fit) in this fresh process and print its client measurements as JSON."""
    import bowlrp  # noqa: F401  (imported before measuring, as a user's script would have)
    import distributed  # noqa: F401
    from bowlrp.collection import explain_collection, fit_collection
    from bowlrp.datasets import read_image

    paths = sorted(os.path.join(args.folder, f) for f in os.listdir(args.folder))[:args.n]
    client = args.scheduler if args.scheduler else None
    tracemalloc.start()
    with RSSPeak() as rss:
        t = time.perf_counter()
        if args.what == "explain":
            done = explain_collection(args.model, paths, args.out, gallery=False, client=client, verbose=False)
            assert done.n_explained == len(paths), done.errors[:3]
            del done
        elif args.what == "fit":
            y = np.load(args.labels)[:args.n]
            fit_collection(toy_pipeline(int(args.max_descriptors)), paths, y, client=client, verbose=False)
        elif args.what == "explain-in-memory":
            from bowlrp.apps.modelfile import load_model

            pipe, _ = load_model(args.model)
            exp = pipe.explain([read_image(p) for p in paths])
            assert len(exp.pixels) == len(paths)
            del exp
        else:  # fit-in-memory
            y = np.load(args.labels)[:args.n]
            toy_pipeline(int(args.max_descriptors)).fit([read_image(p, gray=True) for p in paths], y)
        seconds = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"n": len(paths), "seconds": seconds, "tracemalloc_peak_mb": peak / 2**20,
                      "tracemalloc_held_mb": held / 2**20, "rss_start_mb": rss.start / 2**20,
                      "rss_peak_mb": rss.peak / 2**20}))


def measure_child(what, n, folder, model, labels, scheduler, out, max_descriptors):
    cmd = [sys.executable, __file__, "--child", what, "--n", str(n), "--folder", folder, "--model", model,
           "--labels", labels, "--out", out, "--max-descriptors", str(max_descriptors)] + \
        (["--scheduler", scheduler] if scheduler else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child failed: {' '.join(cmd)}\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- parent
def _noop(i):
    return i


def _warm(model):
    from bowlrp.collection.engine import cached_model

    cached_model(model)


def cpu_seconds():
    """CPU time (user + system) of this process and of all its live child processes."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for c in me.children(recursive=True):
        try:
            total += sum(c.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def timed(f):
    """``(wall seconds, CPU seconds)`` of ``f()``; child processes must outlive the call (warm workers)."""
    c, t = cpu_seconds(), time.perf_counter()
    f()
    return time.perf_counter() - t, cpu_seconds() - c


def time_explain(model, paths, out, **kw):
    from bowlrp.collection import explain_collection

    def run():
        done = explain_collection(model, paths, out, gallery=False, resume=False, verbose=False, **kw)
        assert done.n_explained == len(paths), done.errors[:3]

    return timed(run)


def time_noop(n, **kw):
    from bowlrp.collection import run_tasks

    return timed(lambda: list(run_tasks(_noop, ((i,) for i in range(n)), verbose=False, **kw)))[0]


def throughput(label, model, paths, root, workers, results):
    """Serial, joblib and LocalCluster runs of explain_collection on ``paths``."""
    from distributed import Client, LocalCluster

    n = len(paths)
    rows = []
    time_explain(model, paths[:5], os.path.join(root, "warm"))  # imports and model read in this process
    serial, serial_cpu = time_explain(model, paths, os.path.join(root, f"{label}-serial"))

    def row(backend, k, wall, cpu, noop, **extra):
        one = backend == "Dask LocalCluster" and k == 1
        return dict(backend=backend, workers=k, seconds=wall, cpu_seconds=cpu, images_per_s=n / wall,
                    cpu_ms_per_image=1e3 * cpu / n, overhead_ms_per_task=1e3 * (wall - serial) / n if one else None,
                    cpu_overhead_ms_per_task=1e3 * (cpu - serial_cpu) / n if one else None,
                    noop_ms_per_task=1e3 * noop / 2000, **extra)

    rows.append(row("serial (this process)", 1, serial, serial_cpu, time_noop(2000)))
    for k in workers:
        if k > 1:
            from joblib import parallel_config

            with parallel_config(backend="loky", idle_worker_timeout=3600):  # keep the warm workers
                time_explain(model, paths[:4 * k], os.path.join(root, "warm"), n_jobs=k)
                wall, cpu = time_explain(model, paths, os.path.join(root, f"{label}-joblib{k}"), n_jobs=k)
                rows.append(row("joblib (loky)", k, wall, cpu, time_noop(2000, n_jobs=k)))
        t = time.perf_counter()
        with LocalCluster(n_workers=k, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as lc, Client(lc) as client:
            client.wait_for_workers(k)
            start = time.perf_counter() - t
            client.run(_warm, model)  # every worker imports bowlrp and reads the model before the clock starts
            time_explain(model, paths[:4 * k], os.path.join(root, "warm"), client=client)
            wall, cpu = time_explain(model, paths, os.path.join(root, f"{label}-dask{k}"), client=client)
            rows.append(row("Dask LocalCluster", k, wall, cpu, time_noop(2000, client=client), cluster_start_s=start))
    results[f"throughput_{label}"] = {"n_images": n, "rows": rows, "load_average": load_average()}
    print(f"\n### throughput: {label}, {n} images (load average {load_average()})\n")
    print("| backend | workers | wall s | images/s | CPU ms per image | overhead per task vs serial, wall / CPU (ms) "
          "| empty task (ms) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ov = "" if r["overhead_ms_per_task"] is None else \
            f"{r['overhead_ms_per_task']:.1f} / {r['cpu_overhead_ms_per_task']:.1f}"
        print(f"| {r['backend']} | {r['workers']} | {r['seconds']:.1f} | {r['images_per_s']:.1f} | "
              f"{r['cpu_ms_per_image']:.0f} | {ov} | {r['noop_ms_per_task']:.2f} |")


def memory(what, sizes, folder, model, labels, root, results, serial=False, max_descriptors=20000):
    """Client peak for each size: connected to a 2-worker cluster, in memory, and (``serial``) in one process."""
    from distributed import LocalCluster

    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as lc:
        for n in sizes:
            r = measure_child(what, n, folder, model, labels, lc.scheduler_address,
                              os.path.join(root, f"mem-{what}-d{n}"), max_descriptors)
            rows.append(dict(r, mode="Dask client (2 workers)"))
    for n in sizes if serial else ():
        r = measure_child(what, n, folder, model, labels, None, os.path.join(root, f"mem-{what}-s{n}"),
                          max_descriptors)
        rows.append(dict(r, mode="serial (one process)"))
    for n in sizes:
        r = measure_child(what + "-in-memory", n, folder, model, labels, None, os.path.join(root, f"mem-{what}-m{n}"),
                          max_descriptors)
        rows.append(dict(r, mode="in memory (pipe.explain(images))" if what == "explain" else
                         "in memory (pipe.fit(images, y))"))
    results[f"memory_{what}"] = rows
    extra = f", max_descriptors={max_descriptors}" if what == "fit" else ""
    print(f"\n### client memory: {what}{extra} (load average {load_average()})\n")
    print("| mode | images | seconds | tracemalloc peak (MB) | still held after (MB) | RSS at start (MB) "
          "| peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['n']} | {r['seconds']:.1f} | {r['tracemalloc_peak_mb']:.2f} | "
              f"{r['tracemalloc_held_mb']:.2f} | {r['rss_start_mb']:.0f} | {r['rss_peak_mb']:.0f} |")


def train_photo_model(root):
    from bowlrp.apps.train import train_folder
    from bowlrp.datasets.textures import write_texture_folder

    folder = os.path.join(root, "textures")
    write_texture_folder(folder)
    path = os.path.join(root, "bow-hik.joblib")
    train_folder(folder, "bow-hik", path, test_size=0, verbose=False, log=lambda *a: None)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="200,2000", help="collection sizes for the memory runs (default: 200,2000)")
    ap.add_argument("--n-speed", type=int, default=400, help="toy images for the throughput runs (default: 400)")
    ap.add_argument("--workers", default="1,2", help="cluster sizes (default: 1,2; more where there are cores)")
    ap.add_argument("--photos", type=int, default=0, help="also time N scikit-image photographs (default: 0)")
    ap.add_argument("--no-train", action="store_true", help="do not measure fit_collection's client")
    ap.add_argument("--serial-memory", action="store_true",
                    help="also measure one process doing everything at each size (minutes more)")
    ap.add_argument("--max-descriptors", type=int, default=20000,
                    help="the toy pipeline's descriptor sample when fitting (default: 20000)")
    ap.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    for hidden in ("--n", "--folder", "--model", "--labels", "--scheduler"):  # the measured child's
        ap.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.what, args.n = args.child, int(args.n)
        return child(args)
    root = args.out or tempfile.mkdtemp(prefix="bench_scale_")
    try:
        run(args, root)
    finally:
        if not args.out:  # a temporary folder of this run's: tiles, models and every result
            shutil.rmtree(root, ignore_errors=True)


def run(args, root):
    """Every measurement, in ``root``."""
    sizes = [int(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{os.cpu_count()} cores, load average {load_average()}, working in {root}")
    t = time.perf_counter()
    paths, model, labels = prepare_toy(root, max(max(sizes), args.n_speed))
    print(f"wrote {len(paths)} toy tiles and fitted the toy model in {time.perf_counter() - t:.0f} s")
    results = {"cores": os.cpu_count(), "load_average_start": load_average()}
    throughput("toy tiles", model, paths[:args.n_speed], root, workers, results)
    memory("explain", sizes, os.path.dirname(paths[0]), model, labels, root, results, serial=args.serial_memory)
    if not args.no_train:
        memory("fit", sizes, os.path.dirname(paths[0]), model, labels, root, results, serial=args.serial_memory,
               max_descriptors=args.max_descriptors)
    if args.photos:
        photos = photo_inputs(root, args.photos)
        throughput("photographs", train_photo_model(root), photos, root, workers, results)
    results["load_average_end"] = load_average()
    results["seconds"] = time.perf_counter() - t
    print(f"\ndone in {results['seconds']:.0f} s, load average {load_average()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
