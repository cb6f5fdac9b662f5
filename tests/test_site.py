"""The companion site (`make site`) built and read in a real browser.

The site is built as the Makefile builds it (Sphinx with myst-nb, configuration in site/, nothing
executed) into a scratch folder, with HTTP proxies pointing at a closed port so that any download
during the build would fail it. Warnings fail the build here (a real broken link, a page that
does not parse). Then headless Chromium (Debian's `chromium`, driven by Playwright as in
tests/test_browser.py; nothing is downloaded) opens every page from a loopback server, with every
request outside that server blocked: each notebook page must show all the figures its executed
notebook holds (img elements that loaded: naturalWidth > 0) and its tables, the console must
stay free of errors, and the navigation must follow the paper. Screenshots go to
build/site-screenshots/.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cli_probes import CHROMIUM_FLAGS, chromium_executable

from m3mstl import paths

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = paths.REPO_ROOT / "build" / "site-screenshots"
NOTEBOOKS = sorted((paths.REPO_ROOT / "executed").glob("*.ipynb"))
DOCS = sorted((paths.REPO_ROOT / "docs").glob("*.md"))


def _stored_outputs(notebook: Path) -> tuple[int, int]:
    """How many figures (image outputs) and HTML tables the executed notebook holds."""
    images = tables = 0
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            images += any(kind.startswith("image/") for kind in data)
            tables += "".join(data.get("text/html", "")).count("<table")
    return images, tables


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built by the Makefile's command (plus -W: warnings are errors) with no network."""
    root = tmp_path_factory.mktemp("site")
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens, so a download fails at once
    env = {**os.environ, "http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead,
           "no_proxy": "", "NO_PROXY": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-c", "site",
         "-d", str(root / "doctrees"), ".", str(root / "html")],
        cwd=paths.REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return root / "html"


@pytest.fixture(scope="module")
def server(site):
    """The built site over HTTP on a loopback port (as a reader's static host would serve it)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    """One headless Chromium for the module; requests leaving the loopback server are blocked and
    recorded (a page of the site must need nothing from the network)."""
    from playwright.sync_api import sync_playwright

    chromium = chromium_executable()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900})
        blocked: list[str] = []

        def _route(route):
            if route.request.url.startswith(server + "/"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", _route)
        try:
            yield context, blocked
        finally:
            context.close()


def _open(browser, url: str):
    """Open `url` in a fresh tab; returns the page and the list its console errors go to."""
    context, blocked = browser
    blocked.clear()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(f"page error: {err}"))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: {response.status if response else 'no response'}"
    return page, errors


def _figures(page) -> list[dict]:
    """Every img of the page's article, scrolled into view (as a reader would) and then measured."""
    images = page.locator("article img")
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('article img')].every(i => i.complete)",
                           timeout=30_000)
    return page.eval_on_selector_all(
        "article img", "els => els.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth}))")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_page_shows_its_figures_and_tables(browser, server, notebook):
    page, errors = _open(browser, f"{server}/executed/{notebook.stem}.html")
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{notebook.stem}.png"))
        heading = page.locator("article h1").first.inner_text()
        assert heading.startswith(notebook.stem[:2]), f"{notebook.name}: page title {heading!r}"
        images, tables = _stored_outputs(notebook)
        figures = _figures(page)
        broken = [f["src"] for f in figures if f["width"] == 0]
        assert not broken, f"{notebook.name}: figures that did not load: {broken}"
        assert len(figures) >= images, f"{notebook.name}: {len(figures)} figures on the page, {images} stored"
        assert page.locator("article table").count() >= tables, f"{notebook.name}: tables missing"
        if figures:  # the first figure on screen, as a reader sees it
            page.locator("article img").first.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOTS / f"{notebook.stem}_figure.png"))
    finally:
        page.close()
    assert not browser[1], f"{notebook.name} asked the network for {browser[1]}"
    assert not errors, f"{notebook.name}: browser console errors: {errors}"


def test_landing_page_is_the_readme_with_its_figure_and_a_navigation_in_the_papers_order(browser, server):
    page, errors = _open(browser, f"{server}/")  # index.html opens the README's page
    try:
        page.wait_for_url("**/README.html")
        page.screenshot(path=str(SCREENSHOTS / "README.png"))
        assert page.locator("article h1").first.inner_text().strip().startswith("m3mstl")
        figures = _figures(page)
        assert figures and all(f["width"] > 0 for f in figures), figures
        navigation = page.eval_on_selector_all(".sidebar-tree a.reference",
                                               "els => els.map(a => a.getAttribute('href'))")
        expected = [f"executed/{n.stem}.html" for n in NOTEBOOKS] + [f"docs/{d.stem}.html" for d in DOCS]
        assert [href for href in navigation if href in expected] == expected, navigation
    finally:
        page.close()
    assert not browser[1], f"the landing page asked the network for {browser[1]}"
    assert not errors, f"landing page: browser console errors: {errors}"


@pytest.mark.parametrize("document", DOCS, ids=lambda p: p.stem)
def test_document_page_loads(browser, server, document):
    page, errors = _open(browser, f"{server}/docs/{document.stem}.html")
    try:
        page.screenshot(path=str(SCREENSHOTS / f"docs_{document.stem}.png"))
        assert page.locator("article h1").count() == 1
        assert all(f["width"] > 0 for f in _figures(page))
    finally:
        page.close()
    assert not browser[1], f"{document.name} asked the network for {browser[1]}"
    assert not errors, f"{document.name}: browser console errors: {errors}"
