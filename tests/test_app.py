"""The Streamlit app, page by page, with AppTest (in-process, real detector, real sounds)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from tests.freesound_server import FreesoundServer

pytestmark = pytest.mark.slow  # end to end: subprocesses, servers or the whole app; skipped by the fast loop

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/1_image.py", "pages/2_sounds.py", "pages/3_mix.py"]
TIMEOUT = 120


class RecordingMediaFileManager(MediaFileManager):
    """Streamlit's own in-memory media manager, remembered so a test can read what a download button serves."""

    instances: list = []

    def __init__(self, storage) -> None:
        super().__init__(storage)
        RecordingMediaFileManager.instances.append(self)


@pytest.fixture
def media(monkeypatch):
    RecordingMediaFileManager.instances = []
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", RecordingMediaFileManager)
    return RecordingMediaFileManager.instances


def served_bytes(managers, url: str) -> bytes:
    file_id = url.rsplit("/", 1)[-1].split(".")[0]
    for mgr in reversed(managers):
        try:
            return mgr._storage.get_file(file_id).content
        except Exception:  # noqa: BLE001 - look in the next run's manager
            continue
    raise AssertionError(f"no media file behind {url}")


def deferred_bytes(managers, proto) -> bytes:
    """What a download button made of a callable serves when clicked (the callable runs now)."""
    mgr = next(m for m in reversed(managers) if proto.deferred_file_id in m._deferred_callables)
    return served_bytes([mgr], mgr.execute_deferred(proto.deferred_file_id))


ZIP_LABEL = "Download ZIP (mix, stems, sources, credits)"


def prepared_zip(at: AppTest, managers) -> bytes:
    """Click "Prepare ZIP" on the Mix page and read the bytes its download button then serves."""
    at.button(key="prep_zip").click().run()
    assert not at.exception and not at.error
    proto = {b.proto.label: b.proto for b in at.get("download_button")}[ZIP_LABEL]
    return served_bytes(managers, proto.url)


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, mime))
    at.run()
    return at


def elements(at: AppTest, kind: str) -> list:
    """Every element of a type (by class name) anywhere on the page."""
    found, stack = [], [at.main]
    while stack:
        node = stack.pop()
        for child in getattr(node, "children", {}).values():
            if type(child).__name__ == kind:
                found.append(child)
            stack.append(child)
    return found


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_before_anything_is_done(page):
    at = new_app()
    at.switch_page(page).run()
    assert not at.exception and not at.error
    assert at.info, "an empty page tells the user what to do first"


def test_upload_detects_and_lists_objects(bus_jpg):
    at = upload(new_app(), "bus.jpg", bus_jpg.read_bytes())
    assert not at.exception and not at.error
    n = int(at.subheader[0].value.split()[0])
    assert n >= 4
    assert elements(at, "Image"), "the photo with boxes is shown"
    assert len(at.dataframe) == 1, "the objects table is shown"
    status = elements(at, "Status")
    assert status and "Found" in str(status[0].proto.label)


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("holiday.jpg", b"this is not a picture", "not an image"),
        ("empty.jpg", b"", "empty"),
        ("cut.jpg", None, "damaged or truncated"),
    ],
)
def test_bad_uploads_are_messages_not_tracebacks(bus_jpg, name, data, message):
    if data is None:
        data = bus_jpg.read_bytes()[:20000]
    at = upload(new_app(), name, data)
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_photo_without_objects_says_so():
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 90, 90)).save(buf, format="PNG")
    at = upload(new_app(), "grey.png", buf.getvalue(), "image/png")
    assert not at.exception
    assert any("No objects" in w.value for w in at.warning)


def test_example_photo_and_add_object_by_hand():
    at = new_app()
    at.selectbox(key="example").set_value("zidane.jpg").run()
    before = int(at.subheader[0].value.split()[0])
    [s for s in at.slider if s.label == "Horizontal position"][0].set_value(0.9)
    [b for b in at.button if b.label == "Add object"][0].click().run()
    after = int(at.subheader[0].value.split()[0])
    assert not at.exception and after == before + 1


