"""F1 one-hot formulation: energy vs brute force, the one-hot strength A,
decoding, budget encodings and the capacity search; paper encoding."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInputError
from core.formulations.exact import exact_reference, solve_bruteforce
from core.formulations.mixed_precision import (
    MixedPrecisionProblem,
    formulate_mixed_precision,
    random_problem,
    slack_budget,
    variable_label,
)


def _feasible_states(problem: MixedPrecisionProblem):
    return itertools.product(*[range(len(o)) for o in problem.options])


def _objective(problem, choice, lambda_bits, lambda_sparsity):
    """DESIGN F1's energy of a one-hot state, written out independently."""
    C, N = 32 * sum(problem.params), sum(problem.params)
    e = 0.0
    for u, k in enumerate(choice):
        e += problem.distortion[u][k] + lambda_bits * problem.cost_bits[u][k] / C
        e += lambda_sparsity * problem.kept_params[u][k] / N
    chosen = {(problem.units[u], problem.options[u][k]) for u, k in enumerate(choice)}
    for (u, k, v, m), j in problem.pairwise.items():
        if (u, k) in chosen and (v, m) in chosen:
            e += j
    return e


def _sample_of(problem, choice):
    return {
        variable_label(name, k): int(i == choice[u])
        for u, (name, opts) in enumerate(zip(problem.units, problem.options))
        for i, k in enumerate(opts)
    }


@pytest.mark.parametrize("pairwise", [False, True])
def test_energy_of_every_feasible_state_matches_design_formula(pairwise):
    problem = random_problem(3, "prune,2,8,keep", pairwise=pairwise, seed=3)
    f = formulate_mixed_precision(problem, lambda_bits=0.7, lambda_sparsity=0.3)
    for choice in _feasible_states(problem):
        sample = _sample_of(problem, choice)
        assert f.bqm.energy(sample) == pytest.approx(_objective(problem, choice, 0.7, 0.3), abs=1e-9)
        decision = f.decode(sample)
        assert decision.feasible and not decision.violations
        assert decision.choices == {
            u: (o if o in ("prune", "keep") else int(o))
            for u, o in zip(problem.units, [problem.options[u][k] for u, k in enumerate(choice)])
        }


def test_labels_groups_and_tables():
    problem = random_problem(3, "prune,4,keep", seed=1)
    f = formulate_mixed_precision(problem, lambda_bits=0.5)
    groups = f.params["onehot_groups"]
    assert groups[0] == ["layer0@prune", "layer0@4", "layer0@keep"]
    assert groups[-1] == ["layer2@4", "layer2@keep"]  # last unit is not prunable: no variable
    assert sorted(v for g in groups for v in g) == sorted(f.bqm.variables)
    row = f.tables["units"][0]
    assert row["name"] == "layer0" and row["params"] == problem.params[0]
    assert [o["option"] for o in row["options"]] == ["prune", 4, "keep"]
    for o, k in zip(row["options"], range(3)):
        assert o["energy"] == pytest.approx(f.bqm.get_linear(groups[0][k]) + f.params["one_hot_strengths"]["layer0"])
    assert f.tables["budget_bits"] is None and f.tables["lambda_bits"] == 0.5


