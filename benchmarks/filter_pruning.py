"""F2 benchmark: hybrid filter-pruning QUBO vs greedy Taylor, L1 top-K and L1-QUBO.

At 50% filter sparsity on digits-cnn (conv1 and conv2 jointly, 8 of 16 and 16
of 32 filters kept), without fine-tuning. For each seed the calibration set is
a different 512-image subset of the train split (seeded) and the sampler seed
changes with it; greedy Taylor ranks by the same Taylor scores the Taylor
QUBO uses.

Settings are chosen honestly, on the *validation* split only: every QUBO
importance (``--importance``, default Taylor and the whole Fisher matrix) is
run with every candidate mu on the 5 seeds; each importance gets its best mu
(mean validation accuracy), the L1-QUBO gets its own, and the importance
with the best validation mean is "the QUBO" of the target. Only then is the
*test* accuracy reported (mean and std over the 5 seeds), once. The target of
issue 5: the QUBO's mean test accuracy >= greedy Taylor's and >= the
L1-QUBO's.

    python -m benchmarks.filter_pruning [--seeds 0 1 2 3 4] [--mus 0 0.25 0.5 1 2 4]
        [--importance taylor fisher-matrix] [--sparsity 0.5] [--calib 512] [--similarity pearson|cosine]
        [--quick] [--num-reads 50] [--refine] [--retrain]

With ``--retrain`` each seed also trains its own digits-cnn (see
:mod:`benchmarks.networks`; seed 0's is the shipped one), so the mean is over
networks as well as calibration subsets: on the one shipped network the L1
baselines do not depend on the seed at all.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from benchmarks.networks import network
from core.data import digits_split
from core.data.dataset import EvalData
from core.evaluate import paired_accuracy
from core.formulations.filter_pruning import FilterPruningResult, MethodResult, prune_filters
from core.sensitivity.filters import IMPORTANCE_KINDS

QUBO = "qubo"  # the method's own result in a FilterPruningResult; every other key is a baseline


def _run(
    importance: str, mu: float, seeds: list[int], eval_data: EvalData, *, sparsity: float, calib_size: int,
    num_reads: int, refine: bool, baselines: bool = True, similarity: str = "pearson", retrain: bool = False,
) -> list[FilterPruningResult]:
    split = digits_split()
    out = []
    for seed in seeds:
        calib = split.train.subset(calib_size, seed=seed)
        out.append(
            prune_filters(
                network("digits-cnn", seed if retrain else None), calib, sparsity=sparsity, importance=importance,
                mu=mu, sampler="sa", num_reads=num_reads, seed=seed, eval_data=eval_data,
                refine="tt" if refine else None, measure_speed=False, similarity=similarity, baselines=baselines,
            )
        )
    return out


def _scored(result: FilterPruningResult, method: str) -> MethodResult:
    """One seed's result of ``method`` (the QUBO or a baseline)."""
    return result.result if method == QUBO else result.baselines[method]


def _per_seed(results: list[FilterPruningResult], method: str, measure: str = "accuracy") -> list[float]:
    """Per-seed ``measure`` ("accuracy" or "loss", the cross-entropy on the evaluation split) of ``method``."""
    return [getattr(_scored(r, method), measure) for r in results]


