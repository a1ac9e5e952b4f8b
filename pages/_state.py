"""Glue between Streamlit and :mod:`imgext`: per-session state, cached resources, error display.

Everything a page needs that is not a widget lives in :mod:`imgext`; this
module only keeps one user's work in ``st.session_state`` (never in module
globals), loads the detector once per process, and turns errors into
readable messages.
"""

from __future__ import annotations

import os
import threading
import traceback
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from imgext import untrusted
from imgext.errors import ImgExtError
from imgext.hosting import (
    Access,
    HeavyPool,
    LeftSessions,
    Presets,
    SessionPresets,
    check_password,
    describe_queue,
    release_memory,
    tune_server_malloc,
)
from imgext.mix.mixer import pin_one_blas_thread
from imgext.options import DetectSettings, MixSettings, SoundSettings, specs
from imgext.project import Project
from imgext.settings import Settings, load_settings
from imgext.sounds.cache import DiskCache
from imgext.sounds.filters import PresetStore, SearchFilter
from imgext.sounds.memo import clear_memory_caches
from imgext.vision.detection import Detector
from imgext.vision.placement import LabelMap

SESSION_KEY = "imgext_session"


@dataclass
class Session:
    """One browser session's work. Lives in ``st.session_state`` only.

    The work itself (photo, objects, sounds, mix settings) is the
    :class:`~imgext.project.Project`; the rest is what the pages offer around it.
    Settings live here, not in widget keys, so they survive a visit to another page.
    """

    session_id: str
    project: Project = field(default_factory=lambda: new_project())
    api_key: str | None = None  # typed by the user; this session only, never displayed
    source_kind: str | None = None
    filter_obj: SearchFilter | None = None
    preset_name: str | None = None
    detection: DetectSettings = field(default_factory=DetectSettings)
    sounds: SoundSettings = field(default_factory=SoundSettings)
    fallback: bool = True
    flac_stems: bool = True  # the ZIP's stems as FLAC: the same samples, half the size, faster to pack than deflate
    own_presets: SessionPresets = field(default_factory=SessionPresets)  # hosted mode: this visitor's presets
    admin: bool = False  # typed the admin password (hosted mode)
    presets_upload_id: str | None = None  # the presets file already loaded from the uploader
    zip_bundle: tuple[str, bytes] | None = None  # the prepared ZIP and the export key it was built for


@st.cache_resource(show_spinner=False)
def _process_setup() -> LeftSessions | None:
    tune_server_malloc()
    # sessions mix at once on threads: a BLAS thread count switched under them changed bits
    off_session_thread(pin_one_blas_thread)
    return _left_sessions()


def off_session_thread(fn: Any) -> Any:
    """``fn()`` on a short-lived plain thread (waited for), not on this session's script thread; returns its result.

    For process-wide set-up done from the first script run: a library that remembers
    "the thread that did it" would otherwise keep that script thread, and a script thread
    carries its session (Streamlit's run context, hence its whole session state).
    threadpoolctl keeps the thread that first set OpenBLAS's thread count, so pinning one
    BLAS thread from the first visitor's run kept that visitor's photo, sounds and mixes
    for the life of the server.
    """
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=run, name="imgext-setup", daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def forget_session_state(app_session: Any) -> None:
    """Drop what a closed Streamlit session still holds: its session state (our :class:`Session`) and unsent messages.

    Streamlit's own objects keep a closed session reachable for a while: its runtime's
    message loop keeps the last session it flushed in a loop variable until another
    session sends something, so the last visitor's whole work stayed in memory after
    everyone had left.  A closed session is never used again; emptying it now lets its
    arrays go whatever still points at it.
    """
    state = getattr(app_session, "session_state", None)
    if state is not None:
        state.clear()
        # clear() leaves the widgets' metadata: their callbacks and callback args (the Sounds page passes the Session)
        metadata = getattr(getattr(state, "_new_widget_state", None), "widget_metadata", None)
        if isinstance(metadata, dict):
            metadata.clear()
    queue = getattr(app_session, "_browser_queue", None)
    if queue is not None:
        queue.clear()


SWEEP_EVERY_S = 10.0
"""How often the server looks for sessions whose browser has gone (seconds)."""


