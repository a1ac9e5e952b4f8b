"""Relevance scoring: decoys lose, a label with no good candidate gets no sound, the model loads offline,
near-duplicates (LAION-CLAP cosine > 0.95) count as one sound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgext.sounds.base import Candidate
from imgext.sounds.freesound import candidate_from_record
from imgext.sounds.relevance import clap_vector, judge, near_duplicate, score_candidates, text_model
from imgext.sounds.selection import choose, choose_sounds, rank_candidates, reroll
from imgext.vision.detection import Detection
from imgext.vision.placement import LabelMap, place_objects

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "relevance_set.json"


def _rec(rid, name, tags, *, desc="", cat="Sound effects", sub="Animals", dur=2.0, single=True, loop=False, **kw):
    return candidate_from_record({
        "id": rid, "name": name, "tags": tags.split(), "description": desc, "category": cat, "subcategory": sub,
        "duration": dur, "single_event": single, "loopable": loop, "reverbness": False, "avg_rating": 4.0,
        "num_ratings": 5, **kw,
    })


def _labelled() -> list[dict]:
    return json.loads(DATA.read_text(encoding="utf-8"))["labels"]


def _ranked(entry: dict):
    cands = [candidate_from_record(r) for r in entry["records"]]
    syn = LabelMap.default().lookup(entry["label"]).synonyms
    return rank_candidates(cands, entry["query"], label=entry["label"], synonyms=syn, role=entry["role"])


@pytest.mark.parametrize(
    "decoy",
    [
        ("Hot dog sizzling on grill", "hotdog grill sizzle food bbq cooking", "Sound effects", "Objects / House appliances"),
        ("Dog Days (guitar loop)", "guitar loop acoustic summer music", "Music", "Solo instrument"),
        ("Barking Dog Blues", "dog barking blues guitar song", "Music", "Multiple instruments"),
        ("Toy dog barking (battery)", "toy dog bark barking battery", "Sound effects", "Objects / House appliances"),
        ("Three Dog Night - live bootleg", "band concert live rock", "Music", "Multiple instruments"),
        ("Man says 'good dog'", "voice male speech dog", "Speech", "Solo speech"),
        ("Cat meowing", "cat meow kitten pet", "Sound effects", "Animals"),
    ],
)
def test_real_dog_beats_each_decoy(decoy):
    name, tags, cat, sub = decoy
    good = _rec(1, "Dog barking in yard", "dog bark barking yard outdoor", dur=6.0, single=False)
    bad = _rec(2, name, tags, cat=cat, sub=sub, dur=3.0)
    ranked = rank_candidates([bad, good], "dog barking", label="dog", synonyms=("bark", "woof"), role="event")
    assert ranked[0].candidate.id == good.id and ranked[0].rejected is None
    assert ranked[1].rejected is not None, ranked[1].reason  # never a fallback choice


def test_monologue_is_not_a_person_and_piano_is_not_a_keyboard():
    crowd = _rec(1, "People talking in a cafe", "people talking chatter crowd murmur cafe", cat="Speech",
                 sub="Conversation / Crowd", dur=90, single=False, loop=True)
    monologue = _rec(2, "Monologue - man reading news", "speech monologue male voice reading news", cat="Speech",
                     sub="Solo speech", dur=120, single=False)
    ranked = rank_candidates([monologue, crowd], "footsteps voices", label="person",
                             synonyms=LabelMap.default().lookup("person").synonyms, role="area")
    assert ranked[0].candidate.id == crowd.id and ranked[1].rejected and "solo speech" in ranked[1].rejected

    typing = _rec(3, "Typing on a laptop keyboard", "typing keyboard laptop keys office", sub="Objects / House appliances",
                  dur=30, single=False, loop=True)
    piano = _rec(4, "Electric keyboard piano piece", "keyboard piano melody keys music", cat="Music",
                 sub="Solo instrument", dur=95, single=False)
    ranked = rank_candidates([piano, typing], "keyboard typing", label="keyboard", role="area")
    assert ranked[0].candidate.id == typing.id and "music" in ranked[1].rejected


def test_music_is_fine_when_the_object_asks_for_it():
    song = _rec(1, "Guitar song on the porch", "guitar song acoustic music", cat="Music", sub="Solo instrument", dur=60)
    [rel] = score_candidates([song], label="guitar", phrase="guitar music")
    assert rel.kinds == () and judge([rel]) == [None]


def test_label_with_no_good_candidate_gets_no_sound_and_the_reason():
    entry = next(e for e in _labelled() if e["label"] == "elephant")
    assert not any(r["good"] for r in entry["records"])
    ranked = _ranked(entry)
    assert all(r.rejected for r in ranked)

    class Fixed:
        name = "fixed"

        def describe(self):
            return "fixed candidates"

        def search(self, query, *, n=10, synth_kind=None, role=None):
            return [candidate_from_record(r) for r in entry["records"]][:n]

    [obj] = place_objects([Detection("elephant", 0.9, (0.1, 0.1, 0.5, 0.5))])
    [a] = choose_sounds([obj], Fixed(), n_candidates=12)
    assert a.candidate is None
    assert "no good sound for 'elephant'" in a.reason and "rejected" in a.reason
    assert len(a.ranked) == 12  # all candidates kept, with their reasons, for the UI


def test_labelled_set_first_choice_is_never_a_decoy():
    """The bench's data set: the first accepted candidate is good for every label (no decoy chosen)."""
    for entry in _labelled():
        truth = {f"freesound:{r['id']}": r["good"] for r in entry["records"]}
        accepted = [r for r in _ranked(entry) if r.rejected is None]
        if any(truth.values()):
            assert accepted and truth[accepted[0].candidate.id], (entry["label"], accepted[:1])
        else:
            assert not accepted
        assert all(truth[r.candidate.id] for r in accepted[:1])


