"""F2 — hybrid filter pruning: QUBO + capacity search + tensor-train refinement.

The QUBO (DESIGN section 3, F2)
-------------------------------
For one conv layer with C filters, ``x[i] = 1`` keeps filter i and K filters
are to be kept::

    E(x) = - sum_i I[i] x[i] + mu * sum_{i<j} S[i,j] x[i] x[j]
           + P (sum_i x[i] - K)^2 - lambda * sum_i x[i]

``I`` is the importance (first-order Taylor, Fisher or L1 norm, from
:mod:`core.sensitivity.filters`) and ``S`` the redundancy (|Pearson| or
|cosine| similarity of the filters' activations on calibration data, in
[0, 1], zero diagonal). Both are **normalised** so that ``mu`` has a fixed
meaning: ``I`` is divided by its mean (mean importance 1) and ``S`` by
``K - 1``, so that a kept filter's redundancy penalty is ``mu`` times its
*average* similarity to the other kept filters. ``mu = 1`` thus weighs
"perfectly redundant with every other kept filter" like one average filter's
importance; ``mu = 0`` gives exactly top-K by importance.

With ``importance="fisher-matrix"`` the importance term is second order: the
filters' whole empirical Fisher matrix F (mask variables; its diagonal is the
Fisher score) estimates the loss increase of removing the unkept filters
jointly, ``(1 - x)^T F (1 - x)`` (up to a factor 1/2N), so the QUBO also
sees how removals compound or cancel, not only each filter alone. It replaces
``-sum_i I[i] x[i]`` (see :class:`SelectionTerms`). F is normalised by the
mean of its diagonal, like the scores, but its cross terms are usually far
larger than ``mu * S`` (on digits-cnn about 15-30 times at ``mu = 1``), so
``mu`` matters much less than with per-filter scores. A likely reason it
suits a well-trained network: there the loss gradient is near zero, so the
first-order Taylor score is mostly noise and the second-order term leads
(benchmarks/RESULTS.md has the measured, more modest, picture).

Capacity search (exact K)
-------------------------
``P (s - K)^2`` only depends on the count ``s``: among solutions with exactly
K kept it is constant, so it does not change which K-subset is best. A huge
P would only make the landscape rugged for the annealer (every single flip
costs P). Instead P stays moderate (default 0.1, in units of the mean
importance) and the linear shift ``lambda`` (the last term) is searched by
bisection: the minimiser's count is non-decreasing in lambda, so when the
sampler's best sample keeps fewer than K filters lambda goes up, when more it
goes down, until it keeps exactly K. If the count jumps over K (a degenerate
breakpoint) P is multiplied by 4 and the search repeated, which makes the
count-energy convex enough to hit every K. Among all samples drawn, the best
one with exactly K kept (lowest ``E`` at lambda = 0) is taken; only if no
sample at all has K kept is the nearest one repaired greedily (reported as
``repaired``; this has not been needed on the built-in models). With
``polish=True`` (default) a steepest-descent 1-swap search at fixed count then
runs from it; ``polish_swaps`` reports how many swaps it made (0 means the
sampler's solution was already 1-swap optimal, the usual case with SA at the
default P).

Joint pruning of several layers uses one QUBO per layer (the joint QUBO has
no cross-layer terms, so solving the layers separately is the same problem),
each with its own K and capacity search.

Refinement (``refine="tt"``)
----------------------------
The QUBO is a surrogate; the second stage searches the *true* calibration
cross-entropy of the pruned network with the tensor-train optimiser ``ttopt``
(TT-cross / maximum-volume, gradient-free). The search space is swap moves
around the QUBO solution: per layer, ``slots`` dimensions (the kept filters
with the lowest importance), each taking ``candidates + 1`` values: 0 keeps
the filter, r replaces it by the r-th most important pruned filter (a
candidate chosen twice in one layer is used once; the later slot keeps its
filter). Index (0, ..., 0) is the QUBO solution itself and is evaluated
first; the best point evaluated is returned, so refinement is never worse on
the calibration loss. When the grid has at most ``evals`` points it is
enumerated exhaustively instead (reported as ``method="exhaustive"``).

Baselines
---------
``greedy_taylor`` (top-K by Taylor importance), ``l1_topk`` (top-K by filter
L1 norm) and ``l1_qubo`` (the same QUBO, same mu, S and capacity search, with
``I`` = L1 norms). An optional fine-tune (``finetune_epochs``) is applied
identically to the QUBO result and every baseline.

Public API: :func:`kept_count`, :func:`normalise`, :func:`selection_terms`, :func:`filter_qubo`,
:func:`qubo_energy`, :func:`capacity_search`, :func:`layer_formulation`,
:func:`top_k`, :func:`refine_tt`, :func:`finetune`, :func:`prune_filters`,
:class:`SelectionTerms`, :class:`CapacityResult`, :class:`MethodResult`, :class:`FilterPruningResult`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.compress.filters import MaskedEvaluator, PrunedModel, apply_filter_decision, enforce_masks
from core.data.dataset import EvalData
from core.errors import InvalidInputError, UnavailableError
from core.evaluate.metrics import Quality, accuracy_and_loss, measure_latency
from core.formulations.base import Decision, Formulation
from core.sensitivity.filters import (
    IMPORTANCE_KINDS,
    SIMILARITY_KINDS,
    FilterStats,
    conv_layer_names,
    filter_statistics,
)
from core.solvers import check_sampler_like, sample_with

METHOD = "filter-pruning"
# chosen on the validation split by benchmarks/filter_pruning.py for the Taylor QUBO and the L1-QUBO; the
# Fisher-matrix QUBO is nearly flat in mu there (96.1-96.9% for mu 0-2; its best, mu = 0, is what RESULTS reports)
DEFAULT_MU = 1.0
# the best importance on the validation split in benchmarks/filter_pruning.py (Taylor 94.1%, Fisher matrix 96.4-96.9%)
DEFAULT_IMPORTANCE = "fisher-matrix"
DEFAULT_PENALTY = 0.1
BASELINES = ("greedy_taylor", "l1_topk", "l1_qubo")
REFINE_KINDS = ("tt",)
Progress = Callable[[float, str], None]

__all__ = [
    "BASELINES",
    "DEFAULT_IMPORTANCE",
    "DEFAULT_MU",
    "DEFAULT_PENALTY",
    "METHOD",
    "CapacityResult",
    "FilterPruningResult",
    "MethodResult",
    "SelectionTerms",
    "capacity_search",
    "filter_qubo",
    "finetune",
    "kept_count",
    "layer_formulation",
    "normalise",
    "prune_filters",
    "qubo_energy",
    "refine_tt",
    "selection_bqm",
    "selection_terms",
    "swap_polish",
    "top_k",
]


# --------------------------------------------------------------------------- validation


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise InvalidInputError(f"{name} must be a whole number of at least {minimum}, not {value!r}.")
    return int(value)


def _check_float(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a number, not {value!r}.")
    v = float(value)
    if not np.isfinite(v) or v < minimum:
        raise InvalidInputError(f"{name} must be a finite number of at least {minimum:g}, not {value!r}.")
    return v


def _check_sparsity(value: Any, name: str = "sparsity") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a fraction from 0 to 1 (e.g. 0.5), not {value!r}.")
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise InvalidInputError(f"{name} must be at least 0 and below 1 (the fraction of filters removed), not {value!r}.")
    return v


def _check_vectors(importance: Any, similarity: Any) -> tuple[np.ndarray, np.ndarray]:
    imp = np.asarray(importance, dtype=np.float64)
    if imp.ndim not in (1, 2) or imp.size < 1 or (imp.ndim == 2 and imp.shape[0] != imp.shape[1]):
        raise InvalidInputError(
            "The importance must be a non-empty 1-D array (one score per filter) or a square matrix "
            "(the filters' Fisher matrix)."
        )
    c = imp.shape[0]
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.shape != (c, c):
        raise InvalidInputError(f"The similarity matrix must be {c} x {c}, one row per filter.")
    if not (np.isfinite(imp).all() and np.isfinite(sim).all()):
        raise InvalidInputError("The importance scores and similarities must be finite numbers.")
    if imp.ndim == 1 and (imp < 0).any():
        raise InvalidInputError("Importance scores must not be negative.")
    if imp.ndim == 2:
        if (np.diag(imp) < 0).any():
            raise InvalidInputError("The Fisher matrix's diagonal (each filter's own importance) must not be negative.")
        largest = float(np.abs(imp).max())
        asymmetry = float(np.abs(imp - imp.T).max())
        if asymmetry > 1e-6 * largest:
            raise InvalidInputError(
                f"The Fisher matrix must be symmetric (F[i, j] = F[j, i]); its largest difference is "
                f"{asymmetry / largest:.1e} of its largest entry."
            )
        lowest = float(np.linalg.eigvalsh(0.5 * (imp + imp.T))[0])
        if lowest < -1e-8 * largest * imp.shape[0]:
            raise InvalidInputError(
                "The Fisher matrix must be positive semi-definite (a sum of outer products of per-example "
                f"gradients); its lowest eigenvalue is {lowest:.3g}."
            )
    if (sim < 0).any():
        raise InvalidInputError("Similarities must not be negative (use absolute correlations).")
    return imp, sim


def _check_selection(
    importance: Any, similarity: Any, k: Any, mu: Any, name: str
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Validated ``(importance, similarity, K, mu)`` of one layer's selection problem."""
    imp, sim = _check_vectors(importance, similarity)
    k = _check_int("K (filters kept)", k)
    if k > imp.shape[0]:
        raise InvalidInputError(f"Cannot keep {k} filters of {name}: it has only {imp.shape[0]}.")
    return imp, sim, k, _check_float("mu", mu)


