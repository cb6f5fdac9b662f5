"""The embedded default dataset of each profile, in one place: SynthTFD68's settings, its
folder, generating it on first use, and choosing between it and a user's own data.

Generated under `data/synth-<profile>/` (`paths.default_synth_dir`); a `.generated.json` marker
holds the settings, so an identical dataset is reused and a changed setting regenerates it.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from m3mstl import paths
from m3mstl.core.fileio import write_json_atomic
# Each profile's SynthTFD68 settings and which profiles share another's data: `m3mstl.profiles`.
from m3mstl.profiles import PROFILE_BASE, SCENE_SETTINGS, SYNTH_SETTINGS, base_profile  # noqa: F401  (re-exported)


def ensure_synthetic_data(profile: str, *, workers: int = 2) -> Path:
    """Generate the profile's embedded SynthTFD68 unless an identical one exists; return its folder."""
    profile = base_profile(profile)  # extended shares the default's data
    return _generate_once(paths.default_synth_dir(profile), SYNTH_SETTINGS[profile],
                          f"SynthTFD68 for profile {profile!r}", workers)


def _generate_once(out_dir: Path, settings: dict, label: str, workers: int) -> Path:
    """Generate SynthTFD68 with `settings` into out_dir unless its `.generated.json` marker holds the
    same settings and generator version (then it is reused: a checkout whose generator changed gets
    the new data, not the old); the marker is written last, so an interrupted run regenerates."""
    from m3mstl.data.synth.generate import generate_dataset
    from m3mstl.data.synth.renderer import GENERATOR_VERSION

    settings = {**settings, "generator_version": GENERATOR_VERSION}
    return _unless_generated(out_dir, settings, label, lambda: generate_dataset(
        out_dir, subjects=settings["subjects"], per_subject=settings["per_subject"], size=settings["size"],
        seed=settings["seed"], workers=workers, progress=True, full_frame=settings.get("full_frame", False)))


def _unless_generated(out_dir: Path, settings: dict, label: str, generate) -> Path:
    """Call `generate()` unless out_dir's `.generated.json` marker holds `settings`; the marker is
    written last, so an interrupted generation runs again. Progress goes to stderr, so commands that
    list things on stdout keep stdout to their listing."""
    marker = out_dir / ".generated.json"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return out_dir
    print(f"generating {label} in {out_dir} ({settings})", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    generate()
    write_json_atomic(marker, settings)
    print(f"  done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out_dir


def frames_dir(profile: str) -> Path:
    """Where the whole-frame twin of a profile's embedded data is generated (`ensure_synthetic_frames`)."""
    return paths.DATA_DIR / f"synth-{base_profile(profile)}-frames"


def ensure_synthetic_frames(profile: str, *, workers: int = 2) -> Path:
    """The profile's embedded SynthTFD68 rendered as whole sensor frames (`m3mstl synth --full-frame`):
    the same subjects, faces and split, uncut, each with its landmark box and its head box. The
    data a face detector and a model trained on head boxes (`data.face_box = "head"`) need.
    Generated unless an identical one exists; returns its folder."""
    settings = {**SYNTH_SETTINGS[base_profile(profile)], "full_frame": True}
    return _generate_once(frames_dir(profile), settings, f"SynthTFD68 full frames for profile {profile!r}", workers)


def scenes_dir(profile: str) -> Path:
    """Where a profile's scene set is generated (`ensure_synthetic_scenes`)."""
    return paths.DATA_DIR / f"synth-{base_profile(profile)}-scenes"


def ensure_synthetic_scenes(profile: str, *, workers: int = 2) -> Path:
    """The profile's whole camera scenes (`m3mstl synth --scenes`, `m3mstl.profiles.SCENE_SETTINGS`),
    generated unless an identical set exists (its `.generated.json` marker holds the settings and the
    generator version, written last); returns its folder."""
    from m3mstl.data.synth.renderer import GENERATOR_VERSION
    from m3mstl.data.synth.scenes import generate_scenes

    out_dir = scenes_dir(profile)
    settings = {**SCENE_SETTINGS[base_profile(profile)], "generator_version": GENERATOR_VERSION}
    return _unless_generated(out_dir, settings, f"whole camera scenes for profile {profile!r}", lambda: generate_scenes(
        out_dir, count=settings["scenes"], seed=settings["seed"], workers=workers))


def resolve_data_dir(profile: str, data_dir: str | Path | None) -> Path:
    """The dataset a notebook works on: the given folder, or the profile's embedded
    SynthTFD68 (generated on first use)."""
    if data_dir:
        path = Path(data_dir)
        if not (path / "annotations.json").is_file():
            raise FileNotFoundError(f"{path}: no annotations.json - not a TFD68-layout dataset")
        return path
    return ensure_synthetic_data(profile)
