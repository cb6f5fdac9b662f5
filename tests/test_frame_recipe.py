"""The recommended pipeline for whole camera frames: its commands, `m3mstl frame-models`, and the README
block that states it (issue 30)."""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m3mstl import paths
from m3mstl.cli import main
from m3mstl.config import make_config
from m3mstl.studies import camera_frames


def _overrides_of(command: str) -> dict[str, str]:
    words = shlex.split(command)
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--set")


def test_the_recipe_commands_train_exactly_the_runs_notebook_14_measures():
    detector, coarse, fine, predict = camera_frames.recipe_commands("FRAMES")
    assert detector == "m3mstl detector FRAMES"
    # Typed on a command line, the --set values make the same configs as the study's overrides.
    assert make_config("baseline", "default", overrides=_overrides_of(coarse)) == make_config(
        "baseline", "default", overrides=camera_frames.FRAME_BOX_CANDIDATES[camera_frames.COARSE_TRAINING])
    assert f"--model {camera_frames.RECOMMENDED_FAMILY} " in fine
    assert make_config(camera_frames.RECOMMENDED_FAMILY, "default", overrides=_overrides_of(fine)) == make_config(
        camera_frames.RECOMMENDED_FAMILY, "default", overrides=camera_frames.FINE_TRAININGS[camera_frames.RECOMMENDED_FINE])
    assert make_config("baseline", "default", overrides=_overrides_of(coarse)).data.face_box == "head"
    assert "--coarse" in predict and "--detector" in predict


@pytest.mark.parametrize("profile, seed", [("default", 0), ("extended", 2), ("quick", 1)])
def test_the_listed_commands_train_the_runs_frame_models_trains_for_that_profile_and_seed(profile, seed):
    """`m3mstl frame-models --profile P --seed K --list` prints commands that, typed, train the same
    runs (profile settings and seed) as `frame-models` itself; before, they lacked both."""
    import argparse
    import importlib

    from m3mstl.cli import SUBCOMMANDS
    from m3mstl.profiles import base_profile

    def parse(command):  # as `m3mstl` itself parses it
        name, *words = shlex.split(command)[1:]
        parser = argparse.ArgumentParser()
        importlib.import_module(SUBCOMMANDS[name][0]).configure_parser(parser)
        return parser.parse_args(words)

    detector, coarse, fine, _ = camera_frames.recipe_commands("FRAMES", profile, seed)
    parsed = [parse(command) for command in (detector, coarse, fine)]
    assert all(args.seed == seed for args in parsed)
    assert all(args.profile == base_profile(profile) for args in parsed)
    overrides = camera_frames.FRAME_BOX_CANDIDATES[camera_frames.COARSE_TRAINING]
    assert make_config("baseline", parsed[1].profile, seed=parsed[1].seed, overrides=_overrides_of(coarse)) == \
        make_config("baseline", profile, seed=seed, overrides=overrides)


