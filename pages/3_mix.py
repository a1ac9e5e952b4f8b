"""Page 3: mix sliders, masking heatmaps before and after the adaptive EQ, the player and the downloads."""

from __future__ import annotations

import functools
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from imgext.audio.io import encode_wav
from imgext.composition.ambience import AUTO, NONE, ambience_names, is_ambience
from imgext.mix.binaural import HrtfUnavailable, headphone_mix, load_hrtf
from imgext.mix.mixer import Mixer
from imgext.options import MixSettings
from pages._figures import dark_figure, trace
from pages._player import FOCUS_KEY, before_settings, level_preview, stems_player
from pages._state import (
    access,
    app_settings,
    get_pool,
    guarded,
    heavy,
    history_buttons,
    md,
    reset_session,
    session,
    setting_widget,
    shared_cache,
)
from pages._timeline import lane_names, timeline_figure


def rgb_colorscale(name: str) -> list[list]:
    """Plotly's named colour scale with every colour written ``rgb(r, g, b)``.

    Streamlit's frontend rewrites the literal strings ``#000001`` .. ``#000010`` anywhere in a figure (its
    placeholders for categorical colours, even with ``theme=None``): Inferno's black ``#000004`` became
    purple ``#ab63fa``, so 0 dB cells drew brighter than 1 dB cells.
    """
    from plotly.colors import get_colorscale, hex_to_rgb

    return [[pos, "rgb({}, {}, {})".format(*hex_to_rgb(c)) if c.startswith("#") else c] for pos, c in get_colorscale(name)]


_INFERNO = rgb_colorscale("Inferno")


def heatmap(report, names: list[str], title: str, zmax: float, focus: int | None = None) -> go.Figure:
    """The masking matrix as a heatmap (rows mask columns); the highlighted track's row and column framed."""
    z = np.asarray(report.matrix_db, dtype=float).copy()
    np.fill_diagonal(z, np.nan)  # a track does not mask itself: leave the diagonal blank
    text = [["" if i == j else f"{z[i, j]:.1f}" for j in range(len(names))] for i in range(len(names))]
    fig = dark_figure(
        trace(
            "Heatmap", z=z, x=names, y=names, zmin=0.0, zmax=zmax, zauto=False, colorscale=_INFERNO,
            colorbar={"title": {"text": "dB"}}, text=text, texttemplate="%{text}",
            hovertemplate="%{y} masks %{x} by %{z:.1f} dB<extra></extra>", hoverongaps=False, xgap=2, ygap=2,
        ),
        title={"text": title}, height=400, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"title": {"text": "maskee (is covered)"}, "side": "bottom"},
        yaxis={"title": {"text": "masker (covers)"}, "autorange": "reversed"},
    )
    if focus is not None and 0 <= focus < len(names):
        n = len(names)
        frame = {"color": "#ffffff", "width": 2}
        fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=focus - 0.5, y1=focus + 0.5, line=frame)  # what it masks
        fig.add_shape(type="rect", x0=focus - 0.5, x1=focus + 0.5, y0=-0.5, y1=n - 0.5, line=frame)  # what masks it
    return fig


FIGURES_KEY = "imgext_mix_figures"
# Session key of the figures made for the last render (by name): a rerun that rendered nothing new reuses them.


