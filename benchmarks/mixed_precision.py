"""F1 benchmark: mixed-precision pruning-quantization QUBO, solvers vs the exact optimum.

DESIGN section 6 and issue 3 ("Benchmarks"). Instances: digits-cnn (trained
weights, digits calibration), resnet18 (random weights, calibration on random
inputs) and the seeded synthetic instance of 50 units x 5 options
(:func:`core.formulations.mixed_precision.random_problem`), each with both
budget encodings (``capacity`` and ``slack``) at a budget of ``--budget-ratio``
of the fp32 size. ``--lambda-bits`` defaults to 0 so the budget, not the size
penalty, decides the size (with the formulation's default of 1 the 25 % budget
does not bind on digits-cnn or resnet18).

Tables (markdown, printed and written to ``--out``):

1. instances: QUBO size, one-hot strength, exact optimum and its method;
2. per sampler (sa, tabu, sqa, mock-qpu-pegasus, ga, rl): best-energy gap to
   the exact optimum (%), probability of the optimum per read and
   time-to-solution at 99 % (t_read = sample wall time / reads). ga and rl
   return distinct states, not independent reads, so for them a "read" is one
   independent run (``--baseline-runs`` seeds);
3. time for ga / rl to first reach sa's best energy, raising num_generations /
   num_iterations geometrically up to a cap, as a ratio to sa's run time;
4. when default sa misses 1 % in capacity mode: what fixes it (more sweeps, a
   colder beta_range, a larger one-hot strength);
5. the issue's scale note: a naive slack-penalty encoding of a 20-unit
   budgeted instance (as a new user would write it) vs the project's encodings,
   as the ratio of the true objective (total distortion) of the best feasible
   decoded decision to the MILP optimum;
6. one-hot vs the source paper's encoding on digits-cnn at the same budget:
   size and accuracy after compression.

    python -m benchmarks.mixed_precision [--quick] [--instances digits-cnn resnet18 synthetic]
        [--samplers sa tabu sqa mock-qpu-pegasus ga rl] [--budget-ratio 0.25] [--lambda-bits 0]
        [--seed 0] [--out benchmarks/results/mixed_precision.md]

``--quick`` is a smoke run (fewer reads, runs and caps; a few minutes at most).
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dimod
import numpy as np

from core.formulations.base import Formulation
from core.formulations.exact import OneHotModel, exact_reference, solve_milp
from core.formulations.mixed_precision import (
    MixedPrecisionProblem,
    build_mixed_precision,
    formulate_mixed_precision,
    random_problem,
)
from core.solvers import sampler_info, solve
from core.store.analysis import gap_percent, optimum_tolerance, success_probability, time_to_solution

ALL_INSTANCES = ("digits-cnn", "resnet18", "synthetic")
ALL_SAMPLERS = ("sa", "tabu", "sqa", "mock-qpu-pegasus", "ga", "rl")
ENCODINGS = ("capacity", "slack")
BASELINES = {"ga": "num_generations", "rl": "num_iterations"}
GAP_TARGET_PCT = 1.0
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "mixed_precision.md"


@dataclass
class Settings:
    quick: bool
    reads: dict[str, int]
    baseline_runs: int
    match_start: int
    match_cap: int
    match_time_cap_s: float
    naive_seeds: list[int]


def settings(args: argparse.Namespace) -> Settings:
    if args.quick:
        reads = {"sa": 50, "tabu": 5, "sqa": 5, "mock-qpu-pegasus": 20}
        return Settings(True, reads, 1, 25, 200, 10.0, [0])
    reads = {"sa": 100, "tabu": 20, "sqa": 20, "mock-qpu-pegasus": 100}
    runs = args.baseline_runs
    return Settings(False, reads, runs, 25, 3200, args.match_time_cap, list(range(args.naive_instances)))


# ----------------------------------------------------------------------------- instances


@dataclass
class Instance:
    name: str
    encoding: str
    formulation: Formulation
    exact: dict[str, Any]
    build_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} / {self.encoding}"

    @property
    def optimum(self) -> float:
        return float(self.exact["energy"])


def build_instances(names: list[str], args: argparse.Namespace) -> list[Instance]:
    from core.workspace import open_workspace

    out: list[Instance] = []
    for name in names:
        for enc in ENCODINGS:
            t0 = time.perf_counter()
            kw = dict(budget_ratio=args.budget_ratio, budget_encoding=enc, lambda_bits=args.lambda_bits, seed=args.seed)
            if name == "synthetic":
                f = formulate_mixed_precision(random_problem(50, seed=args.seed), **kw)
            else:
                ws = open_workspace(name, seed=args.seed)
                f = build_mixed_precision(ws.model, ws.calibration, **kw)
            build_s = time.perf_counter() - t0
            exact = exact_reference(f)
            if exact is None:
                print(f"# {name}/{enc}: no exact reference, skipped", file=sys.stderr)
                continue
            out.append(Instance(name, enc, f, exact, build_s))
            print(f"# built {name}/{enc}: {f.num_variables} vars, {f.num_interactions} interactions, "
                  f"{build_s:.1f} s", file=sys.stderr)
    return out


# ----------------------------------------------------------------------------- sampling helpers


def run_sampler(inst: Instance, name: str, *, num_reads: int, seed: int, **params: Any) -> dimod.SampleSet:
    """One call of ``core.solvers.solve`` on the instance (ga/rl get the one-hot groups)."""
    bqm = inst.formulation.bqm
    accepted = {p.name for p in sampler_info(name).parameters}
    if "groups" in accepted:
        params["groups"] = inst.formulation.params["onehot_groups"]
    if name.startswith("mock-qpu"):
        params.setdefault("embedding_timeout", 30.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ss = solve(bqm, name, num_reads=num_reads, seed=seed, **params)
    return ss


def hits(energy: float, optimum: float) -> bool:
    return energy <= optimum + optimum_tolerance(optimum)


def sample_seconds(ss: dimod.SampleSet, wall: float) -> float:
    return float(ss.info.get("timing", {}).get("sample_s", wall))


@dataclass
class QualityRow:
    instance: str
    sampler: str
    reads: str
    sample_s: float | None = None
    t_read_s: float | None = None
    best: float | None = None
    gap: float | None = None
    feasible: bool | None = None
    best_feasible_gap: float | None = None
    p: float | None = None
    tts: float | None = None
    note: str = ""


def feasible_energies(inst: Instance, ss: dimod.SampleSet) -> np.ndarray:
    """Objective of each (aggregated) sample's decision, +inf where it is not feasible.

    The decoded objective (the one-hot model's energy, what the exact optimum is
    measured in), not the BQM energy: the slack encoding's penalty terms cancel
    at magnitudes around 1e6, which leaves its BQM energies about 1e-9 off.
    """
    decisions = (inst.formulation.decode(row.sample) for row in ss.data(["sample"], sorted_by=None))
    return np.array([float(d.details["objective"]) if d.feasible else math.inf for d in decisions])


def quality(inst: Instance, name: str, cfg: Settings, seed: int) -> QualityRow:
    """Gap, feasibility, p(optimum) and TTS99 of one sampler on one instance.

    A read counts as reaching the optimum when it decodes to a feasible
    decision (one-hot, within budget) and its energy matches the exact
    optimum: in capacity mode an over-budget state can lie within 1e-9 of the
    optimum's energy, so energy alone would overcount.
    """
    opt = inst.optimum
    if name in BASELINES:
        runs = cfg.baseline_runs
        bests, feas_bests, times, lowest_feasible = [], [], [], []
        for r in range(runs):
            t0 = time.perf_counter()
            try:
                ss = run_sampler(inst, name, num_reads=10, seed=seed + r)
            except Exception as exc:  # noqa: BLE001 - a benchmark reports failures, it does not stop
                return QualityRow(inst.label, name, f"{runs} runs", note=f"error: {type(exc).__name__}: {exc}"[:160])
            times.append(sample_seconds(ss, time.perf_counter() - t0))
            bests.append(float(ss.first.energy))
            fe = feasible_energies(inst, ss)
            feas_bests.append(float(fe.min()))
            lowest_feasible.append(bool(np.isfinite(fe[int(np.argmin(ss.record.energy))])))
        i = int(np.argmin(bests))
        best, fbest = bests[i], min(feas_bests)
        p = success_probability(np.array(feas_bests), opt)
        t_read = float(np.mean(times))
        note = "read = one run of default settings"
        return QualityRow(inst.label, name, f"{runs} runs", float(np.sum(times)), t_read, best, gap_percent(best, opt),
                          lowest_feasible[i], gap_percent(fbest, opt) if math.isfinite(fbest) else None, p,
                          time_to_solution(t_read, p), note)
    reads = cfg.reads[name]
    t0 = time.perf_counter()
    try:
        ss = run_sampler(inst, name, num_reads=reads, seed=seed)
    except Exception as exc:  # noqa: BLE001
        return QualityRow(inst.label, name, str(reads), note=f"error: {type(exc).__name__}: {exc}"[:160])
    sample_s = sample_seconds(ss, time.perf_counter() - t0)
    occ = ss.record.num_occurrences
    total = int(occ.sum())
    fe = feasible_energies(inst, ss)
    p = success_probability(fe, opt, num_occurrences=occ)
    t_read = sample_s / total
    lowest = int(np.argmin(ss.record.energy))
    best = float(ss.record.energy[lowest])
    fbest = float(fe.min())
    note = ""
    if "chain_break_fraction" in ss.info:
        cbf = ss.info["chain_break_fraction"]
        cbf = float(np.mean(cbf)) if np.ndim(cbf) else float(cbf)
        emb = ss.info.get("embedding", {})
        method = emb.get("method", "") if isinstance(emb, dict) else ""
        note = f"embed {ss.info['timing'].get('embed_s', 0):.2f} s{' ' + method if method else ''}, chain breaks {cbf:.3f}"
    return QualityRow(inst.label, name, str(total), sample_s, t_read, best, gap_percent(best, opt),
                      bool(np.isfinite(fe[lowest])), gap_percent(fbest, opt) if math.isfinite(fbest) else None, p,
                      time_to_solution(t_read, p), note)


# ----------------------------------------------------------------------------- ga / rl vs sa


@dataclass
class MatchRow:
    instance: str
    sampler: str
    target: float
    sa_s: float
    budget: int | None = None
    time_s: float | None = None
    total_s: float = 0.0
    best: float | None = None
    note: str = ""


def match_sa(inst: Instance, name: str, sa_best: float, sa_s: float, cfg: Settings, seed: int) -> MatchRow:
    """Smallest num_generations / num_iterations (doubling) at which one run reaches sa's best energy."""
    param = BASELINES[name]
    row = MatchRow(inst.label, name, sa_best, sa_s)
    budget = cfg.match_start
    best = math.inf
    while budget <= cfg.match_cap:
        t0 = time.perf_counter()
        try:
            ss = run_sampler(inst, name, num_reads=1, seed=seed, **{param: budget})
        except Exception as exc:  # noqa: BLE001
            row.note = f"error: {type(exc).__name__}: {exc}"[:160]
            return row
        took = sample_seconds(ss, time.perf_counter() - t0)
        row.total_s += took
        best = min(best, float(ss.first.energy))
        row.best = best
        if hits(float(ss.first.energy), sa_best):
            row.budget, row.time_s = budget, took
            return row
        if row.total_s + 2.2 * took > cfg.match_time_cap_s:
            row.note = f"did not match within cap ({param} {budget}, time cap {cfg.match_time_cap_s:g} s)"
            return row
        budget *= 2
    row.note = f"did not match within cap ({param} <= {cfg.match_cap})"
    return row


