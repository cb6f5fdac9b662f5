"""The content fingerprint of a TFD68-layout dataset: what makes a run id change when the data does.

It hashes annotations.json and the name and bytes of every file under thermal/, temperature/
and occluders/, at any depth, and of every other file inside the dataset folder that annotations.json
names (what `m3mstl validate` accepts: an image may live in thermal/<session>/ or images/). A dataset
with files only at the top level of those folders has the fingerprint it had before subfolders were
hashed (their entries are added after the top-level ones, and only when there are any), so the run ids
of such datasets keep their meaning. Special files (named pipes, sockets) are skipped, never read.
Each file's SHA-256 is cached in the build cache by (absolute path, size,
modification time, inode), so fingerprinting a dataset a second time only stats its files.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from m3mstl import paths

FINGERPRINT_FOLDERS = ("thermal", "temperature", "occluders")


def data_fingerprint(data_root: str | os.PathLike) -> str:
    """Content hash of a dataset: the annotation file and every data file's name and bytes.

    Any change to a pixel or a temperature gives another fingerprint, so another run id: a
    finished run is only ever reused for the very data it was trained on. Each file's digest is
    cached by (path, size, modification time, inode) in the build cache, so a second call only
    stats the files.
    """
    root = Path(data_root)
    annotations = root / "annotations.json" if root.is_dir() else root
    folder = root if root.is_dir() else root.parent
    if not annotations.is_file():
        from m3mstl.data.errors import DatasetError

        raise DatasetError(annotations, "annotations file not found: not a TFD68-layout dataset")
    cache = _DigestCache(paths.BUILD_DIR / "cache" / "file_digests.json")
    digest = hashlib.sha256()
    annotations_digest = cache.digest(annotations)
    digest.update(b"annotations.json:" + annotations_digest.encode() + b"\n")
    hashed: set[str] = set()
    for sub in FINGERPRINT_FOLDERS:
        sub_folder = folder / sub
        if sub_folder.is_dir():
            for entry in sorted(os.scandir(sub_folder), key=lambda e: e.name):
                if entry.is_file():
                    digest.update(f"{sub}/{entry.name}:{cache.digest(Path(entry.path))}\n".encode())
                    hashed.add(f"{sub}/{entry.name}")
            # Files in subfolders: after the top-level ones, so a dataset without subfolders keeps
            # the fingerprint it always had.
            for relative in _files_in_subfolders(sub_folder):
                name = f"{sub}/{relative}"
                digest.update(f"{name}:{cache.digest(sub_folder / relative)}\n".encode())
                hashed.add(name)
    key = f"named-elsewhere:{folder.absolute()}:{annotations_digest}"  # one JSON parse per annotations version
    named = cache.entries.get(key)
    if not (isinstance(named, list) and all(isinstance(n, str) for n in named)):
        named = cache.entries[key] = _named_elsewhere(folder, annotations)
        cache.changed = True
    for relative in sorted(n for n in named if n not in hashed and _is_regular(folder / n)):
        digest.update(f"named/{relative}:{cache.digest(folder / relative)}\n".encode())
    cache.save()
    return digest.hexdigest()[:16]


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _files_in_subfolders(top: Path) -> list[str]:
    """POSIX paths, relative to `top`, of the regular files below `top`'s own level (links to folders
    followed once each), sorted."""
    found: list[str] = []
    seen: set[str] = set()
    for current, folders, files in os.walk(top, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:  # a link loop
            folders[:] = []
            continue
        seen.add(real)
        folders.sort()
        if Path(current) == top:
            continue
        base = Path(current).relative_to(top)
        found.extend((base / name).as_posix() for name in files if _is_regular(Path(current) / name))
    return sorted(found)


def _named_elsewhere(folder: Path, annotations: Path) -> list[str]:
    """Files inside the dataset folder that annotations.json names outside the scanned folders (an
    image in images/ rather than thermal/), as sorted POSIX paths relative to the folder."""
    try:
        with open(annotations, encoding="utf-8") as handle:
            coco = json.load(handle)
        images = coco.get("images") if isinstance(coco, dict) else None
    except (OSError, ValueError, RecursionError, MemoryError):
        return []  # not readable as JSON: its bytes are hashed, and validation reports it
    if not isinstance(images, list):
        return []
    root = folder.resolve()
    named: set[str] = set()
    for image in images:
        if not isinstance(image, dict):
            continue
        for key in ("file_name", "temperature_file", "occluder_mask_file"):
            value = image.get(key)
            if not isinstance(value, str) or not value:
                continue
            path = (root / value).resolve()
            if root not in path.parents:
                continue  # outside the dataset: validation refuses it
            relative = path.relative_to(root).as_posix()
            if relative != "annotations.json" and relative.split("/")[0] not in FINGERPRINT_FOLDERS:
                named.add(relative)
    return sorted(named)


class _DigestCache:
    """SHA-256 of files, remembered by (absolute path, size, mtime, inode) in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        self.changed = False
        try:
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, ValueError):
            pass  # no cache yet, or a damaged one: recompute

    def digest(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.absolute())
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        cached = self.entries.get(key)
        if isinstance(cached, list) and len(cached) == 4 and cached[:3] == stamp:
            return cached[3]
        hasher = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        self.entries[key] = [*stamp, hasher.hexdigest()]
        self.changed = True
        return hasher.hexdigest()

    def save(self) -> None:
        if not self.changed:
            return
        from m3mstl.core.fileio import write_json_atomic

        try:
            write_json_atomic(self.path, self.entries, indent=None)
        except OSError:
            pass  # a read-only build folder only costs the next call a re-hash
