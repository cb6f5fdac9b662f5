"""`m3mstl reproduce`: failures name the notebook and the cell; broken promises fail;
and (marker `notebooks`) the whole notebook sequence runs on the quick profile."""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from m3mstl import paths, reproduce


def _write_notebook(folder: Path, name: str, cells: list[str], outputs: list[str] | None = None) -> Path:
    book = new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.metadata["m3mstl"] = {"outputs": outputs or []}
    params = new_code_cell("PROFILE = 'quick'\nSEED = 0\nDATA_DIR = None\nDEVICE = 'cpu'\nFORCE = False\nINTERACTIVE = True\n"
                           "TRAIN = False")
    params.metadata["tags"] = ["parameters"]
    book.cells = [params] + [new_code_cell(c) for c in cells]
    path = folder / f"{name}.ipynb"
    path.write_text(nbformat.writes(book))
    return path


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    return folder


def test_failing_notebook_names_notebook_cell_and_error(notebook_dir, tmp_path, tiny_dataset_dir):
    _write_notebook(notebook_dir, "01_fine", ["x = 1"])
    _write_notebook(notebook_dir, "02_broken", ["y = 2", "raise ValueError('the model diverged')"])
    _write_notebook(notebook_dir, "03_never_run", ["z = 3"])
    with pytest.raises(reproduce.NotebookFailed) as err:
        reproduce.reproduce("quick", data_dir=tiny_dataset_dir, notebooks_dir=notebook_dir, out_dir=tmp_path / "out")
    message = str(err.value)
    assert "02_broken.ipynb" in message and "ValueError" in message and "the model diverged" in message
    assert "cell [" in message
    assert not (tmp_path / "out" / "03_never_run.ipynb").exists()  # stops at the first failure


def test_cli_exits_non_zero_on_a_failing_notebook(notebook_dir, tiny_dataset_dir, monkeypatch, capsys):
    _write_notebook(notebook_dir, "01_broken", ["1 / 0"])
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", notebook_dir)
    monkeypatch.setattr(paths, "BUILD_DIR", notebook_dir.parent / "build")
    args = argparse.Namespace(profile="quick", data=tiny_dataset_dir, only=None, seed=0, device="cpu", force=False)
    assert reproduce.run(args) == 1
    assert "01_broken.ipynb failed in cell" in capsys.readouterr().err


def test_missing_promised_output_fails(notebook_dir, tmp_path, tiny_dataset_dir):
    _write_notebook(notebook_dir, "01_lazy", ["pass"], outputs=["tables/never_written.csv"])
    with pytest.raises(reproduce.NotebookFailed, match="never_written.csv is missing"):
        reproduce.reproduce("quick", data_dir=tiny_dataset_dir, notebooks_dir=notebook_dir, out_dir=tmp_path / "out")


def test_a_table_written_but_not_promised_fails(notebook_dir, tmp_path, monkeypatch):
    """Notebook 14 once wrote tables/14_detector_choice.* without promising them: the README cited a
    table that no manifest listed. Now the check names such a file; older files do not count."""
    import time

    monkeypatch.setattr(paths, "OUTPUT_ROOT", tmp_path)

    monkeypatch.setattr(paths, "PUBLISH_ROOT", tmp_path)
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "00_older_run.md").write_text("from before this notebook")
    started = time.time() + 5  # everything written above is older than this notebook's start
    notebook = _write_notebook(notebook_dir, "14_frames", ["pass"], outputs=["tables/14_detector.md"])
    for name in ("14_detector.md", "14_detector_choice.md"):
        path = tmp_path / "tables" / name
        path.write_text("| a |")
        os.utime(path, (started + 1, started + 1))
    with pytest.raises(reproduce.NotebookFailed, match="14_detector_choice.md was written but is not among"):
        reproduce.check_outputs(notebook, started)
    (tmp_path / "tables" / "14_detector_choice.md").unlink()
    assert reproduce.check_outputs(notebook, started) == ["tables/14_detector.md"]


