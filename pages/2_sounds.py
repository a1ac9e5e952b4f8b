"""Page 2: the sound source, search filters and presets, and the sound chosen for each object."""

from __future__ import annotations

import time
from dataclasses import replace

import streamlit as st

from imgext.budget import Budget
from imgext.composition.ambience import AUTO, is_ambience
from imgext.errors import ImgExtError
from imgext.sounds.filters import FILE_TYPES, LICENSES, SORT_ORDERS, SearchFilter
from imgext.sounds.sources import open_source
from imgext.untrusted import error_text
from pages._state import (
    api_key,
    app_settings,
    guarded,
    heavy,
    local_library,
    md,
    md_link,
    own_presets_panel,
    presets,
    preview_url,
    session,
    setting_widget,
    shared_cache,
    show_error,
)

LICENSE_LABELS = {"cc0": "CC0", "by": "Attribution", "by-nc": "Attribution NonCommercial", "sampling+": "Sampling+"}


def source_picker(s) -> str:
    options = ["freesound", "builtin"] + (["local"] if local_library() else [])
    labels = {"freesound": "Freesound", "builtin": "Built-in synthetic sounds (offline)", "local": "Local library"}
    default = "freesound" if api_key() else "builtin"
    kind = st.radio("Sound source", options, index=options.index(s.source_kind or default),
                    format_func=labels.get, horizontal=True, key="source_kind")
    if kind != s.source_kind:
        s.source_kind = kind
    if kind == "freesound":
        if api_key():
            origin = "typed for this session" if s.api_key else "configured on the server"
            st.success(f"Sounds come from **Freesound** (API key {origin}). Previews are cached on the server.",
                       icon=":material/cloud_done:")
            if s.api_key and st.button("Forget my key", icon=":material/key_off:"):
                s.api_key = None
                st.rerun()
        else:
            st.warning("Freesound needs an API key (free at freesound.org/apiv2/apply). It is kept for this "
                       "session only and never shown again.", icon=":material/key:")
            with st.form("api_key_form", clear_on_submit=True):
                typed = st.text_input("Freesound API key", type="password", key="api_key_input")
                if st.form_submit_button("Use this key") and typed.strip():
                    s.api_key = typed.strip()
                    st.rerun()
    elif kind == "builtin":
        st.info("Sounds are **synthesised** on the server (no account, no network). Every output says so.",
                icon=":material/graphic_eq:")
    else:
        st.info("Sounds come from the **local library** on the server.", icon=":material/folder:")
    return kind


