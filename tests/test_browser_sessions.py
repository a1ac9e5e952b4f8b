"""A visitor who leaves gives the server back their work: the session is closed once its reconnect window passes.

Streamlit keeps a disconnected session for ``server.disconnectedSessionTTL`` seconds so a browser that lost its
connection finds its work again; left to itself it forgets the session only when a later one disconnects, and
then without shutting it down, so the photo and audio it served stayed in the media store and its arrays in
memory (16 visitors who had left held 3.7 GB). Here the window is 2 s: the photo the page showed is served
while the visitor is there and within the window, and gone (404) once it has passed, with no other session
connecting or leaving to trigger it; a session still connected keeps its media.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.browser import chromium, fresh_dirs, need_chromium, streamlit_server, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TTL_S = 2


def _photo_url(page, base: str) -> str:
    page.locator("[data-testid='stImage'] img").first.wait_for(timeout=120_000)
    wait_for_app(page)
    src = page.locator("[data-testid='stImage'] img").first.get_attribute("src")
    assert src and "/media/" in src, src
    return src if src.startswith("http") else base + src


def _upload(browser, url: str, photo) -> tuple:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.goto(url)
    wait_for_app(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(photo))
    return context, page


def test_a_session_whose_browser_left_is_closed_after_its_window(tmp_path, model_path, bus_jpg, zidane_jpg):
    need_chromium()
    (tmp_path / "tmp").mkdir()
    env = {**fresh_dirs(tmp_path), "IMGEXT_YOLO_WEIGHTS": str(model_path), "IMGEXT_FREESOUND_URL": "http://127.0.0.1:9",
           "YOLO_AUTOINSTALL": "false", "YOLO_OFFLINE": "true"}
    with streamlit_server(env, args=("--server.disconnectedSessionTTL", str(TTL_S))) as (url, _proc):
        with chromium() as browser:
            staying, staying_page = _upload(browser, url, zidane_jpg)
            stays = _photo_url(staying_page, url)
            leaving, leaving_page = _upload(browser, url, bus_jpg)
            leaves = _photo_url(leaving_page, url)
            assert stays != leaves
            assert requests.get(leaves, timeout=10).status_code == 200
            leaving.close()  # the visitor closes the tab
            assert requests.get(leaves, timeout=10).status_code == 200  # within the reconnect window: kept
            deadline = time.monotonic() + TTL_S + 30  # the window, then the sweep (every TTL/2 s here)
            status = 200
            while time.monotonic() < deadline:
                status = requests.get(leaves, timeout=10).status_code
                if status == 404:
                    break
                time.sleep(0.5)
            assert status == 404, "the session that left still serves its photo after its reconnect window"
            # the visitor still here keeps everything, and their page still works
            assert requests.get(stays, timeout=10).status_code == 200
            staying_page.keyboard.press("r")  # rerun its script: the session is alive, its photo still shown
            wait_for_app(staying_page)
            assert staying_page.locator("[data-testid='stImage'] img").count() >= 1
            assert requests.get(_photo_url(staying_page, url), timeout=10).status_code == 200
            staying.close()
