"""benchmarks/bench_sift.py runs and compares like with like (it times nothing that is asserted)."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))

import bench_sift  # noqa: E402


def test_compare_prints_every_method_on_the_same_keypoints(capsys):
    rng = np.random.default_rng(0)
    images = [rng.random((60, 70)) for _ in range(2)]
    bench_sift.compare(images, (2.0, 3.0), (6, 9), 2, "random tiles")
    out = capsys.readouterr().out
    n = sum(len(bench_sift.grid_centers((60, 70), s, st)) for s, st in ((2.0, 6), (3.0, 9)))
    assert f"2 images of 60x70 px, {n} keypoints each" in out
    for name in ("opencv upright", "opencv rotated", "DenseSIFT upright", "DenseSIFT rotated"):
        assert name in out
    rows = [line for line in out.splitlines() if line.strip().startswith("opencv rotated")]
    assert rows and rows[0].count("1.00x") >= 4  # the baseline against itself, both clocks


def test_interleaved_times_runs_every_method_every_round():
    calls = []
    times = bench_sift.interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3,
                                         iter(range(100)).__next__)
    assert calls == ["a", "b"] * 3
    assert {k: v.tolist() for k, v in times.items()} == {"a": [1, 1, 1], "b": [1, 1, 1]}
    assert bench_sift.interleaved_best({"a": lambda: None}, 2, iter(range(100)).__next__) == {"a": 1}