def _mean(results: list[FilterPruningResult], method: str) -> float:
    return statistics.mean(_per_seed(results, method))


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * sd:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--mus", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--importance", nargs="+", default=["taylor", "fisher-matrix"],
                    choices=[k for k in IMPORTANCE_KINDS if k != "l1"], help="QUBO importances to select among")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--calib", type=int, default=512)
    ap.add_argument("--num-reads", type=int, default=50)
    ap.add_argument("--similarity", choices=["pearson", "cosine"], default="pearson")
    ap.add_argument("--retrain", action="store_true",
                    help="each seed also trains its own digits-cnn (seed 0 is the shipped one), so the mean is over "
                         "networks as well as calibration subsets")
    ap.add_argument("--quick", action="store_true", help="2 seeds, mu in {0, 0.5, 1} (a smoke run)")
    ap.add_argument("--refine", action="store_true", help="also report the chosen QUBO + tensor-train refinement")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.mus = args.seeds[:2], [0.0, 0.5, 1.0]
    torch.set_num_threads(1)
    split = digits_split()
    t0 = time.perf_counter()
    common = {"sparsity": args.sparsity, "calib_size": args.calib, "num_reads": args.num_reads, "refine": False,
              "similarity": args.similarity, "retrain": args.retrain}
    kinds = list(dict.fromkeys(args.importance))

    print(f"## F2 filter pruning, digits-cnn, {100 * args.sparsity:.0f}% filter sparsity, no fine-tuning\n")
    on = "a digits-cnn trained with that seed" if args.retrain else "the shipped digits-cnn"
    print(f"Seeds {args.seeds}, each on {on}; calibration {args.calib} train images per seed; "
          f"SA, {args.num_reads} reads; "
          f"redundancy: |{args.similarity}| of conv outputs; "
          f"{platform.machine()}, torch {torch.__version__}.\n")
    print("### Selection on validation (accuracy %, mean ± std over seeds)\n")
    print(f"| mu | {' | '.join(f'QUBO ({k})' for k in kinds)} | L1-QUBO |")
    print(f"|---:|{'---:|' * (len(kinds) + 1)}")
    val: dict[tuple[str, float], list[FilterPruningResult]] = {}
    for mu in args.mus:
        for i, kind in enumerate(kinds):  # the baselines do not depend on the importance: run them once per mu
            val[kind, mu] = _run(kind, mu, args.seeds, split.val, baselines=i == 0, **common)
        cells = [_mean_std(_per_seed(val[k, mu], QUBO)) for k in kinds]
        print(f"| {mu:g} | {' | '.join(cells)} | {_mean_std(_per_seed(val[kinds[0], mu], 'l1_qubo'))} |")
    best_mu = {k: max(args.mus, key=lambda m, k=k: (_mean(val[k, m], QUBO), -m)) for k in kinds}
    best_l1 = max(args.mus, key=lambda m: (_mean(val[kinds[0], m], "l1_qubo"), -m))
    chosen = max(kinds, key=lambda k: _mean(val[k, best_mu[k]], QUBO))
    print("\nChosen on validation: " + ", ".join(f"mu = {best_mu[k]:g} for the {k} QUBO" for k in kinds)
          + f", mu = {best_l1:g} for the L1-QUBO; the QUBO of the target: {chosen} "
          f"({100 * _mean(val[chosen, best_mu[chosen]], QUBO):.2f}% on validation).\n")

    test = {k: _run(k, best_mu[k], args.seeds, split.test, baselines=k == chosen, **common) for k in kinds}
    test_l1 = _run(chosen, best_l1, args.seeds, split.test, **common) if best_l1 != best_mu[chosen] else test[chosen]
    rows: dict[str, tuple[str, list[FilterPruningResult], str]] = {
        f"qubo_{k}": (f"QUBO ({k}, mu={best_mu[k]:g})" + (" (chosen)" if k == chosen else ""), test[k], QUBO)
        for k in [chosen, *[k for k in kinds if k != chosen]]
    }
    rows |= {
        "greedy_taylor": ("greedy Taylor top-K", test[chosen], "greedy_taylor"),
        "l1_topk": ("L1-norm top-K", test[chosen], "l1_topk"),
        "l1_qubo": (f"L1-QUBO (mu={best_l1:g})", test_l1, "l1_qubo"),
    }
    if args.refine:
        refined = _run(chosen, best_mu[chosen], args.seeds, split.test, baselines=False, **{**common, "refine": True})
        rows["qubo_tt"] = (f"QUBO ({chosen}, mu={best_mu[chosen]:g}) + TT refinement", refined, QUBO)
    r0 = test[chosen][0]
    floats = " ".join(f"{100 * r.original['accuracy']:.2f}" for r in test[chosen])
    print(f"### Test accuracy (%; float model per seed {floats}; "
          f"params {int(r0.original['params'])} -> {r0.result.params}, removed: {', '.join(r0.removed)})\n")
    print("| method | accuracy % (mean ± std) | per seed | test cross-entropy (mean ± std) | per seed "
          f"| QUBO ({chosen}) vs this, per seed (+only QUBO right/-only this right, McNemar p) |")
    print("|---|---:|---|---:|---|---|")
    qubo_hits = [r.result.correct for r in test[chosen]]
    for key, (label, results, method) in rows.items():
        accs, losses = _per_seed(results, method), _per_seed(results, method, "loss")
        paired = "-" if key == f"qubo_{chosen}" else "; ".join(
            paired_accuracy(hits, _scored(r, method).correct).summary()
            for hits, r in zip(qubo_hits, results, strict=True))
        print(f"| {label} | {_mean_std(accs)} | {' '.join(f'{100 * a:.1f}' for a in accs)} "
              f"| {_mean_std(losses, 1.0, 3)} | {' '.join(f'{x:.3f}' for x in losses)} | {paired} |")
    g, lq = _mean(test[chosen], "greedy_taylor"), _mean(test_l1, "l1_qubo")
    print()
    for k in kinds:
        q = _mean(test[k], QUBO)
        print(f"QUBO ({k}){' (chosen)' if k == chosen else ''}: >= greedy Taylor "
              f"{'met' if q >= g else 'MISSED'} ({100 * q:.2f} vs {100 * g:.2f}); >= L1-QUBO "
              f"{'met' if q >= lq else 'MISSED'} ({100 * q:.2f} vs {100 * lq:.2f}).")
    polish = sum(c.polish_swaps for r in test[chosen] for c in r.capacity.values())
    solves = [c.solves for r in test[chosen] for c in r.capacity.values()]
    print(f"Capacity search ({chosen} QUBO): {min(solves)}-{max(solves)} SA solves per layer, all exactly K; "
          f"1-swap polish changed {polish} of {len(solves)} layer solutions.")
    print(f"Total time {time.perf_counter() - t0:.1f} s.")
    q = _mean(test[chosen], QUBO)
    return 0 if q >= g and q >= lq else 1


if __name__ == "__main__":
    raise SystemExit(main())
