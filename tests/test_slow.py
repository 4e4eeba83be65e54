"""The main job at its default size (run in CI with `pytest -m slow`)."""

import json

import pytest

from bowlrp.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_default_size(tmp_path):
    summary = run_demo(out=str(tmp_path))
    assert summary["test_accuracy"] >= 0.90  # thesis: about 97% (Sec. 2.4.3)
    m = summary["mean_pixel_relevance"]
    assert m["polygons"] > 0 and m["polygons"] > m["round_shapes"] and m["polygons"] > m["background"]
    assert summary["conservation"]["max_relative_residual"] < 1e-8
    assert json.loads((tmp_path / "summary.json").read_text())["n_test_tiles"] == 400
    assert all((tmp_path / f"test_image_{k}.png").stat().st_size > 10_000 for k in range(4))
