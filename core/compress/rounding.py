"""Apply a rounding decision (new, already dequantized weights) to a model copy.

A rounding method (round-to-nearest, the F3 rounding QUBO, ...) decides for
every weight of a Conv2d or Linear layer which grid value it takes; the result
is a dequantized weight tensor ``W_hat`` of the layer's shape. This module
writes such tensors into a deep copy of the model, after checking that every
tensor matches the layer it is meant for. The input model is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from core.errors import InvalidInputError
from core.models.units import COMPRESSIBLE


def _layer(model: nn.Module, name: str) -> nn.Conv2d | nn.Linear:
    try:
        module = model.get_submodule(name)
    except AttributeError as exc:
        raise InvalidInputError(f"The model has no layer named {name!r}.") from exc
    if not isinstance(module, COMPRESSIBLE):
        raise InvalidInputError(f"Layer {name!r} is not a Conv2d or Linear layer, so it cannot be rounded.")
    return module


def _checked(name: str, what: str, value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise InvalidInputError(f"The new {what} for layer {name!r} must be a tensor.")
    if tuple(value.shape) != tuple(reference.shape):
        raise InvalidInputError(
            f"The new {what} for layer {name!r} has shape {tuple(value.shape)}, "
            f"but the layer needs {tuple(reference.shape)}."
        )
    if not torch.isfinite(value).all():
        raise InvalidInputError(f"The new {what} for layer {name!r} contains NaN or infinite values.")
    return value.detach().to(dtype=reference.dtype, device=reference.device)


def apply_rounding(
    model: nn.Module,
    weights: Mapping[str, torch.Tensor],
    *,
    biases: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """A deep copy of ``model`` with ``weights[name]`` (and ``biases[name]``)
    written into the layers named by the keys.

    Raises :class:`InvalidInputError` for unknown layers, layers that are not
    Conv2d/Linear, wrong shapes, non-finite values, or a bias given for a layer
    without one. Layers not named keep their weights.
    """
    if not isinstance(model, nn.Module):
        raise InvalidInputError("apply_rounding needs a torch model (nn.Module).")
    biases = dict(biases or {})
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, w in weights.items():
            layer = _layer(out, name)
            layer.weight.copy_(_checked(name, "weights", w, layer.weight))
        for name, b in biases.items():
            layer = _layer(out, name)
            if layer.bias is None:
                raise InvalidInputError(f"Layer {name!r} has no bias, so a new bias cannot be applied.")
            layer.bias.copy_(_checked(name, "bias", b, layer.bias))
    return out


def rounding_levels(weight: torch.Tensor, dequantized: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The integer grid levels ``round(W_hat / s)`` per weight (0 where s = 0),
    e.g. to store or display a rounding decision."""
    if tuple(weight.shape) != tuple(dequantized.shape):
        raise InvalidInputError("The dequantized weights must have the same shape as the original weights.")
    if scale.numel() != weight.shape[0]:
        raise InvalidInputError("There must be one scale per output channel.")
    s = scale.reshape(-1, *([1] * (weight.dim() - 1))).to(torch.float64)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    return torch.where(s > 0, torch.round(dequantized.to(torch.float64) / safe), torch.zeros_like(safe)).to(
        torch.int64
    )
