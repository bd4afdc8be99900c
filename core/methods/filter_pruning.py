"""``--method filter-pruning``: the F2 hybrid filter-pruning QUBO as one run.

:func:`run_filter_pruning` calls
:func:`core.formulations.filter_pruning.prune_filters` (one QUBO per conv layer,
capacity search for the exact kept count K, optional tensor-train refinement
and fine-tune), evaluates the pruned model and returns the DESIGN section 5
report plus the first conv layer's QUBO for ``--bqm``.

Report fields specific to this method:

* ``energies[]``: per subproblem (conv layer, in order) the QUBO objective of
  the kept set, ``-sum I x + mu sum S x x`` (normalised I and S; the count
  penalty is zero at exactly K and the capacity search's linear shift is not
  included). ``best.energy`` is their sum. With ``--refine tt`` the kept set
  is the refined one (its objective may be higher: refinement optimises the
  true calibration loss).
* ``best.decision``: the kept filter indices per layer; ``best.sample``: per
  layer, x[i] = 1 for a kept filter.
* ``exact``: brute force over all exactly-K subsets of each layer with at most
  ``EXACT_MAX_SUBSETS`` of them; ``exact.energy`` is the sum only when every
  layer was covered, else null (``exact.subproblems`` lists those covered).
* ``metrics.size_bits_after``: the pruned model's own parameter count at 32
  bits (filters really removed; masked layers, if any, listed in ``masked``);
  ``metrics.sparsity``: the fraction of parameters removed, and
  ``metrics.filter_sparsity``: the fraction of conv filters removed.
* ``baselines.greedy_taylor``, ``baselines.l1_topk``, ``baselines.l1_qubo``:
  kept filters, accuracy, parameters and size of each, and ``paired``: the
  QUBO model against it on the same evaluation examples (``qubo_only``,
  ``baseline_only`` examples right, exact McNemar ``p_value``);
  ``layers[]``: per layer channels, K and kept count per method.
* ``bqm_subproblem``: the written BQM is the first conv layer's QUBO at the
  capacity search's final penalty P and zero shift, so ``bqm.energy`` of its
  sample is ``energies[0]``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from typing import Any

import dimod
import numpy as np

from core.errors import InvalidInputError
from core.formulations.base import Formulation
from core.formulations.filter_pruning import (
    BASELINES,
    DEFAULT_IMPORTANCE,
    DEFAULT_MU,
    SelectionTerms,
    filter_qubo,
    layer_formulation,
    prune_filters,
    selection_terms,
)
from core.methods.common import Progress, RegistrySampler, check_reads, ratio, skeleton
from core.sensitivity.filters import conv_layer_names
from core.store.analysis import reaches_optimum

METHOD = "filter-pruning"
EXACT_MAX_SUBSETS = 200_000
ENERGIES_NOTE = (
    "One energy per subproblem (conv layer, in order): the QUBO objective -sum I x + mu sum S x x of the kept set "
    "(normalised I and S; the count penalty is zero at exactly K; the capacity search's linear shift excluded). "
    "best.energy is their sum."
)
BASELINE_LABELS = {"greedy_taylor": "greedy Taylor", "l1_topk": "L1 top-K", "l1_qubo": "L1-QUBO"}


def prunable_layers(model: Any) -> list[str]:
    """The conv layers filter pruning applies to, in order."""
    try:
        return conv_layer_names(model, None)
    except InvalidInputError:
        return []


def layer_problem(ws: Any, layer: str, *, sparsity: float, importance: str = DEFAULT_IMPORTANCE,
                  mu: float = DEFAULT_MU, stats: Any = None) -> Formulation:
    """One conv layer's filter QUBO (shift 0) for the app's heatmap."""
    return layer_formulation(ws.model, ws.calibration, layer, sparsity=sparsity, importance=importance, mu=mu,
                             stats=stats)


def _exact_layer(terms: SelectionTerms, k: int) -> float | None:
    """The optimum of the layer's objective over every exactly-K subset, or None when there are too many."""
    c = terms.linear.shape[0]
    if math.comb(c, k) > EXACT_MAX_SUBSETS:
        return None
    best = math.inf
    combos = itertools.combinations(range(c), k)
    while True:
        chunk = list(itertools.islice(combos, 20_000))
        if not chunk:
            break
        x = np.zeros((len(chunk), c))
        x[np.repeat(np.arange(len(chunk)), k), np.asarray(chunk).ravel()] = 1.0
        best = min(best, float(terms.objective(x).min()))
    return best


