"""The life of a run folder, one for every producer (the curriculum trainer, the classical peer,
the face detector's training): reuse it, retrain it, or refuse to train it.

`produce_run` decides, for a run folder, in this order:

1. finished (``complete.json``) and not ``force``: reused as it is, once the data fingerprint it
   recorded is checked against the data given now (`check_recorded_fingerprint`);
2. training needed but not allowed (the notebook gate below): `RunNotTrained`, whose message names
   the missing run, the command that trains it and how long that took in the last reproduction;
   nothing is written, not even the folder;
3. otherwise the run's lock (`m3mstl.runs.RunLock`) is taken and held while the producer trains:
   with ``force`` the folder is emptied first (all but the lock); without, the fingerprint is
   checked again and a run another process finished meanwhile is reused.

The notebook gate: the command line and the library train whatever is asked. A notebook opened by
a reader (after a fresh clone, with no finished runs) must not silently start an hour of training:
each notebook's setup cell calls ``allow_training(TRAIN or FORCE)``, and with training not
allowed, asking for an unfinished run raises `RunNotTrained`. `m3mstl reproduce` passes ``TRAIN=True``.
"""
from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any, Callable

from m3mstl import paths
from m3mstl.runs import LOCK_FILE, RunLock, is_complete, load_json, provenance

_allowed = True
_archived_records = "off"

#: How a run that is not finished on this machine may come from its archived record (`m3mstl.runs.archive`:
#: predictions, metrics, history; no weights): never; only where training is refused; or before training.
ARCHIVE_POLICIES = ("off", "when-refused", "first")


def allow_training(allowed: bool, *, archived: str = "off") -> None:
    """Let producers start or continue training (True, the default) or refuse with `RunNotTrained`.

    `archived` (ARCHIVE_POLICIES; the notebooks whose tables need only run records, 06-08 and 11-13,
    pass `m3mstl.studies.comparison.archive_policy(PROFILE, FORCE)`). "when-refused": where training is refused, a run that is not on this
    machine but is archived is read from the archive, so a reader of a fresh clone, and `m3mstl verify`,
    recompute the published tables without training; "first": the archived record is used even where
    training is allowed (the extended profile's studies, longer than one machine session, are archived
    run by run as they finish and continued from there). A notebook that needs weights keeps "off"."""
    global _allowed, _archived_records
    if archived not in ARCHIVE_POLICIES:
        raise ValueError(f"archived must be one of {ARCHIVE_POLICIES}, got {archived!r}")
    _allowed = bool(allowed)
    _archived_records = archived


def training_allowed() -> bool:
    return _allowed


