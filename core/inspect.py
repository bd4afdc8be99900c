"""dwave-inspector data for an embedding, from a short run on the simulated QPU.

dwave-inspector's adapters describe a problem by its logical BQM, the
physical QPU (a ``dwave.cloud`` solver), the embedding and a SampleSet. Real
QPU runs produce all four; for an embedding that has not been run yet, a few
reads on the simulated QPU (the same graph, classical annealing) give the
SampleSet, so the Embed view is drawn from the same inspector data in both
cases, chain breaks included.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import dimod

from core.embedding import compute_chain_strength


@lru_cache(maxsize=3)
def _simulated_qpu(topology: str):
    """Building a mock QPU's properties takes about a second on Pegasus: do it once."""
    from core.solvers.qpu import SimulatedQPUSampler

    return SimulatedQPUSampler(topology, num_sweeps=200)


def preview_inspector_data(
    bqm: dimod.BinaryQuadraticModel,
    embedding: Mapping[Hashable, Sequence[int]],
    topology: str,
    *,
    chain_strength: float | None = None,
    num_reads: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Inspector problem data for ``embedding`` after ``num_reads`` simulated-QPU reads."""
    from dwave.system import FixedEmbeddingComposite

    from core.viz.embedding import inspector_data

    qpu = _simulated_qpu(topology)
    strength = compute_chain_strength(bqm, embedding, chain_strength)
    sampler = FixedEmbeddingComposite(qpu, embedding={v: list(c) for v, c in embedding.items()})
    sampleset = sampler.sample(bqm, num_reads=num_reads, seed=seed, chain_strength=strength,
                               return_embedding=True)
    data = inspector_data(bqm, sampleset, embedding, topology, sampler=sampler, chain_strength=strength)
    breaks = sampleset.record["chain_break_fraction"] if "chain_break_fraction" in sampleset.record.dtype.names \
        else None
    data.setdefault("qcl", {})["preview_chain_break_fraction"] = None if breaks is None else float(breaks.mean())
    return data