def test_decode_reports_violations_and_repairs():
    problem = random_problem(2, "prune,4,keep", seed=0)
    f = formulate_mixed_precision(problem)
    sample = {v: 0 for v in f.bqm.variables}
    sample["layer0@4"] = sample["layer0@keep"] = 1
    d = f.decode(sample)
    assert not d.feasible and len(d.violations) == 2
    assert "layer0: 2 options chosen" in d.violations[0] and "layer1: no option chosen" in d.violations[1]
    assert set(d.details["repaired"]) == {"layer0", "layer1"}
    assert d.choices["layer0"] in (4, "keep")
    assert d.violation_kinds == ["not one-hot"]  # one kind, however many units break it
    tight = formulate_mixed_precision(problem, lambda_bits=0.0, budget_bits=problem.min_bits)
    keep_all = {v: int(v.endswith("@keep")) for v in tight.bqm.variables}
    assert tight.decode(keep_all).violation_kinds == ["over budget"]
    assert tight.decode({**keep_all, "layer0@4": 1}).violation_kinds == ["not one-hot", "over budget"]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_units=st.integers(1, 3),
    n_opts=st.integers(1, 3),
    data=st.data(),
)
def test_onehot_strength_lets_no_infeasible_state_win(n_units, n_opts, data):
    """Brute force: the best infeasible state is worse than the best feasible one."""
    vals = st.floats(-5, 5, allow_nan=False, allow_infinity=False)
    units = [f"u{i}" for i in range(n_units)]
    options = [[str(b) for b in range(1, n_opts + 1)] for _ in units]
    params = [data.draw(st.integers(1, 1000)) for _ in units]
    dist = [[data.draw(vals) for _ in o] for o in options]
    cost = [[b * p for b in range(1, n_opts + 1)] for p in params]
    pairwise = {}
    if data.draw(st.booleans()):
        for i in range(n_units - 1):
            for k in options[i]:
                for m in options[i + 1]:
                    pairwise[(units[i], k, units[i + 1], m)] = data.draw(vals)
    problem = MixedPrecisionProblem(units, params, options, dist, cost, [list(params[u:u+1]) * n_opts for u in range(n_units)], pairwise)
    f = formulate_mixed_precision(
        problem, lambda_bits=data.draw(st.floats(0, 10)), lambda_sparsity=data.draw(st.floats(0, 10))
    )
    sampleset = dimod.ExactSolver().sample(f.bqm)
    best_feasible = min(e for s, e in sampleset.data(["sample", "energy"]) if f.decode(s).feasible)
    infeasible = [e for s, e in sampleset.data(["sample", "energy"]) if not f.decode(s).feasible]
    assert min(infeasible) > best_feasible


def test_plain_max_minus_min_strength_would_not_be_enough():
    """The docstring's counterexample: equal positive costs need A > min h."""
    problem = MixedPrecisionProblem(["u"], [1], [["4", "8"]], [[5.0, 5.0]], [[4, 8]], [[1, 1]])
    f = formulate_mixed_precision(problem, lambda_bits=0.0)
    assert f.params["one_hot_strength"] > 5.0
    assert f.bqm.energy({"u@4": 0, "u@8": 0}) > 5.0


@pytest.mark.parametrize("pairwise", [False, True])
@pytest.mark.parametrize("ratio", [0.15, 0.35])
def test_both_budget_encodings_meet_the_budget(pairwise, ratio):
    problem = random_problem(3, "prune,2,8,keep", pairwise=pairwise, seed=7)
    budget = ratio * problem.uncompressed_bits
    cap = formulate_mixed_precision(problem, lambda_bits=0.0, budget_ratio=ratio)
    slack = formulate_mixed_precision(problem, lambda_bits=0.0, budget_bits=budget, budget_encoding="slack",
                                      slack_resolution=30)
    assert slack.params["slack_variables"] and slack.num_variables <= 20
    for f in (cap, slack):
        assert f.tables["budget_bits"] == int(budget)
        _energy, sample = solve_bruteforce(f.bqm)
        decision = f.decode(sample)
        assert decision.feasible, decision.violations
        assert decision.details["size_bits"] <= budget
    # the slack QUBO's ground state is the optimum over one-hot states within the
    # budget at the (conservatively rounded) integer costs the constraint uses
    model = slack.params["onehot_model"]
    best = min(
        _objective(problem, c, 0.0, 0.0) for c in _feasible_states(problem) if model.total_cost(c) <= model.budget
    )
    ground, sample = solve_bruteforce(slack.bqm)
    assert ground == pytest.approx(best, abs=1e-9)
    assert slack.decode(sample).details["objective"] == pytest.approx(best, abs=1e-9)
    assert exact_reference(slack)["energy"] == pytest.approx(best, abs=1e-9)


