"""A composite that minor-embeds problems onto a structured (QPU-like) sampler.

:class:`MinorEmbeddingComposite` plays the role of
:class:`dwave.system.EmbeddingComposite` but uses this project's embedding
layer: clique or heuristic embedding chosen per problem, in-memory caching,
uniform torque compensation with a user override, and a uniform record of what
happened in ``SampleSet.info``:

``info["timing"]``
    ``{"embed_s": ..., "sample_s": ...}`` wall times: finding the embedding
    plus building the physical problem; running the child plus unembedding.
``info["embedding"]``
    variable -> list of qubits.
``info["embedding_summary"]``
    method, qubits used / available, chain lengths, time (see
    :meth:`EmbeddingResult.summary`).
``info["chain_strength"]``, ``info["chain_break_fraction"]``
    the chain strength used and the mean fraction of broken chains per read.
``info["qpu_timing"]``
    the QPU's own timing report (microseconds), real hardware only.
``info["embedding_context"]``
    the same data in the layout :class:`dwave.system.EmbeddingComposite`
    uses with ``return_embedding=True`` (read by dwave-inspector).

The same composite wraps the simulated QPUs and the real one, so what is tested
on the simulator is the code path that runs on hardware.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dimod
import numpy as np

from core.embedding.chains import (
    DEFAULT_PREFACTOR,
    ChainStrength,
    chain_break_fraction,
    compute_chain_strength,
)
from core.embedding.embed import (
    DEFAULT_DENSITY_THRESHOLD,
    DEFAULT_TIMEOUT_S,
    EMBEDDING_METHODS,
    embedding_as_lists,
    find_embedding,
)
from core.embedding.topologies import Topology
from core.errors import InvalidInputError
from core.solvers.base import SeededSampler

__all__ = ["CHAIN_BREAK_METHODS", "MinorEmbeddingComposite"]

HIGH_CHAIN_BREAK_WARNING = 0.1


def _chain_break_method(name: str, seed: int | None) -> Callable[..., Any]:
    from dwave.embedding import chain_breaks

    if name == "weighted_random":
        return seeded_weighted_random(seed)
    return {"majority_vote": chain_breaks.majority_vote, "discard": chain_breaks.discard}[name]


def seeded_weighted_random(seed: int | None) -> Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]:
    """dwave.embedding's ``weighted_random`` chain-break resolution, seeded.

    Each read's broken chain takes the value of one of its qubits drawn at
    random, i.e. each value with its frequency in the chain. dwave's version
    draws from numpy's global generator, so ``seed`` did not make it
    reproducible, and draws one qubit per chain for all reads at once.
    """
    rng = np.random.default_rng(seed)

    def resolve(samples: Any, chains: Any) -> tuple[np.ndarray, np.ndarray]:
        array, labels = dimod.as_samples(samples)
        position = {v: i for i, v in enumerate(labels)}
        num_reads = array.shape[0]
        rows = np.arange(num_reads)
        columns = [np.asarray([position[v] for v in chain])[rng.integers(len(chain), size=num_reads)]
                   for chain in chains]
        unembedded = np.empty((num_reads, len(columns)), dtype=array.dtype)
        for j, picked in enumerate(columns):
            unembedded[:, j] = array[rows, picked]
        return unembedded, rows

    return resolve


CHAIN_BREAK_METHODS: tuple[str, ...] = ("majority_vote", "discard", "weighted_random")


class MinorEmbeddingComposite(SeededSampler, dimod.ComposedSampler):
    """Map problems onto a structured child sampler through a minor embedding.

    Args:
        child_sampler: a :class:`dimod.Structured` sampler (a QPU or a
            simulated QPU).
        topology: the child's hardware graph. By default taken from
            ``child_sampler.topology`` (a :class:`Topology`) if present, else
            from ``child_sampler.to_networkx_graph()``.
        embedding_method: default method, ``"auto"``, ``"clique"`` or
            ``"heuristic"``.
        chain_strength: default chain strength: None for uniform torque
            compensation, a positive number, or ``f(bqm, embedding) -> float``.
        chain_strength_prefactor: prefactor of uniform torque compensation.
        embedding_timeout: seconds allowed for the heuristic embedding.
        density_threshold: edge density from which ``"auto"`` uses clique
            embedding.
        chain_break_method: ``"majority_vote"`` (default), ``"discard"`` or
            ``"weighted_random"``.

    Example:
        >>> from core.embedding import MinorEmbeddingComposite
        >>> from core.solvers.qpu import SimulatedQPUSampler
        >>> sampler = MinorEmbeddingComposite(SimulatedQPUSampler("zephyr"))
        >>> ss = sampler.sample_ising({}, {("a", "b"): -1}, num_reads=5, seed=1)
        >>> ss.info["embedding_summary"]["topology"]
        'zephyr'
    """

    def __init__(
        self,
        child_sampler: dimod.Sampler,
        topology: Topology | None = None,
        *,
        embedding_method: str = "auto",
        chain_strength: ChainStrength | None = None,
        chain_strength_prefactor: float = DEFAULT_PREFACTOR,
        embedding_timeout: float = DEFAULT_TIMEOUT_S,
        density_threshold: float = DEFAULT_DENSITY_THRESHOLD,
        chain_break_method: str = "majority_vote",
    ) -> None:
        if not isinstance(child_sampler, dimod.Structured):
            raise InvalidInputError(
                "The embedding composite needs a structured (QPU-like) child sampler."
            )
        self._validate_method(embedding_method)
        self._validate_chain_break_method(chain_break_method)
        self._children = [child_sampler]
        if topology is None:
            topology = getattr(child_sampler, "topology", None)
            if not isinstance(topology, Topology):
                graph = child_sampler.to_networkx_graph()
                topology = Topology.from_graph(
                    graph, name=str(child_sampler.properties.get("chip_id", "qpu"))
                )
        self.topology = topology
        self.embedding_method = embedding_method
        self.chain_strength = chain_strength
        self.chain_strength_prefactor = chain_strength_prefactor
        self.embedding_timeout = embedding_timeout
        self.density_threshold = density_threshold
        self.chain_break_method = chain_break_method
        self._target_edges = list(child_sampler.edgelist)

        params = dict(child_sampler.parameters)
        params.update(
            chain_strength=[],
            chain_strength_prefactor=[],
            embedding_method=[],
            embedding_timeout=[],
            chain_break_method=[],
            seed=[],
        )
        self._parameters = params
        self._properties = {
            "child_properties": dict(child_sampler.properties),
            "topology": topology.name,
            "embedding_methods": list(EMBEDDING_METHODS),
            "chain_break_methods": list(CHAIN_BREAK_METHODS),
        }

    # dimod API -----------------------------------------------------------------

    @property
    def children(self) -> list[dimod.Sampler]:
        return self._children

    @staticmethod
    def _validate_method(method: str) -> None:
        if method not in EMBEDDING_METHODS:
            raise InvalidInputError(
                f"Unknown embedding method {method!r}; choose one of: {', '.join(EMBEDDING_METHODS)}."
            )

    @staticmethod
    def _validate_chain_break_method(method: str) -> None:
        if method not in CHAIN_BREAK_METHODS:
            raise InvalidInputError(
                f"Unknown chain-break method {method!r}; choose one of: {', '.join(CHAIN_BREAK_METHODS)}."
            )

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        *,
        chain_strength: ChainStrength | None = None,
        chain_strength_prefactor: float | None = None,
        embedding_method: str | None = None,
        embedding_timeout: float | None = None,
        chain_break_method: str | None = None,
        seed: int | None = None,
        **parameters: Any,
    ) -> dimod.SampleSet:
        """Embed ``bqm``, sample it on the child, and unembed the answers.

        Args:
            bqm: the problem (any variable labels, SPIN or BINARY).
            chain_strength: overrides the composite's default (see class docs).
            chain_strength_prefactor: overrides the uniform torque
                compensation prefactor.
            embedding_method: overrides the default embedding method.
            embedding_timeout: overrides the heuristic's time limit.
            chain_break_method: overrides how broken chains are resolved.
            seed: seeds the embedding search and, when the child accepts a
                ``seed`` (simulated QPUs), the child too.
            **parameters: passed to the child sampler (``num_reads``,
                ``annealing_time``, ...).

        Returns:
            A :class:`dimod.SampleSet` over ``bqm``'s variables with the info
            keys listed in the module documentation.
        """
        child = self.child
        method = self.embedding_method if embedding_method is None else embedding_method
        self._validate_method(method)
        cb_name = (
            self.chain_break_method
            if chain_break_method is None
            else chain_break_method
        )
        self._validate_chain_break_method(cb_name)
        override = self.chain_strength if chain_strength is None else chain_strength
        prefactor = (
            self.chain_strength_prefactor
            if chain_strength_prefactor is None
            else chain_strength_prefactor
        )
        timeout = (
            self.embedding_timeout if embedding_timeout is None else embedding_timeout
        )
        for name in parameters:
            if name not in child.parameters:
                raise InvalidInputError(
                    f"Unknown parameter {name!r} for this QPU sampler; valid parameters: "
                    f"{', '.join(sorted(self.parameters))}."
                )
        if seed is not None and "seed" in child.parameters:
            parameters["seed"] = seed

        t0 = time.perf_counter()
        if bqm.num_variables == 0:
            return self._empty(
                bqm, parameters.get("num_reads", 1), method, time.perf_counter() - t0
            )

        result = find_embedding(
            bqm,
            self.topology,
            method,
            seed=seed,
            timeout=timeout,
            density_threshold=self.density_threshold,
        )
        embedding = result.embedding
        strength = compute_chain_strength(bqm, embedding, override, prefactor=prefactor)

        from dwave.embedding import EmbeddedStructure

        structure = EmbeddedStructure(self._target_edges, embedding)
        embedded = structure.embed_bqm(
            bqm, chain_strength=strength, smear_vartype=dimod.SPIN
        )
        embed_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        response = child.sample(embedded, **parameters)
        response.resolve()

        from dwave.embedding import unembed_sampleset

        sampleset = unembed_sampleset(
            response,
            embedding,
            source_bqm=bqm,
            chain_break_method=_chain_break_method(cb_name, seed),
            chain_break_fraction=True,
        )
        sample_s = time.perf_counter() - t1

        cbf = chain_break_fraction(sampleset)
        info = sampleset.info
        for key, value in response.info.items():
            info.setdefault(key, value)
        chains = embedding_as_lists(embedding)
        backend_timing = info.pop("timing", None)
        if backend_timing is not None and not child.properties.get("simulated", False):
            info["qpu_timing"] = backend_timing  # QPU-reported, microseconds
        info["timing"] = {"embed_s": embed_s, "sample_s": sample_s}
        info["embedding"] = chains
        info["embedding_summary"] = result.summary()
        info["chain_strength"] = strength
        info["chain_break_fraction"] = cbf
        info["embedding_context"] = {
            "embedding": chains,
            "chain_break_method": cb_name,
            "chain_strength": strength,
            "embedding_parameters": {
                "method": result.method,
                "seed": seed,
                "timeout": timeout,
            },
        }
        if cbf is not None and cbf > HIGH_CHAIN_BREAK_WARNING:
            info.setdefault("warnings", []).append(
                f"{cbf:.0%} of chains broke on average; answers were repaired by "
                f"{cb_name.replace('_', ' ')}. A larger chain strength may help."
            )
        return sampleset

    def _empty(
        self,
        bqm: dimod.BinaryQuadraticModel,
        num_reads: int,
        method: str,
        embed_s: float,
    ) -> dimod.SampleSet:
        reads = max(int(num_reads), 1)
        sampleset = dimod.SampleSet.from_samples_bqm(
            (np.empty((reads, 0), dtype=np.int8), []),
            bqm,
            chain_break_fraction=np.zeros(reads),
        )
        sampleset.info.update(
            timing={"embed_s": embed_s, "sample_s": 0.0},
            embedding={},
            embedding_summary={
                "method": "empty",
                "requested_method": method,
                "topology": self.topology.name,
                "time_s": 0.0,
                "num_variables": 0,
                "qubits_used": 0,
                "qubits_available": self.topology.num_qubits,
                "max_chain_length": 0,
                "mean_chain_length": 0.0,
                "from_cache": False,
            },
            chain_strength=None,
            chain_break_fraction=0.0,
            embedding_context={
                "embedding": {},
                "chain_break_method": None,
                "chain_strength": None,
            },
        )
        return sampleset
