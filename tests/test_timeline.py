"""The Mix page's timeline (pages/_timeline.py): one lane per object, events as bars, beds across the scene."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgext.composition.arrange import Arrangement, arrange_object
from imgext.composition.schedule import Event
from imgext.options import MixSettings
from imgext.sounds.synth import synthesize
from imgext.vision.detection import Detection
from imgext.vision.placement import Role, place_objects
from pages._timeline import lane_names, timeline_figure


def _traces(fig):
    return {t.name.split(" ")[0]: t for t in fig.data}


def test_events_are_bars_at_their_onsets_and_beds_span_the_scene():
    events = (Event(1.0, 0.5, -1.0, 0.0, 0.5), Event(7.25, 1.5, 2.0, 3.0, 4.5, rate=1.05),
              Event(29.5, 2.0, 0.0, 0.0, 2.0))  # the last one runs past the scene's end: drawn up to 30 s
    arrangements = {0: Arrangement(Role.EVENT, events), 2: Arrangement(Role.BED, offset_s=3.0),
                    3: Arrangement(Role.AREA, offset_s=1.0, side_offset_s=5.0, width=0.8)}
    names = lane_names({0: "dog", 2: "car", 3: "dog"})
    assert names == {0: "dog", 2: "car", 3: "dog 2"}
    fig = timeline_figure(arrangements, names, duration_s=30.0)
    t = _traces(fig)
    assert set(t) == {"event", "bed", "area"}
    assert list(t["event"].y) == ["dog"] * 3 and all(o == "h" for o in (t["event"].orientation, t["bed"].orientation))
    np.testing.assert_allclose(t["event"].base, [1.0, 7.25, 29.5])
    np.testing.assert_allclose(t["event"].x, [0.5, 1.5, 0.5])
    assert list(t["bed"].y) == ["car"] and tuple(t["bed"].base) == (0.0,) and tuple(t["bed"].x) == (30.0,)
    assert list(t["area"].y) == ["dog 2"] and t["area"].marker.pattern.shape == "/"
    assert "+2.0 dB" in t["event"].hovertext[1]
    assert list(fig.layout.yaxis.categoryarray) == ["dog 2", "car", "dog"]  # first object on top
    assert tuple(fig.layout.xaxis.range) == (0.0, 30.0)
    json.loads(fig.to_json())  # serialisable, as st.plotly_chart sends it


def test_timeline_of_a_real_arrangement():
    settings = MixSettings(duration_s=20.0, seed=4)
    objects = place_objects([Detection("dog", 0.9, (0.1, 0.3, 0.4, 0.9)), Detection("car", 0.8, (0.5, 0.3, 0.9, 0.8))])
    clips = [synthesize("dog_bark", duration_s=8.0, rng=1), synthesize("engine_idle", duration_s=8.0, rng=2)]
    arrangements = {i: arrange_object(o, i, c, settings=settings).arrangement
                    for i, (o, c) in enumerate(zip(objects, clips))}
    assert arrangements[0].role is Role.EVENT and arrangements[0].events
    fig = timeline_figure(arrangements, lane_names({0: "dog", 1: "car"}), duration_s=20.0)
    t = _traces(fig)
    onsets = [e.onset_s for e in arrangements[0].events]
    np.testing.assert_allclose(t["event"].base, onsets)
    assert all(0 <= b and b + x <= 20.0 + 1e-9 for b, x in zip(t["event"].base, t["event"].x))


def test_nothing_arranged_is_an_empty_figure():
    fig = timeline_figure({}, {}, duration_s=30.0)
    assert len(fig.data) == 0


@pytest.mark.slow
def test_mix_page_draws_the_timeline(bus_jpg):
    from tests.test_app import _ready_sounds, new_app, upload

    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    assert not at.exception and not at.error
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    timeline = [s for s in specs if "Timeline" in str(s.get("layout", {}).get("title", {}).get("text", ""))]
    assert len(timeline) == 1
    project = at.session_state["imgext_session"].project
    lanes = {y for trace in timeline[0]["data"] for y in trace["y"]}
    assert len(lanes) == len(project.arrangements()) >= 2  # the bus, the crowd, the ambience ...
    assert any(trace["name"].startswith("event") or trace["name"].startswith("area") for trace in timeline[0]["data"])


def test_the_focused_object_is_framed_in_the_timeline():
    settings = MixSettings(duration_s=20.0, seed=2)
    dog = place_objects([Detection("dog", 0.9, (0.1, 0.3, 0.4, 0.9))])[0]
    bark = synthesize("dog_bark", duration_s=3.0, sample_rate=settings.sample_rate, rng=1)
    arrangements = {0: arrange_object(dog, 0, bark, settings=settings).arrangement,
                    1: Arrangement(role=Role.BED, offset_s=1.0)}
    names = {0: "dog", 1: "rain"}
    plain = timeline_figure(arrangements, names, duration_s=20.0)
    framed = timeline_figure(arrangements, names, duration_s=20.0, focus=1)
    width = {t.name: list(t.marker.line.width) for t in framed.data}
    assert all(w == 0 for t in plain.data for w in t.marker.line.width)
    assert width["bed (loops)"] == [3] and all(w == 0 for w in width["event (one-shot)"])


@pytest.mark.slow
def test_a_highlighted_track_is_framed_on_the_mix_page(bus_jpg):
    """The 'Highlight' picker frames one track in the heatmaps, the table, the timeline and the photo."""
    from tests.test_app import _ready_sounds, new_app, upload

    at = _ready_sounds(upload(new_app(), "bus.jpg", bus_jpg.read_bytes()))
    at.switch_page("pages/3_mix.py").run()
    names = at.session_state["imgext_session"].project.tracks.names
    at.selectbox(key="mix_focus").select(names[0]).run()
    assert not at.exception and not at.error
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heat = [s for s in specs if "Masking" in str(s.get("layout", {}).get("title", {}).get("text", ""))]
    assert len(heat) == 2 and all(len(s["layout"].get("shapes", [])) == 2 for s in heat)
    timeline = next(s for s in specs if "Timeline" in str(s["layout"]["title"]["text"]))
    assert any(3 in t["marker"]["line"]["width"] for t in timeline["data"])
    at.selectbox(key="mix_focus").select("(none)").run()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert all(not s["layout"].get("shapes") for s in specs if "Masking" in str(s["layout"]["title"]["text"]))


def test_the_unvalidated_figures_are_valid_and_the_same_as_validated_ones():
    """pages/_figures builds figures without plotly's validation (cheap on every slider move): the same JSON."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from pages._figures import dark_figure, trace

    arrangements = {0: Arrangement(Role.EVENT, (Event(1.0, 0.5, -1.0, 0.0, 0.5),)),
                    1: Arrangement(Role.AREA, offset_s=1.0, side_offset_s=5.0, width=0.8)}
    z = np.arange(9.0).reshape(3, 3)
    heat = dark_figure(trace("Heatmap", z=z, x=list("abc"), y=list("abc"), zmin=0.0, zmax=8.0,
                             colorscale=[[0.0, "rgb(0, 0, 4)"], [1.0, "rgb(252, 255, 164)"]], texttemplate="%{text}",
                             text=[[f"{v:.1f}" for v in row] for row in z], hoverongaps=False, xgap=2),
                       title={"text": "Masking"}, height=400, yaxis={"autorange": "reversed"})
    heat.add_shape(type="rect", x0=-0.5, x1=2.5, y0=0.5, y1=1.5, line={"color": "#ffffff", "width": 2})
    for fig in (timeline_figure(arrangements, {0: "dog", 1: "rain"}, duration_s=10.0, focus=0), heat):
        validated = go.Figure(fig.to_dict())  # raises on any invalid property
        assert json.loads(validated.to_json()) == json.loads(fig.to_json())
        assert fig.to_dict()["layout"]["template"] == pio.templates["plotly_dark"].to_plotly_json()


