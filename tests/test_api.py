"""The small public API of `m3mstl`: lazily imported, each name the function it promises."""
from __future__ import annotations

import subprocess
import sys

import m3mstl


def test_importing_the_package_loads_no_heavy_library():
    code = ("import sys, m3mstl; heavy = [m for m in ('torch', 'timm', 'pandas', 'matplotlib') if m in sys.modules];"
            "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == ""


def test_each_api_name_is_the_documented_function():
    from m3mstl.config import make_config
    from m3mstl.data.synth.generate import generate_dataset
    from m3mstl.runs.result import load_run
    from m3mstl.models import create_model, list_models
    from m3mstl.infer.predict import predict_image
    from m3mstl.runs import load_model
    from m3mstl.train.trainer import train

    assert m3mstl.train_model is train and m3mstl.load_run is load_run and m3mstl.load_model is load_model
    assert m3mstl.predict_image is predict_image and m3mstl.create_model is create_model
    assert m3mstl.generate_dataset is generate_dataset and m3mstl.make_config is make_config
    assert m3mstl.list_models is list_models
    for name in m3mstl.__all__:  # every advertised name resolves through the lazy loader
        assert getattr(m3mstl, name) is not None, name


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'trian_model'"):
        m3mstl.trian_model  # noqa: B018
    from m3mstl import paths  # submodules are not shadowed by the lazy names
    from m3mstl.studies import comparison

    assert paths.REPO_ROOT.is_dir() and hasattr(comparison, "load_run")