def kept_count(channels: int, sparsity: float) -> int:
    """Filters kept when a fraction ``sparsity`` of ``channels`` is removed
    (rounded half up, at least 1)."""
    channels = _check_int("channels", channels)
    sparsity = _check_sparsity(sparsity)
    # rounded to 9 decimals first: (1 - 0.55) * 30 is 13.499999999999998 in floating point, not 13.5
    return int(max(1, min(channels, np.floor(round((1.0 - sparsity) * channels, 9) + 0.5))))


def normalise(importance: Any, similarity: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(I / mean(I), S_sym / max(K - 1, 1))`` with a zero diagonal (all-zero I stays zero).

    A Fisher matrix ``I`` is divided by the mean of its diagonal, so its
    diagonal is normalised exactly like the Fisher scores it holds.
    """
    imp, sim = _check_vectors(importance, similarity)
    if imp.ndim == 2:
        imp = 0.5 * (imp + imp.T)
    mean = float(np.diag(imp).mean() if imp.ndim == 2 else imp.mean())
    i_n = imp / mean if mean > 0 else np.zeros_like(imp)
    s = 0.5 * (sim + sim.T)
    np.fill_diagonal(s, 0.0)
    return i_n, s / max(int(k) - 1, 1)


@dataclass(frozen=True)
class SelectionTerms:
    """One layer's objective at exactly K kept: ``-linear . x + sum_{i<j} pairs[i, j] x_i x_j``.

    For importance scores, ``linear`` is the normalised I and ``pairs`` is
    ``mu * S``. For a Fisher matrix F (normalised), the importance term is the
    second-order loss estimate of removing the unkept filters,
    ``(1 - x)^T F (1 - x)``, less its constant ``1^T F 1``: ``linear`` is
    ``2 F 1 - diag(F)`` and ``pairs`` gains ``2 F[i, j]``. A diagonal F gives
    exactly the Fisher-score QUBO.
    """

    linear: np.ndarray  # (C,)
    pairs: np.ndarray  # (C, C), symmetric, zero diagonal
    importance: np.ndarray  # the normalised I (scores or matrix), as :func:`normalise` gives it
    similarity: np.ndarray  # the normalised S

    def objective(self, X: np.ndarray) -> np.ndarray:
        """The objective of each row of ``X`` (kept indicators)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return -X @ self.linear + np.einsum("ri,ij,rj->r", X, np.triu(self.pairs, 1), X)


def selection_terms(importance: Any, similarity: Any, k: int, mu: float) -> SelectionTerms:
    """The :class:`SelectionTerms` of one layer (normalised as :func:`normalise`)."""
    i_n, s_n = normalise(importance, similarity, k)
    mu = _check_float("mu", mu)
    if i_n.ndim == 1:
        return SelectionTerms(linear=i_n, pairs=mu * s_n, importance=i_n, similarity=s_n)
    cross = 2.0 * i_n
    np.fill_diagonal(cross, 0.0)
    return SelectionTerms(linear=2.0 * i_n.sum(axis=1) - np.diag(i_n), pairs=mu * s_n + cross, importance=i_n,
                          similarity=s_n)


# --------------------------------------------------------------------------- the QUBO


def qubo_energy(
    x: Any, importance: Any, similarity: Any, k: int, *, mu: float, penalty: float, shift: float = 0.0
) -> float:
    """The formula evaluated directly on normalised I and S (for checks)."""
    terms = selection_terms(importance, similarity, k, mu)
    x = np.asarray(x, dtype=np.float64)
    count = float(x.sum())
    return float(terms.objective(x)[0] + penalty * (count - k) ** 2 - shift * count)


def selection_bqm(terms: SelectionTerms, k: int, *, penalty: float, shift: float = 0.0) -> dimod.BinaryQuadraticModel:
    """``terms``' objective plus ``penalty * (sum x - k)^2 - shift * sum x`` as a BQM on filters 0..C-1.

    No checks: :func:`filter_qubo` is the validated entry point; the capacity
    search calls this directly for each new (penalty, shift).
    """
    c = terms.linear.shape[0]
    linear = -terms.linear + penalty * (1.0 - 2.0 * k) - shift
    rows, cols = np.triu_indices(c, 1)
    quad = terms.pairs[rows, cols] + 2.0 * penalty
    return dimod.BinaryQuadraticModel.from_numpy_vectors(
        linear, (rows, cols, quad), penalty * k * k, dimod.BINARY, variable_order=list(range(c))
    )


def filter_qubo(
    importance: Any,
    similarity: Any,
    k: int,
    *,
    mu: float = DEFAULT_MU,
    penalty: float = DEFAULT_PENALTY,
    shift: float = 0.0,
    name: str = "layer",
    importance_kind: str | None = None,
) -> Formulation:
    """The filter-selection QUBO of one layer (variables: filter indices 0..C-1).

    ``bqm.energy(x)`` equals :func:`qubo_energy` ``(x, ...)`` for every x.
    """
    imp, sim, k, mu = _check_selection(importance, similarity, k, mu, name)
    importance_kind = importance_kind or ("fisher-matrix" if imp.ndim == 2 else "taylor")
    c = imp.shape[0]
    penalty = _check_float("penalty", penalty)
    if isinstance(shift, bool) or not np.isfinite(float(shift)):
        raise InvalidInputError(f"shift must be a finite number, not {shift!r}.")
    shift = float(shift)
    terms = selection_terms(imp, sim, k, mu)
    i_n, s_n = terms.importance, terms.similarity
    bqm = selection_bqm(terms, k, penalty=penalty, shift=shift)

    def decoder(sample: Mapping[Any, int]) -> Decision:
        missing = [i for i in range(c) if i not in sample]
        if missing:
            raise InvalidInputError(f"The sample has no value for filter(s) {missing[:5]} of {name}.")
        x = np.array([int(sample[i]) for i in range(c)], dtype=np.float64)
        kept = [i for i in range(c) if x[i]]
        violations = [] if len(kept) == k else [f"{name} keeps {len(kept)} filters, not exactly {k}"]
        obj = float(terms.objective(x)[0])
        redundancy = float(x @ np.triu(s_n, 1) @ x)
        return Decision(
            choices={name: kept},
            feasible=not violations,
            violations=violations,
            violation_kinds=["wrong filter count"] if violations else [],
            details={
                "count": len(kept),
                "k": k,
                "objective": obj,
                # minus the importance term of the objective: sum I x for scores, the (negated) removal
                # estimate 1^T F 1 - (1 - x)^T F (1 - x) for a Fisher matrix
                "importance_kept": mu * redundancy - obj,
                "redundancy_kept": redundancy,
            },
        )

    return Formulation(
        method=METHOD,
        bqm=bqm,
        decoder=decoder,
        tables={
            "layer": name,
            "importance": imp.tolist(),
            "importance_normalised": i_n.tolist(),
            "importance_linear": terms.linear.tolist(),
            "similarity": sim.tolist(),
            "similarity_normalised": s_n.tolist(),
            "k": k,
            "channels": c,
        },
        params={"mu": mu, "penalty": penalty, "shift": shift, "k": k, "importance": importance_kind},
    )


# --------------------------------------------------------------------------- capacity search


@dataclass
class CapacityResult:
    """The outcome of the capacity-driven search for one layer."""

    kept: list[int]
    formulation: Formulation  # the QUBO at the final shift and penalty
    decision: Decision
    shift: float
    penalty: float
    solves: int
    hit: bool  # the sampler's best sample at some shift kept exactly K
    repaired: bool  # no sample had K kept; the nearest was repaired greedily
    history: list[tuple[float, float, int]] = field(default_factory=list)  # (penalty, shift, count)
    polish_swaps: int = 0  # swaps the 1-swap descent made after the sampler (0: sampler's best kept)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": list(self.kept),
            "shift": self.shift,
            "penalty": self.penalty,
            "solves": self.solves,
            "hit": self.hit,
            "repaired": self.repaired,
            "polish_swaps": self.polish_swaps,
            "objective": self.decision.details.get("objective"),
            "history": [list(h) for h in self.history],
        }


