"""In headless Chromium: an attacker's sound names and links render as plain text (no <img>, no foreign <a>)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser import chromium, fresh_dirs, need_chromium, screenshot, streamlit_server, wait_for_app
from tests.hostile import HostileServer, hostile_previews

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FOREIGN = ("tracker.example", "phish.example", "evil.example")


def test_attackers_names_render_as_text_in_a_real_browser(tmp_path, model_path, images_dir):
    need_chromium()
    (tmp_path / "tmp").mkdir()
    with HostileServer(api_key="e2e-key") as fs:
        fs.poison(hostile_previews([Path("/etc/passwd")]))
        env = {**fresh_dirs(tmp_path), "IMGEXT_YOLO_WEIGHTS": str(model_path), "IMGEXT_FREESOUND_URL": fs.base_url,
               "FREESOUND_API_KEY": "e2e-key", "YOLO_AUTOINSTALL": "false"}
        with streamlit_server(env) as (url, _proc), chromium() as browser:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            wait_for_app(page)
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(images_dir / "wilddog.jpg"))
            page.get_by_role("heading", name="objects").first.wait_for(timeout=120_000)
            wait_for_app(page)
            page.get_by_role("link", name="2 · Sounds").first.click()
            page.get_by_role("heading", name="Sounds", exact=True).first.wait_for(timeout=60_000)
            wait_for_app(page)
            page.get_by_role("button", name="Find sounds").click()
            page.locator("[data-testid='stExpander']").first.wait_for(timeout=120_000)
            wait_for_app(page)
            for exp in page.locator("[data-testid='stExpander'] summary").all():
                exp.click()  # open every candidate list: the attacker's names are inside
            wait_for_app(page)
            screenshot(page, "hostile-sounds")
            body = page.locator("[data-testid='stMain']").inner_text()
            imgs = page.eval_on_selector_all("[data-testid='stMain'] img", "els => els.map(e => e.src)")
            links = page.eval_on_selector_all("[data-testid='stMain'] a", "els => els.map(e => e.href)")
            audio = page.eval_on_selector_all("audio", "els => els.map(e => e.src)")
    assert "Claim your prize" in body, "the attacker's name is shown, as text"
    assert "[Claim your prize]" in body and "![]" in body, "its Markdown shows literally"
    assert imgs == [], f"no image from a sound's name: {imgs}"
    foreign = [h for h in links if urlsplit(h).hostname not in ("127.0.0.1", "localhost", None)
               and urlsplit(h).hostname not in ("freesound.org", "www.freesound.org")]
    assert foreign == [], f"no link off the app or the sound source: {foreign}"
    assert not any(host in r for r in requests for host in FOREIGN), "the browser fetched an attacker's URL"
    assert all(urlsplit(a).scheme in ("http", "https", "blob") and "passwd" not in a for a in audio), audio
    assert "root:x:0:0" not in body
