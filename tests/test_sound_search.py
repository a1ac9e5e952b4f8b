"""Role-aware Freesound search against the local Freesound-compatible server: descriptor and taxonomy
filters, the fields asked for, similarity ("more like this") and near-duplicate re-uploads."""

from __future__ import annotations

import numpy as np
import pytest

from imgext.errors import ParameterError
from imgext.sounds.cache import DiskCache
from imgext.sounds.filters import TAXONOMY_EXCLUSIONS, asked_kinds, role_filters
from imgext.sounds.freesound import SEARCH_FIELDS, FreesoundClient, FreesoundSource
from imgext.sounds.selection import choose_sounds, more_like_this
from imgext.vision.placement import manual_object, with_role
from tests.freesound_server import FreesoundServer

KEY = "test-key"


@pytest.fixture(scope="module")
def server():
    with FreesoundServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean(server):
    server.reset()
    yield
    server.reset()


def client(server):
    return FreesoundClient(KEY, base_url=server.base_url, backoff_s=0.01, timeout=(2, 5))


def source(server, tmp_path):
    return FreesoundSource(client(server), cache=DiskCache(tmp_path / "cache"))


def _searches(server):
    return [r for r in server.requests if r.kind in ("search", "similar")]


def test_role_filters_strictest_first_with_the_taxonomy():
    event = role_filters("event", words=["dog", "barking"])
    assert event[0].startswith("single_event:true duration:[0.2 TO 10]")
    assert all(all(clause in f for clause in TAXONOMY_EXCLUSIONS.values()) for f in event)
    assert event[-1] == " ".join(TAXONOMY_EXCLUSIONS.values())  # the last step: taxonomy only
    bed = role_filters("bed", words=["rain"], base='license:("Creative Commons 0")')
    assert bed[0].startswith('license:("Creative Commons 0") duration:[10 TO *]') and "loopable:true" in bed[1]
    assert role_filters(None, words=["rain"]) == [" ".join(TAXONOMY_EXCLUSIONS.values())]


def test_objects_that_ask_for_music_or_speech_keep_it():
    assert asked_kinds(["piano", "music"]) == {"music", "instrument sample"}
    assert asked_kinds(["footsteps", "voices", "talking"]) == set()  # a crowd is not a monologue
    flt = role_filters("area", words=["radio", "speech"])[-1]
    assert "Solo speech" not in flt and '-category:"Music"' in flt


def test_event_search_asks_for_descriptors_and_gets_single_events(server, tmp_path):
    cands = source(server, tmp_path).search("dog bark", n=3, role="event")
    first = _searches(server)[0]
    assert set(first.query["fields"].split(",")) == set(SEARCH_FIELDS)
    assert {"category", "subcategory", "single_event", "loopable", "reverbness", "sim_laion_clap"} <= set(SEARCH_FIELDS)
    assert first.query["filter"].startswith("single_event:true duration:[0.2 TO 10]")
    assert len(cands) == 3
    assert all(c.extra["single_event"] is True and c.duration_s <= 10 for c in cands)
    assert all(c.extra["category"] == "Sound effects" for c in cands)
    assert all(len(c.extra["sim_laion_clap"]) == 512 for c in cands)


def test_strict_filter_loosens_when_too_few_pass(server, tmp_path):
    cands = source(server, tmp_path).search("dog", n=12, role="event")
    filters = [r.query.get("filter", "") for r in _searches(server)]
    assert filters[0].startswith("single_event:true") and len(filters) >= 2
    assert len(cands) == 12 and any(c.extra.get("single_event") is not True for c in cands)


def test_music_and_instrument_samples_are_left_out(server, tmp_path):
    cands = source(server, tmp_path).search("dog", n=30, role="bed")
    names = {c.name for c in cands}
    assert cands and "Dog Days – warm synth pad loop" not in names
    assert all(c.extra.get("category") not in ("Music", "Instrument samples") for c in cands)
    asked = source(server, tmp_path).search("synth pad music", n=5)  # the object asks for music
    assert "Dog Days – warm synth pad loop" in {c.name for c in asked}


def test_bed_search_prefers_long_then_loopable(server, tmp_path):
    cands = source(server, tmp_path).search("frog", n=3, role="bed")  # no frog recording is 10 s long
    filters = [r.query["filter"] for r in _searches(server)]
    assert [f.split(" -")[0] for f in filters] == ["duration:[10 TO *]", "loopable:true", '-category:"Music"']
    assert len(cands) == 3 and cands[0].name == "Frogs chorus at dusk" and cands[0].extra["loopable"] is True


