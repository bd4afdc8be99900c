"""Energy distributions of the reads of one or several runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.errors import InvalidInputError
from core.viz._common import OPTIMUM_COLOUR, base_layout, colour, empty_figure

MAX_EXPANDED_READS = 500_000


def _runs(
    energies_by_run: Mapping[str, Sequence[float]],
    num_occurrences: Mapping[str, Sequence[int]] | None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label, energies in energies_by_run.items():
        e = np.asarray(energies, dtype=float).ravel()
        if num_occurrences is not None and label in num_occurrences:
            w = np.asarray(num_occurrences[label], dtype=float).ravel()
            if w.shape != e.shape:
                raise InvalidInputError(
                    f"Run {label!r}: num_occurrences needs one count per energy."
                )
        else:
            w = np.ones_like(e)
        keep = np.isfinite(e) & (w > 0)
        out[str(label)] = (e[keep], w[keep])
    return out


def _add_optimum(fig: go.Figure, exact: float | None) -> None:
    if exact is None or not np.isfinite(exact):
        return
    fig.add_vline(
        x=float(exact),
        line={"color": OPTIMUM_COLOUR, "width": 2, "dash": "dash"},
        annotation_text=f"exact optimum {float(exact):.6g}",
        annotation_position="top left",
    )


def split_by_feasibility(report: Mapping[str, Any]) -> dict[str, list[float]]:
    """A run's read energies as ``{"<sampler>, feasible": [...], "<sampler>, infeasible": [...]}`` for
    :func:`energy_histogram` (only the labels that have reads), using the report's ``feasible_reads``; a
    report without it (older runs) gives ``{"<sampler>": energies}``."""
    energies = [float(e) for e in report.get("energies") or []]
    label = str(report.get("sampler", "run"))
    flags = report.get("feasible_reads")
    if not isinstance(flags, Sequence) or len(flags) != len(energies):
        return {label: energies}
    parts = {
        f"{label}, feasible": [e for e, ok in zip(energies, flags, strict=True) if ok],
        f"{label}, infeasible": [e for e, ok in zip(energies, flags, strict=True) if not ok],
    }
    return {k: v for k, v in parts.items() if v}


def energy_histogram(
    energies_by_run: Mapping[str, Sequence[float]],
    *,
    exact: float | None = None,
    num_occurrences: Mapping[str, Sequence[int]] | None = None,
    nbins: int = 40,
    normalize: bool = True,
    title: str = "Energy of all reads",
) -> go.Figure:
    """Overlaid histograms of read energies (one trace per run, shared bins).

    ``num_occurrences[label]`` weights aggregated samples. ``normalize`` shows
    the fraction of reads (so runs with different read counts compare).
    ``exact`` draws a dashed vertical line labelled "exact optimum".
    """
    runs = _runs(energies_by_run, num_occurrences)
    if not any(e.size for e, _w in runs.values()):
        return empty_figure(title, "No energies to show yet.")
    allv = np.concatenate([e for e, _w in runs.values() if e.size])
    lo, hi = float(allv.min()), float(allv.max())
    if exact is not None and np.isfinite(exact):
        lo, hi = min(lo, float(exact)), max(hi, float(exact))
    spread = hi - lo
    degenerate = spread <= 1e-9 * max(1.0, abs(hi))
    # all reads at one energy: a narrow bar in a readable window, not a bar of width 1
    size = 1e-3 * max(1.0, abs(hi)) if degenerate else spread / max(1, nbins)
    fig = go.Figure()
    for k, (label, (e, w)) in enumerate(runs.items()):
        if not e.size:
            continue
        reps = np.rint(w).astype(np.int64)
        expanded = np.repeat(e, reps) if reps.sum() <= MAX_EXPANDED_READS else e
        fig.add_trace(
            go.Histogram(
                x=expanded,
                name=label,
                xbins={"start": lo - size / 2, "end": hi + size / 2, "size": size},
                histnorm="probability" if normalize else "",
                marker={"color": colour(k)},
                opacity=0.6 if len(runs) > 1 else 0.85,
                hovertemplate=f"{label}<br>energy: %{{x}}<br>%{{y:.3g}}<extra></extra>",
            )
        )
    _add_optimum(fig, exact)
    fig.update_xaxes(title_text="energy")
    if degenerate:
        fig.update_xaxes(range=[lo - 20 * size, hi + 20 * size])
    fig.update_yaxes(title_text="fraction of reads" if normalize else "reads")
    return base_layout(fig, title, barmode="overlay", legend={"title": {"text": "run"}})


def energy_ecdf(
    energies_by_run: Mapping[str, Sequence[float]],
    *,
    exact: float | None = None,
    num_occurrences: Mapping[str, Sequence[int]] | None = None,
    title: str = "Cumulative distribution of read energies",
) -> go.Figure:
    """Empirical CDF of read energies per run (step lines), with the exact optimum marked.

    The curve's height at the optimum is the probability of the optimum per read.
    """
    runs = _runs(energies_by_run, num_occurrences)
    if not any(e.size for e, _w in runs.values()):
        return empty_figure(title, "No energies to show yet.")
    fig = go.Figure()
    # every curve runs over the common range, from 0 before its lowest read to 1 after its highest: a run
    # whose reads all share one energy is otherwise a single point, drawn as nothing
    everything = np.concatenate([e for e, _w in runs.values() if e.size])
    lo, hi = float(everything.min()), float(everything.max())
    if exact is not None and np.isfinite(exact):
        lo, hi = min(lo, float(exact)), max(hi, float(exact))
    pad = 0.02 * (hi - lo) if hi > lo else max(abs(hi) * 0.01, 1e-12)
    for k, (label, (e, w)) in enumerate(runs.items()):
        if not e.size:
            continue
        order = np.argsort(e, kind="stable")
        es, ws = e[order], w[order]
        uniq, idx = np.unique(es, return_index=True)
        cum = np.cumsum(ws) / ws.sum()
        # value of the ECDF after the last occurrence of each unique energy
        last = np.r_[idx[1:] - 1, es.size - 1]
        y = cum[last]
        fig.add_trace(
            go.Scatter(
                x=np.r_[lo - pad, uniq, hi + pad],
                y=np.r_[0.0, y, 1.0],
                mode="lines",
                line={"shape": "hv", "color": colour(k), "width": 2},
                name=label,
                hovertemplate=f"{label}<br>energy ≤ %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    _add_optimum(fig, exact)
    fig.update_xaxes(title_text="energy")
    fig.update_yaxes(title_text="fraction of reads with energy ≤ x", range=[0, 1.02])
    return base_layout(fig, title, legend={"title": {"text": "run"}})
