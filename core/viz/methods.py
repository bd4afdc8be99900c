"""Figures for the multi-QUBO methods: adaround's per-layer error (QUBO vs
round-to-nearest), filter pruning's kept filters per layer by method, and,
over saved runs, each method's accuracy next to its classical baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.errors import InvalidInputError
from core.evaluate.paired import paired_summary
from core.viz._common import base_layout, colour, empty_figure


def layer_error_bars(rows: Sequence[Mapping[str, Any]], *, title: str = "Output error per layer") -> go.Figure:
    """Grouped bars of the relative output error per layer, QUBO rounding vs
    round-to-nearest (and AdaRound's continuous relaxation where every row has
    ``error_relaxed``); ``rows`` are adaround's ``layers[]`` (``layer``,
    ``error_qubo``, ``error_rtn``). The y axis is linear from zero, so bar heights compare honestly, unless the
    errors span more than two decades (then logarithmic, and the title says so)."""
    if not rows:
        return empty_figure(title, "No layers yet: run adaround to see the errors.")
    try:
        layers = [str(r["layer"]) for r in rows]
        qubo = [float(r["error_qubo"]) for r in rows]
        rtn = [float(r["error_rtn"]) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError("Each row needs layer, error_qubo and error_rtn.") from exc
    ratio = [q / r if r > 0 else None for q, r in zip(qubo, rtn, strict=True)]
    fig = go.Figure()
    fig.add_bar(name="QUBO rounding", x=layers, y=qubo, marker_color=colour(0),
                customdata=[[x if x is not None else float("nan")] for x in ratio],
                hovertemplate="%{x}<br>QUBO error %{y:.3g}<br>%{customdata[0]:.2f} x RTN<extra></extra>")
    fig.add_bar(name="round-to-nearest", x=layers, y=rtn, marker_color=colour(1),
                hovertemplate="%{x}<br>RTN error %{y:.3g}<extra></extra>")
    values = qubo + rtn
    if all(isinstance(r.get("error_relaxed"), (int, float)) for r in rows):
        relaxed = [float(r["error_relaxed"]) for r in rows]
        fig.add_bar(name="AdaRound (continuous relaxation)", x=layers, y=relaxed, marker_color=colour(2),
                    hovertemplate="%{x}<br>AdaRound relaxation error %{y:.3g}<extra></extra>")
        values += relaxed
    log = min(values) > 0 and max(values) / min(values) > 100
    axis = {"type": "log", "dtick": 1, "exponentformat": "power"} if log else {"type": "linear"}  # decades only
    return base_layout(fig, title + (" (log scale)" if log else ""), barmode="group", xaxis_title="layer",
                       yaxis={"title": "relative squared output error", **axis})


def kept_filters_map(kept: Mapping[str, Mapping[str, Sequence[int]]], channels: Mapping[str, int], *,
                     title: str = "Kept filters per layer by method") -> go.Figure:
    """One heatmap row per method, one column per filter (layers side by side,
    ``layer:i``): 1 where the method keeps the filter. ``kept`` is
    ``{method: {layer: kept indices}}``; ``channels`` the filters per layer (in
    order). Each row's hover shows the kept count of that layer."""
    if not kept or not channels:
        return empty_figure(title, "Nothing pruned yet.")
    methods = list(kept)
    cols = [f"{layer}:{i}" for layer, c in channels.items() for i in range(int(c))]
    z = np.zeros((len(methods), len(cols)))
    text = [[""] * len(cols) for _ in methods]
    for r, m in enumerate(methods):
        pos = 0
        for layer, c in channels.items():
            idx = list(kept[m].get(layer, []))
            bad = [i for i in idx if not 0 <= int(i) < int(c)]
            if bad:
                raise InvalidInputError(f"{m} keeps filter(s) {bad[:3]} of {layer}, which has only {c}.")
            for i in idx:
                z[r, pos + int(i)] = 1.0
            for i in range(int(c)):
                text[r][pos + i] = f"{layer}: {len(idx)} of {c} kept"
            pos += int(c)
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=methods, text=text, zmin=0, zmax=1, showscale=False, xgap=1, ygap=2,
        colorscale=[[0.0, "rgba(128,128,128,0.15)"], [1.0, colour(0)]],
        hovertemplate="%{y}<br>%{x}: %{z}<br>%{text}<extra></extra>",
    ))
    edges = np.cumsum([int(c) for c in channels.values()])[:-1]
    for e in edges:
        fig.add_vline(x=float(e) - 0.5, line_width=2, line_dash="dot")
    return base_layout(fig, title, xaxis={"title": "filter (layer:index)", "showticklabels": len(cols) <= 64},
                       yaxis={"autorange": "reversed"})


