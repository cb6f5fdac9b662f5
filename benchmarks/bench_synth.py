"""Speed of the SynthTFD68 generator.

    .venv/bin/python -m benchmarks.bench_synth              # per-core rates + the 6,000-face run
    .venv/bin/python -m benchmarks.bench_synth --quick      # per-core rates + a 600-face run

Reports faces per second per core (render + write, one process) at 128 and 256 pixels, then
times a full `generate_dataset` at 128 pixels with 2 workers (the default profile's 6,000
faces unless told otherwise) and compares it with the 3-minute budget. The machine's load
average is printed too: other processes on the cores slow every figure down.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from m3mstl.data.synth import load_priors
from m3mstl.data.synth.generate import generate_dataset, spec_for, write_rendered
from m3mstl.data.synth.renderer import render

BUDGET_S = 180.0          # 6,000 faces at 128 px on 2 cores (the default profile's data)


def per_core_rate(size: int, faces: int, out: Path) -> tuple[float, float]:
    """Faces per second of one process (render + write), and the share spent rendering."""
    priors = load_priors()
    specs = [spec_for(11, i // 8, i % 8, 1000, priors) for i in range(faces)]
    render(specs[0], size)  # warm caches and imports
    render_s = write_s = 0.0
    for spec in specs:
        t0 = time.perf_counter()
        face = render(spec, size)
        t1 = time.perf_counter()
        write_rendered(out, spec, face, "npy")
        write_s += time.perf_counter() - t1
        render_s += t1 - t0
    return faces / (render_s + write_s), render_s / (render_s + write_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 faces instead of 6,000 for the full run")
    parser.add_argument("--faces", type=int, default=None, help="faces in the full run (default 6000)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    faces = args.faces or (600 if args.quick else 6000)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}  (cpus: {os.cpu_count()})")
    work = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        for size, count in ((128, 120), (256, 40)):
            rate, share = per_core_rate(size, count, work / f"rate{size}")
            print(f"{size:>4} px: {rate:6.1f} faces/s per core ({1000 / rate:5.1f} ms/face, {100 * share:.0f}% rendering)")
        subjects = max(1, faces // 40)
        t0 = time.perf_counter()
        generate_dataset(work / "full", subjects=subjects, per_subject=faces // subjects, size=128, seed=7,
                         workers=args.workers)
        elapsed = time.perf_counter() - t0
        made = subjects * (faces // subjects)
        projected = elapsed * 6000 / made
        print(f"generate_dataset: {made} faces at 128 px, {args.workers} workers: {elapsed:.1f} s "
              f"({made / elapsed:.1f} faces/s); 6,000 faces -> {projected:.0f} s "
              f"(budget {BUDGET_S:.0f} s: {'OK' if projected < BUDGET_S else 'OVER'})")
        print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        size_mb = sum(p.stat().st_size for p in (work / "full").rglob("*") if p.is_file()) / 1e6
        print(f"dataset size: {size_mb:.0f} MB ({1e3 * size_mb / made:.0f} kB/face)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