def filter_editor(s) -> None:
    store = presets()
    saved = st.session_state.pop("preset_saved", None)
    if saved is not None:  # a preset saved on the last run: listed and chosen now
        st.session_state["preset_choice"] = saved
    with st.expander("Search filter and presets", icon=":material/filter_alt:", expanded=s.filter_obj is not None):
        names = store.names()
        for w in store.warnings:
            st.warning(md(w, 300))
        problem = st.session_state.pop("preset_problem", None)
        if problem:
            st.error(md(problem, 300), icon=":material/error:")
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        chosen = c1.selectbox("Preset", ["(none)"] + names, key="preset_choice", on_change=_preset_chosen, args=(s,),
                              help="Choosing a preset sets the filter below; (none) clears it")
        c2.button("Load", key="preset_load", width="stretch", on_click=_preset_chosen, args=(s,),
                  help="Set the filter to the chosen preset again (after editing it below)")
        f = s.filter_obj or SearchFilter()
        c1, c2, c3 = st.columns(3)
        dmin = c1.number_input("Min duration (s)", 0.0, 3600.0, float(f.duration_min_s or 0.0), key="f_dmin")
        dmax = c2.number_input("Max duration (s, 0 = any)", 0.0, 3600.0, float(f.duration_max_s or 0.0), key="f_dmax")
        rating = c3.number_input("Min rating (0-5)", 0.0, 5.0, float(f.min_rating or 0.0), 0.5, key="f_rating")
        licences = st.multiselect("Licences (none = any)", list(LICENSES), default=list(f.licenses),
                                  format_func=LICENSE_LABELS.get, key="f_licences")
        c1, c2, c3 = st.columns(3)
        types = c1.multiselect("File types", list(FILE_TYPES), default=list(f.file_types), key="f_types")
        rates = c2.multiselect("Sample rates (Hz, none = any)", sorted({*SAMPLE_RATES, *f.sample_rates}),
                               default=list(f.sample_rates),
                               key="f_rates")
        n_ratings = c3.number_input("Min number of ratings", 0, 100000, int(f.min_num_ratings or 0), key="f_nratings")
        c1, c2 = st.columns(2)
        channels = c1.selectbox("Channels", CHANNELS, index=CHANNELS.index(f.channels), key="f_channels",
                                format_func=lambda c: {None: "any", 1: "mono", 2: "stereo"}[c])
        sort = c2.selectbox("Sort", SORT_ORDERS, index=SORT_ORDERS.index(f.sort), key="f_sort")
        exclude = st.text_input("Exclude tags (comma separated)", ", ".join(f.exclude_tags), key="f_exclude")
        raw = st.text_input("Raw Solr filter (experts)", f.raw, key="f_raw", help='e.g. samplerate:48000 or tag:"field-recording"')
        try:
            new = replace(
                f, duration_min_s=dmin or None, duration_max_s=dmax or None, licenses=tuple(licences),
                file_types=tuple(types), min_rating=rating or None, min_num_ratings=int(n_ratings) or None,
                sample_rates=tuple(int(r) for r in rates), channels=channels, sort=sort,
                exclude_tags=tuple(t.strip() for t in exclude.split(",") if t.strip()), raw=raw,
            )
        except ImgExtError as exc:
            st.error(f"This filter cannot be used: {error_text(exc)}", icon=":material/error:")
            return
        if new == SearchFilter() and s.filter_obj is None:
            new = None  # nothing constrained: no filter at all
        if new != s.filter_obj:
            s.filter_obj, s.preset_name = new, None
        st.code((new.to_solr() if new else "") or "(no filter)", language=None)
        c1, c2, c3 = st.columns([3, 1, 1])
        name = c1.text_input("Preset name", key="preset_name", placeholder="My field recordings")
        if c2.button("Save", key="preset_save", width="stretch", icon=":material/save:"):
            with guarded("Saving the preset"):
                where = store.save(name, new or SearchFilter())
                st.toast(f"Saved preset {md(repr(name))}" + (" for this session" if where == "session" else ""))
                st.session_state["preset_saved"] = name.strip()
                s.preset_name = name.strip()
                st.rerun()
        if c3.button("Delete", key="preset_delete", width="stretch", icon=":material/delete:",
                     disabled=chosen == "(none)" or not store.can_delete(chosen)):
            with guarded("Deleting the preset"):
                store.delete(chosen)
                st.toast(f"Deleted preset {md(repr(chosen))}")
                st.session_state["preset_saved"] = "(none)"
                s.preset_name = None if s.preset_name == chosen else s.preset_name
                st.rerun()
        own_presets_panel(store)


SAMPLE_RATES = [22050, 44100, 48000, 88200, 96000, 192000]
CHANNELS = [None, 1, 2]


def _preset_chosen(s) -> None:
    """Callback of the preset list and Load: the chosen preset becomes the filter; "(none)" clears it."""
    chosen = st.session_state.get("preset_choice", "(none)")
    if chosen in (None, "(none)"):
        s.filter_obj, s.preset_name = None, None
        _seed_filter_widgets(SearchFilter())
        return
    try:
        s.filter_obj, s.preset_name = presets().load(chosen), chosen
    except ImgExtError as exc:
        st.session_state["preset_problem"] = f"Could not load the preset: {error_text(exc)}"
        return
    _seed_filter_widgets(s.filter_obj)


def _seed_filter_widgets(f: SearchFilter) -> None:
    st.session_state.update({
        "f_dmin": float(f.duration_min_s or 0.0), "f_dmax": float(f.duration_max_s or 0.0),
        "f_rating": float(f.min_rating or 0.0), "f_licences": list(f.licenses), "f_types": list(f.file_types),
        "f_rates": list(f.sample_rates), "f_nratings": int(f.min_num_ratings or 0), "f_channels": f.channels,
        "f_sort": f.sort, "f_exclude": ", ".join(f.exclude_tags), "f_raw": f.raw,
    })


def make_source(s, kind: str, fallback: bool):
    """The chosen source (None when Freesound has no key yet)."""
    key = api_key()
    if kind == "freesound" and not key:
        return None
    spec = {"freesound": "freesound", "local": f"local:{local_library()}"}.get(kind, "builtin")
    if fallback and kind != "builtin":
        spec += "+builtin"
    cfg = replace(app_settings(), freesound_api_key=key)
    # the ticked fallback takes over whenever the primary cannot be used (unreachable, key refused, throttled)
    return open_source(spec, settings=cfg, labels=s.project.labels, cache=shared_cache(), search_filter=s.filter_obj,
                       preset=s.preset_name, fallback_on_error=fallback)


def source_key(s, kind: str, fallback: bool) -> str:
    """What the chosen sounds depend on besides the objects and settings: the source and its filter."""
    return repr((kind, s.filter_obj, s.preset_name, fallback))


def find_sounds(s, source, key: str) -> None:
    """Wait for a place in the server's queue (the page says how many are ahead), then find the sounds."""
    with heavy("search"):
        _find_sounds(s, source, key)


