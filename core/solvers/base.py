"""Shared pieces of the sampler layer: validation, seeds, timing, one-hot groups.

Conventions every sampler in :mod:`core.solvers` follows:

- It is a :class:`dimod.Sampler` (``sample``, ``sample_ising``,
  ``sample_qubo``, ``parameters``, ``properties``) and returns a
  :class:`dimod.SampleSet` over the input's variables, in the input's vartype.
- ``seed`` (an int in ``[0, 2**31)``, or None for a fresh one) makes a run
  reproducible where the backend allows; the seed actually used is recorded in
  ``info["seed"]``.
- Parameters are validated before any work starts, with plain-language
  :class:`~core.errors.InvalidInputError` messages.

One-hot groups
    Samplers that can exploit one-hot structure (``ga`` repairs, ``rl``
    samples one option per group) take a ``groups`` argument: a list of lists
    of variables, each of which must have exactly one variable set to 1, or
    ``"auto"`` to use the *label convention*: variables labelled by 2-tuples
    ``(unit, option)`` sharing the same ``unit`` form one group (other
    variables stay free). ``None`` (default) means no groups.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import dimod
import numpy as np

from core.errors import InvalidInputError

__all__ = [
    "SEED_BOUND",
    "Groups",
    "ProgressCallback",
    "SeededSampler",
    "TimingComposite",
    "draw_seed",
    "empty_sampleset",
    "infer_onehot_groups",
    "resolve_groups",
    "resolve_seed",
    "validate_beta_range",
    "validate_choice",
    "validate_positive_float",
    "validate_positive_int",
    "validate_probability",
    "validate_seed",
]

SEED_BOUND = 2**31
"""Seeds are integers in ``[0, SEED_BOUND)`` (valid for every backend used)."""

ProgressCallback = Callable[[int, int], None]
"""``callback(done, total)``, called from the sampling loop where it is cheap."""

Groups = Sequence[Sequence[Hashable]]


# --------------------------------------------------------------------------- validation


def validate_seed(seed: Any) -> int | None:
    """Return ``seed`` if it is None or an int in ``[0, 2**31)``, else raise."""
    if seed is None:
        return None
    if isinstance(seed, (bool, float)) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"The seed must be a whole number, got {seed!r}.")
    seed = int(seed)
    if not 0 <= seed < SEED_BOUND:
        raise InvalidInputError(
            f"The seed must be between 0 and {SEED_BOUND - 1}, got {seed}."
        )
    return seed


def draw_seed() -> int:
    """A fresh random seed (recorded so the run can be repeated)."""
    return secrets.randbelow(SEED_BOUND)


def resolve_seed(seed: Any) -> int:
    """The seed a run uses: ``seed`` validated, or a fresh one if it is None."""
    seed = validate_seed(seed)
    return draw_seed() if seed is None else seed


# Each check below returns what is wrong with a value in plain words ("must be ..."), or None when it is
# fine; the registry shows them per parameter, and the validate_* functions raise them with the name.
Check = Callable[[Any], "str | None"]


def whole_number(minimum: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            return f"must be a whole number of at least {minimum}"
        return None

    return check


def number(within: Callable[[Any], bool], problem: str) -> Check:
    def check(value: Any) -> str | None:
        is_number = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
        return None if is_number and within(value) else problem

    return check


positive = number(lambda v: 0 < v < math.inf, "must be a positive number")
non_negative = number(lambda v: 0 <= v < math.inf, "must be a number of at least 0")
probability = number(lambda v: 0 < v <= 1, "must be a probability above 0 and at most 1")


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "must be one of " + ", ".join(repr(c) for c in choices)

    return check


def beta_range(value: Any) -> str | None:
    if (not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 2
            or any(positive(b) for b in value) or value[0] > value[1]):
        return "must be two positive numbers, hot then cold, e.g. [0.1, 10]"
    return None


def _validated(value: Any, name: str, check: Check) -> Any:
    problem = check(value)
    if problem is not None:
        raise InvalidInputError(f"{name} {problem}, got {value!r}.")
    return value


def validate_positive_int(value: Any, name: str, *, maximum: int | None = None) -> int:
    """Return ``value`` as an int >= 1 (and <= ``maximum``), else raise."""
    value = int(_validated(value, name, whole_number(1)))
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name} must be at most {maximum}, got {value}.")
    return value


def validate_positive_float(value: Any, name: str) -> float:
    """Return ``value`` as a finite float > 0, else raise."""
    return float(_validated(value, name, positive))


def validate_probability(value: Any, name: str) -> float:
    """Return ``value`` as a float in (0, 1], else raise."""
    return float(_validated(value, name, probability))


def validate_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise."""
    return str(_validated(value, name, one_of(*choices)))