def test_slack_reference_in_exact_bits_is_the_optimum_the_rounded_costs_can_miss():
    """The slack constraint rounds costs up, so its optimum can exclude decisions that fit the budget in bits;
    the reference in exact bits is the optimum over all of those."""
    gaps = []
    for seed in range(8):
        problem = random_problem(3, "prune,2,8,keep", pairwise=seed % 2 == 1, seed=seed)
        budget = 0.3 * problem.uncompressed_bits
        f = formulate_mixed_precision(problem, lambda_bits=0.0, budget_bits=budget, budget_encoding="slack",
                                      slack_resolution=6)
        ref = exact_reference(f)
        in_bits = ref["in_bits"]
        sizes = {c: problem.fixed_bits + sum(problem.cost_bits[u][k] for u, k in enumerate(c))
                 for c in _feasible_states(problem)}
        best = min(_objective(problem, c, 0.0, 0.0) for c, size in sizes.items() if size <= int(budget))
        assert in_bits["objective"] == pytest.approx(best, abs=1e-9)
        assert in_bits["decision"].feasible and in_bits["decision"].details["size_bits"] <= budget
        assert in_bits["objective"] <= ref["energy"] + 1e-9  # same lambdas: only the rounding differs
        assert ref["decision"].details["objective_in_bits"] == pytest.approx(ref["energy"], abs=1e-9)
        assert in_bits["qubo_optimum"] == pytest.approx(ref["energy"], abs=1e-9)
        gaps.append(ref["energy"] - in_bits["objective"])
    assert max(gaps) > 1e-6  # at this coarse resolution the rounding does exclude a better decision
    assert "in_bits" not in exact_reference(formulate_mixed_precision(problem, lambda_bits=0.5))  # no budget


def test_the_capacity_search_is_judged_on_the_budget_problem_at_the_lambda_given():
    """The capacity encoding's QUBO is at a raised lambda_bits; the budget problem keeps the lambda given."""
    for seed in range(4):
        problem = random_problem(4, "prune,2,4,8,keep", pairwise=seed % 2 == 1, seed=seed)
        budget = int(0.3 * problem.uncompressed_bits)
        f = formulate_mixed_precision(problem, lambda_bits=0.0, budget_bits=budget)
        assert f.params["lambda_bits"] > 0  # the search raised it
        ref = exact_reference(f)
        best = min(_objective(problem, c, 0.0, 0.0) for c in _feasible_states(problem)
                   if problem.fixed_bits + sum(problem.cost_bits[u][k] for u, k in enumerate(c)) <= budget)
        assert ref["in_bits"]["objective"] == pytest.approx(best, abs=1e-9)
        value = ref["decision"].details["objective_in_bits"]  # the QUBO optimum, scored at lambda_bits = 0
        assert value >= best - 1e-9 and ref["in_bits"]["qubo_optimum"] == pytest.approx(value, abs=1e-12)
        assert f.params["lambda_bits_given"] == 0.0


def test_capacity_search_is_monotone_and_tight():
    problem = random_problem(8, pairwise=True, seed=11)
    sizes = []
    for lam in [0.0, 0.01, 0.1, 1.0, 10.0, 100.0]:
        f = formulate_mixed_precision(problem, lambda_bits=lam)
        sizes.append(exact_reference(f)["decision"].details["size_bits"])
    assert sizes == sorted(sizes, reverse=True)
    f = formulate_mixed_precision(problem, lambda_bits=0.0, budget_ratio=0.3)
    trace = f.params["capacity_trace"]
    assert trace[0]["lambda_bits"] == 0.0 and trace[0]["size_bits"] > f.tables["budget_bits"]
    by_lambda = sorted((t["lambda_bits"], t["size_bits"]) for t in trace)
    assert [s for _, s in by_lambda] == sorted((s for _, s in by_lambda), reverse=True)
    assert f.tables["lambda_bits"] > 0
    start = f.params["capacity_breakpoint"]  # tight: every lambda tried below it is over budget
    below = [t for t in trace if t["lambda_bits"] < start * (1 - 1e-3)]
    assert below and all(t["size_bits"] > f.tables["budget_bits"] for t in below)
    # the QUBO sits well inside the interval where the first fitting optimum stays optimal
    assert f.tables["lambda_bits"] > 1.1 * start
    at = {t["lambda_bits"]: t["size_bits"] for t in trace}
    optimum = exact_reference(f)["decision"]
    assert optimum.details["size_bits"] == at[start] <= f.tables["budget_bits"]


