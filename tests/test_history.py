"""Undo and redo of edits to the objects and the mix settings (issue 14), UI-free on the Project."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from imgext.errors import ParameterError
from imgext.options import MixSettings, SoundSettings
from imgext.project import UNDO_STEPS, History, Project, Snapshot
from imgext.sounds.builtin import BuiltinSource

SETTINGS = MixSettings(duration_s=2.0, sample_rate=16000, seed=1, compose=False)


class TwoBoxes:
    def detect(self, picture, *, conf: float = 0.25):
        from imgext.vision.detection import Detection

        return [Detection("dog", 0.9, (0.0, 0.2, 0.3, 0.9)), Detection("car", 0.8, (0.5, 0.3, 1.0, 0.8))]


def _png(colour=(90, 90, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, format="PNG")
    return buf.getvalue()


def _project(settings: MixSettings = SETTINGS) -> Project:
    project = Project(settings=settings)
    project.detect(_png(), TwoBoxes(), name="grey.png")
    return project


def test_a_fresh_project_has_nothing_to_undo():
    project = _project()
    assert not project.can_undo and not project.can_redo
    assert project.undo() is False and project.redo() is False


def test_object_edits_undo_and_redo_in_order():
    project = _project()
    start = project.snapshot()
    project.edit_object(0, volume_db=-6.0)
    project.edit_object(1, query="car horn")
    project.edit_object(0, keep=False)
    edited = project.snapshot()
    assert project.undo() and not project.objects[0].skipped and project.objects[1].query == "car horn"
    assert project.undo() and project.objects[1].query == start.objects[1].query
    assert project.undo() and project.snapshot() == start
    assert not project.can_undo and project.can_redo
    for _ in range(3):
        assert project.redo()
    assert project.snapshot() == edited and not project.can_redo


def test_an_edit_that_changes_nothing_is_no_step():
    project = _project()
    assert not project.edit_object(0, volume_db=project.objects[0].volume_db)
    project.set_settings(project.settings)
    assert not project.can_undo


def test_mix_settings_undo_like_objects():
    project = _project()
    project.set_settings(replace(project.settings, eq_strength=0.2))
    project.set_settings(replace(project.settings, attenuation_db=3.0))
    assert project.undo() and project.settings.attenuation_db == SETTINGS.attenuation_db
    assert project.settings.eq_strength == 0.2
    assert project.undo() and project.settings == SETTINGS
    assert project.redo() and project.settings.eq_strength == 0.2


def test_a_new_edit_after_undo_drops_the_redo():
    project = _project()
    project.set_settings(replace(project.settings, eq_strength=0.2))
    project.undo()
    project.edit_object(0, volume_db=3.0)
    assert not project.can_redo and project.undo() and project.objects[0].volume_db == 0.0


def test_an_added_object_is_undone():
    project = _project()
    project.add_object("bird", 0.9)
    assert len(project.objects) == 3
    assert project.undo() and [o.label for o in project.objects] == ["dog", "car"]
    assert project.redo() and project.objects[-1].label == "bird"


def test_grouped_edits_are_one_step():
    project = _project()
    with project.grouped():
        project.edit_object(0, volume_db=-3.0)
        project.edit_object(1, volume_db=-3.0)
    assert project.undo() and [o.volume_db for o in project.objects] == [0.0, 0.0]
    assert not project.can_undo


@pytest.mark.parametrize("steps", [20, UNDO_STEPS, UNDO_STEPS + 7])
def test_at_least_twenty_steps_are_kept(steps):
    project = _project()
    for k in range(steps):
        project.edit_object(0, volume_db=-0.5 * (k + 1))
    undone = 0
    while project.undo():
        undone += 1
    assert undone == min(steps, UNDO_STEPS) >= 20
    assert project.objects[0].volume_db == (0.0 if steps <= UNDO_STEPS else -0.5 * (steps - UNDO_STEPS))


def test_a_new_photo_starts_a_new_history():
    project = _project()
    project.edit_object(0, volume_db=-6.0)
    project.detect(_png((1, 2, 3)), TwoBoxes(), name="other.png")
    assert not project.can_undo


def test_undo_restores_what_the_mix_renders():
    project = _project()
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    first = project.mix().mix.audio.copy()
    project.edit_object(0, volume_db=-12.0)
    project.set_settings(replace(project.settings, eq_strength=0.0, loudness_lufs=-30.0))
    assert not np.array_equal(project.mix().mix.audio, first)
    project.undo()
    project.undo()
    np.testing.assert_array_equal(project.mix().mix.audio, first)


def test_undoing_a_new_length_refits_the_sounds():
    project = _project()
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    n = project.tracks.audio.shape[-1]
    project.set_settings(replace(project.settings, duration_s=3.0))
    assert project.tracks.audio.shape[-1] == 3 * n // 2
    project.undo()
    assert project.tracks.audio.shape[-1] == n and project.restores == 1


def test_the_headphone_mix_in_an_export_is_no_edit():
    project = _project()
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    project.mix()
    project.export_files(replace(project.settings, binaural=True), stems=False, bundle=False)
    assert not project.can_undo and project.settings.binaural is False


def test_history_limit_must_be_positive():
    with pytest.raises(ParameterError, match="at least one step"):
        History(0)
    h = History(2)
    snaps = [Snapshot((), replace(SETTINGS, seed=k)) for k in range(4)]
    for s in snaps[:3]:
        h.record(s)
    assert h.n_undo == 2 and h.undo(snaps[3]) == snaps[2]


def test_sounds_are_outdated_after_an_object_changes():
    project = _project()
    assert not project.sounds_outdated()
    project.find_sounds(BuiltinSource(), source_key="builtin", sounds=SoundSettings(n_candidates=3))
    assert not project.sounds_outdated()
    project.set_settings(replace(project.settings, eq_strength=0.1))
    assert not project.sounds_outdated(), "a mix setting needs no new sounds"
    project.edit_object(1, query="car horn")
    assert project.sounds_outdated()
    project.undo()
    assert not project.sounds_outdated()
    project.edit_object(0, keep=False)
    assert project.sounds_outdated()


@pytest.mark.parametrize("subtype,dtype", [("PCM_16", "int16"), ("PCM_24", "int32")])
def test_flac_stems_hold_the_very_samples_of_the_wav(subtype, dtype):
    import io

    import soundfile as sf

    from imgext.audio.io import encode_flac, encode_wav

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 20000)) * 0.3).astype(np.float32)
    x[0, :6] = [1.0, -1.0, 1.25, -1.5, 0.99999, 0.0]  # the clip points too
    wav, _ = sf.read(io.BytesIO(encode_wav(x, 16000, subtype=subtype)), dtype=dtype)
    flac_bytes = encode_flac(x, 16000, subtype=subtype)
    flac, _ = sf.read(io.BytesIO(flac_bytes), dtype=dtype)
    np.testing.assert_array_equal(flac, wav)
    assert sf.info(io.BytesIO(flac_bytes)).subtype == subtype