def validate_beta_range(value: Any) -> tuple[float, float] | None:
    """Return ``value`` as (hot, cold) inverse temperatures, None for None, else raise."""
    if value is None:
        return None
    lo, hi = _validated(value, "beta_range", beta_range)
    return float(lo), float(hi)


# --------------------------------------------------------------------------- samplers


class SeededSampler:
    """Mixin for this project's :class:`dimod.Sampler` classes.

    dimod asks every sampler for ``parameters`` (sample keyword -> names of the
    properties it refers to) and ``properties``; as in dimod's own samplers these
    are plain dicts, declared once. A subclass sets ``_parameters`` and
    ``_properties`` at class level, or in ``__init__`` where they depend on the
    constructor's arguments; the two dimod properties return them (callers
treat them as read-only: class-level dicts are shared by all instances). The
    ``seed`` convention of the module docs is :func:`resolve_seed`.

    Use it first among the bases: ``class MySampler(SeededSampler, dimod.Sampler)``.
    """

    _parameters: dict[str, list[str]] = {}
    _properties: dict[str, Any] = {}

    @property
    def parameters(self) -> dict[str, list[str]]:
        return self._parameters

    @property
    def properties(self) -> dict[str, Any]:
        return self._properties


# --------------------------------------------------------------------------- helpers


def empty_sampleset(
    bqm: dimod.BinaryQuadraticModel, num_reads: int = 1, **info: Any
) -> dimod.SampleSet:
    """``num_reads`` empty samples of a BQM without variables (energy = offset)."""
    samples = np.empty((max(int(num_reads), 1), 0), dtype=np.int8)
    return dimod.SampleSet.from_samples_bqm((samples, []), bqm, info=dict(info))


def infer_onehot_groups(variables: Iterable[Hashable]) -> list[list[Hashable]]:
    """One-hot groups from the ``(unit, option)`` label convention.

    Variables labelled by 2-tuples are grouped by their first element, in order
    of first appearance; other labels are left out (free binary variables).
    """
    groups: dict[Hashable, list[Hashable]] = {}
    for v in variables:
        if isinstance(v, tuple) and len(v) == 2:
            groups.setdefault(v[0], []).append(v)
    return list(groups.values())


def resolve_groups(
    bqm: dimod.BinaryQuadraticModel, groups: Groups | str | None
) -> list[list[Hashable]]:
    """Validate ``groups`` against ``bqm`` (see module docs); ``[]`` for None."""
    if groups is None:
        return []
    if isinstance(groups, str):
        if groups != "auto":
            raise InvalidInputError(
                f"groups must be a list of lists of variables, 'auto' or None, got {groups!r}."
            )
        return infer_onehot_groups(bqm.variables)
    seen: set[Hashable] = set()
    out: list[list[Hashable]] = []
    for group in groups:
        members = list(group)
        if not members:
            raise InvalidInputError(
                "A one-hot group must contain at least one variable."
            )
        for v in members:
            if v not in bqm.variables:
                raise InvalidInputError(
                    f"One-hot group variable {v!r} is not in the problem."
                )
            if v in seen:
                raise InvalidInputError(
                    f"Variable {v!r} appears in more than one one-hot group."
                )
            seen.add(v)
        out.append(members)
    return out


# --------------------------------------------------------------------------- timing


class TimingComposite(dimod.ComposedSampler):
    """Record wall time of the child's ``sample`` call in ``info["timing"]``.

    ``info["timing"]`` becomes ``{"embed_s", "sample_s", "total_s"}`` (seconds).
    A child that already reports ``embed_s``/``sample_s`` (the embedding
    composite) keeps its split; other children get ``embed_s = 0``. A backend's
    own ``info["timing"]`` in another format (QPU microseconds, ...) is kept as
    ``info["backend_timing"]``.

    Args:
        child_sampler: any :class:`dimod.Sampler`.
    """

    def __init__(self, child_sampler: dimod.Sampler) -> None:
        self._children = [child_sampler]

    @property
    def children(self) -> list[dimod.Sampler]:
        return self._children

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.child.parameters)

    @property
    def properties(self) -> dict[str, Any]:
        return {"child_properties": self.child.properties}

    def sample(
        self, bqm: dimod.BinaryQuadraticModel, **parameters: Any
    ) -> dimod.SampleSet:
        """Sample with the child and add wall times to ``info["timing"]``."""
        t0 = time.perf_counter()
        sampleset = self.child.sample(bqm, **parameters)
        sampleset.resolve()
        total = time.perf_counter() - t0
        info = sampleset.info
        timing = info.get("timing")
        if isinstance(timing, dict) and "embed_s" in timing and "sample_s" in timing:
            info["timing"] = {**timing, "total_s": total}
        else:
            if timing is not None:
                info["backend_timing"] = timing
            info["timing"] = {"embed_s": 0.0, "sample_s": total, "total_s": total}
        return sampleset
