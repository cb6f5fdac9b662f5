"""Looking at the reproduction's settings and into single runs, for the notebooks that show them:
the three profiles side by side and how they differ from the paper (notebook 00), what stage 1's decoder draws (02), the classical
peer's record (05) and the best and worst test images of a run (06).

Each function only gathers what its notebook shows; the notebook draws and writes it with
`m3mstl.report`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m3mstl.runs.result import RunResult


def profiles_table() -> pd.DataFrame:
    """One row per profile (quick, default, paper): the synthetic images it generates, the input size,
    trunk, stage-1 disk floor, batch size, M3MSTL's epochs per stage, the baseline's epochs, the
    learning rate, the optimiser recipe of the joint stage, the hourglass's epochs and how many training seeds the main comparison and the ablations use."""
    from m3mstl.config import PROFILES, SYNTH_SETTINGS, make_config
    from m3mstl.studies.comparison import profile_seeds

    rows = []
    for profile in PROFILES:
        m3, base = make_config("m3mstl", profile), make_config("baseline", profile)
        rows.append({
            "profile": profile,
            "synthetic images": SYNTH_SETTINGS[profile]["subjects"] * SYNTH_SETTINGS[profile]["per_subject"],
            "input px": m3.data.input_size,
            "backbone": m3.model_options["backbone"],
            "stage-1 disk floor (px)": m3.model_options.get("disk_min_radius_px") or "-",
            "batch": m3.data.batch_size,
            "M3MSTL epochs (stage 1/2/3)": "/".join(str(s.epochs) for s in m3.stages),
            "baseline epochs": base.stages[0].epochs,
            "lr": m3.stages[0].lr,
            "optimiser (joint stage)": _optimiser_text(m3),
            "hourglass epochs": "+".join(str(s.epochs) for s in make_config("hourglass", profile).stages),
            "training seeds (main / ablation)": "/".join(str(len(profile_seeds(profile, 0, purpose)))
                                                           for purpose in ("main", "ablation")),
        })
    return pd.DataFrame(rows)


#: What the paper says (docs/paper.md), for the table of differences; facts of the paper, not results here.
PAPER_SETTINGS = {
    "data": "TFD68 (28,496 real thermal images, 137 people)",
    "input size": "256 x 256",
    "trunk": "timm ResNet-50",
    "epochs": "15 / 25 / 25 (stages 1/2/3), early stopping 6",
    "optimiser": "Adam at 1e-4, batch 8; stage 1 halves the rate on a plateau",
    "stage-1 disks": "radius 3 px at 256 px, scaled with the input",
    "seeds": "one training run per model (as far as the text says)",
    "crop": "face box stretched to the input square",
    "unknowns": "several choices are not stated in what is public",
}


def _optimiser_text(config) -> str:
    joint = config.stage("joint")
    text = config.optimizer + (f", weight decay {config.weight_decay:g}" if config.weight_decay else "")
    if config.ema_decay is not None:
        text += f", weight average {config.ema_decay:g}"
    text += f", joint stage peak {joint.lr:g}"
    if joint.warmup_fraction:
        text += f" after a {joint.warmup_fraction:.0%} warm-up"
    return text + (", half cosine" if joint.cosine_decay else "")


