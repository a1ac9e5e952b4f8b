"""Untrusted values (Freesound records, a hostile API server, exceptions) never become files, links or Markdown."""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from imgext import untrusted
from imgext.errors import ImgExtError
from imgext.sounds.freesound import FreesoundClient, FreesoundSource
from imgext.untrusted import Origins, clean_previews, error_text, text
from tests.hostile import ATTACK_NAME, ROOT, HostileServer, hostile_previews

APP = str(ROOT / "app.py")
FREESOUND = Origins.for_api("https://freesound.org/apiv2")
LOCAL = Origins.for_api("http://127.0.0.1:8765/apiv2")
GOOD = "https://cdn.freesound.org/previews/400/400017_7731-lq.mp3"


# --------------------------------------------------------------------------- text


def _unescaped(md: str, ch: str) -> bool:
    """True when ``ch`` occurs in ``md`` without a backslash before it."""
    return re.search(r"(?<!\\)" + re.escape(ch), md) is not None


def test_text_escapes_markdown_html_and_latex():
    out = text(ATTACK_NAME)
    for ch in "[]()!<>$*_`#|~":
        assert not _unescaped(out, ch), (ch, out)


@pytest.mark.parametrize("value", ["www.evil.example", "WWW.Evil.Example", "https://phish.example/x",
                                   "mailto:a@b.example", "someone@evil.example", "xmpp:x@evil.example"])
def test_text_breaks_gfm_autolinks(value):
    out = text(value)
    assert not re.search(r"(?i)www\\?\.", out)
    assert not re.search(r"(?i)(https?|mailto|xmpp):(?!\u200b)", out)
    assert not re.search(r"@(?!\u200b)", out)
    assert out.replace("\u200b", "").replace("\\", "") == value


@pytest.mark.parametrize("value", [":material/warning:", ":red[alarm]", ":smile:", ":rainbow-background[x]"])
def test_text_breaks_icon_and_colour_shortcodes(value):
    assert not re.search(r":[a-z]", text(value)), text(value)


def test_text_shortens_huge_strings_and_strips_control_characters():
    out = text("x" * 2_000_000)
    assert len(out) <= untrusted.MAX_TEXT + 1 and out.endswith("…")
    assert text("a\nb\r\n# title\u202e\x00c") == "a b \\# title c"


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize("value", hostile_previews([ROOT / ".streamlit" / "config.toml"]))
def test_hostile_preview_values_are_refused(value):
    for origins in (FREESOUND, LOCAL):
        url, why = origins.media_url(value)
        assert url is None and why


@pytest.mark.parametrize("value", [GOOD, "https://freesound.org/data/previews/1/1_2-hq.mp3",
                                   "http://cdn.freesound.org/previews/1/1_2-hq.ogg"])
def test_freesound_cdn_previews_pass(value):
    assert FREESOUND.media_url(value) == (value, None)
    assert LOCAL.media_url(value)[0] is None, "a custom server's records may not point at another host"


def test_custom_server_previews_pass_only_on_its_own_host_and_port():
    assert LOCAL.media_url("http://127.0.0.1:8765/previews/1/1_2-lq.mp3")[0]
    assert LOCAL.media_url("http://127.0.0.1:8766/previews/1/1_2-lq.mp3")[0] is None
    assert LOCAL.media_url("http://localhost:8765/previews/1/1_2-lq.mp3")[0] is None


def test_links_go_only_to_the_sources_own_site_and_show_its_host():
    page = "https://freesound.org/people/ana/sounds/400017/"
    assert FREESOUND.link("Dog bark", page) == f"[Dog bark]({page}) (freesound\\.org)"
    for bad in ("https://phish.example/", "javascript:alert(1)", "https://cdn.freesound.org/x", None,
                "https://freesound.org@phish.example/"):
        out = FREESOUND.link("[Claim](https://phish.example)", bad)
        assert "](" not in out.replace("\\](", "").replace("\\(", "")
        assert not _unescaped(out, "[")


def test_clean_previews_keeps_only_acceptable_urls():
    kept, reasons = clean_previews({"preview-hq-mp3": GOOD, "preview-lq-mp3": "/etc/passwd",
                                    "preview-hq-ogg": "data:audio/ogg;base64,AAAA", "bad key!": GOOD}, FREESOUND)
    assert kept == {"preview-hq-mp3": GOOD}
    assert len(reasons) == 2 and not any("passwd" in r for r in reasons)
    assert clean_previews("/etc/passwd", FREESOUND)[0] == {}


