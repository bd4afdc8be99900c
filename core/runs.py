"""One compression run, stage by stage: formulate -> solve -> decode ->
compress -> evaluate -> report (DESIGN section 5).

Each stage is a plain function so the app can cache and show them one at a
time; :func:`run_from_args` chains them for ``python -m core run``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
from torch import nn

from core.errors import InvalidInputError
from core.evaluate import Quality, accuracy_and_loss, measure_latency, size_bits, sparsity
from core.formulations.base import Decision, Formulation
from core.formulations.filter_pruning import DEFAULT_IMPORTANCE, DEFAULT_MU
from core.jsonable import to_jsonable
from core.sensitivity.filters import IMPORTANCE_KINDS
from core.workspace import Workspace, open_workspace

METHODS = ("mixed-precision", "filter-pruning", "adaround", "bnn", "qianets")
IMPLEMENTED_METHODS = ("mixed-precision", "filter-pruning", "adaround")
# methods solved as many independent QUBOs, run by core.methods.<module>.run_<module>
MULTI_QUBO_METHODS = ("filter-pruning", "adaround")
Progress = Callable[[int, int, str], None]


@dataclass
class SolveResult:
    sampleset: dimod.SampleSet
    sampler: str
    num_reads: int
    seed: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def timing(self) -> dict[str, float]:
        return dict(self.sampleset.info.get("timing", {}))


# ----------------------------------------------------------------------------- stages


def formulate(ws: Workspace, method: str = "mixed-precision", *, progress: Progress | None = None,
              seed: int = 0, **options: Any) -> Formulation:
    """Build the QUBO of ``method`` for the workspace's model."""
    if method not in METHODS:
        raise InvalidInputError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if method not in IMPLEMENTED_METHODS:
        raise InvalidInputError(f"The {method} method is not available in this version yet.")
    if method in MULTI_QUBO_METHODS:
        return subproblem(ws, method, **options)
    from core.formulations.mixed_precision import build_mixed_precision

    return build_mixed_precision(ws.model, ws.calibration, seed=seed, progress=progress, **options)


def subproblem(ws: Workspace, method: str, **options: Any) -> Formulation:
    """One representative subproblem of a multi-QUBO method (what the app
    shows): adaround ``layer, channel, bits, scale, target``; filter-pruning ``layer,
    sparsity, importance, mu`` (and optionally precomputed ``stats``)."""
    needed = {"adaround": ("layer", "bits"), "filter-pruning": ("layer", "sparsity")}.get(method, ())
    missing = [k for k in needed if k not in options]
    if missing:
        raise InvalidInputError(f"The {method} subproblem needs {', '.join(missing)}.")
    if method == "adaround":
        from core.methods.adaround import channel_problem

        return channel_problem(ws, options["layer"], int(options.get("channel", 0)), bits=int(options["bits"]),
                               scale=options.get("scale", "minmax"), target=options.get("target", "layer"))
    if method == "filter-pruning":
        from core.methods.filter_pruning import layer_problem

        return layer_problem(ws, options["layer"], sparsity=float(options["sparsity"]),
                             importance=options.get("importance", DEFAULT_IMPORTANCE), mu=float(options.get("mu", DEFAULT_MU)),
                             stats=options.get("stats"))
    raise InvalidInputError(f"{method} is not solved as separate subproblems.")