# ----------------------------------------------------------------------------- sa investigation


@dataclass
class InvestigationRow:
    instance: str
    variant: str
    gap: float
    p: float
    sample_s: float
    beta_range: str


def investigate_sa(inst: Instance, cfg: Settings, seed: int) -> list[InvestigationRow]:
    reads = cfg.reads["sa"]
    sweeps = 3000 if cfg.quick else 10000
    default = solve(inst.formulation.bqm, "sa", num_reads=reads, seed=seed)
    hot, cold = (float(b) for b in default.info["beta_range"])
    variants: list[tuple[str, dimod.BinaryQuadraticModel, dict[str, Any]]] = [
        ("default", inst.formulation.bqm, {}),
        (f"num_sweeps={sweeps}", inst.formulation.bqm, {"num_sweeps": sweeps}),
        ("beta_range cold x100", inst.formulation.bqm, {"beta_range": (hot, 100 * cold)}),
        (f"beta_range cold x100, num_sweeps={sweeps}", inst.formulation.bqm,
         {"beta_range": (hot, 100 * cold), "num_sweeps": sweeps}),
        ("one-hot A x10", scaled_onehot_bqm(inst.formulation, 10.0), {}),
    ]
    rows = []
    for label, bqm, params in variants:
        ss = solve(bqm, "sa", num_reads=reads, seed=seed, **params)
        p = success_probability(feasible_energies(inst, ss), inst.optimum, num_occurrences=ss.record.num_occurrences)
        br = ss.info.get("beta_range")
        rows.append(InvestigationRow(inst.label, label, gap_percent(float(ss.first.energy), inst.optimum) or 0.0, p,
                                     sample_seconds(ss, 0.0), f"{float(br[0]):.3g} .. {float(br[1]):.3g}"))
    return rows