def test_reason_names_the_phrase_the_role_fit_and_the_length():
    bark = _rec(1, "dog_bark_single_02.wav", "dog bark woof one-shot", dur=2.1)
    [r] = rank_candidates([bark], "dog barking", label="dog", role="event")
    assert r.reason.startswith("title and tags match 'dog barking' 0.")
    assert "single event" in r.reason and "2.1 s" in r.reason
    assert 0.0 <= r.relevance <= 1.0


def test_builtin_and_local_candidates_are_scored_the_same_way():
    synthetic = Candidate(id="builtin:dog_bark:0", name="dog bark #1 (synthetic)", source="builtin",
                          tags=("dog", "barking", "bark"), synthetic=True)
    local = Candidate(id="local:a.wav", name="a", source="local", tags=("piano", "melody", "dog"), duration_s=30.0)
    ranked = rank_candidates([local, synthetic], "dog barking", label="dog", synonyms=("bark",))
    assert ranked[0].candidate.id == synthetic.id and ranked[0].rejected is None
    assert ranked[1].rejected and "music" in ranked[1].rejected  # sidecar tags say it is a piano piece


def test_model_loads_offline_without_network(tmp_path):
    """WordLlama loads from the wheel with HF_HUB_OFFLINE=1 and every socket refused."""
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('network disabled in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from imgext.sounds.relevance import text_model, model_status\n"
        "m = text_model()\n"
        "assert m is not None, model_status()\n"
        "v = m.embed(['dog barking', 'hot dog sizzling'])\n"
        "print(model_status(), v.shape)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "WordLlama" in out.stdout and "(2, 256)" in out.stdout
    assert not any((tmp_path / "cache").rglob("*.safetensors"))  # nothing downloaded or copied


def test_model_is_loaded_once_per_process():
    assert text_model() is text_model()


def test_model_embeds_as_the_wordllama_package_does():
    """The light loader (no ``import wordllama`` at start-up) gives the package's embeddings bit for bit,
    across batches of 64 (padding is per batch), empty and non-ASCII texts."""
    wordllama = pytest.importorskip("wordllama")
    texts = (["dog barking", "hot dog sizzling", "a long description of a bus " * 30, "", "émoji 🚌 café"]
             + [f"record {i}: engine idling, tags {'x ' * (i % 7)}" for i in range(140)])
    reference = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    ours = text_model().embed(texts)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), 256)
    np.testing.assert_array_equal(ours, reference.embed(texts))


