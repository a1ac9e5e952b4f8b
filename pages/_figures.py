"""The pages' plotly figures, built without plotly's per-property validation.

Validating every property (and deep-copying the ``plotly_dark`` template into each figure) cost
15-40 ms per figure, and the Mix page draws five on every slider move. The figures are fixed
code, so the page builds them unvalidated against one template object validated once; the JSON
sent to the browser is the same (``tests/test_timeline.py``).
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio
from plotly.basedatatypes import BaseTraceType

DARK = pio.templates["plotly_dark"]
"""The dark template, validated once per process."""

TRANSPARENT = {"paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}


def trace(kind: str, **props) -> BaseTraceType:
    """A plotly trace of class ``go.<kind>`` (``"Scatter"``, ``"Heatmap"``, ``"Bar"`` ...) with ``props``, unvalidated."""
    return getattr(go, kind)(_validate=False, **props)


def dark_figure(data=None, **layout) -> go.Figure:
    """A figure of ``data`` (traces from :func:`trace`) on the dark template, transparent, with ``layout``."""
    return go.Figure(data=data, layout={"template": DARK, **TRANSPARENT, **layout}, _validate=False)  # (no
    # update_layout: its validated path cost ~7 ms a figure, the constructor ~2 ms for the same JSON)