def run_filter_pruning(ws: Any, *, sparsity: float, importance: str = DEFAULT_IMPORTANCE, mu: float = DEFAULT_MU,
                       refine: str | None = None, finetune_epochs: int = 0, sampler: str = "sa",
                       num_reads: int = 50, seed: int = 0, sampler_params: Mapping[str, Any] | None = None,
                       sampler_config: Mapping[str, Any] | None = None, compute_exact: bool = True,
                       latency_repeats: int = 20,
                       progress: Progress | None = None) -> tuple[dict[str, Any], dimod.BinaryQuadraticModel]:
    """Prune, evaluate and report; returns (report, the first layer's BQM)."""
    from core.evaluate import paired_accuracy, size_bits
    from core.runs import evaluate_pair
    from core.solvers import sampler_info

    t_start = time.perf_counter()
    num_reads = check_reads(num_reads)
    info = sampler_info(sampler)
    if not info.is_available:
        raise InvalidInputError(f"The sampler {sampler!r} is unavailable here: {info.reason_unavailable}")
    solver = RegistrySampler(info.name, config=sampler_config)
    train = None
    if finetune_epochs:
        from core.data import digits_split

        if ws.data.name.startswith("digits") and ws.input_shape == digits_split().train.input_shape:
            train = digits_split().train
        else:
            train = ws.calibration
    # the L1-QUBO baseline samples with its own instance, so chains and timing in the report are the method's own
    with solver, RegistrySampler(info.name, config=sampler_config) as baseline_solver:
        result = prune_filters(
            ws.model, ws.calibration, sparsity=sparsity, importance=importance, mu=mu, sampler=solver,
            num_reads=num_reads, seed=seed, refine=refine, finetune_epochs=finetune_epochs, train_data=train,
            eval_data=ws.data, sample_kwargs=sampler_params, measure_speed=False, progress=progress,
            baseline_sampler=baseline_solver,
        )
    as_dict = result.as_dict()
    names = list(result.kept)
    energies, exact_rows, sample, layers = [], [], {}, []
    total_vars = total_inter = 0
    for n in names:
        st = result.stats[n]
        cap = result.capacity[n]
        imp, sim = st.importance(importance), st.similarity
        k = int(result.params["k"][n])
        c = int(st.out_channels)
        x = np.zeros((1, c))
        x[0, result.kept[n]] = 1.0
        terms = selection_terms(imp, sim, k, mu)
        energies.append(float(terms.objective(x)[0]))
        sample[n] = x[0].astype(int).tolist()
        total_vars += c
        total_inter += cap.formulation.bqm.num_interactions
        if compute_exact:
            e = _exact_layer(terms, k)
            exact_rows.append({"layer": n, "energy": e, "best": energies[-1]})
        row = {"layer": n, "channels": c, "k": k, "kept_qubo": len(result.kept[n]),
               "objective": energies[-1], "penalty": cap.penalty, "shift": cap.shift, "solves": cap.solves,
               "hit": cap.hit, "repaired": cap.repaired, "polish_swaps": cap.polish_swaps}
        for b, res in result.baselines.items():
            row[f"kept_{b}"] = len(res.kept[n])
        layers.append(row)

    t0 = time.perf_counter()
    params_after = sum(p.numel() for p in result.model.parameters())
    size_after = size_bits(result.model)
    # prune_filters already scored the original and the pruned model on ws.data
    metrics = evaluate_pair(ws, result.model, size_after, latency_repeats=latency_repeats,
                            before=result.original_quality, after=result.result.quality)
    params_before = sum(p.numel() for p in ws.model.parameters())
    total_filters = sum(int(result.stats[n].out_channels) for n in names)
    metrics["weight_sparsity"] = metrics["sparsity"]
    metrics["sparsity"] = 1.0 - params_after / params_before if params_before else 0.0
    metrics["filter_sparsity"] = 1.0 - sum(len(v) for v in result.kept.values()) / max(total_filters, 1)
    metrics["params_before"] = params_before
    metrics["params_after"] = params_after
    evaluate_s = time.perf_counter() - t0

    first = result.capacity[names[0]]
    st0 = result.stats[names[0]]
    bqm = filter_qubo(st0.importance(importance), st0.similarity, int(result.params["k"][names[0]]), mu=mu,
                      penalty=first.penalty, shift=0.0, name=names[0], importance_kind=importance).bqm
    exact = None
    if compute_exact:
        covered = [r for r in exact_rows if r["energy"] is not None]
        exact = {"energy": float(sum(r["energy"] for r in covered)) if len(covered) == len(names) else None,
                 "method": f"brute force over all exactly-K filter subsets of each layer (layers with at most "
                           f"{EXACT_MAX_SUBSETS} subsets)",
                 "covered": len(covered), "total": len(names),
                 "optimal": sum(1 for r in covered if reaches_optimum(r["best"], r["energy"])),
                 "subproblems": covered}
    baselines = {}
    qubo_hits = result.result.correct  # prune_filters evaluated every model on ws.data
    for b in BASELINES:
        if b not in as_dict["baselines"]:
            continue
        d = as_dict["baselines"][b]
        bits = 32 * int(d["params"])
        baselines[b] = {**d, "label": BASELINE_LABELS[b], "size_bits": bits,
                        "compression_ratio": ratio(metrics["size_bits_before"], bits),
                        "paired": paired_accuracy(qubo_hits, result.baselines[b].correct)
                        .as_dict("qubo", "baseline")}
    timing = result.timing
    report = skeleton(
        ws, method=METHOD, sampler=info.name, seed=seed, num_reads=num_reads,
        params={**{k: v for k, v in result.params.items()}, "sampler": dict(sampler_params or {})},
        qubo={"num_variables": total_vars, "num_interactions": total_inter, "num_subproblems": len(names),
              "vartype": "BINARY", "note": "totals over the per-layer QUBOs"},
        energies=energies, energies_note=ENERGIES_NOTE,
        best={"energy": float(sum(energies)),
              "feasible": all(len(result.kept[n]) == int(result.params["k"][n]) for n in names),
              "violations": [], "decision": {n: list(v) for n, v in result.kept.items()}, "sample": sample,
              "sample_note": "per layer: x[i] = 1 keeps filter i"},
        exact=exact, metrics=metrics,
        timing={"build_s": timing.get("statistics_s", 0.0), "embed_s": solver.embed_s,
                "sample_s": timing.get("qubo_s", 0.0) + timing.get("refine_s", 0.0), "evaluate_s": evaluate_s,
                **{k: v for k, v in timing.items()}, "total_s": time.perf_counter() - t_start},
        baselines=baselines,
        layers=layers,
        original=as_dict["original"], removed=as_dict["removed"], masked=as_dict["masked"],
        capacity=as_dict["capacity"], refinement=as_dict["refinement"],
        **solver.embedding_report(),
        bqm_subproblem={"index": 0, "layer": names[0], "num_variables": bqm.num_variables,
                        "num_interactions": bqm.num_interactions,
                        "note": "the first conv layer's QUBO at the capacity search's final penalty P and zero "
                                "shift; variables are filter indices"},
    )
    return report, bqm


def kept_per_layer(report: Mapping[str, Any]) -> dict[str, dict[str, list[int]]]:
    """{method label: {layer: kept filter indices}} for the QUBO and every
    baseline of a filter-pruning report (for :func:`core.viz.kept_filters_map`)."""
    out = {"QUBO": {n: list(v) for n, v in report["best"]["decision"].items()}}
    for b, d in (report.get("baselines") or {}).items():
        out[d.get("label", BASELINE_LABELS.get(b, b))] = {n: list(v) for n, v in d.get("kept", {}).items()}
    return out
