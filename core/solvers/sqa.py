"""Simulated quantum annealing (path-integral Monte Carlo) with OpenJij."""

from __future__ import annotations

from typing import Any

import dimod
import numpy as np

from core.solvers.base import (
    SeededSampler,
    empty_sampleset,
    resolve_seed,
    validate_positive_float,
    validate_positive_int,
)

__all__ = ["SQASampler"]


class SQASampler(SeededSampler, dimod.Sampler):
    """OpenJij's :class:`openjij.SQASampler` as a plain dimod sampler.

    Differences from calling OpenJij directly: any hashable variable labels
    work (OpenJij's C++ core accepts only some label types, so variables are
    relabelled to integers and back), the result is a plain
    :class:`dimod.SampleSet` in the input's vartype with energies recomputed
    from the input BQM, ``seed`` is always set (drawn and recorded when not
    given), and the bulky per-read Trotter states are dropped from ``info``.

    OpenJij's ``beta`` and ``gamma`` are absolute, so the problem's Ising form
    is first scaled to a largest bias of 1 (``info["ising_scale"]`` records the
    factor); energies are always reported in the original scale.

    Args:
        beta: inverse temperature in the scaled problem. Default (None): cold
            enough to resolve the smallest nonzero bias, ``3 / min |bias|``
            clipped to [10, 1e5]; a fixed 10 leaves the small distortion
            differences of compression QUBOs at thermal noise.
        gamma: initial transverse field (default 1.0).
        num_sweeps: Monte Carlo sweeps per read (default 1000).
        trotter: Trotter slices (default 8).

    Sample parameters: ``num_reads`` (10), ``seed``, and ``beta``, ``gamma``,
    ``num_sweeps``, ``trotter`` overriding the constructor's values.
    """

    _parameters: dict[str, list[str]] = {
        "num_reads": [],
        "beta": [],
        "gamma": [],
        "num_sweeps": [],
        "trotter": [],
        "seed": [],
    }
    _properties: dict[str, Any] = {"backend": "openjij.SQASampler"}

    def __init__(
        self,
        *,
        beta: float | None = None,
        gamma: float = 1.0,
        num_sweeps: int = 1000,
        trotter: int = 8,
    ) -> None:
        self.beta = None if beta is None else validate_positive_float(beta, "beta")
        self.gamma = validate_positive_float(gamma, "gamma")
        self.num_sweeps = validate_positive_int(num_sweeps, "num_sweeps")
        self.trotter = validate_positive_int(trotter, "trotter")

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        *,
        num_reads: int = 10,
        beta: float | None = None,
        gamma: float | None = None,
        num_sweeps: int | None = None,
        trotter: int | None = None,
        seed: int | None = None,
    ) -> dimod.SampleSet:
        """Run SQA; see the class docstring for the parameters."""
        num_reads = validate_positive_int(num_reads, "num_reads")
        kwargs: dict[str, Any] = {
            "beta": None if (self.beta if beta is None else beta) is None else validate_positive_float(
                self.beta if beta is None else beta, "beta"
            ),
            "gamma": validate_positive_float(
                self.gamma if gamma is None else gamma, "gamma"
            ),
            "num_sweeps": validate_positive_int(
                self.num_sweeps if num_sweeps is None else num_sweeps, "num_sweeps"
            ),
            "trotter": validate_positive_int(
                self.trotter if trotter is None else trotter, "trotter"
            ),
        }
        seed = resolve_seed(seed)
        if bqm.num_variables == 0:
            return empty_sampleset(bqm, num_reads, seed=seed)

        import openjij

        labels = list(bqm.variables)
        int_bqm = dimod.BinaryQuadraticModel(bqm.vartype)
        int_bqm.add_variables_from((i, bqm.get_linear(v)) for i, v in enumerate(labels))
        index = {v: i for i, v in enumerate(labels)}
        int_bqm.add_interactions_from(
            (index[u], index[v], b) for (u, v), b in bqm.quadratic.items()
        )
        int_bqm.offset = bqm.offset

        # OpenJij's beta/gamma are absolute: normalise the Ising form to a max |bias| of 1
        h, J, _ = int_bqm.to_ising()
        scale = max((abs(b) for b in (*h.values(), *J.values())), default=0.0) or 1.0
        int_bqm.scale(1.0 / scale)
        if kwargs["beta"] is None:
            nonzero = [abs(b) / scale for b in (*h.values(), *J.values()) if abs(b) > 1e-12 * scale]
            kwargs["beta"] = float(np.clip(3.0 / min(nonzero, default=1.0), 10.0, 1e5))
        # OpenJij reuses one seed for every read of a call (identical reads), so
        # run one read per call, each with its own seed derived from ``seed``.
        read_seeds = np.random.default_rng(seed).integers(0, 2**31, size=num_reads)
        sampler = openjij.SQASampler()
        rows: list[np.ndarray] = []
        order: list[Any] = []
        for read_seed in read_seeds:
            response = sampler.sample(
                int_bqm, num_reads=1, seed=int(read_seed), **kwargs
            )
            order = [labels[int(i)] for i in response.variables]
            rows.append(np.asarray(response.record.sample)[0])
        samples = np.array(rows)
        if response.vartype is not bqm.vartype:
            samples = (
                (samples + 1) // 2 if bqm.vartype is dimod.BINARY else 2 * samples - 1
            )
        sampleset = dimod.SampleSet.from_samples_bqm(
            (samples.astype(np.int8), order), bqm
        )
        sampleset.info.update(
            seed=seed,
            ising_scale=scale,
            trotter=kwargs["trotter"],
            schedule={k: kwargs[k] for k in ("beta", "gamma", "num_sweeps")},
        )
        return sampleset
