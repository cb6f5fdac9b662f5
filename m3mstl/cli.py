"""The `m3mstl` command. Each subcommand lives in the module that does the work.

A module listed here provides ``configure_parser(parser)`` (adds its arguments) and
``run(args) -> int`` (the exit code). Imports are lazy so `m3mstl validate` does not
pay for importing torch.

Errors: a fault in the user's input (`m3mstl.errors.M3mstlError`: a file, an option, a run
folder) prints one line ``error: <file or option>: <what is wrong>`` and exits 1 (2 for a
malformed argument); `--debug` (anywhere on the line) or ``M3MSTL_DEBUG=1`` shows the traceback
instead. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
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
    "scaling": ("m3mstl.studies.scaling", "train the scaling study's runs point by point, archiving each (notebook 12 reads them)"),
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
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"m3mstl {argv[0]}", description=help_text,
                                         epilog=f"--debug (or {DEBUG_ENV}=1) shows the traceback of an error")
    module.configure_parser(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except BaseException as error:  # noqa: BLE001 - sorted below; anything unknown is re-raised
        return _handle_error(error, debug, sub_parser)


def _handle_error(error: BaseException, debug: bool, parser: argparse.ArgumentParser) -> int:
    """The exit code for an error escaping a command, after printing it the way users need it."""
    from m3mstl.errors import M3mstlError

    if isinstance(error, BrokenPipeError):
        # The reader went away (`m3mstl validate DIR | head`): stop quietly. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    if debug or not isinstance(error, (M3mstlError, KeyboardInterrupt)):
        raise error
    if isinstance(error, KeyboardInterrupt):
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    if error.exit_code == 2:
        parser.print_usage(sys.stderr)
    print(f"error: {_one_line(str(error))}", file=sys.stderr)
    return error.exit_code


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
