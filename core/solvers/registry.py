"""The sampler registry: what exists, what it needs, and how to get one.

>>> from core.solvers import available_samplers, get_sampler, solve
>>> [info.name for info in available_samplers()][:3]
['exact', 'sa', 'tabu']
>>> import dimod
>>> bqm = dimod.BQM({"a": -1, "b": 1}, {("a", "b"): -2}, 0, "BINARY")
>>> float(solve(bqm, "sa", num_reads=10, seed=1).first.energy)
-2.0

Every sampler :func:`get_sampler` returns is wrapped in
:class:`~core.solvers.base.TimingComposite`, so its SampleSets carry
``info["timing"] = {"embed_s", "sample_s", "total_s"}``; QPU-like samplers
(``mock-qpu-*``, ``dwave``) also carry ``info["embedding"]``,
``info["chain_strength"]`` and ``info["chain_break_fraction"]`` (see
:class:`~core.embedding.MinorEmbeddingComposite`).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dimod

from core.errors import InvalidInputError, UnavailableError
from core.solvers.base import (
    ProgressCallback,
    TimingComposite,
    beta_range,
    draw_seed,
    non_negative,
    one_of,
    positive,
    probability,
    validate_positive_int,
    validate_seed,
    whole_number,
)

__all__ = [
    "ParameterInfo",
    "SamplerInfo",
    "available_samplers",
    "check_sample_parameters",
    "check_sampler_like",
    "get_sampler",
    "sampler_info",
    "sample_with",
    "sampler_names",
    "solve",
]


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter: its name, default and a one-line help text.

    ``check(value)`` returns what is wrong with a value, in plain words, or
    None when it is fine (None, the "use the default" value, is never checked).
    """

    name: str
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = field(default=None, compare=False, repr=False)


def _chain_strength(value: Any) -> str | None:
    # a number, or a function of the problem and the embedding (dwave.embedding.chain_strength style)
    return None if callable(value) else positive(value)


@dataclass(frozen=True)
class SamplerInfo:
    """What the registry knows about a sampler.

    Attributes:
        name: registry name (pass to :func:`get_sampler` / :func:`solve`).
        description: help text for users.
        category: ``"exact"``, ``"classical"``, ``"quantum-inspired"``,
            ``"simulated-qpu"``, ``"qpu"``, ``"hybrid"`` or ``"baseline"``.
        is_available: whether it can be created here (packages installed,
            token present; network reachability is checked only on creation).
        reason_unavailable: why not, in plain words (None when available).
        parameters: sample-time parameters (``solve(..., **params)``).
        config: construction options (``get_sampler(name, **config)``).
        aliases: other accepted names.
        needs_token: whether a D-Wave Leap token is required.
    """

    name: str
    description: str
    category: str
    is_available: bool
    reason_unavailable: str | None
    parameters: tuple[ParameterInfo, ...]
    config: tuple[ParameterInfo, ...] = ()
    aliases: tuple[str, ...] = ()
    needs_token: bool = False


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    category: str
    factory: Callable[..., dimod.Sampler]
    parameters: tuple[ParameterInfo, ...]
    config: tuple[ParameterInfo, ...] = ()
    aliases: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    needs_token: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


P = ParameterInfo