def test_error_text_hides_paths_and_object_reprs():
    exc = ValueError("Error opening '/tmp/tmpab12cd.mp3': Format not recognised; <_io.BytesIO object at 0x7f3a2b>"
                     " in /srv/library/dogs")
    out = error_text(exc, hidden=["/srv/library"])
    plain = out.replace("\\", "")
    assert "/tmp" not in plain and "0x7f" not in plain and "/srv" not in plain and "tmpab12cd" not in plain
    assert "Format not recognised" in plain


# --------------------------------------------------------------------------- the source


def test_freesound_source_drops_hostile_previews(tmp_path):
    values = hostile_previews([Path("/etc/passwd")])
    with HostileServer(api_key="k") as srv:
        srv.poison(values)
        source = FreesoundSource(FreesoundClient("k", base_url=srv.base_url))
        cands = source.search("dog", n=30)
        assert cands
        for c in cands:
            for v in c.extra["previews"].values():
                assert v.startswith(srv.origin + "/previews/"), v
        before = srv.count("preview")
        for c in cands[:6]:
            with contextlib.suppress(ImgExtError):  # unplayable is fine; reading a server file is not
                source.fetch(c)
        assert srv.count("preview") >= before
        assert any("not on the sound source's own server" in n for n in source.notes)


# --------------------------------------------------------------------------- the app, end to end in-process


class RecordingMediaFileManager(MediaFileManager):
    instances: ClassVar[list] = []

    def __init__(self, storage) -> None:
        super().__init__(storage)
        RecordingMediaFileManager.instances.append(self)


@pytest.fixture
def media(monkeypatch):
    RecordingMediaFileManager.instances = []
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", RecordingMediaFileManager)
    return RecordingMediaFileManager.instances


def page_text(at: AppTest) -> str:
    """Every element's protobuf as text: what the browser would receive (labels, Markdown, URLs)."""
    parts, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        stack += list(getattr(node, "children", {}).values())
    return "\n".join(parts)


def _needles(files: list[Path]) -> dict[str, bytes]:
    """A distinctive chunk of each secret file (its longest line), to look for in served bytes."""
    out = {}
    for f in files:
        data = f.read_bytes()
        line = max(data.splitlines() or [data], key=len)
        assert len(line) >= 8, f
        out[str(f)] = line
    return out


@pytest.mark.slow
def test_hostile_server_reaches_neither_media_store_page_zip_nor_log(media, images_dir, tmp_path, monkeypatch,
                                                                     capfd):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('FREESOUND_API_KEY = "k"\nADMIN_PASSWORD = "canary-7f3e1d9a-admin"\n')
    files = [Path("/etc/passwd"), secrets, ROOT / ".streamlit" / "config.toml"]
    needles = _needles(files)
    with HostileServer(api_key="k") as srv:
        srv.poison(hostile_previews(files))
        monkeypatch.setenv("IMGEXT_FREESOUND_URL", srv.base_url)
        at = AppTest.from_file(APP, default_timeout=180)
        at.secrets["FREESOUND_API_KEY"] = "k"
        at.run()
        at.file_uploader(key="upload").set_value(("wilddog.jpg", (images_dir / "wilddog.jpg").read_bytes(),
                                                 "image/jpeg"))
        at.run()
        at.switch_page("pages/2_sounds.py").run()
        at.button(key="find_sounds").click().run()
        assert not at.exception, at.exception
        tree = page_text(at)
        assert "No preview to play" in tree, "a refused preview is explained, not an error page"
        at.switch_page("pages/3_mix.py").run()
        assert not at.exception, at.exception
        zips = []
        for b in at.get("download_button"):
            if b.proto.deferred_file_id:
                mgr = next(m for m in reversed(media) if b.proto.deferred_file_id in m._deferred_callables)
                mgr.execute_deferred(b.proto.deferred_file_id)
        tree += page_text(at)
    served = [f.content for m in media for f in m._storage._files_by_id.values()]
    assert served, "the app served media at all"
    for data in served:
        if data[:2] == b"PK":
            zips.append(data)
    log = capfd.readouterr()
    for path, needle in needles.items():
        for data in served:
            assert needle not in data, f"{path} was served"
        for data in zips:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for name in z.namelist():
                    assert needle not in z.read(name), f"{path} is in the ZIP as {name}"
        text_needle = needle.decode("utf-8", "replace")
        assert text_needle not in tree, f"{path} reached the page"
        assert text_needle not in log.out and text_needle not in log.err, f"{path} reached the log"
    assert "canary-7f3e1d9a" not in tree
