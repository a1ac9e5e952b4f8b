"""Freesound filter strings and presets."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgext.errors import ParameterError
from imgext.sounds.filters import BUILTIN_PRESETS, PresetStore, SearchFilter, solr_quote


def test_full_filter_string():
    f = SearchFilter(
        duration_min_s=0.5, duration_max_s=30, licenses=("cc0", "by"), file_types=("wav", "flac"),
        min_rating=3, min_num_ratings=2, sample_rates=(44100, 48000), channels=1,
        exclude_tags=("music", 'say "hi"'), sort="rating_desc", raw="bitdepth:24",
    )
    assert f.to_solr() == (
        'duration:[0.5 TO 30] license:("Creative Commons 0" OR "Attribution") type:("wav" OR "flac") '
        "avg_rating:[3 TO *] num_ratings:[2 TO *] samplerate:(44100 OR 48000) channels:1 "
        '-tag:"music" -tag:"say \\"hi\\"" bitdepth:24'
    )


def test_open_ranges_and_empty():
    assert SearchFilter().to_solr() == ""
    assert SearchFilter(duration_min_s=2).to_solr() == "duration:[2 TO *]"
    assert SearchFilter(duration_max_s=10).to_solr() == "duration:[0 TO 10]"


def test_quote_escapes_backslash_and_quote():
    assert solr_quote('a\\b"c') == '"a\\\\b\\"c"'
    with pytest.raises(ParameterError):
        solr_quote("tab\there")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"duration_min_s": 10, "duration_max_s": 1}, "empty"),
        ({"duration_min_s": -1}, "between"),
        ({"licenses": ("gpl",)}, "unknown licence"),
        ({"file_types": ("exe",)}, "unknown file type"),
        ({"min_rating": 7}, "min_rating"),
        ({"channels": 6}, "channels"),
        ({"sort": "random"}, "sort"),
        ({"raw": 'tag:"open'}, "unclosed double quote"),
        ({"raw": "duration:[1 TO 2"}, "unclosed bracket"),
        ({"raw": "a)"}, "unmatched"),
        ({"exclude_tags": ("",)}, "empty"),
        ({"duration_min_s": float("nan")}, "between"),
    ],
)
def test_invalid_filters_are_refused(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SearchFilter(**kwargs)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.text(max_size=60))
def test_any_text_is_escaped_or_refused(text):
    try:
        quoted = solr_quote(text)
    except ParameterError:
        return
    inner = quoted[1:-1]
    # every quote inside is escaped, so the value cannot end the string early
    i = 0
    while i < len(inner):
        if inner[i] == "\\":
            assert inner[i + 1] in '\\"'
            i += 2
            continue
        assert inner[i] != '"'
        i += 1


def test_presets_round_trip(tmp_path):
    store = PresetStore(tmp_path)
    assert set(BUILTIN_PRESETS) <= set(store.names())
    f = SearchFilter(licenses=("cc0",), duration_max_s=5)
    store.save("Tiny CC0", f)
    assert store.load("Tiny CC0") == f
    assert PresetStore(tmp_path).load("Tiny CC0") == f
    store.delete("Tiny CC0")
    with pytest.raises(ParameterError, match="no preset"):
        store.load("Tiny CC0")
    with pytest.raises(ParameterError, match="built-in"):
        store.delete("Short CC0 field recordings")


@pytest.mark.parametrize("name", ["../../evil", "a/b", "..", "Ünïcödé ✓", "con", "x" * 80])
def test_preset_names_cannot_escape(tmp_path, name):
    store = PresetStore(tmp_path / "data")
    store.save(name, SearchFilter(min_rating=1))
    assert store.load(name).min_rating == 1
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["data/.presets.lock", "data/presets.json"]


def test_bad_preset_names(tmp_path):
    store = PresetStore(tmp_path)
    for bad in ["", "   ", "x" * 81, "a\nb"]:
        with pytest.raises(ParameterError):
            store.save(bad, SearchFilter())


def test_corrupt_presets_file_is_set_aside_not_lost(tmp_path):
    (tmp_path / "presets.json").write_text("{not json")
    store = PresetStore(tmp_path)
    names = store.names()
    assert "Short CC0 field recordings" in names
    assert store.warnings and "set aside" in store.warnings[0]
    aside = list(tmp_path.glob("presets.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{not json"
    store.save("new", SearchFilter())
    assert json.loads((tmp_path / "presets.json").read_text())["presets"].keys() == {"new"}


def test_invalid_entry_in_presets_file_is_reported(tmp_path):
    (tmp_path / "presets.json").write_text(json.dumps({"presets": {"x": {"licenses": ["gpl"]}}}))
    store = PresetStore(tmp_path)
    assert "x" not in store.names()
    assert any("corrupt" in w for w in store.warnings)


def test_unusable_data_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # a file where the folder should be: fails for root too
    with pytest.raises(Exception, match="presets folder"):
        PresetStore(blocker / "data").save("x", SearchFilter())
