"""Solution-quality and trade-off measures over runs (pure functions).

- :func:`gap_percent`: how far a run's best energy is above the exact optimum.
- :func:`success_probability`: fraction of reads that reached the optimum.
- :func:`time_to_solution`: expected time to see the optimum at least once with
  99 % confidence, ``t_read * ln(1 - 0.99) / ln(1 - p)``.
- :func:`pareto_mask` / :func:`pareto_front`: runs not beaten on both size
  (smaller is better) and accuracy (larger is better).
- :func:`report_quality`: all of the above for one JSON report (DESIGN section 5).
- :func:`default_comparison` / :func:`for_display`: the Compare page's default selection and table values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInputError

#: relative tolerance for "this read reached the optimum"
OPTIMUM_RTOL = 1e-6
#: absolute floor of that tolerance, for an optimum of (almost) zero
OPTIMUM_ATOL = 1e-12


def _finite_or_none(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def gap_percent(best_energy: float | None, exact_energy: float | None) -> float | None:
    """Gap of ``best_energy`` above ``exact_energy`` in percent of ``|exact_energy|``.

    0 means the run found the optimum; ``None`` when either energy is unknown.
    When the optimum is 0 the relative gap is undefined: 0.0 if the energies
    agree (within 1e-12), ``inf`` otherwise. A negative value means the
    "exact" reference is not actually optimal.
    """
    best, exact = _finite_or_none(best_energy), _finite_or_none(exact_energy)
    if best is None or exact is None:
        return None
    diff = best - exact
    if abs(exact) <= 1e-12:
        if abs(diff) <= 1e-12:
            return 0.0
        return math.copysign(math.inf, diff)
    return 100.0 * diff / abs(exact)


def optimum_tolerance(optimum: float, rtol: float = OPTIMUM_RTOL) -> float:
    """How far above ``optimum`` an energy may lie and still count as reaching it.

    Relative to ``|optimum|`` alone: QUBOs built from small distortions have
    optima of 1e-5 and gaps between states of 1e-9, so a floor tied to 1 (as
    ``max(|optimum|, 1)``) would count states percents above the optimum.
    """
    return rtol * abs(optimum) + OPTIMUM_ATOL


def reaches_optimum(value: float | None, optimum: float | None, rtol: float = OPTIMUM_RTOL) -> bool:
    """Whether ``value`` is at (or below) ``optimum`` within :func:`optimum_tolerance`."""
    v, opt = _finite_or_none(value), _finite_or_none(optimum)
    return v is not None and opt is not None and v <= opt + optimum_tolerance(opt, rtol)


def success_probability(
    energies: Sequence[float] | np.ndarray,
    optimum: float | None = None,
    *,
    num_occurrences: Sequence[int] | np.ndarray | None = None,
    rtol: float = OPTIMUM_RTOL,
) -> float:
    """Probability per read of reaching the optimum.

    A read counts when its energy is at most ``optimum + rtol * |optimum| + 1e-12``
    (a read *below* a best-known optimum also counts). ``optimum=None`` uses the
    lowest energy seen (the best-known optimum). ``num_occurrences`` weights
    aggregated samples, as in a dimod SampleSet.
    """
    e = np.asarray(energies, dtype=float).ravel()
    if e.size == 0:
        raise InvalidInputError(
            "There are no reads to measure: the energy list is empty."
        )
    if num_occurrences is None:
        w = np.ones_like(e)
    else:
        w = np.asarray(num_occurrences, dtype=float).ravel()
        if w.shape != e.shape:
            raise InvalidInputError("num_occurrences must have one count per energy.")
        if (w < 0).any():
            raise InvalidInputError("num_occurrences cannot be negative.")
    total = w.sum()
    if total <= 0:
        raise InvalidInputError(
            "There are no reads to measure: all occurrence counts are zero."
        )
    finite = np.isfinite(e)
    if optimum is None:
        if not finite.any():
            return 0.0
        optimum = float(e[finite].min())
    hit = finite & (e <= float(optimum) + optimum_tolerance(float(optimum), rtol))
    return float(w[hit].sum() / total)


def time_to_solution(t_read: float, p: float, *, target: float = 0.99) -> float:
    """Expected time to reach the optimum at least once with probability ``target``.

    ``TTS = t_read * ln(1 - target) / ln(1 - p)``, never less than one read:
    ``inf`` when ``p == 0`` and ``t_read`` when ``p == 1`` (or when a single read
    already succeeds with probability >= ``target``).
    """
    if not 0.0 < target < 1.0:
        raise InvalidInputError(
            f"The target confidence must be strictly between 0 and 1, got {target}."
        )
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise InvalidInputError(
            f"A success probability must be between 0 and 1, got {p}."
        )
    if t_read < 0 or math.isnan(t_read):
        raise InvalidInputError(f"The time per read cannot be negative, got {t_read}.")
    if p == 0.0:
        return math.inf
    if p == 1.0:
        return float(t_read)
    repeats = math.log(1.0 - target) / math.log1p(-p)
    return float(t_read) * max(1.0, repeats)


def pareto_mask(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Boolean mask of points not dominated when minimising ``x`` and maximising ``y``.

    A point is dominated if another has ``x' <= x`` and ``y' >= y`` with one
    strict. Duplicates of a front point are all on the front; points with a
    missing (NaN) coordinate never are.
    """
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise InvalidInputError("x and y must have the same length.")
    mask = np.zeros(xs.shape, dtype=bool)
    valid = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    if valid.size == 0:
        return mask
    # sort by x ascending, then y descending
    order = valid[np.lexsort((-ys[valid], xs[valid]))]
    best_y = -math.inf  # max y over points with strictly smaller x
    i = 0
    while i < order.size:
        j = i
        gx = xs[order[i]]
        while j < order.size and xs[order[j]] == gx:
            j += 1
        group = order[i:j]
        gmax = ys[group[0]]
        if gmax > best_y:
            mask[group[ys[group] == gmax]] = True
            best_y = gmax
        i = j
    return mask


