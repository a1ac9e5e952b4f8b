"""Choosing sounds: ranking, distinct picks, no reuse, exhaustion, reroll; the local library."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from imgext.errors import ParameterError
from imgext.sounds.base import Candidate
from imgext.sounds.library import LocalLibrary
from imgext.sounds.selection import choose_sounds, rank_candidates, reroll
from imgext.sounds.sources import open_source
from imgext.vision.detection import Detection
from imgext.vision.placement import place_objects


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "lib"
    (root / "dogs").mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"dogs/dog_bark_{i:02d}.wav" for i in range(4)] + ["cat_meow.wav", "music_loop_dog.wav", "rain_heavy.flac"]
    for n in names:
        sf.write(root / n, (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
    (root / "rain_heavy.flac.json").write_text(json.dumps({"tags": ["rain", "storm"], "author": "ann", "license": "CC BY 4.0"}))
    return root


def _objs(*labels):
    dets = [Detection(label, 0.9, (0.1 * i, 0.1, 0.1 * i + 0.1, 0.3)) for i, label in enumerate(labels)]
    return place_objects(dets)


def test_rank_puts_off_topic_last():
    good = Candidate(id="a", name="Dog barking", source="x", tags=("dog", "bark"), duration_s=12.0, rating=4.0, num_ratings=10)
    short = Candidate(id="b", name="dog", source="x", tags=("dog",), duration_s=0.5)
    off = Candidate(id="c", name="Synth pad", source="x", tags=("music", "synth"), duration_s=60.0, rating=5.0, num_ratings=100)
    ranked = rank_candidates([off, short, good], "dog barking", label="dog", synonyms=["bark", "woof"], duration_s=20)
    assert [r.candidate.id for r in ranked] == ["a", "b", "c"]
    assert ranked[0].rejected is None and ranked[0].relevance > ranked[1].relevance
    assert ranked[-1].rejected is not None and "rejected:" in ranked[-1].reason
    assert ranked[0].reason.startswith("title and tags match 'dog barking'") and "12.0 s" in ranked[0].reason


def test_local_library_tags_from_names_and_sidecars(library):
    lib = LocalLibrary(library)
    found = lib.search("dog barking", n=10)
    assert {c.id for c in found[:4]} == {f"local:dogs/dog_bark_{i:02d}.wav" for i in range(4)}
    rain = lib.search("rain", n=5)
    assert rain[0].author == "ann" and rain[0].license == "CC BY 4.0" and "storm" in rain[0].tags
    assert lib.search("elephant", n=5) == []
    data = lib.fetch(found[0], duration_s=5)
    assert data[:4] == b"RIFF"


def test_local_library_refuses_escape(library):
    lib = LocalLibrary(library)
    evil = Candidate(id="local:../../etc/passwd", name="x", source="local", extra={"path": "../../etc/passwd"})
    with pytest.raises(Exception, match="outside the library"):
        lib.fetch(evil, duration_s=1)


def test_distinct_no_reuse_and_exhaustion(library):
    objs = _objs("dog", "dog", "dog", "dog", "dog", "dog", "cat")
    source = LocalLibrary(library)
    a = choose_sounds(objs, source, n_candidates=10, rng=3)
    ids = [x.candidate.id for x in a if x.candidate]
    assert len(ids) == len(set(ids))  # never the same sound twice
    dogs = [x for x in a[:6]]
    assert sum(x.candidate is not None for x in dogs) == 4  # 4 barks; the music loop is rejected; then exhausted
    empty = [x for x in dogs if x.candidate is None]
    assert len(empty) == 2 and all("already used" in x.reason for x in empty)
    assert a[6].candidate.id == "local:cat_meow.wav"


def test_on_topic_sounds_are_preferred(library):
    a = choose_sounds(_objs("dog", "dog"), LocalLibrary(library), rng=0)
    assert all(x.candidate.id.startswith("local:dogs/") for x in a)


def test_same_seed_same_choice_other_seed_may_differ(library):
    objs = _objs("dog", "dog")
    src = LocalLibrary(library)
    first = [x.candidate.id for x in choose_sounds(objs, src, rng=7)]
    assert first == [x.candidate.id for x in choose_sounds(objs, src, rng=7)]
    seen = {tuple(x.candidate.id for x in choose_sounds(objs, src, rng=s)) for s in range(10)}
    assert len(seen) > 1  # random among the shortlist, not always the top two


def test_no_result_is_explained(library):
    a = choose_sounds(_objs("elephant"), LocalLibrary(library))
    assert a[0].candidate is None and "no sound found for 'elephant trumpet'" in a[0].reason


def test_skipped_objects_get_no_sound(library):
    a = choose_sounds(_objs("tie", "dog"), LocalLibrary(library))
    assert a[0].candidate is None and "no sound on its own" in a[0].reason
    assert a[1].candidate is not None


def test_reroll_changes_one_object_only(library):
    objs = _objs("dog", "dog", "cat")
    a = choose_sounds(objs, LocalLibrary(library), rng=1)
    b = reroll(a, 0)
    assert b[0].candidate.id != a[0].candidate.id
    assert b[0].candidate.id not in {a[1].candidate.id, a[2].candidate.id}
    assert b[1] == a[1] and b[2] == a[2]
    c = reroll(a, 2)  # the only cat: nothing else to take, the current sound is kept
    assert c[2].candidate.id == a[2].candidate.id and "no unused candidate" in c[2].reason
    with pytest.raises(ParameterError):
        reroll(a, 9)


def test_builtin_source_gives_ten_synthetic_variants():
    src = open_source("builtin")
    cands = src.search("dog barking", n=10, synth_kind="dog_bark")
    assert len({c.id for c in cands}) == 10 and all(c.synthetic for c in cands)
    assert src.kind_for("car engine idling") == "engine_idle"  # a parked car idles (issue 10)
    assert src.kind_for("puppy woof") == "dog_bark"
    assert src.kind_for("strong wind") == "wind"


def test_open_source_specs(tmp_path, library):
    assert open_source("builtin").name == "builtin"
    assert open_source(f"local:{library}").name == "local"
    assert open_source(None).name == "builtin"  # no key configured
    with pytest.raises(ParameterError, match="API key"):
        open_source("freesound")
    with pytest.raises(ParameterError, match="unknown sound source"):
        open_source("soundcloud")
    with pytest.raises(ParameterError, match="not found"):
        open_source(f"local:{tmp_path / 'missing'}")


def test_choose_a_specific_candidate(library):
    from imgext.sounds.selection import choose

    a = choose_sounds(_objs("dog", "dog"), LocalLibrary(library), rng=0)
    spare = next(r.candidate.id for r in a[0].ranked if r.candidate.id not in {x.candidate.id for x in a})
    b = choose(a, 0, spare)
    assert b[0].candidate.id == spare and "chosen by you" in b[0].reason and b[1] == a[1]
    with pytest.raises(ParameterError, match="already used"):
        choose(a, 0, a[1].candidate.id)
    with pytest.raises(ParameterError, match="not a candidate"):
        choose(a, 0, "local:nope.wav")
