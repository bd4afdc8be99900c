"""Exact references agree: MILP == chain DP == dimod.ExactSolver where they overlap."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest

from core.formulations.exact import (
    OneHotModel,
    exact_reference,
    solve_bruteforce,
    solve_chain_dp,
    solve_milp,
)
from core.formulations.mixed_precision import formulate_mixed_precision, random_problem


def _random_model(seed: int, *, units: int, options: int, chain: bool, budget: bool) -> OneHotModel:
    rng = np.random.default_rng(seed)
    groups = [[(u, k) for k in range(options)] for u in range(units)]
    linear = [rng.normal(size=options) for _ in range(units)]
    quad = {}
    for u in range(units - 1):
        for v in ([u + 1] if chain else range(u + 1, units)):
            for k, m in itertools.product(range(options), repeat=2):
                if rng.random() < 0.6:
                    quad[((u, k), (v, m))] = float(rng.normal())
    cost = [rng.integers(0, 20, size=options) for _ in range(units)] if budget else None
    limit = None
    if budget:
        lo, hi = sum(c.min() for c in cost), sum(c.max() for c in cost)
        limit = int(rng.integers(lo, hi + 1))
    return OneHotModel(groups, linear, quad, offset=float(rng.normal()), cost=cost, budget=limit)


def _brute(model: OneHotModel) -> float:
    best = np.inf
    for choice in itertools.product(*[range(len(g)) for g in model.groups]):
        if model.budget is None or model.total_cost(choice) <= model.budget:
            best = min(best, model.energy(choice))
    return best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("budget", [False, True])
def test_milp_equals_dp_equals_enumeration_on_chains(seed, budget):
    model = _random_model(seed, units=4, options=3, chain=True, budget=budget)
    milp, dp = solve_milp(model), solve_chain_dp(model)
    assert milp.energy == pytest.approx(_brute(model), abs=1e-9)
    assert dp.energy == pytest.approx(milp.energy, abs=1e-9)
    if budget:
        assert model.total_cost(milp.choice) <= model.budget and model.total_cost(dp.choice) <= model.budget


@pytest.mark.parametrize("seed", range(6))
def test_milp_handles_non_chain_pairwise_terms_and_dp_refuses(seed):
    model = _random_model(seed, units=4, options=3, chain=False, budget=False)
    assert solve_milp(model).energy == pytest.approx(_brute(model), abs=1e-9)
    with pytest.raises(ValueError, match="consecutive"):
        solve_chain_dp(model)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pairwise", [False, True])
def test_formulation_references_agree_with_exact_solver(seed, pairwise):
    problem = random_problem(4, "prune,4,keep", pairwise=pairwise, seed=seed)  # 11 variables
    f = formulate_mixed_precision(problem, lambda_bits=float(seed % 3), lambda_sparsity=0.5)
    ref = exact_reference(f)
    assert ref["method"] == ("dp" if pairwise and f.params["onehot_model"].quadratic else "milp")
    ground, _sample = solve_bruteforce(f.bqm)
    assert ref["energy"] == pytest.approx(ground, abs=1e-9)
    assert f.bqm.energy(ref["sample"]) == pytest.approx(ground, abs=1e-9)
    assert ref["decision"].feasible
    model = f.params["onehot_model"]
    assert solve_milp(model).energy == pytest.approx(ground, abs=1e-9)
    assert solve_chain_dp(model).energy == pytest.approx(ground, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_slack_budget_references_agree_with_exact_solver(seed):
    problem = random_problem(3, "prune,2,8,keep", pairwise=seed % 2 == 1, seed=seed)
    f = formulate_mixed_precision(problem, lambda_bits=0.0, budget_ratio=0.25, budget_encoding="slack",
                                  slack_resolution=30)
    assert f.num_variables <= 20
    ground, _ = solve_bruteforce(f.bqm)
    model = f.params["onehot_model"]
    assert solve_milp(model).energy == pytest.approx(ground, abs=1e-7)
    assert solve_chain_dp(model).energy == pytest.approx(ground, abs=1e-7)
    assert exact_reference(f)["energy"] == pytest.approx(ground, abs=1e-7)


def test_infeasible_budget_returns_none():
    model = _random_model(0, units=3, options=2, chain=True, budget=True)
    model.budget = -1
    assert solve_milp(model) is None and solve_chain_dp(model) is None


def test_bruteforce_limit_and_reference_for_other_bqms():
    from core.formulations.base import Decision, Formulation

    big = dimod.BinaryQuadraticModel({i: 1.0 for i in range(21)}, {}, 0.0, "BINARY")
    assert solve_bruteforce(big) is None
    small = dimod.BinaryQuadraticModel({"a": 1.0, "b": -1.0}, {("a", "b"): -3.0}, 0.5, "BINARY")
    f = Formulation("toy", small, lambda s: Decision(dict(s), True))
    ref = exact_reference(f)
    assert ref["method"] == "exact-solver" and ref["energy"] == pytest.approx(-2.5)
    assert exact_reference(Formulation("toy", big, lambda s: Decision(dict(s), True))) is None