def _left_sessions() -> LeftSessions | None:
    """Close sessions disconnected longer than ``server.disconnectedSessionTTL``, and give their memory back.

    Streamlit keeps a disconnected session for that long so a browser that lost its
    connection finds its work again, but forgets it only when a later session
    disconnects, and then without shutting it down: sixteen visitors who had left
    kept 3.7 GB of audio on the server.  The close and the release run on the
    server's event loop, where Streamlit itself opens and closes sessions, and a
    session that reconnected meanwhile is left alone.  None outside a real server
    (an ``AppTest``), where there is no event loop to close sessions on.
    """
    try:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return None
        rt = Runtime.instance()
        loop = rt._get_async_objs().eventloop  # streamlit is pinned (requirements.txt): its server's loop
    except Exception:  # noqa: BLE001 - another Streamlit: keep its own session handling
        return None

    closed: list[weakref.ref] = []  # sessions closed since the last release, emptied again then

    def close(session_id: str) -> None:
        def on_loop() -> None:
            if not rt.is_active_session(session_id):  # on the loop, so a reconnect cannot race it
                info = rt._session_mgr.get_session_info(session_id)
                rt.close_session(session_id)
                if info is not None:
                    forget_session_state(info.session)
                    closed.append(weakref.ref(info.session))

        loop.call_soon_threadsafe(on_loop)

    def release() -> None:
        loop.call_soon_threadsafe(release_closed, closed, rt.media_file_mgr)

    def when_empty() -> None:
        def on_loop() -> None:
            if left.tracked == 0:  # still nobody (a newcomer who beat this only recomputes what it needs)
                clear_memory_caches()  # the decoded sounds, fitted tracks and synthesised sounds go too

        loop.call_soon_threadsafe(on_loop)

    ttl_s = float(st.get_option("server.disconnectedSessionTTL") or 120)
    left = LeftSessions(rt.is_active_session, close, grace_s=max(ttl_s, 1.0), release=release, when_empty=when_empty)
    left.start(every_s=min(SWEEP_EVERY_S, max(ttl_s / 2, 0.5)))
    return left


def release_closed(closed: list[weakref.ref], media_files: Any) -> None:
    """After sessions were closed: empty them again, drop their downloads, collect garbage, give pages back.

    Parameters
    ----------
    closed : list of weakrefs to the closed Streamlit ``AppSession`` objects
        Emptied again (a script still stopping when its session was closed may have stored
        more since) and the list cleared.
    media_files : streamlit's ``MediaFileManager``
        Its orphans are removed once more: a download button's bytes (the prepared ZIP) are
        only marked by the pass Streamlit makes when it closes a session and deleted by the
        next pass, which otherwise comes only when some later visitor's script run ends.  The
        same call Streamlit makes at the end of every run, so it removes nothing an open
        session still shows.
    """
    while closed:
        app_session = closed.pop()()
        if app_session is not None:
            forget_session_state(app_session)
    media_files.remove_orphaned_files()
    release_memory()


def _note_session() -> None:
    """Tell the sweeper this session is in use (its Streamlit id, from the running script)."""
    left = _process_setup()
    if left is None:
        return
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None:
        left.seen(ctx.session_id)


def new_project() -> Project:
    """An empty project with the server's label table (``IMGEXT_LABELS`` overrides the package's)."""
    labels = LabelMap.default()
    cfg = app_settings()
    return Project(labels=labels.with_file(cfg.labels_file) if cfg.labels_file else labels, interactive=True)


def session() -> Session:
    """This browser session's state, created on first use.

    A session's photo, sounds, mix and ZIP live only here, in memory: nothing
    is written to the server's disk per user, so nothing can leak to another
    session or pile up after the browser leaves.
    """
    _note_session()
    s = st.session_state.get(SESSION_KEY)
    if s is None:
        s = Session(session_id=uuid.uuid4().hex)
        st.session_state[SESSION_KEY] = s
    return s


def reset_session(*, keep_key: bool = True) -> None:
    """Delete this session's photo, sounds and mix (the typed API key survives unless ``keep_key`` is False)."""
    s = st.session_state.get(SESSION_KEY)
    if s is None:
        return
    key = s.api_key if keep_key else None
    st.session_state[SESSION_KEY] = Session(session_id=uuid.uuid4().hex, api_key=key)
    del s
    release_memory()


def app_settings() -> Settings:
    return load_settings()


def _secret(name: str) -> str | None:
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets file is normal
        value = None
    return str(value).strip() or None if value is not None else None


def hosted() -> bool:
    """Public demo mode: ``IMGEXT_HOSTED`` in the environment or in Streamlit secrets."""
    flag = _secret("IMGEXT_HOSTED")
    return app_settings().hosted or (flag or "").lower() in ("1", "true", "yes", "on")


def access() -> Access:
    return Access(hosted=hosted(), admin=session().admin)


def presets() -> Presets:
    """The shared presets (read-only for visitors in hosted mode) and this visitor's own."""
    s = session()
    s.own_presets.max_presets = app_settings().max_presets_per_session
    return Presets(PresetStore(app_settings().data_dir), s.own_presets, access())