def scaled_onehot_bqm(formulation: Formulation, factor: float) -> dimod.BinaryQuadraticModel:
    """The formulation's BQM with its one-hot penalty multiplied by ``factor`` (same feasible energies)."""
    strengths = formulation.params["one_hot_strengths"]
    bqm = formulation.bqm.copy()
    for group in formulation.params["onehot_groups"]:
        unit = str(group[0]).rsplit("@", 1)[0]
        bqm.add_linear_equality_constraint([(v, 1.0) for v in group], (factor - 1.0) * strengths[unit], -1.0)
    return bqm


# ----------------------------------------------------------------------------- naive slack encoding


def naive_slack_bqm(problem: MixedPrecisionProblem, budget_bits: int) -> tuple[dimod.BinaryQuadraticModel, float]:
    """What a new user would write: distortion, one-hot and budget penalties at 10x the largest bias.

    Costs are the raw bit counts (no scaling), the budget is the raw bit budget
    minus the fixed part, and both penalties use lagrange = 10 x the largest
    objective bias, with dimod's ``add_linear_inequality_constraint`` slack.
    """
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for unit, opts, dist in zip(problem.units, problem.options, problem.distortion):
        for k, d in zip(opts, dist):
            bqm.add_linear(f"{unit}@{k}", float(d))
    lagrange = 10.0 * max(abs(b) for b in bqm.linear.values())
    for unit, opts in zip(problem.units, problem.options):
        bqm.add_linear_equality_constraint([(f"{unit}@{k}", 1.0) for k in opts], lagrange, -1.0)
    terms = [(f"{u}@{k}", int(c)) for u, opts, costs in zip(problem.units, problem.options, problem.cost_bits)
             for k, c in zip(opts, costs) if c]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bqm.add_linear_inequality_constraint(terms, lagrange_multiplier=lagrange, label="budget",
                                             ub=int(budget_bits - problem.fixed_bits))
    return bqm, lagrange


