"""SynthTFD68: a physically grounded generator of thermal faces with 68 landmarks and occlusion labels.

    spec = sample_spec(np.random.default_rng(0), load_priors(), "000", 0)
    face = render(spec, 128)           # image, temperature map, landmarks, visibility, ...
    face2 = render(dataclasses.replace(spec, occluders=()), 128)   # the same face, bare

`m3mstl synth OUT --subjects N --per-subject M --size S --seed K` writes a dataset in the TFD68
layout (`generate.py`). Physics and numbers: docs/thermal_physics.md, cited per module.
"""
from m3mstl.data.synth.priors import SynthConfigError, load_priors
from m3mstl.data.synth.renderer import RenderedFace, render
from m3mstl.data.synth.spec import (
    FaceSpec,
    Identity,
    Pose,
    default_occluder,
    mirror_spec,
    sample_identity,
    sample_spec,
    with_occluders,
)

__all__ = [
    "FaceSpec", "Identity", "Pose", "RenderedFace", "SynthConfigError", "default_occluder", "load_priors",
    "mirror_spec", "render", "sample_identity", "sample_spec", "with_occluders",
]
