"""The compressible units of a model: every Conv2d and Linear layer.

A unit is the thing a compression decision is made about (one layer, or in
fine-grained mode a group of its output channels). ``safe_to_prune`` says
whether zeroing or removing the unit's output channels leaves a network that
still computes something sensible; ``reason`` says why not when it does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import fx, nn

COMPRESSIBLE = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Unit:
    name: str
    kind: str  # "conv", "depthwise-conv", "grouped-conv" or "linear"
    shape: tuple[int, ...]
    params: int  # weight + bias
    weight_params: int
    out_channels: int
    groups: int
    safe_to_prune: bool
    reason: str = ""

    def as_dict(self) -> dict:
        row = asdict(self)
        row["shape"] = "x".join(str(s) for s in self.shape)
        return row


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return "linear"
    if module.groups == 1:
        return "conv"
    if module.groups == module.in_channels == module.out_channels:
        return "depthwise-conv"
    return "grouped-conv"


def _residual_outputs(model: nn.Module) -> set[str] | None:
    """Names of layers whose output reaches a residual ``add`` without passing
    through another compressible layer. None if the model cannot be traced."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - tracing is best effort (dynamic control flow)
        return None
    modules = dict(model.named_modules())
    joined: set[str] = set()

    def feeds_add(node: fx.Node, seen: set[fx.Node]) -> bool:
        for user in node.users:
            if user in seen:
                continue
            seen.add(user)
            if user.op == "call_module" and isinstance(modules.get(user.target), COMPRESSIBLE):
                continue
            if user.op in ("call_function", "call_method") and getattr(
                user.target, "__name__", user.target
            ) in ("add", "iadd", "add_", "__add__", "__iadd__"):
                return True
            if feeds_add(user, seen):
                return True
        return False

    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules.get(node.target), COMPRESSIBLE):
            if feeds_add(node, set()):
                joined.add(str(node.target))
    return joined


def compressible_units(model: nn.Module) -> list[Unit]:
    """List every Conv2d and Linear layer of ``model`` in definition order."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, COMPRESSIBLE)]
    if not layers:
        return []
    residual = _residual_outputs(model) or set()
    output_name = layers[-1][0]
    units = []
    for name, module in layers:
        kind = _kind(module)
        weight_params = module.weight.numel()
        params = weight_params + (module.bias.numel() if module.bias is not None else 0)
        out_channels = module.out_features if kind == "linear" else module.out_channels
        groups = 1 if kind == "linear" else module.groups
        if name == output_name:
            safe, reason = False, "produces the class scores"
        elif kind == "depthwise-conv":
            safe, reason = False, "depthwise: its channels are tied to the previous layer's"
        elif name in residual:
            safe, reason = False, "its output joins a residual sum"
        else:
            safe, reason = True, ""
        units.append(
            Unit(
                name=name,
                kind=kind,
                shape=tuple(module.weight.shape),
                params=params,
                weight_params=weight_params,
                out_channels=out_channels,
                groups=groups,
                safe_to_prune=safe,
                reason=reason,
            )
        )
    return units


def get_unit_module(model: nn.Module, name: str) -> nn.Conv2d | nn.Linear:
    module = model.get_submodule(name)
    if not isinstance(module, COMPRESSIBLE):
        raise KeyError(f"{name} is not a Conv2d or Linear layer")
    return module


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def is_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all().item() for p in model.parameters())
