"""The Clever-Hans study: a planted watermark is used by the model, seen in its heatmaps and found by SpRAy."""

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from sklearn.metrics import adjusted_rand_score

from bowlrp.apps.clever_hans import (SPRAY_NORMALISED, TOY_LP_RANGE, cheating_clusters, photo_tiles, relevance_share, run_clever_hans_demo,
                                     run_study, spray_choices)
from bowlrp.apps.demo import toy_pipeline
from bowlrp.apps.models import make_model
from bowlrp.datasets import make_polygons
from bowlrp.datasets.watermark import stamp_watermark, watermark_mask

pytest.importorskip("skimage")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Threaded k-means on a busy 2-core machine is many times slower than one thread."""
    with threadpool_limits(limits=1):
        yield


def fv_small():
    return make_model("fv-linear", {"fv__n_components": 4, "fv__pca": 16}, random_state=0)


@pytest.fixture(scope="module")
def photos():
    """Alike gravel tiles in two classes; the mark in half of class 0 (train and test); a cheating and a clean model."""
    Xtr, ytr, Xte, yte = photo_tiles(("gravel", "gravel"))
    rng = np.random.default_rng(0)
    mtr = (ytr == 0) & (rng.uniform(size=len(ytr)) < 0.5)
    mte = (yte == 0) & (rng.uniform(size=len(yte)) < 0.5)
    cheat = run_study(Xtr, ytr, Xte, yte, 0, mtr, mte, fv_small, extra_spray=SPRAY_NORMALISED)
    clean = run_study(Xtr, ytr, Xte, yte, 0, np.zeros_like(mtr), mte, fv_small, extra_spray=SPRAY_NORMALISED)
    return cheat, clean


def test_photo_tiles_split_the_photograph_top_and_bottom():
    Xtr, ytr, Xte, yte = photo_tiles(("grass", "gravel"), tile_size=64, stride=64)
    assert Xtr.shape == (2 * 4 * 8, 64, 64) and Xte.shape == Xtr.shape
    assert np.bincount(ytr).tolist() == [32, 32]
    same = photo_tiles(("gravel", "gravel"), tile_size=64, stride=64)
    assert np.bincount(same[1]).tolist() == [16, 16]
    assert not any((a == b).all() for a in same[0][same[1] == 0] for b in same[0][same[1] == 1])


def test_relevance_share_and_cheating_cluster_measures():
    mask = np.zeros((4, 4), bool)
    mask[2:, :2] = True
    maps = np.zeros((2, 4, 4))
    maps[0, 2:, :2] = 1.0
    maps[0, 0, 0] = 1.0
    maps[1, 0, :] = 1.0
    maps[1, 3, 0] = -5.0  # negative relevance on the mark does not count
    np.testing.assert_allclose(relevance_share(maps, mask), [0.8, 0.0])


def test_the_cheating_model_uses_the_mark_and_spray_finds_it(photos):
    cheat, _ = photos
    area = cheat["mark_area"]
    # the mark flips every decision on the other class
    assert cheat["other_class_called_marked_class"]["clean"] < 0.1
    assert cheat["other_class_called_marked_class"]["with_mark"] > 0.9
    # heatmaps: the positive relevance on the mark is several times its area
    assert cheat["positive_relevance_on_mark"]["marked"] > 3 * area
    assert cheat["positive_relevance_on_mark"]["unmarked"] < 1.5 * area
    # SpRAy, its own number of clusters, against the marked / unmarked truth
    s = cheat["spray"]
    assert s["n_clusters"] == 2 and s["ari"] >= 0.9
    assert len(s["clusters_on_mark"]) == 1
    a = cheat["_arrays"]
    on_mark = np.isin(a["spray"].labels_, s["clusters_on_mark"])
    assert adjusted_rand_score(a["truth"], on_mark) == pytest.approx(s["ari_on_mark_vs_rest"])
    assert s["ari_on_mark_vs_rest"] >= 0.9
    assert cheat["spray_normalised"]["ari"] >= 0.9


def test_the_clean_model_shows_no_cheating_cluster(photos):
    cheat, clean = photos
    # the classes look alike: the clean model guesses, and the unseen mark moves guesses too, but less
    assert clean["other_class_called_marked_class"]["with_mark"] < cheat["other_class_called_marked_class"]["with_mark"] - 0.3
    assert clean["positive_relevance_on_mark"]["marked"] < 1.5 * clean["mark_area"]
    s = clean["spray"]
    assert s["clusters_on_mark"] == []
    assert s["ari"] < 0.2
    a = clean["_arrays"]
    cheat, share = cheating_clusters(a["spray"], a["maps"], a["mask"])
    assert cheat == [] and max(share) < 3 * a["mask"].mean()
    assert clean["spray_normalised"]["clusters_on_mark"] == []
    assert clean["spray"]["n_clusters"] == 1


def test_spray_choices_table(photos):
    cheat, _ = photos
    a = cheat["_arrays"]
    rows = spray_choices(a["maps"], a["truth"], choices={"grid": ((10, 10),), "n_neighbors": (None, "ln"),
                                                         "normalize": ("none", "l2"), "part": ("signed",)})
    assert [(r["grid"], r["n_neighbors"], r["normalize"]) for r in rows] == [
        ("10x10", "default", "none"), ("10x10", "ceil(ln n)", "none"), ("10x10", "default", "l2"),
        ("10x10", "ceil(ln n)", "l2")]
    # the library's defaults and the demo's second SpRAy, measured again by the table
    assert rows[0]["ari"] == pytest.approx(cheat["spray"]["ari"], abs=1e-4)
    assert rows[2]["ari"] == pytest.approx(cheat["spray_normalised"]["ari"], abs=1e-4)


def test_toy_model_puts_relevance_on_the_mark():
    d = make_polygons(n_train=240, n_test_images=1, random_state=0)
    rng = np.random.default_rng(0)
    mtr = (d.labels == 1) & (rng.uniform(size=len(d.labels)) < 0.5)
    mte = (d.test_labels == 1) & (rng.uniform(size=len(d.test_labels)) < 0.5)
    r = run_study(d.images, d.labels, d.test_images, d.test_labels, 1, mtr, mte,
                  lambda: toy_pipeline(n_words=32, random_state=0))
    rel = r["positive_relevance_on_mark"]
    assert rel["marked"] > 2 * r["mark_area"] and rel["marked"] > 3 * rel["unmarked"]
    assert r["other_class_called_marked_class"]["with_mark"] > r["other_class_called_marked_class"]["clean"] + 0.2


def test_spray_defaults_separate_the_marked_toy_explanations():
    """On toy polygons the mark adds relevance in one corner on top of polygons anywhere in the tile: SpRAy's
    defaults (maps compared as they are) separate the marked maps; scaled to unit norm they cluster by where
    the polygons are."""
    d = make_polygons(n_train=400, n_test_images=1, lp_range=TOY_LP_RANGE, random_state=1)
    rng = np.random.default_rng(1)
    mtr = (d.labels == 1) & (rng.uniform(size=len(d.labels)) < 0.5)
    mte = (d.test_labels == 1) & (rng.uniform(size=len(d.test_labels)) < 0.5)
    r = run_study(d.images, d.labels, d.test_images, d.test_labels, 1, mtr, mte,
                  lambda: toy_pipeline(n_words=64, random_state=0), extra_spray=SPRAY_NORMALISED)
    s = r["spray"]
    assert s["n_clusters"] == 2 and s["ari"] >= 0.9
    assert len(s["clusters_on_mark"]) == 1 and s["ari_on_mark_vs_rest"] >= 0.9
    assert r["spray_normalised"]["ari"] < 0.5


def test_watermark_mask_matches_the_stamped_pixels():
    X = np.full((1, 64, 64), 128, np.uint8)
    Y = stamp_watermark(X, pattern="big-tag")
    changed = Y[0] != 128
    box = watermark_mask((64, 64), "big-tag")
    assert changed.any() and not (changed & ~box).any() and box.sum() == 24 * 24


def test_unknown_study_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown studies"):
        run_clever_hans_demo(str(tmp_path), studies=("horses",))


@pytest.mark.slow
def test_full_demo(tmp_path):
    s = run_clever_hans_demo(str(tmp_path / "ch"), log=lambda *a: None)
    for name in ("clever_hans.png", "index.html", "summary.json", "spray_toy.png", "spray_photos.png",
                 "spray_choices_toy.csv"):
        assert (tmp_path / "ch" / name).exists()
    saved = json.loads((tmp_path / "ch" / "summary.json").read_text())
    assert saved["studies"]["photos"]["spray"]["ari"] >= 0.9
    assert saved["studies"]["photos-clean"]["spray"]["clusters_on_mark"] == []
    toy, toy_clean = saved["studies"]["toy"], saved["studies"]["toy-clean"]
    assert toy["positive_relevance_on_mark"]["marked"] > 3 * toy["mark_area"]
    assert toy["spray"]["ari"] >= 0.9 and toy["spray"]["n_clusters"] == 2
    assert toy_clean["spray"]["clusters_on_mark"] == [] and toy_clean["spray"]["n_clusters"] == 1
    assert s["seconds"]["total"] > 0
