"""Tests of the Freesound-compatible test server (tests/freesound_server.py), through plain `requests`."""

from __future__ import annotations

import http.client
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import soundfile as sf

from tests.freesound_server import (
    LICENSE_NAME_BY_URL,
    THROTTLE_DAY,
    THROTTLE_MINUTE,
    FreesoundServer,
)

KEY = "test-key"
AUTH = {"Authorization": f"Token {KEY}"}
ALL_FIELDS = "id,name,tags,username,license,duration,previews,url,avg_rating,num_ratings,type,samplerate"


@pytest.fixture(scope="module")
def server():
    with FreesoundServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server):
    server.reset()
    yield
    server.reset()


@pytest.fixture
def web():
    with requests.Session() as session:  # a fresh pool per test: dropped sockets do not leak across tests
        yield session


def search(web, server, timeout=5, **params):
    return web.get(f"{server.base_url}/search/", params=params, headers=AUTH, timeout=timeout)


# --------------------------------------------------------------------------- auth


def test_token_in_header_or_query_param(server, web):
    assert search(web, server, query="dog").status_code == 200
    r = web.get(f"{server.base_url}/search/", params={"query": "dog", "token": KEY}, timeout=5)
    assert r.status_code == 200 and r.json()["count"] > 0


@pytest.mark.parametrize(
    ("headers", "params", "detail"),
    [
        ({}, {}, "Authentication credentials were not provided."),
        ({"Authorization": "Token wrong"}, {}, "Invalid token"),
        ({}, {"token": "wrong"}, "Invalid token"),
        ({"Authorization": "Token"}, {}, "Invalid token header. No credentials provided."),
        ({"Authorization": f"Bearer {KEY}"}, {}, "Invalid token"),
    ],
)
def test_missing_or_wrong_token_is_401(server, web, headers, params, detail):
    for path in ("/search/", f"/sounds/{server.catalogue[0]['id']}/"):
        r = web.get(server.base_url + path, params={"query": "dog", **params}, headers=headers, timeout=5)
        assert r.status_code == 401
        assert r.json() == {"detail": detail}
        assert r.headers["WWW-Authenticate"].startswith("Token")


# --------------------------------------------------------------------------- search


def test_search_shape_and_default_fields(server, web):
    body = search(web, server, query="dog bark").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] >= 12 and body["previous"] is None
    first = body["results"][0]
    assert set(first) == {"id", "name", "tags", "username", "license"}
    assert isinstance(first["id"], int) and first["tags"] == [t.lower() for t in first["tags"]]
    assert first["license"] in LICENSE_NAME_BY_URL


def test_fields_param_and_previews(server, web):
    body = search(web, server, query="cat meow", fields=ALL_FIELDS + ",score").json()
    for rec in body["results"]:
        assert set(rec) == set(ALL_FIELDS.split(",")) | {"score"}
        assert set(rec["previews"]) == {"preview-hq-mp3", "preview-lq-mp3", "preview-hq-ogg", "preview-lq-ogg"}
        for url in rec["previews"].values():
            assert url.startswith(f"http://127.0.0.1:{server.port}/previews/{rec['id'] // 1000}/{rec['id']}_")
        assert rec["url"] == f"https://freesound.org/people/{rec['username']}/sounds/{rec['id']}/"
        assert 0 <= rec["avg_rating"] <= 5 and rec["duration"] > 0


def test_legacy_endpoint_and_missing_slash(server, web):
    new = search(web, server, query="owl hoot").json()
    old = web.get(f"{server.base_url}/search/text/", params={"query": "owl hoot"}, headers=AUTH, timeout=5)
    assert old.json() == new
    redirected = web.get(f"{server.base_url}/search", params={"query": "owl hoot"}, headers=AUTH, timeout=5)
    assert redirected.history[0].status_code == 301 and redirected.json() == new


def test_neither_query_nor_filter_is_400(server, web):
    for params in ({}, {"query": ""}, {"query": "  ", "filter": ""}):
        r = web.get(f"{server.base_url}/search/", params=params, headers=AUTH, timeout=5)
        assert r.status_code == 400 and "At least one request parameter" in r.json()["detail"]