_NUM_READS = P("num_reads", None, "Number of samples (reads) to return.")
_SEED = P(
    "seed",
    None,
    "Random seed; the same seed gives the same result. Drawn and recorded if not set.",
)
_QPU_SAMPLE_PARAMS = (
    _NUM_READS,
    _SEED,
    P(
        "chain_strength",
        None,
        "Coupling that binds each chain; default: uniform torque compensation.",
        _chain_strength,
    ),
    P("chain_strength_prefactor", 1.414, "Prefactor of uniform torque compensation.", positive),
    P(
        "embedding_method",
        "auto",
        "'auto' (clique if dense, else heuristic), 'clique' or 'heuristic'.",
        one_of("auto", "clique", "heuristic"),
    ),
    P("embedding_timeout", 60.0, "Seconds allowed for the heuristic embedding search.", positive),
    P(
        "chain_break_method",
        "majority_vote",
        "How broken chains are resolved: majority_vote, discard, weighted_random.",
        one_of("majority_vote", "discard", "weighted_random"),
    ),
)
_QPU_CONFIG = (
    P("embedding_method", "auto", "Default embedding method."),
    P(
        "chain_strength",
        None,
        "Default chain strength (None: uniform torque compensation).",
    ),
    P("chain_strength_prefactor", 1.414, "Uniform torque compensation prefactor."),
    P("embedding_timeout", 60.0, "Seconds allowed for the heuristic embedding search."),
    P(
        "density_threshold",
        0.3,
        "Edge density from which 'auto' uses clique embedding.",
    ),
)
_CLOUD_CONFIG = (
    P(
        "token",
        None,
        "D-Wave Leap API token; default: the DWAVE_API_TOKEN environment variable. Never shown or stored.",
    ),
    P("solver", None, "Solver name or feature filter; default: Leap's choice."),
    P(
        "request_timeout",
        10.0,
        "Seconds to wait for each request to Leap (no retries).",
    ),
)
_GROUPS = P(
    "groups",
    None,
    "One-hot groups: a list of lists of variables, 'auto' for (unit, option) tuple labels, or None.",
)

_SQA_OPTIONS = (
    P(
        "beta",
        None,
        "Inverse temperature (problem scaled to a largest Ising bias of 1); default: cold enough "
        "to resolve the smallest bias (3 / smallest |bias|, between 10 and 1e5).",
        positive,
    ),
    P("gamma", 1.0, "Initial transverse field.", positive),
    P("num_sweeps", 1000, "Monte Carlo sweeps per read.", whole_number(1)),
    P("trotter", 8, "Trotter slices (at least 2).", whole_number(2)),
)
_GA_OPTIONS = (
    P("pop_size", 100, "Population size.", whole_number(2)),
    P("num_generations", 200, "Generations.", whole_number(1)),
    P("crossover", "two-point", "'two-point' or 'uniform'.", one_of("two-point", "uniform")),
    P("mutation_rate", None, "Per-bit flip probability (default 1/n).", probability),
)
_RL_OPTIONS = (
    P("batch_size", 64, "States drawn per policy update.", whole_number(1)),
    P("num_iterations", 300, "Policy updates.", whole_number(1)),
    P("learning_rate", 0.1, "Adam step size.", positive),
    P("entropy_coef", 0.01, "Entropy bonus weight (exploration).", non_negative),
)


# --------------------------------------------------------------------------- factories


def _exact(max_variables: int = 20) -> dimod.Sampler:
    from core.solvers.classical import ExactSampler

    return ExactSampler(max_variables=max_variables)


def _sa() -> dimod.Sampler:
    from dwave.samplers import SimulatedAnnealingSampler

    return SimulatedAnnealingSampler()


def _tabu() -> dimod.Sampler:
    from dwave.samplers import TabuSampler

    return TabuSampler()


def _steepest_descent() -> dimod.Sampler:
    from dwave.samplers import SteepestDescentSampler

    return SteepestDescentSampler()


def _sqa(**config: Any) -> dimod.Sampler:
    from core.solvers.sqa import SQASampler

    return SQASampler(**config)


def _ga(**config: Any) -> dimod.Sampler:
    from core.solvers.ga import GeneticAlgorithmSampler

    return GeneticAlgorithmSampler(**config)


def _rl(**config: Any) -> dimod.Sampler:
    from core.solvers.rl import ReinforceSampler

    return ReinforceSampler(**config)


@functools.lru_cache(maxsize=8)
def _simulated_qpu(topology: str, num_sweeps: int) -> dimod.Sampler:
    """Simulated QPUs are stateless once built; share one per topology."""
    from core.solvers.qpu import SimulatedQPUSampler

    return SimulatedQPUSampler(topology, num_sweeps=num_sweeps)


def _embedding_composite(child: dimod.Sampler, **config: Any) -> dimod.Sampler:
    from core.embedding.composite import MinorEmbeddingComposite

    return MinorEmbeddingComposite(child, **config)