def _ready_sounds(at: AppTest) -> AppTest:
    at.switch_page("pages/2_sounds.py").run()
    assert not at.exception, at.exception
    at.button(key="find_sounds").click().run()
    assert not at.exception, at.exception
    return at


def test_builtin_sounds_flow_and_reroll(bus_jpg):
    at = upload(new_app(), "bus.jpg", bus_jpg.read_bytes())
    at = _ready_sounds(at)
    assert any("synthesised" in i.value for i in at.info)
    audios = at.get("audio")
    assert len(audios) >= 3  # the bus, the crowd (four persons sound as one) and the street ambience
    assert "crowd" in texts(at) and "ambience" in texts(at)
    first = [m.value for m in at.markdown if "synthetic" in m.value][0]
    at.button(key="reroll_0").click().run()
    assert not at.exception
    assert [m.value for m in at.markdown if "synthetic" in m.value][0] != first


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


def test_freesound_flow_with_a_secret_key(freesound_env, images_dir):
    at = new_app()
    at.secrets["FREESOUND_API_KEY"] = "app-key"
    at = upload(at, "wilddog.jpg", (images_dir / "wilddog.jpg").read_bytes())
    at = _ready_sounds(at)
    assert any("Freesound" in s.value for s in at.success)
    page = texts(at)
    assert " by " in page and ("CC0" in page or "CC BY" in page)
    assert freesound_env.count("search") >= 1 and freesound_env.count("preview") >= 1
    assert "found nothing for '" in page, "the fallback to built-in sounds is announced"
    # every candidate can be heard and picked
    first = [m.value for m in at.markdown if "**in use here**" in m.value][0]
    use = [b for b in at.button if b.key and b.key.startswith("use_0_") and not b.disabled][0]
    use.click().run()
    assert not at.exception and not at.error
    assert [m.value for m in at.markdown if "**in use here**" in m.value][0] != first
    assert "chosen by you" in texts(at)
    import re

    assert re.search(r"relevance [01]\.\d\d", texts(at)), texts(at)[:3000]  # the score beside each sound
    like = [b for b in at.button if b.key and b.key.startswith("like_")]
    assert like, "a 'More like this' button per Freesound sound"
    like[0].click().run()
    assert not at.exception and not at.error
    assert "like '" in texts(at) or "nothing acceptable and unused like" in texts(at)


@pytest.mark.parametrize(
    "fault,message",
    [("refuse_key", "API key was refused"), ("throttle_day", "daily request limit"), ("down", "could not be reached")],
)
def test_freesound_failures_are_explained(freesound_env, images_dir, fault, message):
    at = new_app()
    at.secrets["FREESOUND_API_KEY"] = "app-key"
    at = upload(at, "wildcat.jpg", (images_dir / "wildcat.jpg").read_bytes())
    setattr(freesound_env.faults, fault, True)
    at = _ready_sounds(at)
    assert not at.exception
    assert message in texts(at)


def test_typed_key_is_kept_for_the_session_and_never_shown(freesound_env, images_dir):
    at = upload(new_app(), "wildcat.jpg", (images_dir / "wildcat.jpg").read_bytes())
    at.switch_page("pages/2_sounds.py").run()
    at.radio(key="source_kind").set_value("freesound").run()
    secret = "app-key"
    at.text_input(key="api_key_input").input(secret)
    [b for b in at.button if b.label == "Use this key"][0].click().run()
    assert not at.exception
    assert any("typed for this session" in s.value for s in at.success)
    at.button(key="find_sounds").click().run()
    tree = str(at._tree)
    assert secret not in tree, "the key must not reach the page"
    assert at.text_input(key="api_key_input").value in ("", None) if any(
        w.key == "api_key_input" for w in at.text_input) else True


