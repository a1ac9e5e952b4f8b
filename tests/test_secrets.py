"""The Freesound API key never leaks: not into the page, the logs, scene.json, the ZIP, an error message or the cache.

One distinctive key is used everywhere and every output is scanned for it (and for its tail and its
base64 form, so a truncated or encoded copy is caught too):

* browser, key in the environment: ``page.content()`` of every page, every websocket frame the server
  sent to the browser, the downloaded ZIP (every member), the messages shown for a refused key, the
  daily limit and server errors, the streamlit log, and every file the server wrote (cache, data,
  session folders);
* browser, key typed into the Sounds page's password field: the same, with a refused key;
* command line: stdout, stderr, every file written and every ZIP member, also with a refused key and
  with the server down;
* the Freesound-compatible server's request log: the key travels only in the ``Authorization: Token``
  header of API requests (paths under ``/apiv2``), never in a URL or query, never to previews;
* the disk cache never holds the key.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, chromium, fresh_dirs, need_chromium, screenshot, streamlit_server, wait_for_app
from tests.browser import download_zip as browser_download_zip
from tests.freesound_server import FreesoundServer

pytestmark = pytest.mark.slow  # end to end: subprocesses, servers or the whole app; skipped by the fast loop

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-imgext-SECRET-7f3a9c"
NEEDLES = (KEY.encode(), KEY[-13:].encode(), base64.b64encode(KEY.encode()).rstrip(b"="))
assert KEY[-13:] == "SECRET-7f3a9c"


# --------------------------------------------------------------------------- scanning

def leaks(data: bytes | str) -> list[bytes]:
    """Which forms of the key occur in ``data``."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return [n for n in NEEDLES if n in data]


def assert_clean(data: bytes | str, where: str) -> None:
    found = leaks(data)
    assert not found, f"the API key ({found}) appears in {where}"


def scan_zip(data: bytes, where: str) -> int:
    """Scan a ZIP's raw bytes and every member (text members are deflated); returns the member count."""
    assert_clean(data, where)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        for name in names:
            assert_clean(name, f"{where}: a member name")
            assert_clean(zf.read(name), f"{where}:{name}")
    return len(names)


def scan_tree(root: Path) -> int:
    """Scan every file under ``root`` (names and bytes, ZIP members too); returns the file count."""
    n = 0
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        assert_clean(str(p.relative_to(root)), f"a file name under {root}")
        data = p.read_bytes()
        assert_clean(data, str(p))
        if zipfile.is_zipfile(io.BytesIO(data)):
            scan_zip(data, str(p))
        n += 1
    return n


def assert_key_only_in_auth_header(fs: FreesoundServer, key: str = KEY) -> None:
    """(c) over everything the server has logged so far."""
    with fs._lock:
        records = list(fs.requests)
    assert records, "the Freesound-compatible server saw no request"
    for r in records:
        where = f"{r.method} {r.path}"
        assert_clean(r.path, f"the URL path of {where}")
        assert_clean(repr(sorted(r.query.items())), f"the query string of {where}")
        assert "token" not in {k.lower() for k in r.query}, f"{where} carried a token in its query string"
        auth = r.header("authorization")
        for name, value in r.headers.items():
            if name != "authorization":
                assert_clean(value, f"header {name} of {where}")
        if r.path.startswith("/apiv2/"):
            assert auth == f"Token {key}", f"{where} did not authenticate with the Authorization: Token header"
        else:  # previews, waveform images: the CDN never gets the key
            assert auth is None, f"{where} ({r.kind}) was sent an Authorization header"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def fs():
    with FreesoundServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def server_env(tmp_path, model_path, fs):
    (tmp_path / "tmp").mkdir()
    return {
        **fresh_dirs(tmp_path),
        "IMGEXT_YOLO_WEIGHTS": str(model_path),
        "IMGEXT_FREESOUND_URL": fs.base_url,
        "YOLO_AUTOINSTALL": "false",
        "YOLO_OFFLINE": "true",
    }


# --------------------------------------------------------------------------- browser helpers

MESSAGE_SELECTORS = ("[data-testid='stAlert']", "[data-testid='stException']", "[data-testid='stToast']",
                     "[data-testid='stCaptionContainer']", "[data-testid='stExpanderDetails']",
                     "[data-testid='stStatusWidget']", "[data-testid='stExpander'] summary")


def messages(page) -> str:
    """Every message-like text on the page (alerts, captions, toasts, status labels)."""
    out = []
    for sel in MESSAGE_SELECTORS:
        loc = page.locator(sel)
        for i in range(loc.count()):
            try:
                out.append(loc.nth(i).inner_text(timeout=2_000))
            except Exception:  # noqa: BLE001 - an element that went away is no message
                pass
    return "\n".join(out)


