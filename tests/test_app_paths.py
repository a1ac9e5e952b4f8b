"""Issue 14 in the app (AppTest): undo/redo, and the paths that misled a new user."""

from __future__ import annotations

import numpy as np
import pytest

from imgext.options import MixSettings
from tests.freesound_server import FreesoundServer
from tests.test_app import (
    RecordingMediaFileManager,
    _ready_sounds,
    deferred_bytes,
    new_app,
    prepared_zip,
    texts,
    upload,
)

pytestmark = pytest.mark.slow  # the whole app in-process with the real detector


@pytest.fixture
def media(monkeypatch):
    RecordingMediaFileManager.instances = []
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", RecordingMediaFileManager)
    return RecordingMediaFileManager.instances


@pytest.fixture(scope="module")
def server():
    with FreesoundServer(api_key="app-key") as srv:
        yield srv


@pytest.fixture
def freesound_env(server, monkeypatch):
    server.reset()
    monkeypatch.setenv("IMGEXT_FREESOUND_URL", server.base_url)
    yield server
    server.reset()


def test_undo_redo_on_the_mix_page_moves_the_sliders_back(bus_jpg):
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    assert at.button(key="mix_undo").disabled
    default = MixSettings().eq_strength
    at.slider(key="mix_eq_strength").set_value(0.0).run()
    at.slider(key="mix_attenuation_db").set_value(3.0).run()
    assert not at.button(key="mix_undo").disabled
    at.button(key="mix_undo").click().run()
    assert not at.exception
    assert at.slider(key="mix_attenuation_db").value == pytest.approx(MixSettings().attenuation_db)
    assert at.slider(key="mix_eq_strength").value == pytest.approx(0.0)
    at.button(key="mix_undo").click().run()
    assert at.slider(key="mix_eq_strength").value == pytest.approx(default)
    project = at.session_state["imgext_session"].project
    assert (project.settings.eq_strength, project.settings.attenuation_db) == (default, MixSettings().attenuation_db)
    at.button(key="mix_redo").click().run()
    assert at.slider(key="mix_eq_strength").value == pytest.approx(0.0)
    assert at.session_state["imgext_session"].project.settings.eq_strength == 0.0
    at.run()  # a rerun with nothing touched keeps the redone value (the widget follows the project)
    assert at.session_state["imgext_session"].project.settings.eq_strength == 0.0


def test_undo_on_the_image_page_takes_back_an_added_object(zidane_jpg):
    at = new_app()
    at.selectbox(key="example").set_value("zidane.jpg").run()
    before = int(at.subheader[0].value.split()[0])
    [b for b in at.button if b.label == "Add object"][0].click().run()
    assert int(at.subheader[0].value.split()[0]) == before + 1
    at.button(key="image_undo").click().run()
    assert not at.exception and int(at.subheader[0].value.split()[0]) == before
    at.button(key="image_redo").click().run()
    assert int(at.subheader[0].value.split()[0]) == before + 1
    assert "Undo" in [b.label for b in at.button]
    assert texts(at)


def _mix_page(bus_jpg):
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception and not at.error
    return at


def test_downloads_mix_is_24_bit_and_the_zip_stems_are_flac(bus_jpg, media):
    import io
    import zipfile

    import soundfile as sf

    at = _mix_page(bus_jpg)
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    wav = deferred_bytes(media, buttons["Download mix.wav"])
    assert sf.info(io.BytesIO(wav)).subtype == "PCM_24", "the README and the command line promise 24-bit"
    flac_zip = prepared_zip(at, media)
    at.toggle(key="flac_stems").set_value(False).run()
    wav_zip = prepared_zip(at, media)
    assert len(flac_zip) < 0.8 * len(wav_zip), (len(flac_zip), len(wav_zip))
    with zipfile.ZipFile(io.BytesIO(flac_zip)) as zf, zipfile.ZipFile(io.BytesIO(wav_zip)) as zw:
        flacs = sorted(n for n in zf.namelist() if n.startswith("stems/"))
        assert flacs and all(n.endswith(".flac") for n in flacs)
        for name in flacs:  # lossless: the very samples of the WAV stem
            a, _ = sf.read(io.BytesIO(zf.read(name)), dtype="int16")
            b, _ = sf.read(io.BytesIO(zw.read(name[:-5] + ".wav")), dtype="int16")
            np.testing.assert_array_equal(a, b)
        assert zf.read("mix.wav") == zw.read("mix.wav")


