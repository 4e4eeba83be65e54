"""Real photographs at full size: the texture demo reaches its accuracy and conserves relevance (slow)."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("skimage")


@pytest.mark.slow
def test_textures_demo_accuracy_conservation_and_files(tmp_path):
    from bowlrp.cli import main

    out = tmp_path / "textures"
    assert main(["demo", "textures", "--out", str(out), "--no-evaluate"]) == 0
    summary = json.load(open(out / "summary.json"))
    assert summary["n_test"] == 48
    assert summary["test_accuracy"] >= 0.95  # bow-hik, three classes, held-out tiles
    assert summary["conservation"]["max_relative_residual"] < 1e-8  # HIK and rule z are exact
    for name, v in summary["mosaic"].items():  # each class's evidence lies mostly on its own tiles
        assert v["positive_relevance_on_own_tiles"] > 1.5 * v["area_of_own_tiles"], name
    for f in ("index.html", "summary.csv", "pixel_maps.npz"):
        assert os.path.getsize(out / "report" / f) > 0
    assert len(np.load(out / "report" / "pixel_maps.npz").files) == 48
    for f in ("textures.png", "mosaic.png", "model.joblib"):
        assert os.path.getsize(out / f) > 0
