"""Collections on one machine and on a Dask cluster: one code path, the same results, resuming, a killed worker.

The cluster tests start a ``dask.distributed.LocalCluster`` of two worker
processes on this machine (TCP on localhost, no network) once per module.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import joblib
import numpy as np
import pytest

import bowlrp
from bowlrp.apps.modelfile import load_model, save_model
from bowlrp.collection import describe_sample, explain_collection, fit_collection, image_features, run_tasks
from bowlrp.collection import explain as collection_explain
from bowlrp.collection.engine import model_cache_info
from bowlrp.collection.fit import fit_descriptor_stages
from bowlrp.collection.store import ResultStore, write_atomic
from bowlrp.datasets import make_polygons, read_image
from bowlrp.cli import main
from photo_fixtures import SMALL_PARAM_ARGS, synthetic_folder


NO_DASK = "dask.distributed is not installed (pip install 'dask[distributed]'): no LocalCluster to run on"


def small_pipeline(**bow):
    return bowlrp.ExplainablePipeline([
        ("sift", bowlrp.DenseSIFT(scales=(2.0,), steps=(6,))),
        ("bow", bowlrp.BagOfWords(n_words=12, random_state=0, **bow)),
        ("svm", bowlrp.KernelSVC(kernel="hik")),
    ])


def write_tiles(folder, images):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        p = os.path.join(folder, f"tile_{i:04d}.png")
        assert cv2.imwrite(p, im)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """48 toy tiles as PNG files, a model fitted on the first 40 and its model file."""
    root = tmp_path_factory.mktemp("toy")
    data = make_polygons(n_train=48, n_test_images=1, random_state=1)
    paths = write_tiles(str(root / "tiles"), data.images)
    pipe = small_pipeline().fit(data.images[:40], data.labels[:40])
    model_file = save_model(str(root / "model.joblib"), pipe, model="test")
    return pipe, paths, np.asarray(data.labels), model_file


# ---------------------------------------------------------------- one machine
def test_run_tasks_returns_every_result_and_refuses_two_backends():
    assert sorted(run_tasks(divmod, [(7, 2), (9, 4), (1, 1)], verbose=False)) == [(1, 0), (2, 1), (3, 1)]
    with pytest.raises(ValueError, match="not both"):
        list(run_tasks(divmod, [(1, 1)], n_jobs=2, client=object(), verbose=False))


def test_atomic_write_leaves_nothing_under_the_real_name(tmp_path):
    target = tmp_path / "x.json"

    def fail(fh):
        fh.write(b'{"half": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(target), fail)
    assert os.listdir(tmp_path) == []  # neither the file nor its temporary
    write_atomic(str(target), lambda fh: fh.write(b"{}"))
    assert target.read_bytes() == b"{}" and os.listdir(tmp_path) == ["x.json"]


def test_serial_run_equals_direct_explanations(toy, tmp_path):
    pipe, paths, labels, _ = toy
    done = explain_collection(pipe, paths[:6], str(tmp_path), gallery=False, verbose=False)
    assert (done.n_images, done.n_explained, done.n_resumed, done.n_failed) == (6, 6, 0, 0)
    for i, row in enumerate(done.rows()):
        exp = pipe.explain([read_image(paths[i])], target=row["target"])
        np.testing.assert_array_equal(done.pixel_map(i), exp.pixels[0])
        assert row["relative_residual"] < 1e-8 and set(row["scores"]) == set(pipe.classes_.tolist())
    # no gallery files; and no copy of a model that only this process used
    assert sorted(os.listdir(tmp_path)) == ["maps", "rows", "run.json", "summary.csv"]


def test_interrupted_serial_run_resumes_and_redoes_half_written_results(toy, tmp_path, monkeypatch):
    pipe, paths, labels, _ = toy
    real = collection_explain.explain_one
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(kwargs["index"])
        if len(calls) == 5:
            raise KeyboardInterrupt  # Ctrl-C while the fifth image is explained
        return real(*args, **kwargs)

    monkeypatch.setattr(collection_explain, "explain_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        explain_collection(pipe, paths[:8], str(tmp_path), gallery=False, verbose=False)
    monkeypatch.setattr(collection_explain, "explain_one", real)
    store = ResultStore(str(tmp_path))
    assert len(os.listdir(tmp_path / "rows")) == 4 and not (tmp_path / "summary.csv").exists()
    ids = [json.loads((tmp_path / "rows" / f).read_text())["id"] for f in sorted(os.listdir(tmp_path / "rows"))]
    os.remove(store.map_path(ids[0]))  # a row whose map is gone is not done
    (tmp_path / "rows" / (ids[1] + ".json")).write_text('{"id": ')  # nor is a truncated row
    (tmp_path / "rows" / ".left.json.part").write_text("{")  # what a killed writer leaves
    done = explain_collection(pipe, paths[:8], str(tmp_path), gallery=False, verbose=False)
    assert done.n_resumed == 2 and done.n_explained == 8
    assert ".left.json.part" not in os.listdir(tmp_path / "rows")
    fresh = explain_collection(pipe, paths[:8], str(tmp_path / "fresh"), gallery=False, verbose=False)
    for i in range(8):
        np.testing.assert_array_equal(done.pixel_map(i), fresh.pixel_map(i))


def test_rerun_redoes_changed_images_and_other_settings(toy, tmp_path):
    pipe, paths, labels, _ = toy
    local = write_tiles(str(tmp_path / "imgs"), [read_image(p) for p in paths[:3]])
    out = str(tmp_path / "out")
    explain_collection(pipe, local, out, gallery=False, verbose=False)
    assert explain_collection(pipe, local, out, gallery=False, verbose=False).n_resumed == 3
    os.utime(local[1], ns=(1, 1))  # the file changed: its result is redone
    assert explain_collection(pipe, local, out, gallery=False, verbose=False).n_resumed == 2
    assert explain_collection(pipe, local, out, gallery=False, rule="epsilon", verbose=False).n_resumed == 0
    assert explain_collection(pipe, local, out, gallery=False, rule="epsilon", verbose=False).n_resumed == 3
    assert explain_collection(pipe, local, out, gallery=False, rule="epsilon", resume=False,
                              verbose=False).n_resumed == 0


def test_gallery_rerun_takes_finished_maps_from_the_archive(toy, tmp_path):
    pipe, paths, labels, model_file = toy
    first = explain_collection(model_file, paths[:3], str(tmp_path), verbose=False)
    assert not (tmp_path / "maps").exists() and not (tmp_path / "model.joblib").exists()
    again = explain_collection(model_file, paths[:4], str(tmp_path), verbose=False)
    assert again.n_resumed == 3 and again.n_explained == 4
    with np.load(again.files["pixel_maps"]) as z:
        assert sorted(z.files) == sorted(again.ids)
        for i in range(3):
            np.testing.assert_array_equal(z[again.ids[i]], first.pixel_map(i))


def test_bad_inputs_are_named(toy, tmp_path):
    pipe, paths, labels, _ = toy
    with pytest.raises(ValueError, match="paths is empty"):
        explain_collection(pipe, [], str(tmp_path), verbose=False)
    with pytest.raises(TypeError, match="fitted bowlrp.ExplainablePipeline or the path"):
        explain_collection(object(), paths, str(tmp_path), verbose=False)
    with pytest.raises(ValueError, match="not a class of the model"):
        explain_collection(pipe, paths, str(tmp_path), target="cat", verbose=False)
    with pytest.raises(ValueError, match="one label per path"):
        fit_collection(small_pipeline(), paths[:4], labels[:3], verbose=False)
    with pytest.raises(ValueError, match="could not be read or described"):
        fit_collection(small_pipeline(), paths[:4] + [str(tmp_path / "missing.png")], labels[:5], verbose=False)
    with pytest.raises(ValueError, match="must take images"):
        fit_collection(bowlrp.ExplainablePipeline([("bow", bowlrp.BagOfWords()), ("svm", bowlrp.KernelSVC())]),
                       paths[:2], labels[:2], verbose=False)


def test_fit_collection_equals_pipeline_fit_when_every_descriptor_fits_the_sample(toy, monkeypatch):
    pipe, paths, labels, _ = toy
    images = [read_image(p) for p in paths[:40]]
    ref = small_pipeline().fit(images, labels[:40])
    from bowlrp.collection import fit as collection_fit

    reads = []
    real = collection_fit._read
    monkeypatch.setattr(collection_fit, "_read", lambda *a: reads.append(a[0]) or real(*a))
    got = fit_collection(small_pipeline(), paths[:40], labels[:40], verbose=False)
    assert len(reads) == 40  # each image read and described once: the whole sets are encoded from the sample
    np.testing.assert_array_equal(got.named_steps["bow"].vocabularies_[0], ref.named_steps["bow"].vocabularies_[0])
    np.testing.assert_array_equal(got.decision_function(images), ref.decision_function(images))


def test_features_encoded_from_whole_sample_sets_equal_those_read_again(toy):
    pipe, paths, labels, _ = toy
    fv = bowlrp.ExplainablePipeline([
        ("sift", bowlrp.DenseSIFT(scales=(2.0,), steps=(6,))),
        ("pca", bowlrp.DescriptorPCA(n_components=8, random_state=0)),
        ("fv", bowlrp.FisherVectorEncoder(n_components=3, random_state=0)),
        ("svm", bowlrp.KernelSVC(kernel="linear")),
    ])
    # 196 descriptors per tile: a share of 200 holds every one of them, a share of 50 none
    whole = describe_sample(fv, paths[:20], n_per_image=200, verbose=False)
    part = describe_sample(fv, paths[:20], n_per_image=50, verbose=False)
    assert whole.whole == [True] * 20 and part.whole_sets() == [None] * 20
    fit_descriptor_stages(fv, whole.sets)  # fitting PCA and GMM must leave the sets as they were
    held = whole.whole_sets()
    held[3] = None  # one image read again, the others encoded here in chunks of 7
    got, errors = image_features(fv, paths[:20], descriptors=held, chunk=7, verbose=False)
    read, _ = image_features(fv, paths[:20], verbose=False)
    assert errors == [] and got.shape == read.shape == (20, fv[:-1].transform([read_image(paths[0])]).shape[1])
    np.testing.assert_allclose(got, read, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="descriptors has 2 entries for 20 paths"):
        image_features(fv, paths[:20], descriptors=held[:2], verbose=False)


def test_sample_caps_each_image_and_level_with_draws_from_its_own_stream(toy):
    pipe, paths, labels, _ = toy
    full = bowlrp.DenseSIFT(scales=(2.0,), steps=(6,)).transform([read_image(p, gray=True) for p in paths[:5]])
    s = describe_sample(small_pipeline(), paths[:5], n_per_image=7, random_state=3, verbose=False)
    assert s.errors == [] and s.shapes == [(102, 102)] * 5 and s.whole == [False] * 5
    assert s.whole_sets() == [None] * 5  # none can be encoded from its sample: all are described again
    for i, (ds, whole) in enumerate(zip(s.sets, full)):
        assert len(ds) == 7 < len(whole)
        rows = [np.flatnonzero((whole.descriptors == d).all(axis=1))[0] for d in ds.descriptors]
        assert rows == sorted(rows)  # a subset, in the original order, with its geometry
        np.testing.assert_array_equal(ds.centers, whole.centers[rows])
    again = describe_sample(small_pipeline(), paths[:5], n_per_image=7, random_state=3, n_jobs=1, verbose=False)
    other = describe_sample(small_pipeline(), paths[:5], n_per_image=7, random_state=4, verbose=False)
    assert all(np.array_equal(a.descriptors, b.descriptors) for a, b in zip(s.sets, again.sets))
    assert not all(np.array_equal(a.descriptors, b.descriptors) for a, b in zip(s.sets, other.sets))
    # the cap follows the encoder's own: max_descriptors=60 over 5 images is 12 per image
    assert describe_sample(small_pipeline(max_descriptors=60), paths[:5], verbose=False).n_per_image == 12
    whole = describe_sample(small_pipeline(), paths[:5], verbose=False)  # 50000 per level: every descriptor
    assert whole.whole == [True] * 5
    for ds, full_set in zip(whole.whole_sets(), full):
        np.testing.assert_array_equal(ds.descriptors, full_set.descriptors)


# ---------------------------------------------------------------- a Dask cluster
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason=NO_DASK)
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40)
    client = distributed.Client(lc)
    client.wait_for_workers(2)
    yield lc, client
    client.close()
    lc.close()


def test_cluster_run_equals_serial_and_reads_the_model_once_per_worker(toy, cluster, tmp_path):
    pipe, paths, labels, model_file = toy
    _, client = cluster
    before = client.run(model_cache_info)
    serial = explain_collection(model_file, paths[:16], str(tmp_path / "serial"), gallery=False, verbose=False)
    dask = explain_collection(model_file, paths[:16], str(tmp_path / "dask"), gallery=False, client=client,
                              verbose=False)
    again = explain_collection(model_file, paths[16:24], str(tmp_path / "dask2"), gallery=False, client=client,
                               verbose=False)
    assert dask.n_explained == 16 and again.n_explained == 8
    for i in range(16):
        np.testing.assert_array_equal(dask.pixel_map(i), serial.pixel_map(i))
    for a, b in zip(serial.rows(), dask.rows()):
        assert a["predicted"] == b["predicted"] and a["score"] == b["score"]
    after = client.run(model_cache_info)
    assert sum(after[w]["loads"] - before[w]["loads"] for w in after) <= len(after)  # once per worker at most


def _thread_name(i):
    return threading.current_thread().name


def test_a_cluster_of_one_thread_still_computes_on_the_cluster():
    distributed = pytest.importorskip("distributed", reason=NO_DASK)
    # joblib computes in the calling process when its backend offers one worker; ours must not
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=40) as lc, distributed.Client(lc) as client:
        names = set(run_tasks(_thread_name, [(i,) for i in range(6)], client=client, verbose=False))
    assert names and all("Dask" in n for n in names), names


def test_joblib_dask_backend_is_the_same_code_path(toy, cluster, tmp_path):
    pipe, paths, labels, _ = toy
    _, client = cluster
    serial = explain_collection(pipe, paths[:6], str(tmp_path / "serial"), gallery=False, verbose=False)
    with joblib.parallel_config(backend="dask"):  # the default client of this process: the cluster's
        dask = explain_collection(pipe, paths[:6], str(tmp_path / "dask"), gallery=False, verbose=False)
    assert os.path.exists(tmp_path / "dask" / "model.joblib")  # what the workers read the pipeline from
    for i in range(6):
        np.testing.assert_array_equal(dask.pixel_map(i), serial.pixel_map(i))


def test_fit_on_the_cluster_equals_serial_with_a_sample_drawn_per_image(toy, cluster):
    pipe, paths, labels, _ = toy
    _, client = cluster
    make = lambda: small_pipeline(max_descriptors=200)  # noqa: E731  (5 descriptors of 64 per image)
    serial = fit_collection(make(), paths[:40], labels[:40], random_state=5, verbose=False)
    dask = fit_collection(make(), paths[:40], labels[:40], random_state=5, client=client, verbose=False)
    np.testing.assert_array_equal(dask.named_steps["bow"].vocabularies_[0],
                                  serial.named_steps["bow"].vocabularies_[0])
    F, errors = image_features(dask, paths[40:], client=client, verbose=False)
    assert errors == [] and F.shape == (8, 12)
    np.testing.assert_allclose(F, serial[:-1].transform([read_image(p, gray=True) for p in paths[40:]]),
                               rtol=1e-12, atol=1e-15)


def test_workers_that_cannot_see_the_files_are_named(toy, cluster, tmp_path):
    pipe, paths, labels, model_file = toy
    _, client = cluster
    from bowlrp.collection.engine import check_workers

    with pytest.raises(OSError, match="2 of 2 Dask workers cannot reach"):
        check_workers(client, read=[str(tmp_path / "nowhere.joblib")])


def test_cli_train_and_explain_take_a_scheduler(cluster, tmp_path, capsys):
    lc, client = cluster
    photos = tmp_path / "photos"
    synthetic_folder(str(photos), n_per_class=8, broken=False)
    params = [a for p in SMALL_PARAM_ARGS for a in ("--param", p)]
    assert main(["train", str(photos), "--out", str(tmp_path / "a.joblib"), *params]) == 0
    assert main(["train", str(photos), "--out", str(tmp_path / "b.joblib"), "--scheduler", lc.scheduler_address,
                 *params]) == 0
    a, _ = load_model(str(tmp_path / "a.joblib"))
    b, _ = load_model(str(tmp_path / "b.joblib"))
    np.testing.assert_array_equal(a.named_steps["bow"].vocabularies_[0], b.named_steps["bow"].vocabularies_[0])
    capsys.readouterr()
    status = main(["explain", str(tmp_path / "b.joblib"), str(photos), "--out", str(tmp_path / "report"),
                   "--scheduler", lc.scheduler_address, "--no-gallery"])
    assert status == 0 and "explained 16 of 16 images; open" in capsys.readouterr().out
    assert main(["explain", str(tmp_path / "b.joblib"), str(photos), "--out", str(tmp_path / "report"),
                 "--scheduler", lc.scheduler_address, "--no-gallery"]) == 0
    assert "(16 kept from an earlier run)" in capsys.readouterr().out
    assert main(["explain", str(tmp_path / "b.joblib"), str(photos), "--out", str(tmp_path / "r2"),
                 "--scheduler", lc.scheduler_address, "--n-jobs", "2"]) == 2
    assert "--n-jobs (workers on this machine) or --scheduler" in capsys.readouterr().err


# ---------------------------------------------------------------- 500 images, a killed worker, an interruption
def _rows_done(out):
    try:
        return sum(1 for f in os.listdir(os.path.join(out, "rows")) if f.endswith(".json") and not f.startswith("."))
    except FileNotFoundError:
        return 0


def _when(out, n, action, timeout=600):
    """Run ``action()`` in a thread once ``out`` holds ``n`` finished rows; return the thread and what it saw."""
    seen = {}

    def watch():
        t0 = time.monotonic()
        while _rows_done(out) < n and time.monotonic() - t0 < timeout:
            time.sleep(0.02)
        seen["rows"] = _rows_done(out)
        action()

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    return th, seen


@pytest.fixture(scope="module")
def toy500(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy500")
    data = make_polygons(n_train=700, n_test_images=1, random_state=2)
    pipe = small_pipeline().fit(data.images[500:], data.labels[500:])
    images = data.images[:500]
    paths = write_tiles(str(root / "tiles"), images)
    model_file = save_model(str(root / "model.joblib"), pipe, model="test")
    predicted = pipe.predict(images)
    ref = pipe.explain(images, target=predicted)  # serial, in one batch, each image's predicted class
    return paths, model_file, (ref, predicted), pipe


def _check_against_serial(done, serial, pipe):
    ref, predicted = serial
    assert done.n_explained == 500 and done.n_failed == 0
    for i, row in enumerate(done.rows()):
        assert row["predicted"] == predicted[i].item()
        np.testing.assert_allclose(done.pixel_map(i), ref.pixels[i], rtol=1e-9,
                                   atol=1e-12 * np.abs(ref.pixels[i]).max())
        assert row["explained_score"] == pytest.approx(float(ref.score[i]), rel=1e-9, abs=1e-12)


@pytest.mark.slow  # 500 images on 2 worker processes, twice: about a minute on 2 cores
def test_500_images_survive_a_killed_worker(cluster, toy500, tmp_path):
    # the cluster fixture comes first: without dask.distributed this skips before toy500 explains 500 images
    paths, model_file, ref, pipe = toy500
    lc, client = cluster
    pids = list(client.run(os.getpid).values())
    out = str(tmp_path / "killed")
    th, seen = _when(out, 100, lambda: os.kill(pids[0], signal.SIGKILL))
    done = explain_collection(model_file, paths, out, gallery=False, client=client, verbose=False)
    th.join()
    assert 100 <= seen["rows"] < 500  # the worker died mid-run
    assert pids[0] not in client.run(os.getpid).values()  # its nanny started a new process
    _check_against_serial(done, ref, pipe)
    client.wait_for_workers(2)


@pytest.mark.slow
def test_500_images_resume_after_the_client_is_killed(cluster, toy500, tmp_path):
    paths, model_file, ref, pipe = toy500
    lc, client = cluster
    folder = os.path.dirname(paths[0])
    out = str(tmp_path / "interrupted")
    cmd = [sys.executable, "-m", "bowlrp", "explain", model_file, folder, "--out", out, "--no-gallery",
           "--scheduler", lc.scheduler_address]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    th, seen = _when(out, 150, lambda: proc.send_signal(signal.SIGKILL))
    th.join()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and 150 <= seen["rows"] < 500
    assert not os.path.exists(os.path.join(out, "summary.csv"))
    time.sleep(1.0)  # tasks already running on the workers finish after the client is gone
    done = explain_collection(model_file, paths, out, gallery=False, client=client, verbose=False)
    assert seen["rows"] <= done.n_resumed < 500
    _check_against_serial(done, ref, pipe)