def pareto_front(
    df: pd.DataFrame,
    *,
    x: str = "size_bits_after",
    y: str = "accuracy_after",
) -> pd.DataFrame:
    """The rows of ``df`` on the (minimise ``x``, maximise ``y``) Pareto front, sorted by ``x``."""
    for col in (x, y):
        if col not in df.columns:
            raise InvalidInputError(f"The runs table has no column {col!r}.")
    if df.empty:
        return df.copy()
    mask = pareto_mask(
        pd.to_numeric(df[x], errors="coerce"), pd.to_numeric(df[y], errors="coerce")
    )
    return df.loc[mask].sort_values([x, y], ascending=[True, False])


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def total_time_s(report: Mapping[str, Any]) -> float | None:
    """The run's wall time: ``timing.total_s`` where the report has it (multi-QUBO runs, whose other entries
    overlap), else the sum of the numeric ``timing`` entries (seconds); None without timing."""
    timing = report.get("timing")
    if not isinstance(timing, Mapping):
        return None
    total = _finite_or_none(timing.get("total_s"))
    if total is not None:
        return total
    values = [_finite_or_none(v) for v in timing.values() if not isinstance(v, bool)]
    values = [v for v in values if v is not None]
    return float(sum(values)) if values else None


def best_value(report: Mapping[str, Any]) -> float | None:
    """What the best read is compared with the exact optimum by: its decision's objective when it is feasible
    and the report has one (the units the exact optimum is in), else its energy."""
    objective = _get(report, "best", "objective") if _get(report, "best", "feasible") is True else None
    return _finite_or_none(objective if objective is not None else _get(report, "best", "energy"))


