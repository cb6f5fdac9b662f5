"""The two environment descriptions must name the same dependencies with the same pins."""
from __future__ import annotations

import re
import tomllib

import yaml

from m3mstl import paths

# conda-forge spells a few packages differently from PyPI.
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_A_DEPENDENCY = {"python", "pip", "-e ."}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, requirement
    name = match.group(1).lower().replace("_", "-")
    spec = match.group(2).replace(" ", "")
    if spec.startswith("=") and not spec.startswith("=="):  # conda's single '=' pin
        spec = "=" + spec
    return CONDA_TO_PYPI.get(name, name), spec


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((paths.REPO_ROOT / "environment.yml").read_text())
    items: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            items += dep.get("pip", [])
        else:
            items.append(dep)
    return dict(_split(i) for i in items if i.strip() not in NOT_A_DEPENDENCY and not i.startswith("python="))


def test_environment_yml_and_pyproject_name_the_same_dependencies():
    assert _environment_requirements() == _pyproject_requirements()


def test_torch_torchvision_timm_are_pinned_exactly():
    reqs = _pyproject_requirements()
    for name in ("torch", "torchvision", "timm"):
        assert reqs[name].startswith("=="), f"{name} must be pinned exactly, got {reqs[name]!r}"


def test_timm_imports_and_builds_a_one_channel_resnet50_offline():
    import timm
    import torch

    model = timm.create_model("resnet50", pretrained=False, in_chans=1, features_only=True)
    features = model(torch.zeros(1, 1, 64, 64))
    assert [f.shape[1] for f in features] == [64, 256, 512, 1024, 2048]
