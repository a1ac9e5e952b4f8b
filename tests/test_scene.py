"""Scene placement: pan, importance, gain, label table."""

from __future__ import annotations

import json

import pytest

from imgext.errors import ParameterError
from imgext.vision.detection import Detection
from imgext.vision.placement import LabelMap, importance_from, manual_object, object_gain_db, place_objects, with_query


def test_pan_and_importance_from_boxes():
    dets = [
        Detection("dog", 0.9, (0.0, 0.2, 0.2, 0.6)),    # left, small
        Detection("car", 0.8, (0.5, 0.1, 1.0, 0.9)),    # right, big
        Detection("cat", 0.5, (0.45, 0.4, 0.55, 0.5)),  # centre, tiny
    ]
    objs = place_objects(dets)
    assert [o.pan for o in objs] == pytest.approx([-0.8, 0.5, 0.0])
    assert max(o.importance for o in objs) == 1.0
    car, dog, cat = objs[1], objs[0], objs[2]
    assert car.importance == 1.0 and cat.importance < dog.importance < car.importance
    assert car.query == "car engine idling" and car.role == "bed"  # a parked car idles
    assert dog.role == "event" and dog.events_per_minute > 0 and dog.event_s > 0
    assert "footsteps" in LabelMap.default()["person"].query


def test_gain_from_importance_and_attenuation():
    assert object_gain_db(1.0, attenuation_db=12) == 0.0
    assert object_gain_db(0.0, attenuation_db=12) == -12.0
    assert object_gain_db(0.5, attenuation_db=20, volume_db=3) == pytest.approx(-7.0)
    assert object_gain_db(0.3, attenuation_db=0) == 0.0
    with pytest.raises(ParameterError):
        object_gain_db(0.5, attenuation_db=-1)


def test_silent_labels_are_skipped_unless_asked():
    dets = [Detection("tie", 0.9, (0.4, 0.4, 0.5, 0.6)), Detection("person", 0.9, (0.1, 0.1, 0.4, 0.9))]
    objs = place_objects(dets)
    assert objs[0].skipped and "no sound" in objs[0].notes[0]
    assert not objs[1].skipped
    assert not place_objects(dets, include_silent=True)[0].skipped


def test_every_coco_label_has_an_entry():
    table = LabelMap.default()
    assert len(table) == 80
    from imgext.sounds.synth import SYNTH_KINDS

    for label, entry in table.items():
        assert entry.query.strip(), label
        assert entry.synth in SYNTH_KINDS, (label, entry.synth)


def test_overrides_from_dict_and_file(tmp_path):
    base = LabelMap.default()
    m = base.with_overrides({"dog": {"query": "small dog yapping"}, "unicorn": {"query": "magic chime", "synth": "bells"}})
    assert m["dog"].query == "small dog yapping" and m["dog"].synth == base["dog"].synth
    assert m["unicorn"].synth == "bells"
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"labels": {"tie": {"silent": False, "query": "fabric rustle"}}}))
    m2 = base.with_file(path)
    assert not m2["tie"].silent and m2["tie"].query == "fabric rustle"
    with pytest.raises(ParameterError, match="unknown fields"):
        base.with_overrides({"dog": {"qurey": "typo"}})
    path.write_text("{broken")
    with pytest.raises(ParameterError, match="cannot read label table"):
        base.with_file(path)


def test_unknown_label_searches_for_itself():
    entry = LabelMap.default().lookup("wombat")
    assert entry.query == "wombat" and not entry.silent


def test_manual_object_and_query_edit():
    obj = manual_object("dog", 0.25)
    assert obj.pan == pytest.approx(-0.5) and obj.origin == "manual" and obj.confidence == 1.0
    edited = with_query(obj, "puppy whining")
    assert edited.query == "puppy whining" and "puppy" in edited.synonyms
    with pytest.raises(ParameterError):
        manual_object("dog", 1.5)
    with pytest.raises(ParameterError):
        with_query(obj, "   ")


def test_importance_handles_degenerate_boxes():
    assert importance_from([0.9, 0.5], [0.0, 0.0]) == [1.0, 1.0]
    assert importance_from([], []) == []


def test_every_label_has_a_role_and_events_have_a_rate():
    from imgext.vision.placement import Role

    table = LabelMap.default()
    assert len(table) == 80
    for label, entry in table.items():
        assert isinstance(entry.role, Role) and entry.role is not Role.OFF, label
        if entry.role is Role.EVENT:
            assert entry.events_per_minute > 0 and 0 < entry.event_s <= 20, label
    assert table["dog"].role is Role.EVENT and table["bus"].role is Role.BED and table["surfboard"].role is Role.AREA
    assert table["person"].group.label == "crowd" and table["person"].group.role is Role.AREA


def test_role_overrides_are_checked():
    from imgext.vision.placement import Role, with_role

    table = LabelMap.default().with_overrides({"dog": {"role": "bed"}, "bus": {"role": "event"}})
    assert table["dog"].role is Role.BED
    assert table["bus"].role is Role.EVENT and table["bus"].events_per_minute > 0  # an event needs a rate
    with pytest.raises(ParameterError, match="role 'loud'"):
        LabelMap.default().with_overrides({"dog": {"role": "loud"}})
    with pytest.raises(ParameterError, match="events_per_minute"):
        LabelMap.default().with_overrides({"dog": {"events_per_minute": -1}})
    dog = place_objects([Detection("dog", 0.9, (0.0, 0.2, 0.2, 0.6))])[0]
    assert with_role(dog, "off").role == "off" and with_role(dog, Role.BED, events_per_minute=2).events_per_minute == 2
