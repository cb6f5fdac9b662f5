"""Progress of long work, relayed from a notebook's kernel to the terminal of `m3mstl reproduce`.

A notebook executed by papermill runs in a kernel whose output is stored in the executed
copy, not shown in the terminal, and a progress bar or a timing stored there would make two
runs of the same commit differ. So `m3mstl reproduce` names a file in the environment
(``M3MSTL_PROGRESS_FILE``) before it starts each notebook's kernel; while it is set, the
trainer appends its progress lines (stage, epoch, images/s, time left) to that file instead
of drawing bars, and `ProgressRelay` in the reproduction prints each new line to the terminal.
Without the variable (a terminal, JupyterLab) the trainer draws its tqdm bars as usual.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TextIO

ENV_VAR = "M3MSTL_PROGRESS_FILE"


def relay_path() -> Path | None:
    """The file progress goes to when a reproduction relays it, else None."""
    value = os.environ.get(ENV_VAR)
    return Path(value) if value else None


def report(line: str) -> bool:
    """Append one progress line to the relay file; False when nothing relays progress."""
    path = relay_path()
    if path is None:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
    return True


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressRelay:
    """Print the lines another process appends to `path`, prefixed, while the block runs.

    Sets ``M3MSTL_PROGRESS_FILE`` for processes started inside the block (papermill's kernel
    inherits the environment) and restores it afterwards.
    """

    def __init__(self, path: Path, prefix: str = "", stream: TextIO | None = None, poll_seconds: float = 0.5):
        self.path = Path(path)
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._offset = 0
        self._previous: str | None = None

    def __enter__(self) -> "ProgressRelay":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        self._previous = os.environ.get(ENV_VAR)
        os.environ[ENV_VAR] = str(self.path)
        self._thread = threading.Thread(target=self._follow, name="progress-relay", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._print_new_lines()  # whatever arrived after the last poll
        if self._previous is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = self._previous

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._print_new_lines()

    def _print_new_lines(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self._offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            print(f"{self.prefix}{line}", file=self.stream, flush=True)
