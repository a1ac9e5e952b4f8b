"""Arranging without filtering again: the cached source analysis, the estimated level, the loop copied per period."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from imgext.audio.io import encode_wav, fit_duration
from imgext.audio.loudness import integrated_loudness
from imgext.composition.arrange import (
    CLIP_CACHE,
    Arrangement,
    analyse_source,
    arrange_object,
    compose,
    estimated_loudness,
    load_clip,
    render_bed,
    render_events,
)
from imgext.composition.schedule import Event
from imgext.composition.tracks import Fetched
from imgext.options import MixSettings
from imgext.sounds.base import Candidate
from imgext.sounds.synth import synthesize
from imgext.vision.detection import Detection
from imgext.vision.placement import Role, place_objects

SR = 44100
SOUNDS = Path(__file__).resolve().parents[2] / "shared" / "sounds"
SCENE = [("dog", "dog_bark", 6.0), ("car", "engine_idle", 5.0), ("bird", "birds", 5.0), ("umbrella", "rain", 12.0),
         ("cup", "crockery", 3.0)]


def _objects():
    return place_objects([Detection(label, 0.9 - 0.05 * i, (0.15 * i, 0.2, 0.15 * i + 0.25, 0.8))
                          for i, (label, _, _) in enumerate(SCENE)])


@pytest.mark.parametrize("seed", [1, 2])
def test_estimated_loudness_is_the_rendered_tracks(seed):
    """Each arranged track sits at the -23 LUFS reference to within 0.5 LU, measured on the audio."""
    settings = MixSettings(duration_s=20.0, seed=seed)
    n = 20 * SR
    roles = set()
    for i, (obj, (_, kind, seconds)) in enumerate(zip(_objects(), SCENE)):
        src = analyse_source(synthesize(kind, duration_s=seconds, rng=i), SR)
        composed = arrange_object(obj, i, src, settings=settings)
        arr = composed.arrangement
        roles.add(arr.role)
        raw = (render_events(src.clip, arr.events, n_samples=n, sample_rate=SR) if arr.role is Role.EVENT
               else render_bed(src, offset_s=arr.offset_s, n_samples=n, sample_rate=SR))
        est = estimated_loudness(src, arr, n_samples=n, sample_rate=SR)
        assert abs(est - integrated_loudness(raw, SR)) < 0.5, (obj.label, arr.role)
        assert abs(integrated_loudness(composed.track, SR) + 23.0) < 0.5, obj.label
        if composed.side is not None:
            assert abs(integrated_loudness(composed.side, SR) + 23.0) < 0.5, obj.label
    assert roles == {Role.EVENT, Role.BED, Role.AREA}


def test_estimated_loudness_of_a_real_recording_with_overlaps_and_rates():
    clip = load_clip((SOUNDS / "dog.mp3").read_bytes(), name="dog", sample_rate=SR, max_seconds=30)
    src = analyse_source(clip, SR)
    events = tuple(Event(t, 1.0, g, s, s + 1.0, rate=r) for t, g, s, r in
                   [(0.5, 0.0, 0.2, 1.0), (1.0, -2.0, 1.4, 1.04), (6.0, 2.0, 3.6, 0.97), (12.0, 1.0, 0.2, 1.0)])
    arr = Arrangement(Role.EVENT, events)
    raw = render_events(clip, events, n_samples=15 * SR, sample_rate=SR)
    assert abs(estimated_loudness(src, arr, n_samples=15 * SR, sample_rate=SR) - integrated_loudness(raw, SR)) < 0.5
    assert estimated_loudness(src, Arrangement(Role.EVENT), n_samples=SR, sample_rate=SR) == -np.inf


@pytest.mark.parametrize(("kind", "seconds"), [("engine_idle", 4.0), ("water", 0.5), ("wind", 40.0)])
def test_bed_loop_is_fit_durations_loop(kind, seconds):
    """The period-by-period copy gives the same samples as looping with fit_duration, from any offset."""
    clip = synthesize(kind, duration_s=seconds, rng=3)
    src = analyse_source(clip, SR)
    n = 30 * SR
    for offset_s in (0.0, 0.1, 0.9 * seconds):
        offset = round(offset_s * SR)
        bed = render_bed(src, offset_s=offset_s, n_samples=n, sample_rate=SR)
        if clip.shape[0] < n + offset:
            looped = fit_duration(clip, n + offset, SR, fade_in_s=0.0)[offset:]
            fade = int(0.05 * SR)
            np.testing.assert_array_equal(bed[fade:], looped[fade:])
        assert bed.dtype == np.float32 and bed.shape == (n,)


def test_compose_decodes_and_analyses_each_source_once():
    settings = MixSettings(duration_s=10.0, seed=4)
    objs = _objects()[:2]
    fetched = {i: Fetched(i, Candidate(id=f"builtin:test-cache:{i}", name=f"cache-test-{i}", source="builtin"),
                          encode_wav(synthesize(kind, duration_s=seconds, rng=i + 40), SR, subtype="PCM_16"),
                          np.zeros(1), ()) for i, (_, kind, seconds) in enumerate(SCENE[:2])}
    misses = CLIP_CACHE.misses
    out_a, first, _ = compose(objs, fetched, settings=settings)
    assert CLIP_CACHE.misses == misses + 2
    hits = CLIP_CACHE.hits
    out_b, again, _ = compose(objs, fetched, settings=settings)
    _, other, _ = compose(objs, fetched, settings=MixSettings(duration_s=10.0, seed=5))
    assert CLIP_CACHE.hits == hits + 4 and CLIP_CACHE.misses == misses + 2  # neither decoded nor analysed again
    assert first == again and first != other  # the same schedule from the cache, a new one for a new seed
    assert all(out_a[i].track.tobytes() == out_b[i].track.tobytes() for i in out_a)


def test_a_scenes_memo_keeps_its_sources_when_the_shared_cache_cannot(monkeypatch):
    """The shared cache keeps nothing (as for a crowd of sources cycled through its LRU in order, or sources over
    a quarter of its bound): without the memo every re-arrangement decodes and analyses all of them again; with
    it none, the tracks the same bits either way."""
    import imgext.composition.arrange as arrange

    settings = MixSettings(duration_s=10.0, seed=4)
    objs = _objects()[:3]
    fetched = {i: Fetched(i, Candidate(id=f"builtin:test-memo:{i}", name=f"memo-test-{i}", source="builtin"),
                          encode_wav(synthesize(kind, duration_s=seconds, rng=i + 70), SR, subtype="PCM_16"),
                          np.zeros(1), ()) for i, (_, kind, seconds) in enumerate(SCENE[:3])}
    sizes = {i: load_clip(f.data, name=f.candidate.name, sample_rate=SR, max_seconds=40.0).nbytes * 3
             for i, f in fetched.items()}  # a Source: the clip (float32) and its cumulative energy (float64)
    monkeypatch.setattr(CLIP_CACHE, "max_bytes", 0)
    CLIP_CACHE.clear()
    first, _, _ = compose(objs, fetched, settings=settings)
    misses = CLIP_CACHE.misses
    plain, _, _ = compose(objs, fetched, settings=replace(settings, activity=1.5))
    assert CLIP_CACHE.misses == misses + 3  # the shared cache alone: decoded and analysed again, all three

    memo: dict = {}
    compose(objs, fetched, settings=settings, sources=memo)
    misses = CLIP_CACHE.misses
    kept, arranged, _ = compose(objs, fetched, settings=replace(settings, activity=1.5), sources=memo)
    assert CLIP_CACHE.misses == misses  # neither decoded nor analysed: the memo held the scene
    assert all(kept[i].track.tobytes() == plain[i].track.tobytes() for i in plain)

    # A memo smaller than the scene keeps a fixed subset (the first that fit), the same on every arrangement.
    monkeypatch.setattr(arrange, "SOURCE_MEMO_BYTES", sizes[0] + sizes[1] + sizes[2] // 2)
    small: dict = {}
    compose(objs, fetched, settings=settings, sources=small)
    held = {id(entry[2]) for entry in small.values()}
    misses = CLIP_CACHE.misses
    again, _, _ = compose(objs, fetched, settings=replace(settings, activity=1.5), sources=small)
    assert len(held) == 2 and {id(entry[2]) for entry in small.values()} == held
    assert CLIP_CACHE.misses == misses + 1  # the third is made again
    assert all(again[i].track.tobytes() == plain[i].track.tobytes() for i in plain)
