"""The `m3mstl` command. Each subcommand lives in the module that does the work.

A module listed here provides ``configure_parser(parser)`` (adds its arguments) and
``run(args) -> int`` (the exit code). Imports are lazy so `m3mstl validate` does not
pay for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("m3mstl.data.validate", "check a TFD68-layout dataset and summarise it"),
    "convert": ("m3mstl.data.importers", "convert iBUG .pts, SF-TL54 or COFW-68 labels to the TFD68 layout"),
    "synth": ("m3mstl.data.synth.generate", "generate a SynthTFD68 dataset"),
    "train": ("m3mstl.train.trainer", "train a model (M3MSTL, baseline, hourglass) by its curriculum"),
    "evaluate": ("m3mstl.evaluate", "compute metrics for a finished run"),
    "predict": ("m3mstl.predict", "faces, landmarks and occlusion in thermal frames, as JSON or CSV rows"),
    "reproduce": ("m3mstl.reproduce", "execute every notebook with papermill and check the outputs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m3mstl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        # Arguments are added lazily in main(), once we know which subcommand runs.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage or the error and exits
        return 2
    module_name, help_text = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"m3mstl {argv[0]}", description=help_text)
    module.configure_parser(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
