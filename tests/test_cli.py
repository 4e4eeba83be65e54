"""The command line end to end at small size, and one clear line for every bad input."""

import json
import os
import pickle

import joblib
import numpy as np
import pytest

from bowlrp.apps.modelfile import ModelFileError, ModelVersionWarning, load_model, read_metadata, save_model
from bowlrp.apps.models import make_model, model_names, parse_params, valid_params
from bowlrp.cli import main
from photo_fixtures import SMALL_PARAM_ARGS, synthetic_folder, write

PARAMS = [a for p in SMALL_PARAM_ARGS for a in ("--param", p)]


def run(capsys, *argv):
    """Run the CLI; return (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err, command):
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line and "it/s" not in line]
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"bowlrp {command}: error: "), err
    assert "Traceback" not in err
    return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    photos = root / "photos"
    paths, bad = synthetic_folder(str(photos), n_per_class=12)
    model = root / "model.joblib"
    status = main(["train", str(photos), "--model", "bow-hik", "--out", str(model), *PARAMS])
    assert status == 0
    return root, photos, paths, bad, model


def test_train_prints_accuracy_and_confusion_and_saves_metadata(trained, capsys, tmp_path):
    root, photos, paths, bad, model = trained
    status, out, err = run(capsys, "train", photos, "--model", "bow-hik", "--out", tmp_path / "m.joblib",
                           "--test-size", "0.25", *PARAMS)
    assert status == 0
    assert "held-out accuracy" in out and "true \\ predicted" in out
    assert "warning: skipped 1 file(s)" in err and "broken.png" in err
    pipe, meta = load_model(str(tmp_path / "m.joblib"))
    assert meta["model"] == "bow-hik" and meta["class_names"] == ["spots", "stripes"]
    assert meta["bowlrp_version"] and meta["sklearn_version"] and meta["max_side"] == 640
    t = meta["training"]
    assert t["n_train"] + t["n_test"] == 24 and t["n_test"] == 6
    assert sorted(np.unique([os.path.basename(os.path.dirname(p)) for p in t["test_paths"]], return_counts=True)[1]
                  .tolist()) == [3, 3]  # stratified
    assert t["test_accuracy"] >= 0.8
    assert np.array(t["confusion_matrix"]).sum() == 6
    assert meta["min_image_side"] == 24  # sigma 2: a 24 x 24 square
    assert pipe.named_steps["bow"].n_words == 8


def test_explain_writes_the_gallery_for_files_and_folders(trained, capsys):
    root, photos, paths, bad, model = trained
    out = root / "report"
    extra = write(str(root / "single.png"), np.full((50, 60, 3), 128, np.uint8))
    folder = root / "to_explain" / "stripes"
    folder.mkdir(parents=True)
    for p in [p for p in paths if "stripes" in p][:3]:
        (folder / os.path.basename(p)).write_bytes(open(p, "rb").read())
    (folder / "notes.txt").write_text("not an image")
    status, stdout, err = run(capsys, "explain", model, root / "to_explain", extra, bad, "--out", out)
    assert status == 0
    assert f"not explained: {bad}" in err and "notes.txt" in err
    for name in ("index.html", "summary.csv", "pixel_maps.npz"):
        assert os.path.getsize(out / name) > 0
    rows = open(out / "summary.csv", encoding="utf-8").read().splitlines()
    assert len(rows) == 1 + 3 + 1 + 1
    assert sum(",stripes," in r for r in rows[1:4]) >= 1  # folder class recorded for class-named folders
    maps = np.load(out / "pixel_maps.npz")
    assert len(maps.files) == 4
    assert "explained 4 of 5 images" in stdout


def test_explain_options(trained, capsys):
    root, photos, paths, bad, model = trained
    out = root / "report-eps"
    status, _, err = run(capsys, "explain", model, paths[0], "--out", out, "--rule", "epsilon",
                         "--rule-param", "epsilon=0.1", "--target", "spots", "--max-side", "32")
    assert status == 0, err
    row = open(out / "summary.csv", encoding="utf-8").read().splitlines()[1].split(",")
    assert "spots" in row and "32" in row  # target, and the capped size


def test_evaluate_writes_figures(trained, capsys):
    root, photos, paths, bad, model = trained
    out = root / "eval"
    status, stdout, err = run(capsys, "evaluate", model, photos, "--out", out, "--n-sample", "4",
                              "--n-repeats", "1", "--region-size", "12")
    assert status == 0, err
    assert "left out 18 image(s) the model was trained on" in stdout
    ev = json.load(open(out / "evaluation.json"))
    assert ev["n_images"] == 6 and ev["n_left_out_training_images"] == 18
    assert 0 <= ev["accuracy"] <= 1 and np.array(ev["confusion_matrix"]).sum() == 6
    px = ev["pixel_perturbation"]
    assert {"LRP", "random"} <= set(px) and any(k.startswith("occlusion") for k in px)
    assert np.isfinite(px["LRP"]["aopc"]) and px["LRP"]["n"] == 4
    assert {"LRP", "random"} <= set(ev["descriptor_perturbation"])
    assert ev["conservation"]["max_relative_residual"] < 1e-8
    for png in ("pixel_perturbation.png", "descriptor_perturbation.png", "confusion_matrix.png"):
        assert os.path.getsize(out / png) > 1000
    status, stdout, _ = run(capsys, "evaluate", model, photos, "--out", root / "eval2", "--n-sample", "2",
                            "--n-repeats", "1", "--region-size", "24", "--include-train")
    assert status == 0 and json.load(open(root / "eval2" / "evaluation.json"))["n_images"] == 24


@pytest.mark.parametrize("argv,command,needle", [
    (["train", "{photos}", "--model", "bow-nope", "--out", "{tmp}/m.joblib"], "train", "unknown model 'bow-nope'"),
    (["train", "{photos}", "--out", "{tmp}/m.joblib", "--test-size", "2"], "train", "--test-size"),
    (["train", "{photos}", "--out", "{tmp}/m.joblib", "--param", "bow__n_word=3"], "train", "did you mean 'bow__n_words'"),
    (["train", "{photos}", "--out", "{tmp}/m.joblib", "--param", "n_words"], "train", "step__name=value"),
    (["train", "{photos}", "--out", "{tmp}", *PARAMS], "train", "is a folder"),
    (["train", "{tmp}/missing", "--out", "{tmp}/m.joblib"], "train", "does not exist"),
    (["explain", "{model}", "{photos}", "--out", "{file}"], "explain", "is an existing file"),
    (["explain", "{model}", "{tmp}/missing.png", "--out", "{tmp}/r"], "explain", "missing.png' does not exist"),
    (["explain", "{file}", "{photos}", "--out", "{tmp}/r"], "explain", "is not a bowlrp model file"),
    (["explain", "{model}", "{photos}", "--out", "{tmp}/r", "--target", "cats"], "explain", "--target 'cats'"),
    (["explain", "{model}", "{photos}", "--out", "{tmp}/r", "--rule", "nope"], "explain", "nope"),
    (["explain", "{model}", "{photos}", "--out", "{tmp}/r", "--rule", "epsilon", "--rule-param", "gamma=1"],
     "explain", "gamma"),
    (["explain", "{model}", "{tiny}", "--out", "{tmp}/r"], "explain", "too small"),
    (["explain", "{model}", "{broken}", "--out", "{tmp}/r"], "explain", "could not decode"),
    (["evaluate", "{model}", "{photos}", "--out", "{file}"], "evaluate", "is an existing file"),
    (["evaluate", "{model}", "{other}", "--out", "{tmp}/e"], "evaluate", "not classes of the model"),
    (["evaluate", "{model}", "{photos}", "--out", "{tmp}/e", "--n-sample", "1"], "evaluate", "--n-sample"),
    (["head-to-head", "--context", "2"], "head-to-head", "--context"),
    (["demo", "--n-train", "3"], "demo", "--n-train"),
])
def test_every_error_is_one_line_with_status_2(trained, capsys, tmp_path, argv, command, needle):
    root, photos, paths, bad, model = trained
    (tmp_path / "a_file.txt").write_text("not a model, not a folder")
    tiny = write(str(tmp_path / "tiny.png"), np.zeros((12, 12), np.uint8))
    other = tmp_path / "other"
    write(str(other / "cats" / "a.png"), np.zeros((40, 40), np.uint8))
    subs = {"photos": photos, "tmp": tmp_path, "model": model, "file": tmp_path / "a_file.txt", "tiny": tiny,
            "broken": bad, "other": other}
    args = [a.format(**{k: str(v) for k, v in subs.items()}) for a in argv]
    try:
        status = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        status = exc.code
    _, err = capsys.readouterr()
    assert status == 2
    line = one_error_line(err, command)
    assert needle in line


def test_images_too_small_for_training(tmp_path, capsys):
    for k in ("a", "b"):
        for i in range(3):
            write(str(tmp_path / "small" / k / f"{i}.png"), np.zeros((20, 30), np.uint8))
    status, _, err = run(capsys, "train", tmp_path / "small", "--out", tmp_path / "m.joblib", *PARAMS)
    assert status == 2
    line = one_error_line(err, "train")
    assert "too small" in line and "24 x 24" in line and "0.png (20 x 30)" in line


def test_empty_class_is_an_error(tmp_path, capsys):
    write(str(tmp_path / "f" / "a" / "x.png"), np.zeros((40, 40), np.uint8))
    (tmp_path / "f" / "b").mkdir()
    status, _, err = run(capsys, "train", tmp_path / "f", "--out", tmp_path / "m.joblib")
    assert status == 2 and "hold no image files" in one_error_line(err, "train")


def test_model_files_from_other_versions(trained, tmp_path, capsys):
    root, photos, paths, bad, model = trained
    meta = read_metadata(str(model))
    assert isinstance(meta["pipeline_pickle"], bytes)
    newer = dict(meta, bowlrp_version="9.0.0")
    joblib.dump(newer, tmp_path / "major.joblib")
    with pytest.raises(ModelFileError, match="another major version"):
        load_model(str(tmp_path / "major.joblib"))
    status, _, err = run(capsys, "explain", tmp_path / "major.joblib", paths[0], "--out", tmp_path / "r")
    assert status == 2 and "bowlrp 9.0.0" in one_error_line(err, "explain")
    minor = dict(meta, bowlrp_version=meta["bowlrp_version"] + ".post1", sklearn_version="0.1")
    joblib.dump(minor, tmp_path / "minor.joblib")
    with pytest.warns(ModelVersionWarning, match="scikit-learn 0.1"):
        pipe, _ = load_model(str(tmp_path / "minor.joblib"))
    assert pipe.predict([np.zeros((40, 40), np.uint8)])[0] in ("spots", "stripes")
    status, _, err = run(capsys, "explain", tmp_path / "minor.joblib", paths[0], "--out", tmp_path / "r")
    assert status == 0 and "bowlrp explain: warning: model file" in err
    joblib.dump(dict(meta, format_version=99), tmp_path / "future.joblib")
    with pytest.raises(ModelFileError, match="newer"):
        load_model(str(tmp_path / "future.joblib"))
    joblib.dump({"weights": [1, 2]}, tmp_path / "dict.joblib")
    with pytest.raises(ModelFileError, match="holding a dict"):
        load_model(str(tmp_path / "dict.joblib"))
    joblib.dump(dict(meta, pipeline_pickle=b"garbage"), tmp_path / "bad.joblib")
    with pytest.raises(ModelFileError, match="cannot be loaded"):
        load_model(str(tmp_path / "bad.joblib"))
    (tmp_path / "notes.joblib").write_text("hanged up on the way\n")  # a text file: no unpickler's guesswork
    with pytest.raises(ModelFileError, match=r"not a joblib file .* it starts with b'hanged u'"):
        load_model(str(tmp_path / "notes.joblib"))
    joblib.dump(meta, tmp_path / "packed.joblib", compress=("zlib", 3))  # compressed model files still load
    assert read_metadata(str(tmp_path / "packed.joblib"))["format"] == meta["format"]
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "none.joblib"))
    with pytest.raises(IsADirectoryError):
        save_model(str(tmp_path), pickle.loads(meta["pipeline_pickle"]), model="x")


def test_ready_made_models():
    assert {"bow-hik", "bow-chi2", "fv-linear"} <= set(model_names())
    pipe = make_model("bow-hik", {"bow__n_words": 256, "sift__scales": (2.0, 3.0), "sift__steps": (6, 9)})
    assert pipe.named_steps["svm"].blocks == (256, 256) and pipe.named_steps["bow"].n_words == 256
    assert make_model("bow-hik", {"svm__blocks": None}).named_steps["svm"].blocks is None
    assert make_model("fv-linear").named_steps["svm"].kernel == "linear"
    assert "bow__n_words" in valid_params("bow-hik") and "fv__n_components" in valid_params("fv-linear")
    with pytest.raises(ValueError, match="valid models are"):
        make_model("svm")
    with pytest.raises(ValueError, match="valid parameters are .*bow__n_words"):
        make_model("bow-hik", {"nope": 1})
    assert parse_params(["svm__C=10", "sift__rotate=False", "svm__kernel=rbf", "a= (1, 2) "]) == {
        "svm__C": 10, "sift__rotate": False, "svm__kernel": "rbf", "a": (1, 2)}
    # literal_eval only: an expression is a string, never run
    assert parse_params(["svm__C=__import__('os').getcwd()"]) == {"svm__C": "__import__('os').getcwd()"}


def test_fisher_vector_model_end_to_end(trained, capsys, tmp_path):
    root, photos, paths, bad, _ = trained
    small = ["sift__scales=(2.0,)", "sift__steps=(6,)", "sift__rotate=False", "fv__n_components=4", "fv__pca=8"]
    model = tmp_path / "fv.joblib"
    status, out, err = run(capsys, "train", photos, "--model", "fv-linear", "--out", model,
                           *[a for p in small for a in ("--param", p)])
    assert status == 0, err
    status, _, err = run(capsys, "explain", model, paths[0], paths[-1], "--out", tmp_path / "r")
    assert status == 0, err
    rows = open(tmp_path / "r" / "summary.csv", encoding="utf-8").read().splitlines()
    header = rows[0].split(",")
    rel = [float(r.split(",")[header.index("relative_residual")]) for r in rows[1:]]
    assert max(rel) < 1e-8  # linear Fisher-vector model with the z rule: exact
    status, _, err = run(capsys, "evaluate", model, photos, "--out", tmp_path / "e", "--n-sample", "2",
                         "--n-steps", "2", "--n-repeats", "1", "--region-size", "24")
    assert status == 0, err
    ev = json.load(open(tmp_path / "e" / "evaluation.json"))
    assert ev["descriptor_perturbation"]["substitutes"] == "draws from the model's GMM"
    assert ev["descriptor_perturbation"]["n_steps"] == 2 and ev["pixel_perturbation"]["n_steps"] == 2
