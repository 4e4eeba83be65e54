"""SpRAy (thesis Ch. 6) on maps of known structure, its errors, and the ``bowlrp spray`` command."""

import csv
import json
import os

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from bowlrp.cli import main
from bowlrp.evaluation import SpRAy
from bowlrp.evaluation.spray import eigengap, knn_affinity, normalize_maps, pool_relevance, spectral_decomposition

from photo_fixtures import SMALL_PARAM_ARGS, synthetic_folder

PARAMS = [a for p in SMALL_PARAM_ARGS for a in ("--param", p)]


def two_strategies(n=30, seed=0, scale=(1.0, 1.0)):
    """Half the maps hot in a corner (the mark), half on an object near the middle."""
    rng = np.random.default_rng(seed)
    maps, truth = [], []
    for i in range(n):
        h = rng.normal(scale=0.05, size=(32, 32))
        if i % 2:
            h[25:31, 1:7] += scale[0]
            truth.append(1)
        else:
            r, c = rng.integers(11, 15, 2)  # the object, near the middle
            h[r:r + 8, c:c + 8] += scale[1]
            truth.append(0)
        maps.append(h * rng.uniform(0.2, 5.0))  # scores differ: normalisation must not care
    return maps, np.array(truth)


def test_spray_puts_the_marked_maps_in_a_cluster_of_their_own():
    maps, truth = two_strategies()  # scores differ 25-fold: compare the maps by place alone
    sp = SpRAy(normalize="l2", random_state=0).fit(maps)
    # the corner maps are a component of the kNN graph of their own: a zero eigenvalue per component
    np.testing.assert_allclose(sp.eigenvalues_[:2], 0.0, atol=1e-8)
    assert sp.eigenvalues_[2] > 0.02
    marked = set(sp.labels_[truth == 1])
    assert len(marked) == 1 and not set(sp.labels_[truth == 0]) & marked
    assert sp.n_clusters_ == 2
    k = sp.n_clusters_
    assert sp.eigengap_ == pytest.approx(sp.eigenvalues_[k] - sp.eigenvalues_[k - 1])
    assert sp.eigengap_ == pytest.approx(np.max(np.diff(sp.eigenvalues_)))
    assert sp.embedding_.shape == (len(maps), 2)
    np.testing.assert_allclose(sp.eigengaps_, np.diff(sp.eigenvalues_))
    assert np.all(np.diff(sp.eigenvalues_) >= -1e-12)
    two = SpRAy(normalize="l2", n_clusters=2, embedding=None, random_state=0).fit(maps)
    assert adjusted_rand_score(truth, two.labels_) == 1.0
    means = two.cluster_means(maps)
    mark = int(two.labels_[truth == 1][0])
    assert means[mark][25:31, 1:7].mean() > 0.5 and abs(means[1 - mark][25:31, 1:7].mean()) < 0.1


def test_without_normalisation_the_scores_decide_and_with_it_the_places():
    maps, truth = two_strategies(seed=1)
    rng = np.random.default_rng(1)
    scale = np.where(rng.uniform(size=len(maps)) < 0.5, 0.1, 10.0)  # two score levels across both strategies
    maps = [m * s for m, s in zip(maps, scale)]
    good = SpRAy(normalize="l2", n_clusters=2, embedding=None, random_state=0).fit(maps)
    raw = SpRAy(normalize="none", n_clusters=2, embedding=None, random_state=0).fit(maps)
    assert adjusted_rand_score(truth, good.labels_) == 1.0
    assert adjusted_rand_score(truth, raw.labels_) < 0.9  # compared as they are, the score levels split the maps


def test_fixed_number_of_clusters_and_spectral_embedding():
    maps, truth = two_strategies()
    sp = SpRAy(n_clusters=3, embedding="spectral", random_state=0).fit(maps)
    assert sp.labels_.max() == 2 and sp.n_clusters_ in (2, 3)  # n_clusters_: the eigengap's estimate regardless
    assert np.all(np.diff(np.bincount(sp.labels_)) <= 0)  # numbered by decreasing size
    assert sp.embedding_.shape == (len(maps), 2)


def test_pooling_normalising_and_the_graph_against_slow_references():
    rng = np.random.default_rng(3)
    h = rng.normal(size=(7, 9))
    pooled = pool_relevance([h], grid=(2, 3))[0]
    re, ce = np.rint(np.linspace(0, 7, 3)).astype(int), np.rint(np.linspace(0, 9, 4)).astype(int)
    slow = [h[re[i]:re[i + 1], ce[j]:ce[j + 1]].sum() for i in range(2) for j in range(3)]
    np.testing.assert_allclose(pooled, slow)
    np.testing.assert_allclose(pool_relevance([h], (2, 3), "positive")[0].sum(), np.clip(h, 0, None).sum())
    X = rng.normal(size=(5, 4))
    np.testing.assert_allclose(np.linalg.norm(normalize_maps(X, "l2"), axis=1), 1.0)
    np.testing.assert_allclose(np.abs(normalize_maps(X, "sum")).sum(1), 1.0)
    np.testing.assert_allclose(np.abs(normalize_maps(X, "max")).max(1), 1.0)
    W = knn_affinity(X, 2).toarray()
    d = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    slow = np.zeros((5, 5))
    for i in range(5):
        slow[i, np.argsort(d[i])[:2]] = 1
    np.testing.assert_array_equal(W, np.maximum(slow, slow.T))
    ev, _ = spectral_decomposition(W, 5)
    Dm = np.diag(1 / np.sqrt(W.sum(1)))
    np.testing.assert_allclose(ev, np.clip(np.linalg.eigvalsh(np.eye(5) - Dm @ W @ Dm), 0, None), atol=1e-10)
    assert eigengap([0.0, 0.0, 0.5, 0.6]) == (2, 0.5)


