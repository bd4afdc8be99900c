"""``--method adaround``: the F3 rounding QUBO as one run with a report.

:func:`run_adaround` quantizes the workspace's model with
:func:`core.formulations.adaround.quantize_model_adaround` (one QUBO per output
channel, any registry sampler), evaluates it against the float model and the
round-to-nearest (RTN) baseline at the same scales, and returns the DESIGN
section 5 report plus one representative subproblem's BQM (the first layer's
output channel 0) for ``--bqm``.

Report fields specific to this method:

* ``energies[]``: per subproblem (output channel, layers in order, channels in
  order) the energy of the chosen rounding, which *is* that channel's squared
  pre-activation error summed over the calibration rows (the QUBO's constant
  is included; with ``params.target == "fisher"`` each row's error weighted by
  the Fisher information of the predictions); ``best.energy`` is their sum.
* ``best.decision``: per layer, a summary (channels, QUBO size, error vs RTN);
  ``best.sample``: per layer, per output channel, the rounding bits v over the
  weight positions (1 = rounded up; positions fixed by clipping carry 0 and are
  not QUBO variables). Omitted (``{}``) above ``MAX_SAMPLE_BITS`` bits, with
  ``best.sample_note`` saying so.
* ``exact``: brute force for every channel with at most ``EXACT_MAX_FREE``
  free variables; ``exact.energy`` is the sum over *all* subproblems only when
  every channel was covered, else null (``exact.subproblems`` lists the ones
  that were).
* ``baselines.rtn``: RTN's accuracy, size and per-layer errors; ``layers[]``:
  the engine's per-layer table (error_qubo, error_rtn, ratio, ...).
* ``baselines.adaround_relaxed``: AdaRound's continuous relaxation, the
  classical solver of the same objective: ``energies[]`` on the very channel
  problems of ``energies[]`` (same Gram matrices), and the accuracy and
  per-layer errors of a model it rounds in order.
* ``baselines.*.paired``: the QUBO model against that baseline on the same
  evaluation examples: how many only the QUBO model gets right
  (``qubo_only``), how many only the baseline does (``baseline_only``) and the
  exact McNemar p-value (:mod:`core.evaluate.paired`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dimod
import numpy as np
from torch import nn

from core.compress.relaxed_rounding import relaxed_rounding, relaxed_rounding_model
from core.errors import InvalidInputError
from core.evaluate.metrics import accuracy_and_loss
from core.formulations.adaround import (
    FISHER_MAX_ROWS,
    _check_positive_int,
    _check_qubo_size,
    _collect_fisher_grams,
    _rtn_assignment,
    channel_formulation,
    channel_formulation_of,
    fisher_gram_bytes,
    input_matrix,
    layer_errors,
    layer_inputs,
    layer_problem,
    quantize_model_adaround,
)
from core.formulations.base import Formulation
from core.methods.common import Progress, RegistrySampler, check_reads, ratio, skeleton
from core.models.units import COMPRESSIBLE
from core.store.analysis import reaches_optimum

METHOD = "adaround"
EXACT_MAX_FREE = 16
#: Adam steps of the AdaRound-relaxation baseline (BRECQ's 20k; full-batch exact gradients here)
RELAXATION_ITERATIONS = 20_000
#: sa coupler updates per second on channel QUBOs here, a little under the slowest measured (``python -m
#: benchmarks.adaround --sa-rate``: 5.5e8 on large layers, up to 1.7e9 on small ones). Large layers also spend a
#: few seconds per channel building and starting each QUBO, which the estimate leaves out.
SA_COUPLER_UPDATES_PER_S = 5e8
#: float64 multiply-adds per second building Fisher-weighted Gram matrices here, under the measured (digits-cnn's
#: conv2: 44 GFLOP of Gram products and 10 backward passes in about 1.1 s)
FISHER_FLOPS_PER_S = 2e10
#: seconds per Adam step of the relaxation: fixed + per weight + per Gram product (out x f^2), fitted to
#: timings of 16x9 to 128x1152 layers here (0.025-5.6 ms per step)
RELAXATION_STEP_S = (3e-5, 1e-8, 2.5e-11)
#: estimated sa seconds of the layers the app quantizes by default (see default_layers)
DEFAULT_LAYERS_BUDGET_S = 60.0
#: above this estimate the app warns and the command line prints a note before the run
LONG_RUN_S = 300.0
MAX_SAMPLE_BITS = 2_000_000
#: the objectives a run offers (see core.formulations.adaround's module doc)
RUN_TARGETS = ("layer", "fisher")
TARGET_LABELS = {"layer": "Output error (AdaRound)", "fisher": "Fisher-weighted output error"}
#: what a channel QUBO's energy is, per objective
ENERGY_MEANING = {"layer": "squared pre-activation error",
                  "fisher": "squared pre-activation error weighted by the Fisher information of the predictions"}
ENERGIES_NOTE = {
    "layer": "One energy per subproblem (output channel; layers in order, channels in order): the QUBO energy of "
             "the chosen rounding including its constant, i.e. that channel's squared pre-activation error summed "
             "over the calibration rows. best.energy is their sum.",
    "fisher": "One energy per subproblem (output channel; layers in order, channels in order): the QUBO energy of "
              "the chosen rounding including its constant, i.e. that channel's pre-activation error squared and "
              "weighted by the Fisher information of the predictions (weights of mean 1 over the layer), summed "
              "over the calibration rows. best.energy is their sum.",
}


def quantizable_layers(model: nn.Module) -> list[str]:
    """The Conv2d/Linear layers the rounding QUBO applies to, in order."""
    return [n for n, m in model.named_modules() if isinstance(m, COMPRESSIBLE)]


@dataclass(frozen=True)
class LayerSize:
    """How big one layer's rounding QUBOs are: one dense QUBO over ``weights_per_channel``
    variables per output channel (fewer where clipping fixes weights)."""

    layer: str
    channels: int
    weights_per_channel: int

    @property
    def couplers(self) -> int:
        """Couplers summed over the layer's channel QUBOs (every pair of a channel's weights)."""
        f = self.weights_per_channel
        return self.channels * f * (f - 1) // 2

    def sa_seconds(self, num_reads: int = 4, num_sweeps: int = 1000) -> float:
        """Rough sa sampling time on this project's machine: every read visits every coupler once a sweep."""
        return self.couplers * num_reads * num_sweeps / SA_COUPLER_UPDATES_PER_S

    def relaxation_seconds(self, iterations: int = RELAXATION_ITERATIONS) -> float:
        """Rough time of one pass of AdaRound's relaxation over this layer on this machine."""
        fixed, per_weight, per_product = RELAXATION_STEP_S
        weights = self.channels * self.weights_per_channel
        return iterations * (fixed + per_weight * weights + per_product * weights * self.weights_per_channel)