def _find_sounds(s, source, key: str) -> None:
    """Search and download on a worker thread under the render budget; this thread redraws the progress.

    The budget bounds the whole find (a dripping preview cannot hold the page); the Cancel button (any
    rerun, in fact) cancels it, which interrupts the downloads in flight.
    """
    seconds = app_settings().render_budget_s
    budget = Budget(seconds, what=f"the {seconds:g} s allowed for finding sounds")
    with st.status("Finding sounds ...", expanded=True) as status:
        bar = st.progress(0.0, text="Searching")
        st.button("Cancel", key="cancel_find", icon=":material/cancel:", on_click=budget.cancel)
        state = {"frac": 0.0, "msg": "Searching"}
        t0 = time.monotonic()

        def progress(stage, frac, msg):  # called on the worker thread: no page calls here
            state["frac"], state["msg"] = min(1.0, float(frac)), str(msg)

        def tick():
            received, _, n = budget.transfers()
            extra = f" · {n} downloading, {received / 1e6:.1f} MB" if n else ""
            bar.progress(state["frac"], text=md(f"{state['msg']} ({time.monotonic() - t0:.0f} s{extra})", 160))

        try:
            budget.run(lambda: s.project.find_sounds(source, source_key=key, sounds=s.sounds, progress=progress,
                                                      budget=budget), tick=tick)
        except Exception as exc:  # noqa: BLE001
            status.update(label="Finding sounds failed", state="error", expanded=False)
            failure = exc
        else:
            failure = None
            p = s.project
            missing = sum(1 for a, o in zip(p.assignments, p.objects) if a.candidate is None and not o.skipped)
            n = p.tracks.n_tracks
            status.update(label=f"{n} sounds ready" + (f", {missing} objects without" if missing else ""),
                          state="complete" if n or not missing else "error", expanded=False)
    if failure is not None:  # the reason is shown open, not inside the status box
        show_error(failure)


def do_reroll(s, index: int, source, *, like: bool = False) -> None:
    with guarded("Finding a similar sound" if like else "Rerolling"):
        message = s.project.reroll(index, source, like=like, sounds=s.sounds)
        if message:
            st.toast(md(message, 300))


def sound_cards(s, source) -> None:
    p = s.project
    for i, (obj, a) in enumerate(zip(p.objects, p.assignments)):
        if obj.skipped:
            continue
        with st.container(border=True):
            c1, c2 = st.columns([4, 1])
            c1.markdown(f"**{i} · {md(obj.label)}** · pan {obj.pan:+.2f} · search *{md(obj.query)}*")
            if a.candidate is None:
                c1.warning(f"No sound: {md(a.reason, 300)}", icon=":material/volume_off:")
            else:
                cand = a.candidate
                why = cand.extra.get("fallback")
                if why:  # said per object: a filter that excludes everything must not pass silently
                    hint = " with your search filter" if s.filter_obj is not None and s.filter_obj.to_solr() else ""
                    c1.warning(f"A built-in synthetic sound: {md(why, 300)}{hint}.", icon=":material/graphic_eq:")
                link = md_link(cand.name, cand.url)
                flag = " · :orange[NonCommercial]" if not cand.commercial_ok else ""
                who = "built-in synthesiser, no licence needed" if cand.synthetic else f"by {md(cand.author)} · {md(cand.license)}"
                c1.markdown(f"{link} · {who}{flag}")
                fit = f"relevance {a.relevance:.2f} · " if a.relevance is not None else ""
                c1.caption(fit + md(a.reason, 300))
                if i in p.fetched:
                    fmt = {"mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac"}.get(cand.file_ext, "audio/wav")
                    c1.audio(p.fetched[i].data, format=fmt)
            if c2.button("Reroll", key=f"reroll_{i}", icon=":material/casino:", width="stretch",
                         help="Take the next unused candidate for this object; the others stay"):
                do_reroll(s, i, source)
                st.rerun()
            if a.candidate is not None and a.candidate.source == "freesound" and hasattr(source, "similar") and c2.button(
                    "More like this", key=f"like_{i}", icon=":material/graphic_eq:", width="stretch",
                    help="Freesound's most similar sounds (same role and filters), scored like the others"):
                do_reroll(s, i, source, like=True)
                st.rerun()
            if len(a.ranked) > 1:
                candidate_list(s, i, a, source)


