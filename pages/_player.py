"""The Mix page's stems player (issue 14, "tuning by ear") and the picture of where each sound sits.

The player is a Streamlit custom component (``pages/_components/stems_player``, Web Audio, no build step)
fed the mix taken apart by :func:`imgext.mix.preview.preview_mix`: it keeps playing across reruns, swaps
new audio in at the current position, switches A/B without a pause, and mutes, solos, levels and pans
in the browser.  It reports its state back; "Apply" writes the levels and pans into the project's
objects, and the server's render stays the truth for the downloads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from imgext.composition.ambience import is_ambience
from imgext.mix.preview import COMPOSING_FIELDS, PreviewEncoder, level_move, measure_powers, preview_mix, releveled
from imgext.options import MixSettings, specs
from imgext.vision.overlay import Placed, draw_placement
from pages._state import md, session

KEY = "stems_player"
FOCUS_KEY = "mix_focus"
"""Session key of the track name the user highlighted on the Mix page (photo, heatmaps, table and timeline)."""
STATE_KEY = "imgext_stems_player"
PICTURE_KEY = "imgext_placement_picture"
"""Session key of the placement picture last drawn (the photo, what it shows, its JPEG bytes)."""
PREVIEW_CODEC = "flac"
"""How the player's signals travel. FLAC (16-bit, 22.05 kHz for a 44.1 kHz mix): ~9x less server CPU than Ogg Vorbis per changed
signal (a 30 s track 0.02 s instead of 0.2 s; a slider move re-encodes every ducked track and both reverb
buses), for 2-7x its bytes (a 30 s noise bed 1.2 MB instead of 0.18 MB; less for sounds with silences)."""

_component = components.declare_component(KEY, path=str(Path(__file__).resolve().parent / "_components" / "stems_player"))


@dataclass
class PlayerState:
    """What the player keeps in ``st.session_state`` between reruns (this session only)."""

    owner: str = ""  # the session id this audio belongs to
    encoder: PreviewEncoder = field(default_factory=lambda: PreviewEncoder(max_bytes=48 << 20, codec=PREVIEW_CODEC))
    before: tuple | None = None  # (tracks, settings, outcome) of the last "before" render
    memos: dict = field(default_factory=lambda: {"before": {}, "after": {}})
    report: tuple | None = None  # (mount, seq) of the player's last report
    sent: set = field(default_factory=set)  # ids sent since that report
    revision: int = 0  # +1 each time levels and pans are applied to the mix
    last_bytes: int = 0
    settled: tuple | None = None  # (settings, tracks, outcome, previews) of the last render the player got
    settled_mixer: object = None  # the Mixer that rendered it
    pending: int = 0  # token of the level preview waiting for its render (0: none)
    pending_for: MixSettings | None = None  # the settings it previews
    tokens: int = 0
    powers: dict = field(default_factory=dict)  # signal id -> mean power (level previews hold the loudness)


@dataclass(frozen=True)
class LevelPreview:
    """A slider move heard on the last render's signals, its render to follow (:func:`level_preview`)."""

    outcome: object  # the last render (its analysis, figures and metrics are shown meanwhile)
    settings: MixSettings  # its settings
    previews: dict  # "after" / "before" -> PreviewMix (the new levels), "before" None when not listened to
    exact: bool  # the settled render's own settings again: nothing is estimated
    deferred: tuple = ()  # the changed fields not heard until the render (imgext.mix.preview.DEFERRED_FIELDS)
    heard: bool = False  # some of the change is heard now (levels, loudness or reverb)
    tracks: object = None  # the last render's tracks (what the page shows meanwhile)
    mixer: object = None  # and its Mixer (its analysis)
    recomposed: bool = False  # the new settings arrange the sounds anew: their tracks are made by the render
    strength: float | None = None  # a new EQ strength heard as the level of the ducked tracks' wet parts

    @property
    def pending(self) -> bool:
        """A render is to follow (not the last render's own settings)."""
        return not self.exact


def _state() -> PlayerState:
    owner = session().session_id
    state = st.session_state.get(STATE_KEY)
    if state is None or state.owner != owner:  # new, or "Delete my files" started a new session: forget its audio
        state = st.session_state[STATE_KEY] = PlayerState(owner=owner)
    return state


def before_settings(settings: MixSettings) -> MixSettings:
    """The settings of the mix without EQ or ducking (the A of A/B).

    What only shapes the processing (its strength, maximum cut, time-aware or static, the optimiser)
    is set to one value, so moving those sliders renders the same "before" and finds it cached.
    """
    plain = MixSettings()
    return replace(settings, eq_strength=0.0, optimise=False, max_cut_db=plain.max_cut_db, time_aware=plain.time_aware)