def test_a_partial_reproduction_leaves_the_published_manifest_alone(notebook_dir, tmp_path, tiny_dataset_dir,
                                                                   monkeypatch):
    monkeypatch.setattr(paths, "MANIFEST_PATH", tmp_path / "reproduction.json")
    monkeypatch.setattr(paths, "BUILD_DIR", tmp_path / "build")
    monkeypatch.setattr(paths, "OUTPUT_ROOT", tmp_path)
    monkeypatch.setattr(paths, "PUBLISH_ROOT", tmp_path)
    monkeypatch.setattr(paths, "EXECUTED_DIR", tmp_path / "executed")  # not the repository's executed/
    _write_notebook(notebook_dir, "01_first", ["x = 1"])
    _write_notebook(notebook_dir, "02_second", ["y = 2"])
    written = reproduce.reproduce("quick", data_dir=tiny_dataset_dir, only=["02"], notebooks_dir=notebook_dir,
                                  out_dir=tmp_path / "out")
    assert written == tmp_path / "build" / "reproduction-partial.json"
    assert not (tmp_path / "reproduction.json").exists()
    manifest = json.loads(written.read_text())
    assert [n["name"] for n in manifest["notebooks"]] == ["02_second"]
    # The data named by a path inside the output root, and by its fingerprint: no absolute path.
    from m3mstl.runs import data_fingerprint

    assert manifest["data_dir"] == tiny_dataset_dir.relative_to(tmp_path).as_posix()
    assert manifest["data_fingerprint"] == data_fingerprint(tiny_dataset_dir)
    assert str(tmp_path) not in json.dumps({k: v for k, v in manifest.items() if k != "environment"})


def test_a_dataset_outside_the_repository_is_named_without_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUT_ROOT", tmp_path / "out")
    monkeypatch.setattr(paths, "PUBLISH_ROOT", tmp_path / "out")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")
    assert paths.portable_data_path(tmp_path / "elsewhere" / "TFD68") == "TFD68"
    assert paths.portable_data_path(tmp_path / "repo" / "data" / "synth-quick") == "data/synth-quick"


def test_every_source_notebook_has_a_parameters_cell_and_no_outputs():
    notebooks = reproduce.list_notebooks()
    assert notebooks, "no notebooks found"
    for path in notebooks:
        book = nbformat.read(path, as_version=4)
        tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        for name in ("PROFILE", "SEED", "DATA_DIR", "DEVICE", "FORCE", "INTERACTIVE", "TRAIN"):
            assert f"{name} =" in tagged[0].source, f"{path.name}: parameters cell lacks {name}"
        assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), f"{path.name} has outputs"
        code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
        first_training = re.search(r"\btrain(_model)?\(", code)  # m3mstl.train_model or the trainer's train
        if first_training:  # opening it must not start training unless the reader asks
            assert re.search(r"allow_training\(TRAIN or FORCE[,)]", code[:first_training.start()]), \
                f"{path.name}: call experiments.allow_training(TRAIN or FORCE) before the first train_model()"
        assert reproduce.promised_outputs(path), f"{path.name} promises no table or figure"


def _numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


# Pinned quick-profile values. CPU training is deterministic on one CPU type only: another type
# (the published run's AMD EPYC with AVX2, this file's CPU, an Intel Xeon with AVX-512/AMX) picks
# other kernels and sums in another order, and a few epochs carry that rounding into the metrics
# (issue 12 measured ROC-AUC 0.935 vs 0.938 and mean NME 0.117 vs 0.122 for the same default run
# on two CPU types). So the file records the CPU it was made on (model name and torch's kernel
# family), and the comparison is
#   - tight on that CPU type, |actual - expected| <= 2e-4 + 2e-3 |expected|: one of the 816 test
#     landmarks flipping its occlusion call (0.0012 in accuracy) passes, a real change fails;
#   - loose on any other, <= 0.03 + 0.10 |expected|: only a gross change (a metric collapsing,
#     a count changing, a key appearing or vanishing) fails, rounding drift does not.
#
# When a change is *meant* to move them, regenerate the file (one command, ~4 min on quiet cores):
#     M3MSTL_UPDATE_EXPECTED=1 .venv/bin/python -m pytest -m notebooks tests/test_reproduce.py
# and commit tests/expected/quick_profile_metrics.json with the change that moved them.
EXPECTED_QUICK_METRICS = Path(__file__).parent / "expected" / "quick_profile_metrics.json"
SAME_CPU_TOLERANCE = (2e-4, 2e-3)    # (absolute, relative)
OTHER_CPU_TOLERANCE = (0.03, 0.10)


