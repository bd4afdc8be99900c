"""F1 - mixed-precision pruning-quantization allocation as a QUBO.

After "Is Quantum Optimization Ready? An Effort Towards Neural Network
Compression using Adiabatic Quantum Computing" (2025); DESIGN section 3, F1.

Variables and labels
--------------------
One binary variable per (unit, option), labelled ``"<unit>@<option>"``:
``"conv1@prune"``, ``"conv1@4"``, ``"layer1.0.conv1@keep"``,
``"conv2[g1/4]@2"`` (fine-grained). Units that are not safe to prune have no
``@prune`` variable. ``formulation.params["onehot_groups"]`` lists each unit's
variables (one list per unit, in unit order); ``params["variables"]`` maps a
label to ``(unit, option)``. In slack budget mode the slack variables are
``"slack_budget_<j>"`` and belong to no group.

Energy (exactly DESIGN F1)
--------------------------
E(x) = sum d[u,k] x[u,k]                                  distortion
     + sum J[(u,k),(v,l)] x[u,k] x[v,l]                   neighbour terms (optional)
     + lambda_bits * sum c[u,k] x[u,k] / C                C = 32 * (params of all units)
     + lambda_sparsity * sum kept[u,k] x[u,k] / N          N = params of all units
     + A * sum_u (1 - sum_k x[u,k])^2                     one-hot
[+ slack budget penalty, see below]

On a one-hot state the penalty vanishes, so the energy of a feasible sample is
the objective itself; ``tables["units"][i]["options"][j]["energy"]`` is the
linear part h[u,k] = d + lambda_bits c/C + lambda_sparsity kept/N.

Budget (target ``budget_bits``: the whole model's size, units plus the fp32
parameters outside them; or ``budget_ratio`` of the uncompressed size):

* ``"capacity"`` (default): no constraint in the QUBO; lambda_bits is raised
  from the given value by doubling, then bisection, until the decoded optimum
  (exact chain DP, or the given sampler if the terms are not a chain) meets the
  budget. The QUBO stays as sparse as without a budget. The size of the exact
  optimum is non-increasing in lambda_bits, so the search is well defined; the
  result is the cheapest-in-lambda point of the Lagrangian relaxation, which
  may leave part of the budget unused.
* ``"slack"``: ``bqm.add_linear_inequality_constraint`` adds
  lambda_c (sum c'[u,k] x[u,k] + slack - B')^2 with integer costs
  c' = ceil(c / q) and B' = floor((budget - fixed) / q), q chosen so the total
  cost is about ``slack_resolution`` units (rounding is conservative: meeting
  B' implies meeting the budget in bits). lambda_c exceeds the objective's
  range over one-hot states, so no budget-violating state can beat the best
  feasible one. Dense: every pair of variables interacts. Because of the
  rounding, a decision can fit the budget in bits yet not in units.

Both encodings approximate the budget problem: the objective at the lambdas
given, subject to the size in exact bits. The parameter
``onehot_model_in_bits`` is that problem; its optimum (by MILP, see
:func:`core.formulations.exact.exact_reference`) and a decision's value on it
(``details["objective_in_bits"]``) show what an encoding gives away.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
from torch import nn

from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.formulations.base import Decision, Formulation
from core.formulations.exact import OneHotModel, solve_chain_dp, solve_milp
from core.models.units import count_parameters
from core.sensitivity.measure import Progress, Sensitivity, measure_sensitivity
from core.sensitivity.options import (
    FP32_BITS,
    Option,
    option_from_label,
    option_label,
    parse_options,
)

BUDGET_ENCODINGS = ("capacity", "slack")
ENCODINGS = ("onehot", "paper")
SamplerLike = dimod.Sampler | Callable[[dimod.BinaryQuadraticModel], dimod.SampleSet]

__all__ = [
    "BUDGET_ENCODINGS",
    "ENCODINGS",
    "MixedPrecisionProblem",
    "build_mixed_precision",
    "formulate_mixed_precision",
    "onehot_strength",
    "problem_from_sensitivity",
    "random_problem",
    "slack_budget",
    "variable_label",
]


def variable_label(unit: str, option: Option) -> str:
    """``"conv1@4"``: the BQM variable for choosing ``option`` for ``unit``."""
    return f"{unit}@{option_label(option)}"


@dataclass
class MixedPrecisionProblem:
    """The inputs of F1, model-free: everything the QUBO is built from.

    ``options[u]`` are unit u's option labels; ``distortion``, ``cost_bits``
    and ``kept_params`` are aligned with them. ``pairwise`` maps
    ``(unit_u, option_k, unit_v, option_l)`` (labels) to J. ``fixed_bits`` is
    the storage of everything outside the units (fp32).
    """

    units: list[str]
    params: list[int]
    options: list[list[str]]
    distortion: list[list[float]]
    cost_bits: list[list[int]]
    kept_params: list[list[int]]
    pairwise: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    fixed_bits: int = 0

    @property
    def unit_bits(self) -> int:
        """C: the units' uncompressed (fp32) size."""
        return FP32_BITS * sum(self.params)

    @property
    def total_params(self) -> int:
        """N: parameters in the units."""
        return sum(self.params)

    @property
    def uncompressed_bits(self) -> int:
        return self.fixed_bits + self.unit_bits

    @property
    def min_bits(self) -> int:
        """Smallest achievable model size."""
        return self.fixed_bits + sum(min(c) for c in self.cost_bits)

    def validate(self) -> None:
        n = len(self.units)
        if n == 0:
            raise InvalidInputError("The problem has no units.")
        if len(set(self.units)) != n:
            raise InvalidInputError("Unit names must be unique.")
        for name in ("params", "options", "distortion", "cost_bits", "kept_params"):
            if len(getattr(self, name)) != n:
                raise InvalidInputError(f"{name} must have one entry per unit.")
        for u, opts in enumerate(self.options):
            if not opts:
                raise InvalidInputError(f"Unit {self.units[u]} has no option.")
            for name in ("distortion", "cost_bits", "kept_params"):
                if len(getattr(self, name)[u]) != len(opts):
                    raise InvalidInputError(f"{name} of {self.units[u]} must have one value per option.")
            if not all(math.isfinite(d) for d in self.distortion[u]):
                raise InvalidInputError(f"Distortions of {self.units[u]} must be finite numbers.")
        index = {u: i for i, u in enumerate(self.units)}
        for (u, k, v, m), j in self.pairwise.items():
            if u not in index or v not in index or index[u] == index[v]:
                raise InvalidInputError(f"Pairwise term ({u}, {v}) must join two different known units.")
            if k not in self.options[index[u]] or m not in self.options[index[v]]:
                raise InvalidInputError(f"Pairwise term ({u}@{k}, {v}@{m}) names an option the unit does not have.")
            if not math.isfinite(j):
                raise InvalidInputError("Pairwise terms must be finite numbers.")


