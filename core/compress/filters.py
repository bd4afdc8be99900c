"""Remove (or mask) conv filters for real: F2's decisions applied to a model copy.

Keeping filters ``kept`` of a Conv2d layer L means:

* **removal** (when the architecture allows): L's weight rows and bias entries
  of the other filters are dropped (``out_channels`` shrinks), every
  BatchNorm2d between L and its consumer is sliced the same way (weight, bias,
  running mean and variance), and the consumer's input is sliced: a following
  Conv2d loses those input channels, a following Linear after a flatten loses
  the matching blocks of ``in_features / C`` features (channel-major, as
  ``flatten(1)`` lays them out). Parameter count and latency drop.
* **masking** (when it does not): the pruned filters' weights and bias, and the
  gamma and beta of every BatchNorm2d on the way from L to where the channel
  can no longer be followed, are set to zero, so the channel is exactly zero
  up to that point (a BatchNorm maps a zero channel to a constant unless its
  gamma and beta are zero too); the shapes stay.

Which one applies is found by tracing the model with ``torch.fx``
(:func:`filter_plans`): from L's output the graph is followed through
channel-preserving operations (activations, BatchNorm2d, pooling, dropout,
flatten) to the single Conv2d (groups = 1) or Linear that consumes it. Any
other situation masks, with the reason recorded: the output is used in more
than one place (a residual sum, a concatenation, a branch), an operation that
cannot be followed, a grouped/depthwise consumer, a module called from more
than one place, or a model that cannot be traced.

Public API: :class:`FilterPlan`, :func:`filter_plans`, :class:`PrunedModel`,
:func:`apply_filter_decision`, :class:`MaskedEvaluator`.
"""

from __future__ import annotations

import copy
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from core.errors import InvalidInputError
from core.models.units import count_parameters

__all__ = [
    "FilterPlan",
    "MaskedEvaluator",
    "PrunedModel",
    "apply_filter_decision",
    "enforce_masks",
    "filter_plans",
]

# Operations a removed filter's channel can pass through: each maps an all-zero channel to an
# all-zero channel (f(0) = 0) and has no per-channel parameters, so removing the channel and
# zeroing it give the same network. Not sigmoid / hardsigmoid (f(0) = 0.5) nor PReLU (per-channel
# slopes): a filter followed by those is masked instead.
_PASS_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardswish,
    nn.Hardtanh, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout2d,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
_PASS_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardswish, F.hardtanh, F.mish, F.dropout,
    F.dropout2d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
    torch.relu, torch.tanh,
}  # fmt: skip
_PASS_METHODS = {"relu", "relu_", "tanh", "contiguous", "clone"}


@dataclass(frozen=True)
class FilterPlan:
    """How the filters of one conv layer can be taken out.

    ``removable`` False means masking; ``reason`` then says why in plain
    words. ``batchnorms`` are the BatchNorm2d modules on the way to the
    consumer (for masking: on the way to where the channel can no longer be
    followed; their gamma/beta are zeroed). ``flattened`` means the consumer is a Linear reached through a
    flatten, whose input features are sliced per channel block.
    """

    layer: str
    removable: bool
    reason: str = ""
    batchnorms: tuple[str, ...] = ()
    consumer: str | None = None
    consumer_kind: str | None = None  # "conv" or "linear"
    flattened: bool = False