def cpu_type() -> dict[str, str]:
    """What decides CPU rounding here: the CPU model and torch's kernel family (AVX2, AVX512, ...)."""
    import torch

    from m3mstl.runs import cpu_info

    return {"model": cpu_info()["model"], "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}{key}/")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}{i}/")
    else:
        yield prefix.rstrip("/"), value


def metric_differences(actual: dict, expected: dict, tolerance: tuple[float, float] = SAME_CPU_TOLERANCE) -> list[str]:
    """Every recorded metric that is missing, new, or off by more than the (absolute, relative) tolerance."""
    abs_tolerance, rel_tolerance = tolerance
    flat_actual, flat_expected = dict(_flatten(actual)), dict(_flatten(expected))
    problems = [f"{key}: not recorded any more" for key in sorted(set(flat_expected) - set(flat_actual))]
    problems += [f"{key}: recorded but not pinned" for key in sorted(set(flat_actual) - set(flat_expected))]
    for key in sorted(set(flat_actual) & set(flat_expected)):
        if key.rsplit("/", 1)[-1].endswith("seconds"):
            continue  # a timing measures the machine and its load, not the result: present is enough
        got, want = flat_actual[key], flat_expected[key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (got, want))
        if numeric and not (math.isnan(got) and math.isnan(want)):
            if not abs(got - want) <= abs_tolerance + rel_tolerance * abs(want):
                problems.append(f"{key}: {got!r}, pinned {want!r}")
        elif not numeric and got != want:
            problems.append(f"{key}: {got!r}, pinned {want!r}")
    return problems


def test_the_pinned_value_comparison_tolerates_rounding_and_catches_moves():
    pinned = {"04": {"roc_auc": 0.61234, "nme_mean": 0.4321, "n_images": 12, "p": 1.2e-5}}
    assert metric_differences(json.loads(json.dumps(pinned)), pinned) == []
    rounding = {"04": {"roc_auc": 0.61234 * (1 + 1e-5), "nme_mean": 0.4321 * (1 - 1e-5), "n_images": 12, "p": 1.3e-5}}
    assert metric_differences(rounding, pinned) == []
    moved = {"04": {"roc_auc": 0.6234, "nme_mean": 0.4321, "n_images": 12, "p": 1.2e-5}}
    assert metric_differences(moved, pinned) == ["04/roc_auc: 0.6234, pinned 0.61234"]
    assert metric_differences({"04": {**pinned["04"], "n_images": 13}}, pinned) == ["04/n_images: 13, pinned 12"]
    assert "04/new: recorded but not pinned" in metric_differences({"04": {**pinned["04"], "new": 1.0}}, pinned)
    assert metric_differences({"04": {**pinned["04"], "train_seconds": 9.0}}, {"04": {**pinned["04"], "train_seconds": 1.0}}) == []
    # Another CPU type: rounding drift of a few per cent passes, a collapsed metric does not.
    drift = {"04": {**pinned["04"], "roc_auc": 0.6234, "nme_mean": 0.4321 * 1.06}}
    assert metric_differences(drift, pinned, OTHER_CPU_TOLERANCE) == []
    collapsed = {"04": {**pinned["04"], "roc_auc": 0.5, "nme_mean": 0.9}}
    assert len(metric_differences(collapsed, pinned, OTHER_CPU_TOLERANCE)) == 2


