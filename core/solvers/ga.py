"""Genetic-algorithm baseline on pymoo, as a dimod sampler."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import dimod
import numpy as np

from core.solvers.base import (
    Groups,
    ProgressCallback,
    SeededSampler,
    empty_sampleset,
    resolve_groups,
    resolve_seed,
    validate_choice,
    validate_positive_int,
    validate_probability,
)

__all__ = ["GeneticAlgorithmSampler"]

CROSSOVERS = ("two-point", "uniform")


def _onehot_repair_class() -> type:
    from pymoo.core.repair import Repair

    class OneHotRepair(Repair):
        """Make every one-hot group have exactly one variable set.

        A group with several ones keeps one of them, a group with none gets one,
        chosen uniformly at random (with the sampler's seeded generator).
        """

        def __init__(
            self, groups: Sequence[np.ndarray], rng: np.random.Generator
        ) -> None:
            super().__init__()
            self.groups = groups
            self.rng = rng

        def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
            X = np.asarray(X, dtype=bool).copy()
            for idx in self.groups:
                sub = X[:, idx]
                bad = sub.sum(axis=1) != 1
                if not bad.any():
                    continue
                scores = self.rng.random((int(bad.sum()), len(idx))) + sub[bad]
                fixed = np.zeros_like(sub[bad])
                fixed[np.arange(len(fixed)), scores.argmax(axis=1)] = True
                sub[bad] = fixed
                X[:, idx] = sub
            return X

    return OneHotRepair


class GeneticAlgorithmSampler(SeededSampler, dimod.Sampler):
    """A genetic algorithm (pymoo ``GA``) over binary variables.

    The baseline used by the mixed-precision paper. Individuals are bit
    strings; selection is binary tournament, crossover two-point (or uniform),
    mutation bit-flip, survival elitist, duplicates eliminated. With one-hot
    ``groups`` a repair operator keeps every individual one-hot feasible.

    The returned SampleSet holds the (at most) ``num_reads`` best *distinct*
    individuals of the final population, lowest energy first: reads are not
    independent runs, so per-read statistics differ from annealers'.

    Args:
        pop_size, num_generations, crossover, mutation_rate: defaults for the
            sample parameters of the same names.

    Sample parameters (None means the sampler's default):
        num_reads: number of distinct best individuals returned (default 10).
        pop_size: population size (default 100; raised to ``num_reads``,
            capped at ``2**n`` for tiny problems).
        num_generations: generations to run (default 200).
        crossover: ``"two-point"`` (default) or ``"uniform"``.
        mutation_rate: per-bit flip probability (default ``1/n``).
        groups: one-hot groups (list of lists of variables), ``"auto"`` for the
            ``(unit, option)`` label convention, or None.
        seed: random seed (drawn and recorded in ``info["seed"]`` if None).
        progress_callback: ``f(generation, num_generations)`` after each
            generation.
    """

    _parameters: dict[str, list[str]] = {
        "num_reads": [],
        "pop_size": [],
        "num_generations": [],
        "crossover": ["crossovers"],
        "mutation_rate": [],
        "groups": [],
        "seed": [],
        "progress_callback": [],
    }
    _properties: dict[str, Any] = {
        "crossovers": list(CROSSOVERS),
        "backend": "pymoo.GA",
    }

    def __init__(
        self,
        *,
        pop_size: int = 100,
        num_generations: int = 200,
        crossover: str = "two-point",
        mutation_rate: float | None = None,
    ) -> None:
        self.pop_size = validate_positive_int(pop_size, "pop_size")
        self.num_generations = validate_positive_int(num_generations, "num_generations")
        self.crossover = validate_choice(crossover, "crossover", CROSSOVERS)
        self.mutation_rate = (
            None
            if mutation_rate is None
            else validate_probability(mutation_rate, "mutation_rate")
        )

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        *,
        num_reads: int = 10,
        pop_size: int | None = None,
        num_generations: int | None = None,
        crossover: str | None = None,
        mutation_rate: float | None = None,
        groups: Groups | str | None = None,
        seed: int | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> dimod.SampleSet:
        """Run the GA; see the class docstring for the parameters."""
        num_reads = validate_positive_int(num_reads, "num_reads")
        pop_size = validate_positive_int(
            self.pop_size if pop_size is None else pop_size, "pop_size"
        )
        num_generations = validate_positive_int(
            self.num_generations if num_generations is None else num_generations,
            "num_generations",
        )
        crossover = validate_choice(
            self.crossover if crossover is None else crossover, "crossover", CROSSOVERS
        )
        if mutation_rate is None:
            mutation_rate = self.mutation_rate
        else:
            mutation_rate = validate_probability(mutation_rate, "mutation_rate")
        group_lists = resolve_groups(bqm, groups)
        seed = resolve_seed(seed)
        n = bqm.num_variables
        if n == 0:
            return empty_sampleset(bqm, 1, seed=seed)

        from pymoo.config import Config

        Config.warnings["not_compiled"] = False

        from pymoo.algorithms.soo.nonconvex.ga import GA
        from pymoo.core.callback import Callback
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.pntx import TwoPointCrossover
        from pymoo.operators.crossover.ux import UniformCrossover
        from pymoo.operators.mutation.bitflip import BitflipMutation
        from pymoo.operators.sampling.rnd import BinaryRandomSampling
        from pymoo.optimize import minimize

        order: list[Hashable] = list(bqm.variables)
        binary = (
            bqm
            if bqm.vartype is dimod.BINARY
            else bqm.change_vartype(dimod.BINARY, inplace=False)
        )
        index = {v: i for i, v in enumerate(order)}

        class QUBOProblem(Problem):
            def __init__(self) -> None:
                super().__init__(n_var=n, n_obj=1, xl=0, xu=1, vtype=bool)

            def _evaluate(
                self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any
            ) -> None:
                out["F"] = binary.energies((np.asarray(x, dtype=np.int8), order))

        class Progress(Callback):
            last = 0

            def notify(self, algorithm: Any) -> None:
                self.last = int(algorithm.n_gen)
                if progress_callback is not None:
                    progress_callback(self.last, num_generations)

        size = max(pop_size, num_reads)
        if n < 20:
            size = min(size, 2**n)
        size = max(size, 2)
        repair = None
        if group_lists:
            repair_rng = np.random.default_rng([seed, 1])
            repair = _onehot_repair_class()(
                [np.array([index[v] for v in g]) for g in group_lists], repair_rng
            )
        algorithm = GA(
            pop_size=size,
            sampling=BinaryRandomSampling(),
            crossover=TwoPointCrossover()
            if crossover == "two-point" and n >= 3
            else UniformCrossover(),
            mutation=BitflipMutation(
                prob=1.0,
                prob_var=mutation_rate if mutation_rate is not None else 1.0 / n,
            ),
            eliminate_duplicates=True,
            **({"repair": repair} if repair is not None else {}),
        )
        progress = Progress()
        result = minimize(
            QUBOProblem(),
            algorithm,
            ("n_gen", num_generations),
            seed=seed,
            callback=progress,
            verbose=False,
        )
        if progress_callback is not None and progress.last < num_generations:
            # pymoo stops early when no new individual can be bred (tiny problems)
            progress_callback(num_generations, num_generations)
        X = np.asarray(result.pop.get("X"), dtype=np.int8)
        X = np.unique(X, axis=0)
        energies = binary.energies((X, order))
        keep = np.argsort(energies, kind="stable")[:num_reads]
        samples = X[keep]
        if bqm.vartype is dimod.SPIN:
            samples = 2 * samples - 1
        sampleset = dimod.SampleSet.from_samples_bqm((samples, order), bqm)
        sampleset.info.update(
            seed=seed,
            pop_size=size,
            num_generations=progress.last,
            num_evaluations=int(result.algorithm.evaluator.n_eval),
        )
        return sampleset