def true_choice(problem: MixedPrecisionProblem, sample: dict[str, int]) -> list[int] | None:
    """Option index per unit if the sample is one-hot, else None."""
    choice = []
    for unit, opts in zip(problem.units, problem.options):
        on = [i for i, k in enumerate(opts) if sample.get(f"{unit}@{k}", 0)]
        if len(on) != 1:
            return None
        choice.append(on[0])
    return choice


def assess(problem: MixedPrecisionProblem, ss: dimod.SampleSet, budget: int) -> tuple[float | None, str, int]:
    """How usable a sampler's reads are for the true budgeted problem.

    Returns (total distortion of the lowest-energy feasible read, a description
    of the lowest-energy read, number of feasible reads). Feasible: exactly one
    option per unit and size within the budget.
    """
    obj, n_ok = None, 0
    described = ""
    for datum in ss.data(["sample", "energy", "num_occurrences"]):  # lowest energy first
        sample = datum.sample
        choice = true_choice(problem, sample)
        size = problem.fixed_bits + sum(c for unit, opts, costs in zip(problem.units, problem.options,
                                                                      problem.cost_bits)
                                        for k, c in zip(opts, costs) if sample.get(f"{unit}@{k}", 0))
        ok = choice is not None and size <= budget
        if not described:
            broken = sum(1 for unit, opts in zip(problem.units, problem.options)
                         if sum(sample.get(f"{unit}@{k}", 0) for k in opts) != 1)
            described = (f"{broken} unit(s) not one-hot, size {size / budget:.2f} x budget"
                         + (" (feasible)" if ok else ""))
        if ok:
            n_ok += int(datum.num_occurrences)
            if obj is None:
                obj = float(sum(problem.distortion[u][k] for u, k in enumerate(choice)))
    return obj, described, n_ok