def _recorded_metric_names(notebooks: list[Path]) -> set[str]:
    """The names the notebooks pass to `experiments.record_metrics("NAME", ...)`."""
    import re

    call = re.compile(r"record_metrics\(\s*\\?[\"']([^\"'\\]+)")
    return {name for nb in notebooks for name in call.findall(nb.read_text())}


@pytest.mark.notebooks
@pytest.mark.timeout(3600)
def test_quick_profile_runs_every_notebook(quick_reproduction):
    """The whole sequence on the quick profile (the session's `quick_reproduction`, written into
    a scratch output root so the committed figures and tables are untouched); its recorded
    metrics match the pinned ones."""
    tmp_path = quick_reproduction
    manifest = json.loads((tmp_path / "reproduction.json").read_text())
    notebooks = reproduce.notebooks_for_profile("quick")
    assert [n["name"] for n in manifest["notebooks"]] == [nb.stem for nb in notebooks]
    for notebook in notebooks:
        for rel in reproduce.promised_outputs(notebook):
            assert (tmp_path / rel).stat().st_size > 0, rel
    recorded = sorted((tmp_path / "build" / "metrics").glob("*.json"))
    assert {path.stem for path in recorded} == _recorded_metric_names(notebooks)
    for path in recorded:
        values = list(_numbers(json.loads(path.read_text())))
        assert values, f"{path.name} records no metric"
        assert all(math.isfinite(v) for v in values), f"{path.name} records a non-finite metric"
    actual = {path.stem: json.loads(path.read_text()) for path in recorded}
    if os.environ.get("M3MSTL_UPDATE_EXPECTED"):
        from m3mstl.core.fileio import write_json_atomic
        from m3mstl.runs import environment_info

        environment = environment_info("cpu")
        write_json_atomic(EXPECTED_QUICK_METRICS, {
            "_recorded_with": {key: environment.get(key) for key in ("git_commit", "platform", "machine", "python")}
            | {"torch": environment["packages"]["torch"], "cpu_type": cpu_type()},
            "metrics": actual})
        pytest.skip(f"rewrote {EXPECTED_QUICK_METRICS.name}: review and commit it")
    expected = json.loads(EXPECTED_QUICK_METRICS.read_text())
    same_cpu = expected["_recorded_with"].get("cpu_type") == cpu_type()
    problems = metric_differences(actual, expected["metrics"], SAME_CPU_TOLERANCE if same_cpu else OTHER_CPU_TOLERANCE)
    where = "this CPU type (tight tolerance)" if same_cpu else f"another CPU type than {expected['_recorded_with'].get('cpu_type')} (loose tolerance)"
    assert not problems, (f"quick-profile metrics moved on {where} (regenerate only if the change is meant to "
                          "move them, see this file):\n" + "\n".join(problems))


@pytest.mark.notebooks
@pytest.mark.timeout(3600)
def test_executed_copies_are_published_with_inline_figures_and_nothing_volatile(quick_reproduction):
    manifest = json.loads((quick_reproduction / "reproduction.json").read_text())
    listed = {rel: digest for nb in manifest["notebooks"] for rel, digest in nb["executed"].items()}
    assert set(listed) == {f"executed/{nb.name}" for nb in reproduce.notebooks_for_profile("quick")}
    assert {p.name for p in (quick_reproduction / "executed").iterdir()} == {Path(rel).name for rel in listed}
    for notebook in reproduce.notebooks_for_profile("quick"):
        path = quick_reproduction / "executed" / notebook.name
        assert reproduce.sha256(path) == listed[f"executed/{notebook.name}"], notebook.name
        text = path.read_text()
        book = nbformat.read(path, as_version=4)
        outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
        assert outputs, f"{notebook.name}: executed copy has no outputs"
        figures = [rel for rel in reproduce.promised_outputs(notebook) if rel.endswith(".png")]
        inline = [o for o in outputs if "image/png" in o.get("data", {})]
        assert len(inline) >= len(figures), f"{notebook.name}: {len(inline)} inline figures for {len(figures)} saved"
        for volatile in (str(quick_reproduction), str(paths.REPO_ROOT), "start_time", "iopub.", "widget-state",
                         "widget-view", "it/s", "img/s"):
            assert volatile not in text, f"{notebook.name}: executed copy holds {volatile!r}"
        assert all(not o.get("name") == "stderr" or "Warning" in "".join(o.get("text", "")) for o in outputs), \
            f"{notebook.name}: unexpected stderr in the executed copy"


