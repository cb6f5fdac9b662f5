"""The README's results, written from the published tables and manifests (issue 31).

Every number in the README's results sections sits between a pair of markers

    <!-- generated: default-answer -->
    ...
    <!-- end generated: default-answer -->

and is written by the block's renderer below from the files the reproduction publishes
(`tables/*.csv`, `reproduction*.json`), with the same sentence writers the notebooks' "What this
shows" cells use (`m3mstl.report.findings`). A complete published reproduction rewrites the blocks
(`update_readme`, called by `m3mstl reproduce`); `tests/test_readme.py` renders them from the
committed tables and fails when the README does not say what they say. Text outside the blocks
carries no result numbers, so nothing typed by hand can go stale.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from m3mstl import paths
from m3mstl.report import findings
from m3mstl.report.tables import atomic_write_text, markdown_table

BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
                   re.S)

PEER = "dlib shape predictor (classical peer)"
MODEL_NAMES = {"m3mstl": "M3MSTL", "baseline": "the baseline", "hourglass": "the hourglass", PEER: "the dlib shape predictor"}


class ReadmeError(RuntimeError):
    """A generated block the README names cannot be written (no renderer, or its source is missing)."""


def _table(root: Path, name: str) -> pd.DataFrame:
    path = root / "tables" / f"{name}.csv"  # root is a publish root: its tables/ (paths.TABLES_DIR's layout)
    if not path.is_file():
        raise ReadmeError(f"{path}: the published table this README block is written from is missing")
    return pd.read_csv(path)


def _manifest(root: Path, name: str) -> dict:
    path = root / name
    if not path.is_file():
        raise ReadmeError(f"{path}: the reproduction manifest this README block is written from is missing")
    return json.loads(path.read_text())


def _sentences(sentences: list[str]) -> str:
    return "\n".join(f"- {sentence}" for sentence in sentences) + "\n"


def _source(*names: str) -> str:
    return "Written from " + ", ".join(f"`{name}`" for name in names) + ".\n"


# --------------------------------------------------------------------------- blocks


def run_record(root: Path, manifest_name: str) -> str:
    """When, by which commit, on which machine and in how long the published set was made."""
    manifest = _manifest(root, manifest_name)
    env = manifest["environment"]
    cpu = env.get("cpu", {}).get("model", "unknown CPU")
    runs = {run: entry for notebook in manifest["notebooks"] for run, entry in notebook.get("runs", {}).items()}
    return (f"Made by `m3mstl reproduce --profile {manifest['profile']}` at commit "
            f"{str(env.get('git_commit', 'unknown'))[:7]} on {str(env.get('time_utc', 'unknown date'))[:10]} "
            f"({env.get('cpu_count')} cores of an {cpu}, torch kernel family {env.get('torch_cpu_capability')}, "
            f"{env.get('torch_threads')} threads) in {findings.number(manifest['total_seconds'] / 60, 1)} min, "
            f"on data {manifest['data_fingerprint']}; {findings.count(len(runs), 'trained run')} behind its tables "
            f"(`{manifest_name}` names each){_training_time(runs)}.\n")


def _training_time(runs: dict[str, dict]) -> str:
    """The runs' own recorded training seconds, summed: what training them all again would cost,
    which a reproduction that reused finished runs did not spend (the CPUs that trained them are in
    the manifest, and differ in speed)."""
    seconds = [entry["train_seconds"] for entry in runs.values() if entry.get("train_seconds") is not None]
    if not seconds:
        return ""
    cpus = sorted({str(entry.get("cpu") or "unknown CPU") for entry in runs.values()})
    return (f"; training them took {findings.number(sum(seconds) / 60, 1)} min in all (the sum of "
            f"{findings.count(len(seconds), 'run')}' recorded training seconds, on {', '.join(cpus)})")


def _main_means(root: Path) -> pd.DataFrame:
    main = _table(root, "06_main_results")
    return main[main["source"].str.startswith("ours")].set_index("model")


def default_answer(root: Path) -> str:
    """M3MSTL against the baseline over training seeds and test subjects (notebook 08's intervals)."""
    means = _main_means(root)
    sentences = []
    for interval in _table(root, "08_seed_aware_ci").to_dict("records"):
        key = findings.metric_key(interval["metric"])
        sentences.append(findings.describe_comparison(
            key, "M3MSTL", means.loc["m3mstl", key], "the baseline", means.loc["baseline", key],
            interval=interval, n_seeds=int(interval["n_seeds"])))
    return _sentences(sentences) + "\n" + _source("tables/08_seed_aware_ci.csv", "tables/06_main_results.csv")


MAIN_COLUMNS = ["source", "model", "n_seeds", "occlusion_accuracy", "roc_auc", "average_precision", "nme_mean",
                "nme_median", "nme_box_median", "failure_rate@0.10"]


def default_main_table(root: Path) -> str:
    """The main table, its columns as a reader reads them (sd over seeds: the table's own file)."""
    main = _table(root, "06_main_results")
    hourglass = _table(root, "11_hourglass_comparison")
    hourglass = hourglass[hourglass["model"] == "hourglass"].assign(source=main["source"].iloc[0])
    table = pd.concat([main, hourglass], ignore_index=True)[MAIN_COLUMNS]
    return (markdown_table(table, {"n_seeds": 0}) + "\n" + _source("tables/06_main_results.csv", "tables/11_hourglass_comparison.csv")
            + "The sd over seeds of every column is in those tables.\n")


def extended_ablations(root: Path) -> str:
    return (_sentences(findings.describe_ablations(_table(root, "07_ablation_differences"), "full M3MSTL"))
            + "\n" + _source("tables/07_ablation_differences.csv"))


def _intervals(root: Path, name: str, comparison: str) -> dict[str, dict]:
    """Seed-aware intervals of one comparison in a table written by the notebooks (by metric key), or
    none when the published set predates that table (its sentences then give sds only)."""
    if not (root / "tables" / f"{name}.csv").is_file():
        return {}
    table = _table(root, name)
    if "comparison" not in table or "metric" not in table:
        return {}
    rows = table[table["comparison"] == comparison].to_dict("records")
    return {findings.metric_key(row["metric"]): row for row in rows}


def default_peer(root: Path) -> str:
    """The deep models beside the classical peer and the hourglass, with intervals over seeds and
    subjects where the published set has them (tables 06_peer_gap, 11_hourglass_seed_aware_ci)."""
    means = _main_means(root)
    hourglass = _table(root, "11_hourglass_comparison").set_index("model")
    sentences, sources = [], ["tables/06_main_results.csv", "tables/11_hourglass_comparison.csv"]
    for model in ("m3mstl", "baseline"):
        gap = _intervals(root, "06_peer_gap", f"{model} - classical peer").get("nme_median")
        sentences.append(findings.describe_comparison(
            "nme_median", MODEL_NAMES[model], means.loc[model, "nme_median"], "the dlib shape predictor",
            means.loc[PEER, "nme_median"], interval=gap,
            n_seeds=(int(means.loc[model, "n_seeds"]), int(means.loc[PEER, "n_seeds"])),
            a_sd=means.loc[model].get("nme_median_sd"), b_sd=means.loc[PEER].get("nme_median_sd")))
        if gap is not None:
            sources.append("tables/06_peer_gap.csv")
    for metric in ("roc_auc", "nme_median"):
        interval = _intervals(root, "11_hourglass_seed_aware_ci", "hourglass - m3mstl").get(metric)
        sentences.append(findings.describe_comparison(
            metric, "the hourglass", hourglass.loc["hourglass", metric], "M3MSTL", hourglass.loc["m3mstl", metric],
            interval=interval,
            n_seeds=(int(hourglass.loc["hourglass", "n_seeds"]), int(hourglass.loc["m3mstl", "n_seeds"])),
            a_sd=hourglass.loc["hourglass"].get(f"{metric}_sd"), b_sd=hourglass.loc["m3mstl"].get(f"{metric}_sd")))
        if interval is not None:
            sources.append("tables/11_hourglass_seed_aware_ci.csv")
    return _sentences(sentences) + "\n" + _source(*dict.fromkeys(sources))  # each table named once, in order


def default_thermometry(root: Path) -> str:
    return (_sentences(findings.describe_canthus_readings(_table(root, "09_canthus_temperature")))
            + "\n" + _source("tables/09_canthus_temperature.csv"))


def extended_scaling(root: Path) -> str:
    study = _table(root, "12_scaling_study")
    peer = study["peer_nme_median"].dropna()
    sentences = findings.describe_scaling_study(study, peer_nme=float(peer.iloc[0]) if len(peer) else None)
    columns = ["input_size", "backbone", "variant", "n_seeds", "stage1_val_iou", "train_tflop_m3mstl",
               "train_tflop_baseline", "m3mstl_nme_median", "baseline_nme_median", "diff_roc_auc", "diff_roc_auc_low",
               "diff_roc_auc_high", "diff_nme_median", "diff_nme_median_low", "diff_nme_median_high"]
    return (_sentences(sentences) + "\n" + markdown_table(study[columns], {"train_tflop_m3mstl": 1,
                                                                           "train_tflop_baseline": 1})
            + "\n" + _source("tables/12_scaling_study.csv"))


def extended_hourglass_ablations(root: Path) -> str:
    return (_sentences(findings.describe_ablations(_table(root, "13_hourglass_ablation_differences"), "full hourglass"))
            + "\n" + _source("tables/13_hourglass_ablation_differences.csv"))


def extended_frames(root: Path) -> str:
    from m3mstl.studies import camera_frames

    choice = _table(root, "14_detector_choice").assign(breakdown="all")
    sentences = findings.describe_detectors(choice, _table(root, "14_detector"), camera_frames.choose_detector(choice))
    if (root / "tables" / "14_fine_choice.csv").is_file():  # the two-stage study (issue 30)
        fine = _table(root, "14_fine_choice")
        chosen = camera_frames.choose_box_training(fine)
        sentences.append(camera_frames.describe_fine_choice(fine))
        agrees = "the one" if chosen == camera_frames.RECOMMENDED_FINE else "NOT the one"
        sentences.append(f"The recommended recipe (`m3mstl.studies.camera_frames`; {agrees} this validation prefers) is trained "
                         f"by `m3mstl frame-models`, one run each of: "
                         + "; ".join(f"`{command}`" for command in camera_frames.recipe_commands()) + ".")
        choice_table = "tables/14_fine_choice.csv"
    else:  # a set published before the two-stage study: one head-box model read once
        training = camera_frames.choose_box_training(_table(root, "14_box_choice"))
        sentences.append(f"The landmark model for frames is the baseline trained as \"{training}\", the way with the lowest "
                         f"median NME through the detector on the validation frames: "
                         f"`{camera_frames.frame_training_command(training)}` (frames from `m3mstl synth --full-frame`).")
        choice_table = "tables/14_box_choice.csv"
    sentences += findings.describe_pipeline(_table(root, "14_pipeline_nme"))
    sentences += findings.describe_canthus_readings(_table(root, "14_canthus_from_frames"))
    return _sentences(sentences) + "\n" + _source("tables/14_detector_choice.csv", "tables/14_detector.csv",
                                                  choice_table, "tables/14_pipeline_nme.csv",
                                                  "tables/14_canthus_from_frames.csv")


RENDERERS: dict[str, Callable[[Path], str]] = {
    "default-run": lambda root: run_record(root, "reproduction.json"),
    "default-answer": default_answer,
    "default-main-table": default_main_table,
    "default-peer": default_peer,
    "default-thermometry": default_thermometry,
    "extended-run": lambda root: run_record(root, "reproduction-extended.json"),
    "extended-scaling": extended_scaling,
    "extended-ablations": extended_ablations,
    "extended-hourglass-ablations": extended_hourglass_ablations,
    "extended-frames": extended_frames,
}


# --------------------------------------------------------------------------- the README


def block_names(text: str) -> list[str]:
    return [match["name"] for match in BLOCK.finditer(text)]


def render(text: str, root: Path | None = None) -> str:
    """`text` with every generated block rewritten from the published files under `root`."""
    root = paths.PUBLISH_ROOT if root is None else Path(root)

    def rewrite(match: re.Match) -> str:
        renderer = RENDERERS.get(match["name"])
        if renderer is None:
            raise ReadmeError(f"README block {match['name']!r} has no renderer; known: {', '.join(RENDERERS)}")
        return match.group(1) + renderer(root) + match.group(4)

    return BLOCK.sub(rewrite, text)


def update_readme(readme: Path | None = None, root: Path | None = None) -> bool:
    """Rewrite the README's generated blocks from the published files; True when it changed."""
    readme = paths.REPO_ROOT / "README.md" if readme is None else Path(readme)
    if not readme.is_file():  # an output root without the repository's README: nothing to follow
        return False
    text = readme.read_text(encoding="utf-8")
    new = render(text, root)
    if new == text:
        return False
    atomic_write_text(readme, new)
    return True
