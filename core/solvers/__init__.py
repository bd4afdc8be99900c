"""The sampler registry: every solver is a :class:`dimod.Sampler`.

Registry names (see :func:`available_samplers` for help texts and parameters):
``exact``, ``sa`` (alias ``neal``), ``tabu``, ``steepest-descent``, ``sqa``,
``mock-qpu-pegasus``, ``mock-qpu-zephyr``, ``dwave``, ``leap-hybrid``, ``ga``,
``rl``.

Public API:

- :func:`available_samplers` -> list of :class:`SamplerInfo`
- :func:`get_sampler` ``(name, **config) -> dimod.Sampler``
- :func:`solve` ``(bqm, sampler, *, num_reads, seed, **params) -> dimod.SampleSet``
- sampler classes: :class:`ExactSampler`, :class:`SQASampler`,
  :class:`GeneticAlgorithmSampler`, :class:`ReinforceSampler`,
  ``SimulatedQPUSampler``, ``DWaveQPUSampler``, ``LeapHybridBQMSampler``
  (the last three in :mod:`core.solvers.qpu`, imported on demand because they
  pull in dwave-system), and :class:`TimingComposite`.

Heavy backends (torch, pymoo, openjij, dwave-system) are imported only when a
sampler that needs them is created.
"""

from core.solvers.base import (
    TimingComposite,
    infer_onehot_groups,
    resolve_groups,
    validate_seed,
)
from core.solvers.registry import (
    ParameterInfo,
    SamplerInfo,
    available_samplers,
    check_sample_parameters,
    check_sampler_like,
    get_sampler,
    sample_with,
    sampler_info,
    sampler_names,
    solve,
)

__all__ = [
    "ExactSampler",
    "GeneticAlgorithmSampler",
    "ParameterInfo",
    "ReinforceSampler",
    "SQASampler",
    "SamplerInfo",
    "TimingComposite",
    "available_samplers",
    "check_sample_parameters",
    "check_sampler_like",
    "get_sampler",
    "infer_onehot_groups",
    "resolve_groups",
    "sampler_info",
    "sample_with",
    "sampler_names",
    "solve",
    "validate_seed",
]

_LAZY = {
    "ExactSampler": "core.solvers.classical",
    "SQASampler": "core.solvers.sqa",
    "GeneticAlgorithmSampler": "core.solvers.ga",
    "ReinforceSampler": "core.solvers.rl",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core.solvers' has no attribute {name!r}")
