"""Training throughput per input size and trunk, for the scaling study (issue 12), and what the
extended profile's grid will cost on this machine.

For each trunk and input size: images/s of one training step's model work (forward + loss +
backward, `benchmarks.bench_model.time_training_step`, channels-last as in the run configs) for
each M3MSTL stage and the one-stage baseline. From those rates and the default profile's
schedule (epochs per stage over the training split), the projected training time of one
M3MSTL + baseline pair, and of the whole `m3mstl.studies.scaling.SCALING_GRIDS["extended"]` grid with
its seeds (data loading and validation excluded: the trainer adds about 5-15 %, see
benchmarks.bench_trainer). Run it alone on the cores: two torch jobs on two cores slow each
other many times over.

    .venv/bin/python -m benchmarks.bench_scaling                       # 18/34/50 at 64/96/128 px, batch 32
    .venv/bin/python -m benchmarks.bench_scaling --trunks resnet18 --sizes 32 --batch 2 --iters 1   # smoke
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

from benchmarks.bench_model import _to_memory_format, synthetic_batch, time_training_step
from m3mstl.config import make_config
from m3mstl.models import create_model


def measure(trunks: list[str], sizes: list[int], batch: int, warmup: int, iters: int) -> list[dict[str, Any]]:
    rows = []
    for trunk in trunks:
        for family in ("m3mstl", "baseline"):
            options = make_config(family, "default").model_options
            model = create_model(family, **{**options, "backbone": trunk}).to(memory_format=torch.channels_last)
            for size in sizes:
                data = _to_memory_format(synthetic_batch(batch, size), True)
                for stage in model.STAGES:
                    rate = time_training_step(model, data, stage, warmup, iters)
                    rows.append({"trunk": trunk, "size": size, "model": family, "stage": stage, "img_per_s": rate})
                    print(f"  {trunk:<9} {size:>4} px  {family:<9} {stage:<14} {rate:8.1f} img/s", flush=True)
    return rows


def pair_seconds(rows: list[dict[str, Any]], trunk: str, size: int, n_train: int, point=None) -> float:
    """Projected training seconds of one M3MSTL + baseline pair on the default schedule, or on the
    schedule of a scaling-study grid point (its epochs, e.g. the budget point's 4x)."""
    seconds = 0.0
    for family in ("m3mstl", "baseline"):
        config = (make_config(family, "extended", overrides=point.overrides(family)) if point is not None
                  else make_config(family, "default"))
        for stage in config.stages:
            rate = next(r["img_per_s"] for r in rows
                        if (r["trunk"], r["size"], r["model"], r["stage"]) == (trunk, size, family, stage.name))
            seconds += stage.epochs * n_train / rate
    return seconds


def main(argv: list[str] | None = None) -> None:
    from m3mstl.studies.scaling import SCALING_GRIDS, SCALING_SEEDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunks", nargs="+", default=["resnet18", "resnet34", "resnet50"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--n-train", type=int, default=2400, help="training images (default profile: 2400)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = measure(args.trunks, args.sizes, args.batch, args.warmup, args.iters)

    print(f"\nbatch {args.batch}, {args.iters} timed steps, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}: training images/s (forward+backward), and one M3MSTL + baseline pair on the "
          f"default schedule over {args.n_train} images")
    stages = list(dict.fromkeys(f"{r['model']}:{r['stage']}" for r in rows))
    header = f"{'trunk':<9} {'size':>5}" + "".join(f"{s:>22}" for s in stages) + f"{'pair (min)':>12}"
    print(header)
    print("-" * len(header))
    for trunk in args.trunks:
        for size in args.sizes:
            rates = {f"{r['model']}:{r['stage']}": r["img_per_s"] for r in rows
                     if r["trunk"] == trunk and r["size"] == size}
            minutes = pair_seconds(rows, trunk, size, args.n_train) / 60
            print(f"{trunk:<9} {size:>5}" + "".join(f"{rates[s]:>22.1f}" for s in stages) + f"{minutes:>12.1f}")
    measured = {(r["trunk"], r["size"]) for r in rows}
    grid = SCALING_GRIDS["extended"]
    if all((p.backbone, p.input_size) in measured for p in grid):
        total = sum(pair_seconds(rows, p.backbone, p.input_size, args.n_train, p) for p in grid) * SCALING_SEEDS["extended"]
        print(f"\nextended grid ({len(grid)} points, each on its own schedule, x {SCALING_SEEDS['extended']} seeds, default-profile runs "
              f"already published not subtracted): about {total / 3600:.1f} h of model work")


if __name__ == "__main__":
    main()