def layer_sizes(model: nn.Module) -> list[LayerSize]:
    """:class:`LayerSize` of every quantizable layer, in order (no data needed)."""
    sizes = []
    for name in quantizable_layers(model):
        weight = model.get_submodule(name).weight
        sizes.append(LayerSize(name, int(weight.shape[0]), int(weight[0].numel())))
    return sizes


@dataclass(frozen=True)
class Workload:
    """The rounding QUBOs of the chosen layers, and roughly how long sa samples them here."""

    sizes: tuple[LayerSize, ...]
    num_reads: int
    num_sweeps: int

    @property
    def couplers(self) -> int:
        return sum(s.couplers for s in self.sizes)

    @property
    def seconds(self) -> float:
        """Estimated sa sampling time (:meth:`LayerSize.sa_seconds` summed)."""
        return sum(s.sa_seconds(self.num_reads, self.num_sweeps) for s in self.sizes)

    def relaxation_seconds(self, iterations: int = RELAXATION_ITERATIONS) -> float:
        """Estimated time of the AdaRound-relaxation baseline: two passes per layer (on the sampler's
        channel problems, and rounding its own model)."""
        return 2 * sum(s.relaxation_seconds(iterations) for s in self.sizes)

    @property
    def largest(self) -> LayerSize | None:
        return max(self.sizes, key=lambda s: s.couplers, default=None)

    @property
    def is_long(self) -> bool:
        return self.seconds > LONG_RUN_S


