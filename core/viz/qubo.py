"""Figures of the logical problem: the QUBO matrix and the problem graph."""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import Any, Literal

import dimod
import networkx as nx
import numpy as np
import plotly.graph_objects as go

from core.errors import InvalidInputError
from core.viz._common import (
    DIVERGING,
    FAINT,
    NEUTRAL,
    BlockOf,
    base_layout,
    block_ticks,
    colour,
    empty_figure,
    group_by_block,
    line_segments,
    symlog_scale,
    var_name,
)

#: above this many matrix cells (n * n) the heatmap aggregates by block
DEFAULT_MAX_CELLS = 160_000  # 400 variables


def _binary(bqm: dimod.BinaryQuadraticModel) -> tuple[dimod.BinaryQuadraticModel, bool]:
    if not isinstance(bqm, dimod.BinaryQuadraticModel):
        raise InvalidInputError("Expected a dimod BinaryQuadraticModel.")
    if bqm.vartype is dimod.SPIN:
        return bqm.change_vartype(dimod.BINARY, inplace=False), True
    return bqm, False


def _colour_axis(
    z: np.ndarray, log_scale: bool, log_threshold: float | None
) -> tuple[np.ndarray, dict[str, Any], str]:
    """Transform z for display; return (z_display, colour-bar settings, scale note)."""
    if not log_scale:
        return z, {"zmid": 0.0, "colorbar": {"title": {"text": "coefficient"}}}, ""
    if log_threshold and float(log_threshold) <= 0:
        raise InvalidInputError("The log-scale threshold must be positive.")
    zd, t, tickvals, ticktext = symlog_scale(
        z, float(log_threshold) if log_threshold else None
    )
    bar = {
        "zmid": 0.0,
        "colorbar": {
            "title": {"text": "coefficient (sym. log)"},
            "tickvals": tickvals,
            "ticktext": ticktext,
        },
    }
    return zd, bar, f", symmetric log colour (t={t:.3g})"


def qubo_heatmap(
    bqm: dimod.BinaryQuadraticModel,
    *,
    block_of: BlockOf | None = None,
    log_scale: bool = False,
    log_threshold: float | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    symmetric: bool = False,
    aggregate: Literal["abs_sum", "mean"] = "abs_sum",
    title: str = "QUBO matrix",
) -> go.Figure:
    """Heatmap of the QUBO matrix Q: linear biases on the diagonal, quadratic above it.

    The axes are categorical, one category per variable name (``unit@option``
    for tuple labels); ``z[i][j]`` is Q for row ``y[i]`` and column ``x[j]``;
    empty cells are NaN.

    Variables are grouped by ``block_of(var)`` (default: the unit of
    ``(unit, option)`` tuples or ``"unit@option"`` strings); axis ticks name
    the blocks and thin lines separate them. Hover shows both variable names
    and the coefficient. ``symmetric=True`` mirrors each interaction below the
    diagonal. ``log_scale`` colours by ``sign(x) * log10(1 + |x| / t)``
    (``t = log_threshold``, default the median non-zero |coefficient|); hover
    always shows the raw value. When ``n * n > max_cells`` the matrix is
    aggregated per block pair (``aggregate``: sum of |coefficients| or mean
    coefficient) and the title says so. SPIN models are shown in BINARY form.
    """
    bqm, converted = _binary(bqm)
    n = bqm.num_variables
    if n == 0:
        return empty_figure(title, "The QUBO has no variables.")
    order, _blocks, spans = group_by_block(bqm.variables, block_of)
    if len(spans) == 1 and spans[0][0] is None:
        spans_named: list[tuple[Hashable | None, int, int]] = []
    else:
        spans_named = list(spans)
    note = " (SPIN model shown as QUBO)" if converted else ""
    if n * n > max_cells:
        return _aggregated_heatmap(
            bqm,
            order,
            spans,
            max_cells,
            log_scale,
            log_threshold,
            aggregate,
            title,
            note,
        )

    lin, (irow, icol, qdata), _offset = bqm.to_numpy_vectors(variable_order=order)
    z = np.full((n, n), np.nan)
    z[np.arange(n), np.arange(n)] = lin
    lo, hi = np.minimum(irow, icol), np.maximum(irow, icol)
    z[lo, hi] = qdata
    if symmetric:
        z[hi, lo] = qdata
    names = [var_name(v) for v in order]
    zd, bar, scale_note = _colour_axis(z, log_scale, log_threshold)
    value = "%{customdata:.6g}" if log_scale else "%{z:.6g}"
    unique = len(set(names)) == n
    if unique:
        # category axes named by variable: hover reads the names without an n*n text array
        coords: dict[str, Any] = {"x": names, "y": names}
        hover = f"row: %{{y}}<br>column: %{{x}}<br>coefficient: {value}<extra></extra>"
    else:
        text = np.empty((n, n), dtype=object)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                text[i, j] = f"row: {a}<br>column: {b}"
        coords = {"x": np.arange(n), "y": np.arange(n), "text": text}
        hover = f"%{{text}}<br>coefficient: {value}<extra></extra>"
    fig = go.Figure(
        go.Heatmap(
            z=zd,
            customdata=z if log_scale else None,
            hovertemplate=hover,
            hoverongaps=False,
            colorscale=DIVERGING,
            name="Q",
            **coords,
            **bar,
        )
    )
    if unique:
        fig.update_xaxes(type="category")
        fig.update_yaxes(type="category")
    _block_axes(fig, spans_named, n)
    return base_layout(
        fig,
        f"{title}: {n} variables, {bqm.num_interactions} interactions{note}{scale_note}",
    )


