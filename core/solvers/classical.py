"""Exact enumeration, for small problems and as the reference in tests."""

from __future__ import annotations

import dimod

from core.errors import InvalidInputError
from core.solvers.base import SeededSampler, empty_sampleset, validate_positive_int, validate_seed

__all__ = ["EXACT_MAX_VARIABLES", "ExactSampler"]

EXACT_MAX_VARIABLES = 20


class ExactSampler(SeededSampler, dimod.Sampler):
    """All ``2**n`` states of a small BQM, lowest energy first.

    A thin guard around :class:`dimod.ExactSolver`: problems with more than
    ``max_variables`` variables are refused with a plain message instead of
    exhausting memory.

    Args:
        max_variables: largest problem accepted (at most 25; default 20).

    Example:
        >>> import dimod
        >>> ss = ExactSampler().sample(dimod.BQM({"a": -1}, {}, 0, "BINARY"), num_reads=1)
        >>> float(ss.first.energy)
        -1.0
    """

    _parameters: dict[str, list[str]] = {"num_reads": [], "seed": []}

    def __init__(self, max_variables: int = EXACT_MAX_VARIABLES) -> None:
        self.max_variables = validate_positive_int(
            max_variables, "max_variables", maximum=25
        )
        self._properties = {"max_variables": self.max_variables, "deterministic": True}

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        *,
        num_reads: int | None = None,
        seed: int | None = None,
    ) -> dimod.SampleSet:
        """Enumerate every state.

        Args:
            bqm: the problem.
            num_reads: keep only the ``num_reads`` lowest-energy states
                (default: all of them).
            seed: accepted for a uniform interface and ignored (enumeration is
                deterministic).
        """
        validate_seed(seed)
        if num_reads is not None:
            validate_positive_int(num_reads, "num_reads")
        n = bqm.num_variables
        if n > self.max_variables:
            raise InvalidInputError(
                f"The exact solver enumerates all 2^n states, so it is limited to "
                f"{self.max_variables} variables; this problem has {n}. Use 'sa' or 'tabu', "
                "or the formulation's exact reference (MILP / dynamic programming)."
            )
        if n == 0:
            return empty_sampleset(bqm, 1, seed=None)
        sampleset = dimod.ExactSolver().sample(bqm)
        sampleset = sampleset.truncate(
            num_reads if num_reads is not None else len(sampleset)
        )
        sampleset.info["seed"] = None
        return sampleset
