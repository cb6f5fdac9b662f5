"""Experiment helpers: ablation schedules and ablation differences against a reference run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m3mstl.studies import comparison
from m3mstl.config import PROFILES, make_config
from m3mstl.runs.result import RunResult


def _result(name: str, prob: np.ndarray, nme: np.ndarray, visibility: np.ndarray, subjects: np.ndarray) -> \
        RunResult:
    ids = np.array([f"img{i:03d}" for i in range(len(nme))])
    predictions = {"image_id": ids, "subject": subjects, "occlusion_prob": prob, "visibility": visibility}
    per_image = pd.DataFrame({"image_id": ids, "subject": subjects, "nme_inter_ocular": nme})
    return RunResult(name, Path("runs") / "m3mstl" / name, {}, per_image, predictions)


@pytest.fixture()
def runs() -> list[RunResult]:
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
    table = comparison.differences_from_reference(runs, runs[0], n_resamples=200).set_index("variant")
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
        comparison.differences_from_reference(runs, runs[0], n_resamples=50)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("model, variants", [("m3mstl", comparison.ABLATIONS),
                                             ("hourglass", comparison.HOURGLASS_ABLATIONS)])
def test_every_ablation_makes_a_valid_config_in_every_profile(profile, model, variants):
    """Each variant resolves to options its model family accepts, keeps the stages it names,
    and differs from the full model's config (a variant that changes nothing is a typo)."""
    from m3mstl.train.trainer import resolve_model_options

    full = make_config(model, profile, overrides=comparison.ablation_overrides(profile, model, {}))
    full_options = resolve_model_options(model, full.model_options)
    for name, variant in variants.items():
        config = make_config(model, profile, overrides=comparison.ablation_overrides(profile, model, variant))
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


def _with_augment(setting: dict):
    from m3mstl.config import validate_config

    config = make_config("m3mstl", "quick")
    config.data.augment = setting
    validate_config(config)


def _unknown_option_paths():
    """Every way an unknown option key enters, each as (name, call, the key the error must name)."""
    from m3mstl.config import apply_override
    from m3mstl.detection import trained
    from m3mstl.models import create_model
    from m3mstl.models.registry import get_family
    from m3mstl.studies import scaling
    from m3mstl.train import peer

    def override(key, value, model="m3mstl"):
        return lambda: apply_override(make_config(model, "quick"), key, value)

    return [
        # `--set` and config overrides (apply_override, make_config(overrides=...))
        ("set data field", override("data.input_sise", 64), "input_sise"),
        ("set loader field", override("loader.workers", 1), "workers"),
        ("set stage field", override("stages.joint.epoch", 1), "epoch"),
        ("set unknown stage", override("stages.stage4.epochs", 1), "stage4"),
        ("set stage list", override("stages", ["heads", "stage4"]), "stage4"),
        ("set top-level field", override("sed", 1), "sed"),
        ("set unknown section", override("optimiser.lr", 1), "optimiser"),
        ("set model option", override("model_options.occlusion_wieght", 1.0), "occlusion_wieght"),
        ("set all model options", override("model_options", {"backbone": "resnet18", "depht": 2}), "depht"),
        ("set hourglass option", override("model_options.use_fpff", False, "hourglass"), "use_fpff"),
        ("make_config overrides", lambda: make_config("baseline", "quick", overrides={"data.nope": 1}), "nope"),
        ("augmentation setting", lambda: _with_augment({"hflip_prb": 0.5}), "hflip_prb"),
        # the registry: model options of every family, its option resolution, the model name
        ("create_model m3mstl", lambda: create_model("m3mstl", depht=2), "depht"),
        ("create_model baseline", lambda: create_model("baseline", depht=2), "depht"),
        ("create_model hourglass", lambda: create_model("hourglass", depht=2), "depht"),
        ("resolve m3mstl options", lambda: get_family("m3mstl").resolve_options({"depht": 2}), "depht"),
        ("resolve hourglass options", lambda: get_family("hourglass").resolve_options({"depht": 2}), "depht"),
        ("unknown model", lambda: create_model("m3mstll"), "m3mstll"),
        ("make_config unknown model", lambda: make_config("m3mstll", "quick"), "m3mstll"),
        # ablation and scaling overrides
        ("ablation option", lambda: make_config("m3mstl", "quick", overrides=comparison.ablation_overrides(
            "quick", "m3mstl", {"model_options.occlusion_uses_temprature": False})), "occlusion_uses_temprature"),
        ("ablation epochs receiver", lambda: comparison.ablation_overrides(
            "quick", "m3mstl", {"stages": ["heads", "joint"], comparison.EPOCHS_MOVED_TO: "jiont"}), "jiont"),
        ("scaling point key", lambda: scaling.scale_point({"input_size": 64, "backbone": "resnet18", "seeds": 2}),
         "seeds"),
        ("scaling M3MSTL override", lambda: make_config("m3mstl", "quick", overrides=scaling.ScalePoint(
            64, "resnet18", m3mstl_overrides={"model_options.disk_min_radius": 2.0}).overrides("m3mstl", "quick")),
         "disk_min_radius"),
        ("scaling budget without a joint stage", lambda: scaling.ScalePoint(64, "resnet18", epochs_factor=2)
         .overrides("hourglass", "quick"), "joint"),
        # the classical peer's options
        ("peer option", lambda: peer.peer_config("quick", overrides={"model_options.tree_dpth": 3}), "tree_dpth"),
        ("peer options at once", lambda: peer.peer_config("quick", overrides={"model_options": {"tree_dpth": 3}}),
         "tree_dpth"),
        ("peer data field", lambda: peer.peer_config("quick", overrides={"data.nope": 1}), "nope"),
        ("peer training options", lambda: peer._training_options({"tree_dpth": 3}, 0), "tree_dpth"),
        # the trained face detector's settings
        ("detector settings", lambda: trained.settings_for("quick", epoch=3), "epoch"),
        ("detector settings table", lambda: trained.make_settings({"input_widht": 64}), "input_widht"),
    ]


