"""The explain loop and its gallery: files per image, index.html links, summary.csv, the pixel-map archive."""

import csv
import os
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pytest

from bowlrp.apps.explain import explain_one, explain_paths
from bowlrp.apps.report import CSV_FIELDS, file_id
from bowlrp.datasets import read_image
from photo_fixtures import fitted_small_model, synthetic_folder, write


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.hrefs, self.cards = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag == "div" and "card" in a.get("class", "").split():
            self.cards += 1


def parse_links(path):
    p = _Links()
    with open(path, encoding="utf-8") as fh:
        p.feed(fh.read())
    return p


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    paths, bad = synthetic_folder(str(root), n_per_class=8)
    pipe, data = fitted_small_model(str(root))
    tiny = write(str(root / "tiny.png"), np.zeros((10, 12), np.uint8))
    out = str(tmp_path_factory.mktemp("report"))
    inputs = paths[:4] + paths[-4:] + [bad, tiny]
    folder = [os.path.basename(os.path.dirname(p)) for p in inputs]
    rows = explain_paths(pipe, inputs, out, folder_classes=folder, verbose=False, meta={"model": "test"})
    return pipe, inputs, bad, tiny, out, rows


def test_rows_and_files(gallery):
    pipe, inputs, bad, tiny, out, rows = gallery
    assert [r["path"] for r in rows] == inputs
    ok = [r for r in rows if not r.get("error")]
    assert len(ok) == 8
    errors = {r["path"]: r["error"] for r in rows if r.get("error")}
    assert "could not decode" in errors[bad]
    assert "too small" in errors[tiny]
    for r in ok:
        for key in ("panel", "heatmap", "thumb_image", "thumb_heatmap"):
            assert os.path.getsize(os.path.join(out, r[key])) > 0
        assert r["predicted"] in ("spots", "stripes") and r["target"] == r["predicted"]
        assert r["relative_residual"] < 1e-8  # HIK with the z rule is exact (eq. 2.70-2.72, 2.79)
    assert not os.path.exists(os.path.join(out, "maps"))  # gathered into the archive


def test_pixel_maps_match_a_direct_explanation(gallery):
    pipe, inputs, bad, tiny, out, rows = gallery
    maps = np.load(os.path.join(out, "pixel_maps.npz"))
    ok = [r for r in rows if not r.get("error")]
    assert sorted(maps.files) == sorted(r["npz_key"] for r in ok)
    for r in ok[:3]:
        img = read_image(r["path"])
        exp = pipe.explain([img], target=r["target"])
        np.testing.assert_allclose(maps[r["npz_key"]], exp.pixels[0], rtol=1e-12, atol=1e-15)
        assert maps[r["npz_key"]].shape == img.shape[:2]
        assert np.isclose(r["explained_score"], float(pipe.decision_function([img])[0]) *
                          (1 if r["target"] == pipe.classes_[1] else -1))


def test_summary_csv(gallery):
    _, inputs, bad, _, out, rows = gallery
    with open(os.path.join(out, "summary.csv"), newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == CSV_FIELDS
    assert [t["path"] for t in table] == inputs
    for t, r in zip(table, rows):
        if r.get("error"):
            assert t["error"] and not t["predicted"]
        else:
            assert t["predicted"] == r["predicted"] and float(t["score"]) == pytest.approx(r["score"])
            assert t["target"] == r["target"] and float(t["residual"]) == pytest.approx(r["residual"], abs=1e-18)
            assert t["folder_class"] in ("spots", "stripes")


def test_index_html_links_exist_and_show_every_image(gallery):
    _, inputs, bad, tiny, out, rows = gallery
    html = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    links = parse_links(os.path.join(out, "index.html"))
    ok = [r for r in rows if not r.get("error")]
    assert links.cards == len(ok)
    assert len(links.imgs) == 2 * len(ok)  # image and heatmap thumbnail of every explained image
    for target in links.imgs + links.hrefs:
        if target.startswith("#"):
            continue
        assert os.path.isfile(os.path.join(out, unquote(target))), target
    for r in ok:
        assert r["thumb_heatmap"] in links.imgs and r["panel"] in links.hrefs and r["heatmap"] in links.hrefs
    assert "predicted: spots" in html and "predicted: stripes" in html  # grouped by predicted class
    assert "not explained" in html and "broken.png" in html and "tiny.png" in html
    assert html.count('class="sortable"') == 1


def test_explain_one_and_targets(tmp_path):
    root = tmp_path / "photos"
    paths, _ = synthetic_folder(str(root), n_per_class=6, broken=False)
    pipe, _ = fitted_small_model(str(root))
    row = explain_one(pipe, paths[0], str(tmp_path / "out"), index=3, target="spots")
    assert row["id"] == file_id(3, paths[0]) and row["target"] == "spots"
    f = float(pipe.decision_function([read_image(paths[0])])[0])  # binary: f > 0 speaks for classes_[1]
    assert row["explained_score"] == pytest.approx(f if pipe.classes_[1] == "spots" else -f)
    with pytest.raises(ValueError, match="not a class of the model"):
        explain_paths(pipe, paths[:1], str(tmp_path / "o2"), target="cats", verbose=False)
    eps = explain_one(pipe, paths[0], str(tmp_path / "out"), index=4, rule="epsilon", rule_params={"epsilon": 0.5})
    assert eps["relative_residual"] > 1e-6  # the epsilon rule absorbs relevance (eq. 2.22)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="existing file"):
        explain_paths(pipe, paths[:1], str(tmp_path / "file"), verbose=False)


@pytest.mark.slow  # starting two worker processes takes 10-30 s on 2 cores
def test_parallel_workers_give_the_same_maps(tmp_path):
    root = tmp_path / "photos"
    paths, _ = synthetic_folder(str(root), n_per_class=3, broken=False)
    pipe, _ = fitted_small_model(str(root))
    a = explain_paths(pipe, paths, str(tmp_path / "a"), verbose=False)
    b = explain_paths(pipe, paths, str(tmp_path / "b"), n_jobs=2, verbose=False)
    ma, mb = np.load(str(tmp_path / "a" / "pixel_maps.npz")), np.load(str(tmp_path / "b" / "pixel_maps.npz"))
    for ra, rb in zip(a, b):
        assert ra["predicted"] == rb["predicted"]
        np.testing.assert_array_equal(ma[ra["npz_key"]], mb[rb["npz_key"]])
