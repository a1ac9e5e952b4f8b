"""End to end in headless Chromium against `streamlit run`, with the local Freesound-compatible server."""

from __future__ import annotations

import json
import zipfile

import pytest

from tests.browser import (
    chromium,
    download_zip,
    fresh_dirs,
    need_chromium,
    screenshot,
    streamlit_server,
    wait_count,
    wait_for_app,
    wait_text_change,
)
from tests.freesound_server import FreesoundServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, model_path):
    need_chromium()
    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "tmp").mkdir()
    with FreesoundServer(api_key="e2e-key") as fs:
        env = {
            **fresh_dirs(tmp),
            "IMGEXT_YOLO_WEIGHTS": str(model_path),
            "IMGEXT_FREESOUND_URL": fs.base_url,
            "FREESOUND_API_KEY": "e2e-key",
            "YOLO_AUTOINSTALL": "false",
        }
        with streamlit_server(env) as (url, _proc):
            yield url, fs


def goto_page(page, label: str, title: str) -> None:
    page.get_by_role("link", name=label).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    wait_for_app(page)


def test_whole_flow_in_a_real_browser(app_url, bus_jpg, tmp_path):
    url, fs = app_url
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        wait_for_app(page)
        screenshot(page, "0-start")

        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(bus_jpg))
        page.get_by_text("objects", exact=False).first.wait_for(timeout=120_000)
        wait_for_app(page)
        page.get_by_role("heading", name="objects").first.wait_for(timeout=60_000)
        heading = page.get_by_role("heading", name="objects").first.inner_text()
        assert int(heading.split()[0]) >= 4
        page.locator("[data-testid='stImage'] img").first.wait_for(timeout=60_000)  # drawn after the heading on a busy machine
        screenshot(page, "1-image")

        goto_page(page, "2 · Sounds", "Sounds")
        assert page.get_by_text("Sounds come from", exact=False).count() >= 1
        page.get_by_role("button", name="Find sounds").click()
        wait_for_app(page)
        # composed: the bus, one crowd for the persons, and the street ambience
        assert wait_count(page, "[data-testid='stAudio']", 3) >= 3
        wait_for_app(page)
        assert fs.count("search") >= 1  # asked Freesound first; it has no bus or footsteps, so built-in sounds filled in
        assert page.get_by_text("built-in", exact=False).count() >= 1  # the fallback's synthetic sounds filled in
        screenshot(page, "2-sounds")

        goto_page(page, "3 · Mix", "Mix")
        page.locator("[data-testid='stPlotlyChart']").nth(1).wait_for(timeout=60_000)
        assert page.locator("[data-testid='stPlotlyChart']").count() >= 2  # the heatmaps, then the EQ/duck curves
        page.locator("iframe[src*='stems_player']").first.wait_for(timeout=60_000)  # the player (A/B, stems)
        before = page.locator("[data-testid='stMetric']").first.inner_text()
        screenshot(page, "3-mix")

        slider = page.get_by_role("slider").nth(1)  # EQ strength
        slider.focus()
        for _ in range(20):
            page.keyboard.press("ArrowLeft")
        after = wait_text_change(page, "[data-testid='stMetric']", before)
        wait_for_app(page)
        assert page.locator("[data-testid='stSliderThumbValue']").nth(1).inner_text().strip() in ("0", "0.00")
        assert after != before, "moving the EQ slider re-rendered the metrics"
        screenshot(page, "4-mix-after-slider")

        zpath = tmp_path / "bundle.zip"
        download_zip(page, zpath)
        with zipfile.ZipFile(zpath) as zf:
            names = set(zf.namelist())
            scene = json.loads(zf.read("scene.json"))
        assert {"mix.wav", "scene.json", "ATTRIBUTION.txt"} <= names
        assert any(n.startswith("sources/") for n in names)
        assert scene["settings"]["eq_strength"] == 0.0
        assert "e2e-key" not in json.dumps(scene)
        assert not errors, errors
        context.close()


def test_real_freesound_previews_in_the_browser(app_url, images_dir, tmp_path):
    url, fs = app_url
    fs.reset()
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.goto(url)
        wait_for_app(page)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(images_dir / "wilddog.jpg"))
        page.get_by_role("heading", name="objects").first.wait_for(timeout=120_000)
        wait_for_app(page)
        goto_page(page, "2 · Sounds", "Sounds")
        page.get_by_role("button", name="Find sounds").click()
        wait_count(page, "[data-testid='stAudio']", 3)
        wait_for_app(page)
        assert fs.count("preview") >= 2
        assert page.get_by_text(" by ", exact=False).count() >= 1
        screenshot(page, "5-sounds-freesound")
        goto_page(page, "3 · Mix", "Mix")
        page.locator("[data-testid='stPlotlyChart']").nth(1).wait_for(timeout=60_000)
        zpath = tmp_path / "dogs.zip"
        download_zip(page, zpath)
        with zipfile.ZipFile(zpath) as zf:
            credits = zf.read("ATTRIBUTION.txt").decode()
            scene = json.loads(zf.read("scene.json"))
        assert "freesound.org/people/" in credits and "License: CC" in credits
        assert any(o["sound"] and o["sound"]["source"] == "freesound" for o in scene["objects"])
        screenshot(page, "6-mix-freesound")
        context.close()