def test_heatmap_colours_survive_streamlit_and_stale_sounds_are_said(bus_jpg):
    import json
    import re

    at = _mix_page(bus_jpg)
    assert not any("out of date" in w.value for w in at.warning)
    for chart in at.get("plotly_chart")[:2]:
        spec = json.loads(chart.proto.spec)
        trace = spec["data"][0]
        assert trace["type"] == "heatmap" and trace["zauto"] is False and trace["zmin"] == 0.0
        # Streamlit's frontend rewrites "#000001".."#000010" in a figure: Inferno's black "#000004" became purple
        assert not re.search(r"#0000(0[1-9]|10)\b", chart.proto.spec, re.IGNORECASE)
        stops = trace["colorscale"]
        lightness = [sum(map(int, re.findall(r"\d+", c))) for _, c in stops]
        assert stops[0][0] == 0 and lightness[0] == min(lightness), "0 dB is the darkest colour"
    project = at.session_state["imgext_session"].project
    project.edit_object(1, query="double decker bus")  # what the Image page's table does
    at.run()
    assert any("out of date" in w.value for w in at.warning), [w.value for w in at.warning]


def _freesound_sounds_page(freesound_env, images_dir, photo="wildcat.jpg"):
    at = new_app()
    at.secrets["FREESOUND_API_KEY"] = "app-key"
    at = upload(at, photo, (images_dir / photo).read_bytes())
    at.switch_page("pages/2_sounds.py").run()
    assert not at.exception, at.exception
    return at


def _filters_sent(srv) -> list[str]:
    return [r.query.get("filter", "") for r in srv.requests if r.kind == "search"]


@pytest.mark.parametrize("preset,rule", [
    ("Lossless studio quality", "samplerate:(44100 OR 48000 OR 96000)"),
    ("Well-rated ambiences", "num_ratings:[3 TO *]"),
])
def test_a_preset_sends_every_rule_and_none_clears_it(freesound_env, images_dir, preset, rule):
    from imgext.sounds.filters import BUILTIN_PRESETS

    at = _freesound_sounds_page(freesound_env, images_dir)
    at.selectbox(key="preset_choice").set_value(preset).run()
    assert not at.exception
    assert at.session_state["imgext_session"].filter_obj == BUILTIN_PRESETS[preset]
    assert at.session_state["imgext_session"].preset_name == preset
    freesound_env.reset()
    at.button(key="find_sounds").click().run()
    sent = _filters_sent(freesound_env)
    assert sent and all(rule in f for f in sent), sent
    assert all(BUILTIN_PRESETS[preset].to_solr() in f for f in sent), "the whole preset, as saved"
    at.selectbox(key="preset_choice").set_value("(none)").run()
    assert at.session_state["imgext_session"].filter_obj is None
    assert at.number_input(key="f_dmin").value == 0.0 and at.multiselect(key="f_rates").value == []
    freesound_env.reset()
    at.button(key="find_sounds").click().run()
    sent = _filters_sent(freesound_env)
    assert sent and not any(rule in f for f in sent), sent


def test_a_saved_preset_is_listed_and_chosen_at_once(freesound_env, images_dir):
    at = _freesound_sounds_page(freesound_env, images_dir)
    at.number_input(key="f_dmax").set_value(20.0).run()
    at.text_input(key="preset_name").input("Short ones").run()
    at.button(key="preset_save").click().run()
    assert not at.exception and not at.error
    box = at.selectbox(key="preset_choice")
    assert "Short ones" in box.options and box.value == "Short ones"
    assert at.session_state["imgext_session"].preset_name == "Short ones"


