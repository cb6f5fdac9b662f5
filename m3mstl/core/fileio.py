"""Atomic file writes: a reader never sees a half-written file, an interrupted
writer leaves the previous version (or nothing) behind."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file 0600; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    text = json.dumps(obj, indent=indent, sort_keys=True, default=_json_default, allow_nan=True)
    return write_bytes_atomic(path, (text + "\n").encode())


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, paths: make run records JSON without callers converting.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


# Entries of a dataset folder that a build replaces; anything else in the old folder (notes,
# a README) is carried into the new one.
DATASET_ENTRIES = ("annotations.json", "thermal", "temperature", "occluders")


@contextmanager
def atomic_folder(target: str | os.PathLike, *, replaced: tuple[str, ...] = DATASET_ENTRIES) -> Iterator[Path]:
    """Yield an empty sibling folder to build `target` in; on success swap it in by renames.

    On any exception (Ctrl-C included) the partial build is removed and `target` is left exactly
    as it was, or absent if it did not exist. Top-level entries of an old `target` that are not in
    `replaced` are copied into the new folder before the swap, so only the dataset's own files change.
    """
    import shutil

    final = Path(target).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    retired = None
    try:
        yield build
        if final.is_dir():
            for entry in final.iterdir():
                if entry.name not in replaced and not (build / entry.name).exists():
                    copy = shutil.copytree if entry.is_dir() and not entry.is_symlink() else shutil.copy2
                    copy(entry, build / entry.name)
            retired = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, retired)
        os.chmod(build, 0o777 & ~_umask())  # mkdtemp makes it 0700; give it a plain mkdir's mode
        os.replace(build, final)
    except BaseException:
        if retired is not None and retired.exists() and not final.exists():
            os.replace(retired, final)  # the swap itself failed: put the old folder back
        raise
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
        if retired is not None and retired.exists() and final.exists():
            shutil.rmtree(retired, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None, so json.dumps writes valid JSON."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return json_safe(obj.tolist())
    return obj
