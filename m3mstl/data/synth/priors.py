"""Priors of the generator: the shipped defaults (priors.yaml) and user overrides.

`load_priors(path)` reads the defaults, lays a user YAML over them (only the keys given are
replaced; lists are replaced whole) and checks every value, so a typo in a key or a reversed
range is reported with the file and the key instead of silently changing nothing.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from m3mstl.errors import M3mstlError

DEFAULT_PRIORS_PATH = Path(__file__).with_name("priors.yaml")

# [a, b] pairs that are (mean, sd) or (median, scale) rather than (lo, hi) ranges.
_MEAN_SD_KEYS = {
    "thermal.inner_canthus_c", "thermal.forehead_deficit_c", "thermal.nose_deficit_c", "thermal.ear_deficit_c",
    "thermal.neck_deficit_c", "thermal.lips_deficit_c", "thermal.cheek_deficit_c", "thermal.asymmetry_c",
}
_MEAN_SD_PREFIXES = ("subject.en_en_mm.",)
# Pairs whose two entries are alternatives (a choice), not a range.
_CHOICE_KEYS = {"occluders.glasses.lens_emissivity", "occluders.sunglasses.lens_emissivity"}


class SynthConfigError(M3mstlError, ValueError):
    """A priors file (or a generator argument) is unusable; the message names the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(self.path, problem)


