"""Training-loader throughput at the paper profile's 256 px against the number of workers, and
what it means for the paper profile on one GPU.

Builds the trainer's own training loader (`make_train_loader`: EpochSampler, persistent workers,
the paper profile's batch of 8 and default augmentation) over a generated TFD68-layout dataset,
fills the crop cache once, then times `--epochs` epochs per worker count after one warm-up epoch
(which also starts the workers). Reports samples/s, per worker, and the estimated time per model
of the paper profile on one GPU:

    time per model = training samples of the paper profile / min(GPU rate, loader rate)

with the training samples from the paper profile itself (epochs x steps x batch of every stage)
and the GPU rate an explicit assumption (`GPU_ASSUMPTION`, printed): until someone measures the
paper profile on a GPU, the estimate is only as good as that assumption.

Needs quiet cores (a worker is a process: on a busy machine they wait for a core):

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_loader
    .venv/bin/python -m benchmarks.bench_loader --images 16 --epochs 1 --workers 0 1   # smoke run
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from m3mstl import paths
from m3mstl.config import make_config
from m3mstl.data.toy import make_tiny_dataset
from m3mstl.train.trainer import make_train_loader, prepare_data, resolve_loader_options, start_epoch

# The GPU side of the estimate, an assumption until measured. NVIDIA's ResNet-50 v1.5 PyTorch
# recipe reports 2,470 img/s training on one A100 80GB with mixed precision at 224 px and batch 256
# (NVIDIA/DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "Training
# performance: NVIDIA DGX A100"). At 256 px a step costs (256/224)^2 = 1.31x as much. The paper
# profile's batch of 8 uses a GPU far less well; the only batch-8 figure in that README is its
# mixed-precision inference table (V100): 595 img/s at batch 8 against 3,382 at batch 256. Assumed:
# training loses as much at batch 8, giving ~330 img/s for a plain ResNet-50 step (the baseline).
# The other stages are scaled by their speed relative to the baseline measured on CPU (README,
# "Speed and the training budget": bench_model/bench_trainer at 64 px), assuming the ratios carry
# over to a GPU.
A100_RESNET50_AMP_224PX_BATCH256 = 2470.0
BATCH8_OVER_BATCH256 = 595.0 / 3382.0
GPU_ASSUMPTION = {
    "gpu": "one A100-class GPU, bf16/fp16 autocast, channels-last, batch 8, 256 px",
    "baseline_img_per_s": A100_RESNET50_AMP_224PX_BATCH256 * (224 / 256) ** 2 * BATCH8_OVER_BATCH256,
    "relative_speed": {  # images/s of a stage's step relative to the baseline's joint step (CPU-measured)
        ("m3mstl", "mask_pretrain"): 51.4 / 48.2,
        ("m3mstl", "heads"): 65.3 / 42.9,  # from bench_trainer (whole trainer); the others from bench_model
        ("m3mstl", "joint"): 34.0 / 48.2,
        ("baseline", "joint"): 1.0,
        ("hourglass", "multitask"): 125.8 / 48.2,
        # Not measured: assumed as fast as the multitask step (it runs the same network; a cheaper
        # loss can only make it faster, so the estimate errs long).
        ("hourglass", "landmark_finetune"): 125.8 / 48.2,
    },
}
MODELS = ("m3mstl", "baseline", "hourglass")


def paper_stage_samples(model: str) -> list[tuple[str, int]]:
    """(stage, training samples) of the paper profile without early stopping (its upper bound)."""
    config = make_config(model, "paper")
    return [(s.name, s.epochs * s.steps_per_epoch * config.data.batch_size) for s in config.stages]


def estimated_hours(model: str, loader_rate: float) -> float:
    """Hours of training steps per model on the assumed GPU fed at `loader_rate` samples/s."""
    seconds = 0.0
    for stage, samples in paper_stage_samples(model):
        gpu_rate = GPU_ASSUMPTION["baseline_img_per_s"] * GPU_ASSUMPTION["relative_speed"][(model, stage)]
        seconds += samples / min(gpu_rate, loader_rate)
    return seconds / 3600


def measure(data_dir: Path, workers: int, epochs: int) -> dict[str, float]:
    """Warm samples/s of the paper profile's training loader with `workers` workers."""
    config = make_config("baseline", "paper", overrides={"loader.num_workers": workers})
    options = resolve_loader_options(config, torch.device("cpu"))
    options["persistent_workers"] = workers > 0  # as on a GPU host
    train_set = prepare_data(config, data_dir).torch_sets["train"]
    train_set.warm_cache(progress=False)
    loader = make_train_loader(train_set, config, options)
    start_epoch(loader, config, 0, 0)
    for _ in loader:  # warm-up: starts the workers
        pass
    seen, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        start_epoch(loader, config, 0, epoch)
        for batch in loader:
            seen += len(batch["image"])
    rate = seen / (time.perf_counter() - start)
    # On a shared machine wall time includes waiting for a core; this process's CPU time does not
    # (it says what one core delivers; meaningful with 0 workers only, as workers' time is not counted).
    cpu_rate = seen / max(time.process_time() - cpu_start, 1e-9) if workers == 0 else math.nan
    return {"samples_per_s": rate, "per_worker": rate / max(workers, 1), "per_cpu_second": cpu_rate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="images generated (60 %% form the train split)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gpu-workers", type=int, default=8, help="workers assumed on a GPU host (the default)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a loader process gets one core

    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        tmp_path = Path(tmp)
        paths.BUILD_DIR = tmp_path / "build"  # crop caches of this throwaway dataset
        subjects = max(5, args.images // 20)
        data_dir = make_tiny_dataset(tmp_path / "data", n_subjects=subjects,
                                     images_per_subject=max(1, args.images // subjects), width=320, height=256)
        print(f"paper-profile training loader at 256 px, batch 8, default augmentation, warm crop cache; "
              f"{subjects * max(1, args.images // subjects)} images of 320x256")
        print("estimated hours per model of the paper profile on the assumed GPU fed by this loader:")
        print(f"{'workers':>8} {'samples/s':>10} {'per worker':>11} {'per CPU-s':>10} | "
              + " ".join(f"{m:>9}" for m in MODELS))
        per_worker = []
        for workers in args.workers:
            result = measure(data_dir, workers, args.epochs)
            per_worker.append(result["per_worker"])
            hours = " ".join(f"{estimated_hours(m, result['samples_per_s']):>9.2f}" for m in MODELS)
            print(f"{workers:>8} {result['samples_per_s']:>10.0f} {result['per_worker']:>11.0f} "
                  f"{result['per_cpu_second']:>10.0f} | {hours}")
        # A GPU host gives each worker its own core: scale the best per-core rate measured here.
        best = max(per_worker)
        rate = args.gpu_workers * best
        hours = " ".join(f"{estimated_hours(m, rate):>9.2f}" for m in MODELS)
        print(f"{args.gpu_workers:>8} {rate:>10.0f} {'(scaled)':>11} {'':>10} | {hours}")
    gpu = GPU_ASSUMPTION["baseline_img_per_s"]
    print(f"\nassumed GPU: {GPU_ASSUMPTION['gpu']}: {gpu:.0f} img/s for the baseline's step (see GPU_ASSUMPTION)")
    for model in MODELS:
        stages = paper_stage_samples(model)
        need = max(gpu * GPU_ASSUMPTION["relative_speed"][(model, s)] for s, _ in stages)
        workers_needed = math.ceil(need / max(best, 1e-9))
        print(f"{model}: {sum(n for _, n in stages):,} training samples (paper profile, no early stop); "
              f"GPU-bound only with >= {need:.0f} samples/s: about {workers_needed} workers at the measured rate; "
              f"GPU-bound time {estimated_hours(model, math.inf):.2f} h")


if __name__ == "__main__":
    main()