def _samples_matrix(ss: dimod.SampleSet, c: int) -> np.ndarray:
    cols = [ss.variables.index(i) for i in range(c)]
    return np.asarray(ss.record.sample, dtype=np.float64)[:, cols]


def _repair(x: np.ndarray, k: int, terms: SelectionTerms) -> np.ndarray:
    """Greedily add/remove the filter with the best marginal objective until K are kept."""
    x = x.copy()
    while x.sum() != k:
        # change of the objective when filter i joins (x_i = 0) or leaves (x_i = 1); zero diagonal
        marginal = -terms.linear + terms.pairs @ x
        if x.sum() < k:
            cand = np.flatnonzero(x == 0)
            x[cand[np.argmin(marginal[cand])]] = 1
        else:
            cand = np.flatnonzero(x == 1)
            x[cand[np.argmin(-marginal[cand])]] = 0
    return x


def swap_polish(
    x: np.ndarray, linear: np.ndarray, pairs: np.ndarray, mu: float = 1.0, *, max_steps: int = 10_000
) -> tuple[np.ndarray, int]:
    """Steepest-descent 1-swap search (one kept filter out, one pruned in) on
    ``-linear . x + mu * sum_{i<j} pairs[i, j] x_i x_j`` (``pairs`` symmetric with
    a zero diagonal, of any sign) at fixed count; returns (x, number of swaps made)."""
    x = x.astype(np.float64).copy()
    steps = 0
    while steps < max_steps:
        marginal = -linear + mu * (pairs @ x)  # objective change adding i (x_i=0) / minus removing i (x_i=1)
        out = np.flatnonzero(x == 1)
        inn = np.flatnonzero(x == 0)
        if not out.size or not inn.size:
            break
        # swap o -> j: delta = -marginal[o] + marginal[j] - mu * pairs[o, j]
        delta = -marginal[out][:, None] + marginal[inn][None, :] - mu * pairs[np.ix_(out, inn)]
        a, b = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if delta[a, b] >= -1e-12:
            break
        x[out[a]], x[inn[b]] = 0.0, 1.0
        steps += 1
    return x, steps