class PageScanner:
    """Records what the server sends to one page and scans what it shows."""

    def __init__(self, page) -> None:
        self.page, self.frames, self.pages_scanned = page, [], 0
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: self.frames.append(payload)))

    def scan(self, where: str) -> str:
        wait_for_app(self.page)
        html = self.page.content()
        assert_clean(html, f"page.content() of {where}")
        text = messages(self.page)
        assert_clean(text, f"the messages shown on {where}")
        self.pages_scanned += 1
        return text

    def scan_frames(self) -> int:
        assert self.frames, "no websocket frame was captured"
        for i, payload in enumerate(self.frames):
            assert_clean(payload if isinstance(payload, (bytes, str)) else str(payload), f"websocket frame {i}")
        return len(self.frames)


def goto_page(page, label: str, title: str) -> None:
    page.get_by_role("link", name=label).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    wait_for_app(page)


def upload(page, photo: Path) -> None:
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(photo))
    page.get_by_role("heading", name="objects").first.wait_for(timeout=120_000)
    wait_for_app(page)


def shorten_scene(page, seconds: int = 10) -> None:
    slider = page.get_by_role("slider").first  # "Scene length (s)", 5 .. 120 step 5, default 30
    slider.focus()
    for _ in range((30 - seconds) // 5):
        page.keyboard.press("ArrowLeft")
    wait_for_app(page)


def find_sounds(page) -> None:
    page.get_by_role("button", name="Find sounds").first.click()
    wait_for_app(page)
    page.wait_for_timeout(300)
    wait_for_app(page)


def set_candidates(page, n: int) -> None:
    """A new candidate count makes new search cache keys, so the next search really asks the server."""
    box = page.get_by_role("spinbutton", name="Candidates per search term", exact=True)
    box.fill(str(n))
    box.press("Enter")
    wait_for_app(page)


def download_zip(page, tmp_path: Path, name: str) -> bytes:
    goto_page(page, "3 · Mix", "Mix")
    page.locator("[data-testid='stPlotlyChart']").nth(1).wait_for(timeout=60_000)
    return browser_download_zip(page, tmp_path / name)


def provoke(page, scanner: PageScanner, fs: FreesoundServer, fault: str, candidates: int) -> str:
    """Switch a fault on, search again (uncached), return the messages shown (already scanned)."""
    fs.reset()
    if fault == "refuse_key":
        fs.faults.refuse_key = True
    elif fault == "throttle_day":
        fs.faults.throttle_day = True
    elif fault == "errors_5xx":
        fs.faults.errors_5xx = 10_000
    else:  # pragma: no cover
        raise ValueError(fault)
    goto_page(page, "2 · Sounds", "Sounds")
    set_candidates(page, candidates)
    find_sounds(page)
    text = scanner.scan(f"the Sounds page with fault {fault}")
    api = [r for r in fs.requests if r.path.startswith("/apiv2/")]
    assert api, f"fault {fault}: the search was answered from the cache, nothing was provoked"
    assert_key_only_in_auth_header(fs)
    fs.reset()
    return text


def log_of(url: str) -> Path:
    return ARTIFACTS / f"streamlit-{url.rsplit(':', 1)[1]}.log"


# --------------------------------------------------------------------------- (a) browser

@pytest.mark.browser
@pytest.mark.slow
def test_browser_with_the_key_in_the_environment(fs, server_env, tmp_path, images_dir):
    need_chromium()
    fs.reset()
    env = {**server_env, "FREESOUND_API_KEY": KEY}
    shown = {}
    with streamlit_server(env) as (url, _proc):
        log = log_of(url)
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page = context.new_page()
            scanner = PageScanner(page)
            page.goto(url)
            scanner.scan("the start page")
            upload(page, images_dir / "wilddog.jpg")
            scanner.scan("the Image page")
            goto_page(page, "2 · Sounds", "Sounds")
            assert page.get_by_text("API key configured on the server", exact=False).count() >= 1
            shorten_scene(page)
            find_sounds(page)
            page.locator("[data-testid='stAudio']").first.wait_for(timeout=120_000)
            scanner.scan("the Sounds page")
            assert fs.count("preview") >= 1, "no Freesound sound was used; the flow did not exercise the key"
            assert_key_only_in_auth_header(fs)
            zip_bytes = download_zip(page, tmp_path, "env-key.zip")
            scanner.scan("the Mix page")
            assert scan_zip(zip_bytes, "the downloaded ZIP") >= 5

            for n, fault in enumerate(("refuse_key", "throttle_day", "errors_5xx")):
                shown[fault] = provoke(page, scanner, fs, fault, candidates=11 + n)
            screenshot(page, "secrets-env-faults")
            goto_page(page, "1 · Image", "Image")
            scanner.scan("the Image page after the faults")
            n_frames = scanner.scan_frames()
            context.close()
    assert "refused" in shown["refuse_key"], shown["refuse_key"]
    assert "daily" in shown["throttle_day"], shown["throttle_day"]
    assert "server error" in shown["errors_5xx"], shown["errors_5xx"]
    assert n_frames > 10
    assert_clean(log.read_bytes(), f"the streamlit log {log}")
    assert scan_tree(tmp_path) > 0  # cache, presets, session folders, the download


@pytest.mark.browser
@pytest.mark.slow
def test_browser_with_the_key_typed_into_the_sounds_page(fs, server_env, tmp_path, images_dir):
    need_chromium()
    fs.reset()
    env = {**server_env, "FREESOUND_API_KEY": ""}  # nothing configured: the app asks for a key
    with streamlit_server(env) as (url, _proc):
        log = log_of(url)
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page = context.new_page()
            scanner = PageScanner(page)
            page.goto(url)
            wait_for_app(page)
            upload(page, images_dir / "wildcat.jpg")
            goto_page(page, "2 · Sounds", "Sounds")
            page.get_by_text("Freesound", exact=True).first.click()  # the source radio
            wait_for_app(page)
            field = page.get_by_label("Freesound API key")
            field.fill(KEY)
            page.get_by_role("button", name="Use this key").click()
            page.get_by_text("typed for this session", exact=False).first.wait_for(timeout=60_000)
            text = scanner.scan("the Sounds page after the key was typed")
            assert "typed for this session" in text or page.get_by_text("typed for this session").count() >= 1
            shorten_scene(page)
            find_sounds(page)
            page.locator("[data-testid='stAudio']").first.wait_for(timeout=120_000)
            scanner.scan("the Sounds page with sounds")
            assert fs.count("preview") >= 1, "no Freesound sound was used; the flow did not exercise the key"
            assert_key_only_in_auth_header(fs)
            zip_bytes = download_zip(page, tmp_path, "typed-key.zip")
            scanner.scan("the Mix page")
            assert scan_zip(zip_bytes, "the downloaded ZIP") >= 5
            refused = provoke(page, scanner, fs, "refuse_key", candidates=12)
            goto_page(page, "1 · Image", "Image")
            scanner.scan("the Image page")
            scanner.scan_frames()
            context.close()
    assert "refused" in refused, refused
    assert_clean(log.read_bytes(), f"the streamlit log {log}")
    assert scan_tree(tmp_path) > 0


# --------------------------------------------------------------------------- (b) command line

def run_cli(photo: Path, out: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imgext", "render", str(photo), "--out", str(out), "--source", "freesound",
         "--duration", "5"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=240,
    )


def test_command_line_outputs_and_messages(fs, tmp_path, model_path, images_dir):
    fs.reset()
    base = {"FREESOUND_API_KEY": KEY, "IMGEXT_FREESOUND_URL": fs.base_url, "IMGEXT_YOLO_WEIGHTS": str(model_path),
            "IMGEXT_CACHE_DIR": str(tmp_path / "cache"), "IMGEXT_DATA_DIR": str(tmp_path / "data"),
            "YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false"}
    ok = run_cli(images_dir / "wilddog.jpg", tmp_path / "ok", base)
    assert ok.returncode == 0, ok.stderr
    assert_clean(ok.stdout, "render's stdout")
    assert_clean(ok.stderr, "render's stderr")
    assert "freesound" in ok.stdout.lower() and "CC" in ok.stdout  # real Freesound sounds were used
    assert scan_tree(tmp_path / "ok") >= 6
    assert scan_zip((tmp_path / "ok" / "bundle.zip").read_bytes(), "bundle.zip") >= 5
    assert fs.count("preview") >= 1
    assert_key_only_in_auth_header(fs)

    fs.reset()
    fs.faults.refuse_key = True
    refused = run_cli(images_dir / "wildelephant.jpg", tmp_path / "refused", {**base, "IMGEXT_CACHE_DIR": str(tmp_path / "c2")})
    assert "refused" in (refused.stdout + refused.stderr), refused
    for stream, name in ((refused.stdout, "stdout"), (refused.stderr, "stderr")):
        assert_clean(stream, f"render's {name} with a refused key")
    assert fs.count("search") >= 1
    assert_key_only_in_auth_header(fs)

    fs.reset()
    fs.faults.down = True
    down = run_cli(images_dir / "wildelephant.jpg", tmp_path / "down", {**base, "IMGEXT_CACHE_DIR": str(tmp_path / "c3")})
    fs.reset()
    assert "could not be reached" in (down.stdout + down.stderr), down
    for stream, name in ((down.stdout, "stdout"), (down.stderr, "stderr")):
        assert_clean(stream, f"render's {name} with the server down")

    bad = run_cli(images_dir / "wildelephant.jpg", tmp_path / "bad",
                  {**base, "IMGEXT_FREESOUND_URL": "ftp://127.0.0.1/apiv2", "IMGEXT_CACHE_DIR": str(tmp_path / "c4")})
    assert bad.returncode != 0 and bad.stderr.strip(), bad
    assert_clean(bad.stdout + bad.stderr, "render's output with an unusable API root")

    assert scan_tree(tmp_path) > 0  # (d) every cache folder, every output folder


# --------------------------------------------------------------------------- (c) request log, (d) cache

def test_key_travels_only_in_the_authorization_header(fs, tmp_path):
    from imgext.sounds.cache import DiskCache
    from imgext.sounds.freesound import FreesoundClient, FreesoundSource

    fs.reset()
    client = FreesoundClient(KEY, base_url=fs.base_url)
    source = FreesoundSource(client, cache=DiskCache(tmp_path / "cache"))
    records = client.search("dog", max_results=12, page_size=5)  # three pages: follows `next`
    assert len(records) == 12 and fs.count("search") == 3
    assert all("token" not in r.query for r in fs.requests if r.kind == "search")
    found = source.search("dog barking", n=5)
    assert found
    data = source.fetch(found[0], duration_s=5.0)
    assert len(data) > 1000
    client.download(fs.preview_url(found[1].extra["freesound_id"], "lq", "ogg"))
    assert fs.count("search") >= 3 and fs.count("preview") >= 2
    assert_key_only_in_auth_header(fs)
    assert repr(KEY) not in repr(client) and KEY not in repr(client)
    fs.reset()


def test_the_scanners_do_find_the_key(tmp_path):
    """The checks above would notice a leak: in a deflated ZIP member, a nested file, a query, a preview."""
    from tests.freesound_server import RequestRecord

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("scene.json", '{"settings": {"note": "token ' + KEY[:-13] + KEY[-13:] + '"}}' + " " * 500)
    assert KEY.encode() not in buf.getvalue()  # deflated: only the member scan can see it
    with pytest.raises(AssertionError, match="scene.json"):
        scan_zip(buf.getvalue(), "a ZIP")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "cache.db").write_bytes(b"\x00" * 100 + base64.b64encode(KEY.encode()) + b"\x00")
    with pytest.raises(AssertionError, match="cache.db"):
        scan_tree(tmp_path)
    with pytest.raises(AssertionError, match="SECRET"):
        assert_clean("Invalid token ...SECRET-7f3a9c", "a message")

    class Log:
        _lock = __import__("threading").Lock()

        def __init__(self, *records):
            self.requests = list(records)

    api = {"authorization": f"Token {KEY}"}
    assert_key_only_in_auth_header(Log(RequestRecord("GET", "/apiv2/search/", {"query": "dog"}, api, "search")))
    with pytest.raises(AssertionError, match="query"):
        assert_key_only_in_auth_header(Log(RequestRecord("GET", "/apiv2/search/", {"token": KEY}, {}, "search")))
    with pytest.raises(AssertionError, match="Authorization"):
        assert_key_only_in_auth_header(Log(RequestRecord("GET", "/apiv2/search/", {}, {}, "search")))
    with pytest.raises(AssertionError, match="preview"):
        assert_key_only_in_auth_header(Log(RequestRecord("GET", "/previews/1/1_2-hq.mp3", {}, api, "preview")))


def test_cache_folder_never_holds_the_key(fs, tmp_path):
    from imgext.sounds.cache import DiskCache
    from imgext.sounds.freesound import FreesoundClient, FreesoundSource

    fs.reset()
    cache = DiskCache(tmp_path / "cache")
    source = FreesoundSource(FreesoundClient(KEY, base_url=fs.base_url), cache=cache)
    for term in ("cat meow", "cow moo", "owl hoot"):
        for cand in source.search(term, n=3)[:2]:
            source.fetch(cand, duration_s=5.0)
    assert fs.count("preview") >= 4
    assert scan_tree(tmp_path / "cache") >= 1
    fs.reset()
