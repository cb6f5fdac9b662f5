"""The numbered notebooks and what their metadata says about them (`metadata.m3mstl`): the profiles
each runs in. Read by `m3mstl reproduce` and by the commands that train a notebook's runs without it
(`m3mstl ablations`), which sit below the reproduction in the package's layers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from m3mstl import paths
from m3mstl.errors import M3mstlError
from m3mstl.profiles import PROFILES


def list_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    folder = notebooks_dir or paths.NOTEBOOKS_DIR
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


# Profiles a notebook runs in when its metadata (`metadata.m3mstl.profiles`) does not say: the
# reproduction of the paper's tables. The extended profile runs only the notebooks that name it
# (its studies), so its outputs never overwrite the default reproduction's.
CORE_PROFILES = PROFILES


def notebook_metadata(notebook: Path) -> dict[str, Any]:
    """A notebook's metadata; M3mstlError naming the file when it is not a notebook (not JSON)."""
    try:
        book = json.loads(notebook.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise M3mstlError(notebook, f"not a notebook (not JSON): {err}") from None
    if not isinstance(book, dict):
        raise M3mstlError(notebook, "not a notebook (its JSON is not an object)")
    return book.get("metadata", {})


def notebook_profiles(notebook: Path) -> tuple[str, ...]:
    return tuple(notebook_metadata(notebook).get("m3mstl", {}).get("profiles", CORE_PROFILES))
