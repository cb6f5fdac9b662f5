"""The occlusion explorer in a real browser: JupyterLab from this environment, headless Chromium
(Debian's `chromium`, driven by Playwright; nothing is downloaded at run time), notebook 10 on
the quick profile run from the menu, then used as a reader would: toggle an occluder, drag the
threshold slider, switch the palette. The page must redraw the face and update the counts, and
the browser console must stay free of errors. Screenshots go to build/browser/.

Reads the session's quick reproduction (its finished runs), so it costs one JupyterLab start.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cli_probes import CHROMIUM_FLAGS, chromium_executable

from m3mstl import paths

pytestmark = [pytest.mark.notebooks, pytest.mark.browser]

SCREENSHOTS = paths.REPO_ROOT / "build" / "browser"
SUMMARY = ".m3-summary"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare_notebook(lab_dir: Path) -> str:
    """Notebook 10 with the quick profile injected (papermill, not executed): what a reader would edit."""
    import papermill

    source = paths.NOTEBOOKS_DIR / "10_occlusion_explorer.ipynb"
    papermill.execute_notebook(str(source), str(lab_dir / source.name), prepare_only=True, progress_bar=False,
                               parameters=dict(PROFILE="quick", DEVICE="cpu", INTERACTIVE=True, TRAIN=False))
    return source.name


@pytest.fixture
def jupyterlab(quick_reproduction, tmp_path):
    """JupyterLab on a loopback port with a token, its settings and runtime files in tmp_path."""
    lab_dir, config_dir = tmp_path / "lab", tmp_path / "jupyter-config"
    lab_dir.mkdir()
    # No "news" announcement poll: it would fetch from the internet and raise a notification.
    (config_dir / "labconfig").mkdir(parents=True)
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    notebook = _prepare_notebook(lab_dir)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(quick_reproduction), "JUPYTER_CONFIG_DIR": str(config_dir),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab_dir}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--ServerApp.allow_root=True"],  # CI containers run as root
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "jupyterlab.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
            time.sleep(0.5)
        yield f"{base}/lab/tree/{notebook}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _accept_kernel_dialog(page, timeout_s: float = 60) -> None:
    """JupyterLab may ask which kernel to start; take its proposal (the environment's python3)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.first.click()
            return
        if page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            page.wait_for_timeout(2000)  # a late dialog still gets its chance
            if not page.locator(".jp-Dialog .jp-mod-accept").count():
                return
        page.wait_for_timeout(500)


def _view(page) -> tuple[str, str]:
    """The explorer's summary line and the data of the figure it currently shows."""
    summary = page.locator(SUMMARY).inner_text()
    image = page.locator(".widget-output img").last.get_attribute("src") or ""
    return summary, image


def _count(summary: str, label: str) -> int:
    return int(summary.split(label, 1)[1].split("/", 1)[0].strip(": "))


def _kernel_idle(page) -> bool:
    return page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0


def _wait_for_change(page, before: tuple[str, str], timeout_s: float = 120) -> tuple[str, str]:
    """Wait until the summary and the figure differ from `before`, the kernel is idle and the
    figure has stopped changing (a dragged slider sends several values; each one redraws)."""
    deadline = time.monotonic() + timeout_s
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = _view(page)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif (now[0] != before[0] and now[1] and now[1] != before[1] and _kernel_idle(page)
              and time.monotonic() - stable_since > 1.5):
            return now
        page.wait_for_timeout(250)
    raise AssertionError(f"the explorer did not redraw within {timeout_s} s; showing {last[0]!r}")


def _colourful_share(data_uri: str) -> float:
    """Share of the figure's pixels that are clearly not grey (the face is grey in the gray palette)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1]))).convert("RGB"), float)
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 40).mean())


def test_explorer_renders_and_responds_in_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = chromium_executable()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: console_errors.append(f"page error: {err}"))
            page.goto(jupyterlab)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            _accept_kernel_dialog(page)

            # Run -> Run All Cells, as a reader would.
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            # JupyterLab skips drawing cells outside the viewport: wait for the widget to exist, then
            # scroll to it as a reader would.
            page.wait_for_selector(SUMMARY, state="attached", timeout=240_000)
            page.locator(SUMMARY).scroll_into_view_if_needed()
            page.wait_for_selector(".widget-output img", timeout=120_000)
            page.locator(".widget-output img").last.scroll_into_view_if_needed()
            page.locator(SUMMARY).scroll_into_view_if_needed()
            first = _view(page)
            page.screenshot(path=str(SCREENSHOTS / "explorer_1_opened.png"))
            assert "occluders: none" in first[0] and "palette gray" in first[0], first[0]

            # Toggle an occluder: sunglasses hide the eyes, so more landmarks are occluded in truth.
            page.locator("button.widget-toggle-button", has_text="sunglasses").click()
            toggled = _wait_for_change(page, first)
            page.screenshot(path=str(SCREENSHOTS / "explorer_2_sunglasses.png"))
            assert "occluders: sunglasses" in toggled[0], toggled[0]
            assert _count(toggled[0], "occluded in truth") > _count(first[0], "occluded in truth"), toggled[0]

            # Drag the threshold slider to its left end: every landmark is then called occluded.
            slider = page.locator(".widget-slider", has=page.locator("label", has_text="threshold")).first
            handle = slider.locator(".noUi-handle").first
            track = slider.locator(".noUi-target").first.bounding_box()
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(track["x"] - 20, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            lowered = _wait_for_change(page, toggled)
            page.screenshot(path=str(SCREENSHOTS / "explorer_3_threshold_0.png"))
            assert "at threshold 0.00" in lowered[0], lowered[0]
            assert _count(lowered[0], "calls occluded") == 68
            assert _count(lowered[0], "calls occluded") != _count(toggled[0], "calls occluded")

            # Switch the palette.
            palette = page.locator(".widget-dropdown", has=page.locator("label", has_text="palette")).first
            palette.locator("select").select_option("inferno")
            recoloured = _wait_for_change(page, lowered)
            page.screenshot(path=str(SCREENSHOTS / "explorer_4_inferno.png"))
            assert "palette inferno" in recoloured[0], recoloured[0]
            # The face itself is recoloured (grey before; the colour bar and the bars are coloured in both).
            assert _colourful_share(recoloured[1]) > _colourful_share(lowered[1]) + 0.05
            assert _count(recoloured[0], "calls occluded") == 68  # same view, other colours
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "explorer_failure.png"), full_page=True)
            raise
        finally:
            context.close()
    assert not console_errors, f"browser console errors: {console_errors}"
