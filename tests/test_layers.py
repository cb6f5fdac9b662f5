"""The package's layers and the one direction of their imports.

A module may import from its own layer and the layers below it, never from a layer above,
and the modules form no import cycle. Imports inside functions count too: a lazy import
upward still ties the lower layer to the higher one. The layers are the subpackages, lowest
first (README, "Architecture"):

    core        m3mstl.core, plus the root's paths, errors and profiles (every per-profile settings
                table, plain data): no other project import
    detection   m3mstl.detection: face detectors behind one interface, the head-box mapping
    data        m3mstl.data: the TFD68 layout, records, splits, the torch dataset, synth/
    models      m3mstl.models: the families, their registry and losses (tensors only)
    config      m3mstl.config: run configurations from the families and the profiles
    runs        m3mstl.runs: the run record, archive, lifecycle
    infer       m3mstl.infer: predictions of a run on a split, an image, camera frames
    evaluation  m3mstl.evaluation: metrics, statistics, detector evaluation
    train       m3mstl.train: the curriculum trainer, the detector's training, the peer
    report      m3mstl.report: every table writer and figure, the widgets
    studies     m3mstl.studies: what the notebooks compare
    app         m3mstl.reproduce, m3mstl.cli (the notebooks sit above these)
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from m3mstl import paths

PACKAGE_DIR = paths.REPO_ROOT / "m3mstl"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("m3mstl", "m3mstl.paths", "m3mstl.errors", "m3mstl.profiles", "m3mstl.core")),
    ("detection", ("m3mstl.detection",)),
    ("data", ("m3mstl.data",)),
    ("models", ("m3mstl.models",)),
    ("config", ("m3mstl.config",)),
    ("runs", ("m3mstl.runs",)),
    ("infer", ("m3mstl.infer",)),
    ("evaluation", ("m3mstl.evaluation",)),
    ("train", ("m3mstl.train",)),
    ("report", ("m3mstl.report",)),
    ("studies", ("m3mstl.studies",)),
    ("app", ("m3mstl.reproduce", "m3mstl.readme", "m3mstl.verify", "m3mstl.cli")),
]


def layer_of(module: str) -> int:
    """Index of the layer of `module`: the longest declared prefix wins (data.explore over data)."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # "m3mstl" names the package's __init__ only, not everything under it.
            matches = module == prefix or (prefix != "m3mstl" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS in {__file__}")
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(paths.REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Package modules `path` imports anywhere in its body (`from m3mstl import x` names x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "m3mstl")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "m3mstl":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    return {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}


def test_every_module_is_in_a_layer_and_imports_only_downward():
    upward = []
    for module, imports in sorted(import_graph().items()):
        for target in sorted(imports):
            if target == "m3mstl":
                continue  # the package itself: its __init__ imports nothing eagerly
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            # `import m3mstl.a.b` also runs the packages' __init__; only module-to-module edges count.
            if target not in graph:
                continue
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack + [target])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_no_import_cycle_between_modules():
    graph = import_graph()
    # A package's __init__ re-exporting its own submodules is not a cycle between modules.
    edges = {m: {t for t in ts if not m.startswith(t + ".") and not t.startswith(m + ".")}
             for m, ts in graph.items()}
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges))}"


def test_the_layer_scan_sees_lazy_upward_imports(tmp_path):
    """The scan is not blind to imports inside functions (the kind that hid the old cycle)."""
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from m3mstl.infer.predict import predict_batch\n    return predict_batch\n")
    assert "m3mstl.infer.predict" in imported_modules(module, {"m3mstl.infer.predict"})
    assert layer_of("m3mstl.infer.predict") > layer_of("m3mstl.models.base")
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("m3mstl.not_declared")


# Each layer imported in a fresh interpreter in which the modules of every higher layer
# cannot be imported at all: proves the layer works without them, lazy paths aside.
_BLOCKING_IMPORT = """
import importlib, importlib.abc, sys
blocked = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            raise ImportError(f"{{name}} belongs to a higher layer")
        return None
sys.meta_path.insert(0, Block())
for module in {modules!r}:
    importlib.import_module(module)
"""


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS[:-1]])
def test_layer_imports_with_higher_layers_blocked(layer):
    index = [name for name, _ in LAYERS].index(layer)
    graph = import_graph()
    modules = sorted(m for m in graph if layer_of(m) == index and m != "m3mstl")
    blocked = sorted({p for _, prefixes in LAYERS[index + 1:] for p in prefixes})
    code = _BLOCKING_IMPORT.format(blocked=blocked, modules=modules)
    result = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_models_work_without_data_training_or_inference():
    """Build, train one step and predict with a registered model while everything above the
    model layer is blocked."""
    blocked = sorted({p for _, prefixes in LAYERS[1:] for p in prefixes} - {"m3mstl.models"})
    code = _BLOCKING_IMPORT.format(blocked=blocked, modules=["m3mstl.models"]) + """
import torch
from m3mstl.models import create_model
model = create_model("baseline", backbone="resnet18")
batch = {"image": torch.rand(2, 1, 64, 64), "temperature": torch.rand(2, 1, 64, 64) * 10 + 30,
         "landmarks": torch.rand(2, 68, 2), "occluded": torch.zeros(2, 68),
         "labelled": torch.ones(2, 68, dtype=torch.bool),
         "has_temperature": torch.ones(2, dtype=torch.bool)}
model.set_stage("joint")
loss, _ = model.validation_step(batch, "joint")
assert torch.isfinite(loss)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
