"""`m3mstl reproduce`: execute every notebook in order with papermill and check that
each one produced the tables and figures it promises.

A notebook promises its outputs in its own metadata (``metadata.m3mstl.outputs``, paths
relative to the output root, normally the repository), next to the code that writes them. After a run,
`reproduction.json` (beside `figures/` and `tables/`) records the profile, git commit, environment, each notebook's
duration and every output with its SHA-256.

When every notebook has run, their executed copies go to `executed/` (beside `figures/`), cleaned of
what changes from run to run (timings, widget ids, papermill's timestamps, absolute paths), so a
reader sees every result without running anything and two runs of one commit write the same bytes.
While a notebook runs, its training progress is relayed to the terminal (`m3mstl.core.progress`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3mstl import paths
from m3mstl.config import REPRODUCE_PROFILES
from m3mstl.profiles import PUBLISHED_PROFILES
from m3mstl.data.embedded import ensure_synthetic_data, ensure_synthetic_frames, ensure_synthetic_scenes
from m3mstl.core.fileio import write_bytes_atomic, write_json_atomic
from m3mstl.core.progress import ProgressRelay
from m3mstl.errors import M3mstlError, UsageError
from m3mstl.runs import data_fingerprint, environment_info, provenance
from m3mstl.report.notebook_metadata import CORE_PROFILES, list_notebooks, notebook_metadata, notebook_profiles


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the cell and the error."""


@dataclass
class NotebookResult:
    name: str
    seconds: float
    outputs: list[str]



def notebooks_for_profile(profile: str, notebooks_dir: Path | None = None) -> list[Path]:
    """The notebooks `m3mstl reproduce --profile PROFILE` executes, in order."""
    return [nb for nb in list_notebooks(notebooks_dir) if profile in notebook_profiles(nb)]


def manifest_path(profile: str) -> Path:
    """reproduction.json for the core profiles; the extended studies have their own manifest."""
    if profile in CORE_PROFILES:
        return paths.MANIFEST_PATH
    return paths.MANIFEST_PATH.with_name(f"reproduction-{profile}.json")


def promised_outputs(notebook: Path) -> list[str]:
    return list(notebook_metadata(notebook).get("m3mstl", {}).get("outputs", []))


# The embedded sets beside the main SynthTFD68 a notebook may read (its metadata `m3mstl.embedded_data`),
# each with the function that generates it; `prepare_embedded_sets` calls them before the notebooks run.
EMBEDDED_SETS = {"frames": ensure_synthetic_frames, "scenes": ensure_synthetic_scenes}


def embedded_sets_read(notebooks: list[Path]) -> list[str]:
    """The embedded sets the notebooks declare they read, in `EMBEDDED_SETS` order."""
    declared = {name for nb in notebooks for name in notebook_metadata(nb).get("m3mstl", {}).get("embedded_data", [])}
    unknown = declared - set(EMBEDDED_SETS)
    if unknown:
        raise ValueError(f"notebook metadata names unknown embedded data {sorted(unknown)}; known: {list(EMBEDDED_SETS)}")
    return [name for name in EMBEDDED_SETS if name in declared]


def prepare_embedded_sets(notebooks: list[Path], profile: str, *, given_data: bool) -> None:
    """Generate, before any notebook runs, the whole frames and scenes the notebooks read: so the
    generation's progress (and its timing) goes to this terminal, not into a published executed copy.
    With the user's own data the notebooks read that instead of the embedded frames (scenes stay
    embedded: they test the detector, not the data)."""
    for name in embedded_sets_read(notebooks):
        if name == "frames" and given_data:
            continue
        EMBEDDED_SETS[name](profile)


def _failure_message(notebook: Path, err: Exception) -> str:
    cell = getattr(err, "exec_count", None)
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"{notebook.name} failed in {where}: {ename}: {evalue}"


def run_notebook(notebook: Path, parameters: dict[str, Any], out_dir: Path) -> float:
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook), str(out_dir / notebook.name), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(paths.REPO_ROOT))
    except Exception as err:  # papermill raises PapermillExecutionError with cell details
        raise NotebookFailed(_failure_message(notebook, err)) from err
    return time.perf_counter() - t0


