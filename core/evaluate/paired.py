"""Is one model's accuracy really different from another's on the same examples?

Two compressed models scored on the same N test examples differ only on the
examples where exactly one of them is right. The exact McNemar test asks
whether those discordant examples split unevenly by more than chance: under
"equally accurate" each of them is a fair coin, so with ``only_a`` examples
that only model A gets right and ``only_b`` that only B gets right, the
two-sided p-value is the binomial probability of a split at least that uneven
(McNemar 1947; the exact form, as Dietterich 1998 recommends for comparing
classifiers on one test set). On the digits test split a one-image difference
is 0.28 points of accuracy and p = 1: accuracy tables should be read with it.

Public API: :class:`PairedAccuracy`, :func:`paired_accuracy`, :func:`paired_summary`, :func:`paired_caption`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

from core.errors import InvalidInputError

TEST_NAME = "exact McNemar (two-sided)"
SIGNIFICANCE_LEVEL = 0.05

__all__ = [
    "SIGNIFICANCE_LEVEL",
    "TEST_NAME",
    "PairedAccuracy",
    "paired_accuracy",
    "paired_caption",
    "paired_summary",
]


@dataclass(frozen=True)
class PairedAccuracy:
    """Model A against model B on the same ``n`` examples."""

    only_a: int  # examples A classifies correctly and B does not
    only_b: int  # examples B classifies correctly and A does not
    n: int
    p_value: float

    @property
    def significant(self) -> bool:
        """True when the accuracies differ at the 5% level."""
        return self.p_value < SIGNIFICANCE_LEVEL

    def summary(self) -> str:
        """``"+3 / -1 images, p = 0.62"``: examples only A gets right / only B does, and the p-value."""
        return f"+{self.only_a} / \u2212{self.only_b} images, p = {self.p_value:.2g}"

    def as_dict(self, a: str = "a", b: str = "b") -> dict[str, Any]:
        """The report's form, with the two sides named (e.g. ``qubo_only``, ``baseline_only``)."""
        return {f"{a}_only": self.only_a, f"{b}_only": self.only_b, "n": self.n, "p_value": self.p_value,
                "test": TEST_NAME}


def paired_accuracy(correct_a: Any, correct_b: Any) -> PairedAccuracy:
    """Exact McNemar test from per-example correctness (two boolean arrays of equal length)."""
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise InvalidInputError("Per-example results must be two 1-D arrays of the same length.")
    if a.dtype != bool or b.dtype != bool:
        raise InvalidInputError("Per-example results must be True (correct) or False (wrong).")
    only_a = int((a & ~b).sum())
    only_b = int((b & ~a).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(binomtest(min(only_a, only_b), discordant, 0.5).pvalue)
    return PairedAccuracy(only_a=only_a, only_b=only_b, n=int(a.size), p_value=min(1.0, p))


def paired_summary(paired: Mapping[str, Any] | None) -> str | None:
    """A report's ``paired`` field (QUBO against a baseline) as :meth:`PairedAccuracy.summary`, or None
    without one (runs saved before reports had it)."""
    if not paired or "p_value" not in paired:
        return None
    return PairedAccuracy(only_a=int(paired.get("qubo_only", 0)), only_b=int(paired.get("baseline_only", 0)),
                          n=int(paired.get("n", 0)), p_value=float(paired["p_value"])).summary()


def paired_caption(baselines: Mapping[str, Mapping[str, Any]], num_examples: int | None) -> str:
    """In one sentence, which of a report's ``baselines`` the paired test tells apart from the QUBO model
    (empty when none carries a ``paired`` field)."""
    tested = {b.get("label", name): b["paired"]["p_value"] for name, b in baselines.items()
              if (b.get("paired") or {}).get("p_value") is not None}
    if not tested:
        return ""
    within = [label for label, p in tested.items() if p >= SIGNIFICANCE_LEVEL]
    apart = [label for label, p in tested.items() if p < SIGNIFICANCE_LEVEL]
    on = f"the same {num_examples} examples" if num_examples else "the same examples"

    def listed(labels: list[str]) -> str:
        return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"

    parts = []
    if within:
        parts.append(f"from {listed(within)} by no more than chance (p ≥ {SIGNIFICANCE_LEVEL:g})")
    if apart:
        parts.append(f"from {listed(apart)} by more than chance (p < {SIGNIFICANCE_LEVEL:g})")
    return (f"Paired test on {on}: the QUBO model's accuracy differs " + "; and ".join(parts) + ". Small "
            "evaluation sets cannot tell close accuracies apart, whatever the table's decimals suggest.")
