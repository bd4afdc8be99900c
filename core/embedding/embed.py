"""Minor embedding of a problem graph into a QPU topology.

Two methods, chosen per problem:

``"clique"``
    :func:`minorminer.busclique.find_clique_embedding`: embeds a *complete*
    graph on the problem's variables using a precomputed, disk-cached family of
    native clique embeddings. Any problem with at most that many variables fits,
    it takes milliseconds, and chains are short and uniform. Best for dense
    problems (one-hot groups with pairwise terms, slack-penalty budgets).
``"heuristic"``
    :func:`minorminer.find_embedding`: embeds the actual problem graph. Uses
    fewer qubits on sparse problems but is slow on dense ones (tens of seconds
    for a dense 60-variable problem on Pegasus-16). Small problems are also
    embedded in a compact central region of the chip, kept when its chains
    are as good (see :func:`_heuristic`).
``"auto"`` (default)
    ``"clique"`` when the problem's edge density is at least
    ``density_threshold``, otherwise ``"heuristic"``, falling back to
    ``"clique"`` when the heuristic finds nothing.

Results are cached in memory by (problem graph, topology, method, seed), so
re-solving the same QUBO with other biases (a bisection over a penalty weight,
for instance) embeds once.

Example:
    >>> import dimod
    >>> from core.embedding import find_embedding
    >>> bqm = dimod.generators.gnp_random_bqm(30, 1.0, "BINARY", random_state=0)
    >>> result = find_embedding(bqm, "pegasus")
    >>> result.method, len(result.embedding)
    ('clique', 30)
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import dimod
import networkx as nx

from core.embedding.topologies import Topology, get_topology
from core.errors import InvalidInputError, QCLError

__all__ = [
    "EMBEDDING_METHODS",
    "EmbeddingNotFoundError",
    "EmbeddingResult",
    "clear_embedding_cache",
    "edge_density",
    "embedding_as_lists",
    "find_embedding",
    "max_clique_size",
    "problem_graph",
]

EmbeddingMethod = Literal["auto", "clique", "heuristic"]
EMBEDDING_METHODS: tuple[str, ...] = ("auto", "clique", "heuristic")

DEFAULT_DENSITY_THRESHOLD = 0.3
DEFAULT_TIMEOUT_S = 60.0
_CACHE_SIZE = 256

Embedding = dict[Hashable, tuple[int, ...]]


class EmbeddingNotFoundError(QCLError):
    """The problem could not be minor-embedded into the chosen QPU topology."""


@dataclass(frozen=True)
class EmbeddingResult:
    """A minor embedding and how it was obtained.

    Attributes:
        embedding: problem variable -> chain of physical qubits.
        method: the method that produced it (``"clique"``, ``"heuristic"``, or
            ``"empty"`` for a problem without variables).
        requested_method: what the caller asked for (``"auto"`` included).
        topology: name of the target topology.
        time_s: wall time spent computing the embedding (the original
            computation when ``from_cache`` is True).
        qubits_available: number of working qubits in the target graph.
        from_cache: True when served from the in-memory cache.
    """

    embedding: Embedding = field(repr=False)
    method: str
    requested_method: str
    topology: str
    time_s: float
    qubits_available: int
    from_cache: bool = False

    @property
    def chain_lengths(self) -> dict[Hashable, int]:
        """Problem variable -> number of qubits in its chain."""
        return {v: len(chain) for v, chain in self.embedding.items()}

    @property
    def qubits_used(self) -> int:
        return sum(len(chain) for chain in self.embedding.values())

    @property
    def max_chain_length(self) -> int:
        return max((len(c) for c in self.embedding.values()), default=0)

    @property
    def mean_chain_length(self) -> float:
        if not self.embedding:
            return 0.0
        return self.qubits_used / len(self.embedding)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly statistics (no chains)."""
        return {
            "method": self.method,
            "requested_method": self.requested_method,
            "topology": self.topology,
            "time_s": self.time_s,
            "num_variables": len(self.embedding),
            "qubits_used": self.qubits_used,
            "qubits_available": self.qubits_available,
            "max_chain_length": self.max_chain_length,
            "mean_chain_length": self.mean_chain_length,
            "from_cache": self.from_cache,
        }


