"""Sphinx configuration of the companion site (`make site`).

The site is read, never run: Sphinx with myst-nb renders the committed executed notebooks
(`executed/*.ipynb`, with their outputs and inline figures), README.md and `docs/*.md` straight
from where they live. The source folder is the repository root (so every relative link and image
path resolves as it does in the repository) and this folder holds only the configuration:

    python -m sphinx -b html -c site -d build/site/doctrees . build/site/html

(myst-nb writes the notebooks' figures beside the output, to build/site/jupyter_execute, and
copies them into the site's _images/.)

Nothing is executed (`nb_execution_mode = "off"`), nothing is fetched (no intersphinx, no MathJax
from a CDN, no widget JavaScript), and no committed file is copied or edited: the navigation is
added to README.md as it is read (`source-read` below).
"""
from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

REPO = Path(__file__).resolve().parent.parent

project = "m3mstl"
author = "m3mstl contributors"
copyright = "m3mstl contributors (MIT licence)"
html_title = "m3mstl: the companion to M3MSTL"

extensions = ["myst_nb"]

# What the site reads: the landing page, the background documents and the executed notebooks.
# Everything else at the top level is excluded by name, which also stops Sphinx walking the
# (large) runs/, data/, build/ and .venv/ folders.
root_doc = "README"
SITE_SOURCES = {"README.md", "docs", "executed"}
include_patterns = ["README.md", "docs/*.md", "executed/*.ipynb"]
exclude_patterns = sorted(name for name in os.listdir(REPO) if name not in SITE_SOURCES)
exclude_patterns += ["**/.ipynb_checkpoints"]

# The navigation follows the paper: the notebooks in their numbered order (overview, data, the
# three training stages, baseline, evaluation, ablations, statistics, temperature, explorer,
# hourglass, scaling, hourglass ablations, camera frames), then the documents of docs/. Globs, so
# a new notebook or document appears without editing this file.
NAVIGATION = """

```{toctree}
:hidden:
:glob:
:caption: The notebooks, in the paper's order

executed/*
```

```{toctree}
:hidden:
:glob:
:caption: Background documents

docs/*
```
"""

# --- myst-nb: render the stored outputs, run nothing ---------------------------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no require.js / widget manager from a CDN (the outputs carry no widget state)
nb_merge_streams = True
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
# Notebooks start at "#" and jump to "###" for their subsections; that is a style, not an error.
suppress_warnings = ["myst.header"]

# --- HTML: a theme from a pip package, every asset served from the site itself ----------------------
html_theme = "furo"
html_copy_source = False  # no _sources/ copies of the notebooks (megabytes of base64 images)
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {"navigation_with_keys": True}
html_static_path = ["_static"]  # site/_static (relative to this folder)
html_css_files = ["site.css"]
# Sphinx adds MathJax from a CDN only to pages with math; none of these pages has any. Should a
# formula appear, the browser test (tests/test_site.py) fails on the blocked request instead of
# the site silently depending on the network.


def _add_navigation(app, docname, source):
    if docname == root_doc:
        source[0] += NAVIGATION


def _link_repository_paths(app, doctree):
    """README.md links to repository paths that are not pages of the site (`archive/README.md`,
    a benchmark record, the `executed/` folder). A folder holding site pages links to its first
    page; any other path that exists in the repository becomes plain code text (it is in the
    clone, not on the site). A path that exists nowhere keeps myst's warning: that is a real
    broken link."""
    env = app.env
    for node in list(doctree.findall(addnodes.pending_xref)):
        if node.get("reftype") != "myst":
            continue
        target = node["reftarget"]
        if node.get("refdomain") == "doc":
            if target in env.found_docs:
                continue
            relative = target
        elif node.get("refdomain") is None and "://" not in target and not target.startswith("#"):
            relative = target.split("#", 1)[0]
        else:
            continue
        base = Path(env.doc2path(node.get("refdoc", env.docname))).parent
        path = (base / relative).resolve()
        if not path.exists() and path.with_suffix(".md").exists():
            path = path.with_suffix(".md")
        if not path.exists() or REPO not in (path, *path.parents):
            continue
        text = node.astext() or relative
        if path.is_dir():
            inside = sorted(doc for doc in env.found_docs
                            if (Path(env.doc2path(doc)).resolve().parent == path))
            if inside:
                node["refdomain"], node["reftarget"], node["reftargetid"] = "doc", inside[0], None
                continue
        node.replace_self(nodes.literal(text, text))


def _redirect_index(app, exception):
    """`index.html` at the top of the site opens the landing page (README.md)."""
    if exception is None and app.builder.format == "html":
        target = app.builder.get_target_uri(root_doc)
        (Path(app.outdir) / "index.html").write_text(
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{project}</title>\n'
            f'<meta http-equiv="refresh" content="0; url={target}"></head>\n'
            f'<body><a href="{target}">{html_title}</a></body></html>\n')


def setup(app):
    app.connect("source-read", _add_navigation)
    app.connect("doctree-read", _link_repository_paths)
    app.connect("build-finished", _redirect_index)
