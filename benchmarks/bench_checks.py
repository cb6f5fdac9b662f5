"""Cost of the checks run before compute: the content fingerprint (cold and cached) and the
full dataset validation that `train`, `evaluate --data` and `reproduce` run once per dataset.

    .venv/bin/python -m benchmarks.bench_checks              # the default profile's 4,000 faces at 128 px
    .venv/bin/python -m benchmarks.bench_checks --faces 200  # a smoke run

Generates a SynthTFD68 dataset in a temporary folder (not timed), then times: the fingerprint
with an empty digest cache (every file hashed), the fingerprint again (stat only), and
`validate_dataset` (every image, map and mask decoded). The build cache goes to a temporary
folder too. Needs quiet cores for meaningful numbers; the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=4000, help="faces to generate (default 4000)")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_checks_"))
    try:
        from m3mstl import paths
        from m3mstl.data.synth.generate import generate_dataset
        from m3mstl.data.validate import validate_dataset
        from m3mstl.runs import data_fingerprint

        paths.BUILD_DIR = work / "build"  # the digest cache of this run only
        subjects = max(1, args.faces // 40)
        data = work / "data"
        generate_dataset(data, subjects=subjects, per_subject=max(1, args.faces // subjects), size=args.size,
                         seed=7, workers=2)
        files = sum(1 for p in data.rglob("*") if p.is_file())
        megabytes = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 1e6
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}  (cpus: {os.cpu_count()})")
        print(f"dataset: {files} files, {megabytes:.0f} MB")
        for label in ("fingerprint, cold (hash every file)", "fingerprint, cached (stat only)"):
            t0 = time.perf_counter()
            data_fingerprint(data)
            print(f"{label:<40} {time.perf_counter() - t0:7.2f} s")
        t0 = time.perf_counter()
        report = validate_dataset(data)
        print(f"{'validate (every check)':<40} {time.perf_counter() - t0:7.2f} s  ({len(report.problems)} problems)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