def before_outcome(project, settings: MixSettings, state: PlayerState):
    """The mix without EQ or ducking (the A of A/B), rendered once per tracks and :func:`before_settings`."""
    tracks = project.tracks
    wanted = before_settings(settings)
    if state.before is not None and state.before[0] is tracks and state.before[1] == wanted:
        return state.before[2]
    outcome = project.mixer().render(wanted, measure_after=False)
    state.before = (tracks, wanted, outcome)
    return outcome


SETTLE_MS = 1500
"""After a level preview, the player asks for the render once the sliders have rested this long (ms)."""


def _listening_to_a(value: dict | None) -> bool:
    return isinstance(value, dict) and value.get("ab") == "before"


def _player_value() -> dict | None:
    value = st.session_state.get(KEY)
    return value if isinstance(value, dict) else None


def level_preview(project, settings: MixSettings) -> LevelPreview | None:
    """The last render with the new levels, when the player can play the change on it; else None (render).

    A move of a level slider (attenuation, ambience level, reverb, loudness:
    :data:`~imgext.mix.preview.LEVEL_FIELDS`) is heard at once: the player gets the new levels on
    the signals it holds.  A move of a slider that reshapes the processing, places or arranges the
    sounds (EQ strength, maximum cut, field of view, activity: :data:`~imgext.mix.preview.DEFERRED_FIELDS`)
    is not rendered step by step: the last render plays on (a new activity's tracks are not even made).
    Either way the player asks for the render (the EQ or ducking of the new settings, the loudness and
    the limiter) once the sliders rest (:data:`SETTLE_MS`).  Sets ``settings`` on the project (an undo
    step; the downloads follow) when it returns a preview.
    """
    state = _state()
    value = _player_value()
    if state.settled is None or (state.pending and value is not None and value.get("settle") == state.pending):
        return None  # nothing rendered yet, or the player asks for the render of its preview
    old_settings, old_tracks, outcome, previews = state.settled
    blended = previews["after"].strength is not None  # (its ducked tracks as dry and wet: EQ strength is a level)
    gate = level_move(old_settings, old_tracks, settings, old_tracks, blended=blended)
    if gate is None:
        return None  # more than levels (or no reverb to scale): render
    project.set_settings(settings)  # (an attenuation or ambience level retunes the ambience's volume: the tracks follow)
    recomposed = any(f in gate.deferred for f in COMPOSING_FIELDS)  # (then the new tracks are not made now)
    move = gate if recomposed else level_move(old_settings, old_tracks, settings, project.tracks, blended=blended)
    if move is None:
        return None
    kept = {"tracks": old_tracks, "mixer": state.settled_mixer}
    wants_a = _listening_to_a(value)
    if wants_a and previews.get("before") is None:
        return None  # A was not rendered for the last mix: render it
    if move.exact:  # back where the render is: it is exact
        return LevelPreview(outcome, old_settings, {"after": previews["after"],
                                                    "before": previews["before"] if wants_a else None}, True, **kept)
    def preview(pm):  # the new levels, or (a deferred move alone) the last render as it is, marked not exact
        if not move.heard:
            return replace(pm, exact=False)
        return releveled(pm, move.gains_db, loudness_db=move.loudness_db, reverb_gain=move.reverb_gain,
                         powers=state.powers, strength=move.strength if pm.strength is not None else None)

    moved = {m: None if pm is None or (m == "before" and not wants_a) else preview(pm) for m, pm in previews.items()}
    return LevelPreview(outcome, old_settings, moved, False, deferred=move.deferred, heard=move.heard,
                        recomposed=recomposed, strength=move.strength, **kept)


def _rows(project, tracks, after) -> list[dict]:
    rows = []
    for k, t in enumerate(after.tracks):
        i = tracks.object_indices[k]
        obj = project.objects[i] if 0 <= i < len(project.objects) else None
        role = "ambience" if obj is not None and is_ambience(obj) else (obj.role if obj is not None else "")
        rows.append({"name": t.name, "role": role, "pan": t.pan, "object": i})
    if after.reverb is not None:
        rows.append({"name": "reverb", "role": "reverb bus", "pan": None, "object": -1})
    return rows


def _payload(state: PlayerState, previews: dict, value: dict | None) -> tuple[bytes, list[dict]]:
    """The compressed signals the browser lacks, in one blob, and where each sits in it."""
    report = None if value is None else (value.get("mount"), value.get("seq"))
    if report is not None and report != state.report:
        state.report, state.sent = report, set()  # a new report: trust its list of what it holds
    have = set(value.get("have", [])) if value is not None else set()
    chunks, index, offset = [], [], 0
    for pm in previews.values():
        for sid, signal in pm.signals.items():
            if sid in have or sid in state.sent:
                continue
            encoded = state.encoder.get(sid, signal, pm.sample_rate, lossless=sid == pm.envelope)
            chunks.append(encoded.data)
            entry = {"id": sid, "offset": offset, "length": len(encoded.data)}
            if encoded.spans is not None:  # only its nonzero spans: the player puts them in place, zeros elsewhere
                entry.update(spans=[list(span) for span in encoded.spans], n_samples=encoded.n_samples,
                             channels=1 if signal.ndim == 1 else int(signal.shape[0]))
            index.append(entry)
            offset += len(encoded.data)
            state.sent.add(sid)
    state.last_bytes = offset
    return b"".join(chunks), index


