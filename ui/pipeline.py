"""Page-side wrappers around core.runs that keep results in session state."""

from __future__ import annotations

import json
import time
from typing import Any

import streamlit as st

from core.formulations.base import Formulation
from core.runs import MULTI_QUBO_METHODS, formulate

#: session key set while Formulate's current settings fail to build (see formulation_for)
BUILD_FAILED = "formulation_failed"


def _freeze(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def problem_key() -> tuple[Any, ...]:
    """What Solve would solve now: Formulate's QUBO, or for the multi-QUBO methods (whose Formulate QUBO is one
    displayed subproblem) the model, data and run settings."""
    key = st.session_state.get("formulation_key")
    if key is None or key[1] not in MULTI_QUBO_METHODS:
        return (key,)
    return key[0], key[1], _freeze(st.session_state.get("method_options") or {})


def formulation_for(ws, method: str, options: dict[str, Any], uncached: dict[str, Any] | None = None) -> Formulation:
    """The QUBO for these settings; rebuilt only when the settings or model change.

    Sensitivities are cached in core (keyed on model and data content), so a
    slider move costs only the QUBO assembly. ``uncached`` options (e.g.
    precomputed statistics) are passed on but not part of the key.
    """
    key = (ws.cache_key(), method, _freeze(options))
    if st.session_state.get("formulation_key") == key:
        st.session_state.pop(BUILD_FAILED, None)
        return st.session_state["formulation"]
    bar = st.progress(0.0, text="Measuring sensitivities...")
    started = time.perf_counter()

    def progress(done: int, total: int, message: str = "") -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=message or "Measuring sensitivities...")

    try:
        formulation = formulate(ws, method, progress=progress, **options, **dict(uncached or {}))
    except Exception:
        # the QUBO still in memory is of earlier settings: Embed and Solve must not pass it off as these
        st.session_state[BUILD_FAILED] = "failed"
        raise
    except BaseException:  # Streamlit's rerun/stop: the user left the page while it was building
        st.session_state[BUILD_FAILED] = "interrupted"
        raise
    finally:
        bar.empty()
    st.session_state.pop(BUILD_FAILED, None)
    st.session_state["formulation"] = formulation
    st.session_state["formulation_key"] = key
    st.session_state["formulation_build_s"] = time.perf_counter() - started
    st.session_state.pop("embedding", None)
    return formulation


def require_formulation() -> Formulation:
    """Formulate's QUBO for Embed and Solve; the page stops with a pointer to Formulate when there is none, or
    when Formulate's current settings could not be built into one (the QUBO in memory is of earlier settings)."""
    formulation = st.session_state.get("formulation")
    if formulation is None:
        st.info("Build a QUBO on the **Formulate** page first.")
        st.page_link("app_pages/formulate.py", label="Go to Formulate", icon=":material/grid_on:")
        st.stop()
    state = st.session_state.get(BUILD_FAILED)
    if state == "interrupted":
        st.warning("The QUBO for the current settings on Formulate was not finished (the page was left while it "
                   "was being built), and the one in memory is from earlier settings. Open Formulate to finish it.")
    elif state:
        st.error("The settings on Formulate could not be built into a QUBO (Formulate says why), and the QUBO "
                 "still in memory is from earlier settings. Change the settings on Formulate first.")
    if state:
        st.page_link("app_pages/formulate.py", label="Go to Formulate", icon=":material/grid_on:")
        st.stop()
    return formulation


def filter_stats_for(ws, layer: str):
    """Filter importance/similarity of one conv layer, kept per model in the session."""
    from core.sensitivity.filters import filter_statistics

    cache = st.session_state.setdefault("filter_stats", {})
    key = (ws.cache_key(), layer)
    if key not in cache:
        cache[key] = filter_statistics(ws.model, ws.calibration, [layer])[layer]
    return cache[key]


def keep_widget(*keys: str) -> None:
    """Carry these widgets' values across page switches (Streamlit drops the
    state of widgets that a page run did not draw): call before drawing them,
    and :func:`remember_widgets` after."""
    for key in keys:
        if key not in st.session_state and f"_kept_{key}" in st.session_state:
            st.session_state[key] = st.session_state[f"_kept_{key}"]


def remember_widgets(*keys: str) -> None:
    for key in keys:
        if key in st.session_state:
            st.session_state[f"_kept_{key}"] = st.session_state[key]


def method_report(method: str) -> dict | None:
    """The latest run of ``method`` in this session (for the Formulate charts)."""
    report = st.session_state.get("last_report")
    return report if report and report.get("method") == method else None


def qubo_download(bqm) -> dict:
    return bqm.to_serializable()


@st.cache_resource(show_spinner=False)
def run_store():
    """The run history (SQLite in the user's data folder, or QCL_DB_URL)."""
    from core.store import RunStore

    return RunStore()


def parse_param(text: str, default: Any) -> Any:
    """A widget's text as the type of the parameter's default (None stays None when empty)."""
    text = str(text).strip()
    if text == "" or text.lower() == "none":
        return None
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, (list, tuple)) or text.startswith(("[", "(")):
        return json.loads(text.replace("(", "[").replace(")", "]"))
    try:
        return json.loads(text)
    except ValueError:
        return text
