"""Full-frame synthesis, the thermal face detector, box jitter and batch prediction on frames."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from m3mstl.data.synth.generate import generate_dataset, spec_for
from m3mstl.data.synth.priors import load_priors
from m3mstl.data.synth.renderer import render
from m3mstl.detection.base import Detection
from m3mstl.detection.rule_based import detect_faces
from m3mstl.evaluation.detection import evaluate_detector, summarise_detection
from m3mstl.core.boxes import iou


@pytest.fixture(scope="module")
def frame_and_crop():
    spec = spec_for(0, 1, 2, 10, load_priors(None))
    return spec, render(spec, 128, full_frame=True), render(spec, 128)


def test_full_frame_is_the_sensor_frame_and_agrees_with_the_crop(frame_and_crop):
    spec, frame, crop = frame_and_crop
    assert frame.image_u8.shape == frame.temperature_c.shape == (spec.camera.sensor_height, spec.camera.sensor_width)
    # The crop shows the same face: its landmarks map to the frame's through the crop placement.
    x0, y0, side = crop.image_fields["camera"]["crop_sensor_px"]
    mapped = crop.landmarks * side / 128 + np.array([x0, y0])
    assert np.abs(mapped - frame.landmarks).max() < 1e-6
    assert np.array_equal(crop.visibility, frame.visibility)
    assert frame.image_fields["full_frame"] is True


def test_head_box_and_canthus_reference_are_stored(frame_and_crop, tmp_path):
    _, frame, crop = frame_and_crop
    x, y, w, h = frame.head_bbox
    # The visible head holds the eyes and is larger than the landmark extent's width.
    eyes = frame.landmarks[36:48]
    assert (eyes[:, 0] >= x).all() and (eyes[:, 0] <= x + w).all() and (eyes[:, 1] >= y).all()
    assert w > 0.8 * frame.bbox[2]
    # The hottest canthus skin is at least the skin at the canthus point itself.
    assert (frame.canthus_skin_max_c >= frame.skin_temperature_c[[39, 42]] - 1e-9).all()
    assert np.allclose(frame.canthus_skin_max_c, crop.canthus_skin_max_c)
    root = generate_dataset(tmp_path / "ff", subjects=1, per_subject=2, size=32, seed=3, full_frame=True)
    data = json.loads(root.read_text())
    assert data["info"]["frame"] == "full sensor frame"
    annotation = data["annotations"][0]
    assert len(annotation["head_bbox"]) == 4 and len(annotation["canthus_skin_max_c"]) == 2
    assert data["images"][0]["width"] in (160, 320, 384, 464, 640)


def test_detector_finds_one_face_two_faces_and_none(frame_and_crop):
    _, frame, _ = frame_and_crop
    found = detect_faces(frame.temperature_c)
    assert len(found) >= 1 and iou(found[0].box, frame.head_bbox) >= 0.5
    two = np.concatenate([frame.temperature_c, frame.temperature_c], axis=1)
    boxes = sorted(d.box for d in detect_faces(two))[:2]
    width = frame.temperature_c.shape[1]
    shifted = (frame.head_bbox[0] + width,) + tuple(frame.head_bbox[1:])
    assert len(detect_faces(two)) >= 2
    assert max(iou(b, frame.head_bbox) for b in boxes) >= 0.5 and max(iou(b, shifted) for b in boxes) >= 0.5
    room = 23.0 + np.random.default_rng(0).normal(0, 0.05, size=(120, 160))
    assert detect_faces(room) == []
    with pytest.raises(ValueError, match="2-D"):
        detect_faces(np.zeros(5))


def test_detector_joins_a_face_cut_by_glasses_and_drops_an_arm(frame_and_crop):
    """Detector version 3 on two edits of one generated frame: a room-temperature band across the
    whole face at the eyes (glasses wider than the face) leaves one box over the whole head, not
    one ending at the lenses; an arm-wide warm bar from the frame's edge to the cheek does not
    stretch the box to the edge. Both fail with those steps switched off (version 2's behaviour)."""
    from m3mstl.detection.rule_based import DetectorConfig

    _, frame, _ = frame_and_crop
    hx, hy, hw, hh = frame.head_bbox
    eyes_y = float(frame.landmarks[36:48, 1].mean())
    room = float(np.percentile(frame.temperature_c, 10))
    glasses = frame.temperature_c.copy()
    band = slice(int(eyes_y - 0.08 * hh), int(eyes_y + 0.08 * hh))
    glasses[band, int(hx) - 2:int(hx + hw) + 2] = room
    arm = frame.temperature_c.copy()
    row = int(eyes_y + 0.25 * hh)
    arm[row - int(0.12 * hw):row + int(0.12 * hw), int(hx + 0.5 * hw):] = 33.0
    off = DetectorConfig(join_split_faces=False, limb_fraction=0.0)
    for edited in (glasses, arm):
        found = detect_faces(edited)
        assert found and iou(found[0].box, frame.head_bbox) >= 0.5, (found[:2], frame.head_bbox)
    assert max((iou(d.box, frame.head_bbox) for d in detect_faces(glasses, off)), default=0) < 0.5
    assert max((iou(d.box, frame.head_bbox) for d in detect_faces(arm, off)), default=0) < 0.5


def test_detector_evaluation_table(tmp_path):
    from m3mstl.data.coco import read_dataset

    root = generate_dataset(tmp_path / "ff", subjects=2, per_subject=2, size=32, seed=7, full_frame=True)
    per_face = evaluate_detector(read_dataset(root.parent))
    assert len(per_face) == 4 and set(per_face["found"]) <= {True, False}
    summary = summarise_detection(per_face)
    overall = summary[summary["breakdown"] == "all"].iloc[0]
    assert overall["faces"] == 4 and 0.0 <= overall["recall"] <= 1.0
    assert overall["recall"] == pytest.approx((per_face["iou"] >= 0.5).mean())
    assert {"occluder_type", "pose"} <= set(summary["breakdown"])
    assert not summary["group"].str.contains("+", regex=False).any()  # combinations count as "several"
    assert len(evaluate_detector(None, records=read_dataset(root.parent).records[:2])) == 2


def test_iou():
    assert iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert iou((0, 0, 2, 2), (1, 0, 2, 2)) == pytest.approx(2 / 6)
    assert iou((0, 0, 1, 1), (5, 5, 1, 1)) == 0.0


def test_box_jitter_is_off_by_default_and_moves_the_crop_when_on():
    from m3mstl.data.dataset import AugmentConfig, _Draw

    base = AugmentConfig()
    draws = [_Draw.sample(config, np.random.default_rng(4), 64) for config in (base, base)]
    assert draws[0].scale == draws[1].scale and np.array_equal(draws[0].shift, draws[1].shift)
    jittered = _Draw.sample(AugmentConfig(box_jitter=0.3), np.random.default_rng(4), 64)
    assert (jittered.flip, jittered.angle_deg, jittered.noise_seed) == (draws[0].flip, draws[0].angle_deg,
                                                                         draws[0].noise_seed)
    assert jittered.scale != draws[0].scale or not np.array_equal(jittered.shift, draws[0].shift)


class _FixedModel:
    """Predicts the same normalised landmarks for every crop (enough to test the plumbing)."""

    def predict(self, image, temperature):
        points = torch.rand(68, 2, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
        return {"landmarks": points[None], "occlusion_prob": torch.full((1, 68), 0.2)}


def test_predict_frames_rows_overlays_and_unreadable_files(frame_and_crop, tmp_path, monkeypatch):
    from PIL import Image

    from m3mstl import runs
    from m3mstl.infer.frames import predict_frames, write_rows

    _, frame, _ = frame_and_crop
    data = tmp_path / "DATA"
    (data / "thermal").mkdir(parents=True)
    (data / "temperature").mkdir()
    Image.fromarray(frame.image_u8).save(data / "thermal" / "a.png")
    np.save(data / "temperature" / "a.npy", frame.temperature_c)
    (data / "thermal" / "broken.png").write_bytes(b"not a png")
    config = SimpleNamespace(data=SimpleNamespace(input_size=32, margin_px=5.0, square_crop=True))
    monkeypatch.setattr(runs, "load_model", lambda run_dir, device="cpu": _FixedModel())
    monkeypatch.setattr(runs, "load_config", lambda run_dir: config)
    rows = list(predict_frames(tmp_path / "run", [data / "thermal"], overlays=tmp_path / "ov", progress=False))
    errors = [r for r in rows if r.get("error")]
    faces = [r for r in rows if r.get("box")]
    assert len(errors) == 1 and "broken.png" in errors[0]["error"]
    assert faces and faces[0]["temperature"] and len(faces[0]["landmarks"]) == 68
    assert iou(tuple(faces[0]["box"]), frame.head_bbox) >= 0.5
    assert faces[0]["crop_box"] != faces[0]["box"]  # the head box was mapped and refined before cropping
    assert (tmp_path / "ov" / "a.png").is_file()
    csv_text = write_rows(rows, tmp_path / "rows.csv", "csv")
    assert csv_text.count("\n") == len(rows) + 1 and (tmp_path / "rows.csv").read_text() == csv_text
    assert json.loads(write_rows(rows, None, "json"))[0]["frame"] in ("a", "broken")
    boxed = list(predict_frames(tmp_path / "run", [data / "thermal" / "a.png"], box=(10, 10, 50, 60),
                                progress=False))
    assert boxed[0]["box"] == [10, 10, 50, 60] and boxed[0]["score"] == 1.0
    assert isinstance(Detection(1, 2, 3, 4, 0.5).as_dict(), dict)


def test_head_box_mapping_recovers_a_known_relation_and_ignores_bad_rows():
    from m3mstl.detection.head_box import HeadBoxMapping, fit_head_box_mapping

    rng = np.random.default_rng(0)
    head = np.column_stack([rng.uniform(0, 100, 50), rng.uniform(0, 100, 50), rng.uniform(40, 90, 50),
                            rng.uniform(50, 110, 50)])
    true = HeadBoxMapping(0.1, 0.3, 0.65, 0.7)
    land = np.array([true.apply(b) for b in head])
    land[:5] += 40.0                                   # a few odd faces: the median ignores them
    bad = np.array([[np.nan, 0, 10, 10], [0, 0, 0, 10]])
    fitted = fit_head_box_mapping(np.vstack([head, bad]), np.vstack([land, [[0, 0, 5, 5]] * 2]))
    assert (fitted.dx, fitted.dy, fitted.sw, fitted.sh) == pytest.approx((0.1, 0.3, 0.65, 0.7), abs=0.02)
    assert HeadBoxMapping().apply((1, 2, 3, 4)) == (1.0, 2.0, 3.0, 4.0)
    assert true.apply((10, 20, 100, 200)) == pytest.approx((20.0, 80.0, 65.0, 140.0))
    with pytest.raises(ValueError, match="head boxes"):
        fit_head_box_mapping(head, land[:3])
    with pytest.raises(ValueError, match="no pair"):
        fit_head_box_mapping(bad, [[0, 0, 5, 5]] * 2)


def test_training_frame_boxes_render_the_same_face_uncut(tmp_path):
    from m3mstl.data.coco import read_dataset
    from m3mstl.studies.camera_frames import training_frame_boxes

    root = generate_dataset(tmp_path / "crops", subjects=2, per_subject=2, size=64, seed=3).parent
    ids = [r.image_id for r in read_dataset(root).records][:2]
    boxes = training_frame_boxes(root, ids)
    assert boxes["image_id"].tolist() == ids
    for image_id, head, landmark_box in zip(ids, boxes["head_box"], boxes["landmark_box"]):
        _, subject, index, _ = image_id.split("_")
        frame = render(spec_for(3, int(subject), int(index), 2, load_priors(None)), 64, full_frame=True)
        assert head == list(frame.head_bbox) and landmark_box == pytest.approx(list(frame.bbox))
        # Uncut, the head box holds the landmark extent's top (the forehead lies above the brows).
        assert head[1] < landmark_box[1]


def test_predict_refined_reruns_the_model_on_the_extent_of_its_own_landmarks(monkeypatch):
    from m3mstl.infer import predict

    boxes = []

    def fake_predict_arrays(model, config, image, temperature, box, device="cpu"):
        boxes.append(tuple(box))
        points = np.array([[10.0, 20.0], [30.0, 60.0], [np.nan, np.nan]]) + len(boxes)
        return {"landmarks": points, "occlusion_prob": np.zeros(3), "crop_box": tuple(box)}

    monkeypatch.setattr(predict, "predict_arrays", fake_predict_arrays)
    out = predict.predict_refined(None, None, None, None, (0, 0, 100, 100), passes=2)
    assert boxes == [(0, 0, 100, 100), (11.0, 21.0, 20.0, 40.0), (12.0, 22.0, 20.0, 40.0)]
    assert out["first_box"] == (0.0, 0.0, 100.0, 100.0) and out["crop_box"] == boxes[-1]
    assert predict.predict_refined(None, None, None, None, (1, 2, 3, 4), passes=0)["crop_box"] == (1, 2, 3, 4)
    with pytest.raises(ValueError, match="no finite landmark"):
        predict.landmark_extent(np.full((68, 2), np.nan))


def test_coarse_to_fine_reads_the_face_from_the_coarse_runs_landmark_extent(monkeypatch):
    from m3mstl.infer import predict

    calls = []

    def fake_predict_arrays(model, config, image, temperature, box, device="cpu"):
        calls.append((model, tuple(box)))
        points = np.array([[10.0, 20.0], [30.0, 60.0]]) + len(calls)
        return {"landmarks": points, "occlusion_prob": np.zeros(2), "crop_box": tuple(box)}

    monkeypatch.setattr(predict, "predict_arrays", fake_predict_arrays)
    out = predict.predict_coarse_to_fine(("coarse", None), "fine", None, None, None, (0, 0, 100, 120), passes=1)
    # The coarse run on the head box; the fine run on the extent of the coarse landmarks, then on its own.
    assert calls == [("coarse", (0, 0, 100, 120)), ("fine", (11.0, 21.0, 20.0, 40.0)), ("fine", (12.0, 22.0, 20.0, 40.0))]
    assert out["coarse_box"] == (0.0, 0.0, 100.0, 120.0) and out["first_box"] == (11.0, 21.0, 20.0, 40.0)


def test_a_coarse_run_must_be_a_head_box_run_before_a_landmark_box_run(tmp_path, monkeypatch):
    from m3mstl import runs
    from m3mstl.errors import UsageError
    from m3mstl.infer.frames import load_coarse_run

    head = SimpleNamespace(data=SimpleNamespace(face_box="head"))
    extent = SimpleNamespace(data=SimpleNamespace(face_box="annotation"))
    monkeypatch.setattr(runs, "load_model", lambda run_dir, device="cpu": "model")
    monkeypatch.setattr(runs, "load_config", lambda run_dir: head if run_dir.name == "head" else extent)
    assert load_coarse_run(tmp_path / "head", extent) == ("model", head)
    with pytest.raises(UsageError, match="trained on landmark-extent boxes"):
        load_coarse_run(tmp_path / "extent", extent)
    with pytest.raises(UsageError, match="reads the detector's box directly"):
        load_coarse_run(tmp_path / "head", head)


def test_pipeline_refinement_scores_every_pass_along_one_chain():
    from m3mstl.studies.camera_frames import _refinement_nmes

    boxes = []

    def predicted(box):  # each pass lands one pixel further: the chain, not a restart, is scored
        boxes.append(tuple(box))
        return np.array([[10.0, 20.0], [30.0, 60.0]]) + len(boxes)

    out = _refinement_nmes((0, 0, 100, 100), (1, 3), predicted, lambda points: float(points[0, 0]))
    assert out == {"nme_mapped_box": 11.0, "nme_refined_1": 12.0, "nme_refined_3": 14.0}
    assert len(boxes) == 4  # the mapped box and three passes, each run once
    assert boxes[1] == (11.0, 21.0, 20.0, 40.0)  # a pass crops the extent of the previous landmarks
    missing = _refinement_nmes(None, (2,), predicted, lambda points: 0.0)
    assert np.isnan(missing["nme_mapped_box"]) and np.isnan(missing["nme_refined_2"])


def test_head_face_box_crops_around_the_visible_head_and_names_a_record_without_one(tmp_path):
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.dataset import ThermalFaceDataset, crop_box, face_box
    from m3mstl.data.errors import DatasetError

    frames = read_dataset(generate_dataset(tmp_path / "ff", subjects=1, per_subject=2, size=32, seed=3,
                                           full_frame=True).parent)
    record = frames.records[0]
    assert face_box(record, "head") == tuple(record.extras["head_bbox"])
    assert face_box(record) == pytest.approx(tuple(record.bbox))
    head_crop = crop_box(record, 5.0, True, "head")
    assert head_crop != crop_box(record, 5.0, True)
    sample = ThermalFaceDataset(frames, [0], 32, face_box="head")
    assert sample.boxes[0] == head_crop
    # The crop's landmarks are the frame's seen through the head crop: inside it, in unit coordinates.
    assert np.asarray(sample[0]["landmarks"]).min() > -0.2
    crops = read_dataset(generate_dataset(tmp_path / "crops", subjects=1, per_subject=1, size=32, seed=3).parent)
    crops.records[0].extras.pop("head_bbox", None)
    with pytest.raises(DatasetError, match="head_bbox") as caught:
        face_box(crops.records[0], "head")
    assert crops.records[0].image_path.name in str(caught.value)
    with pytest.raises(ValueError, match="unknown face box"):
        face_box(record, "detector-ish")
    # A relative margin grows the crop by that fraction of the box's larger side on every side.
    x, y, w, h = face_box(record, "head")
    wide = crop_box(record, 0.0, False, "head", margin_fraction=0.1)
    assert wide == pytest.approx((x - 0.1 * max(w, h), y - 0.1 * max(w, h), w + 0.2 * max(w, h), h + 0.2 * max(w, h)))
    assert ThermalFaceDataset(frames, [0], 32, face_box="head", margin_fraction=0.1).boxes[0] == \
        crop_box(record, 5.0, True, "head", 0.1)


def test_face_box_option_is_validated_and_stays_out_of_older_run_ids():
    from m3mstl.config import ConfigError, make_config, validate_config

    config = make_config("baseline", "quick")
    before = config.config_hash()
    assert config.data.face_box == "annotation"
    head = make_config("baseline", "quick", overrides={"data.face_box": "head"})
    validate_config(head)
    assert head.config_hash() != before
    # The default leaves the hash as it was before the option existed: the config without the field.
    legacy = config.to_dict()
    legacy.pop("loader")
    legacy.pop("precision")
    legacy["data"].pop("face_box")
    legacy["data"].pop("margin_fraction")
    for key in ("optimizer", "ema_decay"):  # the training recipe's options (issue 28), later still
        legacy.pop(key)
    for stage in legacy["stages"]:
        stage.pop("warmup_fraction")
    import hashlib
    canonical = json.dumps(legacy, sort_keys=True, separators=(",", ":"), default=str)
    assert hashlib.sha256(canonical.encode()).hexdigest()[:12] == before
    with pytest.raises(ConfigError, match="data.face_box"):
        validate_config(make_config("baseline", "quick", overrides={"data.face_box": "oracle"}))
    # Runs on the detector's own boxes change id with the detector's version (their crops do).
    from m3mstl.detection import rule_based
    on_detector = make_config("baseline", "quick", overrides={"data.face_box": "detector"})
    first, head_hash = on_detector.config_hash(), head.config_hash()
    try:
        rule_based.DETECTOR_VERSION += 1
        assert on_detector.config_hash() != first
        assert head.config_hash() == head_hash and config.config_hash() == before  # not theirs
    finally:
        rule_based.DETECTOR_VERSION -= 1
    assert make_config("baseline", "quick", overrides={"data.margin_fraction": 0.15}).config_hash() != before
    with pytest.raises(ConfigError, match="data.margin_fraction"):
        validate_config(make_config("baseline", "quick", overrides={"data.margin_fraction": -0.1}))


def test_a_run_trained_on_head_boxes_takes_the_detector_box_as_it_is():
    from m3mstl.detection.head_box import HeadBoxMapping
    from m3mstl.infer.frames import first_crop_box

    mapping = HeadBoxMapping(0.1, 0.3, 0.6, 0.7)
    head_run = SimpleNamespace(data=SimpleNamespace(face_box="head"))
    extent_run = SimpleNamespace(data=SimpleNamespace(face_box="annotation"))
    box = (10.0, 20.0, 100.0, 120.0)
    assert first_crop_box(head_run, box, given=False, mapping=mapping, refine_passes=2) == (box, 0)
    assert first_crop_box(extent_run, box, given=False, mapping=mapping, refine_passes=2) == (mapping.apply(box), 2)
    assert first_crop_box(extent_run, box, given=True, mapping=mapping, refine_passes=1) == (box, 1)


def test_detector_face_boxes_are_the_detectors_own_and_cached(tmp_path):
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.dataset import ThermalFaceDataset, attach_detector_boxes, crop_box, face_box
    from m3mstl.data.errors import DatasetError
    from m3mstl.detection.head_box import SYNTH_HEAD_TO_LANDMARK_BOX
    from m3mstl.infer.frames import first_crop_box, true_box

    root = generate_dataset(tmp_path / "ff", subjects=1, per_subject=3, size=32, seed=3, full_frame=True).parent
    frames = read_dataset(root)
    with pytest.raises(DatasetError, match="attach_detector_boxes"):
        face_box(frames.records[0], "detector")
    summary = attach_detector_boxes(frames, tmp_path / "cache")
    assert summary["faces"] == 3 and 1 <= summary["found"] <= 3  # at least one box checked below
    for record in frames.records:
        if record.extras["detector_bbox_found"]:  # the detector's own box, matched to this face
            found = [d.box for d in detect_faces(np.load(record.temperature_path))]
            assert face_box(record, "detector") in [tuple(float(v) for v in b) for b in found]
    cached = list((tmp_path / "cache").glob("detector-boxes-*.json"))
    assert len(cached) == 1
    again = read_dataset(root)
    assert attach_detector_boxes(again, tmp_path / "cache") == summary  # read back, not recomputed
    assert [face_box(r, "detector") for r in again.records] == [face_box(r, "detector") for r in frames.records]
    assert ThermalFaceDataset(again, [0], 32, face_box="detector").boxes[0] == crop_box(again.records[0], 5.0, True,
                                                                                        "detector")
    fresh = read_dataset(root)  # a dataset for a detector-box model finds its boxes itself (from the cache)
    assert ThermalFaceDataset(fresh, [0], 32, face_box="detector", cache_dir=tmp_path / "cache").boxes[0] == \
        crop_box(again.records[0], 5.0, True, "detector")
    # A run trained on detector boxes takes the detector's box as it is; its "true" box is the head box.
    run = SimpleNamespace(data=SimpleNamespace(face_box="detector"))
    assert first_crop_box(run, (1.0, 2.0, 30.0, 40.0), given=False, mapping=SYNTH_HEAD_TO_LANDMARK_BOX,
                          refine_passes=1) == ((1.0, 2.0, 30.0, 40.0), 0)
    assert true_box(again.records[0], run) == tuple(again.records[0].extras["head_bbox"])


def test_detector_cuts_a_box_with_no_visible_neck(frame_and_crop):
    """Detector version 4 on an edit of one generated frame: a neck 0.7 head widths wide (no
    narrowing below 0.65 for the head and neck split) down to the frame's edge still gives a
    head-sized box; version 3's settings give one running down the neck."""
    from m3mstl.detection.rule_based import DetectorConfig

    _, frame, _ = frame_and_crop
    hx, hy, hw, hh = frame.head_bbox
    chin_y = float(frame.landmarks[8, 1])
    room = float(np.percentile(frame.temperature_c, 10))
    # The frame continued downward by a head's height, so a box down the neck to the frame's edge
    # is clearly too tall.
    wide_neck = np.vstack([frame.temperature_c, np.full((int(hh), frame.temperature_c.shape[1]), room)])
    wide_neck[int(chin_y) - 2:, int(hx + 0.15 * hw):int(hx + 0.85 * hw)] = 34.0
    found = detect_faces(wide_neck)
    assert found and iou(found[0].box, frame.head_bbox) >= 0.5, (found[:2], frame.head_bbox)
    version_3 = DetectorConfig(max_box_aspect=None, contained_fraction=None)
    assert max((iou(d.box, frame.head_bbox) for d in detect_faces(wide_neck, version_3)), default=0) < 0.5


def test_boxes_mostly_inside_a_larger_one_are_dropped():
    from m3mstl.detection.rule_based import _without_contained

    head = Detection(100, 50, 200, 260, 0.6)
    hair_patch = Detection(180, 50, 40, 60, 0.9)        # wholly inside, scored higher: still dropped
    mask = Detection(150, 200, 120, 140, 0.5)           # 110 of its 140 rows inside the head: 79 %
    other_face = Detection(320, 60, 150, 200, 0.8)      # beside it
    kept = _without_contained([hair_patch, head, mask, other_face], 0.7)
    assert kept == [head, other_face]
    assert _without_contained([hair_patch, head, mask, other_face], 0.8) == [head, other_face, mask]  # by area


def test_frame_predictions_with_a_coarse_run_read_detected_faces_as_predict_coarse_does(tmp_path, monkeypatch):
    """Notebook 14 measures the two-stage reading exactly as `m3mstl predict --coarse` runs it: the
    detector's box goes to `predict_coarse_to_fine` (coarse run first), not through the head-box mapping."""
    from m3mstl import runs
    from m3mstl.infer import predict
    from m3mstl.studies import camera_frames

    extent = SimpleNamespace(data=SimpleNamespace(face_box="annotation"))
    head = SimpleNamespace(data=SimpleNamespace(face_box="head"))
    monkeypatch.setattr(runs, "load_model", lambda run_dir, device="cpu": f"model:{Path(run_dir).name}")
    monkeypatch.setattr(runs, "load_config", lambda run_dir: head if Path(run_dir).name == "coarse" else extent)
    record = SimpleNamespace(landmarks=np.zeros((68, 2)), labelled=np.ones(68, bool), extras={"head_bbox": [0, 0, 50, 60]})
    match = SimpleNamespace(box=(1.0, 2.0, 50.0, 60.0))
    monkeypatch.setattr(camera_frames, "frames_with_detection",
                        lambda records, detector, progress, desc: iter([(record, None, None, 0.9, match)]))
    monkeypatch.setattr(camera_frames, "true_box", lambda record, config: (0, 0, 10, 10))
    plain = {"landmarks": np.zeros((68, 2)), "occlusion_prob": np.zeros(68)}
    monkeypatch.setattr(predict, "predict_arrays", lambda *args, **kwargs: plain)
    calls = []

    def fake_coarse_to_fine(coarse, model, config, image, temperature, head_box, device="cpu", passes=1):
        calls.append((coarse[0], model, tuple(head_box), passes))
        return {"landmarks": np.full((68, 2), 7.0), "occlusion_prob": np.full(68, 0.25)}

    monkeypatch.setattr(predict, "predict_coarse_to_fine", fake_coarse_to_fine)
    out = camera_frames.frame_predictions(tmp_path / "fine", [record], coarse_run=tmp_path / "coarse", refine_passes=1)
    assert calls == [("model:coarse", "model:fine", (1.0, 2.0, 50.0, 60.0), 1)]
    assert out["detected"].tolist() == [True] and np.all(out["detector_landmarks"][0] == 7.0)
    assert np.all(out["detector_occlusion_prob"][0] == 0.25)


def test_frames_are_detected_once_per_detector_and_again_when_the_map_changes(tmp_path, monkeypatch):
    """Notebook 14 reads the same frames with many runs; the detector runs once per frame and detector."""
    import os

    from m3mstl.data import coco
    from m3mstl.detection.rule_based import DetectorConfig
    from m3mstl.studies import camera_frames

    monkeypatch.setattr(camera_frames, "_DETECTIONS", {})
    map_path = tmp_path / "frame.npy"
    np.save(map_path, np.zeros((4, 4)))
    record = SimpleNamespace(temperature_path=map_path, extras={"head_bbox": [0, 0, 2, 2]})
    monkeypatch.setattr(coco, "load_temperature", lambda record: np.zeros((4, 4)))
    monkeypatch.setattr(coco, "load_image", lambda record: np.zeros((4, 4), np.uint8))
    calls = []

    class Described:  # a trained detector says what it is (its run id and settings)
        description = {"detector": "trained", "run_id": "abc", "threshold": 0.2}

        def __call__(self, temperature):
            calls.append("trained")
            return [Detection(0, 0, 2, 2, 0.9)]

    def bare(temperature):  # a finder that does not say what it is: never cached
        calls.append("bare")
        return []

    def read(detector):
        return [item[3:] for item in camera_frames.frames_with_detection([record], detector, False, "t")]

    first = read(Described())
    assert read(Described()) == first and calls == ["trained"]
    assert first[0][1] is not None and first[0][0] == pytest.approx(1.0)
    read(bare), read(bare)
    assert calls == ["trained", "bare", "bare"]
    stat = map_path.stat()
    os.utime(map_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the frame was regenerated
    read(Described())
    assert calls.count("trained") == 2
    monkeypatch.setattr(camera_frames, "face_finder", lambda detector: lambda t: calls.append("rules") or [])
    read(DetectorConfig()), read(None), read(DetectorConfig(min_score=0.5))
    assert calls.count("rules") == 2  # None means the default settings: one key; other settings: another
