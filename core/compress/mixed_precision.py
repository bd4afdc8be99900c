"""Apply a mixed-precision pruning/quantization decision to a copy of a model.

A decision maps decision-unit names (``"conv2"``, or ``"conv2[g1/4]"`` for a
group of output channels, see :mod:`core.sensitivity.options`) to an option:

* ``"prune"`` zeroes the unit's weight rows and bias entries;
* ``b`` (1..8) fake-quantizes the unit's weight rows to ``b`` bits with one
  symmetric scale per output channel (:func:`core.compress.quantize.fake_quantize`);
  the bias stays fp32;
* ``"keep"`` leaves the unit untouched.

Optionally ``filter_masks`` (unit name -> one bool per output channel of the
unit, True = prune that filter) zeroes single filters, as the source paper's
per-filter encoding decides (:mod:`core.formulations.paper_encoding`).

:func:`decision_size_bits` gives the storage of a model under a decision with
exactly the accounting of :meth:`DecisionUnit.cost_bits`, counting pruned
filters as not stored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from core.compress.quantize import SCALE_METHODS, fake_quantize
from core.errors import InvalidInputError
from core.evaluate.metrics import stored_bits
from core.formulations.base import Decision
from core.sensitivity.options import (
    FP32_BITS,
    DecisionUnit,
    Option,
    _parse_one,
    option_weight_bits,
    resolve_units,
)

__all__ = ["apply_decision", "compress_tensors", "decision_size_bits"]


def _choices(decision: Decision | Mapping[str, Option]) -> dict[str, Option]:
    raw = decision.choices if isinstance(decision, Decision) else decision
    return {str(name): _parse_one(option) for name, option in raw.items()}


def _masks(decision: Decision | Mapping[str, Option], filter_masks: Mapping[str, Sequence[bool]] | None):
    if filter_masks is None and isinstance(decision, Decision):
        filter_masks = decision.details.get("filter_masks")
    return dict(filter_masks or {})


def compress_tensors(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    option: Option,
    *,
    scale_method: str = "minmax",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (weight, bias) of a unit (its rows only) after ``option``; new tensors."""
    weight = weight.detach()
    bias = None if bias is None else bias.detach()
    if option == "prune":
        return torch.zeros_like(weight), None if bias is None else torch.zeros_like(bias)
    if option == "keep":
        return weight.clone(), None if bias is None else bias.clone()
    return fake_quantize(weight, int(option), scale_method), None if bias is None else bias.clone()


def _check_masks(units: Mapping[str, DecisionUnit], masks: Mapping[str, Sequence[bool]]) -> None:
    for name, mask in masks.items():
        if name not in units:
            raise InvalidInputError(f"A filter mask is given for {name!r}, which has no decision.")
        if len(mask) != units[name].out_channels:
            raise InvalidInputError(
                f"The filter mask for {name} has {len(mask)} entries; the unit has {units[name].out_channels} filters."
            )
        if any(mask) and not units[name].safe_to_prune:
            raise InvalidInputError(f"{name} cannot be pruned: {units[name].reason}.")


def apply_decision(
    model: nn.Module,
    decision: Decision | Mapping[str, Option],
    *,
    filter_masks: Mapping[str, Sequence[bool]] | None = None,
    scale_method: str = "minmax",
) -> nn.Module:
    """A deep copy of ``model`` (eval mode) with ``decision`` applied.

    ``decision`` is a :class:`Decision` (its ``choices``, and its
    ``details["filter_masks"]`` when present) or a plain ``{unit: option}``
    mapping. Units not mentioned are left as they are. Pruning a unit that is
    not safe to prune (e.g. the classifier) raises :class:`InvalidInputError`.
    """
    if scale_method not in SCALE_METHODS:
        raise InvalidInputError(f"scale_method must be one of {', '.join(SCALE_METHODS)}, not {scale_method!r}.")
    choices = _choices(decision)
    masks = _masks(decision, filter_masks)
    units = resolve_units(model, choices)
    _check_masks(units, masks)
    for name, option in choices.items():
        if option == "prune" and not units[name].safe_to_prune:
            raise InvalidInputError(f"{name} cannot be pruned: {units[name].reason}.")
    compressed = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, option in choices.items():
            unit = units[name]
            module = compressed.get_submodule(unit.layer)
            rows = slice(unit.start, unit.stop)
            bias = module.bias[rows] if module.bias is not None else None
            new_w, new_b = compress_tensors(module.weight[rows], bias, option, scale_method=scale_method)
            if name in masks:
                keep = ~torch.as_tensor(list(masks[name]), dtype=torch.bool)
                new_w = new_w * keep.reshape(-1, *([1] * (new_w.dim() - 1))).to(new_w.dtype)
                new_b = None if new_b is None else new_b * keep.to(new_b.dtype)
            module.weight[rows] = new_w
            if new_b is not None:
                module.bias[rows] = new_b
    return compressed


def decision_size_bits(
    model: nn.Module,
    decision: Decision | Mapping[str, Option],
    *,
    filter_masks: Mapping[str, Sequence[bool]] | None = None,
) -> int:
    """Storage in bits of ``model`` under ``decision``.

    = sum over decided units of their option cost (pruned filters of a
    ``filter_masks`` entry store nothing) + 32 bits for every other parameter
    (undecided units, BatchNorm, ...). Units of one layer must not overlap.
    """
    choices = _choices(decision)
    masks = _masks(decision, filter_masks)
    units = resolve_units(model, choices)
    _check_masks(units, masks)
    covered: dict[str, list[tuple[int, int]]] = {}
    for unit in units.values():
        for start, stop in covered.get(unit.layer, []):
            if unit.start < stop and start < unit.stop:
                raise InvalidInputError(f"The decision covers channels of {unit.layer} twice.")
        covered.setdefault(unit.layer, []).append((unit.start, unit.stop))
    total = FP32_BITS * sum(p.numel() for p in model.parameters())
    for name, option in choices.items():
        unit = units[name]
        total -= FP32_BITS * unit.params
        if name in masks:
            kept = unit.out_channels - sum(bool(m) for m in masks[name])
            per_w, per_b = unit.weight_params // unit.out_channels, unit.bias_params // unit.out_channels
            total += stored_bits(option_weight_bits(option), kept * per_w, kept * per_b, kept)
        else:
            total += unit.cost_bits(option)
    return total
