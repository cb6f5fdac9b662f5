"""Experiment helpers: ablation schedules and ablation differences against a reference run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m3mstl import experiments
from m3mstl.config import PROFILES, make_config


def _result(name: str, prob: np.ndarray, nme: np.ndarray, visibility: np.ndarray, subjects: np.ndarray) -> \
        experiments.RunResult:
    ids = np.array([f"img{i:03d}" for i in range(len(nme))])
    predictions = {"image_id": ids, "subject": subjects, "occlusion_prob": prob, "visibility": visibility}
    per_image = pd.DataFrame({"image_id": ids, "subject": subjects, "nme_inter_ocular": nme})
    return experiments.RunResult(name, Path("runs") / "m3mstl" / name, {}, per_image, predictions)


@pytest.fixture()
def runs() -> list[experiments.RunResult]:
    rng = np.random.default_rng(0)
    images = 60
    subjects = np.repeat([f"s{i}" for i in range(12)], images // 12)
    visibility = rng.choice([1, 2], size=(images, 68), p=[0.3, 0.7])
    occluded = visibility == 1
    noisy = np.clip(0.5 * occluded + rng.normal(0.25, 0.4, occluded.shape), 0, 1)
    sharper = np.clip(0.5 * occluded + rng.normal(0.25, 0.1, occluded.shape), 0, 1)
    nme = rng.uniform(0.05, 0.15, images)
    return [_result("full", noisy, nme, visibility, subjects),
            _result("same", noisy.copy(), nme.copy(), visibility, subjects),
            _result("better", sharper, nme - 0.01, visibility, subjects)]


def test_differences_leave_out_the_reference_and_measure_each_variant(runs):
    table = experiments.differences_from_reference(runs, runs[0], n_resamples=200).set_index("variant")
    assert list(table.index) == ["same", "better"]
    assert table.loc["same"].abs().max() == 0.0  # identical predictions: zero difference, zero-width interval
    better = table.loc["better"]
    assert better["roc_auc_diff"] > 0 and better["roc_auc_low"] > 0  # clearly better ranking, interval above 0
    assert better["nme_mean_diff"] == pytest.approx(-0.01)
    assert better["nme_mean_low"] == pytest.approx(-0.01) and better["nme_mean_high"] == pytest.approx(-0.01)


def test_differences_refuse_runs_on_different_images(runs):
    other = runs[2]
    other.predictions["image_id"] = other.predictions["image_id"][::-1].copy()
    with pytest.raises(ValueError, match="different images"):
        experiments.differences_from_reference(runs, runs[0], n_resamples=50)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("model, variants", [("m3mstl", experiments.ABLATIONS),
                                             ("hourglass", experiments.HOURGLASS_ABLATIONS)])
def test_every_ablation_makes_a_valid_config_in_every_profile(profile, model, variants):
    """Each variant resolves to options its model family accepts, keeps the stages it names,
    and differs from the full model's config (a variant that changes nothing is a typo)."""
    from m3mstl.train.trainer import resolve_model_options

    full = make_config(model, profile, overrides=experiments.ablation_overrides(profile, model, {}))
    full_options = resolve_model_options(model, full.model_options)
    for name, variant in variants.items():
        config = make_config(model, profile, overrides=experiments.ablation_overrides(profile, model, variant))
        options = resolve_model_options(model, config.model_options)  # raises on an unknown or invalid option
        for key, value in variant.items():
            if key.startswith("model_options."):
                assert options[key.split(".", 1)[1]] == value, (name, key)
        if "stages" in variant:
            assert [s.name for s in config.stages] == variant["stages"], name
        if variant:
            assert (options, config.stages) != (full_options, full.stages), f"{name} changes nothing"
        limit = config.data.max_train_images
        assert limit is None or (isinstance(limit, int) and limit > 0)


def test_a_misspelt_ablation_option_is_refused():
    from m3mstl.models.registry import UnknownOptionError

    with pytest.raises(UnknownOptionError, match="occlusion_uses_temprature"):
        make_config("m3mstl", "quick", overrides={"model_options.occlusion_uses_temprature": False})
    with pytest.raises(UnknownOptionError, match="use_fpff"):
        make_config("hourglass", "quick", overrides={"model_options.use_fpff": False})