def admin_login() -> None:
    """Hosted mode: a password box that unlocks the shared presets and the cache for this session."""
    if not hosted():
        return
    s = session()
    with st.expander("Administrator", icon=":material/admin_panel_settings:"):
        if s.admin:
            st.caption("Unlocked for this session: shared presets and the sound cache can be changed.")
            if st.button("Lock again", key="admin_lock"):
                s.admin = False
                st.rerun()
            return
        secret = _secret("IMGEXT_ADMIN_PASSWORD") or app_settings().admin_password
        if not secret:
            st.caption("No admin password is configured: shared presets and the cache are read-only.")
            return
        with st.form("admin_form", clear_on_submit=True):
            typed = st.text_input("Admin password", type="password", key="admin_password_input")
            if st.form_submit_button("Unlock"):
                if check_password(typed, secret):
                    s.admin = True
                    st.rerun()
                st.error("Wrong password.", icon=":material/lock:")


def own_presets_panel(store: Presets) -> None:
    """Hosted mode: the visitor's own presets live in the session; download them, or upload a saved file."""
    if store.access.can_write_shared_presets:
        return
    st.caption(f"Shared presets are read-only here. Yours ({len(store.own.presets)} of at most "
               f"{store.own.max_presets}) are kept for this session only: download them to keep them.")
    c1, c2 = st.columns(2)
    c1.download_button("Download my presets", store.own.to_json(), file_name="imgext-presets.json",
                       mime="application/json", on_click="ignore", key="own_presets_dl",
                       disabled=not store.own.presets, icon=":material/download:")
    up = c2.file_uploader("Upload presets (JSON)", type=["json"], key="own_presets_up")
    if up is not None and session().presets_upload_id != up.file_id:
        with guarded("Loading your presets"):
            n = store.own.load_json(up.getvalue())
            session().presets_upload_id = up.file_id
            st.toast(f"Loaded {n} presets")
            st.rerun()


@st.cache_resource(show_spinner=False)
def get_pool(workers: int) -> HeavyPool:
    """One queue for the whole server: every session's heavy steps share ``workers`` places."""
    return HeavyPool(workers)


@contextmanager
def heavy(kind: str) -> Iterator[None]:
    """``with heavy("mix"): ...`` waits for a place in the server's queue, showing how many are ahead."""
    note = st.empty()

    def waiting(ahead: list[str]) -> None:
        note.info(describe_queue(ahead), icon=":material/hourglass_top:")

    try:
        with get_pool(app_settings().heavy_workers).slot(kind, on_wait=waiting):
            note.empty()
            yield
    finally:
        note.empty()


def secret_api_key() -> str | None:
    """The Freesound key from Streamlit secrets or the environment (never shown)."""
    try:
        key = st.secrets.get("FREESOUND_API_KEY")
    except (FileNotFoundError, KeyError, AttributeError, Exception):  # no secrets file is normal
        key = None
    return (str(key).strip() or None) if key else app_settings().freesound_api_key


def api_key() -> str | None:
    return session().api_key or secret_api_key()


@st.cache_resource(show_spinner=False)
def get_detector(weights: str | None) -> Detector:
    """The YOLO model, loaded once per process and shared (its ``detect`` holds a lock).

    ``gc.freeze()`` afterwards moves everything loaded so far (modules, the model) out of the
    collector's sight, so later collections only walk what the sessions make.
    """
    import gc

    detector = Detector(weights)
    gc.freeze()
    return detector


@st.cache_resource(show_spinner=False)
def get_cache(directory: str, size_limit_bytes: int) -> DiskCache:
    """The shared disk cache of downloaded previews (public Freesound data, no user files)."""
    return DiskCache(directory, size_limit_bytes=size_limit_bytes)


def shared_cache() -> DiskCache:
    cfg = app_settings()
    return get_cache(str(cfg.cache_dir), cfg.cache_size_bytes)


def md(value: object, limit: int = untrusted.MAX_TEXT) -> str:
    """Untrusted text (Freesound names, user names, search terms, notes, reasons) shown literally inside Markdown."""
    return untrusted.text(value, limit)


def origins() -> untrusted.Origins:
    """Hosts the pages may play previews from and link to: the configured API's own (and Freesound's CDN)."""
    return untrusted.Origins.for_api(app_settings().freesound_url)


def md_link(text: object, url: str | None) -> str:
    """A Markdown link only to the sound source's own site, with its host shown; anything else plain text."""
    return origins().link(text, url)