def test_client_similar_uses_the_similar_resource_or_search_with_a_filter(server):
    dog = next(r for r in server.catalogue if r["name"] == "Dog barking in yard")
    c = client(server)
    plain = c.similar(dog["id"], max_results=5)
    req = _searches(server)[-1]
    assert req.kind == "similar" and req.path == f"/apiv2/sounds/{dog['id']}/similar/" and "filter" not in req.query
    assert plain and dog["id"] not in {r["id"] for r in plain}
    v = np.asarray(dog["sim_laion_clap"])
    cos = [float(np.dot(v, r["sim_laion_clap"])) for r in plain]
    assert cos == sorted(cos, reverse=True) and min(cos) >= 0.7
    assert all("dog" in r["tags"] for r in plain)  # neighbours are the same animal
    filtered = c.similar(dog["id"], filter="single_event:true", max_results=5)
    req = _searches(server)[-1]
    assert req.kind == "search" and req.query["similar_to"] == str(dog["id"]) and req.query["filter"] == "single_event:true"
    assert filtered and all(r["single_event"] is True for r in filtered)


def test_more_like_this_scores_and_keeps_the_rule(server, tmp_path):
    src = source(server, tmp_path)
    objs = [with_role(manual_object("dog", x), "event") for x in (0.2, 0.7)]
    a = choose_sounds(objs, src, n_candidates=4, rng=0)
    assert all(x.candidate for x in a)
    b = more_like_this(a, 0, src, objs[0], n=8)
    assert b[1] == a[1]
    assert b[0].candidate is not None and b[0].candidate.id not in {a[0].candidate.id, a[1].candidate.id}
    assert b[0].reason.startswith(f"like {a[0].candidate.name!r}; title and tags match")
    assert b[0].choice.rejected is None and len(b[0].ranked) > len(a[0].ranked)
    sim = [r for r in server.requests if r.query.get("similar_to") or r.kind == "similar"]
    assert sim and "single_event:true" in sim[0].query.get("filter", "")  # same role filter as the search
    with pytest.raises(ParameterError, match="needs a current sound"):
        more_like_this([type(a[0])(0, "dog barking", None, "none")], 0, src, objs[0])


def test_a_reupload_is_never_used_twice(server, tmp_path):
    twin, orig = (next(r for r in server.catalogue if r["name"] == n)
                  for n in ("Hund bellt – Bauernhof", "Dog barking in yard"))
    assert float(np.dot(twin["sim_laion_clap"], orig["sim_laion_clap"])) > 0.95
    src = source(server, tmp_path)
    objs = [with_role(manual_object("dog", x / 20), "bed") for x in range(16)]
    a = choose_sounds(objs, src, n_candidates=20, rng=0)
    ids = {x.candidate.extra["freesound_id"] for x in a if x.candidate}
    assert not {twin["id"], orig["id"]} <= ids


def test_ambience_search_asks_for_long_loopable_recordings(server, tmp_path):
    """The scene's ambience (an ``amb_`` kind) is searched as a long, loopable bed, strictest filter first."""
    from imgext.composition.ambience import ambiences
    from imgext.sounds.filters import AMBIENCE_FILTERS

    amb = ambiences()["countryside"]
    cands = source(server, tmp_path).search("frogs chorus dusk", n=2, synth_kind=amb.synth, role="area")
    received = [r.query.get("filter", "") for r in _searches(server) if r.query.get("query") == "frogs chorus dusk"]
    steps = [f.split(" -category")[0] for f in received]
    assert steps[: len(AMBIENCE_FILTERS)] == list(AMBIENCE_FILTERS)
    assert received[0].startswith("loopable:true duration:[30 TO *]") and '-category:"Music"' in received[0]
    assert 'category:"Soundscapes" duration:[20 TO *]' in received[1]
    assert cands and cands[0].name == "Frogs chorus at dusk" and cands[0].extra["loopable"] is True
    # an object that is not the ambience keeps its role's filters
    server.reset()
    source(server, tmp_path / "other").search("frogs chorus dusk", n=2, synth_kind="water", role="area")
    assert _searches(server)[0].query["filter"].startswith("duration:[10 TO *]")
