"""The whole chain on real photos with the built-in source; the scene.json contract; determinism."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from imgext.options import MixSettings
from imgext.pipeline import render_files, render_image
from imgext.sounds.sources import open_source

pytestmark = pytest.mark.slow  # whole renders with the real detector; tests/test_project.py covers the same path fast

SETTINGS = MixSettings(duration_s=6.0, seed=3)


@pytest.fixture(scope="module")
def bus_render(tmp_path_factory, detector, bus_jpg):
    out = tmp_path_factory.mktemp("bus")
    result = render_image(str(bus_jpg), str(out), detector=detector, source=open_source("builtin"), settings=SETTINGS)
    return out, result


def _read(path):
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    return x.T, sr


def test_scene_json_contract(bus_render):
    out, result = bus_render
    scene = json.loads((out / "scene.json").read_text())
    assert scene == json.loads(json.dumps(result.scene))
    assert set(scene["image"]) >= {"path", "width", "height"}
    assert scene["image"]["width"] == 810
    labels = [o["label"] for o in scene["objects"]]
    assert "bus" in labels and labels.count("person") + labels.count("crowd") >= 3
    assert scene["ambience"]["name"] == "street" and not scene["ambience"]["ambience_only"]
    for o in scene["objects"]:
        assert set(o) >= {"label", "confidence", "box", "pan", "importance", "gain_db", "query", "sound", "stem"}
        assert len(o["box"]) == 4 and all(0 <= v <= 1 for v in o["box"])
        assert -1 <= o["pan"] <= 1 and 0 <= o["importance"] <= 1
        if o["skipped"]:  # a person heard as part of the crowd
            assert o["sound"] is None and o["notes"]
            continue
        assert o["role"] in ("event", "bed", "area") and o["arrangement"]["role"] in ("event", "bed", "area")
        s = o["sound"]
        assert set(s) >= {"id", "name", "source", "license", "author", "url", "file"}
        assert s["synthetic"] and s["source"] == "builtin"
        assert (out / s["file"]).is_file() and (out / o["stem"]).is_file()
    assert set(scene["mix"]) >= {"file", "sample_rate", "duration_s", "loudness_lufs", "peak_dbfs"}
    assert scene["mix"]["duration_s"] == pytest.approx(6.0)
    assert scene["mix"]["peak_dbfs"] <= -1.0
    assert set(scene["timings_s"]) >= {"detect", "sounds", "mix", "total"}
    assert set(scene["masking"]) >= {"before", "after"}


def test_files_and_zip(bus_render):
    out, result = bus_render
    names = set(zipfile.ZipFile(out / "bundle.zip").namelist())
    assert {"mix.wav", "scene.json", "ATTRIBUTION.txt"} <= names
    n = len([o for o in result.scene["objects"] if o["sound"]])
    assert len([x for x in names if x.startswith("stems/") and x.endswith("_dry.wav")]) == n
    assert len([x for x in names if x.startswith("stems/") and x.endswith("_processed.wav")]) == n
    assert len([x for x in names if x.startswith("sources/")]) == n
    assert sorted(names | {"bundle.zip"}) == result.files
    attribution = (out / "ATTRIBUTION.txt").read_text()
    assert attribution.count("synthetic") >= n


def test_mix_is_normalised_and_stems_sum_to_it(bus_render):
    out, result = bus_render
    mix, sr = _read(out / "mix.wav")
    assert sr == 44100 and mix.shape == (2, 6 * 44100)
    from imgext.audio.loudness import integrated_loudness

    assert integrated_loudness(mix, sr) == pytest.approx(result.scene["mix"]["loudness_lufs"], abs=0.05)
    assert np.max(np.abs(mix)) <= 10 ** (-1 / 20)
    total = sum(_read(out / o["stem"])[0] for o in result.scene["objects"] if o["stem"])
    assert result.scene["mix"]["reverb_stem"] == "stems/reverb.wav"  # the shared reverb bus is a stem of its own
    total = total + _read(out / result.scene["mix"]["reverb_stem"])[0]
    assert np.max(np.abs(total - mix)) < 5e-4  # 16-bit stems vs 24-bit mix


def test_left_object_sits_left(bus_render):
    out, result = bus_render
    # Point sources (events, beds) sit where their box is: the stem's left/right balance follows the pan law.
    # (The persons are a crowd now: an area, wide, not a point.)
    leftmost = min((o for o in result.scene["objects"] if o["stem"] and o["role"] != "area"), key=lambda o: o["pan"])
    stem, _ = _read(out / leftmost["stem"])
    theta = (leftmost["pan"] + 1) * np.pi / 4
    measured = np.sum(stem[0] ** 2) / np.sum(stem[1] ** 2)
    assert measured == pytest.approx((np.cos(theta) / np.sin(theta)) ** 2, rel=0.05)


def test_same_seed_same_bytes(tmp_path, detector, bus_jpg):
    a = render_image(str(bus_jpg), str(tmp_path / "a"), detector=detector, source=open_source("builtin"), settings=SETTINGS)
    render_image(str(bus_jpg), str(tmp_path / "b"), detector=detector, source=open_source("builtin"), settings=SETTINGS)
    for rel in a.files:
        if rel not in ("scene.json", "bundle.zip"):  # these hold timings
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    other = MixSettings(duration_s=6.0, seed=4)
    c = render_image(str(bus_jpg), str(tmp_path / "c"), detector=detector, source=open_source("builtin"), settings=other)
    assert (tmp_path / "c" / "mix.wav").read_bytes() != (tmp_path / "a" / "mix.wav").read_bytes()
    assert c.scene["objects"][0]["label"] == a.scene["objects"][0]["label"]


def test_local_library_render_with_real_recordings(tmp_path, detector, images_dir, sounds_dir):
    result = render_image(
        str(images_dir / "wilddog.jpg"), str(tmp_path / "o"), detector=detector,
        source=open_source(f"local:{sounds_dir}"), settings=SETTINGS,
    )
    objs = result.scene["objects"]
    dogs = [o for o in objs if o["label"] == "dog"]
    assert dogs[0]["sound"]["file"].endswith("dog.mp3") and dogs[0]["sound"]["source"] == "local"
    for extra in dogs[1:]:  # one dog recording in the library: the second dog is told why it has none
        assert extra["sound"] is None and "already used" in extra["reason"]
    for person in (o for o in objs if o["label"] == "person"):  # no footsteps in an animal library
        assert person["sound"] is None and ("no sound found" in person["reason"] or "sounds once" in person["reason"])
    assert any(o["label"] == "cat" and o["sound"]["file"].endswith("cat.mp3") for o in objs)


def _wav(x, sr=44100):
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_mix_files_short_and_long(tmp_path, rng):
    short = tmp_path / "tick.wav"
    short.write_bytes(_wav((0.5 * rng.standard_normal(int(0.3 * 44100))).astype(np.float32)))
    long = tmp_path / "drone.wav"
    long.write_bytes(_wav((0.1 * rng.standard_normal(int(12 * 44100))).astype(np.float32)))
    result = render_files([str(short), str(long)], str(tmp_path / "o"), pans=[-1, 1], gains_db=[0, -6],
                          settings=MixSettings(duration_s=8.0))
    mix, _ = _read(tmp_path / "o" / "mix.wav")
    assert mix.shape == (2, 8 * 44100) and np.isfinite(mix).all()
    objs = result.scene["objects"]
    assert objs[0]["importance"] > objs[1]["importance"]  # louder = more important
    assert objs[0]["gain_db"] == pytest.approx(0.0, abs=2.1) and objs[1]["gain_db"] == pytest.approx(-6.0, abs=2.1)
    stem0, _ = _read(tmp_path / "o" / objs[0]["stem_dry"])
    assert np.max(np.abs(stem0[1])) < 1e-6  # hard left


def test_no_objects_never_gives_a_silent_complete_looking_folder(tmp_path, detector):
    from PIL import Image

    from imgext.errors import NoSoundError

    img = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (200, 200, 200)).save(img)
    result = render_image(str(img), str(tmp_path / "o"), detector=detector, source=open_source("builtin"), settings=SETTINGS)
    # Nothing soundable: the picture still gets its ambience ("open air"), labelled as the only sound (issue 10).
    assert [o["origin"] for o in result.scene["objects"]] == ["ambience"]
    assert result.scene["ambience"]["name"] == "open air" and result.scene["ambience"]["ambience_only"]
    assert result.scene["mix"]["loudness_lufs"] == pytest.approx(SETTINGS.loudness_lufs, abs=0.5)
    mix, _ = _read(tmp_path / "o" / "mix.wav")
    assert np.mean(mix == 0) < 0.05
    with pytest.raises(NoSoundError, match="nothing would sound"):  # no ambience either: said so, nothing written
        render_image(str(img), str(tmp_path / "n"), detector=detector, source=open_source("builtin"),
                     settings=replace(SETTINGS, ambience="none"))
    assert not (tmp_path / "n" / "scene.json").exists()


def test_remix_from_the_plan(bus_render, tmp_path):
    from imgext.errors import ParameterError
    from imgext.pipeline import remix

    out, first = bus_render
    same = remix(str(out), str(tmp_path / "same"))
    assert (tmp_path / "same" / "mix.wav").read_bytes() == (out / "mix.wav").read_bytes()
    assert [o["sound"] and o["sound"]["id"] for o in same.scene["objects"]] == [
        o["sound"] and o["sound"]["id"] for o in first.scene["objects"]]
    dry = remix(str(out), str(tmp_path / "dry"), eq_strength=0.0, duration_s=3.0)
    assert dry.scene["settings"]["eq_strength"] == 0.0 and dry.scene["mix"]["duration_s"] == pytest.approx(3.0)
    assert all(not o["eq"] for o in dry.scene["objects"])
    with pytest.raises(ParameterError, match="no scene.json"):
        remix(str(tmp_path / "nothing"), str(tmp_path / "x"))
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(out, broken)
    next((broken / "sources").iterdir()).unlink()
    with pytest.raises(ParameterError, match="missing"):
        remix(str(broken), str(tmp_path / "y"))


def test_remix_of_a_mix_keeps_the_given_gains(tmp_path, rng):
    from imgext.pipeline import remix

    a = tmp_path / "a.wav"
    a.write_bytes(_wav((0.2 * rng.standard_normal(44100)).astype(np.float32)))
    b = tmp_path / "b.wav"
    b.write_bytes(_wav((0.2 * rng.standard_normal(44100)).astype(np.float32)))
    first = render_files([str(a), str(b)], str(tmp_path / "m"), gains_db=[0, -9], settings=MixSettings(duration_s=2.0))
    again = remix(str(tmp_path / "m"), str(tmp_path / "m2"))
    assert [o["gain_db"] for o in again.scene["objects"]] == [o["gain_db"] for o in first.scene["objects"]]
    assert (tmp_path / "m" / "mix.wav").read_bytes() == (tmp_path / "m2" / "mix.wav").read_bytes()
