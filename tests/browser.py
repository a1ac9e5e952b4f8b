"""Helpers for end-to-end tests: a real `streamlit run` server and headless Chromium (Debian's, via playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("IMGEXT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("IMGEXT_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "imgext-test-artifacts")
"""Server logs, screenshots and failed downloads of the end-to-end tests: outside the repository."""
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def need_chromium() -> None:
    """Skip locally when Chromium is missing; in CI (CI=true) a missing browser is a failure."""
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} not found: install it with `apt-get install -y chromium`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(env: dict, *, timeout_s: float = 120.0, args: tuple[str, ...] = ()):
    """`streamlit run app.py` on a free port (``args``: more Streamlit options); yields its base URL; stops it afterwards."""
    port = free_port()
    log_path = ARTIFACTS / f"streamlit-{port}.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *args,
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early; see {log_path}:\n{log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not become healthy in {timeout_s} s; see {log_path}")
            time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for_app(page, timeout_ms: int = 120_000) -> None:
    """Wait until Streamlit is connected and the script has finished running."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => { const a = document.querySelector(\"[data-testid='stApp']\");"
        " return a && a.getAttribute('data-test-connection-state') === 'CONNECTED'"
        " && a.getAttribute('data-test-script-state') === 'notRunning'; }",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(300)


def screenshot(page, name: str) -> Path:
    out = ARTIFACTS / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fresh_dirs(tmp_path: Path) -> dict:
    return {
        "IMGEXT_CACHE_DIR": str(tmp_path / "cache"),
        "IMGEXT_DATA_DIR": str(tmp_path / "data"),
        "YOLO_CONFIG_DIR": str(tmp_path / "yolo"),
        "TMPDIR": str(tmp_path / "tmp"),
    }


def clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def wait_count(page, selector: str, at_least: int, timeout_ms: int = 120_000) -> int:
    """Wait until at least ``at_least`` elements match ``selector`` (Streamlit renders in steps)."""
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[selector, at_least], timeout=timeout_ms
    )
    return page.locator(selector).count()


def wait_text_change(page, selector: str, old: str, timeout_ms: int = 60_000) -> str:
    """Wait until the first element matching ``selector`` shows something other than ``old``."""
    page.wait_for_function(
        "([sel, old]) => { const e = document.querySelector(sel); return e && e.innerText !== old; }",
        arg=[selector, old], timeout=timeout_ms,
    )
    return page.locator(selector).first.inner_text()


def download_zip(page, path: Path, timeout_ms: int = 120_000) -> bytes:
    """On the Mix page: "Prepare ZIP", wait for it to be packed, download it to ``path``; its bytes."""
    page.get_by_role("button", name="Prepare ZIP").click()
    button = page.get_by_role("button", name="Download ZIP")
    button.wait_for(timeout=timeout_ms)
    wait_for_app(page, timeout_ms)
    with page.expect_download(timeout=timeout_ms) as info:
        button.click()
    info.value.save_as(path)
    return path.read_bytes()
