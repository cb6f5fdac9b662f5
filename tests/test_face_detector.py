"""The trained face detector (m3mstl.detection.trained): targets and decoding, input, training and resume."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from m3mstl.detection import trained as fd
from m3mstl.train import detector as fd_train
from m3mstl.data.synth.generate import generate_dataset
from m3mstl.evaluation.detection import evaluate_detector
from m3mstl.detection.rule_based import face_finder

SETTINGS = replace(fd.settings_for("quick"), input_width=64, input_height=48, epochs=2, batch_size=4)


def perfect_outputs(boxes_per_frame, grid):
    """Network outputs that say exactly what the targets say: a sure centre, its offset and size."""
    heat, regression, _ = fd_train.encode_targets(boxes_per_frame, grid)
    logits = torch.where(heat == 1, torch.tensor(8.0), torch.tensor(-8.0))
    return torch.cat([logits, regression], 1)


@pytest.mark.parametrize("boxes", [[(0.25, 0.125, 0.375, 0.5)], [(0.05, 0.1, 0.3, 0.6), (0.6, 0.3, 0.3, 0.5)], []])
def test_decoding_the_targets_gives_back_the_boxes(boxes):
    grid = fd.grid_shape(SETTINGS)
    found = fd.decode(perfect_outputs([boxes], grid), threshold=0.5, max_faces=5)[0]
    assert len(found) == len(boxes)
    got = sorted(box for _, box in found)
    for want, have in zip(sorted(boxes), got):
        np.testing.assert_allclose(have, want, atol=1e-5)
    assert all(score == pytest.approx(torch.sigmoid(torch.tensor(8.0)).item()) for score, _ in found)


def test_decoding_keeps_the_best_faces_above_the_threshold():
    grid = (6, 8)
    outputs = torch.full((1, 5, *grid), -8.0)
    outputs[0, 1:] = 0.0
    outputs[0, 0, 1, 1], outputs[0, 0, 4, 6], outputs[0, 0, 3, 3] = 3.0, 1.0, -3.0  # 0.95, 0.73, 0.05
    found = fd.decode(outputs, threshold=0.2, max_faces=5)[0]
    assert [round(score, 2) for score, _ in found] == [0.95, 0.73]
    assert len(fd.decode(outputs, threshold=0.2, max_faces=1)[0]) == 1


def test_one_head_with_two_centre_peaks_is_one_face_but_two_heads_side_by_side_stay_two():
    """Two peaks two cells apart whose boxes cover the same head (a hat above a face, on the overlays
    of 100 test frames) give one detection, the better one; neighbouring faces that barely touch keep both."""
    grid = (6, 8)
    outputs = torch.full((1, 5, *grid), -8.0)
    outputs[0, 1:3] = 0.5                                  # centre offsets: the middle of each cell
    outputs[0, 3:] = float(np.log(0.8))                    # every box 0.8 of the frame wide and high
    outputs[0, 0, 2, 3], outputs[0, 0, 2, 5] = 3.0, 1.0    # one head's two peaks two cells apart (IoU 0.52)
    found = fd.decode(outputs, threshold=0.2, max_faces=5)[0]
    assert [round(score, 2) for score, _ in found] == [0.95]
    assert len(fd.decode(outputs, threshold=0.2, max_faces=5, overlap=None)[0]) == 2
    outputs[0, 0, 2, 5] = -8.0
    outputs[0, 0, 2, 7] = 1.0                              # a second head four cells away (IoU 0.23)
    assert len(fd.decode(outputs, threshold=0.2, max_faces=5)[0]) == 2


def test_frame_input_is_relative_to_the_room_and_tolerates_non_finite_pixels():
    frame = np.full((120, 160), 22.0, dtype=np.float32)
    frame[30:90, 60:100] = 34.0
    frame[0, 0] = np.nan
    x = fd.frame_input(frame, SETTINGS)
    assert x.shape == (2, 48, 64) and torch.isfinite(x).all()
    assert x[0].min() == pytest.approx(0.0) and x[0].max() == pytest.approx(12.0 / 5.0)  # degrees above the room
    assert x[1].max() == pytest.approx(0.0)  # skin at the 34 C reference
    with pytest.raises(ValueError, match="2-D"):
        fd.frame_input(np.zeros((2, 3, 4)), SETTINGS)


def test_pixel_detections_are_clipped_to_the_frame():
    detection = fd._pixel_detection((-0.1, 0.5, 0.5, 0.75), 0.9, width=200, height=100)
    assert (detection.x, detection.y, detection.w, detection.h) == pytest.approx((0.0, 50.0, 80.0, 50.0))


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory):
    root = generate_dataset(tmp_path_factory.mktemp("ff") / "ff", subjects=5, per_subject=2, size=32, seed=11,
                            full_frame=True)
    return root.parent


def _state(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["network"]


def test_training_writes_a_complete_run_reused_by_its_id_and_found_faces_are_detections(frames_root, tmp_path):
    torch.set_num_threads(1)  # one thread: the same numbers in both runs below
    run_dir = fd_train.train_face_detector("quick", frames_root, settings=SETTINGS, runs_root=tmp_path, progress=False)
    assert run_dir.parent.name == "detector"
    assert {"config.json", "environment.json", "history.jsonl", "model.pt", "metrics_val.json",
            "complete.json"} <= {p.name for p in run_dir.iterdir()}
    assert not (run_dir / "checkpoint.pt").exists()
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == SETTINGS.epochs
    overall = json.loads((run_dir / "metrics_val.json").read_text())["detection"][0]
    assert overall["breakdown"] == "all" and overall["faces"] > 0
    stamp = (run_dir / "complete.json").stat().st_mtime_ns
    assert fd_train.train_face_detector("quick", frames_root, settings=SETTINGS, runs_root=tmp_path) == run_dir
    assert (run_dir / "complete.json").stat().st_mtime_ns == stamp  # reused, not trained again
    detector = fd.TrainedFaceDetector.load(run_dir)
    assert face_finder(detector) is detector
    per_face = evaluate_detector(None, detector, records=[])
    assert per_face.empty
    from m3mstl.data.coco import load_temperature, read_dataset

    record = read_dataset(frames_root).records[0]
    found = detector(load_temperature(record))
    assert all(0 <= d.x and d.x + d.w <= record.width + 1e-6 and d.score >= SETTINGS.threshold for d in found)


def test_an_interrupted_training_resumes_to_the_same_weights(frames_root, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    straight = fd_train.train_face_detector("quick", frames_root, settings=SETTINGS, runs_root=tmp_path / "a",
                                      progress=False)
    original, calls = fd_train.augmented_batch, {"n": 0}
    batches_per_epoch = -(-json.loads((straight / "config.json").read_text())["train_frames"] // SETTINGS.batch_size)

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > batches_per_epoch:  # the second epoch's first batch
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(fd_train, "augmented_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fd_train.train_face_detector("quick", frames_root, settings=SETTINGS, runs_root=tmp_path / "b", progress=False)
    resumed_dir = tmp_path / "b" / "detector" / straight.name
    assert (resumed_dir / "checkpoint.pt").is_file() and not (resumed_dir / "complete.json").exists()
    monkeypatch.setattr(fd_train, "augmented_batch", original)
    fd_train.train_face_detector("quick", frames_root, settings=SETTINGS, runs_root=tmp_path / "b", progress=False)
    for name, tensor in _state(straight).items():
        assert torch.equal(tensor, _state(resumed_dir)[name]), name


def test_a_dataset_without_head_boxes_is_named(tmp_path):
    from m3mstl.data.errors import DatasetError

    root = generate_dataset(tmp_path / "ff", subjects=5, per_subject=2, size=32, seed=11, full_frame=True)
    annotations = json.loads((root.parent / "annotations.json").read_text())
    for annotation in annotations["annotations"]:
        annotation.pop("head_bbox")  # as a TFD68-layout folder with landmarks only
    (root.parent / "annotations.json").write_text(json.dumps(annotations))
    with pytest.raises(DatasetError, match="head_bbox"):
        fd_train.train_face_detector("quick", root.parent, settings=SETTINGS, runs_root=tmp_path, progress=False)


def test_missing_weights_are_a_clear_error(tmp_path):
    from m3mstl.errors import RunError

    with pytest.raises(RunError, match="model.pt"):
        fd.TrainedFaceDetector.load(tmp_path)


def test_a_missing_run_is_explained_not_trained_when_training_is_off(frames_root, tmp_path):
    from m3mstl.runs.lifecycle import RunNotTrained, allow_training

    allow_training(False)
    try:
        with pytest.raises(RunNotTrained, match="m3mstl detector"):
            fd_train.train_face_detector("quick", frames_root, settings=SETTINGS, runs_root=tmp_path, progress=False)
    finally:
        allow_training(True)
    assert not (tmp_path / "detector").exists()


def test_frame_prediction_uses_a_given_face_finder(frames_root):
    from m3mstl.data.coco import read_dataset
    from m3mstl.detection.base import Detection
    from m3mstl.infer.frames import faces_in_frame

    record = read_dataset(frames_root).records[0]
    fixed = Detection(*record.extras["head_bbox"], 0.9)
    calls = []

    def finder(temperature):
        calls.append(temperature.shape)
        return [fixed]

    assert faces_in_frame(np.zeros((record.height, record.width)), np.full((record.height, record.width), 30.0),
                          finder) == [fixed]
    assert faces_in_frame(np.zeros((4, 5)), None, finder) == [fixed] and calls == [(record.height, record.width),
                                                                                  (4, 5)]
    per_face = evaluate_detector(None, finder, records=[record])
    assert per_face["found"].all() and per_face.attrs["settings"]["detector"] == "finder"


@pytest.mark.parametrize("neck", ["none", "fpn"])
@pytest.mark.parametrize("size", [(64, 48), (320, 256)])
def test_each_neck_gives_one_cell_per_stride_of_input(neck, size):
    width, height = size
    settings = replace(SETTINGS, input_width=width, input_height=height, neck=neck)
    network = fd.build_network(settings).eval()
    with torch.no_grad():
        out = network(torch.zeros(2, 2, height, width))
    assert out.shape == (2, 5, *fd.grid_shape(settings))


def test_the_pyramid_neck_is_a_new_run_but_runs_made_before_it_keep_their_ids():
    # the id these settings had before the neck setting existed (computed by commit c39a7ba's code)
    before = "ebbe1b10d73c"
    assert fd_train.detector_run_id(SETTINGS, 0, "abc") == before
    assert fd_train.detector_run_id(replace(SETTINGS, neck="fpn"), 0, "abc") != before
    with pytest.raises(ValueError, match="neck must be one of"):
        fd.build_network(replace(SETTINGS, neck="unet"))
