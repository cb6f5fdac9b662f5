"""The README's results are written from the published tables (issue 31): they cannot drift from them.

Every number in the results sections sits in a generated block (`m3mstl.readme`); these
tests render the blocks from the committed tables and manifests and compare, show that a changed
table makes the comparison fail, and check that the prose around the blocks types no result number.
"""
from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from m3mstl import paths
from m3mstl import readme

README = paths.REPO_ROOT / "README.md"
RESULTS_SECTIONS = ("## Published results", "## Speed and the training budget")


def results_text() -> str:
    text = README.read_text(encoding="utf-8")
    start, end = (text.index(heading) for heading in RESULTS_SECTIONS)
    return text[start:end]


def test_every_generated_block_has_a_renderer_and_the_readme_names_them_all():
    names = readme.block_names(README.read_text(encoding="utf-8"))
    assert sorted(names) == sorted(readme.RENDERERS), "a renderer without its README block, or the reverse"
    assert len(names) == len(set(names))


def test_the_readme_says_what_the_published_tables_say():
    text = README.read_text(encoding="utf-8")
    rendered = readme.render(text, paths.REPO_ROOT)
    if rendered != text:
        changed = [name for name, old, new in zip(readme.block_names(text), readme.BLOCK.finditer(text),
                                                   readme.BLOCK.finditer(rendered)) if old["body"] != new["body"]]
        pytest.fail(f"README blocks {changed} differ from their tables; rewrite them with "
                    "`python -c 'from m3mstl.readme import update_readme; update_readme()'` (or publish "
                    "a reproduction) and commit README.md")


def _published_copy(tmp_path):
    """The published tables and manifests in a scratch root, to change one of them."""
    shutil.copytree(paths.REPO_ROOT / "tables", tmp_path / "tables")
    for manifest in ("reproduction.json", "reproduction-extended.json"):
        shutil.copy(paths.REPO_ROOT / manifest, tmp_path / manifest)
    return tmp_path


def test_a_changed_table_changes_the_readme(tmp_path):
    root = _published_copy(tmp_path)
    table = root / "tables" / "08_seed_aware_ci.csv"
    frame = pd.read_csv(table)
    frame.loc[frame["metric"] == "roc_auc", ["estimate", "low", "high"]] = [0.0400, 0.0300, 0.0500]
    frame.to_csv(table, index=False)
    text = README.read_text(encoding="utf-8")
    rendered = readme.render(text, root)
    assert rendered != text
    answer = next(m["body"] for m in readme.BLOCK.finditer(rendered) if m["name"] == "default-answer")
    assert "+0.040 [+0.030, +0.050]" in answer and "M3MSTL is ahead (higher ROC-AUC)" in answer


def test_a_missing_table_is_an_error_naming_it(tmp_path):
    root = _published_copy(tmp_path)
    (root / "tables" / "07_ablation_differences.csv").unlink()
    with pytest.raises(readme.ReadmeError, match="07_ablation_differences.csv"):
        readme.render(README.read_text(encoding="utf-8"), root)


def test_an_unknown_block_is_an_error():
    with pytest.raises(readme.ReadmeError, match="no renderer"):
        readme.render("<!-- generated: nothing-here -->\nold\n<!-- end generated: nothing-here -->\n")


def test_update_readme_rewrites_only_the_blocks(tmp_path):
    target = tmp_path / "README.md"
    target.write_text("intro 1.5 stays\n<!-- generated: default-run -->\nstale\n<!-- end generated: default-run -->\nend\n")
    assert readme.update_readme(target, paths.REPO_ROOT)
    text = target.read_text()
    assert text.startswith("intro 1.5 stays\n") and text.endswith("<!-- end generated: default-run -->\nend\n")
    assert "stale" not in text and "reproduction.json" in text
    assert not readme.update_readme(target, paths.REPO_ROOT)  # already current: unchanged


# What may carry a digit outside the blocks: names of things, not results.
_NOT_RESULTS = [r"`[^`]*`", r"\]\([^)]*\)", r"notebooks? \d+(-\d+)?", r"issue \d+", r"\(36-45\)", r"95 %",
                r"ResNet-\d+", r"(Synth)?TFD68", r"M3MSTL", r"executed/\d+-\d+", r"[Ss]tages? \d", r"stage-\d",
                r"SHA-256", r"seed \d+"]


def test_no_result_number_is_typed_outside_the_generated_blocks():
    prose = readme.BLOCK.sub("", results_text())
    for pattern in _NOT_RESULTS:
        prose = re.sub(pattern, "", prose)
    typed = sorted({line.strip() for line in prose.splitlines() if re.search(r"\d", line)})
    assert not typed, "numbers typed by hand in the README's results sections:\n" + "\n".join(typed)


def test_rendering_reads_the_given_root_wherever_outputs_are_published(tmp_path, monkeypatch):
    """A publish root outside the repository (M3MSTL_PUBLISH_ROOT) does not change where a render reads."""
    root = _published_copy(tmp_path / "copy")
    monkeypatch.setattr(paths, "TABLES_DIR", tmp_path / "elsewhere" / "tables")
    text = README.read_text(encoding="utf-8")
    assert readme.render(text, root) == readme.render(text, paths.REPO_ROOT)