def test_ranking_puts_off_topic_last_and_unknown_terms_find_nothing(server, web):
    results = search(web, server, query="dog barking", fields="name,tags,score", page_size=50).json()["results"]
    assert len(results) >= 12
    assert "music" in results[-1]["tags"] and all("music" not in r["tags"] for r in results[:-1])
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    empty = search(web, server, query="footsteps voices").json()
    assert empty == {"count": 0, "next": None, "previous": None, "results": []}


def test_query_exclusion_and_phrase(server, web):
    plain = search(web, server, query="dog", page_size=50).json()["count"]
    no_music = search(web, server, query="dog -music", fields="tags", page_size=50).json()
    assert no_music["count"] == plain - 1
    assert all("music" not in r["tags"] for r in no_music["results"])
    phrase = search(web, server, query='"tree bark"', fields="name").json()
    assert [r["name"] for r in phrase["results"]] == ["Dog Days – warm synth pad loop"]


@pytest.mark.parametrize(
    ("flt", "allowed"),
    [
        ('license:"Attribution"', {"Attribution"}),
        ('license:"Creative Commons 0"', {"Creative Commons 0"}),
        ('license:("Creative Commons 0" OR "Attribution")', {"Creative Commons 0", "Attribution"}),
        ('-license:"Attribution NonCommercial" -license:"Sampling+"', {"Creative Commons 0", "Attribution"}),
    ],
)
def test_license_filter_matches_names_exactly(server, web, flt, allowed):
    body = search(web, server, query="dog", filter=flt, fields="license", page_size=150).json()
    names = {LICENSE_NAME_BY_URL[r["license"]] for r in body["results"]}
    assert body["count"] > 0 and names == allowed


def test_duration_range_tag_type_and_rating_filters(server, web):
    body = search(web, server, filter="duration:[1 TO 3.5] tag:dog -tag:short", fields=ALL_FIELDS,
                  page_size=150).json()
    assert body["count"] > 0
    for r in body["results"]:
        assert 1 <= r["duration"] <= 3.5 and "dog" in r["tags"] and "short" not in r["tags"]
    open_ended = search(web, server, query="cow", filter="avg_rating:[3 TO *] type:(wav OR flac)",
                        fields=ALL_FIELDS).json()["results"]
    assert open_ended and all(r["avg_rating"] >= 3 and r["type"] in ("wav", "flac") for r in open_ended)
    stereo = search(web, server, filter="channels:2 samplerate:44100", fields="id", page_size=150).json()
    assert stereo["count"] == sum(1 for r in server.catalogue if r["channels"] == 2)


@pytest.mark.parametrize(
    "flt",
    ['license:"Attribution', "duration:[1 3]", "duration:[a TO 3]", "nosuchfield:1", "tag:(dog OR",
     "duration:abc", "just words", "license:[1 TO 2]"],
)
def test_unparsable_filter_is_400(server, web, flt):
    r = search(web, server, query="dog", filter=flt)
    assert r.status_code == 400 and r.json() == {"detail": "Invalid filter"}


def test_sorting(server, web):
    for sort, key, desc in (("duration_desc", "duration", True), ("duration_asc", "duration", False),
                            ("rating_desc", "avg_rating", True), ("downloads_asc", "num_downloads", False)):
        rows = search(web, server, query="dog", sort=sort, fields="duration,avg_rating,num_downloads",
                      page_size=50).json()["results"]
        values = [r[key] for r in rows]
        assert values == sorted(values, reverse=desc), sort


# --------------------------------------------------------------------------- pagination and nulls


