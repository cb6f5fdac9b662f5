"""The published results are the reproduction's own output, unedited.

`reproduction.json` is committed with the `figures/` and `tables/` of the last complete
default-profile run; it records the SHA-256 of every output each notebook wrote. A table or
figure edited by hand afterwards, or left over from another run, fails here.
"""
from __future__ import annotations

import json

import pytest

from m3mstl import paths
from m3mstl.reproduce import notebooks_for_profile, sha256

# The committed manifest, always at the repository root (not paths.MANIFEST_PATH, which
# follows M3MSTL_OUTPUT_ROOT to wherever a scratch run writes).
MANIFEST = paths.REPO_ROOT / "reproduction.json"
# The published executed copies keep their notebook's metadata (profiles, promised outputs) as it was
# when the set was made: the published set is checked against itself, not against sources edited since
# (a change to the notebooks is published with the next complete reproduction, issue 28's plan).
PUBLISHED_COPIES = paths.REPO_ROOT / "executed"


@pytest.fixture(scope="module")
def manifest() -> dict:
    assert MANIFEST.is_file(), f"{MANIFEST}: the published reproduction's manifest is missing"
    return json.loads(MANIFEST.read_text())


def test_manifest_names_the_run_that_made_the_results(manifest):
    assert manifest["profile"] == "default"
    assert len(manifest["environment"]["git_commit"]) == 40
    names = [notebook["name"] for notebook in manifest["notebooks"]]
    # Every notebook of the default profile; the extended profile's studies have their own manifest.
    expected = [p.stem for p in notebooks_for_profile("default", PUBLISHED_COPIES)]
    assert names == expected, "the published run must cover every notebook of the default profile"


def test_every_published_output_is_exactly_what_the_run_wrote(manifest):
    outputs = {name: digest for notebook in manifest["notebooks"] for name, digest in notebook["outputs"].items()}
    assert outputs, "the manifest lists no outputs"
    mismatched = [name for name, digest in outputs.items()
                  if not (paths.REPO_ROOT / name).is_file() or sha256(paths.REPO_ROOT / name) != digest]
    assert not mismatched, f"published outputs missing or changed since the reproduction: {mismatched}"


# The extended profile's studies, published beside the default reproduction once they have run.
EXTENDED_MANIFEST = paths.REPO_ROOT / "reproduction-extended.json"


def _extended_manifest() -> dict | None:
    return json.loads(EXTENDED_MANIFEST.read_text()) if EXTENDED_MANIFEST.is_file() else None


def _manifests(manifest: dict) -> list[dict]:
    """The published manifests: the default one, and the extended one once published."""
    extended = _extended_manifest()
    return [manifest] + ([extended] if extended is not None else [])


def _executed_in_manifest(manifest: dict) -> dict[str, str]:
    return {name: digest for notebook in manifest["notebooks"]
            for name, digest in notebook.get("executed", {}).items()}


def test_extended_manifest_when_published_covers_its_notebooks_byte_for_byte():
    extended = _extended_manifest()
    if extended is None:
        pytest.skip("the extended studies have not been published yet")
    assert extended["profile"] == "extended"
    expected = [p.stem for p in notebooks_for_profile("extended", PUBLISHED_COPIES)]
    assert [notebook["name"] for notebook in extended["notebooks"]] == expected
    changed = [name for notebook in extended["notebooks"] for name, digest in notebook["outputs"].items()
               if not (paths.REPO_ROOT / name).is_file() or sha256(paths.REPO_ROOT / name) != digest]
    assert not changed, f"published extended outputs missing or changed: {changed}"


def test_no_stray_tables_or_figures_beside_the_published_ones(manifest):
    from m3mstl.reproduce import PUBLISHED_FOLDERS

    published = {name for m in _manifests(manifest) for notebook in m["notebooks"] for name in notebook["outputs"]}
    on_disk = {f"{folder}/{p.name}" for folder in PUBLISHED_FOLDERS
               for p in (paths.REPO_ROOT / folder).iterdir() if p.is_file()}
    # The generator's contact sheet is made by `m3mstl synth`, not by a notebook.
    stray = on_disk - published - {"figures/synth_contact_sheet.png"}
    assert not stray, f"tables/figures no notebook of the published run wrote: {sorted(stray)}"


