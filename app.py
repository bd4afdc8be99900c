"""QUBO Compression Lab: Streamlit entry point (navigation and shared sidebar)."""

from __future__ import annotations

import streamlit as st

from core.runs import MULTI_QUBO_METHODS

st.set_page_config(page_title="QUBO Compression Lab", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/model.py", title="Model", icon=":material/model_training:"),
    st.Page("app_pages/formulate.py", title="Formulate", icon=":material/grid_on:"),
    st.Page("app_pages/embed.py", title="Embed", icon=":material/hub:"),
    st.Page("app_pages/solve.py", title="Solve", icon=":material/bolt:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
]

def sidebar_summary(slot) -> None:
    """What is loaded and built so far, written into ``slot`` (replacing what it held)."""
    with slot.container():
        ws = st.session_state.get("workspace")
        if ws is None:
            st.caption("No model selected yet.")
        else:
            st.caption(f"Model **{ws.model_name}** on **{ws.data.name}** ({len(ws.data)} examples)")
        formulation = st.session_state.get("formulation")
        if formulation is not None:
            size = f"{formulation.num_variables} variables, {formulation.num_interactions} interactions"
            st.caption(f"QUBO shown: {size} (one of the run's subproblems)"
                       if formulation.method in MULTI_QUBO_METHODS else f"QUBO: {size}")


page = st.navigation(PAGES)
summary = st.sidebar.empty()
# Before the page, because pages end early with st.stop() (no model yet, nothing saved yet)...
sidebar_summary(summary)
page.run()
# ...and again after it, to show what the page just loaded or built.
sidebar_summary(summary)
