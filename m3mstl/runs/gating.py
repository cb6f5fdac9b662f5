"""Whether `train` may start training, and what to tell a reader when it may not.

The command line and the library train whatever is asked. A notebook opened by a reader
(after a fresh clone, with no finished runs) must not silently start an hour of training:
each notebook's setup cell calls ``allow_training(TRAIN or FORCE)``, and with training not
allowed, asking for an unfinished run raises `RunNotTrained`, whose message names the
missing run, the command that trains it and how long that took in the last reproduction.
`m3mstl reproduce` passes ``TRAIN=True``.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from m3mstl import paths

_allowed = True


def allow_training(allowed: bool) -> None:
    """Let `train` start or continue training (True, the default) or refuse with `RunNotTrained`."""
    global _allowed
    _allowed = bool(allowed)


def training_allowed() -> bool:
    return _allowed


class RunNotTrained(RuntimeError):
    """A run that has not finished was asked for while training is not allowed."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the message is the whole story for a reader.
        return str(self).splitlines()


# Which notebooks of `m3mstl reproduce` train each kind of run; (model, has overrides).
PRODUCING_NOTEBOOKS: dict[tuple[str, bool], tuple[str, ...]] = {
    ("m3mstl", False): ("02", "03", "04"),
    ("baseline", False): ("05",),
    ("m3mstl", True): ("07",),
    ("hourglass", False): ("11",),
    ("hourglass", True): ("11",),
}


def _relative(path: Path) -> str:
    for root in (paths.OUTPUT_ROOT, paths.REPO_ROOT):
        try:
            return str(Path(path).resolve().relative_to(root))
        except ValueError:
            continue
    return str(path)


def train_command(model: str, profile: str, data_dir: Path, *, seed: int, overrides: dict[str, Any] | None,
                  until_stage: str | None) -> str:
    """The `m3mstl train` command that trains exactly this run (same config, so the same run id)."""
    words = ["m3mstl", "train", "--model", model, "--profile", profile, "--data", _relative(data_dir),
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


def missing_run_message(model: str, profile: str, data_dir: Path, run_dir: Path, *, seed: int,
                        overrides: dict[str, Any] | None, until_stage: str | None) -> str:
    notebooks = PRODUCING_NOTEBOOKS.get((model, bool(overrides)), ())
    what = f"{model}" + (f" up to stage {until_stage}" if until_stage else "")
    command = train_command(model, profile, data_dir, seed=seed, overrides=overrides, until_stage=until_stage)
    lines = [
        f"Not trained yet: {what}, profile {profile!r}, seed {seed}"
        + (f", overrides {overrides}" if overrides else "") + f", on {_relative(data_dir)}",
        f"(run folder {_relative(run_dir)}). Nothing was trained: TRAIN and FORCE are False in the parameters cell.",
        "To produce it, any of:",
        "  - set TRAIN = True in the parameters cell and run the notebook again;",
        f"  - in a terminal at the repository root: .venv/bin/{command}",
        "  - the whole reproduction: make reproduce" + ("" if profile == "default" else f" PROFILE={profile}"),
    ]
    measured = measured_minutes(profile, notebooks) if notebooks else None
    if measured is not None:
        minutes, manifest = measured
        span = "-".join(dict.fromkeys([notebooks[0], notebooks[-1]]))
        which = f"notebooks {span}, which train" if len(notebooks) > 1 else f"notebook {span}, which trains"
        lines.append(f"Expected time: {which} it, took {minutes:.1f} min in all in the "
                     f"reproduction recorded in {_relative(manifest)} (profile {profile!r}, on that machine).")
    else:
        lines.append(f"Expected time: no reproduction of profile {profile!r} is recorded here; the quick profile "
                     "trains in about a minute, the default profile's runs take 10-25 min each on 2 CPU cores.")
    lines.append("To read the results without training: the executed notebooks in executed/ (m3mstl reproduce "
                 "publishes them).")
    return "\n".join(lines)