class RunNotTrained(RuntimeError):
    """A run that has not finished was asked for while training is not allowed."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the message is the whole story for a reader.
        return str(self).splitlines()


# -- the lifecycle ---------------------------------------------------------------------------------
def check_recorded_fingerprint(run_dir: Path, fingerprint: str, record: str = "environment.json") -> None:
    """Refuse to reuse or resume a run recorded for other data than `fingerprint` (the
    ``data_fingerprint`` of the run's `record` file; a run without that file is not checked)."""
    from m3mstl.errors import RunError

    path = Path(run_dir) / record
    if not path.is_file():
        return
    recorded = load_json(path).get("data_fingerprint")
    if recorded != fingerprint:
        raise RunError(path, f"this run was trained on data with fingerprint {recorded}, but the data given "
                             f"now has {fingerprint}; retrain with --force")


def clear_run(run_dir: Path) -> None:
    """Delete everything in a run folder but the lock this process holds (``force``)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def produce_run(run_dir: Path, train: Callable[[], Any], *, fingerprint: str, refusal: Callable[[], str],
                force: bool = False, needs_training: Callable[[], bool] | None = None,
                fingerprint_record: str = "environment.json",
                on_reuse: Callable[[], Any] | None = None) -> Path:
    """Reuse, retrain or refuse the run in `run_dir` (see the module's docstring); returns `run_dir`.

    train            trains the run (resuming what it can) and writes its record; called with the
                     lock held, at most once
    fingerprint      the data fingerprint of the data given now, checked against the one the run
                     recorded in `fingerprint_record` ("data_fingerprint")
    refusal          the `RunNotTrained` message (built only when training is refused)
    needs_training   whether an unfinished run would train (default: it would); the trainer's
                     partial runs up to a stage already reached train nothing
    on_reuse         called when a finished run is reused
    """
    run_dir = Path(run_dir)
    if not force and is_complete(run_dir) and provenance.retrain_other_code() \
            and provenance.trained_by_other_code(run_dir):
        force = True  # `m3mstl reproduce --retrain-other-code`: this run came from other code
    if not force and is_complete(run_dir):
        return _reuse(run_dir, fingerprint, fingerprint_record, on_reuse)
    would_train = force or needs_training is None or needs_training()
    if would_train and not force and (_archived_records == "first" or
                                      (_archived_records == "when-refused" and not training_allowed())):
        archived = _archived_record(run_dir)
        if archived is not None:  # read-only: nothing of the archived record is changed (no on_reuse)
            check_recorded_fingerprint(archived, fingerprint, fingerprint_record)
            return archived
    if not training_allowed() and would_train:
        raise RunNotTrained(refusal())
    with RunLock(run_dir):  # a second process training the same run is refused
        if force:
            clear_run(run_dir)
        else:
            check_recorded_fingerprint(run_dir, fingerprint, fingerprint_record)
            if is_complete(run_dir):  # finished by another process since the first look
                return _reuse(run_dir, fingerprint, fingerprint_record, on_reuse)
        train()
    if _archived_records == "first":  # a study spanning sessions keeps each finished run's record at once
        from m3mstl.runs.archive import archive_run, is_archivable

        if is_archivable(run_dir):
            archive_run(run_dir)
    return run_dir


def _archived_record(run_dir: Path) -> Path | None:
    """The archived record of the run whose folder would be `run_dir` (runs/<model>/<run-id>), if any."""
    from m3mstl.runs.archive import archived_run_dir

    return archived_run_dir(run_dir.parent.name, run_dir.name)


def _reuse(run_dir: Path, fingerprint: str, record: str, on_reuse: Callable[[], Any] | None) -> Path:
    check_recorded_fingerprint(run_dir, fingerprint, record)
    if on_reuse is not None:
        on_reuse()
    return run_dir


# -- what a refused run's message says -------------------------------------------------------------
# Which notebooks of `m3mstl reproduce` train each kind of run; (model, has overrides).
PRODUCING_NOTEBOOKS: dict[tuple[str, bool], tuple[str, ...]] = {
    ("m3mstl", False): ("02", "03", "04"),
    ("baseline", False): ("05",),
    ("m3mstl", True): ("07",),
    ("hourglass", False): ("11",),
    ("hourglass", True): ("11",),
    ("dlib_shape_predictor", False): ("05",),
    ("detector", False): ("14",),
}

#: What the message says of the time a run takes when no reproduction of its profile is recorded.
DEEP_RUN_TIME = ("the quick profile trains in about a minute, the default profile's runs take 10-25 min each "
                 "on 2 CPU cores.")


def shown_path(path: Path) -> str:
    """`path` as a message shows it: relative to the output root or the repository when inside one."""
    for root in (paths.OUTPUT_ROOT, paths.REPO_ROOT):
        try:
            return str(Path(path).resolve().relative_to(root))
        except ValueError:
            continue
    return str(path)


def train_command(model: str, profile: str, data_dir: Path, *, seed: int, overrides: dict[str, Any] | None,
                  until_stage: str | None) -> str:
    """The `m3mstl train` command that trains exactly this run (same config, so the same run id)."""
    words = ["m3mstl", "train", "--model", model, "--profile", profile, "--data", shown_path(data_dir),
             "--seed", str(seed)]
    if until_stage is not None:
        words += ["--stage", until_stage]
    for key, value in (overrides or {}).items():
        words += ["--set", f"{key}={json.dumps(value)}"]
    return " ".join(shlex.quote(w) for w in words)


def measured_minutes(profile: str, notebooks: tuple[str, ...]) -> tuple[float, Path] | None:
    """Minutes the given notebooks took in the last reproduction of `profile` (its manifest), if any."""
    for manifest_path in dict.fromkeys([paths.MANIFEST_PATH, paths.REPO_ROOT / "reproduction.json"]):
        try:
            manifest = json.loads(Path(manifest_path).read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("profile") != profile:
            continue
        seconds = [nb["seconds"] for nb in manifest.get("notebooks", []) if nb["name"][:2] in notebooks]
        if len(seconds) == len(notebooks):
            return sum(seconds) / 60, Path(manifest_path)
    return None


def not_trained_message(subject: str, run_dir: Path, *, command: str | None, profile: str,
                        notebooks: tuple[str, ...] = (), typical_time: str | None = DEEP_RUN_TIME) -> str:
    """A refused run's `RunNotTrained` message: what is missing (`subject`), where, how to produce it
    (`command`, run from the repository's .venv/bin) and how long that takes."""
    lines = [
        f"Not trained yet: {subject}",
        f"(run folder {shown_path(run_dir)}). Nothing was trained: TRAIN and FORCE are False in the parameters cell.",
        "To produce it, any of:",
        "  - set TRAIN = True in the parameters cell and run the notebook again;",
    ]
    if command is not None:
        lines.append(f"  - in a terminal at the repository root: .venv/bin/{command}")
    lines.append("  - the whole reproduction: make reproduce" + ("" if profile == "default" else f" PROFILE={profile}"))
    measured = measured_minutes(profile, notebooks) if notebooks else None
    if measured is not None:
        minutes, manifest = measured
        span = "-".join(dict.fromkeys([notebooks[0], notebooks[-1]]))
        which = f"notebooks {span}, which train" if len(notebooks) > 1 else f"notebook {span}, which trains"
        lines.append(f"Expected time: {which} it, took {minutes:.1f} min in all in the "
                     f"reproduction recorded in {shown_path(manifest)} (profile {profile!r}, on that machine).")
    else:
        lines.append(f"Expected time: no reproduction of profile {profile!r} is recorded here"
                     + (f"; {typical_time}" if typical_time else "."))
    lines.append("To read the results without training: the executed notebooks in executed/ (m3mstl reproduce "
                 "publishes them).")
    return "\n".join(lines)


def missing_run_message(model: str, profile: str, data_dir: Path, run_dir: Path, *, seed: int,
                        overrides: dict[str, Any] | None, until_stage: str | None) -> str:
    """The message of a refused `m3mstl train` run (the curriculum trainer's)."""
    what = f"{model}" + (f" up to stage {until_stage}" if until_stage else "")
    subject = (f"{what}, profile {profile!r}, seed {seed}" + (f", overrides {overrides}" if overrides else "")
               + f", on {shown_path(data_dir)}")
    command = train_command(model, profile, data_dir, seed=seed, overrides=overrides, until_stage=until_stage)
    return not_trained_message(subject, run_dir, command=command, profile=profile,
                               notebooks=PRODUCING_NOTEBOOKS.get((model, bool(overrides)), ()))
