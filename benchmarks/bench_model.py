"""Bare forward/backward throughput of the M3MSTL model, per curriculum stage.

What is timed is exactly one training step's model work: ``training_loss(batch, stage)``
(forward, stage-1 target or Wing + BCE) and ``loss.backward()`` - no data loading, no
optimiser, no logging. The trainer's own throughput is compared against these numbers to
see its overhead. Each configuration runs `--warmup` untimed steps, then `--iters` timed
ones; the figure is images per second over the timed steps. Inference (``predict``) is
timed beside them.

    .venv/bin/python -m benchmarks.bench_model                      # paper trunk, 64/96/128 px, batch 32
    .venv/bin/python -m benchmarks.bench_model --backbone resnet18 --sizes 64 --iters 2
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from m3mstl.models import create_model


def synthetic_batch(batch_size: int, size: int, seed: int = 0) -> dict[str, Any]:
    """A batch with the data layer's contract (values random, shapes and dtypes real)."""
    generator = torch.Generator().manual_seed(seed)
    visibility = torch.randint(1, 3, (batch_size, 68), generator=generator)
    return {
        "image": torch.rand(batch_size, 1, size, size, generator=generator),
        "temperature": 30.0 + 5.0 * torch.rand(batch_size, 1, size, size, generator=generator),
        "has_temperature": torch.ones(batch_size, dtype=torch.bool),
        "landmarks": 0.2 + 0.6 * torch.rand(batch_size, 68, 2, generator=generator),
        "visibility": visibility,
        "occluded": (visibility == 1).float(),
        "labelled": visibility > 0,
        # what the hourglass's occluder and pose heads read
        "occluder_mask": (torch.rand(batch_size, 1, size, size, generator=generator) > 0.7).float(),
        "rotation": torch.eye(3).expand(batch_size, 3, 3).clone(),
        "pose": torch.zeros(batch_size, 3),
        "has_pose": torch.ones(batch_size, dtype=torch.bool),
        "has_occluder_mask": torch.ones(batch_size, dtype=torch.bool),
    }


def _to_memory_format(batch: dict[str, Any], channels_last: bool) -> dict[str, Any]:
    if not channels_last:
        return batch
    return {key: (value.contiguous(memory_format=torch.channels_last)
                  if isinstance(value, torch.Tensor) and value.dim() == 4 else value)
            for key, value in batch.items()}


def time_training_step(model: torch.nn.Module, batch: dict[str, Any], stage: str, warmup: int, iters: int) -> float:
    """Images per second of training_loss + backward for `stage`."""
    model.set_stage(stage)
    model.train()
    for step in range(warmup + iters):
        if step == warmup:
            start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss, _ = model.training_loss(batch, stage)
        loss.backward()
    elapsed = time.perf_counter() - start
    return iters * batch["image"].shape[0] / elapsed


def time_inference(model: torch.nn.Module, batch: dict[str, Any], warmup: int, iters: int) -> float:
    """Images per second of predict (eval mode, no gradient)."""
    for step in range(warmup + iters):
        if step == warmup:
            start = time.perf_counter()
        model.predict(batch["image"], batch["temperature"])
    return iters * batch["image"].shape[0] / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for channels_last in args.memory_formats:
        # The hourglass has no ResNet trunk: --backbone applies to the M3MSTL family only.
        options = {} if args.model == "hourglass" else {"backbone": args.backbone}
        model = create_model(args.model, **options)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        for size in args.sizes:
            batch = _to_memory_format(synthetic_batch(args.batch, size), channels_last)
            for stage in model.STAGES:
                rate = time_training_step(model, batch, stage, args.warmup, args.iters)
                rows.append({"size": size, "format": "channels_last" if channels_last else "contiguous",
                             "stage": stage, "img_per_s": rate})
                print(f"  {size:>4} px  {rows[-1]['format']:<13} {stage:<14} {rate:8.1f} img/s", flush=True)
            rate = time_inference(model, batch, args.warmup, args.iters)
            rows.append({"size": size, "format": "channels_last" if channels_last else "contiguous",
                         "stage": "predict", "img_per_s": rate})
            print(f"  {size:>4} px  {rows[-1]['format']:<13} {'predict':<14} {rate:8.1f} img/s", flush=True)
    return rows


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    stages = list(dict.fromkeys(row["stage"] for row in rows))
    formats = list(dict.fromkeys(row["format"] for row in rows))
    print(f"\n{args.model} ({args.backbone}), batch {args.batch}, {args.iters} timed steps, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}: images/s (forward+backward; predict = inference)")
    header = f"{'size':>5} {'format':<14}" + "".join(f"{stage:>15}" for stage in stages)
    print(header)
    print("-" * len(header))
    for size in dict.fromkeys(row["size"] for row in rows):
        for fmt in formats:
            rates = {row["stage"]: row["img_per_s"] for row in rows if row["size"] == size and row["format"] == fmt}
            print(f"{size:>5} {fmt:<14}" + "".join(f"{rates.get(stage, float('nan')):>15.1f}" for stage in stages))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="m3mstl", help="registered model name (m3mstl, baseline or hourglass)")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--formats", dest="memory_formats", nargs="+", default=["contiguous", "channels_last"],
                        choices=["contiguous", "channels_last"])
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.memory_formats = [fmt == "channels_last" for fmt in args.memory_formats]
    print_table(run(args), args)


if __name__ == "__main__":
    main()
