"""`m3mstl verify`: the published tables and figures recompute from the run records alone (issue 29).

On the session's quick reproduction (`quick_reproduction`, which archives every run its tables name):
a copy holding only the published outputs, the manifest, the archive and the data (no runs/, no
weights) recomputes every output of the record-only notebooks byte for byte; a changed archived
record makes verify fail and name the outputs that moved.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m3mstl import paths
from m3mstl.verify import RECORD_NOTEBOOKS, Verification


def _clone_without_runs(reproduction: Path, target: Path) -> Path:
    """What a fresh clone holds of a published set: outputs, manifest, archive, and the (regenerable) data."""
    for folder in ("tables", "figures", "archive", "data"):
        shutil.copytree(reproduction / folder, target / folder)
    shutil.copy(reproduction / "reproduction.json", target / "reproduction.json")
    return target


def _verify(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(root)}
    env.pop("M3MSTL_PUBLISH_ROOT", None)
    env.pop("M3MSTL_ARCHIVE_DIR", None)
    return subprocess.run([sys.executable, "-m", "m3mstl.cli", "verify", "--profile", "quick"], env=env,
                          capture_output=True, text=True, timeout=1800)


@pytest.mark.notebooks
@pytest.mark.timeout(3600)
def test_the_published_tables_recompute_from_the_archive_alone_and_a_broken_record_is_caught(quick_reproduction,
                                                                                               tmp_path):
    manifest = json.loads((quick_reproduction / "reproduction.json").read_text())
    behind = {run for nb in manifest["notebooks"] if nb["name"][:2] in RECORD_NOTEBOOKS for run in nb["runs"]}
    assert behind and all(nb["runs"][run]["in_archive"] for nb in manifest["notebooks"] for run in nb["runs"]
                          if run in behind), "a run behind a record-only table was not archived"
    root = _clone_without_runs(quick_reproduction, tmp_path / "clone")
    proc = _verify(root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "every output recomputed byte for byte" in proc.stdout
    assert not (root / "runs").exists(), "verify trained something"
    # Change the ROC-AUC an archived M3MSTL run of the main table records: the table moves, and the
    # record no longer follows from its own predictions.
    evaluation = next(nb for nb in manifest["notebooks"] if nb["name"] == "06_evaluation")
    run_id = next(run for run in evaluation["runs"] if run.startswith("m3mstl/"))
    record = root / "archive" / run_id / "metrics_test.json"
    metrics = json.loads(record.read_text())
    metrics["occlusion"]["roc_auc"] -= 0.05
    record.write_text(json.dumps(metrics))
    broken = _verify(root)
    assert broken.returncode == 1, broken.stdout[-3000:] + broken.stderr[-3000:]
    assert "tables/06_main_results.csv: differs from the published bytes" in broken.stderr
    assert f"run {run_id}: archive/{run_id}/metrics_test.json does not follow from its predictions: " \
           "occlusion.roc_auc" in broken.stderr
    assert "does NOT recompute" in broken.stderr


def test_a_missing_run_is_named_not_trained():
    result = Verification("default", same=["tables/a.csv"], failed={"07_ablations": "Not trained yet: m3mstl ..."})
    assert not result.ok
    assert any("07_ablations: could not be recomputed: Not trained yet" in line for line in result.lines())
    assert result.lines()[-1].endswith("the published set does NOT recompute")


def test_verify_refuses_data_of_another_fingerprint(tmp_path, tiny_dataset_dir, monkeypatch):
    from m3mstl import verify
    from m3mstl.errors import UsageError

    monkeypatch.setattr(verify, "published_manifest",
                        lambda profile: {"data_fingerprint": "0000000000000000", "seed": 0, "notebooks": []})
    with pytest.raises(UsageError, match="computed on data 0000000000000000"):
        verify.verify("default", data_dir=tiny_dataset_dir, out_root=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_run_record_must_follow_from_its_predictions(tmp_path, monkeypatch):
    """On a committed archived run: its metrics follow from its predictions; changed, they do not."""
    from m3mstl import verify

    source = paths.REPO_ROOT / "archive" / "baseline" / "73e44c7fcbe8"
    archive = tmp_path / "archive"
    shutil.copytree(source, archive / "baseline" / "73e44c7fcbe8")
    shutil.copytree(paths.REPO_ROOT / "archive" / "ground-truth", archive / "ground-truth")
    monkeypatch.setattr(paths, "ARCHIVE_DIR", archive)
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    assert verify.run_record_problem("baseline/73e44c7fcbe8") is None
    record = archive / "baseline" / "73e44c7fcbe8" / "metrics_test.json"
    metrics = json.loads(record.read_text())
    metrics["landmarks"]["inter_ocular"]["nme_median"] *= 0.9
    record.write_text(json.dumps(metrics))
    assert "landmarks.inter_ocular.nme_median" in verify.run_record_problem("baseline/73e44c7fcbe8")
    assert "neither this machine" in verify.run_record_problem("baseline/000000000000")
