"""SynthTFD68 is the same bytes on every machine (issue 29).

Two machines of one type gave two fingerprints of the default data, so a fresh clone retrained every
published run. One cause is reproducible on any x86 machine: OpenBLAS picks its kernels by CPU, and
`OPENBLAS_CORETYPE` makes it pick others, which changed the last bits of rendered landmarks while the
generator's geometry went through `@` and `np.linalg` (now `m3mstl.core.vec3`). NumPy's CPU dispatch
(`NPY_DISABLE_CPU_FEATURES`) swaps the vectorised exp/sin/cos for others in the same way. These tests
render and generate under such settings, in fresh interpreters, and compare everything down to the raw
float64 arrays before any rounding.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

# Renders faces of the default spec (all occluder kinds appear among them) and prints a digest of
# every array the renderer returns, unrounded.
RENDER_DIGESTS = """
import hashlib, json, sys
import numpy as np
from m3mstl.data.synth.generate import spec_for
from m3mstl.data.synth.priors import load_priors
from m3mstl.data.synth.renderer import render

priors, out = load_priors(), {}
for k in range(int(sys.argv[1])):
    spec = spec_for(7, (k * 7) % 100, (k * 13) % 40, 100, priors)
    face = render(spec, 96)
    arrays = {"image": face.image_u8, "temperature": face.temperature_c, "scene": face.scene_c,
              "landmarks": face.landmarks, "landmarks_3d": face.landmarks_3d, "mask": face.occluder_mask,
              "skin": face.skin_temperature_c, "kinds": np.array([o.kind for o in spec.occluders])}
    out[spec.image_id] = {name: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
                          for name, a in arrays.items() if a is not None}
print(json.dumps(out, sort_keys=True))
"""

X86 = platform.machine().lower() in ("x86_64", "amd64")


def _clean_env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENBLAS", "NPY_", "OMP_", "MKL_"))}
    env.update(changes)
    return env


def _render_digests(n_faces: int, env: dict[str, str], cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", RENDER_DIGESTS, str(n_faces)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


SETTINGS = {
    "one BLAS and OpenMP thread": dict(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1"),
    "another locale and time zone": dict(LC_ALL="C", TZ="Pacific/Auckland", PYTHONHASHSEED="123"),
}
if X86:
    SETTINGS.update({
        # OpenBLAS's oldest and an AVX kernel instead of the one this CPU selects.
        "OpenBLAS Prescott kernels": dict(OPENBLAS_CORETYPE="Prescott"),
        "OpenBLAS Sandybridge kernels": dict(OPENBLAS_CORETYPE="Sandybridge"),
        # NumPy without its AVX2/AVX-512 loops (the X86_V3 and X86_V4 feature groups).
        "NumPy without AVX2": dict(NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR"),
    })


@pytest.fixture(scope="module")
def reference_digests(tmp_path_factory) -> dict:
    return _render_digests(24, _clean_env(), tmp_path_factory.mktemp("render"))


@pytest.mark.parametrize("name", list(SETTINGS))
def test_rendering_is_bit_identical_under_other_cpu_settings(name, reference_digests, tmp_path):
    digests = _render_digests(24, _clean_env(**SETTINGS[name]), tmp_path)
    differing = {face: [k for k in digests[face] if digests[face][k] != reference_digests[face][k]]
                 for face in reference_digests if digests[face] != reference_digests[face]}
    assert not differing, f"{name}: arrays differ in {len(differing)} of {len(reference_digests)} faces: {differing}"


def _synth(out: Path, env: dict[str, str], workers: int) -> None:
    command = [sys.executable, "-m", "m3mstl.cli", "synth", str(out), "--quiet", "--subjects", "6",
               "--per-subject", "5", "--size", "64", "--seed", "3", "--workers", str(workers)]
    done = subprocess.run(command, env=env, cwd=out.parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]


def test_generated_dataset_has_one_fingerprint_whatever_the_workers_path_and_environment(tmp_path):
    from m3mstl.data.fingerprint import data_fingerprint

    first = tmp_path / "a" / "synth"
    second = tmp_path / "a different folder" / "deeper" / "synth"
    for folder in (first, second):
        folder.parent.mkdir(parents=True)
    _synth(first, _clean_env(), workers=1)
    other = dict(OPENBLAS_NUM_THREADS="1", LC_ALL="C", TZ="Asia/Kolkata")
    if X86:
        other.update(OPENBLAS_CORETYPE="Prescott", NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR")
    _synth(second, _clean_env(**other), workers=2)
    assert data_fingerprint(first) == data_fingerprint(second)
    assert (first / "annotations.json").read_bytes() == (second / "annotations.json").read_bytes()


def test_written_temperatures_are_whole_centikelvin(tmp_path):
    """The generator records 10 mK counts, so the .npy and .png encodings hold the same values."""
    import numpy as np

    from m3mstl.data import coco
    from m3mstl.data.synth.generate import spec_for
    from m3mstl.data.synth.priors import load_priors
    from m3mstl.data.synth.renderer import render

    face = render(spec_for(7, 3, 2, 100, load_priors()), 64)
    counts = 100.0 * (face.temperature_c.astype(np.float64) + coco.KELVIN_OFFSET)
    assert np.abs(counts - np.rint(counts)).max() < 1e-3
    np.testing.assert_array_equal(coco.decode_centikelvin(coco.encode_centikelvin(face.temperature_c)),
                                  face.temperature_c)


def test_vec3_matches_numpy_to_rounding():
    import numpy as np

    from m3mstl.core import vec3

    rng = np.random.default_rng(0)
    a, b, v, rows = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=(50, 3))
    np.testing.assert_allclose(vec3.matmul(a, b), a @ b, rtol=1e-12)
    np.testing.assert_allclose(vec3.matvec(a, v), a @ v, rtol=1e-12)
    np.testing.assert_allclose(vec3.transform(a, rows), rows @ a.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vec3.dot(rows, v), rows @ v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vec3.norm(rows), np.linalg.norm(rows, axis=1), rtol=1e-12)
    np.testing.assert_allclose(vec3.inverse(a), np.linalg.inv(a), rtol=1e-10)
    np.testing.assert_allclose(vec3.norm(vec3.normalised(rows)), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="singular"):
        vec3.inverse(np.ones((3, 3)))
