"""Plotly figure builders (pure functions returning ``plotly.graph_objects.Figure``).

Used by the pages and testable without a browser. Figures use the default
template and theme-neutral colours, so they read in light and dark themes.
"""

from core.viz._common import PALETTE, default_block_of, var_name
from core.viz.embedding import (
    TOPOLOGIES,
    chain_length_histogram,
    embedding_view,
    embedding_view_from_inspector,
    inspector_data,
    inspector_embedding,
    target_graph_from_properties,
)
from core.viz.energy import energy_ecdf, energy_histogram, split_by_feasibility
from core.viz.methods import baseline_comparison, kept_filters_map, layer_error_bars
from core.viz.qubo import DEFAULT_MAX_CELLS, problem_graph, qubo_heatmap
from core.viz.results import (
    decision_bars,
    option_bits,
    pareto_scatter,
    sensitivity_heatmap,
)

__all__ = [
    "DEFAULT_MAX_CELLS",
    "PALETTE",
    "TOPOLOGIES",
    "baseline_comparison",
    "chain_length_histogram",
    "decision_bars",
    "default_block_of",
    "embedding_view",
    "embedding_view_from_inspector",
    "energy_ecdf",
    "energy_histogram",
    "split_by_feasibility",
    "inspector_data",
    "kept_filters_map",
    "layer_error_bars",
    "inspector_embedding",
    "option_bits",
    "pareto_scatter",
    "problem_graph",
    "qubo_heatmap",
    "sensitivity_heatmap",
    "target_graph_from_properties",
    "var_name",
]