@pytest.mark.notebooks
@pytest.mark.timeout(3600)
def test_a_second_run_rewrites_the_executed_notebooks_byte_for_byte(quick_reproduction):
    """Run again (finished runs reused, so no training output either way) the training notebooks,
    the figure-heavy evaluation and the widget explorer: same bytes as the first run wrote."""
    again = ["02", "05", "06", "10"]
    names = [nb.name for nb in reproduce.list_notebooks() if nb.name[:2] in again]
    first = {name: (quick_reproduction / "executed" / name).read_bytes() for name in names}
    manifest = quick_reproduction / "reproduction.json"
    complete_manifest = manifest.read_bytes()  # the partial run below rewrites it; other tests read it
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(quick_reproduction)}
    try:
        proc = subprocess.run([sys.executable, "-m", "m3mstl.cli", "reproduce", "--profile", "quick", "--device",
                               "cpu", "--only", *again], env=env, capture_output=True, text=True, timeout=1800)
    finally:
        manifest.write_bytes(complete_manifest)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for name in names:
        assert (quick_reproduction / "executed" / name).read_bytes() == first[name], f"{name} differs between runs"


def test_regenerated_outputs_do_not_mark_the_code_dirty(tmp_path, monkeypatch):
    from m3mstl import runs

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "t.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    clean = runs.git_commit()
    assert len(clean) == 40
    (tmp_path / "tables" / "t.md").write_text("regenerated\n")
    assert runs.git_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert runs.git_commit() == clean + "-dirty"


def test_a_complete_run_keeps_other_profiles_executed_copies_and_drops_removed_notebooks(tmp_path, monkeypatch):
    """An extended run must not delete the default run's published executed/01-11 (it once did);
    a copy whose notebook no longer exists does go."""
    monkeypatch.setattr(paths, "OUTPUT_ROOT", tmp_path)
    monkeypatch.setattr(paths, "PUBLISH_ROOT", tmp_path)
    monkeypatch.setattr(paths, "EXECUTED_DIR", tmp_path / "executed")
    notebooks, raw = tmp_path / "notebooks", tmp_path / "raw"
    notebooks.mkdir(), raw.mkdir(), (tmp_path / "executed").mkdir()
    for name in ("01_default.ipynb", "12_extended.ipynb"):
        (notebooks / name).write_text(nbformat.writes(new_notebook()))
    (raw / "12_extended.ipynb").write_text(nbformat.writes(new_notebook()))
    (tmp_path / "executed" / "01_default.ipynb").write_text("the default run's copy")
    (tmp_path / "executed" / "05_renamed_away.ipynb").write_text("a notebook that is gone")
    published = reproduce.publish_executed(["12_extended.ipynb"], raw, remove_stale=True, notebooks_dir=notebooks)
    assert list(published) == ["executed/12_extended.ipynb"]
    left = sorted(p.name for p in (tmp_path / "executed").iterdir())
    assert left == ["01_default.ipynb", "12_extended.ipynb"]


