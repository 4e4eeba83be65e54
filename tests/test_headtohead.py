"""The head-to-head of Fisher vectors and the CNN on polygons with a label-correlated background."""

import json

import numpy as np
import pytest

from bowlrp.apps.head_to_head import CNN_METHODS, format_table, run_head_to_head


def _check_summary(s, out):
    assert set(s["models"]) == {"fv", "cnn"}
    assert set(s["models"]["fv"]["methods"]) == {"lrp"}
    assert set(s["models"]["cnn"]["methods"]) == set(CNN_METHODS)
    for m in s["models"].values():
        assert 0.0 <= m["test_accuracy"] <= 1.0
        assert np.isfinite(m["aopc_random"]) and m["mean_abs_f0"] > 0
        for e in m["methods"].values():
            assert np.isfinite(e["aopc"])
            assert e["aopc_minus_random"] == pytest.approx(e["aopc"] - m["aopc_random"])
            assert e["mu"]["n"] > 0 and e["mu"]["mean"] >= 0 and np.isfinite(e["mu"]["mean"])
            assert set(e["mu"]["per_class"]) <= {"1", "-1"}
    saved = json.loads((out / "summary.json").read_text())
    assert saved["models"]["cnn"]["methods"]["lrp"]["aopc"] == pytest.approx(
        s["models"]["cnn"]["methods"]["lrp"]["aopc"])
    assert (out / "heatmaps.png").stat().st_size > 5_000
    table = format_table(s)
    assert table.count("\n") == 1 + 1 + len(CNN_METHODS)


def test_head_to_head_small(tmp_path):
    lines = []
    s = run_head_to_head(str(tmp_path), n_train=300, context=0.8, n_test_images=1, n_eval=8, n_figure=2,
                         fv_components=8, fv_pca=16, cnn_epochs=3, n_steps=8, n_random_repeats=1,
                         log=lines.append, verbose=False)
    _check_summary(s, tmp_path)
    assert s["data"] == {"n_train_tiles": 300, "n_test_tiles": 100, "n_eval_tiles": 8, "context": 0.8,
                         "context_amplitude": 0.15, "seed": 0}
    assert s["figure"]["labels"] == [1, -1]  # evaluation tiles alternate classes
    assert s["models"]["fv"]["test_accuracy"] >= 0.8  # the FV model learns the toy task from 300 tiles
    assert s["models"]["fv"]["methods"]["lrp"]["aopc_minus_random"] > 0
    assert any(l.startswith("[6/6]") for l in lines) and any("\n| fv | lrp |" in l for l in lines)


@pytest.mark.slow
def test_head_to_head_default_size(tmp_path):
    """The example at its default size: the claims of docs/head_to_head.md that hold."""
    s = run_head_to_head(str(tmp_path), log=lambda *a: None, verbose=False)
    _check_summary(s, tmp_path)
    fv, cnn = s["models"]["fv"], s["models"]["cnn"]
    assert fv["test_accuracy"] >= 0.9 and cnn["test_accuracy"] >= 0.9
    # the CNN reaches the FV model's accuracy (measured 0.945 for both, 40 epochs); one point of
    # slack for floating-point differences between BLAS builds
    assert cnn["test_accuracy"] >= fv["test_accuracy"] - 0.01
    # the CNN's LRP puts more positive relevance outside the objects than the FV model's (mu, eq. 4.11)
    assert fv["methods"]["lrp"]["mu"]["median"] < cnn["methods"]["lrp"]["mu"]["median"]
    # the FV model's LRP beats the random order on the same tiles by more than two standard errors
    # (measured 0.585 +- 0.073); the CNN's logits under uniform noise vary so much from tile to tile
    # (s.e. 0.67-0.80) that its methods are not asserted apart from random (docs/head_to_head.md)
    e = fv["methods"]["lrp"]
    assert e["aopc_minus_random"] > 2 * e["aopc_minus_random_se"] > 0
    for e in cnn["methods"].values():
        assert np.isfinite(e["aopc_minus_random"]) and e["aopc_minus_random_se"] > 0
    # its run time (under 10 minutes on 2 cores) is measured, not asserted: CI must not fail on a slow machine


def test_cli_validates_arguments():
    from bowlrp.__main__ import main

    with pytest.raises(SystemExit):
        main(["head-to-head", "--context", "1.5"])
    with pytest.raises(SystemExit):
        main(["head-to-head", "--n-train", "10"])