def test_published_executed_notebooks_are_exactly_what_the_run_wrote(manifest):
    executed = {name: digest for m in _manifests(manifest) for name, digest in _executed_in_manifest(m).items()}
    mismatched = [name for name, digest in executed.items()
                  if not (paths.REPO_ROOT / name).is_file() or sha256(paths.REPO_ROOT / name) != digest]
    assert not mismatched, f"executed notebooks missing or changed since the reproduction: {mismatched}"
    folder = paths.REPO_ROOT / "executed"
    on_disk = {f"executed/{p.name}" for p in folder.iterdir()} if folder.is_dir() else set()
    stray = on_disk - set(executed)
    assert not stray, f"files in executed/ that the published run did not write: {sorted(stray)}"


def test_every_notebook_has_its_executed_copy_in_the_published_set(manifest):
    """Every notebook a published profile runs has its executed copy in that profile's manifest."""
    for published in _manifests(manifest):
        expected = {f"executed/{nb.name}" for nb in notebooks_for_profile(published["profile"], PUBLISHED_COPIES)}
        executed = set(_executed_in_manifest(published))
        assert executed == expected, f"{published['profile']}: missing executed copies: {sorted(expected - executed)}"


def test_published_executed_notebooks_show_their_figures_inline(manifest):
    """A reader of `executed/` sees every figure a notebook saves, inline, without running it."""
    import nbformat

    from m3mstl.reproduce import promised_outputs

    for published in _manifests(manifest):
        for notebook in notebooks_for_profile(published["profile"], PUBLISHED_COPIES):
            path = notebook
            book = nbformat.read(path, as_version=4)
            outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
            figures = [rel for rel in promised_outputs(notebook) if rel.endswith(".png")]
            inline = [o for o in outputs if "image/png" in o.get("data", {})]
            assert outputs, f"{path}: no outputs"
            assert len(inline) >= len(figures), f"{path}: {len(inline)} inline figures for {len(figures)} saved"


def test_every_run_a_published_table_names_is_in_its_manifest(manifest):
    """A table's "Runs: ..." line names `family/run-id`s (`runs.run_ref`); the manifest records each
    one's seed, commit, CPU and seconds. A bare id (notebook 14 once wrote them) was left out of it."""
    from m3mstl.reproduce import runs_named

    missing = [f"{rel}: {run}" for published in _manifests(manifest) for notebook in published["notebooks"]
               for rel in notebook["outputs"] if rel.endswith(".md")
               for run in runs_named(paths.REPO_ROOT / rel) if run not in notebook["runs"]]
    assert not missing, f"runs named by published tables but not recorded in their manifest: {missing}"


def test_the_published_set_was_made_by_this_code_or_says_which_code_made_it(manifest):
    """Right after a publication the sources and the published set agree notebook for notebook; once the
    code moves on (its fingerprint differs from the manifest's) the set is a record of the commit that
    made it, which the manifest names, until the next complete reproduction."""
    from m3mstl.runs import provenance

    for published in _manifests(manifest):
        recorded = published.get("code_fingerprint")
        assert len(published["environment"]["git_commit"]) == 40
        if recorded != provenance.code_fingerprint():
            continue  # a record of other code: checked against itself above
        sources = [p.stem for p in notebooks_for_profile(published["profile"], paths.NOTEBOOKS_DIR)]
        assert [nb["name"] for nb in published["notebooks"]] == sources, (
            f"{published['profile']}: published by this code, yet its notebooks differ from the sources")


def test_every_run_behind_a_published_table_is_archived(manifest):
    """A reproduction archives every run its tables name (`reproduce.archive_runs_behind`), so every
    published number recomputes from committed records (`m3mstl verify`); only the face detector, which
    keeps no test predictions, may be missing. Manifests made before that rule record no `in_archive`."""
    from m3mstl.runs.archive import archived_run_dir

    for published in _manifests(manifest):
        entries = {run: entry for nb in published["notebooks"] for run, entry in nb["runs"].items()}
        if not any("in_archive" in entry for entry in entries.values()):
            continue  # published before runs were archived with their tables
        missing = [run for run in entries if not run.startswith("detector/")
                   and archived_run_dir(*run.split("/", 1), paths.REPO_ROOT / "archive") is None]
        assert not missing, f"{published['profile']}: runs behind published tables not in archive/: {missing}"
