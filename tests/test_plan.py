"""The plan (``scene.json``): typed records that round-trip, tolerate other versions' fields, and refuse bad files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from imgext.errors import ParameterError
from imgext.options import MixSettings
from imgext.output.plan import (
    SCHEMA_VERSION,
    ImageRecord,
    MixRecord,
    ObjectRecord,
    Plan,
    Record,
    SoundRecord,
    read_plan,
)
from imgext.sounds.base import Candidate
from imgext.vision.placement import manual_object


def _plan() -> Plan:
    dog, cat = manual_object("dog", 0.2), manual_object("cat", 0.8, importance=0.4)
    sound = SoundRecord.of(Candidate(id="builtin:dog:1", name="bark", source="builtin", synthetic=True, tags=("dog",)),
                           file="sources/00_bark.wav", source_lufs=-20.5)
    return Plan(
        generator="imgext test", image=ImageRecord(path="p.jpg", width=640, height=480), source="builtin",
        settings=MixSettings(duration_s=5.0, seed=3),
        objects=[ObjectRecord(object=dog, gain_db=0.0, sound=sound, reason="best match", eq=[{"kind": "peak"}]),
                 ObjectRecord(object=cat, reason="nothing found")],
        mix=MixRecord(sample_rate=44100, duration_s=5.0, loudness_lufs=-16.0), notes=["n"], timings_s={"mix": 0.5},
        files=["mix.wav", "scene.json"],
    )


def test_round_trip_through_json_is_lossless():
    plan = _plan()
    again = Plan.from_dict(json.loads(plan.to_json()))
    assert again == plan
    assert again.objects[0].sound.candidate().file_ext == "wav"


def test_object_fields_sit_flat_in_each_record():
    d = _plan().to_dict()
    o = d["objects"][0]
    assert o["label"] == "dog" and o["pan"] == pytest.approx(-0.6) and o["sound"]["id"] == "builtin:dog:1"
    assert "object" not in o


def test_unknown_fields_are_ignored_and_missing_optional_ones_take_defaults():
    d = json.loads(_plan().to_json())
    d["from_the_future"] = {"x": 1}
    d["objects"][0]["loudness_class"] = "foreground"  # a field another version writes
    d["mix"]["true_peak_dbtp"] = -1.2
    d["settings"]["reverb"] = 0.3
    del d["notes"], d["objects"][1]["eq"], d["mix"]["limited_by_peak"], d["settings"]["max_cut_db"]
    plan = Plan.from_dict(d)
    assert plan.notes == [] and plan.objects[1].eq == [] and plan.mix.limited_by_peak is False
    assert plan.settings.max_cut_db == MixSettings().max_cut_db


def test_a_new_field_is_one_line():
    @dataclass(frozen=True)
    class Event(Record):
        onset_s: float
        distance_m: float | None = None
        tags: tuple[str, ...] = ()
        children: list[SoundRecord] = field(default_factory=list)

    e = Event.from_dict({"onset_s": "1.5", "tags": ["a"], "children": [{"id": "x"}]})
    assert e == Event(onset_s=1.5, tags=("a",), children=[SoundRecord(id="x")])
    assert Event.from_dict(e.to_dict()) == e
    with pytest.raises(ParameterError, match="onset_s"):
        Event.from_dict({})


@pytest.mark.parametrize("version", [None, 0, SCHEMA_VERSION + 1, "1", True])
def test_unknown_schema_versions_are_refused(version):
    d = _plan().to_dict()
    d["schema_version"] = version
    with pytest.raises(ParameterError, match="schema version"):
        Plan.from_dict(d)


@pytest.mark.parametrize("broken", [[], {"schema_version": 1, "objects": {}}, {"schema_version": 1, "objects": [{}]},
                                    {"schema_version": 1, "settings": {"duration_s": 1e9}}])
def test_malformed_plans_are_parameter_errors(broken):
    with pytest.raises(ParameterError):
        Plan.from_dict(broken)


def test_read_plan_needs_the_source_files(tmp_path):
    (tmp_path / "scene.json").write_bytes(_plan().to_json())
    with pytest.raises(ParameterError, match="missing"):
        read_plan(tmp_path)
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "00_bark.wav").write_bytes(b"RIFF")
    plan, sources = read_plan(tmp_path)
    assert plan == _plan() and sources == {0: b"RIFF"}
    assignments = plan.assignments()
    assert assignments[0].candidate.id == "builtin:dog:1" and assignments[1].candidate is None
