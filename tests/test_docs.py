"""The facts the code cites live in the repository, and citations point there by a
repository-relative path (a clone carries what it relies on)."""
from __future__ import annotations

import re

import pytest

from m3mstl import paths

CITING_SOURCES = ["m3mstl/**/*.py", "m3mstl/**/*.yaml", "notebooks/*.ipynb", "benchmarks/*.py", "README.md"]


def _sources():
    for pattern in CITING_SOURCES:
        yield from sorted(paths.REPO_ROOT.glob(pattern))


# A path that names one machine: the repository's own absolute location, or any other
# user or scratch folder.
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:work|home|Users|tmp|mnt)/[\w.-]+/[\w./-]+")
# The fact documents of docs/, cited by any path (a bare name or another folder is the fault).
DOC_CITATION = re.compile(r"((?:[\w.-]+/)*(?:paper|thermal_physics|architecture)\.md)"
                          r"(?:\s*(?:§|section )(\d+(?:\.\d+)?))?")


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(paths.REPO_ROOT)))
def test_no_citation_by_a_machines_absolute_path(path):
    text = path.read_text()
    found = ABSOLUTE_PATH.findall(text)
    assert not found, f"{path.name} cites absolute paths {found}: cite a file of the repository by relative path"


def test_every_cited_document_exists_and_cited_sections_exist():
    problems = []
    for path in _sources():
        for document, section in DOC_CITATION.findall(path.read_text()):
            if not document.startswith("docs/"):
                problems.append(f"{path.relative_to(paths.REPO_ROOT)} cites {document}: cite docs/<name>.md")
                continue
            target = paths.REPO_ROOT / document
            if not target.is_file():
                problems.append(f"{path.relative_to(paths.REPO_ROOT)} cites {document}, not a repository file")
            elif section and not re.search(rf"^#+ {re.escape(section)}[. ]", target.read_text(), re.MULTILINE):
                problems.append(f"{path.relative_to(paths.REPO_ROOT)} cites {document} §{section}: no such section")
    assert not problems, "\n".join(problems)


def test_spec_section_citations_in_the_generator_resolve():
    """SynthTFD68's modules cite the physics facts as "spec N.N": each such section exists."""
    physics = (paths.REPO_ROOT / "docs" / "thermal_physics.md").read_text()
    sections = set(re.findall(r"^#+ (\d+(?:\.\d+)?)[. ]", physics, re.MULTILINE))
    synth = paths.REPO_ROOT / "m3mstl" / "data" / "synth"
    cited = set()
    for path in synth.glob("*.py"):
        cited |= set(re.findall(r"spec (\d\.\d)", path.read_text()))
    assert cited, "no section citations found: has the citation style changed?"
    assert cited <= sections, f"cited sections missing from docs/thermal_physics.md: {sorted(cited - sections)}"


def test_a_fresh_clone_has_the_data_folder_with_its_readme_and_ignores_only_datasets():
    import subprocess

    readme = paths.REPO_ROOT / "data" / "README.md"
    assert readme.is_file() and "TFD68" in readme.read_text()

    def ignored(rel: str) -> bool:
        result = subprocess.run(["git", "check-ignore", "-q", rel], cwd=paths.REPO_ROOT)
        return result.returncode == 0

    assert not ignored("data/README.md")
    assert ignored("data/synth-default/annotations.json") and ignored("data/TFD68/thermal/x.png")
