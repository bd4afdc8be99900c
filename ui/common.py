"""Session state, cached loaders and the one place errors become messages."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from core.errors import QCLError

T = TypeVar("T")

WORKSPACE = "workspace"  # the selected model + data (core.workspace.Workspace)
MODEL_REPORT = "model_report"  # evaluate_report of the selected workspace


def guarded(fn: Callable[..., T], *args: Any, action: str = "That step", **kwargs: Any) -> T | None:
    """Call ``fn``; on failure show a plain message in the page and return None.

    The caller keeps its previous state untouched when None comes back, so a
    failed step never wipes earlier results.
    """
    try:
        return fn(*args, **kwargs)
    except QCLError as exc:
        st.error(str(exc), icon=":material/error:")
    except MemoryError:
        st.error(f"{action} ran out of memory. Try a smaller model, fewer groups or fewer reads.",
                 icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - never a traceback in the page
        st.error(
            f"{action} failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}). "
            "Your earlier results are unchanged.",
            icon=":material/error:",
        )
    return None


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def page_intro(title: str, text: str) -> None:
    st.title(title)
    st.caption(text)


def current_workspace():
    return st.session_state.get(WORKSPACE)


def require_workspace():
    """The selected workspace, or a pointer to the Model page (and stop)."""
    ws = current_workspace()
    if ws is None:
        st.info("Choose a model first on the **Model** page. (A new browser session, e.g. after a reload, starts "
                "without one; saved runs stay on the **Compare** page.)", icon=":material/arrow_back:")
        st.page_link("app_pages/model.py", label="Go to Model", icon=":material/model_training:")
        st.page_link("app_pages/compare.py", label="Saved runs on Compare", icon=":material/compare_arrows:")
        st.stop()
    return ws


def human_bits(bits: float) -> str:
    value = bits / 8
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{value:,.0f} B"
        value /= 1024
    return f"{value:.1f} GiB"


def short_number(value: float) -> str:
    """Seven or eight characters at most, so a metric tile shows it whole ("0.1365", "6.02e-5", "-0.09705",
    "2.90e6"); the full value belongs in the tile's help."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.4g}"
    if "e" not in text:
        return text
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def human_duration(seconds: float) -> str:
    """"under a second", "40 s", "12 min", "3.5 h": precision a rough estimate deserves."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def timing_caption(timing: dict) -> None:
    """One line with where a run's time went (DESIGN section 5's timing fields)."""
    total = f" (total {timing['total_s']:.2f} s)" if timing.get("total_s") is not None else ""
    st.caption(
        f"Timing: build {timing['build_s']:.2f} s, embed {timing['embed_s']:.2f} s, "
        f"sample {timing['sample_s']:.2f} s, evaluate {timing['evaluate_s']:.2f} s{total}."
    )


def before_after_metrics(metrics: dict, *, latency_note: str = "", num_classes: int | None = None) -> None:
    """Accuracy, size, compression and latency after compression, with the before values; with
    ``num_classes``, a note when the model was at chance level already or is after compression."""
    m = st.columns(4)
    # two decimals: on a few hundred examples one example is 0.2-0.3 points, which one decimal would blur
    change = round(100 * (metrics["accuracy_after"] - metrics["accuracy_before"]), 2)
    m[0].metric("Accuracy", f"{metrics['accuracy_after']:.2%}", delta=f"{change:+.2f} pts" if change else None,
                help=f"{metrics['accuracy_before']:.2%} before compression" + ("" if change else " (no change)"))
    m[1].metric("Size", human_bits(metrics["size_bits_after"]),
                help=f"{human_bits(metrics['size_bits_before'])} before compression")
    m[2].metric("Compression", f"{metrics['compression_ratio']:.2f}x")
    m[3].metric("Latency / image", f"{metrics['latency_ms_after']:.3f} ms",
                help=f"{metrics['latency_ms_before']:.3f} ms before. {latency_note}".strip())
    if num_classes:
        chance = 1.5 / num_classes
        if metrics["accuracy_before"] <= chance:
            st.caption("The original model is already at chance level on this data (random weights or data), so "
                       "the accuracies say nothing; the QUBO energies, sizes and timings still do.")
        elif metrics["accuracy_after"] <= chance:
            st.warning("The compressed model is at chance level: it no longer classifies. Use more bits or a lower "
                       "sparsity.", icon=":material/warning:")
