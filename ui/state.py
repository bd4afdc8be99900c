"""Keys of session state that depend on the selected model, and their reset."""

import streamlit as st

from ui.pipeline import BUILD_FAILED

DOWNSTREAM = ("formulation", "formulation_key", BUILD_FAILED, "embedding", "solve_result", "last_report")
#: widgets whose values name the model's own layers (and their kept copies, see ui.pipeline.keep_widget)
MODEL_WIDGETS = ("ar_layers", "ar_layer", "fp_layer")


def reset_downstream() -> None:
    """A new model invalidates its QUBO, embedding and solve results (saved runs stay),
    and the layer choices made for the previous model (their defaults apply again)."""
    for key in DOWNSTREAM:
        st.session_state.pop(key, None)
    for key in MODEL_WIDGETS:
        st.session_state.pop(key, None)
        st.session_state.pop(f"_kept_{key}", None)


def forget_other_method(method: str) -> None:
    """Drop a QUBO (and its embedding) built for another method than ``method``, so that Embed and Solve never
    work on it when this method's QUBO cannot be built."""
    formulation = st.session_state.get("formulation")
    if formulation is not None and formulation.method != method:
        for key in ("formulation", "formulation_key", "embedding"):
            st.session_state.pop(key, None)
