"""F1, the source paper's own encoding (per-filter pruning + binary-coded bits).

After "Is Quantum Optimization Ready? An Effort Towards Neural Network
Compression using Adiabatic Quantum Computing" (2025); DESIGN section 3, F1.

Variables (labels)
------------------
* ``"<layer>#p<i>"``: 1 prunes filter (output channel) i of the layer. Only
  for layers that are safe to prune and only if ``"prune"`` is an option.
* ``"<layer>#q<k>"``: bit k of the number of removed bits,
  bits_n = b_max - sum_k 2^k q[n,k], with b_max (b_min) the largest (smallest)
  bit width in the option set and K = ceil(log2(b_max - b_min + 1)) bits.

Energy  H = L_p + beta * L_q - gamma * R  (+ lambda_sparsity * kept / N)
---------------------------------------------------------------------------
* L_p = sum_n (sum_i a[n,i] p[n,i])^2 / Z_p, a[n,i] = mean |w[n,i]|
  (squared, hence quadratic: a clique over each layer's filters);
  Z_p = sum_n (sum_i a[n,i])^2 so L_p is in [0, 1].
* L_q = sum_n s_n sum_k 2^k q[n,k] / Z_q with s_n the unit's measured
  distortion increase per removed bit, (d[n, b_min] - d[n, b_max]) /
  (b_max - b_min) clipped at 0 (our reading of the paper's quantization
  sensitivity term); Z_q = (2^K - 1) sum_n s_n.
* R = sum_n f_n (P_n b_max + F_n Q_n - P_n Q_n) / Z_R: the weight bits saved
  relative to all layers at b_max (P_n = sum_i p[n,i], Q_n = sum_k 2^k q[n,k],
  F_n filters of f_n weights each); the P_n Q_n products are the p-q terms.
  Z_R = sum_n F_n f_n b_max, so R is in [0, 1].

Decoding gives the same shape as the one-hot encoding: ``choices[layer]`` is
``"prune"`` when every filter is pruned, otherwise the smallest bit option
>= bits_n (b_max - Q_n may fall between or below the chosen options); the
per-filter prune masks are in ``details["filter_masks"]`` (only layers with
some but not all filters pruned) and ``details["raw_bits"]`` keeps bits_n.
"keep" (fp32) has no place in this encoding and is ignored. A budget is met
by bisecting gamma (capacity search); the slack encoding does not apply
because the size is quadratic in the variables here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import dimod
import numpy as np
import torch
from dwave.samplers import SimulatedAnnealingSampler
from torch import nn

from core.compress.mixed_precision import decision_size_bits
from core.errors import InvalidInputError
from core.formulations.base import Decision, Formulation
from core.formulations.exact import BRUTE_FORCE_MAX, solve_bruteforce
from core.formulations.mixed_precision import (
    SamplerLike,
    _check_number,
    _run_sampler,
    problem_from_sensitivity,
    resolve_budget,
)
from core.sensitivity.measure import Sensitivity
from core.sensitivity.options import option_label

__all__ = ["build_paper_encoding"]


def build_paper_encoding(
    model: nn.Module,
    sensitivity: Sensitivity,
    *,
    beta: float = 1.0,
    gamma: float = 1.0,
    lambda_sparsity: float = 0.0,
    budget_bits: float | None = None,
    budget_ratio: float | None = None,
    budget_encoding: str = "capacity",
    sampler: SamplerLike | None = None,
    num_reads: int = 20,
    seed: int = 0,
) -> Formulation:
    """The paper's QUBO for ``model`` given its (per-layer) ``sensitivity``.

    With a budget, gamma is raised from the given value (doubling, then
    bisection) until the decoded best sample meets it; samples come from
    ``dimod.ExactSolver`` when the QUBO has at most 20 variables, else from
    ``sampler`` (default: simulated annealing, ``num_reads`` reads, ``seed``).
    """
    beta = _check_number("beta", beta)
    gamma = _check_number("gamma", gamma)
    lambda_sparsity = _check_number("lambda_sparsity", lambda_sparsity)
    if sensitivity.groups != 1:
        raise InvalidInputError("The paper encoding decides per filter already; measure sensitivity with groups=1.")
    if budget_encoding != "capacity":
        raise InvalidInputError("The paper encoding supports only the capacity budget encoding (size is quadratic there).")
    bit_options = sorted(o for o in sensitivity.options if isinstance(o, int))
    if not bit_options:
        raise InvalidInputError("The paper encoding needs at least one bit width among the options.")
    b_max, b_min = bit_options[-1], bit_options[0]
    n_q = math.ceil(math.log2(b_max - b_min + 1)) if b_max > b_min else 0
    problem = problem_from_sensitivity(sensitivity, model)
    budget = resolve_budget(problem, budget_bits, budget_ratio)
    prune_allowed = "prune" in sensitivity.options
    units = sensitivity.units
    N = max(problem.total_params, 1)

    layers: list[dict[str, Any]] = []
    for unit in units:
        w = model.get_submodule(unit.layer).weight.detach()
        per_filter = unit.weight_params // unit.out_channels
        d = sensitivity.distortion[unit.name]
        slope = 0.0
        if b_max > b_min:
            slope = max(0.0, (d[option_label(b_min)] - d[option_label(b_max)]) / (b_max - b_min))
        layers.append({
            "unit": unit,
            "a": w.reshape(w.shape[0], -1).abs().mean(dim=1).to(torch.float64).numpy(),
            "f": per_filter,
            "p": [f"{unit.name}#p{i}" for i in range(unit.out_channels)] if prune_allowed and unit.safe_to_prune else [],
            "q": [f"{unit.name}#q{k}" for k in range(n_q)],
            "slope": slope,
        })
    z_p = sum(float(layer["a"].sum()) ** 2 for layer in layers if layer["p"]) or 1.0
    z_q = (2**n_q - 1) * sum(layer["slope"] for layer in layers) or 1.0
    z_r = float(sum(layer["unit"].out_channels * layer["f"] * b_max for layer in layers)) or 1.0

    def assemble(gam: float) -> dimod.BinaryQuadraticModel:
        bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
        for layer in layers:
            a, p, q, f = layer["a"], layer["p"], layer["q"], layer["f"]
            F = layer["unit"].out_channels
            per_param = f + layer["unit"].bias_params // F
            for i, v in enumerate(p):  # L_p diagonal, R (pruning), sparsity
                bqm.add_linear(v, a[i] ** 2 / z_p - gam * f * b_max / z_r - lambda_sparsity * per_param / N)
            if p:
                iu, ju = np.triu_indices(len(p), k=1)
                coef = 2.0 * a[iu] * a[ju] / z_p
                bqm.add_quadratic_from((p[i], p[j], c) for i, j, c in zip(iu.tolist(), ju.tolist(), coef.tolist()))
            for k, v in enumerate(q):  # L_q and R (bits)
                bqm.add_linear(v, beta * layer["slope"] * 2**k / z_q - gam * f * F * 2**k / z_r)
                for u in p:  # - gamma * (-P Q) = + gamma f p q 2^k / Z_R
                    bqm.add_quadratic(u, v, gam * f * 2**k / z_r)
        bqm.offset += lambda_sparsity
        return bqm

    def read(sample: Mapping[Any, int]) -> tuple[dict[str, Any], dict[str, list[bool]], dict[str, int]]:
        choices: dict[str, Any] = {}
        masks: dict[str, list[bool]] = {}
        raw: dict[str, int] = {}
        for layer in layers:
            name = layer["unit"].name
            mask = [bool(sample.get(v, 0)) for v in layer["p"]] or [False] * layer["unit"].out_channels
            bits = b_max - sum(2**k * int(sample.get(v, 0)) for k, v in enumerate(layer["q"]))
            raw[name] = bits
            if all(mask):
                choices[name] = "prune"
                continue
            choices[name] = next(b for b in bit_options if b >= bits)
            if any(mask):
                masks[name] = mask
        return choices, masks, raw

    def size_of(sample: Mapping[Any, int]) -> int:
        choices, masks, _ = read(sample)
        return decision_size_bits(model, choices, filter_masks=masks)

    rng_seed = seed

    def best_sample(bqm: dimod.BinaryQuadraticModel) -> dict[Any, int]:
        if bqm.num_variables <= BRUTE_FORCE_MAX:
            found = solve_bruteforce(bqm)
            assert found is not None
            return found[1]
        if sampler is None:
            result = SimulatedAnnealingSampler().sample(bqm, num_reads=num_reads, seed=rng_seed)
        else:
            result = _run_sampler(sampler, bqm, rng_seed)
        return dict(result.first.sample)

    trace: list[dict[str, float]] = []
    if budget is not None:
        def meets(gam: float) -> bool:
            size = size_of(best_sample(assemble(gam)))
            trace.append({"gamma": gam, "size_bits": size})
            return size <= budget

        if not meets(gamma):
            lo, hi = gamma, max(2 * gamma, 1e-3)
            for _ in range(40):
                if meets(hi):
                    break
                lo, hi = hi, 2 * hi
            else:
                raise InvalidInputError(
                    "The paper encoding could not meet the budget by raising gamma; try a larger budget."
                )
            for _ in range(20):
                if hi - lo <= 1e-4 * hi:
                    break
                mid = 0.5 * (lo + hi)
                if meets(mid):
                    hi = mid
                else:
                    lo = mid
            gamma = hi
    bqm = assemble(gamma)

    def decode(sample: Mapping[Any, int]) -> Decision:
        choices, masks, raw = read(sample)
        size = decision_size_bits(model, choices, filter_masks=masks)
        violations = [] if budget is None or size <= budget else [
            f"size {size} bits exceeds the budget of {budget} bits"
        ]
        pruned = {name: sum(m) for name, m in masks.items()}
        return Decision(
            choices=choices,
            feasible=not violations,
            violations=violations,
            violation_kinds=["over budget"] if violations else [],
            details={
                "filter_masks": masks,
                "raw_bits": raw,
                "pruned_filters": pruned,
                "size_bits": size,
                "compression_ratio": problem.uncompressed_bits / size if size else math.inf,
            },
        )

    tables = {
        "units": [
            {
                "name": name,
                "params": problem.params[u],
                "filters": layers[u]["unit"].out_channels,
                "bits_per_removed_bit_distortion": layers[u]["slope"],
                "options": [
                    {
                        "option": opt if opt in ("prune", "keep") else int(opt),
                        "distortion": float(problem.distortion[u][i]),
                        "cost_bits": int(problem.cost_bits[u][i]),
                        "kept_params": int(problem.kept_params[u][i]),
                        "energy": None,
                    }
                    for i, opt in enumerate(problem.options[u])
                ],
            }
            for u, name in enumerate(problem.units)
        ],
        "budget_bits": budget,
        "lambda_bits": gamma,
        "lambda_sparsity": lambda_sparsity,
        "beta": beta,
        "gamma": gamma,
        "b_max": b_max,
        "b_min": b_min,
        "uncompressed_bits": problem.uncompressed_bits,
        "fixed_bits": problem.fixed_bits,
    }
    params = {
        "encoding": "paper",
        "prune_variables": {layer["unit"].name: layer["p"] for layer in layers},
        "bit_variables": {layer["unit"].name: layer["q"] for layer in layers},
        "beta": beta,
        "gamma": gamma,
        "lambda_bits": gamma,
        "lambda_sparsity": lambda_sparsity,
        "budget_bits": budget,
        "budget_encoding": "capacity" if budget is not None else None,
        "capacity_trace": trace,
        "normalisers": {"L_p": z_p, "L_q": z_q, "R": z_r},
        "seed": seed,
    }
    return Formulation(method="mixed-precision", bqm=bqm, decoder=decode, tables=tables, params=params)
