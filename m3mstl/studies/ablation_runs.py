"""`m3mstl ablations`: train a profile's ablation runs one by one, archiving each as it finishes.

Notebooks 07 (M3MSTL) and 13 (the hourglass) build their tables from these runs. In the extended
profile each ablation run costs as much as a main-comparison run (issue 28), so all of them take
longer than one session of the project's 2-core machine; this command trains them in the order that
gives every row its first seeds before any row its last, takes a finished or archived run as it is,
and archives each new run the moment it finishes (`m3mstl.runs.archive`), so an interrupted session
loses at most the run in progress, which resumes from its last epoch. The notebooks then read
the runs from runs/ or the archive, exactly as they would have trained them (the same run ids).

    m3mstl ablations --list                      # every run, and whether it is finished or archived
    m3mstl ablations                             # train what is missing (M3MSTL rows, extended profile)
    m3mstl ablations --family hourglass          # the hourglass rows of notebook 13
"""
from __future__ import annotations

from typing import Any

from m3mstl.studies import comparison

FAMILIES = ("m3mstl", "hourglass")
#: The notebook whose table each family's ablation runs serve; its metadata names the profiles it runs in.
ABLATION_NOTEBOOKS = {"m3mstl": "07_ablations.ipynb", "hourglass": "13_hourglass_ablations.ipynb"}


def ablation_profiles(family: str) -> tuple[str, ...]:
    """The profiles whose reproduction runs `family`'s ablation notebook (only their runs serve a table)."""
    from m3mstl import paths
    from m3mstl.report.notebook_metadata import notebook_profiles

    return tuple(notebook_profiles(paths.NOTEBOOKS_DIR / ABLATION_NOTEBOOKS[family]))


def planned_runs(profile: str, family: str, first_seed: int = 0) -> list[tuple[str, int, dict[str, Any]]]:
    """(row, seed, overrides) of every ablation run `profile` trains for `family`, seed-major: each
    row's first seed before any row's second, so a study cut short has every row at fewer seeds
    rather than some rows at all seeds and others at none."""
    variants = (comparison.ablation_variants(profile) if family == "m3mstl"
                else comparison.hourglass_ablation_variants(profile))
    seeds = comparison.profile_seeds(profile, first_seed, "ablation")
    return [(name, seed, comparison.ablation_overrides(profile, family, variant))
            for seed in seeds for name, variant in variants.items()]


def configure_parser(parser) -> None:
    from m3mstl.profiles import REPRODUCE_PROFILES

    parser.add_argument("--profile", default="extended", choices=REPRODUCE_PROFILES)
    parser.add_argument("--family", default="m3mstl", choices=FAMILIES,
                        help="whose ablation rows: M3MSTL's (notebook 07) or the hourglass's (notebook 13)")
    parser.add_argument("--list", action="store_true", help="list the runs and which are finished or archived")
    parser.add_argument("--seed", type=int, default=0, help="first training seed (the profile's ablation seeds follow it)")
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    """Print one line per run: its row, seed and folder (or, with --list, its state)."""
    from m3mstl import train_model
    from m3mstl.data.embedded import ensure_synthetic_data
    from m3mstl.data.fingerprint import data_fingerprint
    from m3mstl.runs.lifecycle import allow_training
    from m3mstl.errors import UsageError
    from m3mstl.studies.run_lookup import run_state

    served = ablation_profiles(args.family)
    if args.profile not in served:  # before any data is generated or any run is trained
        raise UsageError("--profile", f"notebook {ABLATION_NOTEBOOKS[args.family]} does not run in the "
                                      f"{args.profile!r} profile, so its ablation runs would serve no table; "
                                      f"profiles that run it: {', '.join(served)}")
    data_dir = ensure_synthetic_data(args.profile)
    plan = planned_runs(args.profile, args.family, args.seed)
    if args.list:
        fingerprint = data_fingerprint(data_dir)
        for name, seed, overrides in plan:
            state, where = run_state(args.family, args.profile, seed, overrides, fingerprint)
            print(f"{name} seed {seed}: {state}" + (f" ({where})" if where is not None else ""))
        return 0
    allow_training(True, archived="first")  # finished or archived runs are taken; new ones archived at once
    for name, seed, overrides in plan:
        run_dir = train_model(args.family, args.profile, data_dir, seed=seed, device=args.device, overrides=overrides)
        print(f"{name} seed {seed}: {run_dir}", flush=True)
    return 0
