"""The Mix page feeds the stems player (pages/_player.py) and applies what it reports, with AppTest (issue 14)."""

from __future__ import annotations

import io
import json
import math

import pytest
import soundfile as sf

from tests.test_app import RecordingMediaFileManager, _ready_sounds, deferred_bytes, new_app, settle, upload

pytestmark = pytest.mark.slow  # the whole app, real detector and sounds


@pytest.fixture
def media(monkeypatch):
    """The media managers of the runs (tests/test_app.py's fixture of the same name), to read what a download serves."""
    RecordingMediaFileManager.instances = []
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", RecordingMediaFileManager)
    return RecordingMediaFileManager.instances


def _mixers_held(managers, proto) -> list:
    """The Mixers a deferred download's callable holds (through its closure and any partial in it)."""
    import functools

    from imgext.mix.mixer import Mixer

    mgr = next(m for m in reversed(managers) if proto.deferred_file_id in m._deferred_callables)
    todo, found = [mgr._deferred_callables[proto.deferred_file_id]["callable"]], []
    while todo:
        obj = todo.pop()
        if isinstance(obj, Mixer):
            found.append(obj)
        elif isinstance(obj, functools.partial):
            todo.extend([obj.func, *obj.args, *obj.keywords.values()])
        elif callable(obj) and getattr(obj, "__closure__", None):
            todo.extend(c.cell_contents for c in obj.__closure__)
    return found


def player(at):
    found = [e for e in at.get("component_instance") if e.proto.component_name.endswith("stems_player")]
    assert len(found) == 1
    proto = found[0].proto
    blob = next(a.bytes for a in proto.special_args if a.key == "blob")
    return json.loads(proto.json_args), blob


def test_the_player_gets_each_signal_once_and_its_levels_and_pans_apply_to_the_mix(bus_jpg, monkeypatch):
    monkeypatch.setenv("FREESOUND_API_KEY", "")
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception and not at.error
    args, blob = player(at)
    names = [r["name"] for r in args["rows"]]
    assert "bus" in names and "reverb" in names
    ids = {t["signal"] for m in args["mixes"].values() if m for t in m["tracks"]}
    sent = {e["id"] for e in args["blob_index"]}
    assert ids <= sent and sum(e["length"] for e in args["blob_index"]) == len(blob)
    assert blob[:4] == b"fLaC", "FLAC: cheap to encode on every slider move"
    n_seconds = args["n_samples"] / args["sample_rate"]
    assert len(blob) < 0.8 * len(sent) * n_seconds * args["sample_rate"] * 2, "under 16-bit PCM"
    first = args["blob_index"][0]
    decoded, rate = sf.read(io.BytesIO(blob[first["offset"]: first["offset"] + first["length"]]), dtype="float32")
    assert rate == args["sample_rate"] and decoded.shape[0] == args["n_samples"]
    assert not at.get("audio"), "the rendered before/after files are made when their expander is opened"
    assert not at.dataframe, "the EQ and core-SMR tables are made only once their expander is opened"
    at.session_state["mix_eq_table"] = True  # the user opens it
    at.run()
    assert len(at.dataframe) >= 1 and not at.exception  # the core SMR table (and the filters, if any)
    at.session_state["mix_eq_table"] = False
    at.run()
    assert not at.dataframe

    at.run()  # nothing changed: nothing is sent again
    assert player(at)[1] == b""
    figures = dict(at.session_state["imgext_mix_figures"])
    at.slider(key="mix_loudness_lufs").set_value(-20.0).run()  # a new master gain: the same signals
    args2, blob2 = player(at)
    assert blob2 == b"" and args2["mixes"]["after"]["tracks"][0]["level"] != args["mixes"]["after"]["tracks"][0]["level"]
    assert args2["settle"] and args2["mixes"]["after"]["exact"] is False, "a level preview, rendered when asked"
    assert args["mixes"]["before"] is None and args2["mixes"]["before"] is None, "A is made when listened to"
    settle(at)  # the player asks for the render once the sliders rest
    args2b, _ = player(at)
    assert args2b["settle"] is None and args2b["mixes"]["after"]["exact"] is True
    estimate, rendered = (a["mixes"]["after"]["tracks"][0]["level"] for a in (args2, args2b))
    assert abs(20 * math.log10(estimate / rendered)) < 1.5, "the preview's level is near the render's"
    kept = at.session_state["imgext_mix_figures"]
    for name in ("heatmaps", "processing"):  # a new loudness target processes nothing anew: its figures are kept
        assert kept[name][2] is figures[name][2], name

    # The player reports (a new iframe that holds nothing): everything is sent to it; its state is shown.
    p = at.session_state["imgext_session"].project
    k = p.tracks.names.index("bus")
    i = p.tracks.object_indices[k]
    volume, pan = p.objects[i].volume_db, p.objects[i].pan
    at.session_state["stems_player"] = {"mount": "m2", "seq": 1, "revision": 0, "ab": "before", "have": [],
                                        "muted": ["crowd"], "soloed": [], "levels_db": {"bus": 6.0},
                                        "pans": {"bus": -0.5}}
    at.run()
    assert not at.exception
    args3, blob3 = player(at)
    assert {e["id"] for e in args3["blob_index"]} >= {t["signal"] for t in args3["mixes"]["after"]["tracks"]}
    summary = [c.value for c in at.caption if c.value.startswith("Player:")]
    assert summary and "A (before)" in summary[0] and "muted: crowd" in summary[0] and "bus +6.0 dB" in summary[0]
    at.button(key="player_apply").click().run()
    assert not at.exception
    assert p.objects[i].volume_db == pytest.approx(volume + 6.0) and p.objects[i].pan == -0.5 != pan
    assert p.tracks.pans[k] == -0.5
    assert p.undo() and p.objects[i].volume_db == pytest.approx(volume) and p.objects[i].pan == pan, "one undo step"
    assert p.redo() and p.objects[i].pan == -0.5
    args4, _ = player(at)
    assert args4["revision"] == 1 and args4["rows"][k]["pan"] == -0.5
    assert not [b for b in at.button if b.key == "player_apply"], "applied: nothing left to apply"