def _mock_qpu(topology: str) -> Callable[..., dimod.Sampler]:
    def factory(num_sweeps: int = 1000, **config: Any) -> dimod.Sampler:
        return _embedding_composite(
            _simulated_qpu(topology, validate_positive_int(num_sweeps, "num_sweeps")),
            **config,
        )

    return factory


def _dwave(
    token: str | None = None,
    solver: str | dict[str, Any] | None = None,
    request_timeout: float = 10.0,
    **config: Any,
) -> dimod.Sampler:
    from core.solvers.qpu import DWaveQPUSampler

    return _embedding_composite(
        DWaveQPUSampler(token, solver=solver, request_timeout=request_timeout), **config
    )


def _leap_hybrid(
    token: str | None = None,
    solver: str | dict[str, Any] | None = None,
    request_timeout: float = 10.0,
) -> dimod.Sampler:
    from core.solvers.qpu import LeapHybridBQMSampler

    return LeapHybridBQMSampler(token, solver=solver, request_timeout=request_timeout)


_MOCK_DESCRIPTION = (
    "Simulated {label} QPU: the problem is minor-embedded exactly as for real "
    "hardware (clique or heuristic embedding, chains, chain strength) and the "
    "physical problem is solved by simulated annealing. It reproduces embedding "
    "and chain breaks, not quantum physics, noise or QPU timing. No token needed."
)


def _mock_qpu_spec(topology: str, label: str, aliases: tuple[str, ...] = ()) -> _Spec:
    """The registry entry of a simulated QPU (they differ only in the topology)."""
    return _Spec(
        f"mock-qpu-{topology}",
        _MOCK_DESCRIPTION.format(label=label),
        "simulated-qpu",
        _mock_qpu(topology),
        (
            *_QPU_SAMPLE_PARAMS,
            P("num_sweeps", 1000, "Annealing sweeps per read on the physical problem.", whole_number(1)),
        ),
        (P("num_sweeps", 1000, "Default annealing sweeps per read."), *_QPU_CONFIG),
        aliases=aliases,
        requires=("dwave.system", "minorminer"),
    )