def test_figures_go_out_through_orjson_with_the_same_content():
    """Streamlit serialises every figure on every rerun (plotly.io.to_json): with orjson installed (requirements.txt)
    plotly's "auto" engine takes it, and a Mix-page heatmap (NaN diagonal, text, shapes) reads back the same."""
    import plotly.io as pio

    from pages import _figures  # noqa: F401  (the app's figure helpers: importing them must not pin the engine)

    assert pio.json.config.default_engine == "auto"
    pytest.importorskip("orjson")
    from pages._figures import dark_figure, trace

    z = np.array([[np.nan, 3.25, 0.0], [1.0, np.nan, 7.5], [2.0, 0.125, np.nan]])
    fig = dark_figure(trace("Heatmap", z=z, x=["dog", "car", "bird"], y=["dog", "car", "bird"], zmin=0.0, zmax=8.0,
                            hoverongaps=False, text=[["", "3.2", "0.0"], ["1.0", "", "7.5"], ["2.0", "0.1", ""]],
                            texttemplate="%{text}"), title={"text": "Masking"}, height=400)
    fig.add_shape(type="rect", x0=-0.5, x1=2.5, y0=0.5, y1=1.5, line={"color": "#ffffff", "width": 2})
    fast = pio.to_json(fig, validate=False, engine="orjson")
    plain = pio.to_json(fig, validate=False, engine="json")
    assert json.loads(fast) == json.loads(plain)
    assert pio.to_json(fig, validate=False) == fast  # what Streamlit calls: orjson