def _previews(p, outcome, settings: MixSettings, state: PlayerState, value: dict | None) -> dict:
    """The rendered mix taken apart for the player, and its A/B "before" only while the player is on A.

    The "before" (the mix without EQ or ducking) is a second whole render: it is made when the
    listener switches to A (the player then asks for it), not on every slider move.
    """
    tracks = p.tracks
    names, pans, sr = tracks.names, tracks.pans, settings.sample_rate
    # The ducked tracks as dry and wet parts (an EQ-strength move is then a level: nothing new to send)
    parts = p.mixer().blend_parts(outcome, settings)
    previews = {"after": preview_mix(outcome, names, pans, sample_rate=sr, memo=state.memos["after"], parts=parts),
                "before": None}
    if _listening_to_a(value):
        before = before_outcome(p, settings, state)
        match_db = 0.0
        if before.mix.loudness_lufs is not None and outcome.mix.loudness_lufs is not None:
            match_db = outcome.mix.loudness_lufs - before.mix.loudness_lufs  # A at B's loudness
        previews["before"] = preview_mix(before, names, pans, sample_rate=sr, match_db=match_db,
                                         memo=state.memos["before"])
    state.settled, state.settled_mixer = (settings, tracks, outcome, previews), p.mixer()
    if len(state.powers) > 4096:  # one float per signal ever previewed: forget the old ones now and then
        state.powers.clear()
    for pm in previews.values():  # what a level preview of this render needs, paid by the render, not the move
        if pm is not None:
            measure_powers(pm, state.powers)
    return previews


def stems_player(outcome, settings: MixSettings, quick: LevelPreview | None = None) -> dict | None:
    """Draw the stems player for ``outcome`` (the processed mix) and what it reports; returns its state.

    With ``quick`` (:func:`level_preview`) the player gets the new levels on the signals it holds,
    and asks for the render when the sliders rest.
    """
    p = session().project
    state = _state()
    value = _player_value()
    tracks = p.tracks if quick is None else quick.tracks  # (a pending activity's tracks are made by the render)
    if quick is None:
        previews = _previews(p, outcome, settings, state, value)
        state.pending = 0
    else:
        previews = quick.previews
        if quick.exact:
            state.pending = 0
        elif not state.pending or state.pending_for != settings:  # (a rerun of the same preview keeps its token)
            state.tokens += 1
            state.pending, state.pending_for = state.tokens, settings
    blob, index = _payload(state, {m: pm for m, pm in previews.items() if pm is not None}, value)
    after = previews["after"]
    rows = _rows(p, tracks, after)
    if settings.binaural:
        st.caption("The stems player previews the stereo mix; the headphone mix is in the rendered files below.")
    st.caption("Listen while you tune: the player keeps playing when a slider moves; **A** is the mix without EQ "
               "or ducking at the same loudness (made when you switch to it), **B** the processed mix. "
               "Mute, solo, level and pan act at once in your browser; apply them to change the mix and the downloads.")
    note = st.empty()  # one element either way: a caption coming and going must not move (and remount) the player
    if state.pending:
        note.caption(pending_note(quick))
    left, right = st.columns([3, 2])
    with left:
        value = _component(key=KEY, default=None, sample_rate=after.sample_rate, n_samples=after.n_samples,
                           rows=rows, mixes={m: None if pm is None else pm.describe() for m, pm in previews.items()},
                           blob=blob, blob_index=index, revision=state.revision, state=value,
                           settle=state.pending or None, settle_ms=SETTLE_MS)
    value = value if isinstance(value, dict) and value.get("revision") == state.revision else None
    with right:
        placement_picture(p, tracks, outcome, value)
    listening_summary(p, rows, value, state)
    return value


