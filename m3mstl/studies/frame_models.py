"""`m3mstl frame-models`: train the recommended pipeline for whole camera frames in one command.

The recipe is `m3mstl.studies.camera_frames`' (README "From whole camera frames", notebook 14 measures
exactly it): a face detector trained on the frames, a coarse run (the baseline on crops around the
true visible head) that places each face, and a fine run (M3MSTL on the frames around the landmark
extent, with box jitter) that reads it from the extent of the coarse landmarks. This command trains
the three (or takes finished or archived runs of the same configs, as notebook 14 would) and prints
the `m3mstl predict` command that reads frames with them.

    m3mstl frame-models                          # the default profile's frames (generated on first use)
    m3mstl frame-models --data MY_FRAMES         # frames of your own, in the TFD68 layout with head boxes
    m3mstl frame-models --list                   # the commands it stands for, each run's state; trains nothing
"""
from __future__ import annotations

from pathlib import Path


def configure_parser(parser) -> None:
    from m3mstl.profiles import REPRODUCE_PROFILES

    parser.add_argument("--profile", default="default", choices=REPRODUCE_PROFILES)
    parser.add_argument("--data", type=Path, default=None,
                        help="whole frames (m3mstl synth --full-frame layout); default: the profile's embedded frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="print the commands this stands for (one run each) and train nothing")
    parser.add_argument("--device", default="auto")


def run_states(profile: str, frames_dir: Path, seed: int) -> list[str]:
    """"finished (runs/<family>/<id>)", "archived (archive/<family>/<id>)" or "missing" for the
    detector, the coarse and the fine run that `frame-models` trains for this profile, frames and seed."""
    from m3mstl import paths
    from m3mstl.runs import data_fingerprint, is_complete
    from m3mstl.studies import camera_frames
    from m3mstl.studies.run_lookup import run_state
    from m3mstl.train.detector import detector_run_id, settings_for

    def named(state: str, where: Path | None) -> str:
        return state if where is None else f"{state} ({where.parent.parent.name}/{where.parent.name}/{where.name})"

    fingerprint = data_fingerprint(frames_dir)
    detector_dir = paths.RUNS_DIR / "detector" / detector_run_id(settings_for(profile), seed, fingerprint)
    states = [named("finished", detector_dir) if is_complete(detector_dir) else "missing"]
    for family, overrides in (("baseline", camera_frames.FRAME_BOX_CANDIDATES[camera_frames.COARSE_TRAINING]),
                              (camera_frames.RECOMMENDED_FAMILY,
                               camera_frames.FINE_TRAININGS[camera_frames.RECOMMENDED_FINE])):
        states.append(named(*run_state(family, profile, seed, overrides, fingerprint)))
    return states


def run(args) -> int:
    """Train (or reuse) the detector, the coarse run and the fine run; print the predict command."""
    from m3mstl.errors import UsageError
    from m3mstl.runs.lifecycle import allow_training
    from m3mstl.studies import camera_frames
    from m3mstl.train.detector import train_face_detector

    if args.data is not None and not (Path(args.data) / "annotations.json").is_file():
        raise UsageError("--data", f"{args.data}: no annotations.json (frames in the TFD68 layout, e.g. from "
                                   "m3mstl synth --full-frame)")
    frames_dir = camera_frames.resolve_frames_dir(args.profile, args.data)
    if args.list:
        commands = camera_frames.recipe_commands(str(frames_dir), args.profile, args.seed)
        for command, state in zip(commands, run_states(args.profile, frames_dir, args.seed)):
            print(f"{command}    # {state}")
        print(commands[-1])
        return 0
    allow_training(True)
    detector = train_face_detector(args.profile, frames_dir, seed=args.seed, device=args.device)
    print(f"detector: {detector}", flush=True)
    coarse = camera_frames.train_coarse_run(args.profile, frames_dir, args.seed, device=args.device)
    print(f"coarse run ({camera_frames.COARSE_TRAINING}): {coarse}", flush=True)
    fine = camera_frames.train_fine_run(camera_frames.RECOMMENDED_FAMILY, args.profile, camera_frames.RECOMMENDED_FINE,
                                        args.seed, frames_dir=frames_dir, crops_dir=None, device=args.device)
    print(f"fine run ({camera_frames.RECOMMENDED_FAMILY}, {camera_frames.RECOMMENDED_FINE}): {fine}", flush=True)
    print(f"read frames with:\n  m3mstl predict {fine} FRAMES... --coarse {coarse} --detector {detector} --out faces.csv")
    return 0