def capacity_search(
    importance: Any,
    similarity: Any,
    k: int,
    *,
    mu: float = DEFAULT_MU,
    penalty: float | None = None,
    sampler: str | dimod.Sampler | Callable[..., dimod.SampleSet] = "sa",
    num_reads: int = 50,
    seed: int = 0,
    max_solves: int = 30,
    sample_kwargs: Mapping[str, Any] | None = None,
    name: str = "layer",
    importance_kind: str | None = None,
    polish: bool = True,
) -> CapacityResult:
    """Solve one layer's QUBO with bisection on the linear shift so that the
    decoded solution keeps exactly ``k`` filters (see the module docstring)."""
    imp, sim, k, mu = _check_selection(importance, similarity, k, mu, name)
    sampler = check_sampler_like(sampler)
    c = imp.shape[0]
    pen = DEFAULT_PENALTY if penalty is None else _check_float("penalty", penalty)
    max_solves = _check_int("max_solves", max_solves)
    num_reads = _check_int("num_reads", num_reads)
    seed = _check_int("seed", seed, 0)
    kwargs = dict(sample_kwargs or {})
    terms = selection_terms(imp, sim, k, mu)

    best_x: np.ndarray | None = None
    best_obj = np.inf
    best_at = (pen, 0.0)
    hit = False
    history: list[tuple[float, float, int]] = []
    last_first: np.ndarray | None = None
    solves = 0
    shift = 0.0
    per_attempt = max(1, max_solves // 3)
    while solves < max_solves and not hit:
        lo: float | None = None
        hi: float | None = None
        step = 1.0
        for _ in range(per_attempt):
            if solves >= max_solves:
                break
            bqm = selection_bqm(terms, k, penalty=pen, shift=shift)
            ss = sample_with(sampler, bqm, num_reads=num_reads, seed=seed + solves, **kwargs)
            solves += 1
            X = _samples_matrix(ss, c)
            energies = np.asarray(ss.record.energy)
            first = X[int(np.argmin(energies))]
            last_first = first
            count = int(first.sum())
            history.append((pen, shift, count))
            feasible = X[X.sum(axis=1) == k]
            if feasible.shape[0]:
                objs = terms.objective(feasible)
                j = int(np.argmin(objs))
                if objs[j] < best_obj - 1e-12:
                    best_obj, best_x, best_at = float(objs[j]), feasible[j].copy(), (pen, shift)
            if count == k:
                hit = True
                break
            if count < k:
                lo = shift
                shift = 0.5 * (shift + hi) if hi is not None else shift + step
            else:
                hi = shift
                shift = 0.5 * (lo + shift) if lo is not None else shift - step
            step *= 2.0
            if lo is not None and hi is not None and hi - lo < 1e-9:
                break
        if not hit:
            pen *= 4.0
            shift = 0.0
    repaired = False
    if best_x is None:
        assert last_first is not None
        best_x = _repair(last_first, k, terms)
        repaired = True
        best_at = (history[-1][0], history[-1][1])
    polish_swaps = 0
    if polish:
        best_x, polish_swaps = swap_polish(best_x, terms.linear, terms.pairs)
    pen_f, shift_f = best_at
    form = filter_qubo(imp, sim, k, mu=mu, penalty=pen_f, shift=shift_f, name=name, importance_kind=importance_kind)
    form.params.update({"solves": solves, "hit": hit, "repaired": repaired, "polish_swaps": polish_swaps})
    sample = {i: int(best_x[i]) for i in range(c)}
    decision = form.decode(sample)
    decision.details.update(
        {"shift": shift_f, "penalty": pen_f, "solves": solves, "repaired": repaired, "polish_swaps": polish_swaps}
    )
    form.tables["solution"] = [int(v) for v in best_x]
    return CapacityResult(
        kept=[i for i in range(c) if best_x[i]],
        formulation=form,
        decision=decision,
        shift=shift_f,
        penalty=pen_f,
        solves=solves,
        hit=hit,
        repaired=repaired,
        history=history,
        polish_swaps=polish_swaps,
    )


def top_k(scores: Any, k: int) -> list[int]:
    """Indices of the ``k`` largest scores (ties: lower index first), sorted."""
    s = np.asarray(scores, dtype=np.float64)
    k = _check_int("k", k)
    if s.ndim != 1 or k > s.size:
        raise InvalidInputError(f"Cannot take the top {k} of {s.size} scores.")
    order = np.lexsort((np.arange(s.size), -s))
    return sorted(int(i) for i in order[:k])


def _sparsity_map(sparsity: Any, names: list[str]) -> dict[str, float]:
    if isinstance(sparsity, Mapping):
        unknown = sorted(set(sparsity) - set(names))
        if unknown:
            raise InvalidInputError(f"sparsity names layers that are not being pruned: {', '.join(unknown)}.")
        missing = [n for n in names if n not in sparsity]
        if missing:
            raise InvalidInputError(f"sparsity gives no value for {', '.join(missing)}.")
        return {n: _check_sparsity(sparsity[n], f"sparsity of {n}") for n in names}
    value = _check_sparsity(sparsity)
    return dict.fromkeys(names, value)


def layer_formulation(
    model: nn.Module,
    calib: EvalData,
    layer: str,
    *,
    sparsity: float,
    importance: str = DEFAULT_IMPORTANCE,
    mu: float = DEFAULT_MU,
    penalty: float = DEFAULT_PENALTY,
    shift: float = 0.0,
    similarity: str = "pearson",
    stats: FilterStats | None = None,
) -> Formulation:
    """The filter QUBO of one conv layer (for inspection, e.g. the app heatmap).

    ``stats`` (from :func:`core.sensitivity.filters.filter_statistics`) avoids
    recomputing importance and similarity.
    """
    if importance not in IMPORTANCE_KINDS:
        raise InvalidInputError(f"importance must be one of {', '.join(IMPORTANCE_KINDS)}, not {importance!r}.")
    if stats is None:
        stats = filter_statistics(model, calib, [layer], similarity=similarity)[layer]
    elif not isinstance(stats, FilterStats) or stats.name != layer:
        raise InvalidInputError(f"The given statistics are not those of layer {layer!r}.")
    k = kept_count(stats.out_channels, sparsity)
    return filter_qubo(
        stats.importance(importance), stats.similarity, k, mu=mu, penalty=penalty, shift=shift,
        name=layer, importance_kind=importance,
    )


# --------------------------------------------------------------------------- refinement


def refine_tt(
    loss: Callable[[dict[str, list[int]]], float],
    kept: Mapping[str, Iterable[int]],
    scores: Mapping[str, Any],
    *,
    slots: int = 4,
    candidates: int = 6,
    evals: int = 600,
    rank: int = 3,
    seed: int = 0,
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Swap-move search around ``kept`` minimising ``loss(kept)`` with ttopt.

    Returns ``(best kept, info)``; best is never worse than ``kept`` on ``loss``.
    """
    slots = _check_int("slots", slots)
    candidates = _check_int("candidates", candidates)
    evals = _check_int("evals", evals, 2)
    rank = _check_int("rank", rank)
    seed = _check_int("seed", seed, 0)
    start = {n: sorted(int(i) for i in idx) for n, idx in kept.items()}
    dims: list[tuple[str, int, list[int]]] = []  # (layer, slot filter, candidate filters)
    for n, idx in start.items():
        sc = np.asarray(scores[n], dtype=np.float64)
        pruned = [i for i in range(sc.size) if i not in set(idx)]
        if not pruned:
            continue
        slot_f = sorted(idx, key=lambda i: (sc[i], i))[:slots]
        cand_f = sorted(pruned, key=lambda i: (-sc[i], i))[:candidates]
        dims += [(n, f, cand_f) for f in slot_f]
    cache: dict[tuple, float] = {}

    def decode(index: np.ndarray) -> dict[str, list[int]]:
        new = {n: list(v) for n, v in start.items()}
        used: dict[str, set[int]] = {n: set() for n in start}
        for (n, f, cand), r in zip(dims, index, strict=True):
            r = int(r)
            if r == 0 or cand[r - 1] in used[n]:
                continue
            used[n].add(cand[r - 1])
            new[n][new[n].index(f)] = cand[r - 1]
        return {n: sorted(v) for n, v in new.items()}

    def evaluate(choice: dict[str, list[int]]) -> float:
        key = tuple((n, tuple(v)) for n, v in sorted(choice.items()))
        if key not in cache:
            cache[key] = float(loss(choice))
        return cache[key]

    start_loss = evaluate(start)
    t0 = time.perf_counter()
    sizes = [len(c) + 1 for _, _, c in dims]
    total = int(np.prod(sizes, dtype=np.float64)) if dims else 1
    if not dims:
        method = "none"
    elif total <= evals:
        method = "exhaustive"
        for index in itertools.product(*[range(s) for s in sizes]):
            evaluate(decode(np.array(index)))
    else:
        try:
            from ttopt import TTOpt
        except ImportError as exc:
            raise UnavailableError(
                "Tensor-train refinement needs the ttopt package; install it with `pip install ttopt==0.6.2`."
            ) from exc
        method = "ttopt"

        def f(indices: np.ndarray) -> np.ndarray:
            return np.array([evaluate(decode(row)) for row in np.atleast_2d(indices)])

        opt = TTOpt(f, d=len(dims), n=sizes, evals=evals, is_func=False, is_vect=True, with_wrn=False)
        state = np.random.get_state()
        try:
            opt.optimize(rank=rank, seed=seed)
        finally:
            np.random.set_state(state)
    best_key = min(cache, key=lambda key: (cache[key], key))
    best = {n: list(v) for n, v in best_key}
    if cache[best_key] >= start_loss:
        best = start
    info = {
        "method": method,
        "dimensions": len(dims),
        "grid": sizes,
        "evaluations": len(cache),
        "start_loss": start_loss,
        "loss": float(min(start_loss, cache[best_key])),
        "improved": cache[best_key] < start_loss,
        "swaps": {n: sorted(set(start[n]) ^ set(best[n])) for n in start},
        "time_s": time.perf_counter() - t0,
    }
    return best, info


# --------------------------------------------------------------------------- fine-tune


def finetune(
    pruned: PrunedModel, train: EvalData, *, epochs: int, seed: int = 0, lr: float = 1e-3, batch_size: int = 64
) -> None:
    """Train ``pruned.model`` in place for ``epochs`` epochs with Adam (masked
    filters stay zero). The same call is used for every compared method."""
    epochs = _check_int("finetune_epochs", epochs, 0)
    if epochs == 0:
        return
    model = pruned.model
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            out = model(train.images[idx])
            if isinstance(out, (tuple, list)):
                out = out[0]
            F.cross_entropy(out, train.labels[idx]).backward()
            opt.step()
            enforce_masks(pruned)
    model.eval()


# --------------------------------------------------------------------------- the pipeline


@dataclass
class MethodResult:
    """One method's pruned model and its scores."""

    kept: dict[str, list[int]]
    model: nn.Module
    quality: Quality  # on the evaluation data: accuracy, loss and per-example hits
    calib_loss: float
    params: int
    removed: list[str]
    masked: dict[str, str]

    @property
    def accuracy(self) -> float:
        return self.quality.accuracy

    @property
    def loss(self) -> float:
        return self.quality.loss

    @property
    def correct(self) -> np.ndarray:
        return self.quality.correct

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": {n: list(v) for n, v in self.kept.items()},
            "kept_count": {n: len(v) for n, v in self.kept.items()},
            "accuracy": self.accuracy,
            "loss": self.loss,
            "calib_loss": self.calib_loss,
            "params": self.params,
            "removed": list(self.removed),
            "masked": dict(self.masked),
        }


@dataclass
class FilterPruningResult:
    """Everything :func:`prune_filters` produced; ``as_dict()`` is the report."""

    model: nn.Module
    kept: dict[str, list[int]]
    result: MethodResult
    formulations: dict[str, Formulation]
    decisions: dict[str, Decision]
    capacity: dict[str, CapacityResult]
    stats: dict[str, FilterStats]
    baselines: dict[str, MethodResult]
    original_quality: Quality  # the unpruned model on the evaluation data
    original_params: int
    removed: list[str]
    masked: dict[str, str]
    latency_ms: dict[str, float] | None
    refinement: dict[str, Any] | None
    timing: dict[str, float]
    params: dict[str, Any]

    @property
    def original(self) -> dict[str, float]:
        """The unpruned model's accuracy, loss and parameter count, as the report gives them."""
        return {"accuracy": self.original_quality.accuracy, "loss": self.original_quality.loss,
                "params": float(self.original_params)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "params": dict(self.params),
            "kept": {n: list(v) for n, v in self.kept.items()},
            "result": self.result.as_dict(),
            "original": self.original,
            "removed": list(self.removed),
            "masked": dict(self.masked),
            "capacity": {n: c.as_dict() for n, c in self.capacity.items()},
            "baselines": {n: b.as_dict() for n, b in self.baselines.items()},
            "latency_ms": self.latency_ms,
            "refinement": self.refinement,
            "timing": dict(self.timing),
        }


def _score(
    model: nn.Module, kept: dict[str, list[int]], evaluator: MaskedEvaluator, eval_data: EvalData,
    train: EvalData | None, epochs: int, seed: int,
) -> MethodResult:
    pruned = apply_filter_decision(model, kept)
    if epochs:
        assert train is not None
        finetune(pruned, train, epochs=epochs, seed=seed)
    with torch.no_grad():
        logits = pruned.model(evaluator.images)
        calib_loss = float(F.cross_entropy(logits, evaluator.labels).item())
    return MethodResult(
        kept={n: list(v) for n, v in kept.items()},
        model=pruned.model,
        quality=accuracy_and_loss(pruned.model, eval_data),
        calib_loss=calib_loss,
        params=pruned.params_after,
        removed=pruned.removed,
        masked=pruned.masked,
    )


def prune_filters(
    model: nn.Module,
    calib: EvalData,
    *,
    sparsity: float | Mapping[str, float],
    importance: str = DEFAULT_IMPORTANCE,
    mu: float = DEFAULT_MU,
    sampler: str | dimod.Sampler | Callable[..., dimod.SampleSet] = "sa",
    num_reads: int = 50,
    seed: int = 0,
    layers: Iterable[str] | None = None,
    refine: str | None = None,
    finetune_epochs: int = 0,
    train_data: EvalData | None = None,
    eval_data: EvalData | None = None,
    penalty: float | None = None,
    similarity: str = "pearson",
    sample_kwargs: Mapping[str, Any] | None = None,
    refine_options: Mapping[str, Any] | None = None,
    polish: bool = True,
    baselines: bool = True,
    baseline_sampler: str | dimod.Sampler | Callable[..., dimod.SampleSet] | None = None,
    measure_speed: bool = True,
    progress: Progress | None = None,
) -> FilterPruningResult:
    """Prune a fraction ``sparsity`` of the filters of every chosen conv layer.

    Args:
        model: the network (not modified; results are copies).
        calib: calibration data for importance, similarity and refinement.
        sparsity: fraction of filters removed, for all layers or per layer.
        importance: "taylor", "fisher", "fisher-matrix" (default) or "l1" for the QUBO's importance term.
        mu: weight of the redundancy term (see the module docstring).
        sampler, num_reads, seed, sample_kwargs: passed to :func:`core.solvers.sample_with` (a registry name, dimod sampler or function).
        layers: conv layers to prune (default: every ordinary conv).
        refine: None or "tt" (tensor-train refinement on the calibration loss).
        finetune_epochs: epochs of fine-tuning after pruning (every method).
        train_data: data for fine-tuning (required when finetune_epochs > 0).
        eval_data: data for the reported accuracy (default: ``calib``).
        penalty: initial P of the capacity search (default 0.1).
        similarity: "pearson" or "cosine" redundancy.
        refine_options: ``slots``, ``candidates``, ``evals``, ``rank`` for :func:`refine_tt`.
        polish: 1-swap descent on each sampled QUBO solution (same for the L1-QUBO).
        baselines: also compute greedy Taylor, L1 top-K and L1-QUBO.
        baseline_sampler: the L1-QUBO's sampler (default: ``sampler``); a separate one keeps per-sampler
            statistics (e.g. a RegistrySampler's chains) to the method's own solves.
        measure_speed: time the original and pruned model (batch 64, 1 thread).
        progress: ``f(fraction, message)``.
    """
    t_start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise InvalidInputError("The model must be a torch nn.Module.")
    if not isinstance(calib, EvalData) or len(calib) < 2:
        raise InvalidInputError("Calibration data must be an EvalData set with at least 2 images.")
    if importance not in IMPORTANCE_KINDS:
        raise InvalidInputError(f"importance must be one of {', '.join(IMPORTANCE_KINDS)}, not {importance!r}.")
    if similarity not in SIMILARITY_KINDS:
        raise InvalidInputError(f"similarity must be one of {', '.join(SIMILARITY_KINDS)}, not {similarity!r}.")
    mu = _check_float("mu", mu)
    num_reads = _check_int("num_reads", num_reads)
    seed = _check_int("seed", seed, 0)
    finetune_epochs = _check_int("finetune_epochs", finetune_epochs, 0)
    if penalty is not None:
        penalty = _check_float("penalty", penalty)
    if refine is not None and refine not in REFINE_KINDS:
        raise InvalidInputError(f"refine must be None or one of {', '.join(REFINE_KINDS)}, not {refine!r}.")
    if finetune_epochs and not isinstance(train_data, EvalData):
        raise InvalidInputError("Fine-tuning needs training data (train_data) as an EvalData set.")
    if eval_data is not None and not isinstance(eval_data, EvalData):
        raise InvalidInputError("eval_data must be an EvalData set.")
    ropts = dict(refine_options or {})
    unknown = sorted(set(ropts) - {"slots", "candidates", "evals", "rank"})
    if unknown:
        raise InvalidInputError(f"Unknown refine option(s): {', '.join(unknown)}.")
    eval_data = eval_data or calib
    report = progress or (lambda _f, _m: None)
    model = model.eval()
    names = conv_layer_names(model, layers)
    spars = _sparsity_map(sparsity, names)
    timing: dict[str, float] = {}

    report(0.0, "Measuring filter importance and redundancy")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    stats = filter_statistics(model, calib, names, similarity=similarity)
    timing["statistics_s"] = time.perf_counter() - t0
    ks = {n: kept_count(stats[n].out_channels, spars[n]) for n in names}

    def qubo(kind: str, label: str, offset: int, solver: Any) -> dict[str, CapacityResult]:
        out = {}
        for li, n in enumerate(names):
            report(0.1 + 0.4 * li / len(names), f"{label}: capacity search on {n}")
            out[n] = capacity_search(
                stats[n].importance(kind), stats[n].similarity, ks[n], mu=mu, penalty=penalty, sampler=solver,
                num_reads=num_reads, seed=seed + offset + 1000 * li, sample_kwargs=sample_kwargs, name=n,
                importance_kind=kind, polish=polish,
            )
        return out

    t0 = time.perf_counter()
    capacity = qubo(importance, "QUBO", 0, sampler)
    timing["qubo_s"] = time.perf_counter() - t0
    kept = {n: capacity[n].kept for n in names}
    evaluator = MaskedEvaluator(model, calib.images, calib.labels, names)

    refinement = None
    if refine == "tt":
        report(0.55, "Tensor-train refinement on the calibration loss")
        # per-filter scores order the swap candidates; a Fisher matrix contributes its diagonal
        scores = {n: stats[n].importance("fisher" if importance == "fisher-matrix" else importance) for n in names}
        kept, refinement = refine_tt(evaluator.loss, kept, scores, seed=seed, **ropts)
        refinement["qubo_kept"] = {n: capacity[n].kept for n in names}
        timing["refine_s"] = refinement["time_s"]

    report(0.7, "Applying and scoring the pruned model")
    t0 = time.perf_counter()
    result = _score(model, kept, evaluator, eval_data, train_data, finetune_epochs, seed)
    baseline_results: dict[str, MethodResult] = {}
    if baselines:
        l1_caps = qubo("l1", "L1-QUBO", 500, sampler if baseline_sampler is None else baseline_sampler)
        base_kept = {
            "greedy_taylor": {n: top_k(stats[n].taylor, ks[n]) for n in names},
            "l1_topk": {n: top_k(stats[n].l1, ks[n]) for n in names},
            "l1_qubo": {n: l1_caps[n].kept for n in names},
        }
        for label, choice in base_kept.items():
            baseline_results[label] = _score(model, choice, evaluator, eval_data, train_data, finetune_epochs, seed)
    timing["score_s"] = time.perf_counter() - t0
    latency = None
    if measure_speed:
        report(0.9, "Timing the original and pruned models")
        shape = tuple(calib.images.shape[1:])
        latency = {
            "original": measure_latency(model, shape, batch_sizes=(64,), repeats=10, seed=seed).ms_per_image[64],
            "pruned": measure_latency(result.model, shape, batch_sizes=(64,), repeats=10, seed=seed).ms_per_image[64],
        }
    timing["total_s"] = time.perf_counter() - t_start
    report(1.0, "Done")
    return FilterPruningResult(
        model=result.model,
        kept=result.kept,
        result=result,
        formulations={n: capacity[n].formulation for n in names},
        decisions={n: capacity[n].decision for n in names},
        capacity=capacity,
        stats=stats,
        baselines=baseline_results,
        original_quality=accuracy_and_loss(model, eval_data),
        original_params=sum(p.numel() for p in model.parameters()),
        removed=result.removed,
        masked=result.masked,
        latency_ms=latency,
        refinement=refinement,
        timing=timing,
        params={
            "sparsity": dict(spars),
            "k": dict(ks),
            "importance": importance,
            "similarity": similarity,
            "mu": mu,
            "penalty": DEFAULT_PENALTY if penalty is None else penalty,
            "sampler": sampler if isinstance(sampler, str) else getattr(sampler, "name", type(sampler).__name__),
            "num_reads": num_reads,
            "seed": seed,
            "layers": names,
            "refine": refine,
            "polish": polish,
            "finetune_epochs": finetune_epochs,
            "calib": calib.name,
            "calib_size": len(calib),
            "eval": eval_data.name,
        },
    )
