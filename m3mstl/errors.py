"""The project's own error types: faults in what a user gave us (a file, an option, a run folder).

Each carries the *subject* (the file or the option at fault) and the *problem*, and prints as
``<subject>: <problem>``. The command line catches `M3mstlError` at the top and prints that as
one line ``error: <subject>: <problem>`` (exit 1; `UsageError` exits 2); anything else is a bug
in the project and keeps its traceback.
"""
from __future__ import annotations

import os
from pathlib import Path


class M3mstlError(Exception):
    """A fault in the user's input, named by the file or option it is in."""

    exit_code = 1

    def __init__(self, subject: str | os.PathLike, problem: str) -> None:
        self.subject = os.fspath(subject) if isinstance(subject, os.PathLike) else str(subject)
        self.problem = problem
        super().__init__(f"{self.subject}: {problem}")

    def __str__(self) -> str:  # KeyError subclasses would otherwise print the repr
        return f"{self.subject}: {self.problem}"


class ConfigError(M3mstlError, KeyError, ValueError):
    """A run configuration value or key is unusable; the subject names the option (e.g.
    ``stages.joint.epochs``). A KeyError and a ValueError, as the config code raised before."""


class UnknownOptionError(ConfigError, TypeError):
    """An option key that no model family, stage or config section knows (a misspelt ablation
    option, a ``--set`` key): one type wherever such a key can enter. Also a TypeError, as
    model constructors raised for unexpected keywords before."""


class RunError(M3mstlError, RuntimeError):
    """A run folder or one of its files is missing, unreadable, locked or inconsistent."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = Path(path)
        super().__init__(path, problem)


class UsageError(M3mstlError):
    """A command-line argument is malformed (exit code 2, like argparse's own usage errors)."""

    exit_code = 2
