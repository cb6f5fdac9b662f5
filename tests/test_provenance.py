"""Runs are tied to the code that trained them (issue 29): the fingerprint, what changes it, and the
lifecycle's `--retrain-other-code` path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from m3mstl import paths
from m3mstl.runs import lifecycle, provenance


def _copy_shaping_code(dst: Path) -> Path:
    for path in provenance.shaping_files():
        target = dst / path.relative_to(paths.REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dst


def test_fingerprint_moves_with_code_but_not_with_comments_or_docstrings(tmp_path):
    root = _copy_shaping_code(tmp_path / "repo")
    before = provenance.code_fingerprint(root)
    module = root / "m3mstl" / "models" / "losses.py"
    text = module.read_text()
    module.write_text('"""Another docstring."""\n# a new comment\n' + text.split('"""', 2)[2].lstrip("\n"))
    provenance.code_fingerprint.cache_clear()
    assert provenance.code_fingerprint(root) == before
    module.write_text(module.read_text() + "\nSHAPES_NUMBERS = 1\n")
    provenance.code_fingerprint.cache_clear()
    assert provenance.code_fingerprint(root) != before


def test_the_generator_is_not_part_of_it_the_trainer_is():
    files = {p.relative_to(paths.REPO_ROOT).as_posix() for p in provenance.shaping_files()}
    assert "m3mstl/train/trainer.py" in files and "m3mstl/models/m3mstl.py" in files
    assert "m3mstl/evaluation/metrics.py" in files
    assert not any(f.startswith("m3mstl/data/synth/") for f in files)
    assert "m3mstl/report/tables.py" not in files  # drawing a table does not change a run's numbers


def _finished_run(run_dir: Path, code: str | None) -> Path:
    run_dir.mkdir(parents=True)
    env = {"data_fingerprint": "f" * 16, **({"code_fingerprint": code} if code else {})}
    (run_dir / "environment.json").write_text(json.dumps(env))
    for name in ("config.json", "model.pt", "metrics_test.json", "complete.json"):
        (run_dir / name).write_text("{}")
    return run_dir


@pytest.mark.parametrize("recorded", ["current", "other", None])
def test_retrain_other_code_retrains_exactly_the_runs_other_code_trained(tmp_path, monkeypatch, recorded):
    code = {"current": provenance.code_fingerprint(), "other": "0" * 16, None: None}[recorded]
    run_dir = _finished_run(tmp_path / "run", code)
    trained = []
    produce = lambda: lifecycle.produce_run(run_dir, lambda: trained.append(1), fingerprint="f" * 16,
                                            refusal=lambda: "refused")
    monkeypatch.delenv(provenance.RETRAIN_OTHER_CODE_ENV, raising=False)
    produce()
    assert trained == []  # reused by default, whatever code trained it
    monkeypatch.setenv(provenance.RETRAIN_OTHER_CODE_ENV, "1")
    produce()
    assert trained == ([] if recorded == "current" else [1])