def preview_url(value: object) -> tuple[str | None, str | None]:
    """``(url, None)`` if ``value`` may be handed to ``st.audio`` as a URL, else ``(None, why not)``.

    Never pass a string from outside to ``st.audio``/``st.image`` unchecked: a
    non-URL string is read as a file on the server and served to the browser.
    """
    return origins().media_url(value)


def show_error(exc: BaseException, *, what: str = "") -> None:
    """A readable message, never a traceback (details go to the server log only)."""
    prefix = f"{what}: " if what else ""
    if isinstance(exc, ImgExtError):
        hidden = [local_library() or "", str(app_settings().cache_dir), str(app_settings().data_dir)]
        st.error(f"{md(prefix)}{untrusted.error_text(exc, hidden=hidden)}", icon=":material/error:")
    else:
        traceback.print_exc()
        st.error(
            f"{md(prefix)}something went wrong inside Image Extender ({type(exc).__name__}). "
            "Your work so far is kept; try again, and if it repeats, report it with the server log.",
            icon=":material/bug_report:",
        )


@contextmanager
def guarded(what: str = "") -> Iterator[None]:
    """``with guarded("Detecting"): ...`` shows any error as a message and stops the page cleanly."""
    try:
        yield
    except ScriptControlException:  # st.stop / st.rerun are Streamlit's own control flow
        raise
    except Exception as exc:  # noqa: BLE001 - turned into a message on purpose
        show_error(exc, what=what)
        st.stop()


def weights_setting() -> str | None:
    return app_settings().yolo_weights


def local_library() -> str | None:
    """A server-side sound folder offered as a source (``IMGEXT_LOCAL_LIBRARY``), if configured."""
    path = os.environ.get("IMGEXT_LOCAL_LIBRARY", "").strip()
    return path or None


def setting_widget(where: Any, settings: Any, name: str, *, key: str, number: bool = False, hi: float | None = None,
                   choices: Sequence[str] | None = None) -> Any:
    """``settings`` with field ``name`` set from a widget generated from the field's spec.

    A toggle for a bool, a number box for an int (or with ``number``), else a
    slider over the spec's UI range; label, step and help text come from
    :mod:`imgext.options`.  The widget starts from the value in ``settings``
    (kept in the session), so leaving the page and coming back keeps it.
    ``choices`` gives a text field's options when its spec has none.
    """
    spec = next(s for s in specs(type(settings)) if s.name == name)
    if isinstance(settings, MixSettings):  # undo/redo sets this widget to the restored value
        st.session_state.setdefault(_MIX_WIDGETS_KEY, {})[key] = name
    value = getattr(settings, name)
    tip = spec.help[:1].upper() + spec.help[1:]
    if spec.type is bool:
        new = where.toggle(spec.label, value=bool(value), key=key, help=tip)
    elif spec.type is str:
        options = list(choices if choices is not None else spec.choices)
        new = where.selectbox(spec.label, options, index=options.index(value) if value in options else 0, key=key,
                              help=tip)
    else:
        cast = spec.type
        lo, hi = cast(spec.ui_lo), cast(spec.ui_hi if hi is None else min(hi, spec.ui_hi))
        value = min(max(cast(value), lo), hi)
        step = cast(spec.step) if spec.step is not None else None
        widget = where.number_input if number or spec.type is int else where.slider
        new = widget(spec.label, min_value=lo, max_value=hi, value=value, step=step, key=key, help=tip)
        new = cast(new)
    return settings if new == getattr(settings, name) else replace(settings, **{name: new})


_MIX_WIDGETS_KEY = "imgext_mix_widget_keys"  # widget key -> MixSettings field, for undo/redo


def _undo_redo(which: str) -> None:
    """Button callback (runs before the page): undo or redo, then set the settings' widgets to the restored values."""
    p = session().project
    if not (p.undo() if which == "undo" else p.redo()):
        return
    for key, name in st.session_state.get(_MIX_WIDGETS_KEY, {}).items():
        if key in st.session_state:
            st.session_state[key] = getattr(p.settings, name)


def history_buttons(where: Any, *, key: str) -> None:
    """Undo and Redo buttons over the project's edits to the objects and the mix settings."""
    p = session().project
    c1, c2 = where.columns(2)
    c1.button("Undo", key=f"{key}_undo", icon=":material/undo:", disabled=not p.can_undo, on_click=_undo_redo,
              args=("undo",), width="stretch", help=f"Take back the last edit ({p.history.n_undo} to go back)")
    c2.button("Redo", key=f"{key}_redo", icon=":material/redo:", disabled=not p.can_redo, on_click=_undo_redo,
              args=("redo",), width="stretch", help="Do again what Undo took back")
