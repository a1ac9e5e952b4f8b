"""Image Extender, the web app: ``streamlit run app.py``.

This file only routes: the pages in ``pages/`` call :mod:`imgext` and keep each
user's work in ``st.session_state``.
"""

import streamlit as st

st.set_page_config(page_title="Image Extender", page_icon=":material/graphic_eq:", layout="wide")

from pages._state import admin_login, api_key, md, session  # noqa: E402  (set_page_config must come first)


def run() -> None:
    pages = [
        st.Page("pages/1_image.py", title="1 · Image", icon=":material/image:", url_path="image", default=True),
        st.Page("pages/2_sounds.py", title="2 · Sounds", icon=":material/library_music:", url_path="sounds"),
        st.Page("pages/3_mix.py", title="3 · Mix", icon=":material/tune:", url_path="mix"),
    ]
    nav = st.navigation(pages)
    with st.sidebar:
        st.markdown("**Image Extender** turns a photo into a stereo soundscape.")
        status = st.empty()  # filled after the page ran, so it shows this run's state
        admin_login()
    try:
        nav.run()
    finally:
        p = session().project
        n_obj = sum(not o.skipped for o in p.objects)
        tracks = p.tracks
        n_snd = tracks.n_tracks if tracks is not None else 0
        status.caption(
            f"Image: {md(p.image_name or '—')}  \nObjects to sonify: {n_obj}  \nSounds fetched: {n_snd}  \n"
            f"Freesound key: {'set' if api_key() else 'none (built-in sounds)'}"
        )


run()