_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "exact",
        "Exact enumeration of all 2^n states (dimod ExactSolver); up to 20 variables. "
        "The reference answer for small problems.",
        "exact",
        _exact,
        (
            P(
                "num_reads",
                None,
                "Keep only this many lowest-energy states (default: all).",
            ),
            _SEED,
        ),
        (P("max_variables", 20, "Largest problem accepted (at most 25)."),),
        requires=("dimod",),
    ),
    _Spec(
        "sa",
        "Simulated annealing (dwave-samplers): fast, strong classical default for QUBOs.",
        "classical",
        _sa,
        (
            _NUM_READS,
            _SEED,
            P(
                "num_sweeps",
                1000,
                "Sweeps per read (longer anneals find lower energies).",
                whole_number(1),
            ),
            P(
                "beta_range",
                None,
                "(hot, cold) inverse temperatures; default: set from the biases.",
                beta_range,
            ),
            P("beta_schedule_type", "geometric", "'linear', 'geometric' or 'custom' (with beta_schedule).",
              one_of("linear", "geometric", "custom")),
        ),
        aliases=("neal", "simulated-annealing"),
        requires=("dwave.samplers",),
    ),
    _Spec(
        "tabu",
        "Tabu search (dwave-samplers, multistart MST2). Reproducible with a seed unless "
        "stopped by its time limit on hard problems.",
        "classical",
        _tabu,
        (
            _NUM_READS,
            _SEED,
            P("timeout", 100, "Milliseconds per read.", positive),
            P("tenure", None, "Tabu tenure; default: min(20, n/4).", whole_number(0)),
            P("num_restarts", 1_000_000, "Restarts per read.", whole_number(1)),
        ),
        requires=("dwave.samplers",),
    ),
    _Spec(
        "steepest-descent",
        "Steepest descent from random states (dwave-samplers): a greedy local-search floor.",
        "classical",
        _steepest_descent,
        (_NUM_READS, _SEED),
        aliases=("greedy",),
        requires=("dwave.samplers",),
    ),
    _Spec(
        "sqa",
        "Simulated quantum annealing (OpenJij, path-integral Monte Carlo with Trotter slices): "
        "a classical simulation of a transverse-field quantum anneal.",
        "quantum-inspired",
        _sqa,
        (_NUM_READS, _SEED, *_SQA_OPTIONS),
        _SQA_OPTIONS,
        requires=("openjij",),
    ),
    _mock_qpu_spec(
        "pegasus", "Advantage-like Pegasus P16 (5,640-qubit)", aliases=("mock-qpu",)
    ),
    _mock_qpu_spec("zephyr", "Advantage2-like Zephyr Z12 (4,800-qubit)"),
    _Spec(
        "dwave",
        "A real D-Wave quantum annealer through Leap, with the same embedding layer as the "
        "simulated QPUs. Needs a Leap API token and network access; uses QPU time.",
        "qpu",
        _dwave,
        (
            *_QPU_SAMPLE_PARAMS,
            P(
                "annealing_time",
                None,
                "Anneal duration in microseconds (QPU default 20).",
                positive,
            ),
        ),
        (*_CLOUD_CONFIG, *_QPU_CONFIG),
        aliases=("qpu", "dwave-qpu"),
        requires=("dwave.system", "minorminer"),
        needs_token=True,
    ),
    _Spec(
        "leap-hybrid",
        "Leap's hybrid BQM solver (classical + quantum, in the cloud): no embedding, takes "
        "problems far larger than a QPU. Needs a Leap API token and network access.",
        "hybrid",
        _leap_hybrid,
        (
            P(
                "time_limit",
                None,
                "Run time in seconds (at least the solver's minimum for the problem size).",
                positive,
            ),
        ),
        _CLOUD_CONFIG,
        aliases=("hybrid",),
        requires=("dwave.system",),
        needs_token=True,
    ),
    _Spec(
        "ga",
        "Genetic algorithm (pymoo): tournament selection, crossover, bit-flip mutation, "
        "optional one-hot repair. The source paper's classical baseline; returns the best "
        "distinct individuals of the final population.",
        "baseline",
        _ga,
        (
            P("num_reads", 10, "Number of distinct best individuals returned."),
            _SEED,
            *_GA_OPTIONS,
            _GROUPS,
        ),
        _GA_OPTIONS,
        aliases=("genetic",),
        requires=("pymoo",),
    ),
    _Spec(
        "rl",
        "Reinforcement learning (REINFORCE policy gradient in torch): a policy over "
        "variables, or over one option per unit with one-hot groups. The source paper's "
        "other baseline; returns the best distinct states seen during training.",
        "baseline",
        _rl,
        (
            P("num_reads", 10, "Number of distinct best states returned."),
            _SEED,
            *_RL_OPTIONS,
            _GROUPS,
        ),
        _RL_OPTIONS,
        aliases=("reinforce",),
        requires=("torch",),
    ),
)

_BY_NAME: dict[str, _Spec] = {spec.name: spec for spec in _SPECS}
_ALIASES: dict[str, str] = {
    alias: spec.name for spec in _SPECS for alias in spec.aliases
}


