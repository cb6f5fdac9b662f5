"""Loader settings and precision: workers change how fast batches arrive, never what they hold;
the defaults follow the device; the run id ignores loader settings; mixed precision trains."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import make_tiny_dataset
from m3mstl.config import RunConfig, make_config
from m3mstl.data.dataset import EpochSampler
from m3mstl.runs import run_id
from m3mstl.train import trainer as trainer_module
from m3mstl.train.trainer import (
    Trainer,
    make_train_loader,
    prepare_data,
    resolve_loader_options,
    resolve_precision,
    start_epoch,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("data"), n_subjects=6, images_per_subject=4,
                             width=96, height=80)


class _Positions(list):
    """A dataset whose item is its key, to read a sampler's output through a DataLoader."""

    def __getitem__(self, key):
        return key


@pytest.mark.parametrize("length, batch_size, seed", [(14, 8, 5), (40, 8, 1_000_003), (7, 3, 0)])
def test_epoch_sampler_keeps_the_order_of_a_shuffling_dataloader(length, batch_size, seed) -> None:
    # Runs trained before the sampler existed drew their order from DataLoader(shuffle=True) with a
    # seeded generator, a second pass (more steps than samples) from the same loader again.
    generator = torch.Generator()
    generator.manual_seed(seed)
    former = DataLoader(list(range(length)), batch_size=batch_size, shuffle=True, generator=generator)
    expected = [b.tolist() for b in former] + [b.tolist() for b in former]

    sampler = EpochSampler(length)
    sampler.set_epoch(3, order_seed=seed)
    loader = DataLoader(_Positions(range(length)), batch_size=batch_size, sampler=sampler,
                        generator=torch.Generator(), collate_fn=list)
    passes = list(loader) + list(loader)
    assert [[position for _, position in batch] for batch in passes] == expected
    assert {epoch for batch in passes for epoch, _ in batch} == {3}


def _epochs_of_batches(data_dir: Path, num_workers: int, epochs: int) -> list[list[dict]]:
    config = make_config("m3mstl", "quick", seed=3,
                         overrides={"data.batch_size": 4, "loader.num_workers": num_workers})
    options = resolve_loader_options(config, CPU)
    assert options["num_workers"] == num_workers
    train_set = prepare_data(config, data_dir).torch_sets["train"]
    loader = make_train_loader(train_set, config, options)
    batches = []
    for epoch in range(epochs):  # the trainer's path: one loader, start_epoch before each epoch
        start_epoch(loader, config, stage_index=1, epoch=epoch)
        batches.append(list(loader))
    return batches