def test_the_capacity_qubo_leaves_a_margin_to_the_over_budget_states():
    """Just past the breakpoint the fitting optimum leads the over-budget one by a hair; inside the interval
    where it stays optimal, by a clear margin (here both neighbours trail by over 1% of its energy)."""
    import itertools as it

    problem = random_problem(5, "prune,2,4,8,keep", pairwise=False, seed=3)
    f = formulate_mixed_precision(problem, lambda_bits=0.0, budget_ratio=0.3)
    model, budget = f.params["onehot_model"], f.tables["budget_bits"]
    energies = {c: model.energy(c) for c in it.product(*[range(len(o)) for o in problem.options])}
    size = {c: problem.fixed_bits + sum(problem.cost_bits[u][k] for u, k in enumerate(c)) for c in energies}
    best = min(energies, key=energies.get)
    assert size[best] <= budget
    runner_up = min(e for c, e in energies.items() if c != best)
    over = min(e for c, e in energies.items() if size[c] > budget)
    # 1e-4 past the breakpoint the over-budget state trailed by about 1e-6 of the optimum's energy
    assert runner_up - energies[best] > 1e-2 * energies[best] and over - energies[best] > 1e-2 * energies[best]


@pytest.mark.parametrize(("seed", "ratio", "lambda_sparsity"), [(5, 0.08, 0.5), (6, 0.4, 0.0)])
def test_a_narrow_optimal_interval_is_still_entered(seed, ratio, lambda_sparsity):
    """Intervals 0.2-0.6% wide: a 1% tolerance on lambda itself left lambda on the breakpoint."""
    problem = random_problem(4 + seed % 6, "prune,2,4,8,keep", seed=seed)
    f = formulate_mixed_precision(problem, lambda_bits=0.0, lambda_sparsity=lambda_sparsity, budget_ratio=ratio)
    start = f.params["capacity_breakpoint"]
    assert start * 1.0005 < f.tables["lambda_bits"] < start * 1.01
    assert exact_reference(f)["decision"].details["size_bits"] <= f.tables["budget_bits"]


def test_a_tie_at_lambda_zero_does_not_leave_lambda_at_a_float_tie():
    problem = MixedPrecisionProblem(["a", "b"], [1000, 1000], [["keep", "8"], ["keep", "8"]],
                                    [[0.0, 0.0], [0.0, 0.5]], [[32000, 8000], [32000, 8000]], [[1000, 1000]] * 2)
    f = formulate_mixed_precision(problem, lambda_bits=0.0, budget_bits=40000)
    assert f.params["capacity_breakpoint"] < 1e-15 < 1e-5 < f.tables["lambda_bits"]
    assert exact_reference(f)["decision"].choices == {"a": 8, "b": "keep"}