def test_fine_runs_come_from_the_crops_for_the_main_training_and_from_the_frames_otherwise(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("m3mstl.train_model", lambda family, profile, data, **kw: calls.append((family, data, kw)) or tmp_path)
    frames, crops = tmp_path / "frames", tmp_path / "crops"
    camera_frames.train_fine_run("hourglass", "quick", "landmark extent (main reproduction)", 1, frames_dir=frames, crops_dir=crops)
    camera_frames.train_fine_run("m3mstl", "quick", camera_frames.RECOMMENDED_FINE, 2, frames_dir=frames, crops_dir=crops)
    camera_frames.train_fine_run("m3mstl", "quick", "landmark extent (main reproduction)", 0, frames_dir=frames, crops_dir=None)
    assert calls[0] == ("hourglass", crops, {"seed": 1})
    assert calls[1] == ("m3mstl", frames, {"seed": 2, "overrides": camera_frames.FINE_TRAININGS[camera_frames.RECOMMENDED_FINE]})
    assert calls[2][1] == frames  # no crops (a user's own frames): the same training on the frames


def test_frame_models_lists_its_commands_and_refuses_a_folder_without_frames(capsys, tmp_path):
    assert main(["frame-models", "--data", str(tmp_path), "--list"]) == 2
    assert "annotations.json" in capsys.readouterr().err
    (tmp_path / "annotations.json").write_text("{}")
    assert main(["frame-models", "--data", str(tmp_path), "--list"]) == 0
    lines, commands = capsys.readouterr().out.splitlines(), camera_frames.recipe_commands(str(tmp_path))
    assert len(lines) == len(commands) and lines[-1] == commands[-1]
    for line, command in zip(lines[:3], commands):  # each run's command with its state: nothing trained here
        assert line == f"{command}    # missing"


def test_the_readme_states_the_recipe_once_the_published_set_has_the_two_stage_study(tmp_path):
    from m3mstl import readme

    published = paths.PUBLISH_ROOT / "tables"
    needed = ["14_detector_choice", "14_detector", "14_pipeline_nme", "14_canthus_from_frames"]
    if not all((published / f"{name}.csv").is_file() for name in needed):
        pytest.skip("the published extended set has no notebook 14 tables")
    (tmp_path / "tables").mkdir()
    for name in needed:
        shutil.copy(published / f"{name}.csv", tmp_path / "tables" / f"{name}.csv")
    choice_table = tmp_path / "tables" / "14_fine_choice.csv"
    for recommended_lowest in (True, False):  # the README says whether validation agrees with the recipe
        nmes = {name: (0.07 if (name == camera_frames.RECOMMENDED_FINE) == recommended_lowest else 0.09)
                for name in camera_frames.FINE_TRAININGS}
        pd.DataFrame([{"training": name, "run_id": f"m3mstl/{i}", "faces": 10, "median_nme": nme}
                      for i, (name, nme) in enumerate(nmes.items())]).to_csv(choice_table, index=False)
        text = readme.extended_frames(Path(tmp_path))
        assert "`m3mstl frame-models`" in text and "tables/14_fine_choice.csv" in text and "14_box_choice" not in text
        assert all(f"`{command}`" in text for command in camera_frames.recipe_commands())
        assert ("NOT the one this validation prefers" in text) == (not recommended_lowest)


def test_the_predict_canthus_benchmark_scores_rows_against_the_generated_truth(tmp_path):
    """benchmarks/bench_predict_canthus.py: a row matching the true head box and reading the truth plus
    the camera's offset is off by the offset as reported and exact once the offset is removed; a row
    with no reading abstains; a frame whose only box misses the head counts as not found."""
    from benchmarks.bench_predict_canthus import score_rows
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.synth.generate import generate_dataset
    from m3mstl.infer.canthus import bare_canthi

    records = read_dataset(generate_dataset(tmp_path / "ff", subjects=2, per_subject=3, size=32, seed=3,
                                            full_frame=True).parent).records
    offsets = [r.extras["camera"]["offset_error_c"] for r in records]
    rows = [{"file": str(r.image_path), "box": list(r.extras["head_bbox"]),
             "canthus_temperature_c": max(r.extras["canthus_skin_max_c"]) + offset}
            for r, offset in zip(records[1:], offsets[1:])]
    x, y, w, h = records[0].extras["head_bbox"]
    rows.append({"file": str(records[0].image_path), "box": [x + 3 * w, y, w, h], "canthus_temperature_c": 36.0})
    numbers = score_rows(rows, records)
    bare = bare_canthi(records[1:])
    assert numbers["faces_found"] == len(records) - 1 and numbers["bare_faces"] == int(bare.sum()) > 0
    assert numbers["bare_mae_offset_removed_c"] == pytest.approx(0.0, abs=1e-9)
    assert numbers["bare_mae_c"] == pytest.approx(np.mean(np.abs(np.array(offsets[1:])[bare])))
    assert numbers["bare_abstention"] == 0.0
    for row in rows:
        row["canthus_temperature_c"] = None
    assert score_rows(rows, records)["bare_abstention"] == 1.0


def test_frame_models_list_names_each_runs_state(monkeypatch, tmp_path):
    """--list says which of the three runs exist: a later session sees what is left to train."""
    from m3mstl import runs
    from m3mstl.studies import frame_models, run_lookup

    (tmp_path / "annotations.json").write_text("{}")
    monkeypatch.setattr(runs, "data_fingerprint", lambda folder: "f" * 16)
    monkeypatch.setattr(runs, "is_complete", lambda run_dir: True)
    seen = []

    def fake_state(family, profile, seed, overrides, fingerprint):
        seen.append((family, profile, seed, overrides))
        return ("archived", Path("/x/archive/baseline/abc")) if family == "baseline" else ("missing", None)

    monkeypatch.setattr(run_lookup, "run_state", fake_state)
    states = frame_models.run_states("extended", tmp_path, 2)
    assert states[0].startswith("finished (runs/detector/")
    assert states[1:] == ["archived (archive/baseline/abc)", "missing"]
    assert seen == [("baseline", "extended", 2, camera_frames.FRAME_BOX_CANDIDATES[camera_frames.COARSE_TRAINING]),
                    (camera_frames.RECOMMENDED_FAMILY, "extended", 2,
                     camera_frames.FINE_TRAININGS[camera_frames.RECOMMENDED_FINE])]
