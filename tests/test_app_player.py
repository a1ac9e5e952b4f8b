"""The Mix page feeds the stems player (pages/_player.py) and applies what it reports, with AppTest (issue 14)."""

from __future__ import annotations

import io
import json
import math

import pytest
import soundfile as sf

from tests.test_app import _ready_sounds, new_app, settle, upload

pytestmark = pytest.mark.slow  # the whole app, real detector and sounds


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
