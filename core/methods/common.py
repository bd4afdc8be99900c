"""What the multi-QUBO methods share: a registry sampler as a plain callable
that records timing, and the DESIGN section 5 report skeleton.

A method like adaround or filter pruning solves many independent QUBOs (one
per output channel, one per layer), so the report's single-QUBO fields are
aggregates: ``qubo`` holds totals plus ``num_subproblems``, ``energies[]`` one
value per subproblem (``energies_note`` says which), and ``bqm_subproblem``
names the representative subproblem written by ``--bqm``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import dimod
import numpy as np

from core.errors import InvalidInputError
from core.jsonable import to_jsonable

Progress = Callable[[float, str], None]


class RegistrySampler:
    """``fn(bqm, *, num_reads, seed, **params) -> SampleSet`` over
    :func:`core.solvers.solve` with a named registry sampler (what the engines
    accept as a sampler), summing the embed/sample times it reports.

    The sampler is built once and answers every call (for a Leap sampler: one
    client for the whole run, not one per batch or capacity-search step);
    :meth:`close` releases it, or use the object as a context manager.

    ``dense=True`` says the problems are fully connected (or batches of such):
    a QPU-like sampler then clique-embeds them, unless ``params`` choose an
    embedding method, and :attr:`max_dense_variables` says how large they may be."""

    def __init__(self, name: str, *, config: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, dense: bool = False) -> None:
        from core.solvers import check_sample_parameters, sampler_info

        info = sampler_info(name)
        if not info.is_available:
            raise InvalidInputError(f"The sampler {name!r} is unavailable here: {info.reason_unavailable}")
        self.name = info.name
        self.config = dict(config or {})
        self.params = dict(params or {})
        check_sample_parameters(self.name, self.params)  # a bad value is refused before any layer is solved
        if dense and self.max_dense_variables is not None:
            self.params.setdefault("embedding_method", "clique")
        self.calls = 0
        self.embed_s = 0.0
        self.sample_s = 0.0
        self._embedded: list[tuple[float, float, int, dict[str, Any]]] = []  # per call on a QPU-like sampler

    @functools.cached_property
    def _built(self) -> dimod.Sampler:
        """The sampler, built on first use and kept until :meth:`close`."""
        from core.solvers import get_sampler

        return get_sampler(self.name, **self.config)

    @functools.cached_property
    def max_dense_variables(self) -> int | None:
        """Largest fully connected problem one call can take: the clique capacity
        of a QPU-like sampler's qubit graph; None for samplers without a graph."""
        from core.embedding import max_clique_size
        from core.solvers.qpu import qpu_topology

        topology = qpu_topology(self._built)
        return None if topology is None else max_clique_size(topology)

    @functools.cached_property
    def parameters(self) -> dict[str, Any]:
        """The registry sampler's sample parameters, as :attr:`dimod.Sampler.parameters`."""
        return dict(self._built.parameters)

    def __call__(self, bqm: dimod.BinaryQuadraticModel, *, num_reads: int = 1, seed: int | None = None,
                 **params: Any) -> dimod.SampleSet:
        from core.solvers import check_sample_parameters, solve

        check_sample_parameters(self.name, params)
        ss = solve(bqm, self._built, num_reads=num_reads, seed=seed, **{**self.params, **params})
        ss.info["sampler"] = self.name
        timing = ss.info.get("timing", {})
        self.calls += 1
        self.embed_s += float(timing.get("embed_s", 0.0) or 0.0)
        self.sample_s += float(timing.get("sample_s", 0.0) or 0.0)
        if "embedding_summary" in ss.info and bqm.num_variables:  # an empty problem embeds nothing
            chains = bqm.num_variables * int(ss.record.num_occurrences.sum())
            self._embedded.append((float(ss.info.get("chain_strength") or 0.0),
                                   float(ss.info.get("chain_break_fraction") or 0.0), chains,
                                   dict(ss.info["embedding_summary"])))
        return ss

    def close(self) -> None:
        """Release the sampler's connection, if it has one (a Leap client); a later call builds it again."""
        built = self.__dict__.pop("_built", None)
        if built is not None:
            from core.solvers.registry import release

            release(built)

    def __enter__(self) -> RegistrySampler:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def embedding_report(self) -> dict[str, Any]:
        """The report's ``chain_strength``, ``chain_break_fraction`` and ``embedding_summary`` over every call
        (each call embeds one problem or batch): the mean chain strength, the fraction of all chains of all
        reads that broke, and per-call extremes; ``{}`` when nothing was embedded."""
        if not self._embedded:
            return {}
        strengths = [e[0] for e in self._embedded]
        chains = sum(e[2] for e in self._embedded)
        summaries = [e[3] for e in self._embedded]
        lengths = [s.get("max_chain_length") for s in summaries if s.get("max_chain_length") is not None]
        qubits = [s.get("qubits_used") for s in summaries if s.get("qubits_used") is not None]
        return {
            "chain_strength": float(np.mean(strengths)),
            "chain_break_fraction": sum(e[1] * e[2] for e in self._embedded) / chains if chains else 0.0,
            "embedding_summary": {
                "embeddings": len(summaries),
                "method": sorted({str(s.get("method")) for s in summaries}),
                "topology": summaries[0].get("topology"),
                "chain_strength_range": [min(strengths), max(strengths)],
                "max_chain_length": max(lengths) if lengths else None,
                "max_qubits_used": max(qubits) if qubits else None,
                "time_s": float(sum(float(s.get("time_s") or 0.0) for s in summaries)),
                "note": "one embedding per sampler call (a batch of channels or one capacity-search step)",
            },
        }


def check_reads(num_reads: Any) -> int:
    if isinstance(num_reads, bool) or not isinstance(num_reads, int) or num_reads < 1:
        raise InvalidInputError("--reads must be at least 1.")
    return num_reads


def ratio(before: float, after: float) -> float:
    return before / after if after else math.inf


def skeleton(ws: Any, *, method: str, sampler: str, seed: int, num_reads: int, params: Mapping[str, Any],
             qubo: Mapping[str, Any], energies: list[float], energies_note: str, best: Mapping[str, Any],
             exact: Mapping[str, Any] | None, metrics: Mapping[str, Any], timing: Mapping[str, float],
             **extra: Any) -> dict[str, Any]:
    """The DESIGN section 5 top-level fields, in the mixed-precision order."""
    report = {
        "model": ws.model_name,
        "data": ws.data.name,
        "method": method,
        "sampler": sampler,
        "seed": seed,
        "num_reads": num_reads,
        "params": dict(params),
        "qubo": dict(qubo),
        "energies": list(energies),
        "energies_note": energies_note,
        "feasible_fraction": None,
        "best": dict(best),
        "exact": None if exact is None else dict(exact),
        "metrics": dict(metrics),
        "timing": dict(timing),
        **extra,
    }
    return to_jsonable(report)