@pytest.mark.parametrize("maps, params, needle", [
    ([np.ones((12, 12))] * 2, {}, "at least 3 maps"),
    ([np.ones((12, 12)), np.full((12, 12), np.nan), np.ones((12, 12))], {}, "NaN"),
    ([np.ones((3, 3))] * 5, {"grid": (4, 4)}, "smaller than the grid"),
    ([np.ones((12, 12))] * 5, {"n_neighbors": 5}, "n_neighbors"),
    ([np.ones((12, 12))] * 5, {"n_clusters": 6}, "n_clusters=6"),
    ([np.ones((12, 12))] * 5, {"normalize": "l3"}, "normalize"),
    ([np.ones((12, 12))] * 5, {"embedding": "umap"}, "embedding"),
])
def test_bad_inputs_are_clear_errors(maps, params, needle):
    with pytest.raises(ValueError, match=needle):
        SpRAy(**params).fit(maps)


# ------------------------------------------------------------------ bowlrp spray
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("spray")
    photos = root / "photos"
    synthetic_folder(str(photos), n_per_class=10, broken=False)
    model = root / "model.joblib"
    assert main(["train", str(photos), "--model", "bow-hik", "--out", str(model), "--test-size", "0", *PARAMS]) == 0
    return root, photos, model


def test_cli_spray_writes_clusters_page_and_figures(trained, capsys):
    root, photos, model = trained
    out = root / "out"
    status = main(["spray", str(model), str(photos), "--class", "stripes", "--out", str(out), "--grid", "4"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "SpRAy on the 10 images in folders named 'stripes'" in text
    with open(out / "clusters.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and all(os.path.basename(os.path.dirname(r["path"])) == "stripes" for r in rows)
    summary = json.loads((out / "spray.json").read_text())
    assert sorted({int(r["cluster"]) for r in rows}) == list(range(summary["n_clusters"]))
    assert summary["n_clusters"] == summary["n_clusters_eigengap"]
    assert summary["target"] == "stripes" and summary["spray"]["grid"] == [4, 4]
    for name in ("spectrum.png", "embedding.png", "clusters.png", "index.html"):
        with open(out / name, "rb") as fh:
            assert fh.read(4) in (b"\x89PNG", b"<!DO", b"<htm")
    page = (out / "spray.html").read_text()
    assert "spectrum.png" in page and "clusters.csv" in page and f"cluster {summary['n_clusters'] - 1}:" in page


def test_cli_spray_fixed_number_of_clusters(trained, capsys):
    root, photos, model = trained
    out = root / "out3"
    assert main(["spray", str(model), str(photos / "spots"), "--class", "spots", "--out", str(out),
                 "--n-clusters", "3", "--grid", "4", "--normalize", "l2"]) == 0
    capsys.readouterr()
    saved = json.loads((out / "spray.json").read_text())
    assert saved["n_clusters"] == 3 and saved["spray"]["normalize"] == "l2"


@pytest.mark.parametrize("extra, needle", [
    (["--class", "horse"], "--class 'horse' is not a class of the model; its classes are"),
    (["--n-clusters", "50"], "more than the 20 images"),
])
def test_cli_spray_errors_are_one_line(trained, capsys, extra, needle):
    root, photos, model = trained
    status = main(["spray", str(model), str(photos), "--out", str(root / "bad"), *extra])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and lines[0].startswith("bowlrp spray: error: ") and needle in lines[0], err


def test_cli_spray_unknown_normalisation_is_a_usage_error(trained, capsys):
    root, photos, model = trained
    with pytest.raises(SystemExit) as exit_:
        main(["spray", str(model), str(photos), "--out", str(root / "bad"), "--normalize", "unit"])
    assert exit_.value.code == 2
    assert "argument --normalize: invalid choice: 'unit'" in capsys.readouterr().err


def test_cli_spray_too_few_images(trained, capsys, tmp_path):
    root, photos, model = trained
    few = sorted((photos / "stripes").iterdir())[:2]
    status = main(["spray", str(model), *map(str, few), "--out", str(tmp_path / "few")])
    err = capsys.readouterr().err
    assert status == 2 and "SpRAy needs at least 3 images, found 2" in err