# --------------------------------------------------------------------------- input


def problem_graph(
    source: dimod.BinaryQuadraticModel | nx.Graph | Iterable[Any],
) -> nx.Graph:
    """The interaction graph of a BQM, a graph, or an iterable of edges."""
    if isinstance(source, dimod.BinaryQuadraticModel):
        graph = nx.Graph()
        graph.add_nodes_from(source.variables)
        graph.add_edges_from(source.quadratic)
        return graph
    if isinstance(source, nx.Graph):
        return source
    try:
        graph = nx.Graph()
        graph.add_edges_from(source)
    except (TypeError, ValueError, nx.NetworkXError) as exc:
        raise InvalidInputError(
            "The problem to embed must be a dimod BQM, a networkx graph or a list of edges."
        ) from exc
    return graph


def edge_density(graph: nx.Graph) -> float:
    """Edges over the number of possible edges (0 for fewer than two nodes)."""
    n = graph.number_of_nodes()
    if n < 2:
        return 0.0
    return 2.0 * graph.number_of_edges() / (n * (n - 1))


def _graph_key(graph: nx.Graph) -> str:
    h = hashlib.sha256()
    nodes = sorted(repr(v) for v in graph.nodes)
    h.update("\0".join(nodes).encode())
    h.update(b"\1")
    edges = sorted("\0".join(sorted((repr(u), repr(v)))) for u, v in graph.edges)
    h.update("\1".join(edges).encode())
    return h.hexdigest()


def _resolve_topology(topology: str | nx.Graph | Topology) -> Topology:
    if isinstance(topology, Topology):
        return topology
    if isinstance(topology, nx.Graph):
        return Topology.from_graph(topology)
    return get_topology(topology)


def _validate(
    method: str, seed: int | None, timeout: float, density_threshold: float
) -> None:
    if method not in EMBEDDING_METHODS:
        raise InvalidInputError(
            f"Unknown embedding method {method!r}; choose one of: {', '.join(EMBEDDING_METHODS)}."
        )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31
    ):
        raise InvalidInputError(
            f"The embedding seed must be an integer in [0, 2**31), got {seed!r}."
        )
    if not timeout > 0:
        raise InvalidInputError(
            f"The embedding timeout must be positive, got {timeout!r}."
        )
    if not 0.0 <= density_threshold <= 1.0:
        raise InvalidInputError(
            f"density_threshold must be between 0 and 1, got {density_threshold!r}."
        )


# --------------------------------------------------------------------------- cache

_cache: OrderedDict[tuple[Any, ...], EmbeddingResult] = OrderedDict()
_cache_lock = threading.Lock()


def clear_embedding_cache() -> None:
    """Forget all cached embeddings."""
    with _cache_lock:
        _cache.clear()


def _cache_get(key: tuple[Any, ...]) -> EmbeddingResult | None:
    with _cache_lock:
        result = _cache.get(key)
        if result is not None:
            _cache.move_to_end(key)
        return result


def _cache_put(key: tuple[Any, ...], result: EmbeddingResult) -> None:
    with _cache_lock:
        _cache[key] = result
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


# --------------------------------------------------------------------------- methods


def _clique(nodes: list[Hashable], topology: Topology, seed: int | None) -> Embedding:
    from minorminer import busclique

    kwargs: dict[str, Any] = {} if seed is None else {"seed": seed}
    emb = busclique.find_clique_embedding(nodes, topology.graph, **kwargs)
    return {v: tuple(chain) for v, chain in emb.items()}


#: qubits per problem node and edge in the compact region the heuristic also tries
REGION_QUBITS_PER_ELEMENT = 8


def _farthest(target: nx.Graph, node: Hashable) -> Hashable:
    distances = nx.single_source_shortest_path_length(target, node)
    return max(distances, key=lambda q: (distances[q], q))