def _read_yaml(path: Path) -> dict[str, Any]:
    from m3mstl.core.fileio import regular_file_problem

    problem = regular_file_problem(path)
    if problem is not None:  # a named pipe is never opened: reading one would block
        raise SynthConfigError(path, "priors file not found" if problem == "not found" else f"priors file {problem}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SynthConfigError(path, f"not valid YAML: {_one_line(str(error))}") from None
    except UnicodeDecodeError as error:
        raise SynthConfigError(path, f"not UTF-8 text (byte {error.start}): not a priors YAML file") from None
    except RecursionError:
        raise SynthConfigError(path, "not a priors file: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SynthConfigError(path, f"top level must be a mapping of sections, found {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], override: dict[str, Any], path: Path, prefix: str = "") -> None:
    """Lay `override` over `base` in place; unknown keys are errors (they would do nothing)."""
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(map(str, base)))
            raise SynthConfigError(path, f"unknown key {dotted!r} (known at this level: {known})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise SynthConfigError(path, f"{dotted!r} must be a mapping, got {value!r}")
            _merge(base[key], value, path, dotted + ".")
        else:
            base[key] = value


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _check(default: Any, value: Any, dotted: str, path: Path) -> None:
    """Check one merged value against the type and meaning of its default."""
    if isinstance(default, dict):
        for key in default:
            _check(default[key], value[key], f"{dotted}.{key}" if dotted else key, path)
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SynthConfigError(path, f"{dotted!r} must be true or false, got {value!r}")
        return
    if _is_number(default):
        if not _is_number(value):
            raise SynthConfigError(path, f"{dotted!r} must be a number, got {value!r}")
        if not _is_finite(value):
            raise SynthConfigError(path, f"{dotted!r} must be a finite number, got {value!r}")
        if ("probability" in dotted or dotted.endswith("fraction")) and not 0.0 <= value <= 1.0:
            raise SynthConfigError(path, f"{dotted!r} is a probability and must lie in [0, 1], got {value}")
        if dotted.endswith(("_sd", "sd_c", "sd_deg", "_mm", "max_per_image", "bad_pixels_max")) and value < 0:
            raise SynthConfigError(path, f"{dotted!r} must not be negative, got {value}")
        return
    if isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise SynthConfigError(path, f"{dotted!r} must be a non-empty list, got {value!r}")
        if any(_is_number(v) and not _is_finite(v) for v in value) or any(
                isinstance(row, list) and any(_is_number(v) and not _is_finite(v) for v in row) for row in value):
            raise SynthConfigError(path, f"{dotted!r} must hold finite numbers, got {value!r}")
        if dotted == "camera.sensors":
            for row in value:
                if (not isinstance(row, list) or len(row) != 3 or not all(_is_number(v) for v in row)
                        or row[0] < 16 or row[1] < 16 or row[2] < 0):
                    raise SynthConfigError(path, f"camera.sensors entries must be [width, height, weight] with "
                                                 f"width, height >= 16 and weight >= 0, got {row!r}")
            if sum(row[2] for row in value) <= 0:
                raise SynthConfigError(path, "camera.sensors weights must not all be zero")
            return
        if not all(_is_number(v) for v in value):
            raise SynthConfigError(path, f"{dotted!r} must be a list of numbers, got {value!r}")
        if len(default) == 2 and len(value) != 2:
            raise SynthConfigError(path, f"{dotted!r} must have two numbers, got {value!r}")
        if len(value) == 2 and dotted not in _CHOICE_KEYS and len(default) == 2:
            a, b = value
            if dotted in _MEAN_SD_KEYS or dotted.startswith(_MEAN_SD_PREFIXES):
                if b < 0:
                    raise SynthConfigError(path, f"{dotted!r} is [mean, sd]; the sd must not be negative, got {b}")
            elif a > b:
                raise SynthConfigError(path, f"{dotted!r} is a [low, high] range but low > high: {value!r}")
            if ("probability" in dotted or dotted.endswith("fraction")) and not (0 <= a <= 1 and 0 <= b <= 1):
                raise SynthConfigError(path, f"{dotted!r} holds fractions and must lie in [0, 1], got {value!r}")
        return
    if isinstance(default, str) and not isinstance(value, str):
        raise SynthConfigError(path, f"{dotted!r} must be a string, got {value!r}")


def _check_weights(priors: dict[str, Any], path: Path) -> None:
    for dotted, weights in (("expression.probabilities", priors["expression"]["probabilities"]),
                            ("occluders.hand.placements", priors["occluders"]["hand"]["placements"])):
        if not all(_is_number(w) and _is_finite(w) for w in weights.values()):
            raise SynthConfigError(path, f"{dotted!r} weights must be finite numbers, got {weights!r}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise SynthConfigError(path, f"{dotted!r} weights must be >= 0 and not all zero, got {weights!r}")


def load_priors(path: str | Path | None = None) -> dict[str, Any]:
    """The default priors, with the YAML file at `path` (if any) laid over them and checked."""
    defaults = _read_yaml(DEFAULT_PRIORS_PATH)
    if path is None:
        return defaults
    path = Path(path)
    merged = copy.deepcopy(defaults)
    _merge(merged, _read_yaml(path), path)
    _check(defaults, merged, "", path)
    _check_weights(merged, path)
    check_physics(merged, path)
    return merged


def _numbers_under(tree: Any, dotted: str = "") -> list[tuple[str, list[float]]]:
    """(dotted key, its numbers) for every number or list of numbers in a nested mapping."""
    if isinstance(tree, dict):
        return [item for key, value in tree.items() for item in _numbers_under(value, f"{dotted}.{key}".lstrip("."))]
    if _is_number(tree):
        return [(dotted, [tree])]
    if isinstance(tree, list) and tree and all(_is_number(v) for v in tree):
        return [(dotted, list(tree))]
    return []


def check_physics(priors: dict[str, Any], path: Path) -> None:
    """Values that pass the type checks but describe impossible data: the generator would write
    a dataset its own validator rejects (or that no camera could record)."""
    for dotted, numbers in _numbers_under(priors):
        if not all(_is_finite(v) for v in numbers):
            raise SynthConfigError(path, f"{dotted!r} must hold finite numbers, got {numbers}")
        if dotted.rsplit(".", 1)[-1].endswith("emissivity") and not all(0 < v <= 1 for v in numbers):
            raise SynthConfigError(path, f"{dotted!r}: an emissivity lies in (0, 1], got {numbers}")
    margin = priors["crop"]["margin"]
    if min(margin) <= 1:
        # crop side / landmark-box side: at 1 or below the crop cuts landmarks off the image.
        raise SynthConfigError(path, f"'crop.margin' is the crop side over the landmark-box side and must "
                                     f"exceed 1, got {margin}")