def run_method(ws: Workspace, method: str, *, sampler: str = "sa", num_reads: int = 100, seed: int = 0,
               options: Mapping[str, Any] | None = None, sampler_params: Mapping[str, Any] | None = None,
               sampler_config: Mapping[str, Any] | None = None, compute_exact: bool = True,
               latency_repeats: int = 20,
               progress: Callable[[float, str], None] | None = None) -> tuple[dict[str, Any], dimod.BinaryQuadraticModel]:
    """A whole run of a multi-QUBO method; returns (report, representative BQM)."""
    opts = dict(options or {})
    common = {"sampler": sampler, "num_reads": num_reads, "seed": seed, "sampler_params": sampler_params,
              "sampler_config": sampler_config, "compute_exact": compute_exact,
              "latency_repeats": latency_repeats, "progress": progress}
    if method == "adaround":
        from core.methods.adaround import RELAXATION_ITERATIONS, run_adaround

        return run_adaround(ws, bits=int(opts.get("bits", 4)), scale=opts.get("scale", "minmax"),
                            use_quantized_inputs=bool(opts.get("use_quantized_inputs", True)),
                            layers=opts.get("layers"),
                            relaxation_iterations=opts.get("relaxation_iterations", RELAXATION_ITERATIONS),
                            target=opts.get("target", "layer"), **common)
    if method == "filter-pruning":
        from core.methods.filter_pruning import run_filter_pruning

        return run_filter_pruning(ws, sparsity=float(opts.get("sparsity", 0.5)),
                                  importance=opts.get("importance", DEFAULT_IMPORTANCE), mu=float(opts.get("mu", DEFAULT_MU)),
                                  refine=opts.get("refine"), finetune_epochs=int(opts.get("finetune_epochs", 0)),
                                  **common)
    if method not in METHODS:
        raise InvalidInputError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    raise InvalidInputError(f"The {method} method is not available in this version yet.")


def solve_formulation(formulation: Formulation, sampler: str = "sa", *, num_reads: int = 100, seed: int = 0,
                      config: Mapping[str, Any] | None = None, progress: Callable[[int, int], None] | None = None,
                      **params: Any) -> SolveResult:
    """Sample the formulation's BQM with a registry sampler."""
    from core.solvers import sampler_info, solve

    info = sampler_info(sampler)
    if "groups" in {p.name for p in info.parameters} and "groups" not in params:
        groups = formulation.params.get("onehot_groups")
        if groups:
            params["groups"] = groups
    sampleset = solve(formulation.bqm, sampler, num_reads=num_reads, seed=seed, config=config,
                      progress_callback=progress, **params)
    shown = {k: v for k, v in params.items() if k != "groups"}
    return SolveResult(sampleset, info.name, num_reads, seed, {**dict(config or {}), **shown})


def decode_reads(formulation: Formulation, sampleset: dimod.SampleSet) -> list[Decision]:
    """The decoded decision of every distinct read, in record order (decoded once, shared by
    :func:`best_decision`, :func:`read_outcomes` and :func:`build_report`)."""
    return [formulation.decode(sample) for sample in sampleset.samples(sorted_by=None)]


def best_decision(formulation: Formulation, sampleset: dimod.SampleSet,
                  decisions: Sequence[Decision] | None = None) -> tuple[dict, Decision]:
    """The best *feasible* read (lowest decision objective, else lowest energy) and its decoded decision.

    A penalty QUBO's lowest-energy read can break a constraint (over budget,
    not one-hot) when the sampler misses the optimum; applying it would hand the
    user a model that breaks their budget. So the best feasible read wins, and
    only when no read is feasible does the lowest-energy one come back (its
    Decision says feasible=False and lists the violations). ``decisions`` are
    :func:`decode_reads`' (computed when not given).
    """
    if decisions is None:
        decisions = decode_reads(formulation, sampleset)
    samples = list(sampleset.samples(sorted_by=None))
    by_energy = np.argsort(np.asarray(sampleset.record.energy, dtype=float), kind="stable")
    feasible = [i for i in by_energy if decisions[i].feasible]
    if feasible:
        # by the decision's objective where the decoder gives one: with slack bits off their best, a read
        # of the optimal decision can lie above one of a worse decision (min keeps energy order on ties)
        i = min(feasible, key=lambda j: _objective(decisions[j]) or 0.0)
    else:
        i = by_energy[0]
    return dict(samples[i]), decisions[i]


def _objective(decision: Decision) -> float | None:
    """The decision's objective (what the exact optimum measures), None when the decoder reports none."""
    value = decision.details.get("objective")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def compress(ws: Workspace, formulation: Formulation, decision: Decision) -> nn.Module:
    """A compressed copy of the workspace's model."""
    if formulation.method == "mixed-precision":
        from core.compress.mixed_precision import apply_decision

        masks = decision.details.get("filter_masks")
        return apply_decision(ws.model, decision, filter_masks=masks)
    raise InvalidInputError(f"Compression for {formulation.method} is not available yet.")


