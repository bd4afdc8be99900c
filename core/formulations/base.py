"""What every QUBO formulation returns.

A formulation turns compression choices into a :class:`dimod.BinaryQuadraticModel`
and knows how to read a sample back as a human-readable decision. It also keeps
the input tables (distortions, costs, ...) it was built from, so anyone can
re-check the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dimod


@dataclass
class Decision:
    """A decoded sample.

    ``choices`` maps a unit name to what was chosen for it (an option such as
    ``"prune"``, ``4`` or ``"keep"``, a kept-filter list, ...). ``feasible`` is
    False when the sample violates a hard constraint (one-hot, budget, exact
    count); ``violations`` says which, in plain words, and ``violation_kinds``
    names each kind of constraint broken, once ("over budget", "not one-hot",
    ...), to count reads by.
    """

    choices: dict[str, Any]
    feasible: bool
    violations: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    violation_kinds: list[str] = field(default_factory=list)


@dataclass
class Formulation:
    """A QUBO plus the means to interpret and re-check it."""

    method: str
    bqm: dimod.BinaryQuadraticModel
    decoder: Callable[[Mapping[Any, int]], Decision]
    tables: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def decode(self, sample: Mapping[Any, int]) -> Decision:
        return self.decoder(sample)

    @property
    def num_variables(self) -> int:
        return self.bqm.num_variables

    @property
    def num_interactions(self) -> int:
        return self.bqm.num_interactions
