"""Chain strength and chain-break statistics.

A *chain* is the group of physical qubits standing for one problem variable;
its qubits are tied together by a ferromagnetic coupling of magnitude
*chain strength*. Too weak and chains break (qubits of one chain disagree, the
answer is repaired by majority vote); too strong and the problem's own biases
are squeezed into a small part of the QPU's range.

The default is D-Wave's *uniform torque compensation*
(:func:`dwave.embedding.chain_strength.uniform_torque_compensation`), which
scales with the root-mean-square coupling and the typical degree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping

import dimod
import numpy as np

from core.errors import InvalidInputError

__all__ = [
    "DEFAULT_PREFACTOR",
    "ChainStrength",
    "chain_break_fraction",
    "compute_chain_strength",
]

DEFAULT_PREFACTOR = 1.414

ChainStrength = (
    float
    | Callable[[dimod.BinaryQuadraticModel, Mapping[Hashable, Iterable[int]]], float]
)


def compute_chain_strength(
    bqm: dimod.BinaryQuadraticModel,
    embedding: Mapping[Hashable, Iterable[int]],
    override: ChainStrength | None = None,
    *,
    prefactor: float = DEFAULT_PREFACTOR,
) -> float:
    """The chain strength to use for ``bqm`` under ``embedding``.

    Args:
        bqm: the (logical) problem.
        embedding: its minor embedding.
        override: a positive number to use as is, or a callable
            ``f(bqm, embedding) -> float``. None selects uniform torque
            compensation.
        prefactor: uniform torque compensation prefactor (D-Wave's default
            1.414).

    Returns:
        A positive float (in the Ising scale of ``bqm``, as D-Wave's composites
        use it).

    Raises:
        InvalidInputError: for a non-positive or non-finite override.
    """
    from dwave.embedding.chain_strength import uniform_torque_compensation

    if override is None:
        if not prefactor > 0:
            raise InvalidInputError(
                f"The chain-strength prefactor must be positive, got {prefactor!r}."
            )
        value = uniform_torque_compensation(bqm, embedding, prefactor=prefactor)
    elif callable(override):
        value = override(bqm, embedding)
    else:
        value = override
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"Chain strength must be a positive number, got {value!r}."
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(
            f"Chain strength must be a positive number, got {value!r}."
        )
    return value


def chain_break_fraction(sampleset: dimod.SampleSet) -> float | None:
    """Mean fraction of broken chains per read of an unembedded sample set.

    Reads are weighted by ``num_occurrences``, so aggregated and raw sample
    sets give the same value. Returns None when the sample set carries no
    ``chain_break_fraction`` data vector (it was not embedded).
    """
    record = sampleset.record
    if "chain_break_fraction" not in record.dtype.names:
        return None
    if len(record) == 0:
        return 0.0
    weights = record.num_occurrences.astype(float)
    total = weights.sum()
    if total <= 0:
        return 0.0
    return float(np.dot(record.chain_break_fraction, weights) / total)
