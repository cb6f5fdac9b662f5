"""Subject-level train/val/test splits: no person appears in two splits.

The procedure follows the TFD68 baseline: remove the subjects forced into test, shuffle the
rest with ``numpy.random.RandomState(seed)``, take round(f_train * n) for train and
round(f_val * n) for val, and give the remainder plus the forced subjects to test. The TFD68
baseline uses fractions (0.6, 0.2, 0.2), seed 42 and forces subjects 1, 5 and 137 into test.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

import numpy as np

from m3mstl.data.records import FaceDataset


def canonical_subject(subject: str | int) -> str:
    """Comparable form of a subject id: numeric ids lose leading zeros ("001" and 1 -> "1")."""
    text = str(subject).strip()
    return str(int(text)) if re.fullmatch(r"[+-]?\d+", text) else text


def _natural_key(subject: str) -> tuple:
    """Sort numeric ids by value ("2" before "10"), then everything else by text."""
    canonical = canonical_subject(subject)
    return (0, int(canonical), subject) if re.fullmatch(r"-?\d+", canonical) else (1, 0, subject)


def subject_split(
    subjects: Iterable[str | int],
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 42,
    force_test: Iterable[str | int] = (),
    *,
    keep_order: bool = False,
) -> dict[str, list[str]]:
    """Assign every distinct subject to exactly one of train / val / test.

    ``subjects`` may repeat (e.g. one entry per image). They are put in natural order before the
    seeded shuffle so the result does not depend on the input order; ``keep_order=True`` keeps the
    order of first appearance instead, which reproduces the TFD68 baseline's split when given the
    subjects in annotation-file order. ``force_test`` ids may be int or str ("001" matches 1); a
    forced id that names no subject is ignored with a warning. Each returned list is sorted.
    """
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    unique = list(dict.fromkeys(str(s) for s in subjects))
    if not keep_order:
        unique.sort(key=_natural_key)
    forced = {canonical_subject(s) for s in force_test}
    present = {canonical_subject(s) for s in unique}
    missing = sorted(forced - present)
    if missing:
        warnings.warn(f"subjects forced into test are not in the data and are ignored: {missing}", stacklevel=2)

    pool = [s for s in unique if canonical_subject(s) not in forced]
    order = np.random.RandomState(seed).permutation(len(pool))
    shuffled = [pool[i] for i in order]
    n_train = int(round(fractions[0] * len(pool)))
    n_val = int(round(fractions[1] * len(pool)))
    split = {
        "train": shuffled[:n_train],
        "val": shuffled[n_train:n_train + n_val],
        "test": shuffled[n_train + n_val:] + [s for s in unique if canonical_subject(s) in forced],
    }
    return {name: sorted(members, key=_natural_key) for name, members in split.items()}


def split_indices(dataset: FaceDataset, split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Record indices of each split (int64, ascending), matching subjects as `canonical_subject` does.

    Raises ValueError if a subject sits in two splits or a record's subject is in none.
    """
    owner: dict[str, str] = {}
    for name, members in split.items():
        for subject in members:
            key = canonical_subject(subject)
            if owner.setdefault(key, name) != name:
                raise ValueError(f"subject {subject!r} is in both {owner[key]!r} and {name!r}")
    indices: dict[str, list[int]] = {name: [] for name in split}
    unassigned = set()
    for index, record in enumerate(dataset.records):
        name = owner.get(canonical_subject(record.subject))
        if name is None:
            unassigned.add(record.subject)
        else:
            indices[name].append(index)
    if unassigned:
        raise ValueError(f"{dataset.root}: subjects {sorted(unassigned)} are in no split")
    return {name: np.asarray(members, dtype=np.int64) for name, members in indices.items()}


def run_split_indices(dataset: FaceDataset, data, data_dir) -> dict[str, np.ndarray]:
    """The record indices of each split a run trains and is scored on, from its `DataConfig`
    (`data`): the subject split, then the training cap (a cheaper run on part of the training
    split only). Every model family, the classical peer included, splits through here, so they
    all see the same images. DatasetError naming `data_dir` when a split comes out empty."""
    from m3mstl.data.errors import DatasetError

    subjects = subject_split(dataset.subjects, fractions=data.split_fractions, seed=data.split_seed,
                             force_test=data.force_test)
    splits = split_indices(dataset, subjects)
    if data.max_train_images is not None:
        splits["train"] = splits["train"][: data.max_train_images]
    for name, idx in splits.items():
        if len(idx) == 0:
            raise DatasetError(data_dir, f"the {name} split is empty: the dataset has too few subjects "
                                         f"({len(dataset.subjects)}) for fractions {data.split_fractions}")
    return splits
