"""Page 1: upload or pick a photo, see what was detected and where each sound will sit, edit the objects."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from imgext.composition.ambience import is_ambience
from imgext.errors import ImgExtError
from imgext.mix.space import distance_gain_db
from imgext.vision.detection import draw_boxes
from imgext.vision.placement import object_gain_db
from pages._state import (
    app_settings,
    get_detector,
    guarded,
    heavy,
    history_buttons,
    md,
    session,
    setting_widget,
    show_error,
    weights_setting,
)


def example_photos() -> dict[str, Path]:
    """Ultralytics' two sample photos, found without importing it (``import ultralytics`` loads torch: +500 MB RSS)."""
    from importlib.util import find_spec

    spec = find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return {}
    assets = Path(list(spec.submodule_search_locations)[0]) / "assets"
    return {p.name: p for p in (assets / "bus.jpg", assets / "zidane.jpg") if p.exists()}


def detect_if_needed(s, data: bytes, name: str) -> None:
    """Detect objects in the photo, unless the project already did for these bytes and settings."""
    if s.project.detected(data, s.detection):
        return  # nothing changed: detection never reruns because another widget moved
    with st.status(f"Detecting objects in {md(name)} ...", expanded=False) as status:
        try:
            with heavy("detection"):
                s.project.detect(
                    data, lambda: get_detector(weights_setting()), name=name, detection=s.detection,
                    max_bytes=app_settings().max_upload_bytes,
                    progress=lambda stage, fraction, message: status.update(label=message[:1].upper() + message[1:] + " ..."),
                )
        except Exception as exc:  # noqa: BLE001 - shown as a message
            status.update(label="Could not use this image", state="error")
            failure = exc
        else:
            failure = None
            p = s.project
            status.update(label=f"Found {len(p.objects)} objects in {p.timings_s.get('detect', 0.0) * 1000:.0f} ms",
                          state="complete")
    if failure is not None:  # the reason is shown open, not inside the collapsed status box
        show_error(failure)
        st.stop()


def objects_table(s) -> None:
    p = s.project
    attenuation = p.settings.attenuation_db
    near = min((o.distance_m for o in p.objects if o.distance_m and not o.skipped), default=None)
    rows = [
        {
            "keep": not o.skipped,
            "#": i,
            "label": o.label,
            "role": o.role,
            "confidence": round(o.confidence, 2),
            "pan": round(o.pan, 2),
            "importance": round(o.importance, 2),
            "gain dB": round(object_gain_db(o.importance, attenuation_db=attenuation, volume_db=o.volume_db)
                             + (float(distance_gain_db([o.distance_m], reference_m=near)[0])
                                if p.settings.distance and o.distance_m and near else 0.0), 1),
            "volume dB": round(o.volume_db, 1),
            "distance m": None if o.distance_m is None else round(o.distance_m, 1),
            "search term": o.query,
        }
        for i, o in enumerate(p.objects)
    ]
    edited = st.data_editor(
        rows,
        key=f"objects_editor_{p.image_digest}_{len(p.objects)}_{p.restores}",  # undo/redo: the table starts afresh
        hide_index=True,
        disabled=["#", "label", "role", "confidence", "pan", "importance", "gain dB"],
        column_config={
            "keep": st.column_config.CheckboxColumn("keep", help="Untick to drop the object from the soundscape"),
            "role": st.column_config.TextColumn("role", help="How it sounds in time: event (now and then), bed "
                                                             "(all along), area (all along, wide)"),
            "pan": st.column_config.NumberColumn("pan", help="-1 hard left .. 0 centre .. 1 hard right", format="%+.2f"),
            "importance": st.column_config.ProgressColumn("importance", min_value=0.0, max_value=1.0, format="%.2f"),
            "gain dB": st.column_config.NumberColumn("gain dB", help="From importance, the Mix page's attenuation and the distance"),
            "volume dB": st.column_config.NumberColumn("volume dB", min_value=-30.0, max_value=12.0, step=0.5,
                                                       help="Your own level offset for this object"),
            "distance m": st.column_config.NumberColumn(
                "distance m", min_value=0.3, max_value=1000.0, step=0.5, format="%.1f",
                help="Estimated from the box size and a typical size of the class (pinhole camera, the Mix page's "
                     "field of view); edit it if the guess is off. Further objects are quieter and more reverberant"),
            "search term": st.column_config.TextColumn("search term", max_chars=100, help="What to search for"),
        },
    )
    changed = False
    with p.grouped():  # one table edit is one undo step
        changed = _apply_rows(p, edited)
    if changed:
        st.rerun()