# -- executed copies ---------------------------------------------------------------------
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _path_replacements() -> list[tuple[str, str]]:
    """Absolute roots of this checkout, longest first, and what they become (repository-relative)."""
    roots = sorted({str(paths.PUBLISH_ROOT), str(paths.OUTPUT_ROOT), str(paths.REPO_ROOT)}, key=len, reverse=True)
    return [pair for root in roots for pair in ((root + os.sep, ""), (root, "."))]


def _relative_text(value: Any, replacements: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _relative_text(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_text(v, replacements) for v in value]
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
    return value


def _clean_output(output: dict[str, Any], replacements: list[tuple[str, str]]) -> dict[str, Any]:
    if output.get("output_type") == "stream":
        output["text"] = _relative_text(output["text"], replacements)
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json") or mime.endswith("+xml"):
            output["data"][mime] = _relative_text(value, replacements)
    return output


def clean_executed_notebook(raw: str) -> str:
    """An executed notebook without what differs between two runs of the same commit: cell and
    notebook timings, papermill's timestamps and paths, widget models and their views (random
    ids; under papermill the views are progress bars), the random id of the injected parameters
    cell, and this checkout's absolute paths (made repository-relative)."""
    import nbformat

    book = nbformat.reads(raw, as_version=4)
    replacements = _path_replacements()
    book.metadata.pop("widgets", None)
    parameters = book.metadata.get("papermill", {}).get("parameters", {})
    book.metadata["papermill"] = {"parameters": _relative_text(dict(parameters), replacements)}
    for cell in book.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
        cell.source = _relative_text(cell.source, replacements)
        if cell.cell_type == "code":
            kept = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
            cell.outputs = [_clean_output(o, replacements) for o in kept]
    return nbformat.writes(book) + "\n"


def publish_executed(notebook_names: list[str], raw_dir: Path, *, remove_stale: bool,
                     notebooks_dir: Path | None = None) -> dict[str, str]:
    """Write the cleaned executed copies into `executed/`; returns {repository-relative path: SHA-256}.
    `remove_stale`: a complete run also removes copies of notebooks that no longer exist (renamed or
    deleted). Copies of existing notebooks stay: they belong to another profile's published run (an
    extended run must not delete the default run's executed/01-11, nor the other way round)."""
    published: dict[str, str] = {}
    for name in notebook_names:
        cleaned = clean_executed_notebook((raw_dir / name).read_text())
        path = write_bytes_atomic(paths.EXECUTED_DIR / name, cleaned.encode())
        published[path.relative_to(paths.PUBLISH_ROOT).as_posix()] = sha256(path)
    if remove_stale:
        existing = {nb.name for nb in list_notebooks(notebooks_dir)}  # includes the ones just written
        for stale in paths.EXECUTED_DIR.glob("*.ipynb"):
            if stale.name not in existing:
                stale.unlink()
    return published


# Folders whose every file must be a promised output of some notebook (the published set).
PUBLISHED_FOLDERS = ("tables", "figures")


def check_outputs(notebook: Path, started: float) -> list[str]:
    """Every promised output must exist and be newer than the notebook's start, and every table or
    figure the notebook wrote must be promised: an unpromised one would stay out of the manifest,
    unpublished and unchecked, while the README might cite it."""
    problems, outputs = [], promised_outputs(notebook)
    for rel in outputs:
        path = paths.PUBLISH_ROOT / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.stat().st_mtime < started - 1:
            problems.append(f"{rel} was not rewritten by this run")
    for folder in PUBLISHED_FOLDERS:
        for path in sorted((paths.PUBLISH_ROOT / folder).glob("*")):
            rel = f"{folder}/{path.name}"
            if path.is_file() and path.stat().st_mtime >= started and rel not in outputs:
                problems.append(f"{rel} was written but is not among the notebook's promised outputs "
                                "(metadata.m3mstl.outputs)")
    if problems:
        raise NotebookFailed(f"{notebook.name} did not produce what it promises: " + "; ".join(problems))
    return outputs


def runs_named(table_md: Path) -> list[str]:
    """The runs a Markdown table names on its "Runs: ..." line (`runs.run_ref` form), in order."""
    named: list[str] = []
    for line in table_md.read_text().splitlines():
        if line.startswith("Runs: ") and line != "Runs: none":
            named += [r.strip() for r in line[len("Runs: "):].split(",")]
    return named


def runs_behind(outputs: list[str]) -> dict[str, dict[str, Any]]:
    """The runs a notebook's tables name (their "Runs: ..." line), each with its seed and measured
    training seconds, for the manifest: which trainings, seeds and times the published numbers rest on."""
    found: dict[str, dict[str, Any]] = {}
    for rel in outputs:
        if not rel.endswith(".md"):
            continue
        for run_id in runs_named(paths.PUBLISH_ROOT / rel):
            run_dir = paths.RUNS_DIR / run_id
            if not (run_dir / "config.json").is_file():  # a run the study took from the archive
                run_dir = paths.ARCHIVE_DIR / run_id
            if run_id in found or not (run_dir / "config.json").is_file():
                continue
            entry: dict[str, Any] = {"seed": json.loads((run_dir / "config.json").read_text()).get("seed")}
            environment = run_dir / "environment.json"
            trained_by = json.loads(environment.read_text()) if environment.is_file() else {}
            # The code and CPU that trained it (a study spans sessions). Reused from other code (or from
            # before runs recorded theirs): named, not silently trusted.
            entry["git_commit"] = trained_by.get("git_commit")
            entry["cpu"] = (trained_by.get("cpu") or {}).get("model")
            entry["code_fingerprint"] = trained_by.get("code_fingerprint")
            entry["other_code"] = entry["code_fingerprint"] != provenance.code_fingerprint()
            if run_dir.is_relative_to(paths.ARCHIVE_DIR):
                entry["archived"] = True
            history = run_dir / "history.jsonl"
            timings = run_dir / "timings.json"
            if history.is_file():
                entry["train_seconds"] = round(sum(json.loads(l).get("seconds", 0.0)
                                                   for l in history.read_text().splitlines() if l.strip()), 1)
            elif timings.is_file():
                entry["train_seconds"] = json.loads(timings.read_text()).get("train_seconds")
            found[run_id] = entry
    return found


def archive_runs_behind(manifest: dict[str, Any]) -> list[str]:
    """Archive every run the manifest's tables name that is not archived yet (`m3mstl.runs.archive`:
    its evaluation record, no weights) and mark it `in_archive`, so every published number recomputes
    from committed records (`m3mstl verify`). Returns the runs that keep no test predictions to archive
    (the face detector: its tables need its weights), which are named, not hidden."""
    from m3mstl.runs.archive import archive_run, archived_run_dir, is_archivable

    not_archivable: list[str] = []
    for notebook in manifest["notebooks"]:
        for run_id, entry in notebook["runs"].items():
            model, identity = run_id.split("/", 1)
            if entry.get("archived") or archived_run_dir(model, identity) is not None:
                entry["in_archive"] = True
            elif is_archivable(paths.RUNS_DIR / run_id):
                archive_run(paths.RUNS_DIR / run_id)
                entry["in_archive"] = True
            else:
                entry["in_archive"] = False
                not_archivable.append(run_id)
    if not_archivable:
        print(f"not archived (no test predictions to keep): {', '.join(sorted(set(not_archivable)))}", flush=True)
    return not_archivable


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_path_for(only: list[str] | None, profile: str = "default") -> Path:
    """A complete reproduction writes its profile's published manifest (`manifest_path`); a partial
    one (`--only`) writes build/reproduction-partial.json, so it never replaces the record of the
    published outputs."""
    return paths.BUILD_DIR / "reproduction-partial.json" if only else manifest_path(profile)


def other_code_report(manifest: dict[str, Any]) -> list[str]:
    """Lines naming the runs behind the published tables that other code trained (their recorded code
    fingerprint differs from this checkout's, or they recorded none), for the end of a reproduction."""
    stale = {run_id: entry for notebook in manifest["notebooks"] for run_id, entry in notebook["runs"].items()
             if entry.get("other_code")}
    if not stale:
        return [f"every run behind the tables was trained by this code ({provenance.code_fingerprint()})"]
    lines = [f"{len(stale)} run(s) behind the tables were trained by other code than this checkout's "
             f"({provenance.code_fingerprint()}); their numbers may differ from what this code gives:"]
    for run_id, entry in sorted(stale.items()):
        recorded = entry.get("code_fingerprint") or "none recorded"
        where = "archive" if entry.get("archived") else "runs"
        lines.append(f"  {run_id} ({where}; code {recorded}, commit {entry.get('git_commit')})")
    lines.append("  retrain exactly these (those under runs/): m3mstl reproduce --retrain-other-code")
    return lines


def _run_notebooks(notebooks: list[Path], parameters: dict[str, Any], out_dir: Path) -> list[NotebookResult]:
    """Execute the notebooks in order, each checked for the outputs it promises."""
    results: list[NotebookResult] = []
    for i, notebook in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {notebook.name} ...", flush=True)
        started = time.time()
        # Training progress in the kernel goes to this file; the relay prints it here as it comes.
        with ProgressRelay(paths.BUILD_DIR / "progress" / f"{notebook.stem}.log", prefix=f"[{i}/{len(notebooks)}]   "):
            seconds = run_notebook(notebook, parameters, out_dir)
        outputs = check_outputs(notebook, started)
        results.append(NotebookResult(notebook.stem, round(seconds, 1), outputs))
        print(f"[{i}/{len(notebooks)}] {notebook.name} done in {seconds:.0f} s", flush=True)
    return results


def reproduce(profile: str = "default", *, data_dir: Path | None = None, only: list[str] | None = None,
              seed: int = 0, device: str = "auto", force: bool = False, retrain_other_code: bool = False,
              publish: bool = False, notebooks_dir: Path | None = None, out_dir: Path | None = None) -> Path:
    """Run the profile's notebooks in order and write its manifest; returns the manifest's path.

    A profile that does not publish (`profiles.PUBLISHED_PROFILES`) run in a checkout writes its tables,
    figures, executed notebooks and manifest under build/<profile>/ unless `publish`: this checkout's
    own are the published default set. `retrain_other_code` retrains the finished runs other code trained."""
    arguments = dict(data_dir=data_dir, only=only, seed=seed, device=device, force=force,
                     retrain_other_code=retrain_other_code, notebooks_dir=notebooks_dir, out_dir=out_dir)
    if not publish and profile not in PUBLISHED_PROFILES and paths.PUBLISH_ROOT == paths.REPO_ROOT:
        with paths.outputs_published_to(paths.BUILD_DIR / profile):
            print(f"profile {profile!r} does not publish: its tables, figures, executed notebooks and manifest "
                  f"go to {paths.portable_data_path(paths.PUBLISH_ROOT)}/ (--publish writes them over the "
                  "published set)", flush=True)
            return _reproduce(profile, **arguments)
    return _reproduce(profile, **arguments)


def _reproduce(profile: str, *, data_dir: Path | None, only: list[str] | None, seed: int, device: str, force: bool,
               retrain_other_code: bool, notebooks_dir: Path | None, out_dir: Path | None) -> Path:
    from m3mstl.config import make_config, validate_config
    from m3mstl.data.validate import check_dataset
    from m3mstl.models.registry import list_models

    if profile not in REPRODUCE_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {REPRODUCE_PROFILES}")
    for model in list_models():  # the configs the notebooks resolve, checked before any notebook runs
        validate_config(make_config(model, profile, seed=seed))
    notebooks = notebooks_for_profile(profile, notebooks_dir)
    if only:  # before any data is generated: a typo costs nothing
        chosen = [nb for nb in notebooks if nb.name[:2] in only or nb.stem in only]
        if not chosen:
            raise UsageError("--only", f"{' '.join(only)} names no notebook of profile {profile!r}; its notebooks: "
                                       f"{' '.join(nb.name[:2] for nb in notebooks)}")
        notebooks = chosen
    t_all = time.perf_counter()
    # The code and environment as they are when the run starts (the commit the numbers come from).
    environment = environment_info(device)
    given_data = bool(data_dir)
    data_dir = Path(data_dir) if given_data else ensure_synthetic_data(profile)
    fingerprint = data_fingerprint(data_dir)  # once: the checks and the manifest name the same data
    check_dataset(data_dir, fingerprint)  # every check of `m3mstl validate` (cached by fingerprint), before compute
    prepare_embedded_sets(notebooks, profile, given_data=given_data)
    out_dir = out_dir or paths.BUILD_DIR / "notebooks"
    # TRAIN: the reproduction trains what is missing (a reader opening a notebook does not by default).
    # DATA_DIR None names the profile's embedded dataset without writing this machine's path into the notebooks.
    parameters = dict(PROFILE=profile, SEED=seed, DATA_DIR=str(data_dir) if given_data else None, DEVICE=device,
                      FORCE=force, INTERACTIVE=False, TRAIN=True)
    # The kernels inherit the environment: the run lifecycle there retrains runs from other code.
    os.environ[provenance.RETRAIN_OTHER_CODE_ENV] = "1" if retrain_other_code else ""
    try:
        results = _run_notebooks(notebooks, parameters, out_dir)
    finally:
        os.environ.pop(provenance.RETRAIN_OTHER_CODE_ENV, None)
    executed = publish_executed([nb.name for nb in notebooks], out_dir, remove_stale=not only,
                                notebooks_dir=notebooks_dir)
    manifest = {
        "profile": profile,
        "seed": seed,
        "data_dir": paths.portable_data_path(data_dir),
        "data_fingerprint": fingerprint,
        "code_fingerprint": provenance.code_fingerprint(),
        "environment": environment,
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "notebooks": [
            {"name": r.name, "seconds": r.seconds,
             "outputs": {o: sha256(paths.PUBLISH_ROOT / o) for o in r.outputs},
             "runs": runs_behind(r.outputs),
             "executed": {rel: digest for rel, digest in executed.items() if Path(rel).stem == r.name}}
            for r in results
        ],
    }
    if not only:  # every run behind a published table keeps its record (archive/): the tables recompute
        archive_runs_behind(manifest)
    written = write_json_atomic(manifest_path_for(only, profile), manifest)
    if not only and paths.PUBLISH_ROOT == paths.REPO_ROOT:  # a complete publication: the README follows its tables
        from m3mstl.readme import update_readme

        if update_readme():
            print("README.md: its generated results blocks were rewritten from the published tables", flush=True)
    for line in other_code_report(manifest):
        print(line, flush=True)
    print(f"reproduction finished in {manifest['total_seconds']:.0f} s; manifest: {written}", flush=True)
    return written


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", choices=REPRODUCE_PROFILES)
    parser.add_argument("--data", type=Path, default=None,
                        help="a TFD68-layout folder (default: generate the profile's SynthTFD68)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NN", help="run only these notebooks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--force", action="store_true", help="retrain runs even when finished ones exist")
    parser.add_argument("--publish", action="store_true",
                        help="write a quick or paper run's tables, figures, executed notebooks and manifest over the "
                             "published set (default: under build/<profile>/)")
    parser.add_argument("--retrain-other-code", action="store_true",
                        help="retrain the finished runs that other code trained (their recorded code fingerprint "
                             "differs from this checkout's), reuse the rest")


def run(args: argparse.Namespace) -> int:
    try:
        reproduce(args.profile, data_dir=args.data, only=args.only, seed=args.seed, device=args.device,
                  force=args.force, retrain_other_code=getattr(args, "retrain_other_code", False),
                  publish=getattr(args, "publish", False))
    except NotebookFailed as err:
        print(f"reproduce: {err}", file=sys.stderr)
        return 1
    return 0