@functools.lru_cache(maxsize=16)
def _central_order(key: str, target: nx.Graph) -> tuple[Hashable, ...]:
    """The target's qubits in breadth-first order from a qubit near its centre (the midpoint of a
    double-sweep diameter path), so that any prefix is a compact region; empty for a target that is
    empty or not connected."""
    if target.number_of_nodes() == 0 or not nx.is_connected(target):
        return ()
    end = _farthest(target, min(target.nodes))
    path = nx.shortest_path(target, end, _farthest(target, end))
    return tuple(nx.bfs_tree(target, path[len(path) // 2], sort_neighbors=sorted).nodes)


def _minorminer(graph: nx.Graph, target: nx.Graph, seed: int | None, timeout: float) -> Embedding:
    import minorminer

    kwargs: dict[str, Any] = {"timeout": timeout}
    if seed is not None:
        kwargs["random_seed"] = seed
    try:
        emb = minorminer.find_embedding(graph, target, **kwargs)
    except RuntimeError:
        # minorminer gives up this way when the problem is far too large for the graph
        # ("Failed during initialization"): the same answer as finding nothing.
        return {}
    return {v: tuple(chain) for v, chain in emb.items()}


#: how many more qubits (relative) a compact embedding may use and still be preferred
COMPACT_QUBIT_ALLOWANCE = 0.10


def _longest_and_total(embedding: Embedding) -> tuple[int, int]:
    return max(map(len, embedding.values())), sum(map(len, embedding.values()))


def _heuristic(
    graph: nx.Graph, topology: Topology, seed: int | None, timeout: float
) -> Embedding:
    """minorminer on the whole target and, for a small problem, on a compact central region of it. The
    compact embedding is kept when its longest chain is no longer and it uses at most
    :data:`COMPACT_QUBIT_ALLOWANCE` more qubits; chains are what matter on a QPU.

    On an empty chip minorminer places the parts of a problem (say, one-hot groups without couplings
    between them) far apart, and the Embed page then shows specks on a whole chip that no zoom can frame.
    """
    target = topology.graph
    deadline = time.perf_counter() + timeout
    size = REGION_QUBITS_PER_ELEMENT * (graph.number_of_nodes() + graph.number_of_edges())
    order = _central_order(topology.key, target)
    compact: Embedding = {}
    if size <= len(order) // 2:
        # a region too small should fail fast and leave time for the whole target
        compact = _minorminer(graph, target.subgraph(order[:size]), seed, timeout / 6)
    whole = _minorminer(graph, target, seed, max(deadline - time.perf_counter(), 1e-3))
    if not (compact and whole):
        return compact or whole
    (c_longest, c_total), (w_longest, w_total) = _longest_and_total(compact), _longest_and_total(whole)
    return compact if c_longest <= w_longest and c_total <= (1 + COMPACT_QUBIT_ALLOWANCE) * w_total else whole


@functools.lru_cache(maxsize=16)
def _max_clique_size(key: str, graph: nx.Graph) -> int:
    from minorminer import busclique

    lo, hi = 0, graph.number_of_nodes()
    hi = min(
        hi, 4 * int(graph.number_of_nodes() ** 0.5) + 8
    )  # clique size ~ O(sqrt(qubits))
    while lo < hi:  # largest n with a clique embedding
        mid = (lo + hi + 1) // 2
        if busclique.find_clique_embedding(mid, graph):
            lo = mid
        else:
            hi = mid - 1
    return lo


def max_clique_size(topology: str | nx.Graph | Topology) -> int:
    """Largest fully connected problem the topology holds with clique embedding."""
    topo = _resolve_topology(topology)
    return _max_clique_size(topo.key, topo.graph)


def _does_not_fit(
    graph: nx.Graph, topo: Topology, method: str, timeout: float
) -> EmbeddingNotFoundError:
    n, m = graph.number_of_nodes(), graph.number_of_edges()
    try:
        capacity = f"; it holds fully connected problems of up to {max_clique_size(topo)} variables"
    except Exception:  # noqa: BLE001 - the hint is optional, the error is not
        capacity = ""
    how = (
        "clique embedding"
        if method == "clique"
        else f"heuristic embedding search ({timeout:g} s limit)"
    )
    return EmbeddingNotFoundError(
        f"This problem ({n:,} variables, {m:,} interactions) does not fit on the "
        f"{topo.label} QPU graph ({topo.num_qubits:,} qubits{capacity}): the {how} found "
        "no way to place it. Ways out: a smaller problem (mixed precision: the capacity budget "
        "mode or fewer groups per layer; adaround and filter pruning: a layer with fewer weights "
        "per channel or fewer filters), a classical sampler such as sa or tabu, or, with a D-Wave "
        "token, the leap-hybrid solver, which accepts large problems."
    )


def find_embedding(
    source: dimod.BinaryQuadraticModel | nx.Graph | Iterable[Any],
    topology: str | nx.Graph | Topology = "pegasus",
    method: EmbeddingMethod | str = "auto",
    *,
    seed: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    density_threshold: float = DEFAULT_DENSITY_THRESHOLD,
    use_cache: bool = True,
) -> EmbeddingResult:
    """Minor-embed a problem graph into a QPU topology.

    Args:
        source: a :class:`dimod.BinaryQuadraticModel` (its interaction graph is
            embedded), a :class:`networkx.Graph`, or an iterable of edges.
        topology: ``"pegasus"``, ``"zephyr"``, ``"chimera"``, a
            ``dwave.graphs``-style graph, or a :class:`Topology`.
        method: ``"auto"``, ``"clique"`` or ``"heuristic"`` (see module docs).
        seed: random seed for the embedding search (reproducible results).
        timeout: seconds allowed for the heuristic search.
        density_threshold: edge density at or above which ``"auto"`` uses the
            clique embedding.
        use_cache: reuse a previous result for the same problem graph,
            topology, method and seed.

    Returns:
        An :class:`EmbeddingResult`.

    Raises:
        InvalidInputError: for invalid arguments.
        EmbeddingNotFoundError: when the problem does not fit.
    """
    _validate(method, seed, timeout, density_threshold)
    topo = _resolve_topology(topology)
    graph = problem_graph(source)

    key = (_graph_key(graph), topo.key, method, seed, density_threshold)
    if use_cache and (hit := _cache_get(key)) is not None:
        return EmbeddingResult(
            embedding=dict(hit.embedding),
            method=hit.method,
            requested_method=hit.requested_method,
            topology=hit.topology,
            time_s=hit.time_s,
            qubits_available=hit.qubits_available,
            from_cache=True,
        )

    nodes = list(graph.nodes)
    t0 = time.perf_counter()
    used = method
    embedding: Embedding = {}
    if not nodes:
        used = "empty"
    elif len(nodes) > topo.num_qubits:
        raise _does_not_fit(
            graph, topo, "clique" if method == "clique" else "heuristic", timeout
        )
    else:
        if method == "auto":
            used = "clique" if edge_density(graph) >= density_threshold else "heuristic"
        if used == "clique":
            embedding = _clique(nodes, topo, seed)
        else:
            embedding = _heuristic(graph, topo, seed, timeout)
            if not embedding and method == "auto":
                used = "clique"
                embedding = _clique(nodes, topo, seed)
        if not embedding:
            raise _does_not_fit(graph, topo, used, timeout)
    elapsed = time.perf_counter() - t0

    result = EmbeddingResult(
        embedding=embedding,
        method=used,
        requested_method=method,
        topology=topo.name,
        time_s=elapsed,
        qubits_available=topo.num_qubits,
    )
    if use_cache:
        _cache_put(key, replace(result, embedding=dict(embedding)))
    return result


def embedding_as_lists(
    embedding: Mapping[Hashable, Iterable[int]],
) -> dict[Hashable, list[int]]:
    """A JSON-friendly copy of an embedding (chains as lists of ints)."""
    return {v: [int(q) for q in chain] for v, chain in embedding.items()}
