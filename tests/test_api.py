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
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.synth.generate import generate_dataset
    from m3mstl.data.validate import validate_dataset
    from m3mstl.runs.result import load_run
    from m3mstl.models import create_model, list_models
    from m3mstl.infer.predict import predict_image
    from m3mstl.runs import load_config, load_model, read_history
    from m3mstl.train.detector import train_face_detector
    from m3mstl.train.peer import train_peer
    from m3mstl.train.trainer import train

    assert m3mstl.train_model is train and m3mstl.load_run is load_run and m3mstl.load_model is load_model
    assert m3mstl.predict_image is predict_image and m3mstl.create_model is create_model
    assert m3mstl.generate_dataset is generate_dataset and m3mstl.make_config is make_config
    assert m3mstl.list_models is list_models
    assert m3mstl.read_dataset is read_dataset and m3mstl.validate_dataset is validate_dataset
    assert m3mstl.train_peer is train_peer and m3mstl.train_face_detector is train_face_detector
    assert m3mstl.load_config is load_config and m3mstl.read_history is read_history
    for name in m3mstl.__all__:  # every advertised name resolves through the lazy loader
        assert getattr(m3mstl, name) is not None, name
        if name != "__version__":  # and the module docstring lists it
            assert f"{name}(" in m3mstl.__doc__, f"{name} is not in m3mstl's docstring"


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'trian_model'"):
        m3mstl.trian_model  # noqa: B018
    from m3mstl import paths  # submodules are not shadowed by the lazy names
    from m3mstl.studies import comparison

    assert paths.REPO_ROOT.is_dir() and hasattr(comparison, "load_run")


# What a notebook may import: the public API, the studies, the report (tables, figures, widgets)
# and the statistics of the paired tests. Everything else is reached through those.
NOTEBOOK_MODULES = ("m3mstl.studies.", "m3mstl.report.", "m3mstl.evaluation.stats")


def _notebook_imports():
    """(notebook, module, name or None, attributes used on it) for every m3mstl import of every
    notebook's code cells."""
    import ast
    import json

    from m3mstl import paths

    for path in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        tree = ast.parse("\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
        used: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                used.setdefault(node.value.id, set()).add(node.attr)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "m3mstl":
                        yield path.name, alias.name, None, used.get(alias.asname or alias.name, set())
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "m3mstl":
                for alias in node.names:
                    yield path.name, node.module, alias.name, used.get(alias.asname or alias.name, set())


def test_notebooks_import_only_the_public_api_the_studies_and_the_report():
    import importlib

    found = list(_notebook_imports())
    assert found, "no notebook imports m3mstl"
    for notebook, module, name, attributes in found:
        full = module if name is None else f"{module}.{name}"
        if module == "m3mstl":
            allowed = name in m3mstl.__all__ or name in ("report", "studies")
        else:
            allowed = (f"{full}.".startswith(NOTEBOOK_MODULES) or f"{module}.".startswith(NOTEBOOK_MODULES)
                       or full in ("m3mstl.evaluation.stats",))
        assert allowed, f"{notebook} imports {full}: use the public API (m3mstl.__all__), m3mstl.studies or m3mstl.report"
        # The import resolves, and so does every attribute the notebook uses on it.
        try:
            value = importlib.import_module(full)
        except ModuleNotFoundError:
            value = getattr(importlib.import_module(module), name)
        missing = sorted(a for a in attributes if not hasattr(value, a))
        assert not missing, f"{notebook}: {full} has no {missing}"


def test_load_run_names_the_folder_and_what_is_missing(tmp_path):
    import pytest

    from m3mstl.errors import RunError

    missing = tmp_path / "runs" / "m3mstl" / "abc123"
    with pytest.raises(RunError, match="run folder not found") as caught:
        m3mstl.load_run(missing)
    assert caught.value.path == missing
    missing.mkdir(parents=True)
    (missing / "metrics_test.json").write_text("{}")  # an unfinished run: evaluated, not yet complete
    with pytest.raises(RunError, match=r"not finished: complete.json is missing \(and per_image_test.csv, "
                                       r"predictions_test.npz\)") as caught:
        m3mstl.load_run(missing)
    assert caught.value.path == missing and str(missing) in str(caught.value)
    (missing / "complete.json").write_text("{}")
    with pytest.raises(RunError, match="'val' split: metrics_val.json, per_image_val.csv, predictions_val.npz"):
        m3mstl.load_run(missing, split="val")