def _is_flatten(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target is torch.flatten:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        return start == 1
    if node.op == "call_method" and node.target == "flatten":
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        return start == 1
    if node.op == "call_method" and node.target in ("view", "reshape") and len(node.args) == 3:
        return node.args[2] == -1
    return False


def _plan_for(
    node: fx.Node, modules: Mapping[str, nn.Module], calls: Counter[str]
) -> FilterPlan:
    name = str(node.target)
    if calls[name] > 1:
        return FilterPlan(name, False, "the layer is called from more than one place")
    bns: list[str] = []
    flattened = False
    current = node
    while True:
        users = list(current.users)
        if len(users) != 1:
            why = (
                "its output is not used" if not users
                else "its output is used in more than one place (a residual sum, concatenation or branch)"
            )
            return FilterPlan(name, False, why, tuple(bns))
        user = users[0]
        first = bool(user.args) and user.args[0] is current
        if user.op == "call_module":
            mod = modules.get(str(user.target))
            if mod is None:
                return FilterPlan(name, False, "followed by an unknown module", tuple(bns))
            if calls[str(user.target)] > 1 and not isinstance(mod, _PASS_MODULES):
                return FilterPlan(name, False, f"{user.target} is called from more than one place", tuple(bns))
            if isinstance(mod, nn.Conv2d):
                if flattened:
                    return FilterPlan(name, False, "a conv follows a flatten", tuple(bns))
                if mod.groups != 1:
                    return FilterPlan(name, False, f"its consumer {user.target} is a grouped/depthwise conv", tuple(bns))
                return FilterPlan(name, True, "", tuple(bns), str(user.target), "conv", False)
            if isinstance(mod, nn.Linear):
                if not flattened:
                    return FilterPlan(name, False, f"{user.target} is applied without a flatten", tuple(bns))
                channels = int(modules[name].out_channels)  # type: ignore[union-attr]
                if mod.in_features % channels:
                    why = f"{user.target} has {mod.in_features} inputs, not a whole block per channel"
                    return FilterPlan(name, False, why, tuple(bns))
                return FilterPlan(name, True, "", tuple(bns), str(user.target), "linear", True)
            if isinstance(mod, nn.BatchNorm2d) and not flattened:
                bns.append(str(user.target))
            elif isinstance(mod, nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1 and not flattened:
                flattened = True
            elif isinstance(mod, nn.PReLU) and mod.num_parameters != 1:
                return FilterPlan(name, False, "followed by a per-channel PReLU", tuple(bns))
            elif not isinstance(mod, _PASS_MODULES):
                return FilterPlan(name, False, f"followed by {type(mod).__name__}, which it cannot be traced through", tuple(bns))
        elif user.op == "call_function" and user.target in _PASS_FUNCTIONS and first:
            pass
        elif user.op == "call_method" and user.target in _PASS_METHODS and first:
            pass
        elif _is_flatten(user) and not flattened and first:
            flattened = True
        elif user.op == "output":
            return FilterPlan(name, False, "its output is a model output", tuple(bns))
        else:
            target = getattr(user.target, "__name__", user.target)
            if user.op == "call_function" and user.target in (operator.add, torch.add, torch.cat):
                why = "its output joins a residual sum or concatenation"
            else:
                why = f"followed by {target}, which it cannot be traced through"
            return FilterPlan(name, False, why, tuple(bns))
        current = user


def filter_plans(model: nn.Module) -> dict[str, FilterPlan]:
    """For every Conv2d of ``model``: can its filters be removed, and how."""
    if not isinstance(model, nn.Module):
        raise InvalidInputError("The model must be a torch nn.Module.")
    modules = dict(model.named_modules())
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - tracing is best effort (dynamic control flow)
        return {n: FilterPlan(n, False, "the model could not be traced with torch.fx") for n in convs}
    calls: Counter[str] = Counter(str(nd.target) for nd in graph.nodes if nd.op == "call_module")
    plans = {}
    for nd in graph.nodes:
        if nd.op == "call_module" and str(nd.target) in convs and str(nd.target) not in plans:
            plans[str(nd.target)] = _plan_for(nd, modules, calls)
    for n in convs:
        plans.setdefault(n, FilterPlan(n, False, "the layer is not called in the traced forward pass"))
    # a consumer targeted by two removable producers (impossible in a chain, but be safe)
    consumers = Counter(p.consumer for p in plans.values() if p.removable)
    for n, p in list(plans.items()):
        if p.removable and consumers[p.consumer] > 1:
            plans[n] = FilterPlan(n, False, f"{p.consumer} has more than one producer", p.batchnorms)
    return plans


@dataclass
class PrunedModel:
    """A model copy with filters removed or masked."""

    model: nn.Module
    kept: dict[str, list[int]]
    removed: list[str]  # layers physically shrunk
    masked: dict[str, str]  # layer -> why it was masked instead
    params_before: int
    params_after: int
    mask_info: dict[str, tuple[list[int], tuple[str, ...]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": {k: list(v) for k, v in self.kept.items()},
            "removed": list(self.removed),
            "masked": dict(self.masked),
            "params_before": self.params_before,
            "params_after": self.params_after,
        }


def _check_kept(model: nn.Module, kept: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    if not isinstance(kept, Mapping) or not kept:
        raise InvalidInputError("Give the kept filters as a mapping from conv layer name to filter indices.")
    out = {}
    for name, idx in kept.items():
        try:
            mod = model.get_submodule(name)
        except AttributeError as exc:
            raise InvalidInputError(f"The model has no layer named {name!r}.") from exc
        if not isinstance(mod, nn.Conv2d) or mod.groups != 1:
            raise InvalidInputError(f"{name} is not an ordinary (groups=1) Conv2d layer.")
        try:
            values = sorted(int(i) for i in idx)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"The kept filters of {name} must be whole numbers.") from exc
        if not values:
            raise InvalidInputError(f"At least one filter of {name} must be kept.")
        if len(set(values)) != len(values) or values[0] < 0 or values[-1] >= mod.out_channels:
            raise InvalidInputError(
                f"The kept filters of {name} must be distinct indices from 0 to {mod.out_channels - 1}."
            )
        out[name] = values
    return out


def _slice_param(module: nn.Module, attr: str, index: torch.Tensor, dim: int) -> None:
    p = getattr(module, attr)
    if p is None:
        return
    new = p.data.index_select(dim, index).clone()
    if isinstance(p, nn.Parameter):
        setattr(module, attr, nn.Parameter(new, requires_grad=p.requires_grad))
    else:
        setattr(module, attr, new)


def _zero_masks(model: nn.Module, mask_info: Mapping[str, tuple[list[int], tuple[str, ...]]]) -> None:
    with torch.no_grad():
        for name, (pruned, bns) in mask_info.items():
            if not pruned:
                continue
            idx = torch.tensor(pruned, dtype=torch.long)
            conv = model.get_submodule(name)
            conv.weight[idx] = 0.0
            if conv.bias is not None:
                conv.bias[idx] = 0.0
            for bn_name in bns:
                bn = model.get_submodule(bn_name)
                if bn.weight is not None:
                    bn.weight[idx] = 0.0
                if bn.bias is not None:
                    bn.bias[idx] = 0.0


def enforce_masks(pruned: PrunedModel) -> None:
    """Re-zero masked filters (call after each optimizer step when fine-tuning)."""
    _zero_masks(pruned.model, pruned.mask_info)


def apply_filter_decision(
    model: nn.Module, kept: Mapping[str, Sequence[int]], *, mode: str = "auto"
) -> PrunedModel:
    """A copy of ``model`` keeping only ``kept[layer]`` filters of each listed conv.

    ``mode="auto"`` removes where :func:`filter_plans` allows and masks
    elsewhere; ``mode="mask"`` masks everywhere (same outputs, same shapes).
    """
    if mode not in ("auto", "mask"):
        raise InvalidInputError(f"mode must be 'auto' or 'mask', not {mode!r}.")
    if not isinstance(model, nn.Module):
        raise InvalidInputError("The model must be a torch nn.Module.")
    kept = _check_kept(model, kept)
    plans = filter_plans(model)
    new = copy.deepcopy(model)
    removed, masked, mask_info = [], {}, {}
    for name, idx in kept.items():
        plan = plans[name]
        conv = new.get_submodule(name)
        c = int(conv.out_channels)
        if len(idx) == c:
            continue
        if mode == "auto" and plan.removable:
            index = torch.tensor(idx, dtype=torch.long)
            _slice_param(conv, "weight", index, 0)
            _slice_param(conv, "bias", index, 0)
            conv.out_channels = len(idx)
            for bn_name in plan.batchnorms:
                bn = new.get_submodule(bn_name)
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    _slice_param(bn, attr, index, 0)
                bn.num_features = len(idx)
            consumer = new.get_submodule(plan.consumer)  # type: ignore[arg-type]
            if plan.consumer_kind == "conv":
                _slice_param(consumer, "weight", index, 1)
                consumer.in_channels = len(idx)
            else:
                block = int(consumer.in_features) // c  # a whole multiple, checked by filter_plans
                cols = (index[:, None] * block + torch.arange(block)[None, :]).reshape(-1)
                _slice_param(consumer, "weight", cols, 1)
                consumer.in_features = len(idx) * block
            removed.append(name)
        else:
            masked[name] = "masking was requested" if mode == "mask" else plan.reason
            pruned = [i for i in range(c) if i not in set(idx)]
            mask_info[name] = (pruned, plan.batchnorms)
    _zero_masks(new, mask_info)
    return PrunedModel(
        model=new,
        kept=kept,
        removed=removed,
        masked=masked,
        params_before=count_parameters(model),
        params_after=count_parameters(new),
        mask_info=mask_info,
    )


class MaskedEvaluator:
    """Fast calibration loss of many kept-filter choices on one model.

    Keeps one copy of the model and its original conv/BN parameters; each
    :meth:`loss` call restores them, zeroes the pruned filters (as
    :func:`apply_filter_decision` with ``mode="mask"``, which gives the same
    outputs as removal) and runs the model on the images.
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layers: Sequence[str]) -> None:
        self.model = copy.deepcopy(model).eval()
        self.images, self.labels = images, labels
        plans = filter_plans(model)
        self.bns = {n: plans[n].batchnorms for n in layers}
        self._orig: dict[str, dict[str, torch.Tensor]] = {}
        for n in layers:
            for mod_name in (n, *self.bns[n]):
                mod = self.model.get_submodule(mod_name)
                self._orig[mod_name] = {
                    a: getattr(mod, a).detach().clone() for a in ("weight", "bias") if getattr(mod, a) is not None
                }
        self.channels = {n: int(self.model.get_submodule(n).out_channels) for n in layers}
        self.evaluations = 0

    def loss(self, kept: Mapping[str, Sequence[int]]) -> float:
        with torch.no_grad():
            for mod_name, params in self._orig.items():
                mod = self.model.get_submodule(mod_name)
                for a, t in params.items():
                    getattr(mod, a).copy_(t)
            info = {}
            for n, idx in kept.items():
                keep = set(int(i) for i in idx)
                info[n] = ([i for i in range(self.channels[n]) if i not in keep], self.bns[n])
            _zero_masks(self.model, info)
            logits = self.model(self.images)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            self.evaluations += 1
            return float(F.cross_entropy(logits, self.labels).item())


def kept_array(kept: Sequence[int], channels: int) -> np.ndarray:
    """0/1 vector of length ``channels`` with ones at ``kept``."""
    x = np.zeros(channels, dtype=np.int8)
    x[list(kept)] = 1
    return x