def differences_from_paper(profile: str = "default") -> pd.DataFrame:
    """What this reproduction's `profile` does differently from the paper, and why: every value of the
    "here" column is read from the profile's settings (`m3mstl.profiles`, the model families' curricula),
    so the table follows them; the reasons are the project's (README, "Profiles")."""
    from m3mstl.config import SYNTH_SETTINGS, base_profile, make_config
    from m3mstl.studies.comparison import profile_seeds

    base = base_profile(profile)
    m3, baseline = make_config("m3mstl", profile), make_config("baseline", profile)
    synth = SYNTH_SETTINGS[base]
    floor = m3.model_options.get("disk_min_radius_px")
    seeds = [len(profile_seeds(profile, 0, purpose)) for purpose in ("main", "ablation")]
    rows = [
        ("data", f"SynthTFD68: {synth['subjects'] * synth['per_subject']:,} generated thermal faces of "
                 f"{synth['subjects']} synthetic people in TFD68's layout",
         "TFD68 is not downloadable; the real TFD68 drops in with DATA_DIR"),
        ("input size", f"{m3.data.input_size} x {m3.data.input_size}",
         "the default reproduction must finish on a 2-core CPU within its time budget"),
        ("trunk", f"timm {m3.model_options['backbone']}",
         "every M3MSTL vs baseline claim rests on several training seeds, which a smaller trunk makes affordable "
         "(benchmarks/bench_scaling.py; the extended profile's scaling study trains ResNet-50 points)"),
        ("epochs", f"{' / '.join(str(s.epochs) for s in m3.stages)} (stages 1/2/3), baseline "
                   f"{baseline.stages[0].epochs}; early stopping "
                   + (str(m3.stage('joint').patience) if m3.stage("joint").patience else "off in the joint stage"),
         "a budget at which the validation error has flattened (issue 28; notebook 12's recipe curves)"),
        ("optimiser", _optimiser_text(m3),
         "chosen on the validation split against counted compute (benchmarks/bench_recipe.py); its budget (2x) is what the default affords, not converged"),
        ("stage-1 disks", f"floored at {floor:g} px (disk_min_radius_px)" if floor else "the paper's radius",
         "at small inputs the paper's radius falls below a pixel, which the stride-4 decoder cannot draw "
         "(notebook 12's stage-1 validation IoU)"),
        ("seeds", f"{seeds[0]} training seeds per model, {seeds[1]} per ablation row; intervals over seeds and "
                  "test subjects",
         "runs that differ only by rounding moved the metrics by more than one seed's interval"),
        ("crop", "face box made square (aspect kept)" if m3.data.square_crop else "face box stretched to a square",
         "avoids distorting faces at large yaw"),
        ("unknowns", "every inferred choice is a named option (m3mstl/models/m3mstl.py)", "the full text is not public"),
    ]
    return pd.DataFrame([{"": aspect, "paper": PAPER_SETTINGS[aspect], f"here ({profile} profile)": here, "why": why}
                         for aspect, here, why in rows])


def stage1_masks(run_dir: Path, data_dir: Path, n: int = 4):
    """What the stage-1 decoder of M3MSTL run `run_dir` draws on the first `n` validation faces, from its
    best stage-1 checkpoint: (thermal crops (n, H, W), target disks (n, H, W) with the model's own
    stage-1 target and radius, predicted probabilities (n, H, W), mask IoU at 0.5 over the batch)."""
    import torch

    from m3mstl.data.dataset import make_loader
    from m3mstl.models import losses
    from m3mstl.runs import load_config, load_model
    from m3mstl.train.trainer import prepare_data

    config = load_config(run_dir)
    model = load_model(run_dir, "checkpoints/best-mask_pretrain.pt")
    data = prepare_data(config, data_dir)
    batch = next(iter(make_loader(data.torch_sets["val"], n, shuffle=False, seed=0)))
    with torch.no_grad():
        logits = model.mask_logits(batch["image"], batch["temperature"])
    target, _ = model.stage1_targets(batch["landmarks"], batch["visibility"], config.data.input_size)  # its own radius
    iou = losses.mask_iou(logits, target)
    return batch["image"][:, 0], target[:, 0], torch.sigmoid(logits[:, 0]), iou


def peer_record(peer_dir: Path) -> dict[str, Any]:
    """The classical peer's run record beside its metrics: "timings" (timings.json: training images,
    training seconds, prediction speed), "dlib" (the version that trained it) and "options" (its
    shape-predictor options)."""
    from m3mstl.runs import load_config, load_json

    peer_dir = Path(peer_dir)
    return {"timings": load_json(peer_dir / "timings.json"),
            "dlib": load_json(peer_dir / "environment.json")["dlib"],
            "options": load_config(peer_dir).model_options}


def best_and_worst(result: RunResult, data_dir: Path, best: int = 3, worst: int = 5
                   ) -> tuple[list[int], list[np.ndarray], list[str]]:
    """The `best` lowest-NME test images of `result` (at most half of them), then its `worst`,
    without repeats: (their indices in the predictions, the source images from `data_dir`, titles
    "<image id>  NME <inter-ocular NME>")."""
    from m3mstl.data.coco import load_image, read_dataset

    dataset = read_dataset(data_dir)
    by_id = {r.image_id: r for r in dataset.records}
    nme = result.per_image["nme_inter_ocular"].to_numpy()
    order = np.argsort(nme)
    n_best = min(best, len(order) // 2)
    chosen = list(dict.fromkeys(list(order[:n_best]) + list(order[::-1][:worst])))  # best first, then worst
    images = [load_image(by_id[result.predictions["image_id"][i]]) for i in chosen]
    titles = [f"{result.predictions['image_id'][i]}  NME {nme[i]:.3f}" for i in chosen]
    return chosen, images, titles
