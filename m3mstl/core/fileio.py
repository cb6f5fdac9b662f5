"""Atomic file writes: a reader never sees a half-written file, an interrupted
writer leaves the previous version (or nothing) behind.

A write that fails for a reason of the machine (disk full, read-only file system, no permission)
raises an OSError that names the file being written (not a temporary name), so the command line can
print it as one line; a writer that failed without saying why on a full disk (numpy's and torch's
writers report a short write without an errno) is reported as ENOSPC.
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: Free space below which a write that failed is taken to have failed for want of space.
FULL_DISK_BYTES = 1 << 20


def disk_nearly_full(folder: str | os.PathLike) -> bool:
    """Whether the file system holding `folder` has (almost) no space left for this user."""
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows), or the folder is gone
        return False
    return stat.f_bavail * stat.f_frsize < FULL_DISK_BYTES


def located_os_error(error: BaseException, path: str | os.PathLike,
                     temporary: str | os.PathLike | None = None) -> BaseException:
    """`error` as an OSError naming `path` when it is a fault of the machine while writing `path`:
    an OSError without a file name gets one (and ENOSPC when it has no errno and the disk is full);
    a RuntimeError on a full disk (torch.save's) becomes ENOSPC. Otherwise `error` itself."""
    folder = Path(path).parent
    if isinstance(error, OSError):
        if error.errno is None and disk_nearly_full(folder):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        unnamed = error.filename is None or (temporary is not None and error.filename == os.fspath(temporary))
        if unnamed and error.errno is not None:
            return OSError(error.errno, error.strerror or os.strerror(error.errno), os.fspath(path))
        return error
    from m3mstl.errors import M3mstlError

    if isinstance(error, RuntimeError) and not isinstance(error, M3mstlError) and disk_nearly_full(folder):
        # torch.save reports a full disk as RuntimeError("... file write failed" / "unexpected pos")
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
    return error


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise located_os_error(error, target) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file 0600; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except (OSError, RuntimeError) as error:
        located = located_os_error(error, target, tmp)  # before the temporary file frees its space
        if located is error:
            raise
        raise located from error
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """`obj` as strict JSON: NaN and infinities (which JSON has not) are written as null."""
    text = json.dumps(json_safe(obj), indent=indent, sort_keys=True, default=_json_default, allow_nan=False)
    return write_bytes_atomic(path, (text + "\n").encode())


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, paths: make run records JSON without callers converting.
    if hasattr(obj, "tolist"):
        return json_safe(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


# Entries of a dataset folder that a build replaces; anything else in the old folder (notes,
# a README) is carried into the new one. The marker (`m3mstl convert`'s record of the files it wrote,
# `m3mstl.data.coco.write_dataset_marker`) lets a later build replace only those.
DATASET_MARKER = ".m3mstl-dataset.json"
DATASET_ENTRIES = ("annotations.json", "thermal", "temperature", "occluders", DATASET_MARKER)
_BUILD_INFIX, _RETIRED_INFIX = ".building-", ".old-"


@contextmanager
def atomic_folder(target: str | os.PathLike, *, replaced: tuple[str, ...] = DATASET_ENTRIES) -> Iterator[Path]:
    """Yield an empty sibling folder to build `target` in; on success swap it in by renames.

    On any exception (Ctrl-C included) the partial build is removed and `target` is left exactly
    as it was, or absent if it did not exist. Top-level entries of an old `target` that are not in
    `replaced` are copied into the new folder before the swap, so only the dataset's own files change.

    A `target` that is a symbolic link is built where the link points (the link stays a link).
    Build folders of earlier builds whose process is gone (killed with kill -9, a power cut) are
    removed first, and a dataset such a build had moved aside is put back when `target` is missing.
    """
    import shutil

    final = Path(os.path.realpath(Path(target).absolute()))  # through symbolic links, to what they name
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale_builds(final)
        build = Path(tempfile.mkdtemp(prefix=f".{final.name}{_BUILD_INFIX}{os.getpid()}-", dir=final.parent))
    except OSError as error:
        if error.errno is None or (error.filename is not None and Path(error.filename).parent != final.parent):
            raise  # a place other than where the folder is built (a parent that is a file ...): named already
        raise OSError(error.errno, error.strerror, os.fspath(final)) from None  # the target, not a temporary name
    lock = _hold(build)
    retired = None
    try:
        yield build
        if final.is_dir():
            for entry in final.iterdir():
                if entry.name not in replaced and not (build / entry.name).exists():
                    copy = shutil.copytree if entry.is_dir() and not entry.is_symlink() else shutil.copy2
                    copy(entry, build / entry.name)
            retired = final.with_name(f".{final.name}{_RETIRED_INFIX}{os.getpid()}")
            os.replace(final, retired)
        os.chmod(build, 0o777 & ~_umask())  # mkdtemp makes it 0700; give it a plain mkdir's mode
        os.replace(build, final)
    except BaseException as error:
        if retired is not None and retired.exists() and not final.exists():
            os.replace(retired, final)  # the swap itself failed: put the old folder back
        if isinstance(error, OSError):
            located = located_os_error(error, final)
            if located is error and error.errno is not None and isinstance(error.filename, str) \
                    and error.filename.startswith(str(build) + os.sep):  # name the file, not the build folder's copy
                located = OSError(error.errno, error.strerror,
                                  os.fspath(final / os.path.relpath(error.filename, build)))
            if located is not error:
                raise located from error
        raise
    finally:
        if lock is not None:
            os.close(lock)
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
        if retired is not None and retired.exists() and final.exists():
            shutil.rmtree(retired, ignore_errors=True)


def _hold(folder: Path) -> int | None:
    """An flock held on `folder` while this process builds in it (released when the process ends,
    even by kill -9): how `_clean_stale_builds` tells a live build from a dead one's leftovers."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except (ImportError, OSError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's
        return True
    return True


def _clean_stale_builds(final: Path) -> None:
    """Remove the build folders of `final` that no live process holds, and the old versions of
    `final` a dead process had moved aside (putting one back when `final` itself is missing)."""
    import shutil

    try:
        import fcntl
    except ImportError:
        return
    retired_pattern = re.compile(rf"^\.{re.escape(final.name)}{re.escape(_RETIRED_INFIX)}(\d+)$")
    for entry in sorted(final.parent.iterdir()):
        name = entry.name
        if name.startswith(f".{final.name}{_BUILD_INFIX}") and entry.is_dir() and not entry.is_symlink():
            try:
                fd = os.open(entry, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken: nobody builds here any more
            except OSError:
                continue  # a live build
            else:
                shutil.rmtree(entry, ignore_errors=True)
            finally:
                os.close(fd)
        elif (match := retired_pattern.match(name)) and int(match.group(1)) != os.getpid() \
                and not _pid_alive(int(match.group(1))):
            if not final.exists() and not final.is_symlink():
                os.replace(entry, final)  # killed between its two renames: the old dataset goes back
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


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


def regular_file_problem(path: str | os.PathLike) -> str | None:
    """None when `path` is a regular file (or a link to one); else what it is instead, in words.

    Inputs are checked with this before they are opened: opening a named pipe blocks until some
    other process writes to it, so `m3mstl predict` on a FIFO would hang instead of failing."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "not found"
    except NotADirectoryError:
        return "not found (a part of the path is a file)"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    return f"is {kind}, not a regular file; give a file"
