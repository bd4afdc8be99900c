"""QPU topologies: the hardware graphs problems are minor-embedded into.

Three named topologies are offered, built with ``dwave.graphs`` (the
``dwave-graphs`` package, formerly ``dwave_networkx``) exactly as
:class:`dwave.system.testing.MockDWaveSampler` builds them, so an embedding
found on :func:`qpu_graph` is valid on the simulated QPU of the same name:

=========  ===========================  ===============================
name       shape                        resembles
=========  ===========================  ===============================
pegasus    P16, fabric only             Advantage (5,640 qubits)
zephyr     Z12, t=4                     Advantage2 (4,800 qubits)
chimera    C16, t=4                     D-Wave 2000Q (2,048 qubits)
=========  ===========================  ===============================

Graphs are built once per process and returned frozen (read-only): copy them
with ``graph.copy()`` before changing anything.

Example:
    >>> from core.embedding import qpu_graph
    >>> g = qpu_graph("pegasus")
    >>> g.graph["family"], g.number_of_nodes()
    ('pegasus', 5640)
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import networkx as nx

from core.errors import InvalidInputError

__all__ = [
    "TOPOLOGIES",
    "Topology",
    "TopologySpec",
    "get_topology",
    "graph_fingerprint",
    "qpu_graph",
    "topology_names",
]


@dataclass(frozen=True)
class TopologySpec:
    """How to build one named QPU graph."""

    name: str
    family: str
    shape: tuple[int, ...]
    label: str
    description: str


TOPOLOGIES: dict[str, TopologySpec] = {
    "pegasus": TopologySpec(
        name="pegasus",
        family="pegasus",
        shape=(16,),
        label="Pegasus P16",
        description="Advantage-like Pegasus P16 graph (5,640 qubits, degree up to 15).",
    ),
    "zephyr": TopologySpec(
        name="zephyr",
        family="zephyr",
        shape=(12, 4),
        label="Zephyr Z12",
        description="Advantage2-like Zephyr Z12 graph (4,800 qubits, degree up to 20).",
    ),
    "chimera": TopologySpec(
        name="chimera",
        family="chimera",
        shape=(16, 16, 4),
        label="Chimera C16",
        description="2000Q-like Chimera C16 graph (2,048 qubits, degree up to 6).",
    ),
}


def topology_names() -> list[str]:
    """Names accepted by :func:`qpu_graph` and :func:`get_topology`."""
    return list(TOPOLOGIES)


def _spec(name: str) -> TopologySpec:
    if not isinstance(name, str) or name.strip().lower() not in TOPOLOGIES:
        raise InvalidInputError(
            f"Unknown QPU topology {name!r}; choose one of: {', '.join(TOPOLOGIES)}."
        )
    return TOPOLOGIES[name.strip().lower()]


def _build(spec: TopologySpec) -> nx.Graph:
    import dwave.graphs as dnx

    if spec.family == "pegasus":
        graph = dnx.pegasus_graph(spec.shape[0], fabric_only=True)
    elif spec.family == "zephyr":
        graph = dnx.zephyr_graph(spec.shape[0], spec.shape[1])
    else:
        graph = dnx.chimera_graph(*spec.shape)
    return graph


@functools.cache
def _cached_graph(name: str) -> nx.Graph:
    return nx.freeze(_build(TOPOLOGIES[name]))


def qpu_graph(name: str) -> nx.Graph:
    """Return the (frozen, cached) hardware graph of the named topology.

    Args:
        name: ``"pegasus"``, ``"zephyr"`` or ``"chimera"`` (case-insensitive).

    Returns:
        A read-only :class:`networkx.Graph` with integer (linear) qubit labels
        and the ``dwave.graphs`` metadata (``graph.graph["family"]`` etc.) that
        :mod:`minorminer.busclique` needs.

    Raises:
        InvalidInputError: for an unknown name.
    """
    return _cached_graph(_spec(name).name)


def graph_fingerprint(graph: nx.Graph) -> str:
    """A short content hash of a graph's nodes and edges (labels via ``repr``)."""
    h = hashlib.sha256()
    h.update(repr(graph.graph.get("family")).encode())
    for node in sorted(map(repr, graph.nodes)):
        h.update(node.encode())
        h.update(b"\0")
    h.update(b"\1")
    edges = sorted(tuple(sorted((repr(u), repr(v)))) for u, v in graph.edges)
    for u, v in edges:
        h.update(f"{u}\0{v}\0".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Topology:
    """A target graph plus a stable key for caching embeddings on it.

    Use :func:`get_topology` for the named topologies; wrap any other
    ``dwave.graphs``-style graph (e.g. a real QPU's working graph, with its
    missing qubits) with :meth:`from_graph`.
    """

    name: str
    label: str
    graph: nx.Graph = field(repr=False, compare=False)
    key: str

    @property
    def num_qubits(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def num_couplers(self) -> int:
        return self.graph.number_of_edges()

    @classmethod
    def from_graph(cls, graph: nx.Graph, name: str | None = None) -> Topology:
        """Wrap an arbitrary target graph; its key is a content hash."""
        family = graph.graph.get("family", "custom")
        label = name or f"{family} graph ({graph.number_of_nodes()} qubits)"
        return cls(
            name=name or str(family),
            label=label,
            graph=graph,
            key=f"graph:{graph_fingerprint(graph)}",
        )


@functools.cache
def _cached_topology(name: str) -> Topology:
    spec = TOPOLOGIES[name]
    return Topology(
        name=name, label=spec.label, graph=_cached_graph(name), key=f"named:{name}"
    )


def get_topology(name: str) -> Topology:
    """Return the cached :class:`Topology` for a named QPU graph."""
    return _cached_topology(_spec(name).name)
