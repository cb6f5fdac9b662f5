"""Exceptions and warnings of the data layer.

Every problem with a file on disk is reported as ``<path>: <problem>`` so a user can
open the file the message names and see what is wrong with it.
"""
from __future__ import annotations

from pathlib import Path

from m3mstl.errors import M3mstlError


class DatasetError(M3mstlError, ValueError):
    """A dataset file is missing, unreadable or inconsistent.

    Subclasses ValueError so callers that already guard against bad values keep working.
    ``path`` is the offending file (or folder), ``problem`` the human-readable reason.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(self.path, problem)


class DatasetWarning(UserWarning):
    """Something in a dataset was skipped or adjusted, but loading could continue."""
