"""`m3mstl verify`: recompute the published tables and figures from the run records, compare bytes.

Anyone can check the published numbers without training anything. For the notebooks whose outputs
need only run records (test predictions, metrics, histories; `RECORD_NOTEBOOKS`), verify executes
each one again with training refused, every run taken from this machine's runs/ or, when absent,
from its archived record (`archive/`, committed; `m3mstl.runs.lifecycle.allow_training(archived=...)`),
writes the outputs under build/verify/<profile>/ (the published set is never touched), and compares
each output's SHA-256 with the published manifest's. Before that, each run's recorded test metrics
(which the tables read) are recomputed from its recorded test predictions and must agree. Same code and records give the same bytes; a
changed record, a changed analysis or a missing run is named.

    m3mstl verify                      # the default profile's published set
    m3mstl verify --profile extended   # the extended studies' (notebooks 12-13)

Notebooks that need weights (the stage notebooks, thermometry, the explorer, camera frames) or the
data generator (00-01) are not recomputed here: `make reproduce` retrains what they need.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from m3mstl import paths
from m3mstl.errors import UsageError

#: Notebooks whose published outputs are computed from run records alone.
RECORD_NOTEBOOKS: tuple[str, ...] = ("06", "07", "08", "11", "12", "13")


@dataclass
class Verification:
    """What verify compared: every output of the recomputed notebooks, by status."""
    profile: str
    same: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # notebook -> why it could not be recomputed
    broken_runs: dict[str, str] = field(default_factory=dict)  # run -> how its record contradicts itself
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.differs or self.missing or self.failed or self.broken_runs)

    def lines(self) -> list[str]:
        out = [f"{rel}: differs from the published bytes" for rel in self.differs]
        out += [f"{rel}: not written by the recomputation" for rel in self.missing]
        out += [f"{name}: could not be recomputed: {why}" for name, why in self.failed.items()]
        out += [f"run {run}: {why}" for run, why in self.broken_runs.items()]
        verdict = "every output recomputed byte for byte" if self.ok else "the published set does NOT recompute"
        out.append(f"verify {self.profile}: {len(self.same)} of {len(self.same) + len(self.differs) + len(self.missing)} "
                   f"outputs identical, {len(self.failed)} notebook(s) not recomputed, {len(self.broken_runs)} run "
                   f"record(s) contradicting their predictions, in {self.seconds:.0f} s: {verdict}")
        return out


def _numbers(value, prefix: str = ""):
    """(dotted key, float) of every number in a metrics record, lists and tables left out."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{prefix}{key}.")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix[:-1], float(value)


def run_record_problem(run_ref: str) -> str | None:
    """Whether a run's recorded test metrics follow from its recorded test predictions (recomputed by
    `m3mstl.evaluation.evaluate.metrics_from_predictions`): the tables read the metrics, so a metrics file
    that its predictions do not give is a broken record. None when they agree; else what differs."""
    import math

    from m3mstl.evaluation.evaluate import metrics_from_predictions
    from m3mstl.runs.predictions import load_predictions

    run_dir = paths.RUNS_DIR / run_ref
    if not (run_dir / "metrics_test.json").is_file():
        run_dir = paths.ARCHIVE_DIR / run_ref
    if not (run_dir / "metrics_test.json").is_file() or not (run_dir / "predictions_test.npz").is_file():
        return "neither this machine's runs/ nor the archive holds its test metrics and predictions"
    recorded = dict(_numbers(json.loads((run_dir / "metrics_test.json").read_text())))
    recomputed, _ = metrics_from_predictions(load_predictions(run_dir / "predictions_test.npz"))
    for key, value in _numbers(recomputed):
        if key in recorded and not math.isclose(recorded[key], value, rel_tol=1e-9, abs_tol=1e-12):
            return (f"{paths.portable_data_path(run_dir)}/metrics_test.json does not follow from its predictions: "
                    f"{key} is {recorded[key]!r}, its predictions give {value!r}")
    return None


def published_manifest(profile: str) -> dict:
    from m3mstl.reproduce import manifest_path

    path = manifest_path(profile)
    if not path.is_file():
        raise UsageError("--profile", f"no published reproduction of profile {profile!r} to verify ({path} is missing)")
    return json.loads(path.read_text())


def verify(profile: str = "default", *, data_dir: Path | None = None, out_root: Path | None = None) -> Verification:
    """Recompute `profile`'s record-only notebooks into `out_root` (build/verify/<profile>) from runs/
    and archive/, and compare every output with the published manifest."""
    from m3mstl.data.embedded import ensure_synthetic_data
    from m3mstl.data.fingerprint import data_fingerprint
    from m3mstl.reproduce import NotebookFailed, notebooks_for_profile, run_notebook, sha256

    started = time.perf_counter()
    manifest = published_manifest(profile)
    published = {nb["name"]: nb for nb in manifest["notebooks"]}
    notebooks = [nb for nb in notebooks_for_profile(profile) if nb.name[:2] in RECORD_NOTEBOOKS and nb.stem in published]
    result = Verification(profile)
    given_data = data_dir is not None
    data_dir = Path(data_dir) if given_data else ensure_synthetic_data(profile)
    fingerprint = data_fingerprint(data_dir)
    if fingerprint != manifest["data_fingerprint"]:
        raise UsageError("--data", f"the published set was computed on data {manifest['data_fingerprint']}, but "
                                   f"{paths.portable_data_path(data_dir)} has fingerprint {fingerprint}: its "
                                   "records cannot be compared")
    archive = paths.ARCHIVE_DIR
    out_root = Path(out_root) if out_root else paths.BUILD_DIR / "verify" / profile
    if out_root.exists():
        shutil.rmtree(out_root)  # a leftover output must not pass for a recomputed one
    parameters = dict(PROFILE=profile, SEED=manifest["seed"], DATA_DIR=str(data_dir) if given_data else None,
                      DEVICE="cpu", FORCE=False, INTERACTIVE=False, TRAIN=False)
    runs_behind = sorted({run for notebook in notebooks for run in published[notebook.stem].get("runs", {})})
    for run in runs_behind:  # the tables read each run's metrics: they must follow from its predictions
        if run.split("/", 1)[0] == "detector":
            continue  # the detector's tables need its weights; it keeps no test predictions
        problem = run_record_problem(run)
        if problem is not None:
            result.broken_runs[run] = problem
    with paths.outputs_published_to(out_root, archive=archive):
        for notebook in notebooks:
            print(f"recomputing {notebook.name} from the run records ...", flush=True)
            try:
                run_notebook(notebook, parameters, out_root / "notebooks")
            except NotebookFailed as error:
                result.failed[notebook.stem] = " ".join(str(error).split())[:800]
                continue
            for rel, digest in published[notebook.stem]["outputs"].items():
                path = out_root / rel
                if not path.is_file():
                    result.missing.append(rel)
                elif sha256(path) == digest:
                    result.same.append(rel)
                else:
                    result.differs.append(rel)
    result.seconds = time.perf_counter() - started
    return result


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", choices=("default", "extended", "quick", "paper"),
                        help="whose published reproduction to verify (its manifest: reproduction*.json)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the dataset the published set was computed on (default: the profile's SynthTFD68, "
                             "generated if absent); its fingerprint must be the manifest's")


def run(args: argparse.Namespace) -> int:
    result = verify(args.profile, data_dir=args.data)
    for line in result.lines():
        print(line, file=sys.stdout if result.ok else sys.stderr, flush=True)
    return 0 if result.ok else 1
