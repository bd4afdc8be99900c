"""QPU topologies, minor embedding, chain strength and chain statistics.

Public API:

- :func:`qpu_graph`, :func:`get_topology`, :data:`TOPOLOGIES`: the Pegasus P16,
  Zephyr Z12 and Chimera C16 hardware graphs.
- :func:`find_embedding` -> :class:`EmbeddingResult`: clique / heuristic / auto
  minor embedding, cached; :class:`EmbeddingNotFoundError` when a problem does
  not fit.
- :func:`compute_chain_strength`, :func:`chain_break_fraction`.
- :class:`MinorEmbeddingComposite`: the dimod composite the QPU-like samplers
  use.
"""

from core.embedding.chains import (
    DEFAULT_PREFACTOR,
    chain_break_fraction,
    compute_chain_strength,
)
from core.embedding.composite import CHAIN_BREAK_METHODS, MinorEmbeddingComposite
from core.embedding.embed import (
    EMBEDDING_METHODS,
    EmbeddingNotFoundError,
    EmbeddingResult,
    clear_embedding_cache,
    edge_density,
    embedding_as_lists,
    find_embedding,
    max_clique_size,
    problem_graph,
)
from core.embedding.topologies import (
    TOPOLOGIES,
    Topology,
    TopologySpec,
    get_topology,
    graph_fingerprint,
    qpu_graph,
    topology_names,
)

__all__ = [
    "CHAIN_BREAK_METHODS",
    "DEFAULT_PREFACTOR",
    "EMBEDDING_METHODS",
    "TOPOLOGIES",
    "EmbeddingNotFoundError",
    "EmbeddingResult",
    "MinorEmbeddingComposite",
    "Topology",
    "TopologySpec",
    "chain_break_fraction",
    "clear_embedding_cache",
    "compute_chain_strength",
    "edge_density",
    "embedding_as_lists",
    "find_embedding",
    "get_topology",
    "graph_fingerprint",
    "max_clique_size",
    "problem_graph",
    "qpu_graph",
    "topology_names",
]
