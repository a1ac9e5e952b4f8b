"""The stems player's transport in headless Chromium: what the page sends is, sample for sample, what the player holds.

The component (``pages/_components/stems_player``) is opened on its own and fed one render by hand, as
Streamlit's component protocol does: a sparse event track (sent as its nonzero spans), an all-silent
track (no bytes at all), a dense bed and a stereo reverb (sent whole), made by the page's own
``_payload``.  Each decoded buffer must be the 16-bit samples of the server's signal, zeros included.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COMPONENT = Path(__file__).resolve().parents[1] / "pages" / "_components" / "stems_player" / "index.html"


def test_the_player_puts_a_sparse_signals_spans_back_in_place_to_the_sample():
    need_chromium()
    from playwright.sync_api import sync_playwright

    from imgext.mix.preview import PreviewMix, PreviewTrack, pcm16, signal_id
    from pages._player import PlayerState, _payload

    rate, n = 22050, 22050 * 4
    rng = np.random.default_rng(7)
    events = np.zeros(n, np.float32)
    for start in (500, 30000, n - 200):
        events[start:start + 1500] = (0.3 * rng.standard_normal(len(events[start:start + 1500]))).astype(np.float32)
    silent = np.zeros(n, np.float32)
    bed = (0.05 * rng.standard_normal(n)).astype(np.float32)
    reverb = (0.02 * rng.standard_normal((2, n))).astype(np.float32)
    reverb[:, : n // 2] = 0.0  # a stereo signal half silent: as spans too
    signals = {signal_id(x, rate): x for x in (events, silent, bed, reverb)}
    ids = list(signals)
    pm = PreviewMix(tracks=[PreviewTrack(name=f"t{k}", signal=ids[k], level=0.5, pan=0.0) for k in range(3)],
                    reverb=ids[3], reverb_level=1.0, envelope=None, sample_rate=rate, n_samples=n, signals=signals)
    blob, index = _payload(PlayerState(), {"after": pm}, None)
    by_id = {e["id"]: e for e in index}
    assert "spans" in by_id[ids[0]] and by_id[ids[1]]["spans"] == [] and by_id[ids[1]]["length"] == 0
    assert "spans" not in by_id[ids[2]] and by_id[ids[3]]["channels"] == 2, "a dense bed goes whole"
    args = {"sample_rate": rate, "n_samples": n, "rows": [{"name": f"t{k}", "role": "event", "pan": 0.0, "object": k}
                                                          for k in range(3)],
            "mixes": {"after": pm.describe(), "before": None}, "blob_index": index, "revision": 0, "state": None,
            "settle": None, "settle_ms": 1500}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(COMPONENT.as_uri())
        page.wait_for_function("() => window.__player !== undefined")
        page.evaluate("([a, b64]) => { a.blob = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));"
                      " window.postMessage({type: 'streamlit:render', args: a}, '*'); }",
                      [json.loads(json.dumps(args)), base64.b64encode(blob).decode()])
        page.wait_for_function("() => window.__player.applied >= 1", timeout=60_000)
        assert page.evaluate("window.__player.errors") == [] and not errors, errors
        for sid, x in signals.items():
            got = np.asarray(page.evaluate("(id) => window.__player.samples(id)", sid), dtype=np.float64)
            want = pcm16(x).reshape(-1, n) / 32768.0
            assert got.shape == want.shape, (sid, got.shape)
            # (Chromium's FLAC decoder scales a 16-bit sample by 1/32767 or 1/32768: within one step of it)
            np.testing.assert_allclose(got, want, rtol=0, atol=1.01 / 32767)
            np.testing.assert_array_equal(got == 0, want == 0)  # every span in place, silence exactly silent
        browser.close()
