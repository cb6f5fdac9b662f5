"""Helpers shared by the tests that drive the command line as a user would (test_robustness_cli,
test_fault_probes) and by the two browser tests (test_browser, test_site)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# One baseline step of the quick profile: the cheapest `m3mstl train` that runs the whole path.
ONE_STEP = ["--model", "baseline", "--profile", "quick", "--device", "cpu",
            "--set", "stages.joint.epochs=1", "--set", "stages.joint.steps_per_epoch=1"]

# Headless, no sandbox (CI runs as root), no background traffic (the machine's network is closed).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class CommandHung(Exception):
    """A command ran past the seconds `run_cli` allowed it."""


def _hung(signum, frame):
    raise CommandHung("the command ran past its time bound")


def run_cli(*args, env: dict[str, str] | None = None, seconds: int | None = None) -> Result:
    """`m3mstl ARGS` run in this process through `m3mstl.cli.main`, the command's entry point.

    In-process keeps the probes affordable (each subprocess would import torch anew); an exception
    escaping main() is a traceback the user would see, and fails the test. `seconds`: a hang raises
    CommandHung instead of stalling the whole run (the fuzz tests)."""
    from m3mstl import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _hung) if seconds else None
    if seconds:
        signal.alarm(seconds)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in (env or {}).items():
                patch.setenv(key, value)
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    code = cli.main([str(a) for a in args])
                except SystemExit as exit_:  # argparse's usage errors
                    code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        if seconds:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def run_cli_subprocess(output_root: Path, *args, env: dict[str, str] | None = None,
                       timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m m3mstl.cli ARGS` in a fresh process (what a user's shell runs), killed after `timeout`
    seconds (a hang fails)."""
    full_env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(output_root), "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", **(env or {})}
    if not env or "M3MSTL_DEBUG" not in env:
        full_env.pop("M3MSTL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "m3mstl.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_error(result: Result | subprocess.CompletedProcess, *fragments: str, code: int = 1) -> str:
    """The command failed with `code` and one `error:` line holding every fragment; no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> SHA-256), hidden ones included."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def chromium_executable() -> str:
    """Debian's Chromium, or a skip that says how to install it."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on this machine: `make install` installs Debian's chromium package when it runs as "
                "root with apt-get; here it could not (install it with: apt-get install -y chromium)")


def tiny(root: Path, **kwargs) -> Path:
    """A small TFD68-layout dataset (6 subjects x 2 images of 64x48 unless `kwargs` say otherwise)."""
    from conftest import make_tiny_dataset

    options = dict(n_subjects=6, images_per_subject=2, width=64, height=48)
    options.update(kwargs)
    return make_tiny_dataset(root, **options)


def full_frame_dataset(out: Path) -> Path:
    """A small whole-frame dataset (`m3mstl synth --full-frame`: 5 subjects x 2 frames) at `out`."""
    result = run_cli("synth", out, "--subjects", "5", "--per-subject", "2", "--seed", "11", "--full-frame", "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def flip_bytes(path: Path, rng) -> None:
    """Overwrite 1-8 random bytes of a file (a seeded numpy Generator chooses)."""
    data = bytearray(path.read_bytes())
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    path.write_bytes(bytes(data))


def truncate(path: Path, rng) -> None:
    """Cut a file at a random length (possibly zero)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(rng.integers(0, max(1, len(data))))])


def train_one_step(data_parent: Path) -> tuple[Path, Path]:
    """(dataset, finished run folder) of a one-step baseline run on a `tiny` dataset in `data_parent`."""
    data = tiny(data_parent / "data")
    result = run_cli("train", *ONE_STEP, "--data", data)
    assert result.returncode == 0, result.stderr[-3000:]
    return data, Path(result.stdout.strip().splitlines()[-1])
