"""The reproduction table: ``bowlrp reproduce --fast`` runs every measurement and writes the page."""

import re

import numpy as np
import pytest

from bowlrp.apps._repro_common import Row, median_se
from bowlrp.apps._repro_toy import _synthetic_check, estimate_vertices, polygon_shapes
from bowlrp.apps.reproduce import FINDINGS, run_reproduce
from bowlrp.cli import main
from bowlrp.datasets import make_polygons

SOURCES = ("thesis Sec. 2.4.3", "thesis Fig. 4.3", "paper 003 Fig. 4", "thesis Fig. 4.6", "paper 000", "paper 002",
           "paper 004", "zennit")


def test_reproduce_fast_writes_every_row(tmp_path, capsys):
    out = tmp_path / "docs" / "reproduction.md"
    assert main(["reproduce", "--fast", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Reproduction of the papers' findings")
    assert "Fast setting" in text and "`bowlrp reproduce --fast`" in text
    rows = [ln for ln in text.splitlines() if re.match(r"\| \d+ \|", ln)]
    assert len(rows) == 12
    for ln in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
        assert len(cells) == 6
        assert re.match(r"\*\*(yes|partly|no|not measured)\*\*: \S", cells[5]), cells[5]
        assert re.search(r"\d", cells[3]) or cells[5].startswith("**not measured**")
    for src in SOURCES:
        assert any(src in ln for ln in rows), src
    for title in ("Toy polygons", "Rules on Fisher vectors", "Heatmap methods on a CNN", "Context use",
                  "Properties of papers", "Agreement with zennit"):
        assert f"## {title}" in text
    assert re.search(r"\d+\.\d minutes wall-clock, \d+\.\d minutes of CPU time", text)
    assert "wrote" in capsys.readouterr().out


def test_only_runs_a_subset_and_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="only= or --only.; valid: toy, fisher, cnn, context, properties, zennit"):
        run_reproduce(str(tmp_path / "r.md"), fast=True, only="toys")
    assert main(["reproduce", "--fast", "--only", "nope", "--out", str(tmp_path / "r.md")]) == 2
    assert FINDINGS[0] == "toy"


def test_vertex_count_of_regular_polygons():
    assert _synthetic_check(60, seed=3) == 1.0
    square = np.zeros((60, 60), bool)
    square[15:45, 15:45] = True
    assert estimate_vertices(square) == 4
    assert estimate_vertices(np.zeros((10, 10), bool)) is None
    d = make_polygons(n_train=1, n_test_images=1, random_state=0)
    labels, shapes = polygon_shapes(d.test_big_polygon_masks[0])
    assert len(shapes) == labels.max() > 3
    assert {v for _, v in shapes} <= {4, 5, 6, 7}


def test_rows_check_their_verdict_and_error_bars():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Row("s", "c", "m", "p", "maybe", "r")
    med, err = median_se(np.arange(101.0))
    assert med == 50.0 and 2 < err < 8