def test_cleaning_an_executed_notebook_removes_what_changes_between_runs():
    from nbformat.v4 import new_output

    book = new_notebook()
    book.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00", "duration": 3.2,
                                  "input_path": str(paths.REPO_ROOT / "notebooks" / "x.ipynb"),
                                  "parameters": {"DATA_DIR": str(paths.OUTPUT_ROOT / "data" / "synth-quick")}}
    book.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"ab12": {}}}}
    injected = new_code_cell(f"DATA_DIR = \"{paths.OUTPUT_ROOT / 'data'}\"")
    injected.metadata["tags"] = ["injected-parameters"]
    work = new_code_cell("train()")
    work.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:01Z"}
    work.metadata["papermill"] = {"duration": 1.0}
    work.outputs = [
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "ab12"},
                                         "text/plain": "epoch 1/1: 10%|# | 3.1 it/s"}),
        new_output("stream", name="stdout", text=f"run: {paths.OUTPUT_ROOT / 'runs' / 'm3mstl' / 'abc'}\n"),
        new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
    ]
    book.cells = [injected, work]
    cleaned = reproduce.clean_executed_notebook(nbformat.writes(book))
    assert cleaned == reproduce.clean_executed_notebook(cleaned), "cleaning must be idempotent"
    result = nbformat.reads(cleaned, as_version=4)
    assert result.metadata["papermill"] == {"parameters": {"DATA_DIR": "data/synth-quick"}}
    assert "widgets" not in result.metadata
    assert result.cells[0].id == "injected-parameters" and result.cells[0].source == 'DATA_DIR = "data"'
    assert set(result.cells[1].metadata) == set()
    assert [o.get("name") or next(iter(o.data)) for o in result.cells[1].outputs] == ["stdout", "image/png"]
    assert result.cells[1].outputs[0].text == "run: runs/m3mstl/abc\n"


def test_progress_written_by_another_process_reaches_the_terminal(tmp_path):
    import io

    from m3mstl.core import progress

    stream = io.StringIO()
    script = "from m3mstl.core import progress; progress.report('[m3mstl] stage 3/3 joint epoch 2/7 step 5/9: 31.0 img/s')"
    with progress.ProgressRelay(tmp_path / "progress.log", prefix="[4/12] ", stream=stream, poll_seconds=0.05):
        assert os.environ[progress.ENV_VAR] == str(tmp_path / "progress.log")
        subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy())
    assert stream.getvalue() == "[4/12] [m3mstl] stage 3/3 joint epoch 2/7 step 5/9: 31.0 img/s\n"
    assert progress.ENV_VAR not in os.environ
    assert progress.report("nobody listens") is False


@pytest.mark.slow
def test_a_training_notebook_opened_without_runs_explains_instead_of_training(tmp_path, tiny_dataset_dir,
                                                                              monkeypatch):
    """Notebook 05 as a reader would run it (TRAIN and FORCE False) in a fresh output root."""
    import papermill

    monkeypatch.setenv("M3MSTL_OUTPUT_ROOT", str(tmp_path / "root"))  # the kernel inherits it
    notebook = next(nb for nb in reproduce.list_notebooks() if nb.name.startswith("05_"))
    with pytest.raises(papermill.PapermillExecutionError) as refused:
        papermill.execute_notebook(str(notebook), str(tmp_path / notebook.name), kernel_name="python3",
                                   progress_bar=False, parameters=dict(PROFILE="quick", DATA_DIR=str(tiny_dataset_dir),
                                                                       DEVICE="cpu", INTERACTIVE=False))
    assert refused.value.ename == "RunNotTrained"
    message = refused.value.evalue
    assert "Not trained yet: baseline" in message and "m3mstl train --model baseline" in message
    assert not (tmp_path / "root" / "runs").exists(), "nothing may be trained or even started"