def compressed_size_bits(ws: Workspace, formulation: Formulation, decision: Decision) -> int:
    if formulation.method == "mixed-precision":
        from core.compress.mixed_precision import decision_size_bits

        return int(decision_size_bits(ws.model, decision, filter_masks=decision.details.get("filter_masks")))
    return size_bits(ws.model)


def evaluate_pair(ws: Workspace, compressed: nn.Module, size_after: int, *, latency_repeats: int = 20,
                  threads: int = 1, before: Quality | None = None, after: Quality | None = None) -> dict[str, float]:
    """Accuracy, size, sparsity and latency before and after compression.

    ``before`` / ``after``: the original's / compressed model's quality on ``ws.data`` when the caller
    has already measured it (a method that scores its baselines too), so the data is not run again.
    """
    before = before if before is not None else accuracy_and_loss(ws.model, ws.data)
    after = after if after is not None else accuracy_and_loss(compressed, ws.data)
    lat_before = measure_latency(ws.model, ws.input_shape, batch_sizes=(1,), repeats=latency_repeats,
                                 threads=threads)
    lat_after = measure_latency(compressed, ws.input_shape, batch_sizes=(1,), repeats=latency_repeats,
                                threads=threads)
    size_before = size_bits(ws.model)
    return {
        "accuracy_before": before.accuracy,
        "accuracy_after": after.accuracy,
        "loss_before": before.loss,
        "loss_after": after.loss,
        "size_bits_before": size_before,
        "size_bits_after": size_after,
        "compression_ratio": size_before / size_after if size_after else math.inf,
        "sparsity": sparsity(compressed),
        "latency_ms_before": lat_before.ms_per_image[1],
        "latency_ms_after": lat_after.ms_per_image[1],
        "latency_threads": threads,
        "num_examples": before.n,
    }


def exact_reference(formulation: Formulation) -> dict[str, Any] | None:
    if formulation.method == "mixed-precision":
        from core.formulations.exact import exact_reference as mp_exact

        ref = mp_exact(formulation)
        if ref is None:
            return None
        out = {"energy": float(ref["energy"]), "method": ref["method"]}
        if "in_bits" in ref:  # with a budget: the budget problem's optimum (budget in exact bits)
            in_bits = ref["in_bits"] or {}
            for key, field_name in (("objective_in_bits", "objective"), ("qubo_optimum_in_bits", "qubo_optimum")):
                out[key] = float(in_bits[field_name]) if field_name in in_bits else None
        return out
    return None


# ----------------------------------------------------------------------------- report


def energies_of(sampleset: dimod.SampleSet) -> list[float]:
    """Energy of every read (aggregated samples expanded by num_occurrences)."""
    energies = np.asarray(sampleset.record.energy, dtype=float)
    counts = np.asarray(sampleset.record.num_occurrences, dtype=int)
    return np.repeat(energies, counts).tolist()


def feasible_reads(formulation: Formulation, sampleset: dimod.SampleSet) -> list[bool]:
    """Whether each read decodes to a feasible decision, in the order of :func:`energies_of`."""
    return read_outcomes(formulation, sampleset)[0]


def read_outcomes(formulation: Formulation, sampleset: dimod.SampleSet,
                  decisions: Sequence[Decision] | None = None) -> tuple[list[bool], list[float] | None]:
    """Per read, in the order of :func:`energies_of`: whether it decodes to a feasible decision, and that
    decision's objective (None where infeasible; no list when the decoder reports no objective).
    ``decisions`` are :func:`decode_reads`' (computed when not given).

    The objective is what the exact optimum is measured in; a read's BQM energy can differ from it by
    rounding (the slack encoding's penalty terms cancel around 1e6) or by non-optimal slack bits."""
    if decisions is None:
        decisions = decode_reads(formulation, sampleset)
    counts = np.asarray(sampleset.record.num_occurrences, dtype=int)
    flags = np.repeat(np.asarray([bool(d.feasible) for d in decisions], dtype=bool), counts).tolist()
    values = [_objective(d) for d in decisions]
    if None in values:
        return flags, None
    objectives = [v if d.feasible else None for d, v in zip(decisions, values, strict=True)]
    return flags, [value for value, count in zip(objectives, counts.tolist(), strict=True) for _ in range(count)]