def test_a_filter_that_excludes_everything_is_said_per_object(freesound_env, images_dir):
    at = _freesound_sounds_page(freesound_env, images_dir)
    at.text_input(key="f_raw").input("duration:[99999 TO *]").run()
    at.button(key="find_sounds").click().run()
    assert not at.exception
    project = at.session_state["imgext_session"].project
    sounding = [a for a, o in zip(project.assignments, project.objects) if not o.skipped]
    assert sounding and all(a.candidate is not None and a.candidate.synthetic for a in sounding)
    said = [w.value for w in at.warning if "built-in synthetic sound" in w.value and "found nothing" in w.value]
    assert len(said) == len(sounding), [w.value for w in at.warning]
    assert all("with your search filter" in w for w in said)


@pytest.mark.parametrize("fault,message", [("down", "could not be reached"), ("refuse_key", "API key was refused")])
def test_the_ticked_fallback_works_when_freesound_fails(freesound_env, images_dir, fault, message):
    at = _freesound_sounds_page(freesound_env, images_dir)
    assert at.checkbox(key="fallback").value is True
    setattr(freesound_env.faults, fault, True)
    at.button(key="find_sounds").click().run()
    assert not at.exception
    project = at.session_state["imgext_session"].project
    assert project.tracks.n_tracks >= 1, "the built-in sounds stand in"
    assert all(a.candidate is not None and a.candidate.synthetic for a, o in zip(project.assignments, project.objects)
               if not o.skipped)
    warning = [w.value for w in at.warning if "could not be used" in w.value]
    assert warning and message in warning[0]
    assert freesound_env.count("search") <= 4, "a failed Freesound is not asked again for every term"


def test_a_photo_with_no_objects_says_so_on_the_sounds_page():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 90, 90)).save(buf, format="PNG")
    at = upload(new_app(), "grey.png", buf.getvalue(), "image/png")
    at.switch_page("pages/2_sounds.py").run()
    assert not at.exception
    assert not any("First choose a photo" in i.value for i in at.info)
    warning = [w.value for w in at.warning if "No objects were found in grey" in w.value]
    assert warning and "ambience alone" in warning[0]
    assert "Add an object by hand" in [link.label for link in at.get("page_link")] or "Add an object by hand" in str(at._tree)
    at.button(key="find_sounds").click().run()  # the ambience alone can be found and mixed
    assert at.session_state["imgext_session"].project.tracks.n_tracks == 1
    # with the ambience turned off, the page offers it back
    at.switch_page("pages/3_mix.py").run()
    at.selectbox(key="mix_ambience").set_value("none").run()
    at.switch_page("pages/2_sounds.py").run()
    assert any("soundscape is silent" in w.value for w in at.warning)
    at.button(key="use_ambience").click().run()
    project = at.session_state["imgext_session"].project
    assert project.settings.ambience == "auto" and any(not o.skipped for o in project.objects)


def _open(at, kind: str) -> list:
    """Elements of a type that are not inside a collapsible box (an expander or a status)."""
    found, stack = [], [at.main]
    while stack:
        node = stack.pop()
        for child in getattr(node, "children", {}).values():
            if type(child).__name__ in ("Expander", "Status"):
                continue
            if type(child).__name__ == kind:
                found.append(child)
            stack.append(child)
    return found


def test_the_reason_of_a_failure_is_shown_open():
    at = upload(new_app(), "holiday.jpg", b"this is not a picture")
    assert not at.exception
    assert any("not an image" in e.value for e in _open(at, "Error")), [e.value for e in at.error]


def test_the_image_page_does_not_import_torch():
    """``import ultralytics`` (for its example photos' folder) loaded torch: +500 MB idle RSS (bench/app.py)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(root / 'app.py')!r}, default_timeout=120)\n"
        "at.run()\n"
        "at.selectbox(key='example').set_value('bus.jpg').run()\n"
        "assert not at.exception, at.exception\n"
        "assert int(at.subheader[0].value.split()[0]) >= 3\n"
        "print('torch' in sys.modules, 'ultralytics' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout
