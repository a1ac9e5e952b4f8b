"""Disk cache: bytes and text only, size bound, survives bad folders."""

from __future__ import annotations

import pickle
import sqlite3

import pytest

from imgext.errors import CacheError
from imgext.sounds.cache import DiskCache, cache_key


def test_bytes_and_text_round_trip(tmp_path):
    c = DiskCache(tmp_path / "c")
    assert c.enabled
    c.set_bytes("k", b"\x00\x01" * 10000)
    c.set_text("t", "hello")
    assert c.get_bytes("k") == b"\x00\x01" * 10000
    assert c.get_text("t") == "hello"
    assert c.get_bytes("t") is None  # wrong kind reads as a miss and is dropped
    assert c.stats()["entries"] >= 1


def test_refuses_to_pickle(tmp_path):
    c = DiskCache(tmp_path / "c")
    with pytest.raises(CacheError):
        c._cache.set("obj", {"a": 1})
    with pytest.raises(CacheError):
        c._cache.set(("tuple", "key"), b"x")


def test_refuses_to_unpickle_a_planted_entry(tmp_path):
    c = DiskCache(tmp_path / "c")
    c.set_bytes("victim", b"ok")
    db = sqlite3.connect(tmp_path / "c" / "cache.db")
    db.execute("UPDATE Cache SET mode = 4, value = ? WHERE key = 'victim'", (pickle.dumps({"evil": 1}),))
    db.commit()
    db.close()
    assert c.get_bytes("victim") is None  # read refused, cache disabled with a warning rather than unpickling
    assert any("cannot be read" in w for w in c.warnings)


def test_size_bound_evicts(tmp_path):
    c = DiskCache(tmp_path / "c", size_limit_bytes=200_000)
    for i in range(20):
        c.set_bytes(f"k{i}", bytes(50_000))
    assert c.stats()["bytes"] <= 400_000  # culled near the bound (diskcache culls in batches)
    assert c.get_bytes("k19") == bytes(50_000)


def test_expiry(tmp_path):
    c = DiskCache(tmp_path / "c")
    c.set_text("s", "x", expire_s=-1)
    assert c.get_text("s") is None


def test_no_folder_means_no_cache():
    c = DiskCache(None)
    assert not c.enabled and c.get_bytes("x") is None and c.set_bytes("x", b"1") is False
    assert c.warnings


def test_corrupt_database_is_reported_and_work_continues(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "cache.db").write_bytes(b"this is not sqlite" * 100)
    c = DiskCache(folder)
    assert not c.enabled and "cannot open" in c.warnings[0]
    assert c.get_bytes("a") is None


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    c = DiskCache(blocker / "sub")
    assert not c.enabled and c.warnings


def test_cache_key_is_stable_and_safe():
    assert cache_key("a", 1, ["x"]) == cache_key("a", 1, ["x"])
    assert cache_key("a") != cache_key("b")
    assert all(ch in "0123456789abcdef" for ch in cache_key("../../"))


def test_builtin_sounds_outlive_the_process_in_the_disk_cache(tmp_path, monkeypatch):
    """A second process (a new ``BuiltinSource``, the in-process cache emptied) reads the sound, not synthesises it."""
    from imgext.settings import load_settings
    from imgext.sounds import builtin
    from imgext.sounds.sources import open_source

    settings = load_settings({"IMGEXT_CACHE_DIR": str(tmp_path / "c")})
    first = open_source("builtin", settings=settings)
    cand = first.search("dog barking", n=1)[0]
    data = first.fetch(cand, duration_s=2.0, sample_rate=22050)
    builtin.SYNTH_CACHE.clear()
    made = []
    monkeypatch.setattr(builtin.synth, "synthesize", lambda *a, **k: made.append(a) or pytest.fail("synthesised again"))
    again = open_source("builtin", settings=settings).fetch(cand, duration_s=2.0, sample_rate=22050)
    assert again == data and not made
    # without a cache folder nothing is kept: the sound is made again
    monkeypatch.undo()
    builtin.SYNTH_CACHE.clear()
    assert builtin.BuiltinSource().fetch(cand, duration_s=2.0, sample_rate=22050) == data


def test_a_changed_synthesiser_does_not_reuse_old_sounds(tmp_path, monkeypatch):
    from imgext.sounds import builtin

    cache = DiskCache(tmp_path / "c")
    src = builtin.BuiltinSource(cache=cache)
    cand = src.search("rain", n=1)[0]
    src.fetch(cand, duration_s=1.0, sample_rate=16000)
    builtin.SYNTH_CACHE.clear()
    monkeypatch.setattr(builtin, "synth_version", lambda: "a-newer-synthesiser")
    made = []
    real = builtin.synth.synthesize
    monkeypatch.setattr(builtin.synth, "synthesize", lambda *a, **k: made.append(1) or real(*a, **k))
    builtin.BuiltinSource(cache=cache).fetch(cand, duration_s=1.0, sample_rate=16000)
    assert made == [1]
