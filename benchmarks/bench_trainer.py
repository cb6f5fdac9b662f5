"""Trainer throughput per stage against the bare model's forward/backward on the same batch.

The trainer's step adds data loading (from the crop cache), augmentation, the optimiser
step, gradient clipping and logging to the model's own work. This reports, per stage,
images/s through `Trainer._train_epoch` and images/s of `training_loss + backward` on one
batch from the same loader, and the overhead = 1 - trainer / bare. Target: under 15 %.

    .venv/bin/python -m benchmarks.bench_trainer                 # ResNet-50, 64 px, batch 32
    .venv/bin/python -m benchmarks.bench_trainer --size 96 --steps 8
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_model import time_training_step
from m3mstl.config import make_config
from m3mstl.data.dataset import make_loader
from m3mstl.data.toy import make_tiny_dataset
from m3mstl.core.device import to_device
from m3mstl.train.trainer import Trainer, seed_everything


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="timed trainer steps per stage")
    parser.add_argument("--model", default="m3mstl", help="m3mstl, baseline or hourglass")
    parser.add_argument("--backbone", default="resnet50", help="ResNet trunk (M3MSTL family only)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", default="quick",
                        help="whose optimiser recipe (EMA, AdamW) the trainer steps with; data stay the tiny set")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_trainer_") as tmp:
        data_dir = make_tiny_dataset(Path(tmp) / "data", n_subjects=20, images_per_subject=16, width=160, height=128)
        overrides = {"data.input_size": args.size, "data.batch_size": args.batch_size, "data.max_train_images": None}
        if args.model != "hourglass":
            overrides["model_options.backbone"] = args.backbone
        config = make_config(args.model, args.profile, overrides=overrides)
        trainer = Trainer(config, data_dir, runs_root=Path(tmp) / "runs", progress=False)
        seed_everything(0)
        model = trainer._build_model()
        trainer.data.torch_sets["train"].warm_cache(progress=False)
        trunk = "" if args.model == "hourglass" else f" (ResNet trunk {args.backbone})"
        print(f"{args.model}{trunk}, input {args.size} px, batch {args.batch_size}, "
              f"torch threads {torch.get_num_threads()}, {args.steps} timed steps per stage")
        print(f"{'stage':>14} {'trainer img/s':>14} {'bare img/s':>11} {'overhead':>9}")
        for stage_index, stage_cfg in enumerate(config.stages):
            model.set_stage(stage_cfg.name)
            optimizer, _ = trainer._make_optimizer(model, stage_cfg)
            scaler = torch.amp.GradScaler("cpu", enabled=False)
            ema = trainer._make_ema(model)  # the profile's moving average, updated every step as in training
            stage_cfg.steps_per_epoch = 1
            trainer._train_epoch(model, optimizer, scaler, stage_cfg, stage_index, 0, ema)  # warm-up (cache, allocator)
            stage_cfg.steps_per_epoch = args.steps
            start = time.perf_counter()
            trainer._train_epoch(model, optimizer, scaler, stage_cfg, stage_index, 1, ema)
            pipeline = args.steps * args.batch_size / (time.perf_counter() - start)
            batch = to_device(next(iter(make_loader(trainer.data.torch_sets["train"], args.batch_size,
                                                    shuffle=True, seed=0))), torch.device("cpu"))
            bare = time_training_step(model, batch, stage_cfg.name, warmup=1, iters=args.steps)
            print(f"{stage_cfg.name:>14} {pipeline:>14.1f} {bare:>11.1f} {1 - pipeline / bare:>9.1%}")


if __name__ == "__main__":
    main()