def pending_note(quick: LevelPreview | None) -> str:
    """What the player plays while a render is pending, in words (heard now, and what follows when the sliders rest)."""
    labels = {s.name: s.label for s in specs(MixSettings)}
    waiting = ", ".join(labels[f] for f in quick.deferred) if quick is not None and quick.deferred else ""
    if quick is not None and quick.deferred and not quick.heard:
        return (f":material/hourglass_top: **Rendered when the sliders rest**: the new {md(waiting)} is mixed once "
                "you stop moving; until then you hear the last render (the figures and numbers below are its; the "
                "downloads are rendered exactly for the new settings).")
    also = f", the new {md(waiting)}" if waiting else ""
    if quick is not None and quick.strength is not None and not waiting:
        return (":material/hourglass_top: **EQ strength, heard now**: your browser blends each ducked sound's full "
                "duck with its dry sound at the new strength, as the render does, the loudness held by estimate; "
                "the reverb's tail, the loudness and the limiter follow when the sliders rest (the figures and "
                "numbers below are still those of the last render; the downloads are rendered exactly).")
    return (":material/hourglass_top: **Level preview**: you hear the new levels on the last render, its "
            f"loudness held by estimate; the EQ or ducking of the new levels{also}, the loudness and the limiter "
            "follow when the sliders rest (the figures and numbers below are still those of the last render; "
            "the downloads are rendered exactly).")


def _offsets(rows: list[dict], value: dict | None) -> tuple[dict, dict]:
    """Level offsets (dB) and new pans the player holds, by row name, leaving out what did not change."""
    if value is None:
        return {}, {}
    levels = {r["name"]: float(value.get("levels_db", {}).get(r["name"], 0.0)) for r in rows}
    pans = {r["name"]: float(value.get("pans", {})[r["name"]]) for r in rows
            if r["pan"] is not None and r["name"] in value.get("pans", {})}
    levels = {n: v for n, v in levels.items() if abs(v) > 1e-9}
    pans = {n: v for n, v in pans.items() if abs(v - next(r["pan"] for r in rows if r["name"] == n)) > 1e-9}
    return levels, pans


def listening_summary(p, rows: list[dict], value: dict | None, state: PlayerState) -> None:
    """What the player reports (A/B, mute, solo, levels, pans), and the button that applies levels and pans."""
    levels, pans = _offsets(rows, value)
    if value is None:
        return
    parts = [f"listening to {'A (before)' if value.get('ab') == 'before' else 'B (after)'}"]
    if value.get("muted"):
        parts.append("muted: " + ", ".join(md(n) for n in value["muted"]))
    if value.get("soloed"):
        parts.append("solo: " + ", ".join(md(n) for n in value["soloed"]))
    parts += [f"{md(n)} {v:+.1f} dB" for n, v in levels.items()]
    parts += [f"{md(n)} pan {v:+.2f}" for n, v in pans.items()]
    st.caption("Player: " + " · ".join(parts))
    by_name = {r["name"]: r["object"] for r in rows}
    todo = {n for n in (*levels, *pans) if by_name.get(n, -1) >= 0}
    if not todo:
        return
    if st.button("Apply the player's levels and pans to the mix", key="player_apply", icon=":material/done_all:",
                 help="Writes them into the objects (volume and pan); the mix, its analysis and the downloads follow. "
                      "The reverb's level stays with the reverb slider; mute and solo are for listening only."):
        with p.grouped():  # one undo step
            for name in todo:
                i = by_name[name]
                obj = p.objects[i]
                p.edit_object(i, volume_db=obj.volume_db + levels.get(name, 0.0), pan=pans.get(name))
        state.revision += 1
        st.rerun()


def placement_picture(p, tracks, outcome, value: dict | None) -> None:
    """The photo with each sounding box marked by its pan, level and role (as the player has them)."""
    if p.picture is None:
        return
    levels = {} if value is None else value.get("levels_db", {})
    pans = {} if value is None else value.get("pans", {})
    muted = set() if value is None else set(value.get("muted", []))
    soloed = set() if value is None else set(value.get("soloed", []))
    placed, wide = [], []
    for k, name in enumerate(tracks.names):
        i = tracks.object_indices[k]
        if not 0 <= i < len(p.objects):
            continue
        obj = p.objects[i]
        if is_ambience(obj):
            wide.append(name)
            continue
        silent = name in muted or (bool(soloed) and name not in soloed)
        placed.append(Placed(name=name, box=tuple(obj.box), pan=float(pans.get(name, tracks.pans[k])),
                             level_db=float(outcome.gains_db[k]) + float(levels.get(name, 0.0)), role=obj.role,
                             muted=silent, focused=name == st.session_state.get(FOCUS_KEY)))
    key = (id(p.picture), tuple(placed))
    cached = st.session_state.get(PICTURE_KEY)
    if cached is None or cached[0] is not p.picture or cached[1] != key:  # drawn and encoded once per look
        buf = io.BytesIO()
        draw_placement(p.picture, placed).convert("RGB").save(buf, format="JPEG", quality=92)
        cached = st.session_state[PICTURE_KEY] = (p.picture, key, buf.getvalue())
    st.image(cached[2], caption="Where each sound sits: colour = role (red event, blue bed, "
             "green area), line to the ruler = pan, outline width = level" + (f"; everywhere: {md(', '.join(wide))}"
                                                                             if wide else ""),
             width="stretch")

