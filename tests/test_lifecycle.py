"""The one run lifecycle (`m3mstl.runs.lifecycle.produce_run`) every producer goes through: reuse
of a finished run, `force`, the notebook gate and the lock, here with a stand-in producer (the
trainer, the peer and the detector are refused by the gate in their own test files)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from m3mstl.errors import RunError
from m3mstl.runs import LOCK_FILE, RunLock
from m3mstl.runs.lifecycle import RunNotTrained, allow_training, produce_run, training_allowed

FINGERPRINT = "f" * 16


class Producer:
    """A stand-in producer: writes a run record as the real ones do (environment, then complete.json)."""

    def __init__(self, run_dir: Path, *, finish: bool = True) -> None:
        self.run_dir, self.finish, self.calls = run_dir, finish, 0

    def __call__(self) -> None:
        self.calls += 1
        assert (self.run_dir / LOCK_FILE).is_file()
        (self.run_dir / "environment.json").write_text(json.dumps({"data_fingerprint": FINGERPRINT}))
        (self.run_dir / "model.bin").write_text(f"trained {self.calls}")
        if self.finish:
            (self.run_dir / "complete.json").write_text("{}")


def produce(producer: Producer, **kwargs) -> Path:
    kwargs.setdefault("fingerprint", FINGERPRINT)
    return produce_run(producer.run_dir, producer, refusal=lambda: "not trained: the stand-in", **kwargs)


@pytest.fixture
def training_refused():
    """As in a notebook opened with TRAIN = FORCE = False."""
    allow_training(False)
    yield
    allow_training(True)


def test_a_missing_run_is_trained_under_its_lock_and_then_reused(tmp_path):
    producer = Producer(tmp_path / "run")
    assert produce(producer) == producer.run_dir and producer.calls == 1
    reused = []
    assert produce(producer, on_reuse=lambda: reused.append(True)) == producer.run_dir
    assert producer.calls == 1 and reused == [True]
    assert (producer.run_dir / "model.bin").read_text() == "trained 1"


def test_force_empties_the_folder_but_the_lock_and_trains_again(tmp_path):
    producer = Producer(tmp_path / "run")
    produce(producer)
    (producer.run_dir / "stale.txt").write_text("from an older run")
    (producer.run_dir / "checkpoints").mkdir()
    produce(producer, force=True)
    assert producer.calls == 2 and (producer.run_dir / "model.bin").read_text() == "trained 2"
    assert sorted(p.name for p in producer.run_dir.iterdir()) == [LOCK_FILE, "complete.json", "environment.json",
                                                                  "model.bin"]


def test_an_unfinished_run_is_continued_in_place(tmp_path):
    producer = Producer(tmp_path / "run", finish=False)
    produce(producer)
    (producer.run_dir / "checkpoint.pt").write_text("resume here")
    producer.finish = True
    produce(producer)
    assert producer.calls == 2 and (producer.run_dir / "checkpoint.pt").is_file()


def test_a_run_recorded_for_other_data_is_neither_reused_nor_resumed(tmp_path):
    for finish in (True, False):
        producer = Producer(tmp_path / f"run-{finish}", finish=finish)
        produce(producer)
        with pytest.raises(RunError, match="retrain with --force"):
            produce(producer, fingerprint="other")
        assert producer.calls == 1
        produce(producer, fingerprint="other", force=True)  # force: trained again, whatever was recorded
        assert producer.calls == 2


def test_the_fingerprint_is_read_from_the_record_the_producer_names(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"data_fingerprint": "other"}))
    (run_dir / "complete.json").write_text("{}")
    with pytest.raises(RunError, match="config.json"):
        produce(Producer(run_dir), fingerprint_record="config.json")


def test_the_gate_refuses_to_train_and_writes_nothing(tmp_path, training_refused):
    producer = Producer(tmp_path / "run")
    with pytest.raises(RunNotTrained, match="not trained: the stand-in"):
        produce(producer)
    assert producer.calls == 0 and not producer.run_dir.exists()


def test_the_gate_still_reuses_a_finished_run_but_refuses_to_force_it(tmp_path):
    producer = Producer(tmp_path / "run")
    produce(producer)
    allow_training(False)
    try:
        assert produce(producer) == producer.run_dir
        with pytest.raises(RunNotTrained):
            produce(producer, force=True)
    finally:
        allow_training(True)
    assert producer.calls == 1 and (producer.run_dir / "complete.json").is_file()


def test_the_gate_lets_through_a_run_that_needs_no_training(tmp_path, training_refused):
    producer = Producer(tmp_path / "run", finish=False)
    produce(producer, needs_training=lambda: False)  # e.g. the trainer asked for a stage already reached
    assert producer.calls == 1
    with pytest.raises(RunNotTrained):
        produce(producer, needs_training=lambda: True)


def test_the_gate_is_on_by_default_and_off_only_while_asked():
    assert training_allowed()
    allow_training(False)
    assert not training_allowed()
    allow_training(True)
    assert training_allowed()


def test_the_lock_is_held_while_the_producer_trains(tmp_path):
    producer = Producer(tmp_path / "run")

    def second_trainer_while_training() -> None:
        with pytest.raises(RunError, match="another trainer"):
            with RunLock(producer.run_dir):
                pass
        producer()

    produce_run(producer.run_dir, second_trainer_while_training, fingerprint=FINGERPRINT, refusal=str)
    with RunLock(producer.run_dir):  # released afterwards
        pass


def test_a_run_locked_by_another_trainer_is_refused_and_force_deletes_nothing(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    producer = Producer(tmp_path / "run", finish=False)
    produce(producer)
    with open(producer.run_dir / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another process training it holds it
        handle.write(f"pid {os.getpid()} (the test)\n")
        handle.flush()
        for force in (False, True):
            with pytest.raises(RunError, match="another trainer"):
                produce(producer, force=force)
    assert producer.calls == 1 and (producer.run_dir / "model.bin").is_file()


def test_a_refused_run_is_read_from_its_archived_record_only_where_the_notebook_allows_it(tmp_path, monkeypatch):
    """Record-only notebooks (06-08, 11, 13) read a run that is not on this machine from archive/;
    the others, and any forced run, keep the refusal that says how to train."""
    from m3mstl import paths

    archive = tmp_path / "archive"
    monkeypatch.setattr(paths, "ARCHIVE_DIR", archive)
    archived = archive / "baseline" / "abc123"
    archived.mkdir(parents=True)
    (archived / "config.json").write_text(json.dumps({"model": "baseline"}))
    (archived / "environment.json").write_text(json.dumps({"data_fingerprint": FINGERPRINT}))
    for name in ("metrics_test.json", "predictions_test.npz"):
        (archived / name).write_text("{}")
    (archived / "complete.json").write_text(json.dumps({"run_dir": "archive/baseline/abc123"}))
    producer = Producer(tmp_path / "runs" / "baseline" / "abc123")
    try:
        allow_training(False)
        with pytest.raises(RunNotTrained):
            produce(producer)
        allow_training(False, archived="when-refused")
        assert produce(producer) == archived and producer.calls == 0
        assert not producer.run_dir.exists()  # nothing written on this machine
        with pytest.raises(RunNotTrained):
            produce(producer, force=True)
        with pytest.raises(RunError, match="fingerprint"):
            produce(producer, fingerprint="0" * 16)
        allow_training(True, archived="when-refused")  # training allowed: the run is trained here, not read
        assert produce(producer) == producer.run_dir and producer.calls == 1
    finally:
        allow_training(True)


def test_archive_first_reads_an_archived_run_before_training_and_archives_what_it_trains(tmp_path, monkeypatch):
    """The extended profile's studies span sessions: an archived run is not trained again even where
    training is allowed, and a run trained there is archived when it finishes."""
    from m3mstl import paths

    archive = tmp_path / "archive"
    monkeypatch.setattr(paths, "ARCHIVE_DIR", archive)

    class Finished(Producer):
        def __call__(self) -> None:  # a finished run with the record the archive keeps
            super().__call__()
            for name in ("config.json", "metrics_test.json"):
                (self.run_dir / name).write_text(json.dumps({"model": "baseline"}))
            (self.run_dir / "predictions_test.npz").write_bytes(b"")
            (self.run_dir / "model.pt").write_bytes(b"weights")

    producer = Finished(tmp_path / "runs" / "baseline" / "new000")
    try:
        allow_training(True, archived="first")
        monkeypatch.setattr("m3mstl.runs.archive._archive_predictions",
                            lambda source, target, root: target.write_bytes(source.read_bytes()))
        assert produce(producer) == producer.run_dir and producer.calls == 1
        assert (archive / "baseline" / "new000" / "complete.json").is_file()
        again = Finished(tmp_path / "elsewhere" / "runs" / "baseline" / "new000")  # another machine, no runs/
        assert produce(again) == archive / "baseline" / "new000" and again.calls == 0
        assert produce(again, force=True) == again.run_dir and again.calls == 1  # FORCE retrains
        with pytest.raises(ValueError, match="archived must be one of"):
            allow_training(True, archived="sometimes")
    finally:
        allow_training(True)
