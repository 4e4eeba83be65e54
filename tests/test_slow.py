"""The main job at its default size (run in CI with `pytest -m slow`)."""

import json

import pytest

from bowlrp.apps.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_default_size(tmp_path):
    summary = run_demo(out=str(tmp_path))
    hik, chi2 = summary["models"]["hik"], summary["models"]["chi2"]
    assert hik["test_accuracy"] >= 0.90  # thesis: about 97% (Sec. 2.4.3)
    assert chi2["test_accuracy"] >= hik["test_accuracy"] - 0.03  # thesis: chi2 1.6 points better
    for m in (hik["mean_pixel_relevance"], chi2["mean_pixel_relevance"]):
        assert m["polygons"] > 0 and m["polygons"] > m["round_shapes"] and m["polygons"] > m["background"]
    assert hik["residual"]["max_relative"] < 1e-8
    assert chi2["residual"]["roots_found"] == 1.0 and chi2["residual"]["median_relative"] < 0.2
    assert json.loads((tmp_path / "summary.json").read_text())["data"]["n_test_tiles"] == 400
    assert all((tmp_path / f"test_image_{k}.png").stat().st_size > 10_000 for k in range(4))