def _normalize(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(
            f"A sampler name must be text, got {type(name).__name__}."
        )
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    if key not in _BY_NAME:
        raise InvalidInputError(
            f"Unknown sampler {name!r}. Available: {', '.join(_BY_NAME)}."
        )
    return key


def _missing_module(modules: tuple[str, ...]) -> str | None:
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return module
    return None


def _availability(spec: _Spec, token: str | None) -> tuple[bool, str | None]:
    missing = _missing_module(spec.requires)
    if missing is not None:
        return False, f"The Python package providing {missing!r} is not installed."
    if spec.needs_token:
        from core.solvers.qpu import has_token

        if not has_token(token):
            return False, "Needs a D-Wave Leap API token (set DWAVE_API_TOKEN)."
    return True, None


def _info(spec: _Spec, token: str | None) -> SamplerInfo:
    ok, reason = _availability(spec, token)
    return SamplerInfo(
        name=spec.name,
        description=spec.description,
        category=spec.category,
        is_available=ok,
        reason_unavailable=reason,
        parameters=spec.parameters,
        config=spec.config,
        aliases=spec.aliases,
        needs_token=spec.needs_token,
    )


def sampler_names() -> list[str]:
    """Registry names, in display order."""
    return list(_BY_NAME)


def available_samplers(token: str | None = None) -> list[SamplerInfo]:
    """Every registered sampler with its availability here.

    Args:
        token: a Leap token to consider in addition to ``$DWAVE_API_TOKEN``
            (only its presence is checked; nothing connects).
    """
    return [_info(spec, token) for spec in _SPECS]


def sampler_info(name: str, token: str | None = None) -> SamplerInfo:
    """The :class:`SamplerInfo` of one sampler (aliases accepted)."""
    return _info(_BY_NAME[_normalize(name)], token)


def get_sampler(name: str, **config: Any) -> dimod.Sampler:
    """Create a sampler by registry name.

    Args:
        name: a registry name or alias (``"neal"`` is ``"sa"``).
        **config: construction options listed in ``SamplerInfo.config``
            (e.g. ``token`` for ``dwave``, ``embedding_method`` for the
            simulated QPUs).

    Returns:
        A :class:`dimod.Sampler` wrapped in
        :class:`~core.solvers.base.TimingComposite`.

    Raises:
        InvalidInputError: unknown name or option.
        UnavailableError: missing package or token, unreachable service.
    """
    spec = _BY_NAME[_normalize(name)]
    allowed = {p.name for p in spec.config}
    unknown = sorted(set(config) - allowed)
    if unknown:
        valid = ", ".join(sorted(allowed)) or "none"
        raise InvalidInputError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for sampler {spec.name!r}; valid options: {valid}."
        )
    missing = _missing_module(spec.requires)
    if missing is not None:
        raise UnavailableError(
            f"The {spec.name!r} sampler is unavailable: the Python package providing {missing!r} is not installed."
        )
    return TimingComposite(spec.factory(**config))


def check_sample_parameters(name: str, params: Mapping[str, Any]) -> None:
    """Refuse, in plain words, a value the registry sampler ``name`` cannot take (before any work starts)."""
    spec = _BY_NAME[_normalize(name)]
    for info in spec.parameters:
        value = params.get(info.name)
        if value is None or info.check is None:
            continue
        problem = info.check(value)
        if problem is not None:
            raise InvalidInputError(f"{spec.name}'s {info.name} {problem}; got {value!r}.")
    if params.get("beta_schedule_type") == "custom" and params.get("beta_schedule") is None:
        raise InvalidInputError(f"{spec.name}'s beta_schedule_type 'custom' needs beta_schedule (the inverse "
                                "temperatures, one per sweep block), which can be passed from Python only.")