def infeasible_reads(decisions: Sequence[Decision], sampleset: dimod.SampleSet) -> dict[str, int]:
    """How many reads break each kind of constraint (a read can count under several kinds), from
    :func:`decode_reads`' decisions."""
    counts: dict[str, int] = {}
    for decision, n in zip(decisions, sampleset.record.num_occurrences.tolist(), strict=True):
        if not decision.feasible:
            for kind in decision.violation_kinds or ["constraint broken"]:
                counts[kind] = counts.get(kind, 0) + int(n)
    return counts


def build_report(*, model: str, formulation: Formulation, solved: SolveResult, sample: dict,
                 decision: Decision, exact: dict | None, metrics: Mapping[str, Any],
                 timing: Mapping[str, float], data: str = "",
                 decisions: Sequence[Decision] | None = None) -> dict[str, Any]:
    ss = solved.sampleset
    info = ss.info
    tables = formulation.tables
    if decisions is None:
        decisions = decode_reads(formulation, ss)
    flags, objectives = read_outcomes(formulation, ss, decisions)
    lowest = int(np.argmin(np.asarray(ss.record.energy, dtype=float)))
    report: dict[str, Any] = {
        "model": model,
        "data": data,
        "method": formulation.method,
        "sampler": solved.sampler,
        "seed": solved.seed,
        "num_reads": solved.num_reads,
        "params": {**{k: v for k, v in formulation.params.items() if _is_plain(v)}, "sampler": solved.params},
        "qubo": {
            "num_variables": formulation.bqm.num_variables,
            "num_interactions": formulation.bqm.num_interactions,
            "vartype": formulation.bqm.vartype.name,
        },
        "energies": energies_of(ss),
        "feasible_reads": flags,
        "read_objectives": objectives,
        "feasible_fraction": sum(flags) / len(flags) if flags else 0.0,
        "infeasible_reads": infeasible_reads(decisions, ss),
        "lowest_energy_read": {"energy": float(ss.first.energy), "feasible": bool(decisions[lowest].feasible)},
        "best": {
            "energy": float(formulation.bqm.energy(sample)),
            "feasible": bool(decision.feasible),
            "objective": decision.details.get("objective"),
            "objective_in_bits": decision.details.get("objective_in_bits"),
            "violations": list(decision.violations),
            "decision": decision.choices,
            "sample": sample,
        },
        "exact": exact,
        "metrics": dict(metrics),
        "timing": dict(timing),
        "units": tables.get("units", []),
        "budget_bits": tables.get("budget_bits"),
        "lambda_bits": tables.get("lambda_bits"),
        "lambda_sparsity": tables.get("lambda_sparsity"),
    }
    for key in ("chain_strength", "chain_break_fraction", "embedding_summary"):
        if key in info:
            report[key] = info[key]
    if "embedding" in info:
        report["embedding"] = {str(k): list(v) for k, v in info["embedding"].items()}
    for key, value in tables.items():
        report.setdefault(key, value)
    return to_jsonable(report)


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value)
    )


