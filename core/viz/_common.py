"""Shared helpers for the figure builders: colours, block labels, symmetric log."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative, unlabel_rgb


def _hex(c: str) -> str:
    if c.startswith("#"):
        return c.upper()
    r, g, b = (round(float(x)) for x in unlabel_rgb(c))
    return f"#{r:02X}{g:02X}{b:02X}"


#: categorical colours of mid luminance: readable on white and on dark backgrounds
PALETTE: tuple[str, ...] = tuple(
    _hex(c) for c in (*qualitative.Plotly, *qualitative.Vivid[:10])
)
#: neutral colours that work on both themes
NEUTRAL = "rgba(128,128,128,0.9)"
FAINT = "rgba(128,128,128,0.25)"
#: marker for the exact optimum
OPTIMUM_COLOUR = "#888888"
#: diverging and sequential scales legible on light and dark backgrounds
DIVERGING = "RdBu_r"
SEQUENTIAL = "Viridis"

BlockOf = Callable[[Hashable], Hashable | None]


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def var_name(v: Any) -> str:
    """Readable text for a variable label: tuples as ``unit@option``."""
    if isinstance(v, tuple):
        return "@".join(str(p) for p in v)
    return str(v)


def default_block_of(v: Hashable) -> Hashable | None:
    """Block of a variable: the unit for ``(unit, option)`` tuples or ``"unit@option"`` strings."""
    if isinstance(v, tuple) and len(v) >= 2:
        return v[0]
    if isinstance(v, str) and "@" in v:
        return v.rsplit("@", 1)[0]
    return None


def group_by_block(
    variables: Iterable[Hashable], block_of: BlockOf | None
) -> tuple[
    list[Hashable], list[Hashable | None], list[tuple[Hashable | None, int, int]]
]:
    """Order variables so that each block is contiguous (blocks in first-seen order).

    Returns (ordered variables, block of each, [(block, start, stop)]).
    """
    fn = block_of or default_block_of
    members: dict[Any, list[Hashable]] = {}
    for v in variables:
        b = fn(v)
        members.setdefault(b, []).append(v)
    order: list[Hashable] = []
    blocks: list[Hashable | None] = []
    spans: list[tuple[Hashable | None, int, int]] = []
    for b, vs in members.items():
        spans.append((b, len(order), len(order) + len(vs)))
        order.extend(vs)
        blocks.extend([b] * len(vs))
    return order, blocks, spans


def symlog(x: np.ndarray | float, threshold: float) -> np.ndarray:
    """``sign(x) * log10(1 + |x| / threshold)`` (NaN stays NaN)."""
    a = np.asarray(x, dtype=float)
    return np.sign(a) * np.log10(1.0 + np.abs(a) / threshold)


def symlog_ticks(max_abs: float, threshold: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks at 0 and +-powers of ten, labelled with the original values."""
    if not np.isfinite(max_abs) or max_abs <= 0:
        return [0.0], ["0"]
    lo = int(np.floor(np.log10(threshold)))
    hi = int(np.ceil(np.log10(max_abs)))
    mags = [10.0**k for k in range(lo, hi + 1) if 10.0**k <= max_abs * 1.0001]
    if len(mags) > 6:
        step = int(np.ceil(len(mags) / 6))
        mags = mags[::-1][::step][::-1]
    # powers of ten at or below the threshold crowd 0 on the bar (symlog <= log10 2): keep labels apart
    top = float(symlog(mags[-1], threshold)) if mags else 0.0
    kept: list[float] = []
    for m in reversed(mags):
        last = float(symlog(kept[-1], threshold)) if kept else np.inf
        if last - float(symlog(m, threshold)) >= 0.08 * top and float(symlog(m, threshold)) >= 0.08 * top:
            kept.append(m)
    mags = sorted(kept)
    values = [-m for m in reversed(mags)] + [0.0] + mags
    return [float(symlog(v, threshold)) for v in values], [f"{v:.3g}" for v in values]


def symlog_scale(
    z: np.ndarray, threshold: float | None = None
) -> tuple[np.ndarray, float, list[float], list[str]]:
    """``z`` on a symmetric log colour scale: (display values, threshold, tick values, tick labels).

    The threshold defaults to the median nonzero ``|z|`` (1 when there is none).
    """
    finite = np.abs(z[np.isfinite(z) & (z != 0)])
    if threshold is None:
        threshold = float(np.median(finite)) if finite.size else 1.0
    tickvals, ticktext = symlog_ticks(float(finite.max()) if finite.size else 1.0, threshold)
    return symlog(z, threshold), threshold, tickvals, ticktext


def line_segments(
    pairs: Iterable[tuple[Hashable, Hashable]], pos: Mapping[Hashable, Any]
) -> tuple[list[float | None], list[float | None]]:
    """x and y of a lines trace drawing each pair as its own segment (None breaks the line)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for u, v in pairs:
        xs += [float(pos[u][0]), float(pos[v][0]), None]
        ys += [float(pos[u][1]), float(pos[v][1]), None]
    return xs, ys


def base_layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    """Theme-neutral layout: no hard-coded backgrounds, title and margins only."""
    fig.update_layout(
        title={"text": title}, margin={"l": 60, "r": 20, "t": 60, "b": 50}, **kwargs
    )
    return fig


def empty_figure(title: str, message: str) -> go.Figure:
    """A figure with a centred explanation instead of data."""
    fig = go.Figure()
    fig.add_annotation(
        text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, title)


def block_ticks(
    spans: Sequence[tuple[Hashable | None, int, int]], max_labels: int = 60
) -> tuple[list[float], list[str]]:
    """Tick positions at block centres labelled with the block name (thinned if many)."""
    named = [(b, s, e) for b, s, e in spans if b is not None]
    step = max(1, int(np.ceil(len(named) / max_labels)))
    vals = [(s + e - 1) / 2 for b, s, e in named[::step]]
    text = [var_name(b) for b, s, e in named[::step]]
    return vals, text