def _block_axes(
    fig: go.Figure, spans: list[tuple[Hashable | None, int, int]], n: int
) -> None:
    tickvals, ticktext = block_ticks(spans)
    axis: dict[str, Any] = {
        "showgrid": False,
        "zeroline": False,
        "range": [-0.5, n - 0.5],
    }
    if tickvals:
        axis.update(tickmode="array", tickvals=tickvals, ticktext=ticktext)
    fig.update_xaxes(
        title_text="variable (grouped by unit)" if tickvals else "variable", **axis
    )
    fig.update_yaxes(
        autorange="reversed",
        title_text=None,
        **{k: v for k, v in axis.items() if k != "range"},
    )
    # separators between blocks, set in one go (add_shape per line is quadratic)
    line = {"color": FAINT, "width": 1}
    shapes = []
    for _b, start, _stop in spans[1:]:
        pos = start - 0.5
        shapes.append(
            {
                "type": "line",
                "x0": pos,
                "x1": pos,
                "y0": -0.5,
                "y1": n - 0.5,
                "line": line,
                "layer": "above",
            }
        )
        shapes.append(
            {
                "type": "line",
                "x0": -0.5,
                "x1": n - 0.5,
                "y0": pos,
                "y1": pos,
                "line": line,
                "layer": "above",
            }
        )
    if shapes:
        fig.update_layout(shapes=shapes)


