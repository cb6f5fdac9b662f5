"""Subject-level splits: disjoint, complete, deterministic, forced subjects in test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_tiny_dataset
from m3mstl.data.coco import read_dataset
from m3mstl.data.splits import canonical_subject, split_indices, subject_split

SUBJECTS = [f"{i:03d}" for i in range(1, 138)]  # TFD68 has 137 people


def test_split_is_a_partition_with_the_requested_sizes() -> None:
    split = subject_split(SUBJECTS, seed=42, force_test=(1, 5, 137))
    train, val, test = (set(split[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(SUBJECTS)
    # 134 shuffled subjects: round(0.6 * 134) = 80 train, round(0.2 * 134) = 27 val, the rest + 3 forced test.
    assert (len(train), len(val), len(test)) == (80, 27, 30)
    assert {"001", "005", "137"} <= test


def test_split_is_deterministic_and_independent_of_input_order() -> None:
    first = subject_split(SUBJECTS, seed=42)
    assert subject_split(list(reversed(SUBJECTS)) * 2, seed=42) == first
    assert subject_split(SUBJECTS, seed=43) != first


def test_keep_order_reproduces_the_baseline_procedure() -> None:
    # The baseline shuffles the subjects in order of appearance with RandomState(seed).shuffle.
    order = ["7", "3", "9", "1", "4", "8", "2", "6", "5", "10"]
    expected = [s for s in order if s != "5"]
    np.random.RandomState(42).shuffle(expected)
    split = subject_split(order, seed=42, force_test=["005"], keep_order=True)
    assert sorted(split["train"], key=int) == sorted(expected[:5], key=int)  # round(0.6 * 9) = 5
    assert sorted(split["val"], key=int) == sorted(expected[5:7], key=int)   # round(0.2 * 9) = 2
    assert "5" in split["test"] and len(split["test"]) == 3


def test_forced_ids_match_across_int_and_zero_padded_str() -> None:
    assert canonical_subject("001") == canonical_subject(1) == "1"
    assert canonical_subject("s01") == "s01"
    split = subject_split(["001", "002", "003", "004", "005"], force_test=[1, "5"])
    assert {"001", "005"} <= set(split["test"])
    with pytest.warns(UserWarning, match="ignored"):
        subject_split(["001", "002"], force_test=[137])


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        subject_split(SUBJECTS, fractions=(0.5, 0.2, 0.2))


def test_split_indices_cover_each_record_once(tmp_path: Path) -> None:
    dataset = read_dataset(make_tiny_dataset(tmp_path, n_subjects=5, images_per_subject=2))
    split = subject_split(dataset.subjects, fractions=(0.4, 0.2, 0.4), seed=0, force_test=[2])
    indices = split_indices(dataset, split)
    joined = np.sort(np.concatenate(list(indices.values())))
    np.testing.assert_array_equal(joined, np.arange(len(dataset)))
    for name, members in indices.items():
        assert {dataset.records[i].subject for i in members} == set(split[name])
    assert {dataset.records[i].subject for i in indices["test"]} >= {"002"}
    with pytest.raises(ValueError, match="in no split"):
        split_indices(dataset, {"train": ["001"], "val": [], "test": []})
    with pytest.raises(ValueError, match="in both"):
        split_indices(dataset, {"train": ["001", "002", "003", "004", "005"], "val": ["1"], "test": []})