def solve(
    bqm: dimod.BinaryQuadraticModel,
    sampler: str | dimod.Sampler = "sa",
    *,
    num_reads: int = 100,
    seed: int | None = None,
    config: Mapping[str, Any] | None = None,
    progress_callback: ProgressCallback | None = None,
    aggregate: bool = True,
    **params: Any,
) -> dimod.SampleSet:
    """Sample a BQM with a named (or given) sampler and tidy the result.

    Args:
        bqm: the problem.
        sampler: registry name, or any :class:`dimod.Sampler`.
        num_reads: reads requested (passed when the sampler takes
            ``num_reads``; ``ga``/``rl`` return at most this many distinct
            states; ``leap-hybrid`` ignores it).
        seed: random seed (drawn when None); recorded in ``info["seed"]``.
            Ignored by samplers without a seed (QPU, hybrid, exact).
        config: construction options for :func:`get_sampler` (name only).
        progress_callback: ``f(done, total)``, passed to samplers that report
            progress (``ga``, ``rl``).
        aggregate: merge identical samples (``num_occurrences`` counts them).
        **params: sample-time parameters of the sampler (see
            ``SamplerInfo.parameters``).

    Returns:
        A :class:`dimod.SampleSet` sorted by energy (lowest first), with
        ``info["timing"]``, ``info["sampler"]`` and ``info["seed"]`` (plus the
        embedding keys for QPU-like samplers).
    """
    if not isinstance(bqm, dimod.BinaryQuadraticModel):
        raise InvalidInputError("solve() needs a dimod.BinaryQuadraticModel.")
    num_reads = validate_positive_int(num_reads, "num_reads")
    seed = validate_seed(seed)
    owned_cloud_client = False
    if isinstance(sampler, str):
        name = _normalize(sampler)
        check_sample_parameters(name, params)
        owned_cloud_client = _BY_NAME[name].needs_token
        instance = get_sampler(name, **dict(config or {}))
    elif isinstance(sampler, dimod.Sampler):
        if config:
            raise InvalidInputError(
                "config is only used with a sampler name; configure the sampler object instead."
            )
        name = type(_innermost(sampler)).__name__  # the sampler's own name in messages, not a wrapper's
        instance = (
            sampler
            if isinstance(sampler, TimingComposite)
            else TimingComposite(sampler)
        )
    else:
        raise InvalidInputError("sampler must be a registry name or a dimod.Sampler.")

    accepted = instance.parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidInputError(
            f"Unknown parameter(s) {', '.join(map(repr, unknown))} for sampler {name!r}; "
            f"valid parameters: {', '.join(sorted(accepted))}."
        )
    kwargs = dict(params)
    if "num_reads" in accepted:
        kwargs.setdefault("num_reads", num_reads)
    used_seed: int | None = None
    if "seed" in accepted:
        used_seed = seed if seed is not None else draw_seed()
        kwargs["seed"] = used_seed
    if progress_callback is not None and "progress_callback" in accepted:
        kwargs["progress_callback"] = progress_callback

    try:
        sampleset = instance.sample(bqm, **kwargs)
        sampleset.resolve()
    finally:
        if owned_cloud_client:  # release the Leap connection we opened
            release(instance)

    if aggregate:
        sampleset = sampleset.aggregate()
    sampleset = sampleset.truncate(len(sampleset))  # sorted by energy, info kept
    info = sampleset.info
    info["sampler"] = name
    info.setdefault("seed", used_seed)
    return sampleset


#: what the engines accept as a sampler: a registry name, a dimod sampler, or a
#: function ``fn(bqm, *, num_reads, seed, **params) -> SampleSet`` (e.g.
#: :class:`core.methods.common.RegistrySampler`)
SamplerLike = str | dimod.Sampler | Callable[..., dimod.SampleSet]


def check_sampler_like(sampler: Any) -> SamplerLike:
    if not (isinstance(sampler, (str, dimod.Sampler)) or callable(sampler)):
        raise InvalidInputError(
            "sampler must be a registry name, a dimod sampler or a function (bqm, ...) -> SampleSet."
        )
    return sampler


def sample_with(
    sampler: SamplerLike, bqm: dimod.BinaryQuadraticModel, *, num_reads: int, seed: int, **params: Any
) -> dimod.SampleSet:
    """Sample ``bqm`` with anything :func:`check_sampler_like` accepts: names and
    dimod samplers through :func:`solve`, functions called as they are."""
    if isinstance(sampler, (str, dimod.Sampler)):
        return solve(bqm, sampler, num_reads=num_reads, seed=seed, **params)
    return sampler(bqm, num_reads=num_reads, seed=seed, **params)


def release(sampler: dimod.Sampler) -> None:
    """Close the connection held by the innermost child of ``sampler``, if it has one (a Leap client)."""
    close = getattr(_innermost(sampler), "close", None)
    if callable(close):
        close()


def _innermost(sampler: dimod.Sampler) -> dimod.Sampler:
    while isinstance(sampler, dimod.Composite):
        sampler = sampler.child
    return sampler