@dataclass
class NaiveRow:
    seed: int
    encoding: str
    sampler: str
    vars: int
    interactions: int
    ratio: float | None
    lowest: str
    feasible_reads: str


def naive_study(cfg: Settings, args: argparse.Namespace) -> tuple[list[NaiveRow], list[str]]:
    rows: list[NaiveRow] = []
    notes: list[str] = []
    reads = {"sa": cfg.reads["sa"], "tabu": cfg.reads["tabu"]}
    for inst_seed in cfg.naive_seeds:
        problem = random_problem(20, seed=inst_seed)
        budget = math.floor(args.budget_ratio * problem.uncompressed_bits)
        groups = [[f"{u}@{k}" for k in opts] for u, opts in zip(problem.units, problem.options)]
        milp = solve_milp(OneHotModel(groups, [np.asarray(d) for d in problem.distortion],
                                      cost=[np.asarray(c) for c in problem.cost_bits],
                                      budget=budget - problem.fixed_bits))
        assert milp is not None
        opt = milp.energy
        naive, lagrange = naive_slack_bqm(problem, budget)
        encodings: list[tuple[str, dimod.BinaryQuadraticModel]] = [("naive slack (10x max bias)", naive)]
        for enc in ENCODINGS:
            f = formulate_mixed_precision(problem, budget_bits=budget, budget_encoding=enc, lambda_bits=0.0,
                                          seed=inst_seed)
            encodings.append((f"project {enc}", f.bqm))
            if enc == "capacity":
                ex = exact_reference(f)
                ch = true_choice(problem, ex["sample"])
                cap_obj = sum(problem.distortion[u][k] for u, k in enumerate(ch))
                notes.append(f"instance seed {inst_seed}: MILP optimum of the total distortion {opt:.6g}; "
                             f"the exact optimum of the capacity QUBO has distortion {cap_obj:.6g} "
                             f"(ratio {cap_obj / opt:.4f}: the Lagrangian point may leave budget unused); "
                             f"naive lagrange {lagrange:.3g}, {naive.num_variables} variables")
        for label, bqm in encodings:
            for sampler in ("sa", "tabu"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ss = solve(bqm, sampler, num_reads=reads[sampler], seed=args.seed)
                obj, lowest, n_ok = assess(problem, ss, budget)
                total = int(ss.record.num_occurrences.sum())
                rows.append(NaiveRow(inst_seed, label, sampler, bqm.num_variables, bqm.num_interactions,
                                     None if obj is None else obj / opt, lowest, f"{n_ok}/{total}"))
    return rows, notes


# ----------------------------------------------------------------------------- paper vs onehot


def paper_vs_onehot(args: argparse.Namespace, cfg: Settings) -> list[dict[str, Any]]:
    from core.evaluate import accuracy_and_loss, size_bits
    from core.runs import compress, compressed_size_bits
    from core.workspace import open_workspace

    ws = open_workspace("digits-cnn", seed=args.seed)
    base_bits = size_bits(ws.model)
    base_acc = accuracy_and_loss(ws.model, ws.data).accuracy
    rows: list[dict[str, Any]] = [{"encoding": "none (fp32)", "solver": "-", "vars": "-", "feasible": True,
                                   "size_bits": base_bits, "ratio": 1.0, "accuracy": base_acc, "note": ""}]
    for enc in ("onehot", "paper"):
        t0 = time.perf_counter()
        f = build_mixed_precision(ws.model, ws.calibration, budget_ratio=args.budget_ratio, lambda_bits=args.lambda_bits,
                                  encoding=enc, seed=args.seed)
        build_s = time.perf_counter() - t0
        candidates = []
        ex = exact_reference(f)
        if ex is not None:
            candidates.append((f"exact ({ex['method']})", ex["sample"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ss = solve(f.bqm, "sa", num_reads=cfg.reads["sa"], seed=args.seed)
        candidates.append(("sa", dict(ss.first.sample)))
        for solver, sample in candidates:
            decision = f.decode(sample)
            model = compress(ws, f, decision)
            bits = compressed_size_bits(ws, f, decision)
            acc = accuracy_and_loss(model, ws.data).accuracy
            choices = ", ".join(f"{u}:{o}" for u, o in decision.choices.items())
            masks = decision.details.get("filter_masks") or {}
            if masks:
                choices += "; pruned filters " + ", ".join(f"{u}:{sum(m)}/{len(m)}" for u, m in masks.items())
            rows.append({"encoding": enc, "solver": solver, "vars": f.num_variables, "feasible": decision.feasible,
                         "size_bits": bits, "ratio": base_bits / bits if bits else math.inf, "accuracy": acc,
                         "note": f"{choices} (build {build_s:.1f} s)"})
    return rows


# ----------------------------------------------------------------------------- output


def fmt(x: Any, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf"
        if math.isnan(x):
            return "nan"
        return format(x, spec)
    return str(x)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run: fewer reads, runs and caps")
    parser.add_argument("--instances", nargs="+", default=list(ALL_INSTANCES), choices=ALL_INSTANCES)
    parser.add_argument("--samplers", nargs="+", default=list(ALL_SAMPLERS), choices=ALL_SAMPLERS)
    parser.add_argument("--budget-ratio", type=float, default=0.25, help="budget as a fraction of the fp32 size")
    parser.add_argument("--lambda-bits", type=float, default=0.0, help="starting size penalty (0: the budget decides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-runs", type=int, default=3, help="independent ga/rl runs per instance")
    parser.add_argument("--match-time-cap", type=float, default=45.0,
                        help="seconds of ga/rl runs per instance before giving up on matching sa")
    parser.add_argument("--naive-instances", type=int, default=3, help="20-unit instances in the scale note study")
    parser.add_argument("--skip", nargs="*", default=[], choices=["quality", "match", "investigate", "naive", "paper"])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown output (default: {DEFAULT_OUT.relative_to(DEFAULT_OUT.parents[2])}; "
                             "--quick writes no file unless --out is given)")
    args = parser.parse_args(argv)
    if args.out is None and not args.quick:
        args.out = DEFAULT_OUT
    cfg = settings(args)
    command = "python -m benchmarks.mixed_precision " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                         else sys.argv[1:]))
    t_start = time.perf_counter()
    out: list[str] = [
        "# F1 mixed-precision QUBO benchmark",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.machine()}, {platform.python_version()}, {platform.system()}; "
        f"budget {args.budget_ratio:g} x fp32 size, lambda_bits start {args.lambda_bits:g}, seed {args.seed}; "
        f"reads {cfg.reads} (ga/rl: {cfg.baseline_runs} run(s) of defaults).",
        "",
    ]

    instances = build_instances(args.instances, args)
    rows = []
    for inst in instances:
        f = inst.formulation
        n, m = f.num_variables, f.num_interactions
        d = inst.exact["decision"]
        rows.append([inst.label, n, m, fmt(2 * m / (n * (n - 1)) if n > 1 else 0.0, ".2f"),
                     fmt(f.params["one_hot_strength"]), fmt(f.params["lambda_bits"], ".4g"),
                     f.params["budget_bits"], d.details["size_bits"], fmt(inst.optimum, ".6g"), inst.exact["method"],
                     fmt(inst.build_s, ".1f")])
    out += ["## Instances", "",
            table(["instance / budget encoding", "vars", "interactions", "density", "one-hot A", "lambda_bits",
                   "budget bits", "optimum size bits", "exact optimum", "exact by", "build s"], rows), ""]
    print("\n".join(out), flush=True)

    sa_runs: dict[str, tuple[float, float]] = {}
    if "quality" not in args.skip:
        qrows: list[QualityRow] = []
        for inst in instances:
            for name in args.samplers:
                row = quality(inst, name, cfg, args.seed)
                qrows.append(row)
                if name == "sa" and row.best is not None:
                    sa_runs[inst.label] = (row.best, row.sample_s or 0.0)
                print(f"# {inst.label} {name}: gap {fmt(row.gap)} % {row.note}", file=sys.stderr, flush=True)
        section = ["## Solution quality vs the exact optimum", "",
                   "gap = (best energy - optimum) / |optimum| in %, over all reads; feasible = the lowest-energy "
                   "read decodes to a one-hot, within-budget decision; feasible gap = the same gap over feasible "
                   "reads only; p = probability per read of a feasible read at the optimum energy; TTS99 = t_read "
                   "x ln(0.01) / ln(1 - p), t_read = sample time / reads. For ga and rl a read is one independent "
                   "run with its default budget (their samples are distinct states of one run, not independent "
                   "reads).", "",
                   table(["instance / encoding", "sampler", "reads", "sample s", "t_read s", "best energy", "gap %",
                          "feasible", "feasible gap %", "p(opt)", "TTS99 s", "note"],
                         [[r.instance, r.sampler, r.reads, fmt(r.sample_s), fmt(r.t_read_s), fmt(r.best, ".6g"),
                           fmt(r.gap), fmt(r.feasible), fmt(r.best_feasible_gap), fmt(r.p, ".2f"), fmt(r.tts),
                           r.note] for r in qrows]), ""]
        caps = [r for r in qrows if r.sampler == "sa" and r.instance.endswith("/ capacity")]
        verdict = ["### Target: sa (default settings) within 1 % of the optimum in capacity mode", ""]
        for r in caps:
            ok = r.gap is not None and r.gap <= GAP_TARGET_PCT
            verdict.append(f"- {r.instance}: gap {fmt(r.gap)} % -> {'met' if ok else 'MISSED'} "
                           f"(lowest-energy read feasible: {fmt(r.feasible)}; best feasible read gap "
                           f"{fmt(r.best_feasible_gap)} %)")
        section += verdict + [""]
        out += section
        print("\n".join(section), flush=True)

    if "match" not in args.skip and sa_runs:
        mrows: list[MatchRow] = []
        for inst in instances:
            if inst.label not in sa_runs:
                continue
            sa_best, sa_s = sa_runs[inst.label]
            for name in BASELINES:
                if name in args.samplers:
                    mrows.append(match_sa(inst, name, sa_best, sa_s, cfg, args.seed))
                    r = mrows[-1]
                    print(f"# match {inst.label} {name}: {r.budget} {fmt(r.time_s)} s {r.note}", file=sys.stderr,
                          flush=True)
        section = ["## Time for ga / rl to reach sa's best energy", "",
                   f"One run per budget, budget doubled from {cfg.match_start} up to {cfg.match_cap} "
                   f"(or {cfg.match_time_cap_s:g} s of runs); time = sample time of the first matching run; "
                   "ratio = that time / sa's sample time (all its reads).", "",
                   table(["instance / encoding", "sampler", "sa best", "sa s", "matched at", "time s", "ratio to sa",
                          "runs total s", "best reached", "note"],
                         [[r.instance, r.sampler, fmt(r.target, ".6g"), fmt(r.sa_s), fmt(r.budget), fmt(r.time_s),
                           fmt(None if r.time_s is None else r.time_s / max(r.sa_s, 1e-9), ".3g"), fmt(r.total_s),
                           fmt(r.best, ".6g"), r.note] for r in mrows]), ""]
        out += section
        print("\n".join(section), flush=True)

    if "investigate" not in args.skip and "sa" in args.samplers:
        irows: list[InvestigationRow] = []
        for inst in instances:
            irows += investigate_sa(inst, cfg, args.seed)
            print(f"# investigated {inst.label}", file=sys.stderr, flush=True)
        section = ["## sa: what closes the gap", "",
                   "Same reads and seed as above. 'one-hot A x10' multiplies the formulation's one-hot penalties. "
                   "The formulation gives each unit its own one-hot strength A_u (a single shared maximum left "
                   "sa 3.9-5.6 % above the optimum on resnet18 and the synthetic instance).", "",
                   table(["instance / encoding", "sa variant", "gap %", "p(opt)", "sample s", "beta_range"],
                         [[r.instance, r.variant, fmt(r.gap), fmt(r.p, ".2f"), fmt(r.sample_s), r.beta_range]
                          for r in irows]), ""]
        out += section
        print("\n".join(section), flush=True)

    if "naive" not in args.skip:
        nrows, notes = naive_study(cfg, args)
        section = ["## Scale note: a naive slack encoding of a 20-unit budgeted instance", "",
                   "Objective: total distortion subject to size <= budget (the issue's setting), budget "
                   f"{args.budget_ratio:g} x fp32 size. ratio = total distortion of the lowest-energy feasible read "
                   "(one-hot and within budget) / MILP optimum (1 = optimal; '-' = no feasible read). The last "
                   "columns say what the sampler's own answer (its lowest-energy read) looks like.", "",
                   *[f"- {n}" for n in notes], "",
                   table(["instance seed", "encoding", "sampler", "vars", "interactions", "ratio to MILP",
                          "lowest-energy read", "feasible reads"],
                         [[r.seed, r.encoding, r.sampler, r.vars, r.interactions, fmt(r.ratio, ".4g"),
                           r.lowest, r.feasible_reads] for r in nrows]), ""]
        out += section
        print("\n".join(section), flush=True)

    if "paper" not in args.skip:
        prows = paper_vs_onehot(args, cfg)
        section = ["## One-hot vs the paper's encoding on digits-cnn (same budget)", "",
                   "Accuracy on the digits test split after applying the decoded decision (sa best sample; "
                   "the exact optimum where an exact reference applies).", "",
                   table(["encoding", "solver", "vars", "feasible", "size bits", "compression", "accuracy",
                          "decision"],
                         [[r["encoding"], r["solver"], r["vars"], fmt(r["feasible"]), r["size_bits"],
                           fmt(r["ratio"], ".2f"), fmt(r["accuracy"], ".4f"), r["note"]] for r in prows]), ""]
        out += section
        print("\n".join(section), flush=True)

    tail = f"Total benchmark time: {time.perf_counter() - t_start:.0f} s."
    out += [tail, ""]
    print(tail)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(out))
        print(f"# written {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