def best_against_exact(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The best read against the exact optimum, None without one: ``value`` (:func:`best_value`), ``gap``
    (value - optimum), ``verdict`` ("optimum", "above", or "below": a feasible decision under the QUBO's
    optimum, which the slack encoding's rounded-up costs allow) and ``energy_apart`` (its QUBO energy lies
    above its decision's objective: a slack-encoded read's slack terms and their rounding), and ``budget``:
    :func:`against_budget_optimum`."""
    exact = _finite_or_none(_get(report, "exact", "energy"))
    value = best_value(report)
    if exact is None or value is None:
        return None
    feasible = _get(report, "best", "feasible") is True
    energy = _finite_or_none(_get(report, "best", "energy"))
    if feasible and not reaches_optimum(exact, value):
        verdict = "below"
    elif feasible and reaches_optimum(value, exact):
        verdict = "optimum"
    else:
        verdict = "above"
    return {"value": value, "gap": value - exact, "verdict": verdict, "feasible": feasible,
            "energy_apart": energy is not None and value != energy and not reaches_optimum(energy, value),
            "budget": against_budget_optimum(report)}


def against_budget_optimum(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The best feasible read on the budget problem itself (the objective at the lambdas given, the budget in
    exact bits) against that problem's optimum: ``{"optimum", "value", "gap", "reaches", "encoding_gap"}``;
    None without a budget, an optimum, or a feasible best read. Each budget encoding only approximates that
    problem: ``encoding_gap`` is how far the QUBO's own optimum lies above it (None when not recorded), so
    the rest of ``gap`` is the sampler's."""
    optimum = _finite_or_none(_get(report, "exact", "objective_in_bits"))
    value = _finite_or_none(_get(report, "best", "objective_in_bits"))
    if optimum is None or value is None or _get(report, "best", "feasible") is not True:
        return None
    qubo_optimum = _finite_or_none(_get(report, "exact", "qubo_optimum_in_bits"))
    encoding_gap = None if qubo_optimum is None else max(qubo_optimum - optimum, 0.0)
    if encoding_gap is not None and reaches_optimum(qubo_optimum, optimum):
        encoding_gap = 0.0
    return {"optimum": optimum, "value": value, "gap": value - optimum, "reaches": reaches_optimum(value, optimum),
            "encoding_gap": encoding_gap}


def _independent_reads(report: Mapping[str, Any]) -> bool:
    if _get(report, "qubo", "num_subproblems") is not None:
        return False
    from core.solvers import sampler_info

    try:
        category = sampler_info(str(report.get("sampler"))).category
    except (KeyError, InvalidInputError):
        return True  # an unknown (e.g. renamed) sampler: take its reads at face value
    return category not in ("exact", "baseline")


def report_quality(
    report: Mapping[str, Any], *, target: float = 0.99
) -> dict[str, float | None]:
    """Gap to exact (%), probability of the optimum per read and TTS for one report.

    A read reaches the optimum when it is feasible (``feasible_reads``, where
    the report has them: an over-budget or broken one-hot state can lie within
    a hair of the optimum's energy) and its value is within
    :func:`optimum_tolerance` of the exact energy; the value is the read's
    decoded objective where the report has ``read_objectives`` (the units the
    exact optimum is in: a BQM energy can carry rounding from large penalty
    terms), else its energy. Without an exact energy
    there is no optimum to reach, so both per-read values are ``None`` (the
    run's own best would always be "reached"). The time per read is
    ``timing.sample_s`` divided by the number of reads. Values that cannot be
    computed are ``None``, and so are the per-read ones where reads are not
    independent samples of one QUBO: multi-QUBO runs (``energies`` has one
    entry per subproblem), an exact solver (it lists every state) and the
    ga / rl baselines (states of one run).
    """
    best = best_value(report)
    exact = _finite_or_none(_get(report, "exact", "energy"))
    energies = report.get("energies") or []
    occurrences = report.get("num_occurrences")
    out: dict[str, float | None] = {
        "gap_pct": gap_percent(best, exact),
        "p_optimum": None,
        "tts99_s": None,
    }
    if exact is None or not _independent_reads(report):
        return out
    try:
        arr = np.asarray(energies, dtype=float).ravel()
        occ = None
        if occurrences is not None and len(occurrences) == arr.size:
            occ = np.asarray(occurrences, dtype=float)
        feasible = report.get("feasible_reads")
        objectives = report.get("read_objectives")
        if isinstance(objectives, Sequence) and len(objectives) == arr.size:
            # each read's decision, in the units of the exact optimum (None: infeasible)
            arr = np.array([math.inf if v is None else float(v) for v in objectives])
        elif isinstance(feasible, Sequence) and len(feasible) == arr.size:
            arr = np.where(np.asarray(feasible, dtype=bool), arr, np.inf)
        if arr.size:
            p = success_probability(arr, exact, num_occurrences=occ)
            out["p_optimum"] = p
            reads = float(occ.sum()) if occ is not None else float(arr.size)
            sample_s = _finite_or_none(_get(report, "timing", "sample_s"))
            if sample_s is not None and reads > 0:
                out["tts99_s"] = time_to_solution(sample_s / reads, p, target=target)
    except (TypeError, ValueError, InvalidInputError):
        pass
    return out


def _percent(value: Any) -> str:
    return f"{100 * float(value):.3g}%"


def run_setting(report: Mapping[str, Any]) -> str | None:
    """The settings that define a run's QUBO(s) in a few words ("3 bits, minmax", "50% sparsity, taylor",
    "λ bits 0, budget 25% capacity"), to tell runs of one method and model apart; None when unknown."""
    params = report.get("params") if isinstance(report.get("params"), Mapping) else {}
    method = report.get("method")
    if method == "adaround" and params.get("bits") is not None:
        target = params.get("target", "layer")
        bits = params["bits"]
        return (f"{bits} bit{'' if bits == 1 else 's'}, {params.get('scale', 'minmax')}"
                + ("" if target == "layer" else f", {target}"))
    if method == "filter-pruning" and params.get("sparsity") is not None:
        sparsity = params["sparsity"]
        values = sorted(set(sparsity.values())) if isinstance(sparsity, Mapping) else [sparsity]
        parts = ["/".join(_percent(v) for v in values) + " sparsity", str(params.get("importance", "taylor"))]
        if params.get("refine"):
            parts.append(f"refine {params['refine']}")
        return ", ".join(parts)
    if method == "mixed-precision":
        lam = params.get("lambda_bits_given", params.get("lambda_bits"))
        parts = ["paper encoding"] if params.get("encoding") == "paper" else []
        if isinstance(lam, (int, float)):
            parts.append(f"λ bits {lam:g}")
        budget, whole = params.get("budget_bits"), report.get("uncompressed_bits")
        if isinstance(budget, (int, float)) and isinstance(whole, (int, float)) and whole > 0:
            parts.append(f"budget {_percent(budget / whole)} {params.get('budget_encoding') or ''}".rstrip())
        elif budget is None:
            parts.append("no budget")
        return ", ".join(parts) or None
    return None


def default_comparison(runs: pd.DataFrame, count: int = 2) -> list[int]:
    """Ids of the runs to compare when the user selected none: the newest run and the next newest of the same
    method, model and (when the table has it) setting, whose energies and sizes are comparable. ``runs`` is
    newest first, with ``id``, ``method`` and ``model`` columns, and optionally ``setting``."""
    if runs.empty:
        return []
    by = [c for c in ("method", "model", "setting") if c in runs.columns]
    keys = runs[by].astype(object).where(runs[by].notna(), "")  # null == null
    same = runs[(keys == keys.iloc[0]).all(axis=1)]
    return [int(i) for i in same["id"].head(count)]


def for_display(runs: pd.DataFrame) -> pd.DataFrame:
    """The quality columns as plain floats for a table: undefined values (None) and a never-reached
    optimum's infinite time-to-solution become NaN (a blank cell), not the words "None" and "Infinity"."""
    out = runs.copy()
    for column in ("gap_pct", "p_optimum", "tts99_s"):
        if column in out.columns:
            values = pd.to_numeric(out[column], errors="coerce").astype(float)
            out[column] = values.where(np.isfinite(values))
    return out