@pytest.mark.parametrize("name, call, key", _unknown_option_paths(), ids=[c[0] for c in _unknown_option_paths()])
def test_an_unknown_option_is_one_error_type_on_every_path(name, call, key):
    """Whatever the path, a misspelt or unknown key raises UnknownOptionError naming it (still a
    KeyError, ValueError and TypeError, the types some paths raised before)."""
    from m3mstl.errors import UnknownOptionError

    with pytest.raises(UnknownOptionError, match=key) as raised:
        call()
    assert isinstance(raised.value, (KeyError, ValueError, TypeError))


def _seeded_runs(rng, name: str, n_seeds: int, shift: float, sharpness: float, visibility, subjects):
    occluded = visibility == 1
    runs = []
    for k in range(n_seeds):
        prob = np.clip(0.5 * occluded + rng.normal(0.25, sharpness, occluded.shape), 0, 1)
        nme = rng.uniform(0.05, 0.15, len(subjects)) + shift
        run = _result(f"{name}-{k}", prob, nme, visibility, subjects)
        run.metrics = {"landmarks": {"inter_ocular": {"nme_mean": nme.mean(), "nme_median": np.median(nme),
                                                      "nme_visible": 0.0, "nme_occluded": 0.0,
                                                      "failure_rate@0.10": 0.5, "n_images": len(nme)},
                                     "box": {"nme_median": np.median(nme) / 2}},
                       "occlusion": {"accuracy": 0.8 + shift, "class_prior_occluded": 0.3, "balanced_accuracy": 0.7,
                                     "roc_auc": 0.9 - shift, "average_precision": 0.85}}
        runs.append(run)
    return runs