def problem_from_sensitivity(sensitivity: Sensitivity, model: nn.Module) -> MixedPrecisionProblem:
    """Collect distortions and the size accounting of ``model``'s units."""
    units = sensitivity.units
    options = [list(sensitivity.distortion[u.name]) for u in units]
    return MixedPrecisionProblem(
        units=[u.name for u in units],
        params=[u.params for u in units],
        options=options,
        distortion=[[sensitivity.distortion[u.name][k] for k in opts] for u, opts in zip(units, options)],
        cost_bits=[[u.cost_bits(option_from_label(k)) for k in opts] for u, opts in zip(units, options)],
        kept_params=[[u.kept_params(option_from_label(k)) for k in opts] for u, opts in zip(units, options)],
        pairwise=dict(sensitivity.pairwise),
        fixed_bits=FP32_BITS * (count_parameters(model) - sum(u.params for u in units)),
    )


def random_problem(
    n_units: int,
    options: str | Iterable[Option] | None = None,
    *,
    pairwise: bool = False,
    seed: int = 0,
    last_unprunable: bool = True,
) -> MixedPrecisionProblem:
    """A seeded synthetic instance shaped like a real one (for tests and benchmarks).

    Unit sizes are log-uniform in 100..100k parameters; the distortion of b
    bits falls like 4^-b times a per-unit sensitivity, prune costs the most,
    keep nothing. With ``pairwise`` consecutive units get J terms of about a
    tenth of the distortions.
    """
    if n_units < 1:
        raise InvalidInputError("n_units must be >= 1.")
    opts = parse_options(options)
    rng = np.random.default_rng(seed)
    units = [f"layer{i}" for i in range(n_units)]
    params = [int(p) for p in np.exp(rng.uniform(np.log(100), np.log(100_000), n_units))]
    sens = rng.lognormal(0.0, 1.0, n_units)
    labels, dist, cost, kept = [], [], [], []
    for i in range(n_units):
        allowed = [o for o in opts if o != "prune" or not (last_unprunable and i == n_units - 1 and len(opts) > 1)]
        bias = max(1, params[i] // 50)
        labels.append([option_label(o) for o in allowed])
        row_d, row_c, row_k = [], [], []
        for o in allowed:
            if o == "prune":
                d, c, k = sens[i] * (1.0 + rng.uniform(0, 1)), 0, 0
            elif o == "keep":
                d, c, k = 0.0, FP32_BITS * params[i], params[i]
            else:
                d = sens[i] * 4.0 ** (-int(o)) * 8 * rng.uniform(0.5, 1.5)
                c, k = int(o) * (params[i] - bias) + FP32_BITS * bias, params[i]
            row_d.append(float(d)), row_c.append(int(c)), row_k.append(int(k))
        dist.append(row_d), cost.append(row_c), kept.append(row_k)
    terms: dict[tuple[str, str, str, str], float] = {}
    if pairwise:
        for i in range(n_units - 1):
            for a, ka in enumerate(labels[i]):
                for b, kb in enumerate(labels[i + 1]):
                    if "keep" in (ka, kb):
                        continue
                    scale = 0.1 * math.sqrt(dist[i][a] * dist[i + 1][b])
                    terms[(units[i], ka, units[i + 1], kb)] = float(rng.normal(0.0, scale + 1e-3))
    return MixedPrecisionProblem(units, params, labels, dist, cost, kept, terms, fixed_bits=int(rng.integers(0, 5000)))


# ----------------------------------------------------------------------------- QUBO pieces


def _linear(problem: MixedPrecisionProblem, lambda_bits: float, lambda_sparsity: float) -> list[np.ndarray]:
    C, N = max(problem.unit_bits, 1), max(problem.total_params, 1)
    return [
        np.asarray(d, float) + lambda_bits * np.asarray(c, float) / C + lambda_sparsity * np.asarray(k, float) / N
        for d, c, k in zip(problem.distortion, problem.cost_bits, problem.kept_params)
    ]


def _quadratic(problem: MixedPrecisionProblem) -> dict[tuple[str, str], float]:
    quad: dict[tuple[str, str], float] = {}
    for (u, k, v, m), j in problem.pairwise.items():
        if j != 0.0:
            key = (f"{u}@{k}", f"{v}@{m}")
            quad[key] = quad.get(key, 0.0) + j
    return quad


def _margin(bound: float) -> float:
    """A number strictly larger than ``bound`` (>= 0) with a 10% safety margin."""
    return 1.1 * bound + 1e-6


def onehot_strength(bqm: dimod.BinaryQuadraticModel, groups: list[list[str]]) -> float:
    """One-hot penalty A that provably lets no infeasible state win.

    Let h[u,k] be the linear biases of ``bqm`` *before* the one-hot penalties
    are added, S[u,k] = sum_w |Q[(u,k), w]| the absolute quadratic biases
    touching variable (u,k) (pairwise J, and in slack mode the budget
    penalty's couplings), and for each unit
        B_u = max( min_k (h[u,k] + S[u,k]),  second-largest_k (S[u,k] - h[u,k]),  0 ).
    Claim: if A > max_u B_u, every state breaking some unit's one-hot
    constraint has a state with one violation fewer and strictly lower energy;
    repeating, a one-hot state beats it. Proof (all other variables, slack
    ones included, held fixed):
    * unit u has no option on: switch on the k minimising h + S. The penalty
      A (1 - 0)^2 vanishes, so the energy changes by at most
      h[u,k] + S[u,k] - A < 0.
    * unit u has s >= 2 options on: switch off the one, j, with the smallest
      S - h among them; the penalty falls from A (s-1)^2 to A (s-2)^2, i.e. by
      (2s - 3) A >= A, so the energy changes by at most S[u,j] - h[u,j] - A,
      and S[u,j] - h[u,j] is at most the second largest S - h of the unit
      (the smallest of at least two values). Hence < 0.
    In particular A > |min_k h[u,k]| + max_k S[u,k] always suffices. (The
    often quoted A > max_u (max_k h - min_k h) does not: with h = [5, 5] and
    A = 1 the empty state, energy 1, beats both feasible ones, energy 5.)
    """
    bound = 0.0
    for group in groups:
        h = np.array([bqm.get_linear(v) for v in group])
        s = np.array([sum(abs(q) for _, q in bqm.iter_neighborhood(v)) for v in group])
        case_none = float(np.min(h + s))
        case_many = float(np.sort(s - h)[-2]) if len(group) >= 2 else 0.0
        bound = max(bound, case_none, case_many)
    return _margin(bound)


def _objective_range(linear: list[np.ndarray], quad: Mapping[Any, float]) -> float:
    """Upper bound on (max - min) of the objective over one-hot states."""
    return float(sum(h.max() - h.min() for h in linear) + sum(abs(q) for q in quad.values()))


def _solve_onehot(model: OneHotModel, sampler: SamplerLike | None, bqm_builder, seed: int) -> list[int]:
    """Option index per unit of the (exact when possible) optimum."""
    if model.is_chain():
        result = solve_chain_dp(model)
        assert result is not None  # no budget here
        return result.choice
    if sampler is None:
        result = solve_milp(model)
        if result is not None:
            return result.choice
        raise InvalidInputError("The capacity search could not solve the problem exactly; pass a sampler.")
    bqm = bqm_builder()
    sampleset = _run_sampler(sampler, bqm, seed)
    best = sampleset.first.sample
    choice = []
    for u, group in enumerate(model.groups):
        on = [k for k, v in enumerate(group) if best.get(v)]
        choice.append(on[0] if len(on) == 1 else int(np.argmin(model.linear[u])))
    return choice


def _run_sampler(sampler: SamplerLike, bqm: dimod.BinaryQuadraticModel, seed: int) -> dimod.SampleSet:
    """A dimod sampler gets ``seed`` when it declares one; a callable is expected to seed itself."""
    if hasattr(sampler, "sample"):
        parameters = getattr(sampler, "parameters", {})
        kwargs = {"seed": seed} if "seed" in parameters else {}
        return sampler.sample(bqm, **kwargs)  # type: ignore[union-attr]
    return sampler(bqm)  # type: ignore[operator]


# ----------------------------------------------------------------------------- formulation


def _check_number(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, not {value!r}.")
    if value < 0 or (positive and value == 0):
        raise InvalidInputError(f"{name} must be {'positive' if positive else 'zero or positive'}, not {value}.")
    return float(value)


def _inside_interval(solve_at: Callable[[float], list[int]], fits_from: float, *, exact: bool) -> float:
    """A lambda_bits well inside the interval over which the optimum at ``fits_from`` (the smallest lambda
    the capacity search found to fit the budget) stays optimal.

    Just past the breakpoint the fitting optimum leads the over-budget one by a hair (1e-9 in energy on
    digits-cnn), so samplers return over-budget reads about as often as not. The optimum's energy is
    linear in lambda and the lowest energy concave, so the optimum stays the same decision over an
    interval; its middle gives both neighbours a clear margin and the same decision. The interval's end
    is found to 1% of its width by doubling then bisection, on exact solves only (with a heuristic sampler a changed
    decision may be noise: then just 1e-4 past the breakpoint)."""
    decision = solve_at(fits_from)

    def bumped() -> float:
        step = fits_from * (1 + 1e-4)
        return step if solve_at(step) == decision else fits_from

    if not exact:
        return bumped()
    same, other = fits_from, None
    for _ in range(64):  # far enough for a breakpoint found just above a tie at lambda 0
        if solve_at(2.0 * same) != decision:
            other = 2.0 * same
            break
        same *= 2.0
    if other is None:  # it holds as far as searched: go well in, but not so far the size term swamps the rest
        return 0.5 * (fits_from + min(same, 256.0 * max(fits_from, 1e-6)))
    while other - same > 0.01 * (other - fits_from):  # 1% of the interval, however narrow
        mid = 0.5 * (same + other)
        if solve_at(mid) == decision:
            same = mid
        else:
            other = mid
    return 0.5 * (fits_from + same) if same > fits_from else bumped()


def resolve_budget(problem: MixedPrecisionProblem, budget_bits: float | None, budget_ratio: float | None) -> int | None:
    """Budget in bits from either form (ratio = fraction of the uncompressed size)."""
    if budget_bits is not None and budget_ratio is not None:
        raise InvalidInputError("Give either a budget in bits or a budget ratio, not both.")
    if budget_ratio is not None:
        ratio = _check_number("budget_ratio", budget_ratio, positive=True)
        if ratio > 1:
            raise InvalidInputError(
                f"budget_ratio is the fraction of the uncompressed size to keep (0 < r <= 1), not {ratio}."
            )
        budget_bits = ratio * problem.uncompressed_bits
    if budget_bits is None:
        return None
    budget = math.floor(_check_number("budget_bits", budget_bits, positive=True))
    if budget < problem.min_bits:
        raise InvalidInputError(
            f"The budget of {budget} bits is below the smallest size these options allow "
            f"({problem.min_bits} bits, {problem.min_bits / problem.uncompressed_bits:.1%} of the model)."
        )
    return budget


def formulate_mixed_precision(
    problem: MixedPrecisionProblem,
    *,
    lambda_bits: float = 1.0,
    lambda_sparsity: float = 0.0,
    budget_bits: float | None = None,
    budget_ratio: float | None = None,
    budget_encoding: str = "capacity",
    slack_resolution: int = 1000,
    sampler: SamplerLike | None = None,
    seed: int = 0,
) -> Formulation:
    """The F1 QUBO of ``problem`` (see the module docstring for the energy).

    ``sampler`` (a dimod sampler or a callable bqm -> SampleSet) is only used
    by the capacity search when the pairwise terms do not form a chain.
    """
    problem.validate()
    lambda_bits = lambda_bits_given = _check_number("lambda_bits", lambda_bits)
    lambda_sparsity = _check_number("lambda_sparsity", lambda_sparsity)
    if budget_encoding not in BUDGET_ENCODINGS:
        raise InvalidInputError(f"budget_encoding must be one of {', '.join(BUDGET_ENCODINGS)}, not {budget_encoding!r}.")
    if isinstance(slack_resolution, bool) or not isinstance(slack_resolution, int) or slack_resolution < 1:
        raise InvalidInputError(f"slack_resolution must be a whole number >= 1, not {slack_resolution!r}.")
    budget = resolve_budget(problem, budget_bits, budget_ratio)
    groups = [[f"{u}@{k}" for k in opts] for u, opts in zip(problem.units, problem.options)]
    quad = _quadratic(problem)
    unit_cost = [np.asarray(c, float) for c in problem.cost_bits]

    def size_of(choice: list[int]) -> int:
        return problem.fixed_bits + int(sum(problem.cost_bits[u][k] for u, k in enumerate(choice)))

    # The budget problem itself: the objective at the lambdas given, the budget counted in exact bits. Both
    # encodings approximate it (capacity: at a raised lambda_bits; slack: costs rounded up to its unit).
    in_bits = None if budget is None else OneHotModel(
        groups, _linear(problem, lambda_bits_given, lambda_sparsity), quad, cost=unit_cost,
        budget=budget - problem.fixed_bits)
    trace: list[dict[str, float]] = []
    breakpoint_lambda = None
    if budget is not None and budget_encoding == "capacity":
        def solve_at(lam: float) -> list[int]:
            model = OneHotModel(groups, _linear(problem, lam, lambda_sparsity), quad)
            choice = _solve_onehot(
                model, sampler,
                lambda: _assemble(groups, model.linear, quad)[0], seed,
            )
            trace.append({"lambda_bits": lam, "size_bits": size_of(choice), "energy": model.energy(choice)})
            return choice

        if size_of(solve_at(lambda_bits)) > budget:
            lo, hi = lambda_bits, max(2.0 * lambda_bits, 1e-3)
            for _ in range(200):
                if size_of(solve_at(hi)) <= budget:
                    break
                lo, hi = hi, 2.0 * hi
            else:  # pragma: no cover - a large enough lambda always reaches min_bits
                raise InvalidInputError("The capacity search could not meet the budget.")
            for _ in range(60):
                if hi - lo <= 1e-7 * hi:
                    break
                mid = 0.5 * (lo + hi)
                if size_of(solve_at(mid)) <= budget:
                    hi = mid
                else:
                    lo = mid
            breakpoint_lambda = hi
            lambda_bits = _inside_interval(solve_at, hi, exact=sampler is None or in_bits.is_chain())

    linear = _linear(problem, lambda_bits, lambda_sparsity)
    slack = None
    if budget is not None and budget_encoding == "slack":
        total = sum(c.max() for c in unit_cost)
        q = max(1, math.ceil(total / slack_resolution))
        units_cost = [np.ceil(c / q).astype(int) for c in unit_cost]
        b_units = math.floor((budget - problem.fixed_bits) / q)
        lb = int(sum(c.min() for c in units_cost))
        if b_units < lb:
            raise InvalidInputError(
                f"At slack resolution {slack_resolution} the budget of {budget} bits cannot be met; "
                "raise slack_resolution or the budget."
            )
        active = b_units < int(sum(c.max() for c in units_cost))
        strength = _margin(_objective_range(linear, quad))
        slack = {"quantum_bits": q, "cost_units": units_cost, "budget_units": b_units, "lower_units": lb,
                 "strength": strength, "active": active}
    bqm, strengths, slack_vars = _assemble(groups, linear, quad, slack)
    A = max(strengths, default=0.0)
    model = OneHotModel(
        groups, linear, quad,
        cost=slack["cost_units"] if slack else None,
        budget=slack["budget_units"] if slack else None,
    )
    variables = {v: (u, option_from_label(k)) for u, opts, g in zip(problem.units, problem.options, groups)
                 for k, v in zip(opts, g)}

    def decode(sample: Mapping[Any, int]) -> Decision:
        choices: dict[str, Any] = {}
        violations: list[str] = []
        repaired: list[str] = []
        choice: list[int] = []
        for u, (name, group) in enumerate(zip(problem.units, groups)):
            on = [k for k, v in enumerate(group) if sample.get(v, 0)]
            if len(on) == 1:
                k = on[0]
            else:
                pool = on or list(range(len(group)))
                k = min(pool, key=lambda i: linear[u][i])
                repaired.append(name)
                picked = ", ".join(problem.options[u][i] for i in on)
                violations.append(f"{name}: no option chosen" if not on else f"{name}: {len(on)} options chosen ({picked})")
            choice.append(k)
            choices[name] = option_from_label(problem.options[u][k])
        size = size_of(choice)
        if budget is not None and size > budget:
            violations.append(f"size {size} bits exceeds the budget of {budget} bits")
        kept = sum(problem.kept_params[u][k] for u, k in enumerate(choice))
        kinds = (["not one-hot"] if repaired else []) + (["over budget"] if budget is not None and size > budget
                                                         else [])
        return Decision(
            choices=choices,
            feasible=not violations,
            violations=violations,
            violation_kinds=kinds,
            details={
                "size_bits": size,
                "compression_ratio": problem.uncompressed_bits / size if size else math.inf,
                "kept_params": kept,
                "objective": model.energy(choice),
                "objective_in_bits": None if in_bits is None else in_bits.energy(choice),
                "repaired": repaired,
            },
        )

    tables = {
        "units": [
            {
                "name": name,
                "params": problem.params[u],
                "options": [
                    {
                        "option": option_from_label(k),
                        "distortion": float(problem.distortion[u][i]),
                        "cost_bits": int(problem.cost_bits[u][i]),
                        "kept_params": int(problem.kept_params[u][i]),
                        "energy": float(linear[u][i]),
                    }
                    for i, k in enumerate(problem.options[u])
                ],
            }
            for u, name in enumerate(problem.units)
        ],
        "pairwise": [
            {"unit_u": u, "option_u": option_from_label(k), "unit_v": v, "option_v": option_from_label(m), "J": j}
            for (u, k, v, m), j in problem.pairwise.items()
        ],
        "budget_bits": budget,
        "lambda_bits": lambda_bits,
        "lambda_sparsity": lambda_sparsity,
        "uncompressed_bits": problem.uncompressed_bits,
        "fixed_bits": problem.fixed_bits,
    }
    params = {
        "encoding": "onehot",
        "onehot_groups": groups,
        "variables": variables,
        "one_hot_strength": A,  # the largest; each unit has its own (one_hot_strengths)
        "one_hot_strengths": dict(zip(problem.units, strengths)),
        "budget_encoding": budget_encoding if budget is not None else None,
        "budget_bits": budget,
        "lambda_bits": lambda_bits,
        "lambda_bits_given": lambda_bits_given,  # before the capacity search raised it
        "lambda_sparsity": lambda_sparsity,
        "capacity_trace": trace,
        "capacity_breakpoint": breakpoint_lambda,  # the smallest lambda_bits found whose optimum fits
        "slack_variables": slack_vars,
        "constraint_strength": slack["strength"] if slack else None,
        "slack_quantum_bits": slack["quantum_bits"] if slack else None,
        "onehot_model": model,
        "precision_ratio": precision_ratio(bqm, linear),
        "onehot_model_in_bits": in_bits,
        "problem": problem,
        "seed": seed,
    }
    return Formulation(method="mixed-precision", bqm=bqm, decoder=decode, tables=tables, params=params)


#: roughly how finely a QPU sets a bias, relative to its range (integrated control errors of about 1%)
QPU_RELATIVE_PRECISION = 1e-2


def precision_ratio(bqm: dimod.BinaryQuadraticModel, option_energies: Sequence[np.ndarray]) -> float | None:
    """The largest |coefficient| of ``bqm`` over the smallest positive difference between two options'
    energies within one unit: how finely a solver must resolve the QUBO to tell the closest options apart.
    None when no unit has two different option energies."""
    gaps = [np.diff(np.unique(np.asarray(h, dtype=float))) for h in option_energies]
    smallest = min((float(g.min()) for g in gaps if g.size), default=None)
    if not smallest:
        return None
    coefficients = [abs(float(v)) for v in bqm.linear.values()] + [abs(float(v)) for v in bqm.quadratic.values()]
    return max(coefficients, default=0.0) / smallest


def slack_budget(formulation: Formulation) -> tuple[int, int] | None:
    """``(size_bits, budget_bits)`` when a capacity-encoded budget does not bind: the optimum at the
    given lambda_bits already fits, so the search never raised lambda and the budget changes nothing
    (lowering lambda_bits lets the optimum use more of it). None when it binds, or there is no such budget."""
    params = formulation.params
    trace = params.get("capacity_trace") or []
    budget = params.get("budget_bits")
    if params.get("budget_encoding") != "capacity" or budget is None or len(trace) != 1:
        return None
    size = int(trace[0]["size_bits"])
    return (size, int(budget)) if size < budget and params.get("lambda_bits", 0) > 0 else None


def _assemble(
    groups: list[list[str]],
    linear: list[np.ndarray],
    quad: Mapping[tuple[str, str], float],
    slack: dict[str, Any] | None = None,
) -> tuple[dimod.BinaryQuadraticModel, list[float], list[str]]:
    """Build the BQM: objective, [slack budget penalty], then one-hot at a safe A per unit."""
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for group, h in zip(groups, linear):
        for v, bias in zip(group, h):
            bqm.add_linear(v, float(bias))
    for (a, b), q in quad.items():
        bqm.add_quadratic(a, b, q)
    slack_vars: list[str] = []
    if slack is not None and slack["active"]:
        terms = [(v, int(c)) for group, costs in zip(groups, slack["cost_units"]) for v, c in zip(group, costs) if c]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            added = bqm.add_linear_inequality_constraint(
                terms, lagrange_multiplier=slack["strength"], label="budget",
                lb=slack["lower_units"], ub=slack["budget_units"],
            )
        slack_vars = [v for v, _ in added]
    # One strength per unit: the proof in onehot_strength bounds each unit on its own (a
    # single-unit move changes only that unit's variables), and a shared maximum would put
    # barriers far above the small option differences of other units, freezing annealers.
    strengths = [onehot_strength(bqm, [group]) for group in groups]
    for group, strength in zip(groups, strengths):
        bqm.add_linear_equality_constraint([(v, 1.0) for v in group], strength, -1.0)
    return bqm, strengths, slack_vars


def build_mixed_precision(
    model: nn.Module,
    calib: EvalData,
    *,
    options: str | Iterable[Option] | None = None,
    lambda_bits: float = 1.0,
    lambda_sparsity: float = 0.0,
    budget_bits: float | None = None,
    budget_ratio: float | None = None,
    budget_encoding: str = "capacity",
    groups: int = 1,
    pairwise: bool = False,
    sensitivity: str = "measured",
    encoding: str = "onehot",
    sampler: SamplerLike | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    calib_size: int | None = 256,
    scale_method: str = "minmax",
    slack_resolution: int = 1000,
    paper_beta: float = 1.0,
    cache_dir: str | None = None,
) -> Formulation:
    """Measure sensitivities of ``model`` on ``calib`` and build the F1 QUBO.

    ``encoding="onehot"`` (default) builds the DESIGN F1 energy;
    ``encoding="paper"`` the source paper's per-filter encoding
    (:mod:`core.formulations.paper_encoding`; lambda_bits plays gamma, the
    size-reduction reward, and ``paper_beta`` beta; groups must be 1; only the
    capacity budget encoding). ``calib_size`` caps the calibration batch (a
    seeded subset; None uses all of it). ``formulation.params["sensitivity"]``
    keeps the :class:`Sensitivity` used.
    """
    if encoding not in ENCODINGS:
        raise InvalidInputError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}.")
    if calib_size is not None:
        if isinstance(calib_size, bool) or not isinstance(calib_size, int) or calib_size < 1:
            raise InvalidInputError(f"calib_size must be a whole number >= 1 or None, not {calib_size!r}.")
        calib = calib.subset(calib_size, seed=seed)
    if encoding == "paper" and groups != 1:
        raise InvalidInputError("The paper encoding decides per filter already; use groups=1 with it.")
    sens = measure_sensitivity(
        model, calib, options=options, method=sensitivity, groups=groups, pairwise=pairwise,
        scale_method=scale_method, seed=seed, progress=progress, cache_dir=cache_dir,
    )
    if encoding == "paper":
        from core.formulations.paper_encoding import build_paper_encoding

        formulation = build_paper_encoding(
            model, sens, beta=paper_beta, gamma=lambda_bits, lambda_sparsity=lambda_sparsity,
            budget_bits=budget_bits, budget_ratio=budget_ratio, budget_encoding=budget_encoding,
            sampler=sampler, seed=seed,
        )
    else:
        problem = problem_from_sensitivity(sens, model)
        formulation = formulate_mixed_precision(
            problem, lambda_bits=lambda_bits, lambda_sparsity=lambda_sparsity, budget_bits=budget_bits,
            budget_ratio=budget_ratio, budget_encoding=budget_encoding, slack_resolution=slack_resolution,
            sampler=sampler, seed=seed,
        )
    formulation.params["sensitivity"] = sens
    formulation.tables["sensitivity_method"] = sens.method
    return formulation
