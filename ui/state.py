"""Keys of session state that depend on the selected model, and their reset."""

import streamlit as st

DOWNSTREAM = ("formulation", "formulation_key", "embedding", "solve_result", "last_report")


def reset_downstream() -> None:
    """A new model invalidates its QUBO, embedding and solve results (saved runs stay)."""
    for key in DOWNSTREAM:
        st.session_state.pop(key, None)