def settle(at: AppTest) -> AppTest:
    """What the stems player does once the sliders rest after a level preview: ask for the render."""
    state = at.session_state["imgext_stems_player"]
    if state.pending:
        at.session_state["stems_player"] = {"mount": "apptest", "seq": state.pending, "revision": state.revision,
                                            "ab": "after", "have": sorted(state.sent), "settle": state.pending}
        at.run()
        assert not at.exception and not at.session_state["imgext_stems_player"].pending
    return at


def test_mix_page_sliders_heatmaps_player_and_downloads(bus_jpg, media):
    at = upload(new_app(), "bus.jpg", bus_jpg.read_bytes())
    at = _ready_sounds(at)
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception and not at.error
    # Two heatmaps plus the EQ/ducking curves (and the ducking lane when a track is ducked), issue 13.
    assert len(at.get("plotly_chart")) >= 3
    assert not at.get("audio"), "the rendered files are made only once their expander is opened"
    at.session_state["mix_files"] = True
    at.run()
    assert len(at.get("audio")) == 2  # loudness-matched before / after players (issue 13)
    at.session_state["mix_files"] = False
    labels = [m.label for m in at.metric]
    assert "Total masking" in labels and "Loudness" in labels and "True peak" in labels
    before = {m.label: m.value for m in at.metric}
    at.slider(key="mix_eq_strength").set_value(0.0).run()
    assert not at.exception
    assert at.session_state["imgext_stems_player"].pending, "an EQ move is rendered when the sliders rest"
    assert {m.label: m.value for m in at.metric} == before, "the last render's numbers meanwhile"
    settle(at)
    after = {m.label: m.value for m in at.metric}
    assert after["Total masking"] != before["Total masking"] or after != before
    at.slider(key="mix_attenuation_db").set_value(3.0).run()
    at.slider(key="mix_loudness_lufs").set_value(-23.0).run()
    assert at.session_state["imgext_stems_player"].pending, "a level move is first a level preview"
    assert {m.label: m.value for m in at.metric} == after, "the last render's numbers meanwhile (and said so)"
    assert any("Level preview" in c.value for c in at.caption)
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    early = deferred_bytes(media, buttons["Download mix.wav"])  # rendered when clicked, for the new settings
    settle(at)
    assert {m.label: m.value for m in at.metric}["Loudness"].startswith("-23")
    assert not any("Level preview" in c.value for c in at.caption)
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    wav = deferred_bytes(media, buttons["Download mix.wav"])
    assert wav[:4] == b"RIFF" and len(wav) > 100_000
    assert early == wav, "the download during a level preview is the mix of its settings, byte for byte"
    assert ZIP_LABEL not in buttons, "the ZIP is prepared on request, not on every slider move"
    data = prepared_zip(at, media)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {"mix.wav", "scene.json", "ATTRIBUTION.txt"} <= set(names)
    assert any(n.startswith("stems/") and n.endswith("_processed.flac") for n in names)  # FLAC stems by default
    at.run()  # nothing changed: the prepared ZIP is offered again, not built again
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert served_bytes(media, buttons[ZIP_LABEL].url) == data
    at.slider(key="mix_loudness_lufs").set_value(-20.0).run()  # a new mix: the old ZIP is dropped
    assert ZIP_LABEL not in {b.proto.label for b in at.get("download_button")}
    assert at.session_state["imgext_session"].zip_bundle is None
    assert any(b.key == "prep_zip" for b in at.button)