def test_budget_already_met_keeps_lambda_and_impossible_budget_is_refused():
    problem = random_problem(4, seed=2)
    f = formulate_mixed_precision(problem, lambda_bits=0.5, budget_ratio=1.0)
    assert f.tables["lambda_bits"] == 0.5
    size, budget = slack_budget(f)  # the budget does not bind: said, with the optimum's size
    assert size == exact_reference(f)["decision"].details["size_bits"] < budget == f.tables["budget_bits"]
    assert slack_budget(formulate_mixed_precision(problem, lambda_bits=0.0, budget_ratio=0.3)) is None  # binds
    assert slack_budget(formulate_mixed_precision(problem, lambda_bits=0.5)) is None  # no budget
    with pytest.raises(InvalidInputError, match="below the smallest size"):
        formulate_mixed_precision(problem, budget_bits=problem.min_bits - 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lambda_bits": -1}, "lambda_bits"),
        ({"lambda_sparsity": float("nan")}, "lambda_sparsity"),
        ({"budget_encoding": "penalty"}, "budget_encoding"),
        ({"budget_bits": 1e9, "budget_ratio": 0.5}, "either"),
        ({"budget_ratio": 4}, "fraction"),
        ({"slack_resolution": 0}, "slack_resolution"),
    ],
)
def test_invalid_parameters_are_plain_errors(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        formulate_mixed_precision(random_problem(2, seed=0), **kwargs)


def test_sampler_finds_the_exact_optimum_on_a_small_instance():
    from dwave.samplers import SimulatedAnnealingSampler

    problem = random_problem(6, pairwise=True, seed=5)
    f = formulate_mixed_precision(problem, lambda_bits=1.0)
    ref = exact_reference(f)
    ss = SimulatedAnnealingSampler().sample(f.bqm, num_reads=30, seed=1)
    assert ss.first.energy == pytest.approx(ref["energy"], abs=1e-9)
    assert f.decode(ss.first.sample).choices == ref["decision"].choices


# ----------------------------------------------------------------------------- paper encoding


@pytest.fixture(scope="module")
def digits():
    from core.data import digits_split
    from core.models import load_model

    return load_model("digits-cnn"), digits_split().val


def test_paper_encoding_variables_energy_and_decode(digits):
    from core.formulations.paper_encoding import build_paper_encoding
    from core.sensitivity import measure_sensitivity

    model, val = digits
    sens = measure_sensitivity(model, val, options="prune,2,4,8")
    f = build_paper_encoding(model, sens, beta=1.0, gamma=0.5)
    p = f.params["prune_variables"]
    assert len(p["conv1"]) == 16 and len(p["conv2"]) == 32 and p["fc"] == []  # classifier not prunable
    assert f.params["bit_variables"]["conv1"] == ["conv1#q0", "conv1#q1", "conv1#q2"]
    zero = {v: 0 for v in f.bqm.variables}
    assert f.bqm.energy(zero) == pytest.approx(0.0)
    d = f.decode(zero)
    assert d.choices == {"conv1": 8, "conv2": 8, "fc": 8} and d.feasible
    # all conv1 filters pruned and 7 bits removed from conv2 (-> 1 bit, rounded up to 2)
    s = dict(zero, **{v: 1 for v in p["conv1"]}, **{v: 1 for v in f.params["bit_variables"]["conv2"]})
    d = f.decode(s)
    assert d.choices["conv1"] == "prune" and d.choices["conv2"] == 2 and d.details["raw_bits"]["conv2"] == 1
    # one filter pruned: a mask, and the energy terms by hand (L_p = a^2/Z_p, R = f*b_max/Z_R)
    s = dict(zero, **{p["conv2"][3]: 1})
    d = f.decode(s)
    assert d.details["filter_masks"]["conv2"][3] and sum(d.details["filter_masks"]["conv2"]) == 1
    w = model.conv2.weight.detach()
    a = w.reshape(32, -1).abs().mean(1).double()
    z = f.params["normalisers"]
    expected = float(a[3] ** 2) / z["L_p"] - 0.5 * 144 * 8 / z["R"]
    assert f.bqm.energy(s) == pytest.approx(expected, rel=1e-6)


def test_paper_encoding_meets_a_budget(digits):
    from core.formulations.paper_encoding import build_paper_encoding
    from core.sensitivity import measure_sensitivity

    model, val = digits
    sens = measure_sensitivity(model, val, options="prune,2,4,8")
    f = build_paper_encoding(model, sens, gamma=0.05, budget_ratio=0.1, seed=0)
    from dwave.samplers import SimulatedAnnealingSampler

    ss = SimulatedAnnealingSampler().sample(f.bqm, num_reads=20, seed=0)
    d = f.decode(ss.first.sample)
    assert d.feasible and d.details["size_bits"] <= f.tables["budget_bits"]
    with pytest.raises(InvalidInputError, match="capacity"):
        build_paper_encoding(model, sens, budget_ratio=0.1, budget_encoding="slack")


@pytest.mark.parametrize("kwargs", [{}, {"pairwise": True}, {"groups": 2, "budget_ratio": 0.2}])
def test_build_on_digits_cnn_end_to_end(digits, kwargs):
    from core.compress.mixed_precision import apply_decision, decision_size_bits
    from core.formulations.mixed_precision import build_mixed_precision

    model, val = digits
    f = build_mixed_precision(model, val, options="prune,2,4,8,keep", lambda_bits=0.5, seed=0, **kwargs)
    assert f.method == "mixed-precision" and f.tables["sensitivity_method"] == "measured"
    assert len(f.params["onehot_groups"]) == len(f.tables["units"])
    ref = exact_reference(f)
    d = ref["decision"]
    assert d.feasible
    assert decision_size_bits(model, d) == d.details["size_bits"]
    compressed = apply_decision(model, d)
    assert sum(p.numel() for p in compressed.parameters()) == sum(p.numel() for p in model.parameters())
    if f.tables["budget_bits"] is not None:
        assert d.details["size_bits"] <= f.tables["budget_bits"]


def test_each_unit_gets_its_own_onehot_strength():
    """A shared maximum strength would freeze annealers on units with tiny option differences."""
    problem = random_problem(6, ("prune", 2, 4, 8, "keep"), seed=3)
    f = formulate_mixed_precision(problem, lambda_bits=0.5, lambda_sparsity=0.0)
    strengths = f.params["one_hot_strengths"]
    assert set(strengths) == set(problem.units)
    assert max(strengths.values()) == f.params["one_hot_strength"]
    assert min(strengths.values()) < max(strengths.values())


def test_precision_ratio_is_the_largest_coefficient_over_the_closest_options():
    from core.formulations.mixed_precision import precision_ratio

    bqm = dimod.BinaryQuadraticModel({"a": 2.0, "b": -0.5}, {("a", "b"): 4.0}, 0.0, "BINARY")
    assert precision_ratio(bqm, [np.array([1.0, 1.01, 3.0]), np.array([0.5, 0.5])]) == pytest.approx(400.0)
    assert precision_ratio(bqm, [np.array([1.0, 1.0])]) is None  # no two different options
    problem = random_problem(3, "prune,2,8,keep", seed=0)
    capacity = formulate_mixed_precision(problem, lambda_bits=0.0, budget_ratio=0.3)
    slack = formulate_mixed_precision(problem, lambda_bits=0.0, budget_ratio=0.3, budget_encoding="slack")
    assert slack.params["precision_ratio"] > 100 * capacity.params["precision_ratio"]  # its penalties dwarf all


def test_a_sampler_gets_the_seed_when_it_declares_one_and_its_errors_are_not_retried():
    from core.formulations.mixed_precision import _run_sampler

    bqm = dimod.BinaryQuadraticModel({"a": -1.0}, {}, 0.0, "BINARY")
    received: list[dict] = []

    class Seeded(dimod.ExactSolver):
        def __init__(self):
            super().__init__()
            self.parameters = {"seed": []}

        def sample(self, bqm, **kwargs):
            received.append(kwargs)
            return super().sample(bqm)

    class Failing(dimod.ExactSolver):
        def sample(self, bqm, **kwargs):
            received.append(kwargs)
            raise ValueError("the sampler's own error")

    _run_sampler(Seeded(), bqm, 7)
    _run_sampler(dimod.ExactSolver(), bqm, 7)  # declares no seed: not passed one, so no error
    with pytest.raises(ValueError, match="own error"):
        _run_sampler(Failing(), bqm, 7)
    assert received == [{"seed": 7}, {}]  # the failure was not swallowed and re-run without a seed
