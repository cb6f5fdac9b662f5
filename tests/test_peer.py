"""The classical peer (dlib's shape predictor): trained and scored on a tiny generated SynthTFD68
with the quick profile's settings, its run record reused by config, and its rows in the result
tables showing no occlusion numbers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from m3mstl.studies import comparison
from m3mstl.train import peer
from m3mstl.data.coco import read_dataset
from m3mstl.data.dataset import crop_box
from m3mstl.evaluation.metrics import per_image_nme
from m3mstl.runs.predictions import load_predictions
from m3mstl.report import write_table
from m3mstl.runs.result import load_run

pytest.importorskip("dlib")
pytestmark = pytest.mark.slow

ONE_CORE = {"model_options.num_threads": 1}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from m3mstl.data.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate_dataset(out, subjects=8, per_subject=5, size=96, seed=3, workers=1)
    return out


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def peer_run(data_dir, runs_root) -> Path:
    return peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=runs_root)


def _mean_shape_in_box_nme(config, train, test) -> np.ndarray:
    """Per-image NME of placing the mean training shape (in box coordinates) in each test box:
    what a predictor that ignores the image achieves."""
    def to_box(record):
        x, y, w, h = crop_box(record, config.data.margin_px, config.data.square_crop)
        return (record.landmarks - [x, y]) / [w, h]

    mean_shape = np.mean([to_box(r) for r in train], axis=0)
    guesses = []
    for record in test:
        x, y, w, h = crop_box(record, config.data.margin_px, config.data.square_crop)
        guesses.append(mean_shape * [w, h] + [x, y])
    gt = np.stack([r.landmarks for r in test])
    labelled = np.stack([r.labelled for r in test])
    return per_image_nme(np.stack(guesses), gt, labelled, normaliser="inter_ocular")


def test_peer_trains_predicts_and_beats_the_image_blind_mean_shape(peer_run, data_dir):
    config = peer.peer_config("quick", overrides=ONE_CORE)
    assert json.loads((peer_run / "config.json").read_text()) == json.loads(json.dumps(config.to_dict()))
    recorded = json.loads((peer_run / "config.json").read_text())["model_options"]
    assert recorded["oversampling_amount"] == 20 and recorded["num_threads"] == 1
    preds = load_predictions(peer_run / "predictions_test.npz")
    assert "occlusion_prob" not in preds  # landmarks only
    assert preds["pred_landmarks"].shape == preds["gt_landmarks"].shape == (len(preds["image_id"]), 68, 2)

    # The same square crop box the deep models get, per test image.
    dataset = read_dataset(data_dir)
    records = [dataset.by_id(i) for i in preds["image_id"]]
    expected_boxes = [crop_box(r, config.data.margin_px, config.data.square_crop) for r in records]
    np.testing.assert_allclose(preds["crop_box"], expected_boxes)

    metrics = json.loads((peer_run / "metrics_test.json").read_text())
    assert metrics["occlusion"] is None
    assert metrics["by_occluder"]["occlusion"] is None
    nme = metrics["landmarks"]["inter_ocular"]["nme_mean"]
    assert np.isfinite(nme)
    splits = peer.split_records(config, data_dir)
    assert [r.image_id for r in splits["test"]] == list(preds["image_id"])
    blind = _mean_shape_in_box_nme(config, splits["train"], splits["test"]).mean()
    assert nme < 0.9 * blind, f"peer NME {nme:.3f} does not beat the image-blind mean shape {blind:.3f}"


def test_finished_peer_run_is_reused_and_a_new_option_is_a_new_run(peer_run, data_dir, runs_root):
    model_time = (peer_run / "model.dat").stat().st_mtime_ns
    again = peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=runs_root)
    assert again == peer_run and (peer_run / "model.dat").stat().st_mtime_ns == model_time
    other = peer.peer_config("quick", overrides={**ONE_CORE, "model_options.oversampling_amount": 5})
    same = peer.peer_config("quick", overrides=ONE_CORE)
    assert other.config_hash() != same.config_hash()
    assert peer.peer_config("quick", seed=1, overrides=ONE_CORE).config_hash() != same.config_hash()


def test_an_interrupted_peer_run_predicts_again_or_retrains(peer_run, data_dir, tmp_path):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(peer_run.parent.parent, copy)
    unfinished = copy / peer_run.parent.name / peer_run.name
    (unfinished / "complete.json").unlink()
    (unfinished / "metrics_test.json").unlink()
    model_time = (unfinished / "model.dat").stat().st_mtime_ns
    assert peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=copy) == unfinished
    assert (unfinished / "complete.json").is_file() and (unfinished / "metrics_test.json").is_file()
    assert (unfinished / "model.dat").stat().st_mtime_ns == model_time  # trained already: only predicted
    # Interrupted during training (no training.json): trained again from the start.
    (unfinished / "complete.json").unlink()
    (unfinished / "training.json").unlink()
    assert peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=copy) == unfinished
    assert (unfinished / "model.dat").stat().st_mtime_ns != model_time
    # dlib's training is deterministic for a seed: the retrained model predicts the same points.
    np.testing.assert_array_equal(load_predictions(unfinished / "predictions_test.npz")["pred_landmarks"],
                                  load_predictions(peer_run / "predictions_test.npz")["pred_landmarks"])


def test_unknown_option_and_missing_data_are_named(tmp_path):
    with pytest.raises(KeyError, match="no option 'trees'"):
        peer.peer_config("quick", overrides={"model_options.trees": 3})
    with pytest.raises(FileNotFoundError, match="no annotations.json"):
        peer.train_peer("quick", tmp_path)


def test_peer_rows_show_no_occlusion_number(peer_run, tmp_path):
    result = load_run(peer_run, "dlib shape predictor")
    assert not comparison.has_occlusion(result)
    row = comparison.summary_row(result)
    assert row["roc_auc"] is None and row["occlusion_accuracy"] is None and row["nme_median"] > 0
    main = comparison.main_results_table([result])
    paths = write_table(main, "peer_main", caption="test", run_ids=[result.run_id], out_dir=tmp_path)
    peer_line = next(line for line in paths["md"].read_text().splitlines() if "dlib" in line)
    cells = [c.strip() for c in peer_line.strip("|").split("|")]
    header = [c.strip() for c in paths["md"].read_text().splitlines()[2].strip("|").split("|")]
    for column in ("occlusion_accuracy", "roc_auc", "average_precision", "class_prior_occluded"):
        assert cells[header.index(column)] == "–", column
    by_occluder = comparison.breakdown_table([result], "occluder")
    assert len(by_occluder) > 0 and by_occluder["roc_auc"].isna().all() and by_occluder["nme_mean"].notna().all()


def test_dlib_rectangle_matches_the_continuous_box():
    rect = peer.dlib_rectangle((10.0, 20.0, 30.0, 30.0))
    assert (rect.left(), rect.top(), rect.right(), rect.bottom()) == (10, 20, 39, 49)
    assert rect.width() == 30 and rect.height() == 30


def test_peer_training_reports_progress_when_a_reproduction_relays_it(data_dir, tmp_path, monkeypatch, capfd):
    """dlib shows no bar: inside `m3mstl reproduce` the relay gets a line before and after
    training, and dlib's own verbose log (cascade levels) reaches the process's stdout."""
    relay = tmp_path / "progress.log"
    monkeypatch.setenv("M3MSTL_PROGRESS_FILE", str(relay))
    peer.train_peer("quick", data_dir, overrides={**ONE_CORE, "model_options.cascade_depth": 2},
                    runs_root=tmp_path / "runs")
    lines = relay.read_text().splitlines()
    assert lines[0].startswith("[peer] training dlib's shape predictor on ") and "oversampling 20" in lines[0]
    assert lines[-1].startswith("[peer] trained in ")
    assert "cascade" in capfd.readouterr().out.lower()  # dlib's verbose log, written by C++ to fd 1


def test_the_peer_honours_the_notebook_gate(peer_run, data_dir, runs_root, tmp_path):
    """As the other producers (`m3mstl.runs.lifecycle`): with TRAIN = FORCE = False a finished peer
    run is reused, a missing one is explained (how to train it) and nothing is written."""
    from m3mstl.runs.lifecycle import RunNotTrained

    comparison.allow_training(False)  # what every notebook's setup cell calls
    try:
        assert peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=runs_root) == peer_run
        with pytest.raises(RunNotTrained) as refused:
            peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=tmp_path / "runs")
        with pytest.raises(RunNotTrained):
            peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=runs_root, force=True)
    finally:
        comparison.allow_training(True)
    message = str(refused.value)
    assert message.startswith("Not trained yet: dlib_shape_predictor") and "TRAIN = True" in message
    assert "train_peer('quick'" in message and "'model_options.num_threads': 1" in message
    assert not (tmp_path / "runs").exists()
    assert (peer_run / "complete.json").is_file()


def test_force_retrains_the_peer_into_the_same_record(peer_run, data_dir, tmp_path):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(peer_run.parent.parent, copy)
    run_dir = copy / peer_run.parent.name / peer_run.name
    (run_dir / "stale.txt").write_text("not the peer's")
    model_time = (run_dir / "model.dat").stat().st_mtime_ns
    assert peer.train_peer("quick", data_dir, overrides=ONE_CORE, runs_root=copy, force=True) == run_dir
    assert (run_dir / "model.dat").stat().st_mtime_ns != model_time and not (run_dir / "stale.txt").exists()
    assert {p.name for p in run_dir.iterdir()} == {p.name for p in peer_run.iterdir()}
    assert (run_dir / "config.json").read_bytes() == (peer_run / "config.json").read_bytes()
    np.testing.assert_array_equal(load_predictions(run_dir / "predictions_test.npz")["pred_landmarks"],
                                  load_predictions(peer_run / "predictions_test.npz")["pred_landmarks"])