def test_headphone_toggle_reuses_the_render_and_makes_the_headphone_mix_when_asked(bus_jpg, media, monkeypatch):
    """Binaural on: the stereo render is not redone, the HRTF mix is made for the download and the files only."""
    import numpy as np
    import soundfile as sf

    from imgext.mix import binaural

    try:
        binaural.load_hrtf(44100)
    except binaural.HrtfUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI installs libmysofa1
        pytest.skip(str(exc))
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    p = at.session_state["imgext_session"].project
    stereo = p.mixer()._rendered[-1][1]
    made = []
    real = binaural.headphone_mix
    monkeypatch.setattr(binaural, "headphone_mix", lambda *a, **k: made.append(1) or real(*a, **k))  # the page imports it per run
    at.toggle(key="mix_binaural").set_value(True).run()
    assert not at.exception and not at.error
    assert p.mixer()._rendered[-1][1] is stereo, "the toggle reuses the stereo render"
    assert not made, "no HRTF mix until something asks for it"
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    wav = deferred_bytes(media, buttons["Download mix_binaural.wav"])
    assert len(made) == 1
    y, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    expected, _ = real(stereo, p.tracks, p.settings)
    assert rate == 44100 and np.max(np.abs(y.T - expected.audio)) < 2.0 ** -22, "the headphone mix, to 24 bits"
    assert np.max(np.abs(y.T - stereo.mix.audio)) > 1e-3, "not the stereo mix"
    at.session_state["mix_files"] = True  # the rendered files: the same render's headphone mix, not made again
    at.run()
    assert not at.exception and len(at.get("audio")) == 2 and len(made) == 1


def test_optimise_toggle(bus_jpg):
    at = upload(new_app(), "bus.jpg", bus_jpg.read_bytes())
    at = _ready_sounds(at)
    at.switch_page("pages/3_mix.py").run()
    at.toggle(key="mix_optimise").set_value(True).run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 2


def test_delete_removes_only_this_sessions_work(bus_jpg):
    a = upload(new_app(), "bus.jpg", bus_jpg.read_bytes())
    b = upload(new_app(), "bus.jpg", bus_jpg.read_bytes())
    id_a = a.session_state["imgext_session"].session_id
    assert id_a != b.session_state["imgext_session"].session_id
    a.switch_page("pages/3_mix.py").run()
    a.button(key="delete_mine").click().run()
    assert not a.exception
    after = a.session_state["imgext_session"]
    assert after.session_id != id_a and not after.project.objects and after.project.picture is None
    assert b.session_state["imgext_session"].project.objects, "the other session keeps its work"


def test_next_mix_link_appears_without_cache_warnings(bus_jpg):
    """Bug: the link sat inside the loop over cache warnings, so a healthy cache hid it."""
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    assert not at.warning or not any("Sound cache" in w.value for w in at.warning)
    assert "Next: mix" in [link.value for link in at.page_link]


def test_mix_settings_survive_a_visit_to_another_page(bus_jpg):
    """Bug: the sliders lived only in widget keys, which Streamlit drops after a run without the widget."""
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    at.slider(key="mix_eq_strength").set_value(0.35).run()
    at.slider(key="mix_attenuation_db").set_value(20.0).run()
    at.toggle(key="mix_optimise").set_value(True).run()
    at.switch_page("pages/1_image.py").run()
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception
    assert at.slider(key="mix_eq_strength").value == pytest.approx(0.35)
    assert at.slider(key="mix_attenuation_db").value == pytest.approx(20.0)
    assert at.toggle(key="mix_optimise").value is True
    settings = at.session_state["imgext_session"].project.settings
    assert (settings.eq_strength, settings.attenuation_db, settings.optimise) == (0.35, 20.0, True)


def test_mix_page_scene_row_activity_and_ambience(bus_jpg):
    at = upload(new_app(), "bus.jpg", bus_jpg.read_bytes())
    at = _ready_sounds(at)
    at.switch_page("pages/3_mix.py").run()
    assert at.selectbox(key="mix_ambience").value == "auto"
    at.slider(key="mix_activity").set_value(2.0).run()
    assert not at.exception and not at.error
    at.selectbox(key="mix_ambience").set_value("park").run()
    assert not at.exception and not at.error
    assert any("new ambience" in i.value for i in at.info), "the new ambience's sound is still to be found"


def test_mix_page_says_when_attenuation_has_nothing_to_turn_down(bus_jpg, images_dir):
    """One animal and its ambience (wildcat.jpg): the slider would change nothing, and the page says so."""
    note = "Attenuation changes nothing here"
    at = _ready_sounds(upload(new_app(), "wildcat.jpg", (images_dir / "wildcat.jpg").read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception and not at.error
    assert note in texts(at)
    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))  # people and a bus: some less important
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception and note not in texts(at)

