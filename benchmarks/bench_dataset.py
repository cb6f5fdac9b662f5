"""Data-loading throughput: ThermalFaceDataset + DataLoader with augmentation and a warm crop cache.

Generates a small TFD68-layout dataset (by default 200 images of 320x256 with temperature maps
and occluder masks, written by the project's writer through the tests' fixture maker), then for
each input size: fills the crop cache once (the "cold" pass reads and resamples every file) and
times full epochs through `make_loader` with the default augmentation (the "warm" figure).
Training ResNet-50 on 2 cores runs about 73 img/s at 64 px and 15 img/s at 128 px; loading must
be at least 5x faster so it never limits training.

    .venv/bin/python -m benchmarks.bench_dataset
    .venv/bin/python -m benchmarks.bench_dataset --images 100 --sizes 64 --epochs 1
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from m3mstl.data.coco import read_dataset
from m3mstl.data.dataset import AugmentConfig, ThermalFaceDataset, make_loader
from m3mstl.data.toy import make_tiny_dataset

# ResNet-50 training throughput on the project's 2-core machines (img/s, batch 32), and the
# factor by which loading must beat it.
TRAINING_IMG_PER_S = {64: 73.0, 96: 39.0, 128: 15.0}
REQUIRED_FACTOR = 5.0


def _epoch(loader) -> int:
    count = 0
    for batch in loader:
        count += batch["image"].shape[0]
    return count


def measure(root: Path, cache_dir: Path, size: int, epochs: int, batch_size: int,
            num_workers: int) -> dict[str, float]:
    """Cold (cache filling) and warm (cached, augmented) samples per second at one input size."""
    dataset = read_dataset(root)
    torch_set = ThermalFaceDataset(dataset, np.arange(len(dataset)), size, augment=AugmentConfig(),
                                   cache_dir=cache_dir, seed=0)
    start = time.perf_counter()
    torch_set.warm_cache(progress=False)
    cold = len(torch_set) / (time.perf_counter() - start)
    seen, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        torch_set.set_epoch(epoch)
        seen += _epoch(make_loader(torch_set, batch_size, shuffle=True, seed=epoch, num_workers=num_workers))
    warm = seen / (time.perf_counter() - start)
    # On a shared machine wall time includes waiting for a core; CPU time of this process does not
    # (meaningful with workers=0 only: worker processes' CPU time is not counted).
    warm_cpu = seen / max(time.process_time() - cpu_start, 1e-9)
    return {"cold": cold, "warm": warm, "warm_cpu": warm_cpu}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--epochs", type=int, default=2, help="warm epochs timed per size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0 = in process)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the machine is shared; one core is what a loader process gets

    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmp:
        tmp_path = Path(tmp)
        subjects = max(1, args.images // 10)
        start = time.perf_counter()
        root = make_tiny_dataset(tmp_path / "data", n_subjects=subjects,
                                                  images_per_subject=args.images // subjects,
                                                  width=args.width, height=args.height)
        print(f"generated {args.images} images of {args.width}x{args.height} in {time.perf_counter() - start:.1f} s"
              f" (workers={args.workers}, batch {args.batch_size}, augmentation on, torch threads 1)")
        print(f"{'size':>6} {'cold samples/s':>15} {'warm samples/s':>15} {'per CPU-second':>15} "
              f"{'needed (5x train)':>18} {'margin':>8}")
        for size in args.sizes:
            result = measure(root, tmp_path / "cache", size, args.epochs, args.batch_size, args.workers)
            train = TRAINING_IMG_PER_S.get(size)
            needed = f"{REQUIRED_FACTOR * train:.0f}" if train else "n/a"
            margin = f"{result['warm'] / (REQUIRED_FACTOR * train):.1f}x" if train else ""
            print(f"{size:>6} {result['cold']:>15.0f} {result['warm']:>15.0f} {result['warm_cpu']:>15.0f} "
                  f"{needed:>18} {margin:>8}")


if __name__ == "__main__":
    main()
