"""The content fingerprint of a TFD68-layout dataset: what makes a run id change when the data does.

It hashes annotations.json and the name and bytes of every file under thermal/, temperature/
and occluders/. Each file's SHA-256 is cached in the build cache by (absolute path, size,
modification time, inode), so fingerprinting a dataset a second time only stats its files.
"""
from __future__ import annotations

import hashlib
import json
import os
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
    digest.update(b"annotations.json:" + cache.digest(annotations).encode() + b"\n")
    for sub in FINGERPRINT_FOLDERS:
        sub_folder = folder / sub
        if sub_folder.is_dir():
            for entry in sorted(os.scandir(sub_folder), key=lambda e: e.name):
                if entry.is_file():
                    digest.update(f"{sub}/{entry.name}:{cache.digest(Path(entry.path))}\n".encode())
    cache.save()
    return digest.hexdigest()[:16]


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
