"""Whole camera scenes (issue 30): several people, bodies to the frame's edge, indoor and outdoor
backgrounds, the truth of each person, the scene set on disk and the detector's evaluation on it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from m3mstl.core.landmarks import NUM_LANDMARKS
from m3mstl.data.synth.priors import load_priors
from m3mstl.data.synth.scenes import (OutdoorSpec, generate_scenes, outdoor_field, read_scenes, render_scene,
                                      scene_spec)
from m3mstl.detection.base import Detection

CHIN = 8


@pytest.fixture(scope="module")
def priors():
    return load_priors(None)


@pytest.fixture(scope="module")
def scenes(priors):
    """Specs and renders of the first scenes of seed 3 until both kinds and a crowd are present."""
    found = []
    for index in range(12):
        spec = scene_spec(3, index, priors)
        found.append((spec, render_scene(spec)))
        kinds = {s.kind for s, _ in found}
        if kinds == {"indoor", "outdoor"} and any(len(s.people) >= 3 for s, _ in found) and len(found) >= 4:
            break
    return found


def test_a_scene_is_the_same_arrays_for_the_same_seed_and_index(priors):
    first, second = render_scene(scene_spec(3, 1, priors)), render_scene(scene_spec(3, 1, priors))
    np.testing.assert_array_equal(first.temperature_c, second.temperature_c)
    np.testing.assert_array_equal(first.image_u8, second.image_u8)
    assert scene_spec(3, 1, priors) != scene_spec(3, 2, priors)


def test_scenes_hold_several_people_far_to_near_at_the_sensor_size(scenes):
    for spec, scene in scenes:
        assert scene.temperature_c.shape == scene.image_u8.shape == (512, 640)
        assert np.isfinite(scene.temperature_c).all()
        # Far to near: the nominal face widths rise (a turned face's landmark extent is narrower).
        nominal = [person.spec.camera.face_fraction * 640 for person in spec.people]
        assert nominal == sorted(nominal) and 20 <= nominal[0] and nominal[-1] <= 160
        assert all(5 <= person["face_width_px"] <= 200 for person in scene.people)
        assert len(scene.people) == len(spec.people)


def test_each_landmark_is_labelled_by_what_is_in_front_of_it(scenes):
    for _, scene in scenes:
        height, width = scene.owner.shape
        for k, person in enumerate(scene.people):
            points, visibility = person["landmarks"], person["visibility"]
            assert points.shape == (NUM_LANDMARKS, 2)
            inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
            assert ((visibility == 0) == ~inside).all()       # v = 0: outside the frame, nothing else
            for i in np.flatnonzero(inside):
                owner = scene.owner[int(points[i, 1]), int(points[i, 0])]
                if owner > k:   # a nearer person stands in front
                    assert visibility[i] == 1 and person["occlusion_cause"][i] == "person"
                if visibility[i] == 2:
                    assert owner == k


def test_the_head_box_is_the_visible_head_stopping_at_the_chin(scenes):
    checked = 0
    for _, scene in scenes:
        height, width = scene.owner.shape
        for person in scene.people:
            box = person["head_bbox"]
            if box is None:
                assert person["hidden_share"] > 0.99
                continue
            x, y, w, h = box
            assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
            if person["hidden_share"] == 0 and person["visibility"][CHIN] == 2:
                chin_y = person["landmarks"][CHIN, 1]
                assert y + h - chin_y <= 0.35 * person["face_width_px"], "the head box reaches into the neck"
                checked += 1
    assert checked >= 2


def test_bodies_reach_the_frame_lower_edge(scenes):
    for _, scene in scenes:
        bottom = scene.owner[-1]
        for k, person in enumerate(scene.people):
            if person["head_bbox"] is None or person["cut_by_frame_edge"]:
                continue
            x, _, w, _ = person["head_bbox"]
            below = bottom[int(x):int(x + w)]
            assert (below >= k).any(), f"person {k}'s body ends above the frame's lower edge"


def test_the_outdoor_sky_is_coldest_overhead_and_the_sunlit_road_warm():
    spec = OutdoorSpec(horizon=0.5, sky_zenith_c=-40.0, cloudy=False, road_c=45.0, trees=(), texture_seed=1)
    field = outdoor_field(spec, 20.0, 64, 80)
    sky = field[:40].mean(axis=1)
    assert sky[0] < sky[-1] - 5.0 and sky[0] < -10.0 and 15.0 < sky[-1] < 20.0   # colder towards the zenith
    assert 20.0 < field[-1].mean() <= 46.0 and field[-1].mean() > field[41].mean()   # the road near the camera


def test_a_scene_set_writes_and_reads_back_and_refuses_a_foreign_folder(tmp_path, priors):
    from m3mstl.data.errors import DatasetError
    from m3mstl.data.synth.priors import SynthConfigError

    generate_scenes(tmp_path / "set", count=2, seed=3, priors=priors)
    read = read_scenes(tmp_path / "set")
    assert [scene.image_id for scene in read] == ["scene_00000", "scene_00001"]
    rendered = render_scene(scene_spec(3, 0, priors))
    np.testing.assert_array_equal(np.load(read[0].temperature_path), rendered.temperature_c)
    assert len(read[0].people) == len(rendered.people)
    np.testing.assert_allclose(read[0].people[0]["landmarks"], rendered.people[0]["landmarks"], atol=1e-4)
    generate_scenes(tmp_path / "set", count=1, seed=4, priors=priors)   # a scene set is replaced whole
    assert len(read_scenes(tmp_path / "set")) == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(SynthConfigError, match="no scene set"):
        generate_scenes(tmp_path / "mine", count=1, seed=3, priors=priors)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    with pytest.raises(DatasetError, match="annotations.json"):
        read_scenes(tmp_path / "mine")
    (tmp_path / "set" / "temperature" / "scene_00000.npy").unlink()
    with pytest.raises(DatasetError, match="scene_00000.npy"):
        read_scenes(tmp_path / "set")


def test_scene_evaluation_counts_found_faces_and_false_detections(tmp_path, priors):
    from m3mstl.evaluation.detection import evaluate_scenes, summarise_scenes

    generate_scenes(tmp_path / "set", count=2, seed=3, priors=priors)
    scenes = read_scenes(tmp_path / "set")
    truth = {id(s): [p["head_bbox"] for p in s.people if p["head_bbox"]] for s in scenes}

    class Oracle:
        """The true head boxes, plus one box on empty sky in the corner."""

        def __call__(self, temperature):
            scene = next(s for s in scenes if np.array_equal(np.load(s.temperature_path), temperature))
            return [Detection(*box, 1.0) for box in truth[id(scene)]] + [Detection(0.0, 0.0, 4.0, 4.0, 0.5)]

    faces, frames = evaluate_scenes(scenes, Oracle())
    assert faces["found"].all() and np.allclose(faces["iou"], 1.0) and np.allclose(faces["bottom_error_px"], 0.0)
    assert (frames["false_detections"] == 1).all()
    summary = summarise_scenes(faces, frames)
    overall = summary[(summary["kind"] == "all") & (summary["size"] == "all")].iloc[0]
    assert overall["recall"] == 1.0 and overall["false_detections_per_frame"] == 1.0
    wide = summary[(summary["kind"] == "all") & (summary["size"] == ">=40 px")].iloc[0]
    assert wide["faces"] == int((faces["face_width_px"] >= 40).sum())

    from m3mstl.report import findings
    from m3mstl.studies.camera_frames import scene_detection

    table = scene_detection(scenes, {"oracle": [Oracle()], "two seeds": [Oracle(), Oracle()]})
    two = table[(table["detector"] == "two seeds") & (table["size"] == "all") & (table["kind"] == "all")].iloc[0]
    assert two["n_seeds"] == 2 and two["recall"] == 1.0 and two["recall_sd"] == 0.0
    sentences = findings.describe_scene_detection(table)
    assert len(sentences) == 2 and "oracle finds 1.000 of" in sentences[0] and "mean of 2 seeds" in sentences[1]
    assert "1.000 false detections per frame" in sentences[0]


def test_synth_scenes_command(tmp_path):
    from cli_probes import run_cli

    result = run_cli("synth", tmp_path / "scenes", "--scenes", "1", "--seed", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "scenes" / "annotations.json").read_text())["info"]
    assert info["generator"] == "m3mstl synth --scenes" and info["scenes"] == 1
    assert "--scenes" in run_cli("synth", tmp_path / "bad", "--scenes", "0", "--quiet").stderr


def test_augmented_batches_keep_every_head_of_a_scene():
    import torch

    from m3mstl.detection.trained import settings_for
    from m3mstl.train.detector import augmented_batch

    settings = settings_for("quick", two_frame_fraction=1.0, shrink_fraction=0.0)
    inputs = torch.zeros((2, 2, settings.input_height, settings.input_width))
    boxes = [np.array([[0.1, 0.2, 0.1, 0.1], [0.6, 0.3, 0.2, 0.2]], np.float32), np.zeros((0, 4), np.float32)]
    _, batch_boxes = augmented_batch(inputs, boxes, np.array([0, 0, 1]), np.random.default_rng(0), settings)
    # Two frames side by side: the first frame's heads (halved in x) plus the other frame's.
    assert [len(b) for b in batch_boxes] in ([2, 2, 0], [2, 4, 0], [4, 2, 0], [4, 4, 0], [2, 2, 2], [2, 4, 2],
                                             [4, 2, 2], [4, 4, 2])
    assert all(0.0 <= x and x + w <= 1.0 + 1e-6 for frame in batch_boxes for x, _, w, _ in frame)


@pytest.mark.slow
def test_the_detector_trains_on_a_scene_set_and_scores_its_validation_scenes(tmp_path, priors):
    from cli_probes import assert_error, run_cli
    from conftest import outputs_redirected_to

    generate_scenes(tmp_path / "set", count=10, seed=3, priors=priors)
    with outputs_redirected_to(tmp_path / "out"):
        result = run_cli("detector", tmp_path / "set", "--profile", "quick", "--set", "input_width=96",
                         "--set", "input_height=80")
        assert result.returncode == 0, result.stderr[-2000:]
        run_dir = next((tmp_path / "out" / "runs" / "detector").iterdir())
        metrics = json.loads((run_dir / "metrics_val.json").read_text())
        assert metrics["data"] == "scenes"
        assert {row["kind"] for row in metrics["detection"]} >= {"all"}
        config = json.loads((run_dir / "config.json").read_text())
        assert config["settings"]["input_width"] == 96 and config["train_frames"] == 6   # scenes 0-2, 5-7 of 10
        assert_error(run_cli("detector", tmp_path / "set", "--profile", "quick", "--set", "no_such=1"),
                     "no_such")


def test_scene_sets_are_the_same_bytes_with_one_or_two_workers(tmp_path, priors):
    generate_scenes(tmp_path / "one", count=2, seed=5, priors=priors, workers=1)
    generate_scenes(tmp_path / "two", count=2, seed=5, priors=priors, workers=2)
    for name in ("annotations.json", "thermal/scene_00001.png", "temperature/scene_00001.npy"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
