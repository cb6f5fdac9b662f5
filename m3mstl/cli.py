"""The `m3mstl` command. Each subcommand lives in the module that does the work.

A module listed here provides ``configure_parser(parser)`` (adds its arguments) and
``run(args) -> int`` (the exit code). Imports are lazy so `m3mstl validate` does not
pay for importing torch.

Errors: a fault in the user's input (`m3mstl.errors.M3mstlError`: a file, an option, a run
folder) prints one line ``error: <file or option>: <what is wrong>`` and exits 1 (2 for a
malformed argument); `--debug` (anywhere on the line) or ``M3MSTL_DEBUG=1`` shows the traceback
instead. A fault of the machine rather than of the project (disk full, read-only file system, no
permission, a file where a folder belongs, out of memory) also prints one line naming the path and
the fault. Any other exception is a bug and keeps its traceback.

An option's value may start with a minus sign (``--box -10,-10,50,50``, ``--seed -1``): it is taken
as the value, not as another option (``--box=-10,-10,50,50`` works too). ``--device`` is checked
before the command starts: an unknown device, or a GPU this machine does not have, is one line.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("m3mstl.data.validate", "check a TFD68-layout dataset and summarise it"),
    "convert": ("m3mstl.data.importers", "convert iBUG .pts, SF-TL54 or COFW-68 labels to the TFD68 layout"),
    "synth": ("m3mstl.data.synth.generate", "generate a SynthTFD68 dataset"),
    "train": ("m3mstl.train.trainer", "train a model (M3MSTL, baseline, hourglass) by its curriculum"),
    "evaluate": ("m3mstl.evaluation.evaluate", "compute metrics for a finished run"),
    "detector": ("m3mstl.train.detector", "train the small face detector on full frames (m3mstl synth --full-frame)"),
    "predict": ("m3mstl.infer.frames", "faces, landmarks and occlusion in thermal frames, as JSON or CSV rows"),
    "reproduce": ("m3mstl.reproduce", "execute every notebook with papermill and check the outputs"),
    "verify": ("m3mstl.verify", "recompute the published tables and figures from the run records (runs/, archive/) and compare bytes"),
    "scaling": ("m3mstl.studies.scaling", "train the scaling study's runs point by point, archiving each (notebook 12 reads them)"),
    "frame-models": ("m3mstl.studies.frame_models", "train the recommended pipeline for whole camera frames: detector, coarse and fine runs"),
    "ablations": ("m3mstl.studies.ablation_runs", "train a profile's ablation runs one by one, archiving each (notebooks 07 and 13 read them)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m3mstl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        # Arguments are added lazily in main(), once we know which subcommand runs.
    return parser


DEBUG_ENV = "M3MSTL_DEBUG"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage or the error and exits
        return 2
    module_name, help_text = SUBCOMMANDS[argv[0]]
    sub_parser = argparse.ArgumentParser(prog=f"m3mstl {argv[0]}", description=help_text,
                                         epilog=f"--debug (or {DEBUG_ENV}=1) shows the traceback of an error")
    args = None
    try:  # from the first import on: Ctrl-C while torch loads is an interruption, not a traceback
        module = importlib.import_module(module_name)
        module.configure_parser(sub_parser)
        args = sub_parser.parse_args(values_with_leading_minus(sub_parser, argv[1:]))
        check_device(args)
        return int(module.run(args) or 0)
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - sorted below; anything unknown is re-raised
        return _handle_error(error, debug, sub_parser, args)


_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def values_with_leading_minus(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """`args` with each option that takes one value joined to a following value that starts with a
    minus sign (``--box -10,-10,50,50`` -> ``--box=-10,-10,50,50``): argparse would read such a
    value as an option of its own and say the option lacks its argument."""
    takes_one = {option for action in parser._actions if action.option_strings and action.nargs is None
                 for option in action.option_strings}
    out: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            out.extend(args[index:])
            break
        if word in takes_one and index + 1 < len(args) and _NEGATIVE_VALUE.match(args[index + 1]):
            out.append(f"{word}={args[index + 1]}")
            index += 2
            continue
        out.append(word)
        index += 1
    return out


def check_device(args: argparse.Namespace) -> None:
    """Refuse a `--device` torch does not know, or one this machine does not have, before any work."""
    from m3mstl.errors import M3mstlError, UsageError

    device = getattr(args, "device", None)
    if not isinstance(device, str) or device in ("auto", "cpu"):
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError("--device", f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise M3mstlError("--device", f"{device!r}: this machine has no usable CUDA GPU "
                                          f"(torch.cuda.is_available() is False); use --device cpu or auto")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise M3mstlError("--device", f"{device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                                          f"numbered from 0")
        return
    if parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise M3mstlError("--device", f"{device!r}: Apple's MPS is not available on this machine; use cpu")
        return
    try:
        torch.empty(1, device=parsed)
    except Exception as error:  # noqa: BLE001 - whatever the backend says, the device is unusable here
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise M3mstlError("--device", f"{device!r} cannot be used on this machine: {first}") from None


def _handle_error(error: BaseException, debug: bool, parser: argparse.ArgumentParser,
                  args: argparse.Namespace | None = None) -> int:
    """The exit code for an error escaping a command, after printing it the way users need it."""
    from m3mstl.errors import M3mstlError

    if isinstance(error, BrokenPipeError):
        # The reader went away (`m3mstl validate DIR | head`): stop quietly. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    if debug:
        raise error
    if isinstance(error, KeyboardInterrupt):
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    if isinstance(error, M3mstlError):
        if error.exit_code == 2:
            parser.print_usage(sys.stderr)
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return error.exit_code
    fault = environment_fault(error, _command_subject(parser.prog, args))
    if fault is None:
        raise error
    print(f"error: {_one_line(fault)}", file=sys.stderr)
    return 1


def _command_subject(prog: str, args: argparse.Namespace | None) -> str:
    """The command and the first path it was given ("m3mstl synth data/x"): what a fault without a
    file of its own (out of memory) is reported against."""
    from pathlib import Path

    for value in vars(args).values() if args is not None else ():
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, Path):
            return f"{prog} {first}"
    return prog


#: OSErrors that are faults of the machine or of where the user pointed the outputs, not bugs.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                      errno.EEXIST, errno.ENAMETOOLONG, errno.EFBIG, errno.EMFILE, errno.ENFILE, errno.EIO,
                      *((errno.EDQUOT,) if hasattr(errno, "EDQUOT") else ())}
_ERRNO_HINTS = {
    errno.ENOSPC: "no space left on the device; free some space or write to another disk (M3MSTL_OUTPUT_ROOT "
                  "moves runs and caches)",
    errno.EROFS: "read-only file system; choose a writable place (M3MSTL_OUTPUT_ROOT moves runs and caches)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "is a folder, where a file was expected",
    errno.EFBIG: "file too large for this file system",
    errno.EIO: "input/output error (a failing disk or a network file system that went away?)",
}
if hasattr(errno, "EDQUOT"):
    _ERRNO_HINTS[errno.EDQUOT] = "disk quota exceeded; free some space or write elsewhere (M3MSTL_OUTPUT_ROOT)"


def environment_fault(error: BaseException, subject: str = "m3mstl") -> str | None:
    """The one-line message (``<path>: <fault>``) for a fault of the machine, or None for anything
    else (a bug, which keeps its traceback)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or (
            isinstance(error, RuntimeError) and re.search(r"out of memory|can't allocate memory|"
                                                          r"not enough memory", str(error), re.IGNORECASE)):
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (f"{subject}: out of memory ({detail[:200]}); use smaller inputs (fewer or smaller images, a smaller "
                f"data.batch_size) or a machine with more memory")
    if not isinstance(error, OSError) or error.errno not in ENVIRONMENT_ERRNOS:
        return None
    path = error.filename if error.filename is not None else error.filename2
    if path is None:
        from m3mstl import paths

        return (f"{subject}: {_ERRNO_HINTS.get(error.errno, error.strerror)} (outputs go under "
                f"{paths.OUTPUT_ROOT})")
    path = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        blocking = _file_in_the_way(path)
        if blocking is not None:
            return f"{blocking}: is a file, but a folder is needed here (for {path})" if blocking != path \
                else f"{path}: is a file, but a folder is needed here"
        if error.errno == errno.EEXIST:
            return f"{path}: already exists"
    return f"{path}: {_ERRNO_HINTS.get(error.errno, error.strerror or os.strerror(error.errno))}"


def _file_in_the_way(path: str) -> str | None:
    """The path itself or its nearest existing ancestor, when that is not a folder."""
    from pathlib import Path

    for candidate in (Path(path), *Path(path).parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else str(candidate)
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
