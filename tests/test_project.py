"""The project: one session's work, cached by content (image bytes, sounds, settings), never by identity."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from imgext.errors import ParameterError
from imgext.options import DetectSettings, MixSettings, SoundSettings
from imgext.project import Project
from imgext.sounds.builtin import BuiltinSource

SETTINGS = MixSettings(duration_s=2.0, sample_rate=16000, seed=1, compose=False)  # the plain chain's caches
COMPOSED = MixSettings(duration_s=2.0, sample_rate=16000, seed=1)


class CountingDetector:
    """A stand-in for the YOLO model that reports two fixed boxes and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, picture, *, conf: float = 0.25):
        from imgext.vision.detection import Detection

        self.calls += 1
        return [Detection("dog", 0.9, (0.0, 0.2, 0.3, 0.9)), Detection("car", 0.8, (0.5, 0.3, 1.0, 0.8))]


def _png(colour=(90, 90, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, format="PNG")
    return buf.getvalue()


def _project_with_sounds() -> Project:
    project = Project(settings=SETTINGS)
    project.detect(_png(), CountingDetector(), name="grey.png")
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    return project


def test_detection_is_keyed_by_the_image_bytes_and_settings():
    detector, project = CountingDetector(), Project(settings=SETTINGS)
    assert project.detect(_png(), detector, name="a.png")
    assert not project.detect(_png(), detector, name="renamed.png"), "same bytes: nothing to redo"
    assert detector.calls == 1 and project.detected(_png())
    assert project.detect(_png(), detector, detection=DetectSettings(conf=0.5))
    assert project.detect(_png((1, 2, 3)), detector, detection=DetectSettings(conf=0.5))
    assert detector.calls == 3 and [o.label for o in project.objects] == ["dog", "car"]


def test_a_lazy_detector_is_only_built_when_detection_runs():
    built = []
    project = Project(settings=SETTINGS)
    project.detect(_png(), lambda: built.append(1) or CountingDetector())
    project.detect(_png(), lambda: built.append(1) or CountingDetector())
    assert built == [1]


def test_sounds_go_stale_when_what_they_depend_on_changes():
    project = _project_with_sounds()
    sounds = SoundSettings(n_candidates=3)
    assert project.has_sounds and not project.sounds_stale("", sounds)
    assert project.sounds_stale("", SoundSettings(n_candidates=4))
    assert project.sounds_stale("another source", sounds)
    project.edit_object(0, query="puppy")
    assert project.sounds_stale("", sounds)


def test_tracks_follow_the_objects_without_restacking():
    project = _project_with_sounds()
    tracks = project.tracks
    assert project.tracks is tracks, "nothing changed: the same tracks"
    assert project.edit_object(1, volume_db=-6.0)
    retuned = project.tracks
    assert retuned.audio is tracks.audio and retuned.volume_db[1] == -6.0
    assert project.edit_object(0, keep=False)
    assert project.tracks.n_tracks == 1 and project.tracks.names == ["car"]


def test_the_mixer_is_reused_by_content_not_identity():
    project = _project_with_sounds()
    first = project.mix()
    bands = project._mixer.value.bands()
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))  # same sounds, re-stacked
    assert project.tracks.audio is not None
    project.mix()
    assert project._mixer.value.bands() is bands, "the same sounds: the analysis is kept"
    again = project.mix(SETTINGS)
    assert np.array_equal(again.mix.audio, first.mix.audio)


def test_a_new_length_refits_the_fetched_sounds_without_fetching():
    project = _project_with_sounds()
    project.mix()
    project.set_settings(MixSettings(duration_s=3.0, sample_rate=16000, seed=1))
    assert project.tracks.audio.shape == (2, 48000)
    assert project.mix().mix.audio.shape == (2, 48000)


def test_export_then_from_folder_reproduces_the_audio(tmp_path):
    project = _project_with_sounds()
    first = project.export(tmp_path / "a")
    again = Project.from_folder(tmp_path / "a").export(tmp_path / "b")
    assert (tmp_path / "a" / "mix.wav").read_bytes() == (tmp_path / "b" / "mix.wav").read_bytes()
    assert [o["sound"]["id"] for o in again.scene["objects"]] == [o["sound"]["id"] for o in first.scene["objects"]]
    assert again.scene["image"] == {"path": "grey.png", "width": 64, "height": 48}