def _apply_rows(p, edited) -> bool:
    changed = False
    for row in edited:
        volume = row["volume dB"]
        distance = row.get("distance m")
        shown = p.objects[row["#"]].distance_m
        if distance is not None and shown is not None and abs(float(distance) - round(shown, 1)) < 0.05:
            distance = None  # the table shows 0.1 m: an unchanged cell is no edit
        changed |= p.edit_object(row["#"], keep=bool(row["keep"]), volume_db=float(volume) if volume is not None else 0.0,
                                 query=str(row["search term"] or ""),
                                 distance_m=float(distance) if distance is not None else None)
    return changed


def add_object_form(s) -> None:
    with st.expander("Add an object by hand", icon=":material/add_circle:"):
        with st.form("add_object", clear_on_submit=True, border=False):
            labels = sorted(s.project.labels)
            c1, c2, c3 = st.columns([2, 2, 1])
            label = c1.selectbox("Label", labels, index=labels.index("bird"), help="Any COCO label; edit its search term in the table")
            x = c2.slider("Horizontal position", 0.0, 1.0, 0.5, 0.01, help="0 = left edge, 1 = right edge")
            importance = c3.slider("Importance", 0.0, 1.0, 0.5, 0.05)
            if st.form_submit_button("Add object", icon=":material/add:"):
                try:
                    s.project.add_object(label, x, importance=importance)
                except ImgExtError as exc:
                    show_error(exc)
                else:
                    st.rerun()


def main() -> None:
    s = session()
    st.title("Image", anchor=False)
    st.caption("Upload a photo: each object found in it becomes a sound, placed left or right where it sits.")
    left, right = st.columns([3, 2])
    with right:
        upload = st.file_uploader("Upload a photo", type=["jpg", "jpeg", "png", "webp"], key="upload",
                                  help="JPEG, PNG or WebP; the size limit is set in .streamlit/config.toml")
        examples = example_photos()
        example = st.selectbox("... or pick an example", ["—"] + list(examples), key="example")
        s.detection = setting_widget(st, s.detection, "conf", key="conf")
        s.detection = setting_widget(st, s.detection, "include_silent", key="include_silent")
    data = name = None
    if upload is not None:
        data, name = upload.getvalue(), upload.name
    elif example != "—":
        data, name = examples[example].read_bytes(), example
    if data is not None:
        detect_if_needed(s, data, name)
    p = s.project
    if p.picture is None:
        with left:
            st.info("Upload a photo or pick an example to begin.", icon=":material/upload:")
        return
    with left:
        labels = [f"{i} {o.label} {o.confidence:.2f}" for i, o in enumerate(p.objects)]
        with guarded("Drawing the boxes"):
            shown = draw_boxes(p.picture, [o.box for o in p.objects], labels, dimmed=[o.skipped for o in p.objects])
        st.image(shown, caption=f"{md(p.image_name)} · {p.image_info.width}×{p.image_info.height}", width="stretch")
        for note in p.image_info.notes:
            st.caption(md(note, 300))
    if not any(not is_ambience(o) for o in p.objects):
        st.warning("No objects were found in this photo"
                   + (" (the soundscape is its ambience alone)" if p.objects else "")
                   + ". Try a lower detection confidence, or add one by hand below.", icon=":material/search_off:")
    if p.objects:
        head, undo = st.columns([3, 1], vertical_alignment="bottom")
        head.subheader(f"{len(p.objects)} objects", anchor=False)
        history_buttons(undo, key="image")
        objects_table(s)
    add_object_form(s)
    if any(not o.skipped for o in p.objects):
        st.page_link("pages/2_sounds.py", label="Next: choose the sounds", icon=":material/arrow_forward:")


main()