def test_an_eq_move_plays_the_last_render_until_the_sliders_rest(bus_jpg, media, monkeypatch):
    """EQ strength is heard at once as the level of the ducked tracks' wet parts (nothing new is sent); a maximum
    cut is not rendered step by step: the last render plays on, and the render follows when the sliders rest."""
    monkeypatch.setenv("FREESOUND_API_KEY", "")
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception
    p = at.session_state["imgext_session"].project
    args, _ = player(at)
    wet = [t for t in args["mixes"]["after"]["tracks"] if t["wet"]]
    assert wet and all(t["wet_level"] == pytest.approx(t["level"]) for t in wet), "ducked: dry + 1.0 x wet"
    metrics = {m.label: m.value for m in at.metric}
    at.slider(key="mix_eq_strength").set_value(0.5).run()
    assert not at.exception
    heard, blob = player(at)
    assert blob == b"" and heard["settle"] and heard["mixes"]["after"]["exact"] is False, "a preview, rendered later"
    assert [(t["signal"], t["wet"]) for t in heard["mixes"]["after"]["tracks"]] == [
        (t["signal"], t["wet"]) for t in args["mixes"]["after"]["tracks"]], "the same signals, new levels"
    assert all(t["wet_level"] == pytest.approx(0.5 * t["level"]) for t in heard["mixes"]["after"]["tracks"] if t["wet"])
    assert any("EQ strength, heard now" in c.value for c in at.caption)
    at.slider(key="mix_max_cut_db").set_value(3.0).run()  # another step before the sliders rest: a new design
    assert not at.exception
    moved, blob = player(at)
    assert blob == b"" and moved["settle"] and moved["mixes"]["after"]["exact"] is False, "pending, and said so"
    assert [(t["signal"], t["level"], t["wet_level"]) for t in moved["mixes"]["after"]["tracks"]] == [
        (t["signal"], t["level"], t["wet_level"]) for t in heard["mixes"]["after"]["tracks"]], \
        "the maximum cut is not heard until the render: the preview plays on as it was"
    assert any("Level preview" in c.value and "Max cut" in c.value for c in at.caption)
    assert {m.label: m.value for m in at.metric} == metrics, "the last render's numbers meanwhile"
    assert (p.settings.eq_strength, p.settings.max_cut_db) == (0.5, 3.0), "the project has the new settings"
    assert all(key[0] != p.settings for key, _ in p.mixer()._rendered), "not rendered on the move"
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    held = _mixers_held(media, buttons["Download mix.wav"])
    assert held and all(not m._rendered and not m._processed for m in held), \
        "the pending download holds the analysis, not a render's tracks (kept alive after the session moved on)"
    early = deferred_bytes(media, buttons["Download mix.wav"])  # rendered when clicked, for the new settings
    settle(at)  # the player asks for the render once the sliders rest
    assert not at.exception
    done, blob = player(at)
    assert done["settle"] is None and done["mixes"]["after"]["exact"] is True
    assert blob, "the tracks the new EQ changed are sent"
    assert {m.label: m.value for m in at.metric} != metrics
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert deferred_bytes(media, buttons["Download mix.wav"]) == early, "the pending download was this mix, exactly"
    at.button(key="mix_undo").click().run()  # back to the first maximum cut: an undo step of its own
    assert not at.exception
    assert at.slider(key="mix_max_cut_db").value == pytest.approx(6.0) and p.settings.max_cut_db == 6.0
    assert p.settings.eq_strength == 0.5 and player(at)[0]["settle"], "pending again, for the undone settings"
    settle(at)
    at.slider(key="mix_fov_deg").set_value(90.0).run()  # new pans and distances: the last render plays as it was
    assert not at.exception
    moved, blob = player(at)
    assert blob == b"" and moved["settle"] and any("Field of view" in c.value for c in at.caption)
    assert p.settings.fov_deg == 90.0
    settle(at)
    assert player(at)[0]["mixes"]["after"]["exact"] is True and p.mixer()._rendered[-1][0][0] == p.settings


def test_an_activity_move_is_arranged_and_rendered_when_the_sliders_rest(bus_jpg, media, monkeypatch):
    """A new activity arranges the sounds anew (seconds): not on every step; the download is still this mix."""
    monkeypatch.setenv("FREESOUND_API_KEY", "")
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    p = at.session_state["imgext_session"].project
    first = p.tracks.audio
    at.slider(key="mix_activity").set_value(2.5).run()
    at.slider(key="mix_activity").set_value(3.0).run()
    assert not at.exception
    moved, blob = player(at)
    assert blob == b"" and moved["settle"] and any("Activity" in c.value for c in at.caption)
    assert p.settings.activity == 3.0 and p._tracks.key != p._tracks_key(), "not arranged on the move"
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    early = deferred_bytes(media, buttons["Download mix.wav"])  # arranged and rendered when clicked
    assert p._tracks.key != p._tracks_key(), "the download's arrangement is its own"
    settle(at)
    assert not at.exception and player(at)[0]["mixes"]["after"]["exact"] is True
    assert p._tracks.key == p._tracks_key() and p.tracks.audio is not first, "arranged anew by the render"
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert deferred_bytes(media, buttons["Download mix.wav"]) == early, "the pending download was this mix, exactly"
