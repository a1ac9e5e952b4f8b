"""The Freesound client and source against a real HTTP server on 127.0.0.1 serving real audio."""

from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path

import pytest

from imgext.composition.tracks import fetch_tracks
from imgext.errors import AuthError, RateLimitedError, SourceUnavailableError
from imgext.options import MixSettings
from imgext.pipeline import render_image
from imgext.sounds.cache import DiskCache
from imgext.sounds.filters import SearchFilter
from imgext.sounds.freesound import FreesoundClient, FreesoundSource, license_info, relaxed_queries
from imgext.sounds.selection import choose_sounds, reroll
from imgext.vision.placement import manual_object
from tests.freesound_server import FreesoundServer

KEY = "test-key"
SETTINGS = MixSettings(duration_s=4.0, seed=1)


@pytest.fixture(scope="module")
def server():
    with FreesoundServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean(server):
    server.reset()
    yield
    server.reset()


def client(server, **kw):
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("minute_wait_s", 0.02)
    kw.setdefault("rate_wait_budget_s", 0.1)
    kw.setdefault("timeout", (2, 5))
    return FreesoundClient(KEY, base_url=server.base_url, **kw)


def source(server, tmp_path, **kw):
    return FreesoundSource(client(server), cache=DiskCache(tmp_path / "cache"), **kw)


def test_search_sends_the_token_header_and_fields(server):
    results = client(server).search("dog bark", max_results=5)
    assert len(results) == 5 and all({"previews", "license", "username", "duration"} <= set(r) for r in results)
    req = [r for r in server.requests if r.kind == "search"][0]
    assert req.header("Authorization") == f"Token {KEY}"
    assert "token" not in req.query  # never in the URL (URLs end up in logs)
    assert set(req.query["fields"].split(",")) >= {"id", "name", "tags", "license", "previews", "avg_rating", "num_ratings"}


def test_refused_key(server):
    server.faults.refuse_key = True
    with pytest.raises(AuthError, match="API key was refused"):
        client(server).search("dog")


def test_per_minute_throttle_is_waited_out(server):
    server.faults.throttle_minute = 2
    assert client(server).search("dog", max_results=3)
    assert server.count("search") == 3


def test_per_minute_throttle_beyond_budget(server):
    server.faults.throttle_minute = 50
    with pytest.raises(RateLimitedError, match="throttling") as info:
        client(server).search("dog")
    assert info.value.period == "minute"


def test_per_day_throttle_stops_requests(server):
    server.faults.throttle_day = True
    c = client(server)
    with pytest.raises(RateLimitedError, match="daily") as info:
        c.search("dog")
    assert info.value.period == "day"
    n = server.count("search")
    with pytest.raises(RateLimitedError):
        c.search("cat")
    assert server.count("search") == n  # no further request once the day's limit is known


def test_5xx_then_success(server):
    server.faults.errors_5xx = 2
    assert len(client(server).search("cat meow", max_results=3)) == 3


def test_5xx_forever_is_unavailable(server):
    server.faults.errors_5xx = 100
    with pytest.raises(SourceUnavailableError, match="server error"):
        client(server, max_retries=2).search("cat")


def test_down_server(server):
    server.faults.down = True
    with pytest.raises(SourceUnavailableError, match="could not be reached|timed out"):
        client(server, max_retries=1).search("cat")


def test_null_results_are_skipped(server):
    server.faults.null_every = 2
    results = client(server).search("dog bark", max_results=10)
    assert results and all(isinstance(r, dict) for r in results)


def test_pagination_follows_next_and_stops_past_the_end(server):
    results = client(server).search("dog", max_results=100, page_size=4)
    ids = [r["id"] for r in results]
    assert len(ids) == len(set(ids)) >= 13
    assert server.count("search") >= 4


def test_filter_reaches_the_server(server):
    flt = SearchFilter(licenses=("cc0",), duration_max_s=5)
    results = client(server).search("dog", filter=flt.to_solr(), max_results=50)
    assert results and all("zero" in r["license"] and r["duration"] <= 5 for r in results)


def test_license_names():
    assert license_info("http://creativecommons.org/publicdomain/zero/1.0/") == ("CC0 1.0", True)
    assert license_info("http://creativecommons.org/licenses/by/3.0/") == ("CC BY 3.0", True)
    assert license_info("https://creativecommons.org/licenses/by/4.0/") == ("CC BY 4.0", True)
    assert license_info("http://creativecommons.org/licenses/by-nc/4.0/") == ("CC BY-NC 4.0", False)
    assert license_info("http://creativecommons.org/licenses/by-nc/3.0/") == ("CC BY-NC 3.0", False)
    assert license_info("http://creativecommons.org/licenses/sampling+/1.0/") == ("Sampling+ 1.0", True)
    assert license_info("Attribution NonCommercial") == ("CC BY-NC", False)


