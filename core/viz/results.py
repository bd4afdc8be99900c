"""Figures of decisions and trade-offs: bits per layer, Pareto front, sensitivity table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.errors import InvalidInputError
from core.store.analysis import pareto_mask
from core.viz._common import (
    NEUTRAL,
    PALETTE,
    SEQUENTIAL,
    base_layout,
    empty_figure,
    symlog_scale,
)

FP32_BITS = 32


def option_bits(option: Any) -> int | None:
    """Bits per weight of an option: "prune" -> 0, "keep" -> 32, 4 / "4" / "4bit" / "int4" -> 4.

    None when the option is not a precision (e.g. a kept-filter list).
    """
    if isinstance(option, bool):
        return None
    if isinstance(option, (int, np.integer)):
        return int(option)
    if isinstance(option, str):
        s = option.strip().lower()
        if s in ("prune", "pruned", "remove"):
            return 0
        if s in ("keep", "fp32", "float32", "full"):
            return FP32_BITS
        for prefix in ("int", "w", "q"):
            if s.startswith(prefix) and s[len(prefix) :].isdigit():
                s = s[len(prefix) :]
        for suffix in ("bits", "bit", "b"):
            if s.endswith(suffix) and s[: -len(suffix)].strip().isdigit():
                s = s[: -len(suffix)].strip()
        if s.isdigit():
            return int(s)
    return None


def decision_bars(
    choices: Mapping[str, Any],
    *,
    sizes: Mapping[str, int] | None = None,
    title: str = "Bits per layer",
) -> go.Figure:
    """Bar chart of the chosen bits per weight for each unit (in the given order).

    Pruned units (0 bits) get a visible marker with the text "pruned" at the
    baseline (trace ``pruned``); kept units are full precision (32 bits).
    ``sizes`` (unit -> storage in bits under its choice, e.g. the F1 table's
    ``cost_bits``: weights, scales and bias) adds the unit's size to the hover.
    """
    if not choices:
        return empty_figure(title, "No decision yet.")
    units = [str(u) for u in choices]
    bits = [option_bits(o) for o in choices.values()]
    bad = [u for u, b in zip(units, bits, strict=True) if b is None]
    if bad:
        raise InvalidInputError(
            f"Cannot read a bit-width from the choice for {', '.join(bad[:5])}."
        )
    hover = []
    for u, o, b in zip(units, choices.values(), bits, strict=True):
        line = f"{u}<br>choice: {o}<br>bits per weight: {b}"
        if sizes and u in sizes:
            line += f"<br>size: {int(sizes[u]):,} bits"
        hover.append(line)
    colours = [
        NEUTRAL if b == 0 else (PALETTE[2] if b == FP32_BITS else PALETTE[0])
        for b in bits
    ]
    fig = go.Figure(
        go.Bar(
            x=units,
            y=bits,
            marker={"color": colours},
            text=[("pruned" if b == 0 else str(b)) for b in bits],
            textposition="outside",
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            name="bits per weight",
        )
    )
    pruned = [u for u, b in zip(units, bits, strict=True) if b == 0]
    if pruned:
        fig.add_trace(
            go.Scatter(
                x=pruned,
                y=[0] * len(pruned),
                mode="markers",
                marker={"symbol": "x", "size": 12, "color": "#EF553B"},
                name="pruned",
                hovertemplate="%{x}: pruned<extra></extra>",
            )
        )
    top = max(b for b in bits if b is not None)
    fig.update_yaxes(title_text="bits per weight", range=[-1, max(8, top) * 1.15])
    fig.update_xaxes(title_text="layer", type="category")
    n_pruned = len(pruned)
    return base_layout(
        fig,
        f"{title} ({n_pruned} of {len(units)} pruned)" if n_pruned else title,
        showlegend=bool(pruned),
    )


AXIS_TITLES = {"size_bits_after": "size after compression (bits)", "accuracy_after": "accuracy after compression"}


def pareto_scatter(
    df: pd.DataFrame,
    *,
    x: str = "size_bits_after",
    y: str = "accuracy_after",
    label: str = "name",
    color: str | None = "sampler",
    title: str = "Accuracy versus size",
) -> go.Figure:
    """Runs as points (accuracy vs size), with the Pareto front (smaller and more accurate) highlighted.

    Traces: one ``runs`` scatter per value of ``color`` (or one), then
    ``Pareto front`` (line + markers through the non-dominated runs, sorted by
    size). ``customdata`` holds the run ``id`` when the table has one.
    """
    for col in (x, y):
        if col not in df.columns:
            raise InvalidInputError(f"The runs table has no column {col!r}.")
    data = df.copy()
    data[x] = pd.to_numeric(data[x], errors="coerce")
    data[y] = pd.to_numeric(data[y], errors="coerce")
    data = data[np.isfinite(data[x]) & np.isfinite(data[y])]
    if data.empty:
        return empty_figure(title, "No runs with both an accuracy and a size yet.")
    mask = pareto_mask(data[x].to_numpy(), data[y].to_numpy())
    ids = data["id"].tolist() if "id" in data.columns else list(data.index)
    labels = (
        data[label].astype(str).tolist()
        if label in data.columns
        else [str(i) for i in ids]
    )
    data = data.assign(_id=ids, _label=labels, _front=mask)
    fig = go.Figure()
    groups = (
        [(None, data)]
        if not color or color not in data.columns
        else list(data.groupby(color, sort=True, dropna=False))
    )
    for k, (g, part) in enumerate(groups):
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part[y],
                mode="markers",
                marker={"size": 10, "color": PALETTE[k % len(PALETTE)], "opacity": 0.8},
                name="runs" if g is None else str(g),
                legendgroup="runs",
                customdata=part["_id"],
                text=part["_label"],
                hovertemplate=f"%{{text}}<br>{x}: %{{x:,.4g}}<br>{y}: %{{y:.4g}}<extra></extra>",
            )
        )
    front = data[data["_front"]].sort_values([x, y], ascending=[True, False])
    fig.add_trace(
        go.Scatter(
            x=front[x],
            y=front[y],
            mode="lines+markers",
            line={"shape": "hv", "width": 2, "color": "#EF553B"},
            marker={
                "size": 14,
                "symbol": "circle-open",
                "line": {"width": 2, "color": "#EF553B"},
            },
            name="Pareto front",
            customdata=front["_id"],
            text=front["_label"],
            hovertemplate=f"Pareto: %{{text}}<br>{x}: %{{x:,.4g}}<br>{y}: %{{y:.4g}}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text=AXIS_TITLES.get(x, x.replace("_", " ")))
    fig.update_yaxes(title_text=AXIS_TITLES.get(y, y.replace("_", " ")))
    if y.startswith("accuracy"):
        # accuracies are fractions: never let autoscale run past 0..1
        low = float(data[y].min())
        fig.update_yaxes(range=[max(0.0, low - 0.05), 1.0 + 1e-9], tickformat=".0%")
    xs = data[x].to_numpy(dtype=float)
    if xs.max() - xs.min() < 1e-9 * max(1.0, abs(xs.max())) or xs.max() <= 1.05 * xs.min():
        # all runs (nearly) the same size: a symmetric window instead of a degenerate range
        mid = float(xs.mean()) or 1.0
        fig.update_xaxes(range=[0.8 * mid, 1.2 * mid])
    distinct = len(front[[x, y]].drop_duplicates())
    repeats = f" ({distinct} distinct)" if distinct < len(front) else ""
    legend = {"orientation": "h", "yanchor": "top", "y": -0.2} if len(groups) > 4 else {}
    return base_layout(
        fig, f"{title}: {len(front)} of {len(data)} runs on the Pareto front{repeats}",
        **({"legend": legend} if legend else {}),
    )


def sensitivity_heatmap(
    units_table: Sequence[Mapping[str, Any]],
    *,
    value: str = "distortion",
    log_scale: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Units x options heatmap of ``value`` (default the distortion) from an F1 input table.

    ``units_table``: ``[{name, params, options: [{option, distortion, cost_bits,
    kept_params, energy}]}]``. Rows are units in table order, columns the union
    of options in first-seen order; missing combinations are blank. Hover shows
    every field of the option. ``log_scale`` uses a symmetric log colour.
    """
    if not units_table:
        return empty_figure(title or "Sensitivity", "No sensitivity table yet.")
    units = [str(u.get("name")) for u in units_table]
    options: list[str] = []
    for u in units_table:
        for o in u.get("options", []):
            key = str(o.get("option"))
            if key not in options:
                options.append(key)
    z = np.full((len(units), len(options)), np.nan)
    text = np.full((len(units), len(options)), "", dtype=object)
    col = {o: j for j, o in enumerate(options)}
    for i, u in enumerate(units_table):
        for o in u.get("options", []):
            j = col[str(o.get("option"))]
            v = o.get(value)
            try:
                z[i, j] = float(v) if v is not None else np.nan
            except (TypeError, ValueError):
                z[i, j] = np.nan
            parts = [f"unit: {units[i]}", f"option: {o.get('option')}"]
            if u.get("params") is not None:
                parts.append(
                    f"params: {u.get('params'):,}"
                    if isinstance(u.get("params"), int)
                    else f"params: {u.get('params')}"
                )
            for k in ("distortion", "cost_bits", "kept_params", "energy"):
                if k in o and o[k] is not None:
                    val = o[k]
                    parts.append(
                        f"{k.replace('_', ' ')}: {val:.6g}"
                        if isinstance(val, float)
                        else f"{k.replace('_', ' ')}: {val}"
                    )
            text[i, j] = "<br>".join(parts)
    extra: dict[str, Any] = {"colorbar": {"title": {"text": value.replace("_", " ")}}}
    zd = z
    if log_scale:
        zd, _t, vals, labs = symlog_scale(z)
        extra["colorbar"].update(tickvals=vals, ticktext=labs)
    fig = go.Figure(
        go.Heatmap(
            z=zd,
            x=options,
            y=units,
            text=text,
            hovertemplate="%{text}<extra></extra>",
            hoverongaps=False,
            colorscale=SEQUENTIAL,
            name=value,
            **extra,
        )
    )
    fig.update_xaxes(title_text="option", type="category", side="bottom")
    fig.update_yaxes(title_text="unit", type="category", autorange="reversed")
    return base_layout(
        fig, title or f"Sensitivity: {value.replace('_', ' ')} per unit and option"
    )