def test_pagination_follows_next_and_404_past_the_end(server, web):
    body = search(web, server, query="dog", page_size=5).json()
    seen, pages = [r["id"] for r in body["results"]], 1
    assert "token" not in parse_qs(urlsplit(body["next"]).query)  # like Freesound: re-send the header
    while body["next"]:
        assert parse_qs(urlsplit(body["next"]).query)["query"] == ["dog"]
        body = web.get(body["next"], headers=AUTH, timeout=5).json()
        seen += [r["id"] for r in body["results"]]
        pages += 1
    assert body["previous"] and len(seen) == len(set(seen)) == body["count"] and pages == -(-len(seen) // 5)
    for page in (pages + 1, 0):
        r = search(web, server, query="dog", page_size=5, page=page)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_page_size_is_clamped_to_150(server, web):
    body = search(web, server, filter="duration:[0 TO *]", page_size=1000, fields="id").json()
    assert body["count"] == len(server.catalogue) and len(body["results"]) == min(150, body["count"])


def test_null_every(server, web):
    server.faults.null_every = 3
    body = search(web, server, query="dog", page_size=10).json()
    assert [i for i, r in enumerate(body["results"]) if r is None] == [2, 5, 8]
    assert body["count"] >= 12


def test_sound_instance(server, web):
    rec = server.catalogue[5]
    r = web.get(f"{server.base_url}/sounds/{rec['id']}/", headers=AUTH, timeout=5)
    full = r.json()
    assert full["name"] == rec["name"] and full["license"] == rec["license"] and "previews" in full
    short = web.get(f"{server.base_url}/sounds/{rec['id']}/", params={"fields": "id,name"}, headers=AUTH,
                     timeout=5).json()
    assert short == {"id": rec["id"], "name": rec["name"]}
    missing = web.get(f"{server.base_url}/sounds/1/", headers=AUTH, timeout=5)
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_nasty_names_survive_json(server, web):
    names = {r["name"] for r in server.catalogue}
    nasty = {"Grenouille près de l'étang — nuit", "../../etc/passwd dog bark.wav", "Dog bark / growl at door"}
    assert nasty <= names
    assert any(len(n) == 300 for n in names) and any("\x07" in n for n in names) and any("\\" in n for n in names)
    assert any(r["username"].startswith("../") for r in server.catalogue)
    body = search(web, server, query="grenouille", fields="name").json()
    assert body["results"][0]["name"] == "Grenouille près de l'étang — nuit"


# --------------------------------------------------------------------------- previews


@pytest.mark.parametrize(("quality", "fmt"), [("hq", "mp3"), ("lq", "mp3"), ("hq", "ogg"), ("lq", "ogg")])
def test_previews_are_decodable_audio_without_token(server, web, quality, fmt):
    for rec in (server.catalogue[0], server.catalogue[2]):  # a whole recording and a trimmed one
        r = web.get(server.preview_url(rec["id"], quality, fmt), timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == ("audio/mpeg" if fmt == "mp3" else "audio/ogg")
        data, sr = sf.read(io.BytesIO(r.content), always_2d=True)
        assert data.shape[1] == rec["channels"] and sr == rec["samplerate"]
        assert abs(len(data) / sr - rec["duration"]) < 0.1
    assert server.count("preview") == 2 and server.count("search") == 0


def test_whole_recordings_are_served_byte_for_byte(server, web):
    rec = server.catalogue[0]
    body = web.get(server.preview_url(rec["id"]), timeout=10).content
    assert body == (server.sounds_dir / "dog.mp3").read_bytes()


def test_unknown_preview_is_404(server, web):
    url = server.preview_url(server.catalogue[0]["id"]).replace("_", "_9", 1)
    assert web.get(url, timeout=5).status_code == 404


# --------------------------------------------------------------------------- faults


def test_refuse_key(server, web):
    server.faults.refuse_key = True
    r = search(web, server, query="dog")
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token"}


def test_throttle_minute_counts_down_without_retry_after(server, web):
    server.faults.throttle_minute = 2
    for _ in range(2):
        r = search(web, server, query="dog")
        assert r.status_code == 429 and r.json() == {"detail": THROTTLE_MINUTE}
        assert "Retry-After" not in r.headers
    assert search(web, server, query="dog").status_code == 200
    assert THROTTLE_MINUTE == "Request was throttled because of exceeding a request limit rate (60/minute)"


def test_throttle_day_is_sticky(server, web):
    server.faults.throttle_day = True
    for _ in range(3):
        r = search(web, server, query="dog")
        assert r.status_code == 429 and r.json() == {"detail": THROTTLE_DAY} and "Retry-After" not in r.headers
    assert THROTTLE_DAY.endswith("(2000/day)")
    assert web.get(server.preview_url(server.catalogue[0]["id"]), timeout=5).status_code == 200


@pytest.mark.parametrize("status", [503, 500])
def test_errors_5xx(server, web, status):
    server.faults.errors_5xx, server.faults.error_status = 2, status
    codes = [search(web, server, query="dog").status_code for _ in range(3)]
    assert codes == [status, status, 200]
    assert server.count("search", status=status) == 2


def test_fail_every_gives_an_html_502(server, web):
    server.faults.fail_every = 3
    statuses = []
    for i in range(6):
        r = search(web, server, query="dog") if i % 2 else web.get(server.preview_url(400017), timeout=5)
        statuses.append(r.status_code)
        if r.status_code == 502:
            assert r.headers["Content-Type"] == "text/html" and b"Bad Gateway" in r.content
    assert statuses == [200, 200, 502, 200, 200, 502]


def test_drop_every_closes_without_response(server, web):
    server.faults.drop_every = 2
    assert search(web, server, query="dog").status_code == 200
    with pytest.raises(requests.ConnectionError):
        search(web, server, query="dog")
    assert search(web, server, query="dog").status_code == 200
    assert [r.status for r in server.requests] == [200, None, 200]
    assert server.requests[1].note == "dropped"


def test_down_then_up(server, web):
    server.faults.down = True
    with pytest.raises(requests.ConnectionError):
        search(web, server, query="dog")
    assert server.down_hits >= 1 and server.count("search") == 0
    server.faults.down = False
    assert search(web, server, query="dog").status_code == 200


def test_delay(server, web):
    server.faults.delay_s = 0.3
    t0 = time.monotonic()
    assert search(web, server, query="dog").status_code == 200
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(requests.Timeout):
        search(web, server, query="dog", timeout=0.1)


def test_truncated_preview_is_shorter_than_content_length(server, web):
    server.faults.truncate_previews = 1
    url = urlsplit(server.preview_url(server.catalogue[0]["id"]))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        conn.request("GET", url.path)
        resp = conn.getresponse()
        expected = int(resp.getheader("Content-Length"))
        with pytest.raises(http.client.IncompleteRead) as err:
            resp.read()
        assert 0 < len(err.value.partial) < expected
    finally:
        conn.close()
    server.faults.truncate_previews = 1
    with pytest.raises(requests.RequestException):
        _ = web.get(server.preview_url(server.catalogue[0]["id"]), timeout=5).content
    assert web.get(server.preview_url(server.catalogue[0]["id"]), timeout=5).status_code == 200
    assert [r.note for r in server.requests] == ["truncated", "truncated", ""]


def test_corrupt_preview_is_not_audio(server, web):
    server.faults.corrupt_previews = 1
    r = web.get(server.preview_url(server.catalogue[0]["id"]), timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "audio/mpeg"
    assert len(r.content) == int(r.headers["Content-Length"])
    with pytest.raises(sf.LibsndfileError):
        sf.read(io.BytesIO(r.content))
    ok = web.get(server.preview_url(server.catalogue[0]["id"]), timeout=5)
    assert sf.read(io.BytesIO(ok.content))[0].size > 0


# --------------------------------------------------------------------------- request log and lifecycle


def test_request_log_records_headers_and_query(server, web):
    search(web, server, query="dog bark", fields="id")
    web.get(server.preview_url(server.catalogue[0]["id"]), timeout=5)
    rec, preview = server.requests
    assert rec.method == "GET" and rec.path == "/apiv2/search/" and rec.kind == "search"
    assert rec.query == {"query": "dog bark", "fields": "id"}
    assert rec.header("Authorization") == f"Token {KEY}" and rec.status == 200
    assert preview.kind == "preview" and preview.header("authorization") is None
    assert server.count("search") == 1 and server.count("preview") == 1


def test_stop_closes_keep_alive_connections():
    srv = FreesoundServer(api_key=KEY).start()
    with requests.Session() as session:
        url = f"{srv.base_url}/search/"
        assert session.get(url, params={"query": "dog"}, headers=AUTH, timeout=5).status_code == 200
        srv.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(url, params={"query": "dog"}, headers=AUTH, timeout=5)


def test_missing_sounds_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cat.mp3"):
        FreesoundServer(sounds_dir=tmp_path)


def test_standalone_runs_until_sigterm(server):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.freesound_server", "--port", "0", "--key", "k2"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/apiv2")
        r = requests.get(f"{base}/search/", params={"query": "cow moo"}, headers={"Authorization": "Token k2"},
                         timeout=5)
        assert r.status_code == 200 and r.json()["count"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
