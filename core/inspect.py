"""dwave-inspector data for an embedding, from a short run on the simulated QPU.

dwave-inspector's adapters describe a problem by its logical BQM, the
physical QPU (a ``dwave.cloud`` solver), the embedding and a SampleSet. Real
QPU runs produce all four; for an embedding that has not been run yet, a few
reads on the simulated QPU (the same graph, classical annealing) give the
SampleSet, so the Embed view is drawn from the same inspector data in both
cases, chain breaks included.

Where D-Wave's own Inspector web app is installed (it is not open source:
``dwave install inspector`` adds the ``dwave._inspectorapp`` package), the
same data can be opened in it with :func:`open_in_inspector`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import dimod

from core.embedding import compute_chain_strength
from core.errors import InvalidInputError, UnavailableError

INSPECTOR_APP_MODULE = "dwave._inspectorapp"
INSPECTOR_APP_HINT = "D-Wave's Inspector app is not installed here; `dwave install inspector` adds it."


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


def inspector_app_available() -> bool:
    """Whether D-Wave's (closed-source) Inspector web app is installed."""
    try:
        return importlib.util.find_spec(INSPECTOR_APP_MODULE) is not None
    except (ImportError, ValueError):
        return False


def open_in_inspector(data: Mapping[str, Any]) -> str:
    """Open inspector problem ``data`` (from :func:`preview_inspector_data` or a
    QPU run) in D-Wave's Inspector app without blocking; returns its URL.

    The app runs a small local web server and opens the URL in this machine's
    browser (the one running the engine, which for ``make run`` is the user's).
    """
    if not inspector_app_available():
        raise UnavailableError(INSPECTOR_APP_HINT)
    if not isinstance(data, Mapping) or "details" not in data or "rel" not in data:
        raise InvalidInputError("These are not dwave-inspector problem data (no problem details or solver).")
    from dwave.inspector import open_problem, push_inspector_data

    # push_inspector_data takes the solver out of the dict it is given: give it a copy, and
    # leave out this project's own "qcl" entry, which the app does not know.
    problem_id = push_inspector_data({k: v for k, v in data.items() if k != "qcl"})
    return str(open_problem(problem_id, block="never"))
