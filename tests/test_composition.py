"""The composed soundscape (issue 10): events in time, beds from random offsets, areas wide, an ambience.

Measured on real audio: the shared CC0 dog recording for events, the synthesiser's beds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgext.composition.ambience import add_ambience, ambience_names, choose_ambience
from imgext.composition.arrange import arrange_object, load_clip, render_bed
from imgext.composition.roles import check_role, event_regions, resolve_objects
from imgext.composition.schedule import EventSpec, Region, expected_count, schedule_events
from imgext.errors import ParameterError
from imgext.options import MixSettings
from imgext.sounds.synth import synthesize
from imgext.vision.detection import Detection
from imgext.vision.placement import Role, place_objects, with_role

SR = 44100
SOUNDS = Path(__file__).resolve().parents[2] / "shared" / "sounds"


@pytest.fixture(scope="module")
def bark() -> np.ndarray:
    """A 1 s bark: the loudest second of the shared CC0 dog recording."""
    clip = load_clip((SOUNDS / "dog.mp3").read_bytes(), name="dog", sample_rate=SR, max_seconds=30)
    energy = np.concatenate([[0.0], np.cumsum(clip.astype(np.float64) ** 2)])
    env = energy[SR:] - energy[:-SR]  # the energy of every 1 s window (a running sum, not an O(n * SR) convolution)
    start = int(np.argmax(env))
    return clip[start : start + SR].copy()


def dog(box=(0.05, 0.3, 0.35, 0.9)):
    return place_objects([Detection("dog", 0.9, box)])[0]


def onsets_of(track: np.ndarray, threshold_db: float = -30.0) -> np.ndarray:
    """Times (s) where the 10 ms envelope rises through ``threshold_db`` under the track's peak."""
    hop = SR // 100
    frames = track[: track.size // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    on = level > level.max() + threshold_db
    return np.flatnonzero(on[1:] & ~on[:-1]) / 100.0


def test_a_bark_is_scheduled_not_looped(bark):
    settings = MixSettings(duration_s=30.0, seed=3)
    composed = arrange_object(dog(), 0, bark, settings=settings)
    events = composed.arrangement.events
    lo, hi = expected_count(EventSpec(6.0, 1.0), 30.0)
    assert composed.arrangement.role is Role.EVENT and lo <= len(events) <= hi <= 5  # not 30 repeats
    gaps = np.diff([e.onset_s for e in events])
    assert np.all(gaps >= EventSpec(6.0, 1.0).gap_s - 1e-9)
    assert all(e.onset_s + e.duration_s <= 30.0 for e in events)
    assert all(abs(e.gain_db) <= 2.0 for e in events) and len({round(e.gain_db, 3) for e in events}) == len(events)
    # The envelope has no periodicity: no autocorrelation peak above 0.5 at any lag beyond 2 s.
    hop = SR // 20
    track = composed.track
    env = np.sqrt(np.mean(track[: track.size // hop * hop].astype(np.float64).reshape(-1, hop) ** 2, axis=1))
    env -= env.mean()
    ac = np.correlate(env, env, mode="full")[env.size - 1 :] / np.dot(env, env)
    assert np.max(ac[2 * 20 :]) < 0.5
    # The rendered onsets are where the schedule says.
    heard = onsets_of(track)
    for e in events:
        assert np.min(np.abs(heard - e.onset_s)) < 0.1, (e.onset_s, heard)


def test_onsets_are_not_periodic(bark):
    """Inter-onset intervals over ten seeds at activity 3 (18 barks a minute): coefficient of variation > 0.3."""
    cvs = []
    for seed in range(10):
        events = arrange_object(dog(), 0, bark, settings=MixSettings(duration_s=30.0, seed=seed, activity=3.0)).arrangement.events
        ioi = np.diff([e.onset_s for e in events])
        cvs.append(np.std(ioi) / np.mean(ioi))
    assert np.mean(cvs) > 0.3 and min(cvs) > 0.15, cvs


def test_same_seed_same_schedule_other_seed_another(bark):
    a = arrange_object(dog(), 0, bark, settings=MixSettings(duration_s=30.0, seed=5))
    b = arrange_object(dog(), 0, bark, settings=MixSettings(duration_s=30.0, seed=5))
    c = arrange_object(dog(), 0, bark, settings=MixSettings(duration_s=30.0, seed=6))
    assert a.track.tobytes() == b.track.tobytes() and a.arrangement == b.arrangement
    assert [e.onset_s for e in a.arrangement.events] != [e.onset_s for e in c.arrangement.events]


def test_events_use_other_parts_of_the_source():
    clip = load_clip((SOUNDS / "dog.mp3").read_bytes(), name="dog", sample_rate=SR, max_seconds=30)
    regions = event_regions(clip, SR, event_s=1.0)
    assert len(regions) >= 4 and all(0.05 <= r.duration_s <= 3.0 for r in regions)
    events = schedule_events(EventSpec(12.0, 1.0), regions, duration_s=30.0, rng=np.random.default_rng(0))
    used = [e.source_s for e in events]
    assert len(set(used)) > 1 and all(a != b for a, b in zip(used, used[1:]))


def test_an_event_crossing_the_end_is_moved_or_fits():
    regions = [Region(0.0, 4.0)]
    for seed in range(20):
        for e in schedule_events(EventSpec(6.0, 4.0), regions, duration_s=10.0, rng=np.random.default_rng(seed)):
            assert e.onset_s + e.duration_s <= 10.0 + 1e-9


def frame_db(x: np.ndarray, frame_s: float) -> np.ndarray:
    hop = max(1, int(frame_s * SR))
    f = x[: x.size // hop * hop].astype(np.float64).reshape(-1, hop)
    return 10 * np.log10(np.mean(f**2, axis=1) + 1e-20)


def test_a_bed_has_no_gap_and_no_click_and_beds_start_apart():
    clip = synthesize("engine_idle", duration_s=4.0, rng=1)  # shorter than the scene: it loops 8 times
    bus = place_objects([Detection("bus", 0.9, (0.5, 0.1, 1.0, 0.8)), Detection("truck", 0.8, (0.0, 0.2, 0.4, 0.7))])
    a = arrange_object(bus[0], 0, clip, settings=MixSettings(duration_s=30.0, seed=1))
    b = arrange_object(bus[1], 1, clip, settings=MixSettings(duration_s=30.0, seed=1))
    assert a.arrangement.role is Role.BED and a.arrangement.offset_s != b.arrangement.offset_s
    body = a.track[int(0.1 * SR) : -int(0.6 * SR)]
    level = frame_db(body, 0.01)
    assert np.all(level > np.median(level) - 30.0)  # no 10 ms frame drops out: no gap longer than 50 ms
    # No click at the seams: the sample-to-sample step never stands out from the sound's own.
    step = np.abs(np.diff(body))
    assert step.max() < 8.0 * np.percentile(step, 99.9)
    direct = render_bed(clip, offset_s=a.arrangement.offset_s, n_samples=30 * SR, sample_rate=SR)
    assert np.corrcoef(direct, a.track)[0, 1] > 0.999  # the arranged track is that loop, levelled


def test_an_area_is_wide():
    from imgext.mix.render import render_mix

    clip = synthesize("voices", duration_s=12.0, rng=2)
    crowd = with_role(place_objects([Detection("person", 0.9, (0.0, 0.1, 1.0, 0.9))])[0], "area")
    composed = arrange_object(crowd, 0, clip, settings=MixSettings(duration_s=10.0, seed=0))
    assert composed.side is not None and composed.arrangement.width == 1.0
    point = render_mix(composed.track[None], pans=[0.0], gains_db=[0.0], sample_rate=SR)
    wide = render_mix(composed.track[None], pans=[0.0], gains_db=[0.0], sample_rate=SR,
                      sides={0: (composed.arrangement.width, composed.side)})
    assert np.corrcoef(point.audio)[0, 1] > 0.99 and abs(np.corrcoef(wide.audio)[0, 1]) < 0.3
    assert np.max(np.abs(wide.stem(composed.track[None], 0) - wide.audio)) <= 1e-6  # the stem holds the side too


def test_one_shot_given_a_bed_role_becomes_an_event(bark):
    role, note = check_role(Role.BED, bark, SR)
    assert role is Role.EVENT and "one-shot" in note
    assert check_role(Role.BED, synthesize("rain", duration_s=20.0, rng=0), SR) == (Role.BED, None)
    assert check_role(Role.BED, bark, SR, descriptors={"loopable": True}) == (Role.BED, None)


def test_persons_become_a_crowd_and_duplicates_sound_once():
    one = resolve_objects(place_objects([Detection("person", 0.9, (0.4, 0.2, 0.5, 0.9))]))
    assert one[0].label == "person" and one[0].role == "event"  # one person: footsteps or a voice
    many = resolve_objects(place_objects([Detection("person", 0.9 - 0.05 * i, (0.1 * i, 0.3, 0.1 * i + 0.08, 0.9))
                                          for i in range(6)]))
    sounding = [o for o in many if not o.skipped]
    assert len(sounding) == 1 and sounding[0].label == "crowd" and sounding[0].role == "area"
    assert sounding[0].box[0] == 0.0 and sounding[0].box[2] == pytest.approx(0.58)
    dup = resolve_objects(place_objects([Detection("cat", 0.7, (0.2, 0.2, 0.5, 0.6)),
                                         Detection("person", 0.4, (0.21, 0.22, 0.5, 0.6))]))
    assert not dup[0].skipped and dup[1].skipped and "sounds once" in dup[1].notes[-1]


def test_ambience_from_labels_and_open_air_for_nothing():
    objs = place_objects([Detection("car", 0.9, (0.1, 0.4, 0.5, 0.8)), Detection("person", 0.8, (0.6, 0.2, 0.7, 0.9))])
    assert choose_ambience(objs)[0].name == "street"
    table = place_objects([Detection("cup", 0.9, (0.1, 0.4, 0.3, 0.6)), Detection("dining table", 0.8, (0, 0.3, 1, 1))],
                          include_silent=False)
    assert choose_ambience(table)[0].name == "kitchen or café"
    assert choose_ambience([])[0].name == "open air"
    assert choose_ambience(objs, "none")[0] is None and choose_ambience(objs, "Park")[0].name == "park"
    with pytest.raises(ParameterError, match="unknown ambience 'moon'"):
        choose_ambience(objs, "moon")
    with_amb = add_ambience(objs, level_db=-12.0, attenuation_db=12.0)
    amb = with_amb[-1]
    assert amb.origin == "ambience" and amb.role == "area" and amb.importance == 0.0
    from imgext.vision.placement import object_gain_db

    assert object_gain_db(amb.importance, attenuation_db=12.0, volume_db=amb.volume_db) == pytest.approx(-12.0)
    assert len(add_ambience(with_amb)) == len(with_amb) and set(ambience_names()) >= {"street", "open air", "room"}


@pytest.mark.parametrize("name", ["amb_street", "amb_room", "amb_open_air"])
def test_synthetic_ambiences_have_a_noise_floor(name):
    y = synthesize(name, duration_s=5.0, rng=0)
    assert np.mean(y == 0) < 0.001
    level = frame_db(y, 0.05)
    assert level.min() > -60.0  # never digital silence, never a dropout


def test_compose_tracks_carries_roles_events_and_the_area_companion():
    from imgext.audio.io import encode_wav
    from imgext.composition.arrange import compose_tracks
    from imgext.composition.tracks import Fetched
    from imgext.sounds.base import Candidate

    settings = MixSettings(duration_s=8.0, seed=2)
    objs = add_ambience(place_objects([Detection("dog", 0.9, (0.05, 0.3, 0.35, 0.9))]), level_db=-12.0)
    sounds = {0: synthesize("dog_bark", duration_s=3.0, rng=1), 1: synthesize("amb_open_air", duration_s=6.0, rng=1)}
    fetched = {i: Fetched(i, Candidate(id=f"builtin:x:{i}", name=f"s{i}", source="builtin"), encode_wav(y, SR, subtype="PCM_16"),
                          y, ()) for i, y in sounds.items()}
    tracks, _, arrangements = compose_tracks(objs, fetched, settings=settings)
    assert tracks.audio.shape == (2, 8 * SR) and set(arrangements) == {0, 1}
    assert tracks.arrangements[0].role is Role.EVENT and tracks.arrangements[0].events
    assert tracks.arrangements[1].role is Role.AREA and set(tracks.sides) == {1}