def test_relaxed_queries():
    assert relaxed_queries("footsteps voices") == ["footsteps voices", "footsteps", "voices"]


def test_candidates_are_ranked_and_the_rule_holds(server, tmp_path):
    src = source(server, tmp_path)
    objs = [manual_object("dog", x) for x in (0.1, 0.3, 0.5, 0.7)]
    a = choose_sounds(objs, src, n_candidates=3, rng=0)
    got = [x for x in a if x.candidate]
    assert len(got) == 3 and len({x.candidate.id for x in got}) == 3
    assert all("dog" in x.candidate.tags for x in got)
    missing = [x for x in a if not x.candidate]
    assert len(missing) == 1 and "already used" in missing[0].reason
    assert server.count("search") == 1  # one search per distinct term
    b = reroll(a, 0)  # reroll within the preloaded three: all in use, keeps its sound
    assert b[0].candidate == a[0].candidate and b[1:] == a[1:]


def test_off_topic_sound_loses(server, tmp_path):
    src = source(server, tmp_path)
    cands = src.search("dog bark", n=20)
    from imgext.sounds.selection import rank_candidates

    ranked = rank_candidates(cands, "dog bark", synonyms=("dog", "bark", "woof"))
    assert "synth" in ranked[-1].candidate.tags or ranked[-1].relevance < ranked[0].relevance
    assert all("music" not in r.candidate.tags for r in ranked[:5])


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_second_render_makes_no_request_at_all(server, tmp_path, detector, images_dir):
    src = source(server, tmp_path)
    first = render_image(str(images_dir / "wildcat.jpg"), str(tmp_path / "a"), detector=detector, source=src, settings=SETTINGS)
    assert any(o["sound"] and o["sound"]["source"] == "freesound" for o in first.scene["objects"])
    assert server.count("preview") > 0
    server.reset()
    src2 = source(server, tmp_path)  # a new process would build a new source on the same cache folder
    second = render_image(str(images_dir / "wildcat.jpg"), str(tmp_path / "b"), detector=detector, source=src2, settings=SETTINGS)
    assert server.count("preview") == 0 and server.count("search") == 0
    assert (tmp_path / "a" / "mix.wav").read_bytes() == (tmp_path / "b" / "mix.wav").read_bytes()
    assert [o["sound"] and o["sound"]["id"] for o in first.scene["objects"]] == [
        o["sound"] and o["sound"]["id"] for o in second.scene["objects"]
    ]


def test_corrupt_cache_entry_is_evicted_and_fetched_again(server, tmp_path):
    src = source(server, tmp_path)
    objs = [manual_object("cat", 0.5)]
    a = choose_sounds(objs, src, rng=0)
    cand = a[0].candidate
    good = src.fetch(cand)
    key = src._preview_key(cand, "preview-hq-mp3")
    src.cache.set_bytes(key, b"ID3" + b"\x00" * 5000)  # a damaged cached file
    server.reset()
    tracks, assignments, fetched = fetch_tracks(objs, a, src, settings=SETTINGS)
    assert tracks.n_tracks == 1 and assignments[0].candidate == cand
    assert fetched[0].data == good
    assert server.count("preview") == 1
    assert src.cache.get_bytes(key) == good


