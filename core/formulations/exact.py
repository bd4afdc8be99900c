"""Exact references for one-hot (choose one option per unit) QUBOs.

A :class:`OneHotModel` is the structure behind the mixed-precision
formulation: units, each choosing exactly one of its variables, a linear
energy per variable, pairwise energies between variables of different units,
and optionally an integer cost per variable with a budget on the total.
Its energy on a one-hot assignment equals the BQM's energy (one-hot and
budget penalties are zero there), so the references below give the BQM's
ground-state energy.

* :func:`solve_milp` - ``scipy.optimize.milp`` (HiGHS); pairwise terms are
  linearised with McCormick products ``y = x_a x_b``; budget supported.
* :func:`solve_chain_dp` - dynamic programming along the unit chain; pairwise
  terms only between consecutive units; a budget is handled by DP over the
  integer total cost (costs must be non-negative integers, budget at most
  :data:`DP_MAX_BUDGET`).
* :func:`solve_bruteforce` - ``dimod.ExactSolver`` on the BQM itself, at most
  :data:`BRUTE_FORCE_MAX` variables (slack variables included).

:func:`exact_reference` picks one for a :class:`~core.formulations.base.Formulation`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from core.formulations.base import Formulation

BRUTE_FORCE_MAX = 20
DP_MAX_BUDGET = 200_000

__all__ = [
    "BRUTE_FORCE_MAX",
    "ExactResult",
    "OneHotModel",
    "exact_reference",
    "solve_bruteforce",
    "solve_chain_dp",
    "solve_milp",
]


@dataclass
class OneHotModel:
    """min offset + sum linear[x] + sum quadratic[x, y] over one-hot assignments.

    ``groups[u]`` lists unit u's variable labels, ``linear[u][k]`` the linear
    energy of ``groups[u][k]``; ``quadratic`` maps label pairs (of different
    units) to energies; ``cost[u][k]`` and ``budget`` add sum cost <= budget.
    """

    groups: list[list[Hashable]]
    linear: list[np.ndarray]
    quadratic: dict[tuple[Hashable, Hashable], float] = field(default_factory=dict)
    offset: float = 0.0
    cost: list[np.ndarray] | None = None
    budget: float | None = None

    def __post_init__(self) -> None:
        self.linear = [np.asarray(h, dtype=float) for h in self.linear]
        if self.cost is not None:
            self.cost = [np.asarray(c, dtype=float) for c in self.cost]
        self._where = {v: (u, k) for u, g in enumerate(self.groups) for k, v in enumerate(g)}

    def locate(self, label: Hashable) -> tuple[int, int]:
        return self._where[label]

    def energy(self, choice: Sequence[int]) -> float:
        """Energy of the assignment picking option ``choice[u]`` of each unit."""
        chosen = {self.groups[u][k] for u, k in enumerate(choice)}
        e = self.offset + sum(float(self.linear[u][k]) for u, k in enumerate(choice))
        return e + sum(q for (a, b), q in self.quadratic.items() if a in chosen and b in chosen)

    def total_cost(self, choice: Sequence[int]) -> float:
        return 0.0 if self.cost is None else float(sum(self.cost[u][k] for u, k in enumerate(choice)))

    def sample(self, choice: Sequence[int]) -> dict[Hashable, int]:
        return {v: int(k == choice[u]) for u, g in enumerate(self.groups) for k, v in enumerate(g)}

    def is_chain(self) -> bool:
        """True when pairwise terms only join consecutive units."""
        return all(abs(self.locate(a)[0] - self.locate(b)[0]) == 1 for a, b in self.quadratic)


@dataclass
class ExactResult:
    energy: float
    choice: list[int]  # option index per unit
    method: str


def solve_milp(model: OneHotModel, *, time_limit: float | None = 60.0) -> ExactResult | None:
    """Exact optimum by mixed-integer programming (HiGHS); None if infeasible."""
    n = sum(len(g) for g in model.groups)
    index = {v: i for i, v in enumerate(v for g in model.groups for v in g)}
    pairs = [(index[a], index[b], q) for (a, b), q in model.quadratic.items() if q != 0]
    m = len(pairs)
    c = np.concatenate([np.concatenate(model.linear), np.array([q for _, _, q in pairs], dtype=float)])
    rows, cols, vals, lo, hi = [], [], [], [], []
    r = 0
    start = 0
    for g in model.groups:  # one-hot
        for k in range(len(g)):
            rows.append(r), cols.append(start + k), vals.append(1.0)
        lo.append(1.0), hi.append(1.0)
        start += len(g)
        r += 1
    for j, (a, b, _q) in enumerate(pairs):  # McCormick: y >= xa + xb - 1, y <= xa, y <= xb
        y = n + j
        rows += [r, r, r]
        cols += [y, a, b]
        vals += [1.0, -1.0, -1.0]
        lo.append(-1.0), hi.append(np.inf)
        rows += [r + 1, r + 1, r + 2, r + 2]
        cols += [y, a, y, b]
        vals += [1.0, -1.0, 1.0, -1.0]
        lo += [-np.inf, -np.inf]
        hi += [0.0, 0.0]
        r += 3
    if model.budget is not None and model.cost is not None:
        costs = np.concatenate(model.cost)
        for i in np.flatnonzero(costs):
            rows.append(r), cols.append(int(i)), vals.append(float(costs[i]))
        lo.append(-np.inf), hi.append(float(model.budget))
        r += 1
    a_mat = sparse.csr_array((vals, (rows, cols)), shape=(r, n + m))
    integrality = np.concatenate([np.ones(n), np.zeros(m)])
    options: dict[str, Any] = {"mip_rel_gap": 0.0}
    if time_limit:
        options["time_limit"] = time_limit
    scale = 1e4 / max(float(np.abs(c).max(initial=0.0)), 1e-300)  # HiGHS gaps are absolute ~1e-6
    res = milp(c * scale, constraints=LinearConstraint(a_mat, lo, hi), integrality=integrality,
               bounds=Bounds(0, 1), options=options)
    if res.x is None or res.status not in (0,):
        return None
    x = np.round(res.x[:n]).astype(int)
    choice, start = [], 0
    for g in model.groups:
        choice.append(int(np.argmax(x[start : start + len(g)])))
        start += len(g)
    choice = _polish(model, choice)
    return ExactResult(energy=model.energy(choice), choice=choice, method="milp")


def _polish(model: OneHotModel, choice: list[int]) -> list[int]:
    """Single-unit improvements (budget kept) to remove solver-tolerance ties."""
    choice = list(choice)
    best = model.energy(choice)
    improved = True
    while improved:
        improved = False
        for u, group in enumerate(model.groups):
            for k in range(len(group)):
                if k == choice[u]:
                    continue
                trial = choice[:u] + [k] + choice[u + 1 :]
                if model.budget is not None and model.cost is not None and model.total_cost(trial) > model.budget:
                    continue
                e = model.energy(trial)
                if e < best - 1e-15 * max(1.0, abs(best)):
                    choice, best, improved = trial, e, True
    return choice


def solve_chain_dp(model: OneHotModel) -> ExactResult | None:
    """Exact optimum by dynamic programming along the unit chain.

    Requires pairwise terms only between consecutive units. With a budget the
    costs must be non-negative integers and the budget at most DP_MAX_BUDGET.
    Returns None when the budget cannot be met; raises ValueError when the
    model is not a chain (or the budget is not DP-friendly).
    """
    if not model.is_chain():
        raise ValueError("dynamic programming needs pairwise terms between consecutive units only")
    budget = None
    if model.budget is not None and model.cost is not None:
        costs = np.concatenate(model.cost)
        if (costs < 0).any() or not np.allclose(costs, np.round(costs)) or model.budget > DP_MAX_BUDGET:
            raise ValueError("budgeted DP needs non-negative integer costs and a small integer budget")
        budget = int(np.floor(model.budget + 1e-9))
        if budget < 0:
            return None
    units = len(model.groups)
    pair = [np.zeros((len(model.groups[u]), len(model.groups[u + 1]))) for u in range(units - 1)]
    for (a, b), q in model.quadratic.items():
        (ua, ka), (ub, kb) = model.locate(a), model.locate(b)
        if ua < ub:
            pair[ua][ka, kb] += q
        else:
            pair[ub][kb, ka] += q
    width = 1 if budget is None else budget + 1
    cost = [np.zeros(len(g), dtype=int) for g in model.groups] if budget is None else [
        np.round(c).astype(int) for c in model.cost  # type: ignore[union-attr]
    ]
    # value[k, b]: best energy of units 0..u with unit u at option k and total cost exactly b
    value = np.full((len(model.groups[0]), width), np.inf)
    for k, c in enumerate(cost[0]):
        if c < width:
            value[k, c] = model.linear[0][k]
    back: list[np.ndarray] = []
    for u in range(1, units):
        new = np.full((len(model.groups[u]), width), np.inf)
        arg = np.zeros((len(model.groups[u]), width), dtype=int)
        for k, c in enumerate(cost[u]):
            if c >= width:
                continue
            cand = value[:, : width - c] + pair[u - 1][:, k][:, None]
            best = np.argmin(cand, axis=0)
            new[k, c:] = cand[best, np.arange(width - c)] + model.linear[u][k]
            arg[k, c:] = best
        back.append(arg)
        value = new
    flat = int(np.argmin(value))
    k, b = np.unravel_index(flat, value.shape)
    if not np.isfinite(value[k, b]):
        return None
    choice = [int(k)]
    for u in range(units - 1, 0, -1):
        prev = int(back[u - 1][choice[0], b])
        b -= int(cost[u][choice[0]])
        choice.insert(0, prev)
    return ExactResult(energy=model.energy(choice), choice=choice, method="dp")


def solve_bruteforce(bqm: dimod.BinaryQuadraticModel) -> tuple[float, dict[Hashable, int]] | None:
    """Ground state of a BQM of at most BRUTE_FORCE_MAX variables (None if larger)."""
    if bqm.num_variables > BRUTE_FORCE_MAX:
        return None
    best = dimod.ExactSolver().sample(bqm).first
    return float(best.energy), dict(best.sample)


def _solve_onehot(model: OneHotModel) -> ExactResult | None:
    """Chain DP when pairwise terms are on and it applies, else MILP."""
    if model.quadratic:
        try:
            result = solve_chain_dp(model)
        except ValueError:
            result = None
        if result is not None:
            return result
    return solve_milp(model)


def exact_reference(formulation: Formulation) -> dict[str, Any] | None:
    """Exact ground-state energy of ``formulation.bqm`` and its decoded decision.

    Chooses: MILP for additive one-hot problems (with or without budget);
    chain DP when pairwise terms are on (MILP with McCormick products if the
    DP does not apply); ``dimod.ExactSolver`` for any BQM of at most 20
    variables (e.g. the paper encoding on tiny models). Returns
    ``{"energy", "method", "decision", "sample"}`` or None when none applies.
    With a budget it adds ``"in_bits"``: ``{"objective", "method", "decision",
    "qubo_optimum"}`` of the budget problem itself (the objective at the lambdas
    given, the budget counted in exact bits; None if that could not be solved),
    which the capacity encoding solves at a raised lambda and the slack encoding
    with costs rounded up to its unit; ``qubo_optimum`` is the QUBO's optimum
    scored on it, so ``qubo_optimum - objective`` is what the encoding gives away.
    """
    model: OneHotModel | None = formulation.params.get("onehot_model")
    if model is not None:
        result = _solve_onehot(model)
        if result is not None:
            sample = model.sample(result.choice)
            reference = {
                "energy": result.energy,
                "method": result.method,
                "decision": formulation.decode(sample),
                "sample": sample,
            }
            in_bits: OneHotModel | None = formulation.params.get("onehot_model_in_bits")
            if in_bits is not None:
                # MILP: the budget in exact bits is too wide for the DP's table (up to DP_MAX_BUDGET columns)
                found = solve_milp(in_bits)
                reference["in_bits"] = None if found is None else {
                    "objective": found.energy,
                    "method": found.method,
                    "decision": formulation.decode(in_bits.sample(found.choice)),
                    "qubo_optimum": in_bits.energy(result.choice),
                }
            return reference
    found = solve_bruteforce(formulation.bqm)
    if found is None:
        return None
    energy, sample = found
    return {"energy": energy, "method": "exact-solver", "decision": formulation.decode(sample), "sample": sample}