def test_zero_and_two_workers_give_byte_identical_batches(data_dir) -> None:
    # Two epochs through persistent workers: the second must see its own epoch's augmentation.
    serial = _epochs_of_batches(data_dir, 0, epochs=2)
    parallel = _epochs_of_batches(data_dir, 2, epochs=2)
    for epoch_serial, epoch_parallel in zip(serial, parallel, strict=True):
        assert len(epoch_serial) == len(epoch_parallel) > 1
        for a, b in zip(epoch_serial, epoch_parallel, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                if torch.is_tensor(a[key]):
                    assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
                    assert a[key].numpy().tobytes() == b[key].numpy().tobytes(), key
                else:
                    assert a[key] == b[key], key
    first, second = serial
    assert [b["image_id"] for b in first] != [b["image_id"] for b in second]  # a new order per epoch
    same_images = {i: b["image"][k] for b in first for k, i in enumerate(b["image_id"])}
    assert any(not torch.equal(b["image"][k], same_images[i]) for b in second for k, i in enumerate(b["image_id"]))


def test_loader_defaults_follow_the_device(monkeypatch) -> None:
    config = make_config("baseline", "paper")
    assert resolve_loader_options(config, CPU) == {"num_workers": 0, "prefetch_factor": None,
                                                    "pin_memory": False, "persistent_workers": False}
    monkeypatch.setattr(trainer_module, "_usable_cores", lambda: 16)
    on_gpu = resolve_loader_options(config, CUDA)
    assert on_gpu == {"num_workers": 8, "prefetch_factor": 2, "pin_memory": True, "persistent_workers": True}
    monkeypatch.setattr(trainer_module, "_usable_cores", lambda: 1)
    assert resolve_loader_options(config, CUDA)["num_workers"] == 1
    config.loader.num_workers = 2
    assert resolve_loader_options(config, CPU)["num_workers"] == 2  # an explicit choice is kept
    config.loader.num_workers = -1
    with pytest.raises(ValueError, match="num_workers"):
        resolve_loader_options(config, CPU)


def test_loader_settings_stay_out_of_the_run_id_and_precision_enters_only_when_set() -> None:
    config = make_config("m3mstl", "default")
    reference = run_id(config, "data")
    faster = make_config("m3mstl", "default", overrides={"loader.num_workers": 6, "loader.pin_memory": True})
    assert run_id(faster, "data") == reference
    bf16 = make_config("m3mstl", "default", overrides={"precision": "bf16"})
    assert run_id(bf16, "data") != reference
    restored = RunConfig.from_dict(faster.to_dict())
    assert restored.loader.num_workers == 6 and restored == faster
    # A config.json written before the loader section existed still reads.
    old = config.to_dict()
    del old["loader"], old["precision"]
    assert RunConfig.from_dict(old) == config
    with pytest.raises(KeyError, match="LoaderConfig has no field"):
        make_config("m3mstl", "default", overrides={"loader.workers": 2})


def test_precision_follows_the_device(monkeypatch) -> None:
    config = make_config("m3mstl", "paper")
    assert resolve_precision(config, CPU) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision(config, CUDA) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision(config, CUDA) == "fp16"
    config.precision = "fp8"
    with pytest.raises(ValueError, match="precision: must be one of"):
        resolve_precision(config, CPU)


@pytest.mark.slow
@pytest.mark.parametrize("model, precision", [("m3mstl", "bf16"), ("baseline", "bf16"), ("hourglass", "bf16"),
                                              ("m3mstl", "fp16")])
def test_mixed_precision_trains_and_is_recorded(data_dir, tmp_path, monkeypatch, model, precision) -> None:
    # The CUDA code path (autocast, loss scaling for fp16) run on torch's CPU autocast, in each
    # family's last stage (fp16 in one only: CPU fp16 is slow, and the scaler is the trainer's).
    last_stage = make_config(model, "quick").stages[-1].name
    config = make_config(model, "quick", overrides={"precision": precision, "stages": [last_stage],
                                                    f"stages.{last_stage}.epochs": 1,
                                                    f"stages.{last_stage}.steps_per_epoch": 2})
    autocast_seen = []
    build_model = Trainer._build_model

    def build_spied_model(self):
        built = build_model(self)
        training_loss = built.training_loss

        def spied_training_loss(batch, stage):
            if built.training:  # validation may call it too, in eval mode and fp32
                enabled = torch.is_autocast_enabled("cpu")
                autocast_seen.append(torch.get_autocast_dtype("cpu") if enabled else None)
            return training_loss(batch, stage)

        built.training_loss = spied_training_loss
        return built

    monkeypatch.setattr(Trainer, "_build_model", build_spied_model)
    scalers_checkpointed = []
    checkpoint = Trainer._checkpoint

    def spied_checkpoint(self, *args, **kwargs):
        checkpoint(self, *args, **kwargs)  # the resume state is deleted once the run completes
        scalers_checkpointed.append(torch.load(self.run_dir / "checkpoints" / "last.pt", map_location="cpu",
                                               weights_only=False)["scaler"])

    monkeypatch.setattr(Trainer, "_checkpoint", spied_checkpoint)
    trainer = Trainer(config, data_dir, device="cpu", runs_root=tmp_path, progress=False)
    run_dir = trainer.fit()
    expected = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert autocast_seen == [expected, expected]  # the two training steps
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["precision"] == precision
    assert environment["loader"]["num_workers"] == 0
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in history)
    assert scalers_checkpointed and all((scaler is not None) == (precision == "fp16")
                                        for scaler in scalers_checkpointed)


@pytest.mark.slow
def test_a_run_with_two_workers_trains_to_the_same_weights_under_the_same_id(data_dir, tmp_path) -> None:
    # End to end: training and validation loaders with persistent workers, across stages.
    weights, run_names = [], []
    for workers in (0, 2):
        config = make_config("baseline", "quick", overrides={"loader.num_workers": workers,
                                                             "stages.joint.epochs": 2,
                                                             "stages.joint.steps_per_epoch": 3})
        run_dir = Trainer(config, data_dir, device="cpu", runs_root=tmp_path / f"w{workers}",
                          progress=False).fit()
        assert json.loads((run_dir / "environment.json").read_text())["loader"]["num_workers"] == workers
        weights.append(torch.load(run_dir / "model.pt", map_location="cpu"))
        run_names.append(run_dir.name)
    assert run_names[0] == run_names[1]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