def test_profile_seeds_and_tables_over_seeds():
    assert comparison.profile_seeds("default", 0) == [0, 1, 2]
    assert comparison.profile_seeds("extended", 5) == [5, 6, 7]
    assert len(comparison.profile_seeds("quick")) >= 2  # the tests exercise the seed-aware path
    rng = np.random.default_rng(1)
    subjects = np.repeat([f"s{i}" for i in range(10)], 4)
    visibility = rng.choice([1, 2], size=(40, 68), p=[0.3, 0.7])
    m3 = _seeded_runs(rng, "m3mstl", 3, 0.0, 0.2, visibility, subjects)
    base = _seeded_runs(rng, "baseline", 3, 0.02, 0.4, visibility, subjects)
    single = comparison.main_results_over_seeds({"m3mstl": m3[:1], "baseline": base[:1]})
    # One seed: the single-run table, with the same n_seeds column as several seeds give.
    assert single.drop(columns="n_seeds").equals(comparison.main_results_table([m3[0], base[0]]))
    assert single.set_index("source")["n_seeds"].filter(like="ours").eq(1).all()
    ablation = comparison.summary_over_seeds({"full": m3[:1], "variant": base[:1]}, label="variant")
    assert list(ablation.columns[:2]) == ["variant", "n_seeds"] and ablation["n_seeds"].eq(1).all()
    table = comparison.main_results_over_seeds({"m3mstl": m3, "baseline": base})
    ours = table[table["source"].str.startswith("ours")].set_index("model")
    assert ours.loc["m3mstl", "n_seeds"] == 3
    expected = [r.metrics["landmarks"]["inter_ocular"]["nme_median"] for r in m3]
    assert ours.loc["m3mstl", "nme_median"] == pytest.approx(np.mean(expected))
    assert ours.loc["m3mstl", "nme_median_sd"] == pytest.approx(np.std(expected, ddof=1))

    intervals = {i.metric: i for i in comparison.seed_aware_differences(m3, base, n_resamples=200)}
    assert set(intervals) == {"mean NME (inter_ocular)", "median NME (inter_ocular)", "occlusion accuracy",
                              "roc_auc", "average_precision"}
    assert all(i.variance == "training seeds and test subjects" and i.n_seeds == 3 for i in intervals.values())
    assert intervals["roc_auc"].estimate > 0  # sharper probabilities rank better in every seed
    with pytest.raises(ValueError, match="at least 2"):
        comparison.seed_aware_differences(m3[:1], base[:1])

    differences = comparison.differences_over_seeds({"full": m3, "variant": base}, "full", n_resamples=200)
    assert list(differences["variant"]) == ["variant"] and differences["n_seeds"].iloc[0] == 3
    assert differences["variance"].iloc[0] == "training seeds and test subjects"
    one_seed = comparison.differences_over_seeds({"full": m3[:1], "variant": base[:1]}, "full", n_resamples=200)
    assert one_seed["variance"].iloc[0].startswith("test subjects only")


@pytest.mark.parametrize("profile", [*PROFILES, "extended"])
def test_ablation_rows_name_real_variants_and_keep_the_full_model(profile):
    """Each profile's rows are variants of ABLATIONS, the full model among them, so every
    table has its reference row (a typo in ABLATION_ROWS would otherwise train nothing)."""
    variants = comparison.ablation_variants(profile)
    assert "full M3MSTL" in variants
    assert set(variants) <= set(comparison.ABLATIONS)
    assert variants["full M3MSTL"] == {}


def test_default_ablations_share_the_main_comparisons_model_and_budget():
    """The default profile's full-M3MSTL ablation row is the main comparison's model itself (same
    config, so the same run id), and a variant changes only its own ingredient: issue 12 asks the
    ablation schedule to stay close to the full default model's."""
    assert make_config("m3mstl", "default", overrides=comparison.ablation_overrides("default", "m3mstl", {})) \
        == make_config("m3mstl", "default")
    variant = comparison.ABLATIONS["ViT occlusion head without temperature"]
    config = make_config("m3mstl", "default", overrides=comparison.ablation_overrides("default", "m3mstl", variant))
    assert [s.epochs for s in config.stages] == [s.epochs for s in make_config("m3mstl", "default").stages]
    assert config.data.max_train_images is None


@pytest.mark.parametrize("profile", [*PROFILES, "extended"])
def test_hourglass_ablation_rows_name_real_variants_and_keep_the_full_model(profile):
    variants = comparison.hourglass_ablation_variants(profile)
    assert variants["full hourglass"] == {}
    assert set(variants) <= set(comparison.HOURGLASS_ABLATIONS)
    assert len(variants) >= 2


