"""Which code trained a run: a fingerprint of the source that shapes its numbers.

A run id hashes the configuration and the data, not the code, so a run folder left by older code
is reused without retraining (the archive of published runs depends on that). Reused silently, it
could carry numbers the current code would not give (issue 29: a run trained on 2026-12-02 said
ROC-AUC 0.959 where the same run id trained later said 0.958). So every producer records
`code_fingerprint()` in its run's environment.json; `m3mstl reproduce` names the reused runs whose
fingerprint differs from the current one, marks them in the manifest, and with
`--retrain-other-code` retrains exactly those.

What counts: the Python source of the packages that build, train, predict with and score a model
(`CODE_SHAPING_NUMBERS`), read as syntax trees without docstrings, so that comments and prose do not
make a run "other code". The synthetic-data generator is not in it: its output is covered by the
data fingerprint, which is in the run id itself.
"""
from __future__ import annotations

import ast
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from m3mstl import paths

#: Package paths (relative to the repository root) whose code shapes a run's numbers.
CODE_SHAPING_NUMBERS: tuple[str, ...] = (
    "m3mstl/config.py", "m3mstl/profiles.py", "m3mstl/core", "m3mstl/data", "m3mstl/detection",
    "m3mstl/models", "m3mstl/train", "m3mstl/infer", "m3mstl/evaluation/metrics.py",
    "m3mstl/evaluation/evaluate.py",
)
#: Left out of CODE_SHAPING_NUMBERS: the generator (its output is the data, fingerprinted on its own).
NOT_SHAPING_NUMBERS: tuple[str, ...] = ("m3mstl/data/synth",)

#: The environment variable `m3mstl reproduce --retrain-other-code` sets for its notebook kernels.
RETRAIN_OTHER_CODE_ENV = "M3MSTL_RETRAIN_OTHER_CODE"


def shaping_files(root: Path | None = None) -> list[Path]:
    """The source files `code_fingerprint` reads, sorted by their path relative to the root."""
    root = Path(root or paths.REPO_ROOT)
    files: set[Path] = set()
    for rel in CODE_SHAPING_NUMBERS:
        target = root / rel
        files.update([target] if target.is_file() else target.rglob("*.py"))
    excluded = [root / rel for rel in NOT_SHAPING_NUMBERS]
    kept = [f for f in files if not any(f.is_relative_to(e) for e in excluded)]
    return sorted(kept, key=lambda f: f.relative_to(root).as_posix())


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(path: Path) -> str:
    """SHA-256 of a module's syntax tree without docstrings (comments are not in the tree)."""
    tree = _without_docstrings(ast.parse(Path(path).read_bytes(), filename=str(path)))
    return hashlib.sha256(ast.dump(tree, annotate_fields=True).encode()).hexdigest()


@lru_cache(maxsize=4)
def code_fingerprint(root: Path | None = None) -> str:
    """16 hex digits over every file of `shaping_files` (its path and `source_digest`)."""
    root = Path(root or paths.REPO_ROOT)
    digest = hashlib.sha256()
    for path in shaping_files(root):
        digest.update(f"{path.relative_to(root).as_posix()}:{source_digest(path)}\n".encode())
    return digest.hexdigest()[:16]


def recorded_code(run_dir: Path) -> str | None:
    """The code fingerprint a run recorded (None: trained before runs recorded one)."""
    import json

    try:
        return json.loads((Path(run_dir) / "environment.json").read_text()).get("code_fingerprint")
    except (OSError, ValueError):
        return None


def trained_by_other_code(run_dir: Path) -> bool:
    """Whether the run's recorded code differs from the current code (a run with no record counts as other)."""
    return recorded_code(run_dir) != code_fingerprint()


def retrain_other_code() -> bool:
    """Whether finished runs trained by other code are retrained (`m3mstl reproduce --retrain-other-code`)."""
    return os.environ.get(RETRAIN_OTHER_CODE_ENV, "") == "1"