def complete_run(ws: Workspace, formulation: Formulation, *, sampler: str = "sa", num_reads: int = 100,
                 seed: int = 0, sampler_params: Mapping[str, Any] | None = None,
                 sampler_config: Mapping[str, Any] | None = None, compute_exact: bool = True,
                 latency_repeats: int = 20, build_s: float = 0.0,
                 stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Solve an already built formulation, compress, evaluate and report.

    ``stage(message)`` is called as each stage starts (for progress display).
    """
    stage = stage or (lambda message: None)
    stage(f"Sampling with {sampler} ({num_reads} reads)")
    solved = solve_formulation(formulation, sampler, num_reads=num_reads, seed=seed, config=sampler_config,
                               **dict(sampler_params or {}))
    decisions = decode_reads(formulation, solved.sampleset)
    sample, decision = best_decision(formulation, solved.sampleset, decisions)
    stage("Computing the exact reference")
    exact = exact_reference(formulation) if compute_exact else None
    stage("Compressing and evaluating the model")
    t1 = time.perf_counter()
    compressed = compress(ws, formulation, decision)
    metrics = evaluate_pair(ws, compressed, compressed_size_bits(ws, formulation, decision),
                            latency_repeats=latency_repeats)
    evaluate_s = time.perf_counter() - t1
    timing = {"build_s": build_s, "embed_s": solved.timing.get("embed_s", 0.0),
              "sample_s": solved.timing.get("sample_s", 0.0), "evaluate_s": evaluate_s}
    return build_report(model=ws.model_name, formulation=formulation, solved=solved, sample=sample,
                        decision=decision, exact=exact, metrics=metrics, timing=timing, data=ws.data.name,
                        decisions=decisions)


def run(ws: Workspace, *, method: str = "mixed-precision", sampler: str = "sa", num_reads: int = 100,
        seed: int = 0, formulation_options: Mapping[str, Any] | None = None,
        sampler_params: Mapping[str, Any] | None = None, compute_exact: bool = True,
        latency_repeats: int = 20, progress: Progress | None = None) -> tuple[dict[str, Any], Formulation]:
    """The whole pipeline for one run; returns the report and the formulation."""
    t0 = time.perf_counter()
    formulation = formulate(ws, method, seed=seed, progress=progress, **dict(formulation_options or {}))
    build_s = time.perf_counter() - t0
    report = complete_run(ws, formulation, sampler=sampler, num_reads=num_reads, seed=seed,
                          sampler_params=sampler_params, compute_exact=compute_exact,
                          latency_repeats=latency_repeats, build_s=build_s)
    return report, formulation


# ----------------------------------------------------------------------------- command line


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--data", default=None, help="digits or random (default: the model's own)")
    p.add_argument("--weights", default="default", choices=["default", "random", "pretrained"])
    p.add_argument("--method", default="mixed-precision", choices=METHODS)
    p.add_argument("--sampler", default="sa")
    p.add_argument("--reads", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="report JSON path (default: print to stdout)")
    p.add_argument("--bqm", default=None, help="write the BQM (bqm.to_serializable()) to this path")
    p.add_argument("--no-exact", action="store_true", help="skip the exact reference")
    p.add_argument("--latency-repeats", type=int, default=20)
    mp = p.add_argument_group("mixed-precision (F1)")
    mp.add_argument("--options", default="prune,2,4,8,keep", help="comma-separated: prune, 1..8 bits, keep")
    mp.add_argument("--lambda-bits", type=float, default=1.0)
    mp.add_argument("--lambda-sparsity", type=float, default=0.0)
    budget = mp.add_mutually_exclusive_group()
    budget.add_argument("--budget-bits", type=float, default=None)
    budget.add_argument("--budget-ratio", type=float, default=None,
                        help="fraction of the fp32 size to keep, e.g. 0.25 for 4x smaller")
    mp.add_argument("--budget-encoding", default="capacity", choices=["capacity", "slack"])
    mp.add_argument("--groups", type=int, default=1, help="output-channel groups per layer (fine-grained mode)")
    mp.add_argument("--pairwise", action="store_true", help="measure pairwise terms for neighbouring units")
    mp.add_argument("--sensitivity", default="measured", choices=["measured", "hessian", "magnitude"])
    mp.add_argument("--encoding", default="onehot", choices=["onehot", "paper"])
    ar = p.add_argument_group("adaround (F3 rounding QUBO)")
    ar.add_argument("--bits", type=int, default=4, help="weight bits, 1..8 (all Conv2d/Linear layers)")
    ar.add_argument("--scale", default="minmax", choices=["minmax", "mse"], help="per-output-channel scale")
    ar.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                    help="layers to quantize (default: every Conv2d/Linear layer); the others stay float")
    ar.add_argument("--target", default="layer", choices=["layer", "fisher"],
                    help="objective per layer: its squared output error (AdaRound's), or that error weighted by "
                         "the Fisher information of the predictions (better at 1 bit; one Gram matrix per "
                         "output channel)")
    ar.add_argument("--float-inputs", action="store_true",
                    help="Gram matrices from the float network instead of the already-quantized one")
    ar.add_argument("--relaxation-iterations", type=int, default=None, metavar="N",
                    help="Adam steps of the AdaRound continuous-relaxation baseline (default 20000; 0 leaves it out)")
    fp = p.add_argument_group("filter-pruning (F2 hybrid QUBO)")
    fp.add_argument("--sparsity", type=float, default=0.5, help="fraction of filters removed per conv layer")
    fp.add_argument("--importance", default=DEFAULT_IMPORTANCE, choices=list(IMPORTANCE_KINDS),
                    help="filter importance in the QUBO: first-order Taylor, Fisher scores, the whole Fisher "
                         "matrix (second-order, with pairwise terms), or weight L1 norms")
    fp.add_argument("--mu", type=float, default=DEFAULT_MU, help="weight of the redundancy term")
    fp.add_argument("--refine", default=None, choices=["tt"], help="tensor-train refinement (ttopt)")
    fp.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune epochs for every method")
    qpu = p.add_argument_group("QPU-like samplers")
    qpu.add_argument("--chain-strength", type=float, default=None)
    qpu.add_argument("--num-sweeps", type=int, default=None, help="sweeps for sa / simulated QPU / sqa")


def run_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], dimod.BinaryQuadraticModel]:
    """``python -m core run``: resolve the workspace, run, return (report, bqm)."""
    if args.reads < 1:
        raise InvalidInputError("--reads must be at least 1.")
    ws = open_workspace(args.model, data=args.data, weights=args.weights, seed=args.seed)
    if args.method in MULTI_QUBO_METHODS or args.method not in IMPLEMENTED_METHODS:
        return _run_multi_from_args(args, ws)
    options = {
        "options": args.options,
        "lambda_bits": args.lambda_bits,
        "lambda_sparsity": args.lambda_sparsity,
        "budget_bits": args.budget_bits,
        "budget_ratio": args.budget_ratio,
        "budget_encoding": args.budget_encoding,
        "groups": args.groups,
        "pairwise": args.pairwise,
        "sensitivity": args.sensitivity,
        "encoding": args.encoding,
    }
    sampler_params = _sampler_params_from_args(args)
    report, formulation = run(ws, method=args.method, sampler=args.sampler, num_reads=args.reads, seed=args.seed,
                              formulation_options=options, sampler_params=sampler_params,
                              compute_exact=not args.no_exact, latency_repeats=args.latency_repeats)
    _paths(args)
    return report, formulation.bqm


def _sampler_params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    sampler_params: dict[str, Any] = {}
    if args.chain_strength is not None:
        sampler_params["chain_strength"] = args.chain_strength
    if args.num_sweeps is not None:
        sampler_params["num_sweeps"] = args.num_sweeps
    return sampler_params


def _paths(args: argparse.Namespace) -> None:
    from pathlib import Path

    if args.out is not None:
        args.out = Path(args.out)
    if args.bqm is not None:
        args.bqm = Path(args.bqm)


def _warn_if_long(ws: Workspace, layers: list[str] | None, num_reads: int, num_sweeps: int | None) -> None:
    """A line on stderr before a rounding run that sa would need long for (by the app's estimate)."""
    import sys

    from core.methods.adaround import workload

    load = workload(ws.model, layers, num_reads=num_reads, num_sweeps=num_sweeps or 1000)
    if load.is_long:
        print(f"note: {len(load.sizes)} layer(s) to round, roughly {load.seconds / 3600:.1f} h with sa at "
              f"{num_reads} reads (estimate; other samplers differ); --layers chooses fewer.", file=sys.stderr)


def _run_multi_from_args(args: argparse.Namespace, ws: Workspace) -> tuple[dict[str, Any], dimod.BinaryQuadraticModel]:
    if args.method == "adaround":
        options: dict[str, Any] = {"bits": args.bits, "scale": args.scale, "layers": args.layers,
                                   "target": args.target, "use_quantized_inputs": not args.float_inputs,
                                   **({} if args.relaxation_iterations is None
                                      else {"relaxation_iterations": args.relaxation_iterations})}
        _warn_if_long(ws, args.layers, args.reads, args.num_sweeps)
    elif args.method == "filter-pruning":
        options = {"sparsity": args.sparsity, "importance": args.importance, "mu": args.mu,
                   "refine": args.refine, "finetune_epochs": args.finetune_epochs}
    else:
        options = {}
    report, bqm = run_method(ws, args.method, sampler=args.sampler, num_reads=args.reads, seed=args.seed,
                             options=options, sampler_params=_sampler_params_from_args(args),
                             compute_exact=not args.no_exact, latency_repeats=args.latency_repeats)
    _paths(args)
    return report, bqm