def test_published_hourglass_ablations_train_the_main_hourglass_with_three_seeds():
    """The extended profile publishes notebook 13: its full-hourglass row is the main hourglass of
    notebook 11 (same schedule, every training image; issue 12: an ablation's full model close to
    the full default model), each row with 3 seeds, and a variant changes only its component."""
    main = make_config("hourglass", "default")
    full = make_config("hourglass", "extended", overrides=comparison.ablation_overrides("extended", "hourglass", {}))
    assert [(s.name, s.epochs) for s in full.stages] == [(s.name, s.epochs) for s in main.stages]
    assert full.data.max_train_images is None and full.data.input_size == main.data.input_size
    assert full.model_options == main.model_options
    assert len(comparison.profile_seeds("extended", 0, "ablation")) == 3
    for name, variant in comparison.hourglass_ablation_variants("extended").items():
        config = make_config("hourglass", "extended",
                             overrides=comparison.ablation_overrides("extended", "hourglass", variant))
        assert [s.epochs for s in config.stages] == [s.epochs for s in main.stages], name
        changed = {k for k in config.model_options if config.model_options[k] != main.model_options.get(k)}
        assert changed == {key.split(".", 1)[1] for key in variant}, name


@pytest.mark.parametrize("profile", [*PROFILES, "extended"])
def test_the_budget_matched_stage1_ablation_trains_as_many_epochs_as_the_full_model(profile):
    full = make_config("m3mstl", profile, overrides=comparison.ablation_overrides(profile, "m3mstl", {}))
    variant = comparison.ABLATIONS["no stage 1, its epochs given to stage 3"]
    matched = make_config("m3mstl", profile, overrides=comparison.ablation_overrides(profile, "m3mstl", variant))
    plain = make_config("m3mstl", profile, overrides=comparison.ablation_overrides(
        profile, "m3mstl", comparison.ABLATIONS["no stage 1 (no mask pretraining)"]))
    epochs = {s.name: s.epochs for s in full.stages}
    assert {s.name: s.epochs for s in matched.stages} == {
        "heads": epochs["heads"], "joint": epochs["joint"] + epochs["mask_pretrain"]}
    assert sum(s.epochs for s in plain.stages) == sum(epochs.values()) - epochs["mask_pretrain"]
    with pytest.raises(ValueError, match="drops"):
        comparison.ablation_overrides(profile, "m3mstl", {"stages": ["heads", "joint"],
                                                           comparison.EPOCHS_MOVED_TO: "mask_pretrain"})


def test_main_claims_rest_on_three_seeds_outside_quick():
    for profile in ("default", "extended"):
        assert len(comparison.profile_seeds(profile, 0, "main")) >= 3
        assert len(comparison.profile_seeds(profile, 0, "ablation")) >= 3


def _breakdown_run(name: str, nme: float, auc: float) -> RunResult:
    landmarks = [{"occluder": o, "n_images": 5, "nme_mean": nme, "nme_median": nme} for o in ("none", "mask")]
    occlusion = [{"occluder": o, "class_prior_occluded": 0.2, "accuracy": 0.9, "roc_auc": auc,
                  "average_precision": 0.8} for o in ("none", "mask")]
    metrics = {"by_occluder": {"landmarks": landmarks, "occlusion": occlusion}}
    return RunResult(name, Path("."), metrics, pd.DataFrame(), {})


def test_breakdown_over_seeds_averages_each_group_over_seeds():
    table = comparison.breakdown_over_seeds(
        {"m3mstl": [_breakdown_run("m3mstl", 0.10, 0.90), _breakdown_run("m3mstl", 0.20, 0.80)],
         "peer": [_breakdown_run("peer", 0.05, 0.5)]}, "occluder")
    m3 = table[table.model == "m3mstl"].set_index("occluder")
    assert m3.loc["mask", "nme_median"] == pytest.approx(0.15)
    assert m3.loc["mask", "roc_auc"] == pytest.approx(0.85)
    assert m3.loc["mask", "nme_median_sd"] == pytest.approx(np.std([0.1, 0.2], ddof=1))
    assert m3.loc["none", "n_images"] == 5 and m3.loc["none", "n_seeds"] == 2
    assert np.isnan(table[table.model == "peer"]["nme_median_sd"]).all()  # one seed: no spread