#: per method: the x axis of the run-history comparison, and how to read it from a report
_BASELINE_AXES = {
    "adaround": "bits per weight",
    "filter-pruning": "filter sparsity (fraction of filters removed)",
}


def _baseline_x(report: Mapping[str, Any]) -> float:
    params = report["params"]
    if report["method"] == "adaround":
        return float(params["bits"])
    sparsity = params["sparsity"]
    values = list(sparsity.values()) if isinstance(sparsity, Mapping) else [sparsity]
    return float(np.mean([float(v) for v in values]))


def _paired_hover(baseline: Mapping[str, Any]) -> str:
    """The hover line with a baseline's paired test against the run's QUBO model (empty for older runs)."""
    summary = paired_summary(baseline.get("paired"))
    return f"<br>QUBO model vs this: {summary}" if summary else ""


def baseline_comparison(reports: Mapping[int, Mapping[str, Any]], method: str, *, title: str | None = None) -> go.Figure:
    """Accuracy of saved ``method`` runs (``{run id: report}``) next to the
    classical baselines stored in each report (``baselines.*.accuracy``): for
    adaround against bits per weight, for filter pruning against filter
    sparsity. One marker per run and series; runs with another model, scale or
    importance get their own series, so only like is compared with like."""
    if method not in _BASELINE_AXES:
        raise InvalidInputError(f"No baseline comparison for method {method!r}.")
    title = title or f"{method}: the QUBO and its baselines, saved runs"
    series: dict[str, tuple[list[float], list[float], list[str], list[str]]] = {}
    for run_id, report in reports.items():
        if report.get("method") != method:
            continue
        try:
            x = _baseline_x(report)
            params = report["params"]
            model = report.get("model", "?")
            # the QUBO's own setting names its series; a baseline depends on the scale (adaround) or on
            # nothing but the model and sparsity (filter pruning's baselines do not use the importance)
            qubo_name = f"{model}, {params.get('scale') if method == 'adaround' else params.get('importance')}: QUBO"
            base_prefix = f"{model}, {params.get('scale')}: " if method == "adaround" else f"{model}: "
            points = [(qubo_name, report["metrics"]["accuracy_after"], "")]
            points += [(base_prefix + b.get("label", name), b.get("accuracy"), _paired_hover(b))
                       for name, b in report.get("baselines", {}).items()]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"Run #{run_id} is not a complete {method} report.") from exc
        for label, acc, paired in points:
            if acc is None:
                continue
            xs, ys, ids, tests = series.setdefault(label, ([], [], [], []))
            xs.append(x)
            ys.append(100.0 * float(acc))
            ids.append(f"#{run_id}")
            tests.append(paired)
    if not series:
        return empty_figure(title, f"No saved {method} runs yet: run {method} on the Solve page.")
    fig = go.Figure()
    baseline_symbols = iter(["diamond-open", "square-open", "triangle-up-open", "x-thin-open", "star-open"] * 8)
    for i, (name, (xs, ys, ids, tests)) in enumerate(sorted(series.items())):
        order = np.argsort(xs, kind="stable")
        qubo = name.endswith(": QUBO")
        fig.add_scatter(
            name=name, x=[xs[k] for k in order], y=[ys[k] for k in order], text=[ids[k] for k in order],
            customdata=[tests[k] for k in order],
            mode="lines+markers", marker={"color": colour(i), "size": 10 if qubo else 9,
                                          "symbol": "circle" if qubo else next(baseline_symbols)},
            line={"color": colour(i), "width": 2 if qubo else 1, "dash": "solid" if qubo else "dot"},
            hovertemplate="%{text} " + name + "<br>%{x}: %{y:.2f}%%{customdata}<extra></extra>",
        )
    base_layout(fig, title, xaxis_title=_BASELINE_AXES[method], yaxis_title="accuracy (%)", height=520,
                legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
    fig.update_layout(margin={"b": 150})  # room for the legend below the plot
    if method == "adaround":
        fig.update_xaxes(dtick=1, range=[0.5, 8.5])  # bit widths are whole numbers
    else:
        fig.update_xaxes(range=[-0.02, 1.0])
    return fig