def test_a_profile_that_does_not_publish_writes_under_build_not_over_the_published_set(
        notebook_dir, tmp_path, tiny_dataset_dir, monkeypatch):
    """`make reproduce PROFILE=quick` in a checkout once replaced the published default manifest, tables,
    figures and executed notebooks (issue 29); now they go to build/quick/ unless --publish."""
    for name in ("REPO_ROOT", "OUTPUT_ROOT", "PUBLISH_ROOT"):
        monkeypatch.setattr(paths, name, tmp_path)
    for name in ("MANIFEST_PATH", "FIGURES_DIR", "TABLES_DIR", "EXECUTED_DIR", "ARCHIVE_DIR"):
        monkeypatch.setattr(paths, name, getattr(paths, name))  # restored after the relocation below
    monkeypatch.setattr(paths, "BUILD_DIR", tmp_path / "build")
    monkeypatch.setenv("M3MSTL_PUBLISH_ROOT", "")
    # The kernel sees where to publish (m3mstl.paths reads M3MSTL_PUBLISH_ROOT there).
    _write_notebook(notebook_dir, "01_first", ["import os, pathlib",
                                               "root = pathlib.Path(os.environ['M3MSTL_PUBLISH_ROOT'])",
                                               "root.mkdir(parents=True, exist_ok=True)",
                                               "(root / 'kernel_saw_this_root').write_text('')"])
    written = reproduce.reproduce("quick", data_dir=tiny_dataset_dir, notebooks_dir=notebook_dir,
                                  out_dir=tmp_path / "out")
    assert written == tmp_path / "build" / "quick" / "reproduction.json"
    assert (tmp_path / "build" / "quick" / "executed" / "01_first.ipynb").is_file()
    assert (tmp_path / "build" / "quick" / "kernel_saw_this_root").is_file()
    assert not (tmp_path / "reproduction.json").exists() and not (tmp_path / "executed").exists()
    assert paths.PUBLISH_ROOT == tmp_path and os.environ["M3MSTL_PUBLISH_ROOT"] == ""  # restored afterwards


def test_publish_writes_a_quick_run_over_the_published_set(notebook_dir, tmp_path, tiny_dataset_dir, monkeypatch):
    for name in ("REPO_ROOT", "OUTPUT_ROOT", "PUBLISH_ROOT"):
        monkeypatch.setattr(paths, name, tmp_path)
    monkeypatch.setattr(paths, "MANIFEST_PATH", tmp_path / "reproduction.json")
    monkeypatch.setattr(paths, "EXECUTED_DIR", tmp_path / "executed")
    monkeypatch.setattr(paths, "BUILD_DIR", tmp_path / "build")
    _write_notebook(notebook_dir, "01_first", ["x = 1"])
    written = reproduce.reproduce("quick", data_dir=tiny_dataset_dir, notebooks_dir=notebook_dir,
                                  out_dir=tmp_path / "out", publish=True)
    assert written == tmp_path / "reproduction.json"


# What a notebook reads besides the main data, generated before any notebook runs (the generation's
# progress and timing would otherwise land in the published executed copy as stderr).
GENERATING_CALLS = {"frames": "resolve_frames_dir(", "scenes": "profile_scenes("}


@pytest.mark.parametrize("notebook", reproduce.list_notebooks(), ids=lambda nb: nb.name)
def test_a_notebook_declares_every_embedded_set_it_reads(notebook):
    source = "".join(cell.source for cell in nbformat.read(notebook, as_version=4).cells)
    reads = [name for name, call in GENERATING_CALLS.items() if call in source]
    assert reproduce.embedded_sets_read([notebook]) == reads, \
        f"{notebook.name}: set metadata m3mstl.embedded_data to {reads} (what its cells read)"


def test_reproduce_generates_the_declared_sets_before_the_notebooks(notebook_dir, monkeypatch):
    book = _write_notebook(notebook_dir, "01_frames", ["x = 1"])
    meta = nbformat.read(book, as_version=4)
    meta.metadata["m3mstl"]["embedded_data"] = ["scenes", "frames"]
    book.write_text(nbformat.writes(meta))
    generated = []
    monkeypatch.setitem(reproduce.EMBEDDED_SETS, "frames", lambda profile: generated.append(("frames", profile)))
    monkeypatch.setitem(reproduce.EMBEDDED_SETS, "scenes", lambda profile: generated.append(("scenes", profile)))
    reproduce.prepare_embedded_sets([book], "quick", given_data=False)
    assert generated == [("frames", "quick"), ("scenes", "quick")]
    generated.clear()
    reproduce.prepare_embedded_sets([book], "quick", given_data=True)  # the user's frames replace the embedded ones
    assert generated == [("scenes", "quick")]
    meta.metadata["m3mstl"]["embedded_data"] = ["faces"]
    book.write_text(nbformat.writes(meta))
    with pytest.raises(ValueError, match="faces"):
        reproduce.embedded_sets_read([book])