def _aggregated_heatmap(
    bqm: dimod.BinaryQuadraticModel,
    order: list[Hashable],
    spans: list[tuple[Hashable | None, int, int]],
    max_cells: int,
    log_scale: bool,
    log_threshold: float | None,
    aggregate: str,
    title: str,
    note: str,
) -> go.Figure:
    if aggregate not in ("abs_sum", "mean"):
        raise InvalidInputError("aggregate must be 'abs_sum' or 'mean'.")
    n = len(order)
    target = max(2, int(np.sqrt(max_cells)))
    if len(spans) == 1 or len(spans) > target:
        # no usable blocks (or too many): contiguous bins of variables
        size = int(np.ceil(n / target))
        spans = [
            (
                f"{var_name(order[s])}…{var_name(order[min(s + size, n) - 1])}",
                s,
                min(s + size, n),
            )
            for s in range(0, n, size)
        ]
    nb = len(spans)
    block_idx = np.empty(n, dtype=np.int64)
    for k, (_b, s, e) in enumerate(spans):
        block_idx[s:e] = k
    lin, (irow, icol, qdata), _ = bqm.to_numpy_vectors(variable_order=order)
    bi = np.concatenate([block_idx, block_idx[np.minimum(irow, icol)]])
    bj = np.concatenate([block_idx, block_idx[np.maximum(irow, icol)]])
    vals = np.concatenate([lin, qdata])
    present = vals != 0
    total = np.zeros((nb, nb))
    count = np.zeros((nb, nb))
    np.add.at(
        total,
        (bi[present], bj[present]),
        np.abs(vals[present]) if aggregate == "abs_sum" else vals[present],
    )
    np.add.at(count, (bi[present], bj[present]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = total if aggregate == "abs_sum" else total / count
    z = np.where(count > 0, z, np.nan)
    labels = [var_name(b) for b, _s, _e in spans]
    zd, bar, scale_note = _colour_axis(z, log_scale, log_threshold)
    what = "sum of |coefficients|" if aggregate == "abs_sum" else "mean coefficient"
    bar["colorbar"]["title"]["text"] = what + (" (sym. log)" if log_scale else "")
    if aggregate == "abs_sum":  # never negative: a sequential scale from zero, not a diverging one around it
        colorbar = bar["colorbar"]
        if "tickvals" in colorbar:
            kept = [(v, t) for v, t in zip(colorbar["tickvals"], colorbar["ticktext"], strict=True) if v >= 0]
            colorbar["tickvals"], colorbar["ticktext"] = [v for v, _ in kept], [t for _, t in kept]
        bar = {"colorbar": colorbar, "colorscale": "Viridis", "zmin": 0.0}
    # customdata[i][j] = [raw value, number of terms]
    custom = np.dstack([z, count])
    tail = f"{what}: %{{customdata[0]:.6g}}<br>terms: %{{customdata[1]}}<extra></extra>"
    # about 100 characters of tick labels fit along an axis: "a…b" bin names need fewer ticks than unit names
    widest = max(len(str(label)) for label in labels) + 1
    step = max(1, int(np.ceil(nb * widest / 100)))
    if len(set(labels)) == nb:
        coords: dict[str, Any] = {"x": labels, "y": labels}
        hover = "row block: %{y}<br>column block: %{x}<br>" + tail
        ticks: dict[str, Any] = {
            "type": "category",
            "tickmode": "array",
            "tickvals": labels[::step],
        }
    else:
        text = np.empty((nb, nb), dtype=object)
        for a in range(nb):
            for b in range(nb):
                text[a, b] = f"row block: {labels[a]}<br>column block: {labels[b]}"
        coords = {"x": np.arange(nb), "y": np.arange(nb), "text": text}
        hover = "%{text}<br>" + tail
        ticks = {"tickmode": "array", "tickvals": list(range(nb))[::step]}
    ticks.update(ticktext=labels[::step], showgrid=False)
    fig = go.Figure(
        go.Heatmap(
            z=zd,
            customdata=custom,
            hovertemplate=hover,
            hoverongaps=False,
            name="Q by block",
            **coords,
            **({"colorscale": DIVERGING} | bar),
        )
    )
    fig.update_xaxes(title_text="block", **ticks)
    fig.update_yaxes(autorange="reversed", **ticks)
    return base_layout(
        fig,
        f"{title}: {n} variables, {bqm.num_interactions} interactions{note}<br><sub>aggregated by block "
        f"({what}; {n}×{n} exceeds {max_cells} cells){scale_note}</sub>",
    )


# ----------------------------------------------------------------------------- problem graph


def _edge_trace(
    pos: dict[Hashable, np.ndarray],
    edges: list[tuple[Hashable, Hashable]],
    width: float,
    colour_: str,
    name: str,
) -> go.Scatter:
    xs, ys = line_segments(edges, pos)
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        line={"width": width, "color": colour_},
        hoverinfo="skip",
        name=name,
    )


def _component_layout(g: nx.Graph, *, seed: int, iterations: int) -> dict[Hashable, np.ndarray]:
    """Each connected component laid out on its own, components side by side in a grid.

    Without pairwise terms a one-hot QUBO is one clique per unit and nothing
    between them: a global spring layout piles each clique onto a dot.
    Kamada-Kawai per component spreads small cliques; large ones use springs.
    """
    components = sorted(nx.connected_components(g), key=len, reverse=True)
    cols = max(1, int(np.ceil(np.sqrt(len(components)))))
    pos: dict[Hashable, np.ndarray] = {}
    for i, nodes in enumerate(components):
        sub = g.subgraph(nodes)
        if len(nodes) == 1:
            local = {next(iter(nodes)): np.zeros(2)}
        elif len(nodes) <= 150:
            local = nx.kamada_kawai_layout(sub, weight=None)
        else:
            local = nx.spring_layout(sub, seed=seed, iterations=iterations, weight=None)
        offset = np.array([2.5 * (i % cols), -2.5 * (i // cols)])
        for v, xy in local.items():
            pos[v] = np.asarray(xy, dtype=float) + offset
    return pos


def _unblocked_name(variables: Collection[Hashable]) -> str:
    """Legend name of the variables no block claims: the slack encoding's budget variables, or others."""
    return "slack variables" if all(str(v).startswith("slack") for v in variables) else "other variables"


def problem_graph(
    bqm: dimod.BinaryQuadraticModel,
    *,
    highlight: Hashable | Collection[Hashable] | None = None,
    seed: int = 0,
    block_of: BlockOf | None = None,
    iterations: int = 50,
    title: str = "Problem graph",
) -> go.Figure:
    """The logical problem graph (variables, interactions) in a networkx spring layout.

    Nodes are coloured by block (one legend entry per block, up to 24 blocks;
    beyond that a single trace coloured by block index). Edges are drawn in
    three width classes by |coefficient| (terciles), solid for positive and
    dotted for negative couplings. ``highlight`` (a variable or several) is
    drawn enlarged on top. Node ``customdata`` holds the variable names so a
    page can map a click back to a variable.
    """
    bqm, _ = _binary(bqm)
    if bqm.num_variables == 0:
        return empty_figure(title, "The QUBO has no variables.")
    g = nx.Graph()
    g.add_nodes_from(bqm.variables)
    for (u, v), bias in bqm.quadratic.items():
        g.add_edge(u, v, weight=abs(float(bias)), bias=float(bias))
    pos = _component_layout(g, seed=seed, iterations=iterations)
    fig = go.Figure()

    edges = list(g.edges(data="bias"))
    if edges:
        mags = np.array([abs(b) for _u, _v, b in edges])
        cuts = (
            np.quantile(mags, [1 / 3, 2 / 3])
            if len(mags) >= 3
            else np.array([mags.max(), mags.max()])
        )
        widths = (0.6, 1.4, 2.6)
        names = ("weak", "medium", "strong")
        cls = np.searchsorted(cuts, mags, side="left")
        for k in range(3):
            for sign, dash_name in ((1, "J > 0"), (-1, "J < 0")):
                sel = [
                    (u, v)
                    for (u, v, b), c in zip(edges, cls, strict=True)
                    if c == k and np.sign(b) == sign
                ]
                if not sel:
                    continue
                tr = _edge_trace(
                    pos,
                    sel,
                    widths[k],
                    NEUTRAL if sign > 0 else "rgba(99,110,250,0.8)",
                    f"{dash_name} ({names[k]})",
                )
                if sign < 0:
                    tr.line.dash = "dot"
                tr.legendgroup = "edges"
                fig.add_trace(tr)

    order, blocks, spans = group_by_block(bqm.variables, block_of)
    degree = dict(g.degree())

    def hover(v: Hashable, b: Any) -> str:
        block = "" if b is None else f"<br>block: {var_name(b)}"
        return f"{var_name(v)}{block}<br>linear: {bqm.get_linear(v):.6g}<br>degree: {degree[v]}"

    if len(spans) <= 24:
        for k, (b, s, e) in enumerate(spans):
            vs = order[s:e]
            fig.add_trace(
                go.Scatter(
                    x=[float(pos[v][0]) for v in vs],
                    y=[float(pos[v][1]) for v in vs],
                    mode="markers",
                    marker={
                        "size": 10,
                        "color": colour(k),
                        "line": {"width": 0.5, "color": NEUTRAL},
                    },
                    name=var_name(b) if b is not None else _unblocked_name(vs),
                    text=[hover(v, b) for v in vs],
                    customdata=[var_name(v) for v in vs],
                    hovertemplate="%{text}<extra></extra>",
                )
            )
    else:
        index = {b: k for k, (b, _s, _e) in enumerate(spans)}
        fig.add_trace(
            go.Scatter(
                x=[float(pos[v][0]) for v in order],
                y=[float(pos[v][1]) for v in order],
                mode="markers",
                marker={
                    "size": 9,
                    "color": [index[b] for b in blocks],
                    "colorscale": "Turbo",
                },
                name="variables",
                text=[hover(v, b) for v, b in zip(order, blocks, strict=True)],
                customdata=[var_name(v) for v in order],
                hovertemplate="%{text}<extra></extra>",
            )
        )

    if highlight is not None:
        hl = (
            [highlight]
            if (
                not isinstance(highlight, Collection)
                or isinstance(highlight, (str, tuple))
            )
            else list(highlight)
        )
        hl = [v for v in hl if v in pos]
        if hl:
            fig.add_trace(
                go.Scatter(
                    x=[float(pos[v][0]) for v in hl],
                    y=[float(pos[v][1]) for v in hl],
                    mode="markers+text",
                    marker={
                        "size": 18,
                        "color": "rgba(0,0,0,0)",
                        "line": {"width": 3, "color": "#EF553B"},
                    },
                    text=[var_name(v) for v in hl],
                    textposition="top center",
                    name="highlighted",
                    customdata=[var_name(v) for v in hl],
                    hoverinfo="skip",
                )
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    fig = base_layout(
        fig,
        f"{title}<br><sup>{bqm.num_variables} variables, {bqm.num_interactions} interactions</sup>",
        hovermode="closest",
        # below the graph: beside it, the legend takes the width an equal-aspect graph needs
        legend={"orientation": "h", "yanchor": "top", "y": 0, "x": 0},
    )
    fig.update_layout(margin={"b": 110})
    return fig
