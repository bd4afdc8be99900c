"""QUBO Compression Lab: Streamlit entry point (navigation and shared sidebar)."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="QUBO Compression Lab", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/model.py", title="Model", icon=":material/model_training:"),
    st.Page("pages/formulate.py", title="Formulate", icon=":material/grid_on:"),
    st.Page("pages/embed.py", title="Embed", icon=":material/hub:"),
    st.Page("pages/solve.py", title="Solve", icon=":material/bolt:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
]

page = st.navigation(PAGES)
page.run()

# Drawn after the page so it reflects what the page just loaded or built.
with st.sidebar:
    ws = st.session_state.get("workspace")
    if ws is None:
        st.caption("No model selected yet.")
    else:
        st.caption(f"Model **{ws.model_name}** on **{ws.data.name}** ({len(ws.data)} examples)")
    formulation = st.session_state.get("formulation")
    if formulation is not None:
        st.caption(f"QUBO: {formulation.num_variables} variables, {formulation.num_interactions} interactions")