def test_zip_in_memory_matches_the_written_export(tmp_path):
    import zipfile

    project = _project_with_sounds()
    in_memory = zipfile.ZipFile(io.BytesIO(project.export_zip()))
    on_disk = zipfile.ZipFile(project.export(tmp_path / "o").zip_path)
    assert in_memory.namelist() == on_disk.namelist()
    assert in_memory.read("mix.wav") == on_disk.read("mix.wav")  # scene.json differs only in its timings


def test_the_export_key_changes_exactly_when_the_zip_would():
    project = _project_with_sounds()
    key = project.export_key(SETTINGS)
    assert project.export_key(SETTINGS) == key  # nothing changed
    assert _project_with_sounds().export_key(SETTINGS) == key  # by content, not by identity
    assert project.export_key(SETTINGS, stem_format="flac") != key
    assert project.export_key(replace(SETTINGS, loudness_lufs=-20.0)) != key
    moved = project.objects[0]
    project.objects[0] = replace(moved, pan=-moved.pan if moved.pan else 0.5)  # a pan alone changes no track audio
    assert project.export_key(SETTINGS) != key
    project.objects[0] = moved
    assert project.export_key(SETTINGS) == key
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))  # the same sounds again
    assert project.export_key(SETTINGS) == key


def test_mixing_before_sounds_is_an_error():
    with pytest.raises(ParameterError, match="find sounds"):
        Project().mix()


def _composed_project(settings: MixSettings = COMPOSED, *, interactive: bool = False) -> Project:
    project = Project(settings=settings, interactive=interactive)
    project.detect(_png(), CountingDetector(), name="grey.png")
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    return project


def test_a_composed_project_adds_the_ambience_and_arranges_the_tracks():
    project = _composed_project()
    assert [o.label for o in project.objects][:2] == ["dog", "car"] and project.objects[2].origin == "ambience"
    tracks = project.tracks
    assert tracks.n_tracks == 3 and set(project.arrangements()) == {0, 1, 2}
    project.mix()
    bands = project._mixer.value.bands()
    project.set_settings(replace(COMPOSED, attenuation_db=6.0, eq_strength=0.3))
    assert project.tracks.audio is tracks.audio, "a slider move does not re-arrange"
    project.mix()
    assert project._mixer.value.bands() is bands, "nor analyse again"
    ambience_gain = project.tracks.gains_db(6.0)[2]
    assert ambience_gain == pytest.approx(COMPOSED.ambience_db), "the ambience stays ambience_db under the top"
    project.set_settings(replace(COMPOSED, seed=2))
    assert project.tracks.audio is not tracks.audio, "a new seed draws the arrangement anew"


def test_attenuated_tracks_are_those_the_attenuation_moves():
    project = _composed_project()
    tracks = project.tracks
    ambience = [k for k, i in enumerate(tracks.object_indices) if project.objects[i].origin == "ambience"]
    moved = set()
    for attenuation in (0.0, 20.0):
        project.set_settings(replace(project.settings, attenuation_db=attenuation))
        moved.add(tuple(np.round(project.tracks.gains_db(attenuation), 9)))
    gains = np.array(sorted(moved))
    assert ambience and set(project.attenuated()) == set(np.flatnonzero(gains[0] != gains[1]).tolist())
    assert project.attenuated() and not set(ambience) & set(project.attenuated()), "the ambience keeps its own level"
    assert Project().attenuated() == []