def _same(a, b) -> bool:
    """``a is b``, or for two tuples the same objects in the same places."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return a is b


def once_per_render(outcome, name: str, key: tuple, make):
    """``make()`` once per ``outcome`` and ``key`` (this session's ``st.session_state``), else the last result.

    ``outcome`` is compared by identity (a tuple element by element): a render, or what a figure shows
    of it (its ducking plan, its masking reports), which a render that changed only the reverb or the
    loudness shares.
    """
    store = st.session_state.setdefault(FIGURES_KEY, {})
    hit = store.get(name)
    if hit is not None and _same(hit[0], outcome) and hit[1] == key:
        return hit[2]
    value = make()
    store[name] = (outcome, key, value)
    return value


def timeline(p, tracks, *, focus: int | None = None) -> None:
    """The timeline of ``tracks``' arrangements (pages/_timeline.py), made once per composition and focus."""
    arrangements = {tracks.object_indices[k]: a for k, a in tracks.arrangements.items()}
    if not arrangements:
        return
    labels = {i: p.objects[i].label for i in arrangements if i < len(p.objects)}
    fig = once_per_render(tracks.audio, "timeline", (focus, p.settings.duration_s, tuple(sorted(labels.items()))),
                          lambda: timeline_figure(arrangements, lane_names(labels), duration_s=p.settings.duration_s,
                                                  focus=focus))
    st.plotly_chart(fig, key="timeline", theme=None, config={"displaylogo": False})


def focus_selector(names: list[str]) -> int | None:
    """'Highlight' picker: the chosen track (index into ``names``) is framed in the photo, heatmaps, table and timeline."""
    options = ["(none)", *names]
    if st.session_state.get(FOCUS_KEY) not in options:
        st.session_state[FOCUS_KEY] = "(none)"
    chosen = st.selectbox("Highlight", options, key=FOCUS_KEY, help="Frame one sound in the photo, the heatmaps, "
                          "the table and the timeline")
    return names.index(chosen) if chosen in names else None


def metrics(outcome, names: list[str], importance) -> None:
    b, a = outcome.masking_before, outcome.masking_after
    c = st.columns(5)
    c[0].metric("Total masking", f"{a.total_db:.2f} dB", f"{a.total_db - b.total_db:+.2f} dB", delta_color="inverse",
                help="Importance-weighted masking of every track by the rest of the mix")
    pair = b.worst_problem_pair or b.worst_pair
    if pair is not None:
        i, j, v = pair
        after_v = float(a.matrix_db[i][j])
        kind = "Worst clash" if b.worst_problem_pair is not None else "Strongest masking"
        c[1].metric(f"{kind}: {md(names[i])} → {md(names[j])}", f"{after_v:.1f} dB", f"{after_v - v:+.1f} dB", delta_color="inverse",
                    help="A clash is a sound covering one at least as important: what the EQ may fix. "
                         "A more important sound covering a background one is intended and left alone.")
    else:
        c[1].metric("Worst clash", "none")
    top = int(np.argmax(importance))
    c[2].metric(f"Masked fraction of {md(names[top])}", f"{a.masked_fraction[top] * 100:.0f} %",
                f"{(a.masked_fraction[top] - b.masked_fraction[top]) * 100:+.0f} pts", delta_color="inverse")
    mix = outcome.mix
    c[3].metric("Loudness", "silent" if mix.loudness_lufs is None else f"{mix.loudness_lufs:.1f} LUFS",
                help="Integrated loudness, ITU-R BS.1770" + (" (held back by the peak ceiling)" if mix.limited_by_peak else ""))
    c[4].metric("True peak", "—" if mix.true_peak_dbtp is None else f"{mix.true_peak_dbtp:.1f} dBTP",
                help=f"BS.1770-4, 4x oversampled; the limiter reduced up to {mix.gain_reduction_db:.1f} dB "
                     f"for {mix.limited_s:.1f} s")


def processing_charts(outcome, names: list[str], mixer) -> None:
    """What the engine did: each processed track's curve over frequency and, for the duck, its gain over time."""
    # What the charts show is the processing (the duck's plan, or the EQ's filters), made once per design and
    # strength: a reverb or loudness render shares it, and its charts are not rebuilt.
    shown = outcome.ducking if outcome.ducking is not None else outcome.filters
    figs = once_per_render(shown, "processing", (tuple(names), id(mixer)), lambda: processing_figures(outcome, names, mixer))
    if figs is None:
        st.caption("Nothing processed: no less important sound covers a more important one, or the EQ is off.")
        return
    left, right = st.columns(2)
    left.plotly_chart(figs[0], key="eq_curves", theme=None, config={"displaylogo": False})
    if figs[1] is not None:
        right.plotly_chart(figs[1], key="duck_lane", theme=None, config={"displaylogo": False})


def processing_figures(outcome, names: list[str], mixer) -> tuple[go.Figure, go.Figure | None] | None:
    """The EQ / ducking curves and the ducking lane of ``outcome`` (None when nothing was processed).

    Built in one go with plain lists (a trace's numpy arrays cost plotly a typed-array conversion each
    when sent, and a figure's validated ``update_*`` calls ~1 ms each: 80 -> 30 ms at 29 ducked tracks).
    """
    bands = mixer.bands()  # (the Mixer that rendered ``outcome``: its analysis)
    data = []
    duck = outcome.ducking
    active = np.flatnonzero(duck.active) if duck is not None else np.zeros(0, dtype=int)
    if active.size:
        curves = duck.frequency_response_db()
        centres = np.asarray(bands.band_centres_hz, dtype=float).tolist()
        for k in active:
            data.append(trace("Scatter", x=centres, y=np.asarray(curves["deepest"][k], dtype=float).tolist(),
                              name=f"{names[k]} (deepest)", mode="lines+markers"))
            data.append(trace("Scatter", x=centres, y=np.asarray(curves["static"][k], dtype=float).tolist(),
                              name=f"{names[k]} (always on)", mode="lines", line={"dash": "dot"}))
    else:
        from imgext.engine.eq import combined_response_db

        for k, filters in enumerate(outcome.filters):
            if filters:
                f, h = combined_response_db(filters, session().project.settings.sample_rate, n_points=400)
                data.append(trace("Scatter", x=np.asarray(f, dtype=float).tolist(),
                                  y=np.asarray(h, dtype=float).tolist(), name=names[k], mode="lines"))
    if not data:
        return None
    margin = {"l": 10, "r": 10, "t": 40, "b": 10}
    fig = dark_figure(data, xaxis={"type": "log", "title": {"text": "frequency (Hz)"}},
                      yaxis={"title": {"text": "gain (dB)"}}, title={"text": "EQ / ducking curve per track"},
                      height=320, margin=margin)
    lanes = None
    if active.size:
        t, lane = duck.gain_lane_db(max_points=600)
        t = np.asarray(t, dtype=float).tolist()
        lanes = dark_figure([trace("Scatter", x=t, y=np.asarray(lane[k], dtype=float).tolist(), name=names[k],
                                   mode="lines", line={"shape": "spline"}) for k in active],
                            xaxis={"title": {"text": "time (s)"}}, yaxis={"title": {"text": "deepest band gain (dB)"}},
                            title={"text": "Ducking over time (while a more important sound plays)"}, height=320,
                            margin=margin)
    return fig, lanes


def ab_players(outcome, settings: MixSettings, wav: bytes) -> None:
    """Before / after side by side at the same integrated loudness (the 'before' is not quieter or louder)."""
    p = session().project
    before = p.mixer().render(before_settings(settings), measure_after=False).mix  # the player's A: cached
    audio = before.audio
    if before.loudness_lufs is not None and outcome.mix.loudness_lufs is not None:
        audio = audio * np.float32(10.0 ** ((outcome.mix.loudness_lufs - before.loudness_lufs) / 20.0))
    a, b = st.columns(2)
    a.caption(f"Before (no EQ/ducking), {outcome.mix.loudness_lufs or float('nan'):.1f} LUFS, loudness-matched")
    a.audio(encode_wav(audio, settings.sample_rate, subtype="PCM_16"), format="audio/wav")
    b.caption(f"After, {outcome.mix.loudness_lufs or float('nan'):.1f} LUFS")
    b.audio(wav, format="audio/wav")


FILES_KEY = "mix_files"
# Session key of the "rendered files" expander's open state.  (a comment: Streamlit would draw a bare string on the page)


def rendered_files(outcome, settings: MixSettings, played) -> None:
    """The rendered before / after as two WAV players, made (two renders' worth of WAV) only while open.

    ``played`` is the mix's audio, a function making it (the headphone mix), or None during a preview.
    """
    box = st.expander("The rendered files: before / after", icon=":material/audio_file:", key=FILES_KEY,
                      on_change="rerun")
    if not box.open:
        return
    with box:
        if played is None:
            st.caption("A preview is playing: the files follow when the sliders rest.")
            return
        played = played() if callable(played) else played  # (the headphone mix: made now, once per render)
        ab_players(outcome, settings, encode_wav(played, settings.sample_rate, subtype="PCM_16"))


def exact_played(tracks, mixer, settings: MixSettings) -> np.ndarray:
    """The mix of ``settings`` as the download carries it (the headphone mix with ``binaural``), rendered now.

    Runs when the download button is clicked, outside the script run: on its own
    :class:`~imgext.mix.mixer.Mixer` (the cached analysis and designs copied), like the ZIP.
    ``tracks`` may be a function making them then (:meth:`~imgext.project.Project.tracks_later`).
    """
    with get_pool(app_settings().heavy_workers).slot("mix"):
        tracks = tracks() if callable(tracks) else tracks
        outcome = Mixer(tracks, reuse=mixer).render(settings, measure_after=False)  # the audio does not depend on it
        if settings.binaural:
            mix, _ = headphone_mix(outcome, tracks, settings)
            if mix is not None:
                return mix.audio
        return outcome.mix.audio


EQ_TABLE_KEY = "mix_eq_table"
# Session key of the "EQ filters" expander's open state.  (a comment: Streamlit would draw a bare string on the page)


def eq_table(outcome, names: list[str], focus: int | None = None) -> None:
    rows = [
        {"track": names[k], "type": f.kind, "frequency Hz": round(f.frequency_hz), "gain dB": round(f.gain_db, 1),
         "Q": round(f.q, 2), "because it masks": names[f.maskee] if 0 <= f.maskee < len(names) else "?"}
        for k, filters in enumerate(outcome.filters) for f in filters
    ]
    box = st.expander("EQ filters and core SMR per track", icon=":material/equalizer:", key=EQ_TABLE_KEY,
                      on_change="rerun")  # one label: a new filter count must not reset its open state
    if not box.open:
        return  # the tables are made only while the expander is open: a slider move does not pay for them
    with box:
        st.caption(f"{len(rows)} EQ filters")
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch")
        else:
            st.caption("No cuts: nothing masks a track at least as important, or the EQ is off.")
        b, a = outcome.masking_before, outcome.masking_after
        table = pd.DataFrame(
            [{"track": n,
              "core SMR before dB": None if b.core_smr_db is None else round(float(b.core_smr_db[k]), 1),
              "core SMR after dB": None if a.core_smr_db is None else round(float(a.core_smr_db[k]), 1),
              "masked before %": round(100 * b.masked_fraction[k]), "masked after %": round(100 * a.masked_fraction[k]),
              "masking by the rest before dB": round(float(b.by_rest_db[k]), 1), "after dB": round(float(a.by_rest_db[k]), 1),
              "gain dB": round(float(outcome.gains_db[k]), 1)} for k, n in enumerate(names)],
        )
        mark = ["font-weight: bold; background-color: rgba(255, 255, 255, 0.18)" if k == focus else ""
                for k in range(len(names))]
        st.dataframe(table.style.apply(lambda column: mark, axis=0), hide_index=True, width="stretch")


MIX_WIDGETS = ["attenuation_db", "eq_strength", "max_cut_db", "loudness_lufs", "optimise"]
# The :class:`~imgext.options.MixSettings` fields the Mix page offers, in order (widget key ``mix_<field>``).  (a comment: Streamlit would draw a bare string on the page)

SPACE_WIDGETS = ["distance", "reverb_amount", "room", "fov_deg", "binaural"]
# The space row of the Mix page: distance cues, the shared reverb, the camera's field of view, headphones.  (a comment: Streamlit would draw a bare string on the page)

SCENE_WIDGETS = ["activity", "ambience", "ambience_db"]
# The scene row: how often events happen, the ambience bed and its level (a new ambience needs its sound found).  (a comment: Streamlit would draw a bare string on the page)


def headphones(outcome, settings: MixSettings):
    """The binaural mix's audio as a function, run when first asked (the rendered files, the download), once per render.

    None when the headphone toggle is off or no HRTF is there (then said, not raised). The HRTF
    convolution (~0.3 CPU-s at 8 tracks) is not paid on every slider move of a headphone session.
    """
    if not settings.binaural:
        return None
    tracks = session().project.tracks
    try:
        load_hrtf(tracks.sample_rate)
    except HrtfUnavailable as exc:
        st.warning(f"Headphone mix unavailable: {md(str(exc))}; playing the stereo mix.", icon=":material/headphones:")
        return None
    st.caption("Headphones (binaural, MIT KEMAR HRTF): the download below is the headphone mix.")

    def make():
        @functools.lru_cache(maxsize=1)
        def audio() -> np.ndarray:
            with get_pool(app_settings().heavy_workers).slot("mix"):  # (heavy work: in the queue, as a render is)
                mix, _ = headphone_mix(outcome, tracks, settings)
            return outcome.mix.audio if mix is None else mix.audio
        return audio

    return once_per_render(outcome, "headphones", (settings, id(tracks)), make)


@st.fragment
def mixer_panel() -> None:
    s = session()
    p = s.project
    undo_slot = st.columns([3, 1])[1].container()  # filled after mixing: this run's slider move is undoable
    settings = p.settings
    for column, name in zip(st.columns(len(MIX_WIDGETS)), MIX_WIDGETS):
        settings = setting_widget(column, settings, name, key=f"mix_{name}")
    for column, name in zip(st.columns(len(SPACE_WIDGETS)), SPACE_WIDGETS):
        settings = setting_widget(column, settings, name, key=f"mix_{name}")
    if settings.compose:
        choices = {"ambience": [AUTO, NONE, *ambience_names()]}
        for column, name in zip(st.columns(len(SCENE_WIDGETS)), SCENE_WIDGETS):
            settings = setting_widget(column, settings, name, key=f"mix_{name}", choices=choices.get(name))
    t0 = time.perf_counter()
    # One container for what only a render shows (the queue's note, the spinner, the headphone note): the
    # elements after it keep their places whether this run renders or previews levels (a moved player remounts).
    with st.container():
        with guarded("Mixing"):
            quick = level_preview(p, settings)  # a level or EQ slider's move: previewed, rendered when the sliders rest
        if quick is None:
            with guarded("Mixing"), heavy("mix"), st.spinner("Optimising the mix ..." if settings.optimise else
                                                              "Mixing ...", show_time=settings.optimise):
                outcome = p.mix(settings)  # kept in the session: the sliders start here when the user comes back
                played = headphones(outcome, settings)
                played = outcome.mix.audio if played is None else played
        elif quick.exact:  # back at the last render's settings: that render is the mix
            outcome = quick.outcome
            played = headphones(outcome, settings)
            played = outcome.mix.audio if played is None else played
        else:
            outcome, played = quick.outcome, None  # the last render's analysis is shown until the render follows
            if settings.binaural:
                st.caption("Headphones (binaural, MIT KEMAR HRTF): the download below is the headphone mix.")
        shown = p.tracks if quick is None else quick.tracks  # the tracks of the mix shown (a pending activity's are not made)
        if not p.attenuated(shown):  # (in the container: a note coming or going moves nothing below it)
            st.caption("Attenuation changes nothing here: it turns down the less important sounds, and every sound "
                       "is at full importance (the ambience keeps its own level, set by Ambience level).")
    history_buttons(undo_slot, key="mix")
    if any(is_ambience(o) and not o.skipped and i not in p.fetched for i, o in enumerate(p.objects)):
        st.info("A new ambience: find its sound on the Sounds page (until then the mix has none).",
                icon=":material/library_music:")
    elapsed = time.perf_counter() - t0
    mixer = p.mixer() if quick is None else quick.mixer
    names = shown.names
    focus = focus_selector(names)
    metrics(outcome, names, shown.importance)
    zmax = max(1.0, float(np.max(outcome.masking_before.matrix_db)), float(np.max(outcome.masking_after.matrix_db)))
    left, right = st.columns(2)
    after_title = "Masking after EQ" + (" + optimisation" if settings.optimise else "")
    heat = once_per_render((outcome.masking_before, outcome.masking_after), "heatmaps",
                           (tuple(names), zmax, focus, after_title), lambda: (
        heatmap(outcome.masking_before, names, "Masking before EQ", zmax, focus),
        heatmap(outcome.masking_after, names, after_title, zmax, focus)))
    left.plotly_chart(heat[0], key="heat_before", theme=None, config={"displaylogo": False})
    right.plotly_chart(heat[1], key="heat_after", theme=None, config={"displaylogo": False})
    if quick is not None and not quick.exact:
        then = quick.settings
        ran = f"Level preview in {elapsed * 1000:.0f} ms" if quick.heard else \
            f"Waiting for the sliders to rest (this run took {elapsed * 1000:.0f} ms)"
        st.caption(f"{ran}"
                   f" · the figures are those of the last render (attenuation {then.attenuation_db:g} dB, target "
                   f"{then.loudness_lufs:g} LUFS, reverb {then.reverb_amount:g}, EQ strength {then.eq_strength:g}, "
                   f"max cut {then.max_cut_db:g} dB) until the sliders rest")
    else:
        st.caption(f"Rendered in {elapsed * 1000:.0f} ms from the cached analysis · rows mask columns · one colour scale "
                   "for both · 'after' is estimated from the cached band analysis (the ZIP's scene.json measures it on "
                   "the audio)")
    with guarded("Comparing"):
        stems_player(outcome, settings, quick)  # pages/_player.py: plays on across reruns, A/B, mute/solo/level/pan
        rendered_files(outcome, settings, played)
    timeline(p, shown, focus=None if focus is None else shown.object_indices[focus])  # when each object sounds (one lane per object), under the players
    processing_charts(outcome, names, mixer)
    eq_table(outcome, names, focus)
    if played is None:  # a preview: the download renders the mix of these settings when clicked
        if quick.recomposed:  # (the new arrangement too, then: not on every step of the slider)
            played = functools.partial(exact_played, p.tracks_later(), mixer.without_renders(), settings)
        else:
            played = functools.partial(exact_played, p.tracks, p.mixer().without_renders(), settings)
    d1, d2 = st.columns(2)
    # 24-bit as the README and the command line say, encoded only when clicked (not on every slider move)
    d1.download_button("Download mix_binaural.wav" if settings.binaural else "Download mix.wav",
                       lambda: encode_wav(played() if callable(played) else played, settings.sample_rate,
                                          subtype="PCM_24"),
                       file_name="mix_binaural.wav" if settings.binaural else "mix.wav", mime="audio/wav", icon=":material/download:",
                       on_click="ignore", key="dl_wav", width="stretch")
    s.flac_stems = d2.toggle("FLAC stems in the ZIP (lossless, half the size)", value=s.flac_stems, key="flac_stems")
    zip_panel(d2, p, settings, "flac" if s.flac_stems else "wav")


ZIP_LABEL = "Download ZIP (mix, stems, sources, credits)"


def zip_panel(where, p, settings, stem_format: str) -> None:
    """Prepare the ZIP in this script run (its place in the queue shown), then offer its bytes.

    Built in the script run, not in a deferred download: a browser waits at most 180 s for a deferred
    file, and behind a queue of other sessions' mixes that was not enough. The prepared ZIP stays in this
    session (memory only, nothing on the server's disk) under :meth:`~imgext.project.Project.export_key`,
    and is offered again until something it depends on changes.
    """
    s = session()
    settings = replace(settings, binaural=True)  # the ZIP carries both mixes
    key = p.export_key(settings, stem_format=stem_format)
    ready = s.zip_bundle if s.zip_bundle is not None and s.zip_bundle[0] == key else None
    slot = where.empty()  # the Prepare button, then in the same place the Download button
    if ready is None:
        s.zip_bundle = None  # a ZIP of an earlier state is not kept beside the new one
        if slot.button("Prepare ZIP (mix, stems, sources, credits)", key="prep_zip", icon=":material/folder_zip:",
                        width="stretch", help="Renders the mix on the audio, measures it and packs every file"):
            with where, guarded("Preparing the ZIP"), heavy("zip"):
                bar = st.progress(0.0, text="Mixing on the rendered audio ...")
                data = p.export_zip(settings, stem_format=stem_format,
                                    progress=lambda _stage, f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
                bar.empty()
            s.zip_bundle = ready = (key, data)
    if ready is not None:
        slot.download_button(ZIP_LABEL, data=ready[1], file_name="imgext-soundscape.zip", mime="application/zip",
                              icon=":material/folder_zip:", on_click="ignore", key="dl_zip", width="stretch")
        where.caption(f"ZIP ready: {len(ready[1]) / 1e6:.1f} MB")


def delete_panel() -> None:
    with st.expander("Delete", icon=":material/delete:"):
        st.caption("Removes this session's photo, sounds, mix and files from the server. Other users are not affected.")
        if st.button("Delete my files", key="delete_mine", icon=":material/delete_forever:"):
            reset_session()
            st.toast("Your files were deleted.")
            st.rerun()
        sure = st.checkbox("I also want to clear the shared sound cache (everyone will download previews again)", key="clear_cache_ok")
        allowed = access().can_clear_cache
        if not allowed:
            st.caption("On this public demo only the administrator can clear the shared cache.")
        if st.button("Clear the sound cache", key="clear_cache", disabled=not (sure and allowed)) and allowed:
            n = shared_cache().clear()
            st.toast(f"Cleared {n} cached items.")


def main() -> None:
    s = session()
    st.title("Mix", anchor=False)
    tracks = s.project.tracks
    if tracks is None or tracks.n_tracks == 0:
        st.info("First find sounds for your objects on the Sounds page.", icon=":material/library_music:")
        st.page_link("pages/2_sounds.py", label="Go to the Sounds page", icon=":material/arrow_back:")
        delete_panel()
        return
    if s.project.sounds_outdated():
        st.warning("These sounds are out of date: objects or search terms changed since they were found. "
                   "Find the sounds again on the Sounds page.", icon=":material/sync_problem:")
        st.page_link("pages/2_sounds.py", label="Find the sounds again", icon=":material/arrow_back:")
    mixer_panel()
    delete_panel()


main()