def _vec(seed: int, *, near: np.ndarray | None = None, noise: float = 0.0) -> tuple:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(512) if near is None else near + noise * rng.standard_normal(512)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def test_near_duplicates_count_as_one_sound():
    base = np.asarray(_vec(1))
    a = _rec(1, "Dog barking in yard", "dog bark barking", sim_laion_clap=list(_vec(1)))
    b = _rec(2, "Dog barking in yard (copy)", "dog bark barking", sim_laion_clap=list(_vec(2, near=base, noise=0.01)))
    c = _rec(3, "Guard dog barking", "dog bark barking guard", sim_laion_clap=list(_vec(3)))
    assert clap_vector(a) is not None and abs(float(np.linalg.norm(clap_vector(a))) - 1.0) < 1e-9
    assert float(clap_vector(a) @ clap_vector(b)) > 0.95 > float(clap_vector(a) @ clap_vector(c))
    assert near_duplicate(b, [a]) is a and near_duplicate(c, [a, b]) is None

    class Fixed:
        name = "fixed"

        def describe(self):
            return "fixed"

        def search(self, query, *, n=10, synth_kind=None, role=None):
            return [a, b, c]

    objs = place_objects([Detection("dog", 0.9, (0.1 * i, 0.1, 0.1 * i + 0.1, 0.3)) for i in range(3)])
    picks = choose_sounds(objs, Fixed(), rng=0)
    chosen = [p.candidate.id for p in picks if p.candidate]
    assert len(chosen) == 2 and not {a.id, b.id} <= set(chosen)  # a and b are one sound
    empty = next(p for p in picks if p.candidate is None)
    assert "already used" in empty.reason
    # a reroll never lands on the twin of a sound another object uses
    k = next(i for i, p in enumerate(picks) if p.candidate and p.candidate.id == c.id)
    rolled = reroll(picks, k)
    assert rolled[k].candidate.id == c.id and "no unused candidate" in rolled[k].reason
    twin = b.id if a.id in chosen else a.id
    with pytest.raises(Exception, match="near-duplicate"):
        choose(picks, k, twin)


def test_scene_json_keeps_relevance_reason_and_category():
    from imgext.output.plan import ObjectRecord, SoundRecord

    [obj] = place_objects([Detection("dog", 0.9, (0.1, 0.1, 0.5, 0.5))])
    cand = _rec(7, "Dog barking in yard", "dog bark barking", dur=6.0)
    [r] = rank_candidates([cand], "dog barking", label="dog", role="event")
    rec = ObjectRecord(object=obj, sound=SoundRecord.of(cand, file="sources/00_dog.mp3"), reason=r.reason,
                       relevance=r.relevance)
    d = json.loads(json.dumps(rec.to_dict()))
    assert d["relevance"] == r.relevance and d["reason"].startswith("title and tags match 'dog barking'")
    assert d["sound"]["category"] == "Sound effects" and d["sound"]["subcategory"] == "Animals"
    back = ObjectRecord.from_dict(d)
    assert back.relevance == r.relevance and back.sound.category == "Sound effects"


def test_fallback_source_steps_in_when_every_sound_is_rejected():
    from imgext.sounds.builtin import BuiltinSource
    from imgext.sounds.sources import FallbackSource

    decoys = [_rec(1, "Toy elephant squeak", "toy squeak plush rubber elephant", sub="Objects / House appliances"),
              _rec(2, "Baby Elephant Walk (jazz combo)", "jazz combo song swing", cat="Music", sub="Multiple instruments")]

    class Decoys:
        name = "decoys"

        def describe(self):
            return "decoys"

        def search(self, query, *, n=10, synth_kind=None, role=None):
            return decoys

        def fetch(self, candidate, *, duration_s, sample_rate=44100):
            raise AssertionError("never fetched")

    src = FallbackSource(Decoys(), BuiltinSource())
    [obj] = place_objects([Detection("elephant", 0.9, (0.1, 0.1, 0.5, 0.5))])
    [a] = choose_sounds([obj], src)
    assert a.candidate is not None and a.candidate.synthetic
    assert any("every decoys sound for 'elephant trumpet' was rejected" in n for n in src.notes)
    assert {r.candidate.id for r in a.ranked if r.rejected} == {"freesound:1", "freesound:2"}


def test_installed_version_is_what_importlib_metadata_says():
    import importlib.metadata
    import importlib.util
    from pathlib import Path

    from imgext.sounds.relevance import _installed_version

    spec = importlib.util.find_spec("wordllama")
    folder = Path(next(iter(spec.submodule_search_locations)))
    assert _installed_version(folder) == importlib.metadata.version("wordllama")
