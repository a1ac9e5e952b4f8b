"""In-process caches: bounded by bytes, least recently used first out; built-in sounds and fitted tracks by content."""

from __future__ import annotations

import pytest

from imgext.composition.tracks import FIT_CACHE, fit_source
from imgext.options import MixSettings
from imgext.sounds import synth
from imgext.sounds.builtin import SYNTH_CACHE, BuiltinSource
from imgext.sounds.memo import MemoryCache


def test_bounded_by_bytes_least_recently_used_first():
    cache = MemoryCache(1200)
    made = []

    def make(key):
        made.append(key)
        return bytes(300)

    for key in "abcd":
        cache.get(key, lambda key=key: make(key))
    cache.get("a", lambda: make("a"))  # a hit: "a" becomes the most recent
    cache.get("e", lambda: make("e"))  # evicts "b", the least recently used
    assert made == ["a", "b", "c", "d", "e"] and cache.nbytes == 1200 and len(cache) == 4
    cache.get("b", lambda: make("b"))
    assert made[-1] == "b"
    assert cache.get("big", lambda: bytes(301)) == bytes(301) and "big" not in cache._items  # > 1/4 of the bound


def test_builtin_sound_is_synthesised_once_and_is_the_same_sound():
    SYNTH_CACHE.clear()
    source = BuiltinSource()
    cand = source.search("dog barking", n=3)[2]
    first = source.fetch(cand, duration_s=2.0, sample_rate=22050)
    misses = SYNTH_CACHE.misses
    again = source.fetch(cand, duration_s=2.0, sample_rate=22050)
    assert again is first and SYNTH_CACHE.misses == misses
    from imgext.audio.io import encode_wav

    fresh = synth.synthesize(cand.extra["kind"], duration_s=2.0, sample_rate=22050, rng=cand.extra["seed"])
    assert first == encode_wav(fresh, 22050, subtype="PCM_16")
    assert source.fetch(cand, duration_s=3.0, sample_rate=22050) != first  # another length is another sound


def test_fitted_track_is_cached_by_content_and_read_only():
    FIT_CACHE.clear()
    settings = MixSettings(duration_s=2.0, sample_rate=22050)
    source = BuiltinSource()
    data = source.fetch(source.search("rain", n=1)[0], duration_s=2.0, sample_rate=22050)
    track, _notes, lufs = fit_source(data, name="rain", settings=settings)
    again = fit_source(bytes(data), name="rain", settings=settings)  # equal content, another object
    assert again[0] is track and again[2] == lufs
    with pytest.raises(ValueError):
        track[0] = 1.0  # shared: nobody may change it in place
    other = fit_source(data, name="rain", settings=MixSettings(duration_s=3.0, sample_rate=22050))
    assert other[0].shape == (3 * 22050,) and other[0] is not track