def candidate_list(s, i: int, a, source) -> None:
    """Every ranked candidate of the object's term, to hear and pick (previews stream from their URL)."""
    used = {x.candidate.id for k, x in enumerate(s.project.assignments) if x.candidate is not None and k != i}
    with st.expander(f"All {len(a.ranked)} candidates for “{md(a.query)}”", icon=":material/queue_music:"):
        for k, r in enumerate(a.ranked):
            cand = r.candidate
            c1, c2 = st.columns([5, 1])
            who = "synthetic" if cand.synthetic else f"{md(cand.author)} · {md(cand.license)}"
            state = " · **in use here**" if a.candidate and cand.id == a.candidate.id else (" · used by another object" if cand.id in used else "")
            c1.markdown(f"{k + 1}\\. {md(cand.name)} · {who}{state}")
            c1.caption(md(r.reason, 300))
            raw = (cand.extra.get("previews") or {}).get("preview-lq-mp3")
            preview, why = preview_url(raw) if raw is not None else (None, "the source gave no usable address")
            if preview:
                c1.audio(preview, format="audio/mpeg")
            elif cand.source == "freesound":
                c1.caption(f"No preview to play: {md(why)}.")
            disabled = cand.id in used or (a.candidate is not None and cand.id == a.candidate.id)
            if c2.button("Use", key=f"use_{i}_{k}", disabled=disabled, width="stretch"):
                with guarded("Using this sound"):
                    s.project.use(i, cand.id, source)
                st.rerun()


def nothing_found(s) -> None:
    """A photo in which nothing soundable was detected: say so, offer the ambience and adding an object."""
    p = s.project
    ambience = any(is_ambience(o) and not o.skipped for o in p.objects)
    what = "its ambience alone" if ambience else "silent"
    st.warning(f"No objects were found in {md(p.image_name or 'the photo')}: the soundscape is {what}. "
               "Add an object by hand on the Image page (or try a lower detection confidence there).",
               icon=":material/search_off:")
    c1, c2 = st.columns(2)
    c1.page_link("pages/1_image.py", label="Add an object by hand", icon=":material/add_circle:")
    if not ambience and p.settings.compose and p.settings.ambience != AUTO:
        if c2.button("Use an ambience for the whole picture", key="use_ambience", icon=":material/park:"):
            with guarded("Adding the ambience"):
                p.set_settings(replace(p.settings, ambience=AUTO))  # the project adds the ambience it picks
            st.rerun()


def main() -> None:
    s = session()
    p = s.project
    st.title("Sounds", anchor=False)
    if not p.objects and p.picture is None:
        st.info("First choose a photo on the Image page.", icon=":material/image:")
        st.page_link("pages/1_image.py", label="Go to the Image page", icon=":material/arrow_back:")
        return
    if not any(not is_ambience(o) for o in p.objects):
        nothing_found(s)
        if not any(not o.skipped for o in p.objects):
            return
    kind = source_picker(s)
    if kind == "freesound":
        filter_editor(s)
    c1, c2, c3 = st.columns(3)
    p.set_settings(setting_widget(c1, p.settings, "duration_s", key="duration", hi=app_settings().max_scene_s))
    s.sounds = setting_widget(c2, s.sounds, "n_candidates", key="candidates")
    p.set_settings(setting_widget(c3, p.settings, "seed", key="seed", number=True))
    s.fallback = kind != "builtin" and st.checkbox(
        "Where nothing is found, use a built-in synthetic sound (always labelled synthetic)", value=s.fallback,
        key="fallback")
    try:
        source = make_source(s, kind, s.fallback)
    except ImgExtError as exc:
        show_error(exc)
        return
    if source is None:
        return
    key = source_key(s, kind, s.fallback)
    stale = p.sounds_stale(key, s.sounds)
    label = "Find sounds again" if p.assignments else "Find sounds"
    if st.session_state.pop("find_cancelled", False):
        st.info("Finding sounds was cancelled; the sounds chosen before (if any) are kept.", icon=":material/cancel:")
    if st.button(label, type="primary", icon=":material/search:", key="find_sounds"):
        find_sounds(s, source, key)
    elif stale:
        st.warning("Objects or settings changed since the sounds were chosen: press **Find sounds again**.",
                   icon=":material/sync_problem:")
    if p.has_sounds and p.source_failure:
        st.warning(f"The sound source could not be used ({md(p.source_failure, 300)}): every sound below is a "
                   "built-in synthetic one.", icon=":material/cloud_off:")
    if p.has_sounds:
        sound_cards(s, source)
        for note in p.notes[:10]:
            st.caption(f"Note: {md(note, 300)}")
    cache = getattr(getattr(source, "primary", source), "cache", None)
    for warning in getattr(cache, "warnings", []) or []:
        st.warning(f"Sound cache: {md(warning, 300)}. Sounds are downloaded each time until this is fixed.",
                   icon=":material/sd_card_alert:")
    tracks = p.tracks
    if tracks is not None and tracks.n_tracks:
        st.page_link("pages/3_mix.py", label="Next: mix", icon=":material/arrow_forward:")


main()