def test_an_interactive_project_arranges_anew_without_decoding_its_sounds_again(monkeypatch):
    """A new activity in the app re-arranges the scene's own sources, however few the shared cache holds."""
    from imgext.composition.arrange import CLIP_CACHE

    monkeypatch.setattr(CLIP_CACHE, "max_bytes", 0)  # it keeps nothing (a crowd, or long sources)
    app = _composed_project(interactive=True)
    one_off = _composed_project()
    assert app.tracks is not None  # the first arrangement decodes the sources
    for activity in (2.0, 0.5):
        misses = CLIP_CACHE.misses
        app.set_settings(replace(app.settings, activity=activity))
        arranged = app.tracks
        assert CLIP_CACHE.misses == misses, "nothing decoded or analysed again"
        one_off.set_settings(replace(one_off.settings, activity=activity))
        np.testing.assert_array_equal(arranged.audio, one_off.tracks.audio)
    assert one_off._sources is None, "a one-off render keeps no memo"


def test_tracks_later_are_the_tracks_of_then_made_when_asked():
    """``tracks_later`` snapshots the objects, sounds and settings: a new activity is arranged only when called."""
    import threading

    project = _composed_project(replace(COMPOSED, duration_s=6.0))  # (room for the dog's events to move)
    now = project.tracks
    assert project.tracks_later()().audio is now.audio, "the tracks made already are given as they are"
    project.set_settings(replace(project.settings, activity=3.0))
    later = project.tracks_later()
    assert project._tracks.key != project._tracks_key(), "nothing arranged yet"
    project.set_settings(replace(project.settings, activity=1.0))  # the project moves on meanwhile
    got = []
    thread = threading.Thread(target=lambda: got.append(later()))  # as a download made on click would
    thread.start()
    thread.join()
    project.set_settings(replace(project.settings, activity=3.0))
    np.testing.assert_array_equal(got[0].audio, project.tracks.audio)  # the arrangement of activity 3
    assert not np.array_equal(got[0].audio, now.audio)
    assert Project().tracks_later()() is None


def test_a_composed_export_then_from_folder_reproduces_the_audio(tmp_path):
    project = _composed_project()
    first = project.export(tmp_path / "a")
    assert first.scene["ambience"] is not None
    assert all(o.get("arrangement") for o in first.scene["objects"] if o.get("sound"))
    again = Project.from_folder(tmp_path / "a").export(tmp_path / "b")
    assert (tmp_path / "a" / "mix.wav").read_bytes() == (tmp_path / "b" / "mix.wav").read_bytes()
    assert again.scene["ambience"] == first.scene["ambience"]


@pytest.mark.slow
def test_the_app_project_composes_like_the_command_line(tmp_path, images_dir, detector):
    from imgext.pipeline import render_image

    photo = sorted(images_dir.glob("wild*.jpg"))[0]
    settings = MixSettings(duration_s=10.0, seed=3)
    project = Project(settings=settings)
    project.detect(photo.read_bytes(), detector, name=photo.name)
    project.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    app = project.export(tmp_path / "app").scene
    cli = render_image(str(photo), str(tmp_path / "cli"), detector=detector, source=BuiltinSource(), settings=settings,
                       n_candidates=3, image_name=photo.name).scene
    assert app["ambience"] is not None and app["ambience"] == cli["ambience"]
    assert any(o["origin"] == "ambience" for o in app["objects"])

    def roles(scene: dict) -> list:
        return [(o["label"], o.get("role"), o.get("skipped"), o.get("arrangement")) for o in scene["objects"]]

    assert roles(app) == roles(cli)
    onsets = [e["onset_s"] for o in app["objects"] if o.get("arrangement") for e in o["arrangement"]["events"]]
    offsets = [o["arrangement"]["offset_s"] for o in app["objects"] if o.get("arrangement")]
    assert any(t > 0.0 for t in onsets + offsets), "not every sound starts at t=0"


def test_a_new_ambience_replaces_the_old_one_in_place_and_needs_its_sound():
    project = _composed_project()
    park = project.objects[2]
    project.set_settings(replace(COMPOSED, ambience="street"))
    assert project.objects[2].label == "ambience: street" and 2 not in project.fetched
    assert project.sounds_stale("", SoundSettings(n_candidates=3)) and project.tracks.n_tracks == 2
    project.set_settings(replace(COMPOSED, ambience="none"))
    assert len(project.objects) == 3 and project.objects[2].skipped
    assert park.label.startswith("ambience: ")
