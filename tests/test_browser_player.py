"""The Mix page's stems player in headless Chromium: it plays on while the mix is tuned (issue 14).

Built-in sounds, a real `streamlit run`, Web Audio running in the browser (autoplay allowed): the
playback position keeps advancing across a slider move (new audio swapped in, no restart), across
an A/B switch (no pause), and mute / solo / level change what the player's analysers measure.
"""

from __future__ import annotations

import time

import pytest

from tests.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    fresh_dirs,
    need_chromium,
    screenshot,
    streamlit_server,
    wait_count,
    wait_for_app,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, model_path):
    need_chromium()
    tmp = tmp_path_factory.mktemp("player")
    (tmp / "tmp").mkdir()
    env = {**fresh_dirs(tmp), "IMGEXT_YOLO_WEIGHTS": str(model_path), "FREESOUND_API_KEY": "",
           "YOLO_AUTOINSTALL": "false"}
    with streamlit_server(env) as (url, _proc):
        yield url


def goto_page(page, label: str, title: str) -> None:
    page.get_by_role("link", name=label).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    wait_for_app(page)


def player_frame(page):
    page.locator("iframe[src*='stems_player']").first.wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for frame in page.frames:
            if "stems_player" in frame.url:
                frame.wait_for_function("() => window.__player && window.__player.applied >= 1", timeout=60_000)
                return frame
        page.wait_for_timeout(200)
    raise AssertionError("no stems player frame")


def played(frame) -> float:
    return frame.evaluate("window.__player.played_s")


def watch_playing(frame, seconds: float, *, step_s: float = 0.1) -> list[float]:
    """Sample the unwrapped play time for ``seconds``; it must never go back and never stall."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(frame.evaluate("[window.__player.played_s, window.__player.playing]"))
        time.sleep(step_s)
    times = [t for t, _ in samples]
    assert all(p for _, p in samples), "the player stopped"
    assert all(b >= a for a, b in zip(times, times[1:])), f"the position went back: {times}"
    return times


def mean_rms(frame, n: int = 6) -> dict:
    """Mean of ``n`` readings of the player's analysers, 120 ms apart (dB, power-averaged)."""
    readings = []
    for _ in range(n):
        readings.append(frame.evaluate("window.__player.rms_db"))
        time.sleep(0.12)

    def avg(values):
        import math

        p = sum(10 ** (v / 10) for v in values) / len(values)
        return 10 * math.log10(p) if p > 1e-20 else -200.0

    out = {k: avg([r[k] for r in readings]) for k in ("master", "before", "after")}
    out["tracks"] = {name: avg([r["tracks"][name] for r in readings]) for name in readings[-1]["tracks"]}
    return out