def workload(model: nn.Module, layers: Sequence[str] | None = None, *, num_reads: int = 4,
             num_sweeps: int = 1000) -> Workload:
    """:class:`Workload` of rounding ``layers`` (default: every quantizable layer) at ``num_reads`` x
    ``num_sweeps``."""
    sizes = layer_sizes(model)
    if layers is not None:
        if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
            raise InvalidInputError("layers must be a list of layer names.")
        known = {s.layer for s in sizes}
        unknown = [n for n in layers if n not in known]
        if unknown:
            raise InvalidInputError(f"Not a Conv2d/Linear layer of this model: {', '.join(unknown)}.")
        sizes = [s for s in sizes if s.layer in layers]
    for name, value in (("num_reads", num_reads), ("num_sweeps", num_sweeps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a whole number of at least 1, not {value!r}.")
    return Workload(tuple(sizes), num_reads, num_sweeps)


@dataclass(frozen=True)
class FisherCost:
    """What ``target="fisher"`` adds to a run: its per-channel Gram matrices' memory, and roughly the time to
    build them (one weighted Gram product per output channel; the backward passes are a small part here)."""

    bytes: int
    seconds: float


def fisher_cost(model: nn.Module, images: Any, layers: Sequence[str]) -> FisherCost:
    """:class:`FisherCost` of rounding ``layers`` of ``model`` with the Fisher objective on calibration
    ``images`` (one image is run to count each layer's rows per image)."""
    total_bytes, operations = 0, 0.0
    for name in layers:
        layer = model.get_submodule(name)
        rows = calibration_rows(model, images, name)
        f1 = layer.weight[0].numel() + 1
        total_bytes += fisher_gram_bytes(layer)
        operations += 2.0 * layer.weight.shape[0] * min(rows, FISHER_MAX_ROWS) * f1 * f1
    return FisherCost(total_bytes, operations / FISHER_FLOPS_PER_S)


def default_layers(model: nn.Module, budget_s: float = DEFAULT_LAYERS_BUDGET_S) -> list[str]:
    """The app's default choice of layers to quantize: the smallest layers (by couplers) whose estimated sa
    time (:meth:`LayerSize.sa_seconds`) adds up to at most ``budget_s``, in model order; at least the
    smallest one. All of digits-cnn or digits-mlp fit; resnet18 in full would take hours."""
    chosen, total = set(), 0.0
    for size in sorted(layer_sizes(model), key=lambda s: s.couplers):
        if chosen and total + size.sa_seconds() > budget_s:
            break
        chosen.add(size.layer)
        total += size.sa_seconds()
    return [n for n in quantizable_layers(model) if n in chosen]


def check_target(target: Any) -> str:
    if target not in RUN_TARGETS:
        raise InvalidInputError(f"The objective must be one of {', '.join(RUN_TARGETS)}, not {target!r}.")
    return str(target)


def calibration_rows(model: nn.Module, images: Any, layer: str) -> int:
    """Rows (samples x output positions) calibration ``images`` give ``layer``'s QUBOs (one image is run)."""
    one = layer_inputs(model, layer, images[:1])
    return int(input_matrix(model.get_submodule(layer), one).shape[0]) * len(images)


#: the Fisher-weighted Gram matrices of the layer last shown on Formulate, keyed by workspace content and
#: layer: they depend on neither the channel, the bits nor the scale, which are what the page changes most
_shown_fisher: dict[tuple[str, str], np.ndarray] = {}
_shown_fisher_lock = threading.Lock()


def _fisher_grams_of(ws: Any, layer: str) -> np.ndarray:
    key = (ws.cache_key(), layer)
    with _shown_fisher_lock:
        if key in _shown_fisher:
            return _shown_fisher[key]
    grams = _collect_fisher_grams(ws.model, layer, ws.calibration.images, 256)
    with _shown_fisher_lock:
        _shown_fisher.clear()  # one layer's at a time: they can be large
        _shown_fisher[key] = grams
    return grams


def channel_problem(ws: Any, layer: str, channel: int, *, bits: int, scale: str = "minmax",
                    target: str = "layer") -> Formulation:
    """One output channel's rounding QUBO on the float model's calibration
    inputs of ``layer`` (what the app shows; the run itself uses the inputs of
    the already-quantized earlier layers), with objective ``target``
    (``"layer"`` or ``"fisher"``)."""
    target = check_target(target)
    names = quantizable_layers(ws.model)
    if layer not in names:
        raise InvalidInputError(f"{layer!r} is not a Conv2d/Linear layer of {ws.model_name}.")
    module = ws.model.get_submodule(layer)
    if target == "fisher":
        _check_qubo_size(module, layer)
        problem = layer_problem(module, _fisher_grams_of(ws, layer), bits, scale=scale, name=layer)
        rows = calibration_rows(ws.model, ws.calibration.images, layer)
        return channel_formulation_of(problem, module, int(channel), rows=rows, target=target)
    x = layer_inputs(ws.model, layer, ws.calibration.images)
    return channel_formulation(module, x, int(channel), bits, scale=scale, name=layer)


def _brute_force(problem: Any, j: int) -> float | None:
    idx, linear, (r, c, quad), offset = problem.channel_qubo(j)
    m = int(idx.size)
    if m > EXACT_MAX_FREE:
        return None
    if m == 0:
        return float(offset)
    x = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1).astype(np.float64)
    e = offset + x @ np.asarray(linear) + (x[:, np.asarray(r, dtype=int)] * x[:, np.asarray(c, dtype=int)]) @ np.asarray(quad)
    return float(e.min())


def run_adaround(ws: Any, *, bits: int, scale: str = "minmax", sampler: str = "sa", num_reads: int = 4,
                 seed: int = 0, sampler_params: Mapping[str, Any] | None = None,
                 sampler_config: Mapping[str, Any] | None = None, use_quantized_inputs: bool = True,
                 compute_exact: bool = True, latency_repeats: int = 20, layers: Sequence[str] | None = None,
                 relaxation_iterations: int = RELAXATION_ITERATIONS, target: str = "layer",
                 progress: Progress | None = None) -> tuple[dict[str, Any], dimod.BinaryQuadraticModel]:
    """Quantize ``layers`` (default: every Conv2d/Linear; the others stay
    float), evaluate and report; returns (report, representative BQM).

    With a QPU-like sampler every channel QUBO is fully connected, so channels
    are batched up to the largest clique the qubit graph holds and each batch
    is clique-embedded; a layer with larger channels is refused up front.

    ``relaxation_iterations`` > 0 adds AdaRound's continuous relaxation as a classical baseline
    (:mod:`core.compress.relaxed_rounding`): on the very channel problems the sampler solved (energies),
    and as a model rounded in order by it (accuracy); 0 leaves it out.

    ``target`` is the objective: ``"layer"`` (each layer's squared output error, AdaRound's) or
    ``"fisher"`` (that error weighted by the Fisher information of the predictions); the relaxation
    baseline then solves the same objective."""
    from core.evaluate import paired_accuracy, size_bits
    from core.runs import evaluate_pair

    t_start = time.perf_counter()
    num_reads = check_reads(num_reads)
    relaxation_iterations = _check_positive_int("relaxation_iterations", relaxation_iterations, 0)
    target = check_target(target)
    report_progress = progress or (lambda _f, _m: None)
    solver = RegistrySampler(sampler, config=sampler_config, params=sampler_params, dense=True)
    t0 = time.perf_counter()
    with solver:
        result = quantize_model_adaround(
            ws.model, ws.calibration, bits=bits, scale=scale, sampler=solver, num_reads=num_reads, seed=seed,
            use_quantized_inputs=use_quantized_inputs, eval_data=ws.data, layers=layers,
            max_batch_variables=solver.max_dense_variables, progress=lambda f, m: report_progress(0.8 * f, m),
            target=target,
        )
    quantize_s = time.perf_counter() - t0
    names = [r.layer for r in result.layers]

    report_progress(0.8, "Measuring per-channel energies")
    t1 = time.perf_counter()
    energies: list[float] = []
    rtn_energies: list[float] = []
    relaxed_energies: list[float] = []
    sample: dict[str, list[list[int]]] = {}
    exact_rows: list[dict[str, Any]] = []
    total_vars = total_inter = subproblems = 0
    decision: dict[str, dict[str, Any]] = {}
    for row in result.layers:
        n = row.layer
        layer = ws.model.get_submodule(n)
        problem = result.problems[n]  # the channel QUBOs the sampler solved
        w_hat = result.weights[n].detach().double().reshape(problem.out_channels, -1).numpy()
        v = problem.assignment_of(w_hat)
        e = problem.energies(v)
        e_rtn = problem.energies(_rtn_assignment(problem, layer))
        energies += e.tolist()
        rtn_energies += e_rtn.tolist()
        if relaxation_iterations:
            v_relaxed = relaxed_rounding(problem, len(ws.calibration), iterations=relaxation_iterations)
            relaxed_energies += problem.energies(v_relaxed).tolist()
        sample[n] = v.astype(int).tolist()
        free = (problem.step > 0).sum(axis=1)
        total_vars += int(free.sum())
        total_inter += int((free * (free - 1) // 2).sum())
        subproblems += problem.out_channels
        decision[n] = {
            "channels": problem.out_channels, "f": problem.f, "free_variables": int(free.sum()),
            "bits": result.bits, "scale": result.scale, "energy": float(e.sum()), "energy_rtn": float(e_rtn.sum()),
            "error_qubo": row.error_qubo, "error_rtn": row.error_rtn, "error_ratio": row.ratio,
            "channels_rounded_up": int(v.sum()),
        }
        if compute_exact:
            for j in range(problem.out_channels):
                best_j = _brute_force(problem, j)
                if best_j is not None:
                    exact_rows.append({"layer": n, "channel": j, "energy": best_j, "best": float(e[j])})
    measure_s = time.perf_counter() - t1

    report_progress(0.9, "Evaluating the quantized models")
    t2 = time.perf_counter()
    assignment = dict.fromkeys(names, result.bits)
    size_after = size_bits(ws.model, assignment)
    assert result.quality is not None and result.correct is not None  # evaluated on eval_data=ws.data above
    metrics = evaluate_pair(ws, result.model, size_after, latency_repeats=latency_repeats,
                            before=result.quality["float"], after=result.quality["qubo"])
    rtn_acc = (result.accuracy or {}).get("rtn")
    qubo_hits = result.correct["qubo"]  # paired against every baseline
    evaluate_s = time.perf_counter() - t2
    baselines = {"rtn": {
        "label": "round-to-nearest",
        "accuracy": rtn_acc,
        "size_bits": size_after,
        "compression_ratio": ratio(metrics["size_bits_before"], size_after),
        "energy": float(sum(rtn_energies)),
        "energies": rtn_energies,
        "layers": [{"layer": r.layer, "error": r.error_rtn, "drift": r.drift_rtn} for r in result.layers],
        "paired": paired_accuracy(qubo_hits, result.correct["rtn"]).as_dict("qubo", "baseline"),
    }}
    layer_rows = result.table()
    if relaxation_iterations:
        report_progress(0.95, "AdaRound's continuous relaxation (classical baseline)")
        t3 = time.perf_counter()
        relaxed = relaxed_rounding_model(ws.model, ws.calibration, bits=result.bits, scale=result.scale,
                                         layers=names, iterations=relaxation_iterations, target=target)
        errors = layer_errors(relaxed, ws.model, ws.calibration.images, names)
        relaxed_quality = accuracy_and_loss(relaxed, ws.data)
        baselines["adaround_relaxed"] = {
            "label": "AdaRound (continuous relaxation)",
            "accuracy": relaxed_quality.accuracy,
            "size_bits": size_after,
            "compression_ratio": ratio(metrics["size_bits_before"], size_after),
            "energy": float(sum(relaxed_energies)),
            "energies": relaxed_energies,
            "iterations": relaxation_iterations,
            "time_s": time.perf_counter() - t3,
            "layers": [{"layer": n, **errors[n]} for n in names],
            "paired": paired_accuracy(qubo_hits, relaxed_quality.correct).as_dict("qubo", "baseline"),
        }
        for row in layer_rows:
            row["error_relaxed"] = errors[row["layer"]]["error"]

    rep = channel_formulation_of(result.problems[names[0]], ws.model.get_submodule(names[0]), 0,
                                 rows=calibration_rows(ws.model, ws.calibration.images, names[0]), target=target)
    bqm = rep.bqm
    exact = None
    if compute_exact:
        covered = len(exact_rows)
        exact = {
            "energy": float(sum(r["energy"] for r in exact_rows)) if covered == subproblems else None,
            "method": f"brute force per output channel (channels with at most {EXACT_MAX_FREE} free variables)",
            "covered": covered,
            "total": subproblems,
            "optimal": sum(1 for r in exact_rows if reaches_optimum(r["best"], r["energy"])),
            "subproblems": exact_rows,
        }
    big = sum(len(v) * (len(v[0]) if v else 0) for v in sample.values()) > MAX_SAMPLE_BITS
    best = {
        "energy": float(sum(energies)),
        "feasible": True,
        "violations": [],
        "decision": decision,
        "sample": {} if big else sample,
        "sample_note": (
            f"omitted: more than {MAX_SAMPLE_BITS} rounding bits" if big else
            "per layer, per output channel: rounding bits v over the weight positions (1 = rounded up); "
            "positions fixed by clipping carry 0 and are not QUBO variables"
        ),
    }
    weights_bits = sum(r.out_channels * r.f for r in result.layers)
    report = skeleton(
        ws, method=METHOD, sampler=solver.name, seed=seed, num_reads=num_reads,
        params={"bits": result.bits, "scale": result.scale, "target": target,
                "use_quantized_inputs": use_quantized_inputs,
                "layers": names, "max_batch_variables": solver.max_dense_variables,
                "sampler": dict(sampler_params or {}), "calibration": ws.calibration.name,
                "calibration_size": len(ws.calibration), "polish": result.params.get("polish")},
        qubo={"num_variables": total_vars, "num_interactions": total_inter, "num_subproblems": subproblems,
              "vartype": "BINARY",
              "note": "totals over the per-channel QUBOs; interactions counted as the dense upper triangle "
                      "over each channel's free variables"},
        energies=energies, energies_note=ENERGIES_NOTE[target], best=best, exact=exact, metrics=metrics,
        timing={"build_s": float(sum(r.gram_s for r in result.layers)), "embed_s": solver.embed_s,
                "sample_s": solver.sample_s, "evaluate_s": evaluate_s, "quantize_s": quantize_s,
                "solve_s": float(sum(r.solve_s for r in result.layers)), "measure_s": measure_s,
                "total_s": time.perf_counter() - t_start},
        baselines=baselines,
        layers=layer_rows,
        bqm_subproblem={"index": 0, "layer": names[0], "channel": 0, "num_variables": bqm.num_variables,
                        "num_interactions": bqm.num_interactions,
                        "note": "the first layer's output channel 0 (its inputs are the model inputs, so it is "
                                "exactly the subproblem the run solved); variables are weight positions"},
        num_weights=weights_bits,
        **solver.embedding_report(),
    )
    report_progress(1.0, "Done")
    return report, bqm
