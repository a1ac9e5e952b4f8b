"""The Mix page's timeline: when each object sounds over the scene, like a DAW arrangement.

One lane per object, top to bottom in object order; an event object's events are
bars from their onset for their duration (the scheduled one-shots of
:class:`~imgext.composition.arrange.Arrangement`), a bed or an area one bar over
the whole scene (it loops), an area's bar drawn lighter and hatched (it is wide).
:func:`timeline_figure` is a pure function of the arrangements (tested without a
browser); :func:`show_timeline` draws it for a session's project.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from imgext.vision.placement import Role
from pages._figures import dark_figure, trace

__all__ = ["lane_names", "show_timeline", "timeline_figure"]

_COLOURS = {Role.EVENT: "#f2a541", Role.BED: "#4c9be8", Role.AREA: "#59c9a5"}
_LEGEND = {Role.EVENT: "event (one-shot)", Role.BED: "bed (loops)", Role.AREA: "area (loops, wide)"}


def lane_names(labels: Mapping[int, str]) -> dict[int, str]:
    """Object index -> lane name: the label, numbered when two objects share it ("dog", "dog 2")."""
    seen: dict[str, int] = {}
    out = {}
    for i in sorted(labels):
        label = str(labels[i])
        seen[label] = seen.get(label, 0) + 1
        out[i] = label if seen[label] == 1 else f"{label} {seen[label]}"
    return out


def timeline_figure(arrangements: Mapping, names: Mapping[int, str], *, duration_s: float,
                    focus: int | None = None) -> go.Figure:
    """The arrangement of a scene as horizontal bars over time.

    Parameters
    ----------
    arrangements : mapping of object index -> Arrangement
        As :meth:`imgext.project.Project.arrangements` gives them.
    names : mapping of object index -> str
        Lane names (see :func:`lane_names`); an object without a name is shown by its index.
    duration_s : float
        Scene length in seconds (the x axis, and the length of a bed's bar).
    focus : int, optional
        The object index the user highlighted: its bars are framed in white.

    Returns
    -------
    go.Figure
        One horizontal bar trace per role present (legend: event, bed, area); every
        bar's ``base`` is its onset in seconds and its ``x`` its duration in seconds.
    """
    order = sorted(arrangements)
    lanes = [names.get(i, f"object {i}") for i in order]
    bars: dict[Role, dict[str, list]] = {}
    for i, lane in zip(order, lanes):
        arr = arrangements[i]
        role = Role.parse(arr.role)
        b = bars.setdefault(role, {"y": [], "base": [], "x": [], "text": [], "focus": []})
        if role is Role.EVENT:
            for e in arr.events:
                end = min(e.onset_s + e.duration_s, duration_s)
                b["y"].append(lane)
                b["base"].append(e.onset_s)
                b["x"].append(max(end - e.onset_s, 0.0))
                b["text"].append(f"{lane}: {e.onset_s:.2f}-{end:.2f} s, {e.gain_db:+.1f} dB, rate {e.rate:.2f}")
                b["focus"].append(i == focus)
        elif role in (Role.BED, Role.AREA):
            b["y"].append(lane)
            b["base"].append(0.0)
            b["x"].append(float(duration_s))
            wide = f", width {arr.width:.2f}" if role is Role.AREA else ""
            b["text"].append(f"{lane}: loops all through (from {arr.offset_s:.1f} s into its sound{wide})")
            b["focus"].append(i == focus)
    fig = dark_figure()
    for role in (Role.EVENT, Role.BED, Role.AREA):
        if role not in bars or not bars[role]["y"]:
            continue
        b = bars[role]
        marker = {"color": _COLOURS[role], "line": {"width": [3 if f else 0 for f in b["focus"]], "color": "#ffffff"}}
        if role is Role.AREA:
            marker["pattern"] = {"shape": "/", "fgcolor": "rgba(255,255,255,0.35)"}
        fig.add_trace(trace(
            "Bar", y=b["y"], base=b["base"], x=b["x"], orientation="h", name=_LEGEND[role], marker=marker,
            opacity=1.0 if role is Role.EVENT else 0.55, hovertext=b["text"], hoverinfo="text",
        ))
    fig.update_layout(
        barmode="overlay",
        title={"text": "Timeline: when each object sounds"}, height=max(180, 60 + 28 * len(lanes)),
        margin={"l": 10, "r": 10, "t": 40, "b": 10}, bargap=0.35,
        legend={"orientation": "h", "y": -0.25},
        xaxis={"title": {"text": "time (s)"}, "range": [0.0, float(duration_s)], "showgrid": True},
        yaxis={"categoryorder": "array", "categoryarray": lanes[::-1], "type": "category"},
    )
    return fig


def show_timeline(project, container=None, *, focus: int | None = None) -> None:
    """Draw the timeline of ``project`` (an :class:`~imgext.project.Project`) into ``container`` (default: the page).

    ``focus``: the object index the user highlighted (framed in white).
    """
    import streamlit as st

    arrangements = project.arrangements()
    if not arrangements:
        return
    names = lane_names({i: project.objects[i].label for i in arrangements if i < len(project.objects)})
    fig = timeline_figure(arrangements, names, duration_s=project.settings.duration_s, focus=focus)
    (container or st).plotly_chart(fig, key="timeline", theme=None, config={"displaylogo": False})