def record(name: str, value: float) -> None:
    """A figure for the report, in the artifacts folder (never asserted: the machine is shared)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "player-measurements.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {name}: {value:.3f}\n")


def click_in(frame, selector: str) -> None:
    frame.locator(selector).first.click()


def test_player_keeps_playing_while_tuning(app_url, bus_jpg):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(app_url)
        wait_for_app(page)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(bus_jpg))
        page.get_by_role("heading", name="objects").first.wait_for(timeout=120_000)
        wait_for_app(page)
        goto_page(page, "2 · Sounds", "Sounds")
        page.get_by_role("button", name="Find sounds").click()
        wait_for_app(page)
        wait_count(page, "[data-testid='stAudio']", 3)
        goto_page(page, "3 · Mix", "Mix")

        frame = player_frame(page)
        mount = frame.evaluate("window.__player.mount")
        rows = frame.evaluate("window.__player.rows")
        assert len(rows) >= 3 and "reverb" in rows, rows
        assert frame.evaluate("window.__player.errors") == []
        assert not frame.evaluate("window.__player.playing")
        click_in(frame, "#play")
        frame.wait_for_function("() => window.__player.playing && window.__player.played_s > 0.5", timeout=20_000)
        assert mean_rms(frame)["master"] > -60, "the player is heard"
        screenshot(page, "player-1-playing")

        # A slider move: the mix is rendered again and its changed signals swapped in, the playback goes on.
        signals = frame.evaluate("window.__player.signals")
        swaps = frame.evaluate("window.__player.swaps")
        t_before = played(frame)
        slider = page.get_by_role("slider").nth(1)  # EQ strength
        slider.focus()
        # Heard at once: the ducked tracks play as dry + strength x wet, and the strength is the wet part's level.
        wet = frame.evaluate("window.__player.wet")
        assert wet and all(w["gain"] == pytest.approx(w["level"], rel=1e-3) for w in wet.values()), wet
        applied = frame.evaluate("window.__player.applied")
        for _ in range(10):
            page.keyboard.press("ArrowLeft")  # 1.0 -> 0.5
        frame.wait_for_function("([n]) => window.__player.applied > n && window.__player.settling", arg=[applied],
                                timeout=120_000)
        page.get_by_text("EQ strength, heard now", exact=False).first.wait_for(timeout=60_000)
        frame.wait_for_function(  # the last of the ten reruns applied, and the gains glided there (20 ms smoothing)
            "() => { const w = Object.values(window.__player.wet); return w.length > 0 && "
            "w.every((x) => Math.abs(x.gain - 0.5 * x.level) <= 0.01 * x.level); }", timeout=60_000)
        half = frame.evaluate("window.__player.wet")
        assert {n: w["id"] for n, w in half.items()} == {n: w["id"] for n, w in wet.items()}, "the same wet parts"
        assert all(w["gain"] == pytest.approx(0.5 * w["level"], rel=0.02) for w in half.values()), half
        for _ in range(10):
            page.keyboard.press("ArrowLeft")  # -> 0.0: no duck at all
        released = time.monotonic()
        frame.wait_for_function("([n]) => window.__player.swaps > n", arg=[swaps], timeout=120_000)
        record("slider release to new audio playing (s)", time.monotonic() - released)
        watch_playing(frame, 1.0)
        wait_for_app(page)
        assert frame.evaluate("window.__player.mount") == mount, "the player was not reloaded"
        new_signals = frame.evaluate("window.__player.signals")
        assert new_signals["after"] != signals["after"], "the processed mix's new audio came in"
        assert new_signals["before"] == signals["before"] == {}, "the unprocessed mix is not made while B plays"
        t_after = played(frame)
        assert t_after > t_before + 0.5, (t_before, t_after)
        assert frame.evaluate("window.__player.playing")

        # A level move (attenuation): heard at once as new levels on the signals the player holds (no new
        # signal), rendered once the sliders rest (the player asks for it), the playback going on throughout.
        applied = frame.evaluate("window.__player.applied")
        swaps = frame.evaluate("window.__player.swaps")
        page.get_by_role("slider").first.focus()
        page.keyboard.press("ArrowRight")
        frame.wait_for_function("([n]) => window.__player.applied > n && window.__player.settling", arg=[applied],
                                timeout=120_000)
        assert frame.evaluate("window.__player.swaps") == swaps, "a level preview sends and swaps no signal"
        page.get_by_text("Level preview", exact=False).first.wait_for(timeout=30_000)
        frame.wait_for_function("() => window.__player.settles >= 1 && window.__player.settling === null",
                                timeout=120_000)
        wait_for_app(page)
        assert page.get_by_text("Level preview", exact=False).count() == 0, "the render came: no preview any more"
        assert frame.evaluate("window.__player.playing") and frame.evaluate("window.__player.mount") == mount

        # A/B: both mixes run in sync, switching is a crossfade with no pause; A is rendered when first chosen
        # (B plays on until it arrives).
        assert frame.evaluate("window.__player.ab") == "after"
        assert frame.evaluate("window.__player.signals")["before"] == {}, "A is not made while B is listened to"
        t0 = played(frame)
        click_in(frame, "#ab-before")
        times = watch_playing(frame, 0.8)
        frame.wait_for_function("() => window.__player.heard === 'before'", timeout=120_000)
        times += watch_playing(frame, 0.5)
        assert frame.evaluate("window.__player.ab") == "before"
        assert times[-1] - t0 > 0.5
        levels = mean_rms(frame)
        assert levels["before"] > -60 and abs(levels["master"] - levels["before"]) < 1.5, levels
        click_in(frame, "#ab-after")
        watch_playing(frame, 0.5)
        assert frame.evaluate("window.__player.ab") == "after"

        # Mute everything: silence. Solo one sound: only it is heard, at its level.
        for i in range(len(rows)):
            click_in(frame, f"[data-test='mute-{i}']")
        page.wait_for_timeout(300)
        assert mean_rms(frame)["master"] < -90
        assert sorted(frame.evaluate("window.__player.muted")) == sorted(rows)
        for i in range(len(rows)):
            click_in(frame, f"[data-test='mute-{i}']")
        solo = next(i for i, n in enumerate(rows) if n.startswith("ambience"))
        click_in(frame, f"[data-test='solo-{solo}']")
        page.wait_for_timeout(300)
        heard = mean_rms(frame)
        assert frame.evaluate("window.__player.soloed") == [rows[solo]]
        assert heard["tracks"][rows[solo]] > -70
        assert all(v < -150 for n, v in heard["tracks"].items() if n != rows[solo]), heard
        assert abs(heard["master"] - heard["tracks"][rows[solo]]) < 1.0, heard
        frame.locator(f"[data-test='level-{solo}']").evaluate(
            "(e) => { e.value = '-12'; e.dispatchEvent(new Event('input')); }")
        page.wait_for_timeout(300)
        quieter = mean_rms(frame, n=10)
        assert quieter["tracks"][rows[solo]] == pytest.approx(heard["tracks"][rows[solo]] - 12.0, abs=2.5), (heard, quieter)
        assert frame.evaluate("window.__player.levels") == {rows[solo]: -12}
        assert frame.evaluate("window.__player.playing")
        screenshot(page, "player-2-solo")

        # The page hears about it (setComponentValue) and offers to apply it to the mix.
        page.get_by_text("solo: ", exact=False).first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Apply the player's levels and pans").wait_for(timeout=60_000)
        t0 = played(frame)
        page.get_by_role("button", name="Apply the player's levels and pans").click()
        frame.wait_for_function("() => Object.keys(window.__player.levels).length === 0", timeout=120_000)
        wait_for_app(page)
        frame = player_frame(page)
        assert played(frame) > t0, "applying re-rendered the mix without restarting the player"
        assert frame.evaluate("window.__player.playing")
        assert frame.evaluate("window.__player.errors") == []
        assert not errors, errors
        screenshot(page, "player-3-applied")
        context.close()
        browser.close()