def test_interrupted_and_corrupt_downloads_never_reach_the_cache(server, tmp_path):
    src = source(server, tmp_path)
    objs = [manual_object("cow", 0.5)]
    cand = choose_sounds(objs, src, rng=0)[0].candidate
    server.faults.truncate_previews = 1
    data = src.fetch(cand)  # retried after the cut
    assert src.cache.get_bytes(src._preview_key(cand, "preview-hq-mp3")) == data
    src.invalidate(cand)
    server.faults.corrupt_previews = 2  # mp3 and ogg both garbage
    from imgext.errors import AudioError

    with pytest.raises(AudioError, match="not playable"):
        src.fetch(cand)
    assert src.cache.get_bytes(src._preview_key(cand, "preview-hq-mp3")) is None


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_nasty_names_stay_inside_the_zip(server, tmp_path):
    from imgext.vision.placement import with_query

    src = source(server, tmp_path)
    objs = [with_query(manual_object(lbl, x), q) for lbl, x, q in [
        ("dog", 0.1, "passwd dog"), ("dog", 0.3, "growl door"), ("cat", 0.5, "script cat"),
        ("cow", 0.7, "Users cow"), ("frog", 0.9, "Grenouille"), ("rooster", 0.2, "rooster village")]]
    assignments = choose_sounds(objs, src, n_candidates=1, rng=0)
    tracks, assignments, fetched = fetch_tracks(objs, assignments, src, settings=SETTINGS)
    from imgext.mix.mixer import Mixer
    from imgext.output.export import build_outputs, write_outputs

    outcome = Mixer(tracks).render(SETTINGS)
    files, plan = build_outputs(image=None, objects=objs, assignments=assignments, fetched=fetched, tracks=tracks,
                                 outcome=outcome, settings=SETTINGS, source_description=src.describe(), timings_s={})
    zpath = write_outputs(tmp_path / "out", files)
    names = zipfile.ZipFile(zpath).namelist()
    assert len(names) == len(set(n.lower() for n in names))
    for n in names:
        assert not n.startswith("/") and ".." not in n and "\\" not in n and all(ord(c) >= 32 for c in n)
    assert any("Grenouille" in n for n in names)
    assert all(p.resolve().is_relative_to((tmp_path / "out").resolve()) for p in (tmp_path / "out").rglob("*"))
    credits = (tmp_path / "out" / "ATTRIBUTION.txt").read_text()
    assert "../evil_user" in credits or "passwd" in credits  # names are credited as written, just never used as paths
    assert json.loads((tmp_path / "out" / "scene.json").read_text())["objects"][0]["sound"]["url"].startswith("https://")


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_two_scenes_download_at_once(server, tmp_path, detector, images_dir):
    results, errors = {}, []

    def run(name):
        try:
            src = source(server, tmp_path)  # both share one cache folder
            results[name] = render_image(str(images_dir / name), str(tmp_path / name), detector=detector,
                                         source=src, settings=SETTINGS)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("wildcat.jpg", "wilddog.jpg")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and set(results) == {"wildcat.jpg", "wilddog.jpg"}
    for name, res in results.items():
        files = zipfile.ZipFile(res.zip_path).namelist()
        assert "mix.wav" in files and res.out_dir.endswith(name)
        assert any(o["sound"] for o in res.scene["objects"])


def test_noncommercial_is_flagged(server, tmp_path):
    src = source(server, tmp_path)
    cands = src.search("dog", n=20)
    nc = [c for c in cands if not c.commercial_ok]
    assert nc and all("NC" in c.license for c in nc)
    from imgext.output.export import attribution_line

    line = attribution_line({"name": nc[0].name, "author": nc[0].author, "url": nc[0].url, "license": nc[0].license,
                             "commercial_ok": False})
    assert "NON-COMMERCIAL" in line and f"by {nc[0].author} -- " in line


def test_daily_limit_continues_from_cache(server, tmp_path):
    src = source(server, tmp_path)
    objs = [manual_object("dog", 0.2), manual_object("cat", 0.8)]
    warm = choose_sounds([objs[0]], src, rng=0)
    fetch_tracks([objs[0]], warm, src, settings=SETTINGS)
    server.faults.throttle_day = True
    src2 = source(server, tmp_path)
    a = choose_sounds(objs, src2, rng=0)
    assert a[0].candidate is not None  # cached search
    assert a[1].candidate is None and "daily" in a[1].reason
    tracks, _, _ = fetch_tracks(objs, a, src2, settings=SETTINGS)
    assert tracks.n_tracks == 1


def test_malformed_records_are_skipped(server, tmp_path):
    src = source(server, tmp_path)
    good = client(server).search("dog", max_results=2)
    bad = [{"id": "not-a-number", "name": "x"}, {"id": 5, "num_ratings": "many"}, "junk"]
    cands = src._candidates(good + bad)
    assert len(cands) == 2 and len(src.notes) == 3


def test_a_render_whose_source_fails_outright_is_an_error(server, tmp_path, detector, images_dir):
    server.faults.refuse_key = True
    with pytest.raises(AuthError, match="refused"):
        render_image(str(images_dir / "wildcat.jpg"), str(tmp_path / "o"), detector=detector,
                     source=source(server, tmp_path), settings=SETTINGS)
    assert not (tmp_path / "o" / "scene.json").exists()  # no silent, empty "success"


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_cli_exit_code_when_freesound_refuses_the_key(server, tmp_path, images_dir):
    import os
    import subprocess
    import sys

    server.faults.refuse_key = True
    env = dict(os.environ, FREESOUND_API_KEY=KEY, IMGEXT_FREESOUND_URL=server.base_url)
    r = subprocess.run([sys.executable, "-m", "imgext", "render", str(images_dir / "wildcat.jpg"), "--out",
                        str(tmp_path / "o"), "--source", "freesound"], capture_output=True, text=True, env=env,
                       cwd=str(Path(__file__).resolve().parents[1]), timeout=300)
    assert r.returncode == 1 and "API key was refused" in r.stderr and "Traceback" not in r.stderr
