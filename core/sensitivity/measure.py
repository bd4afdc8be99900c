"""Per-unit distortion d[u, k] of each compression option, and neighbour terms J.

Three estimators (``method``):

``"measured"`` (default)
    d[u, k] = L(model with only unit u compressed by option k) - L(model),
    L the mean cross-entropy on the fixed calibration batch. Measured under
    ``torch.no_grad``; the uncompressed activations are computed once and,
    when the model can be traced by ``torch.fx``, only the part of the graph
    downstream of the changed layer is recomputed for each measurement
    (a plain full forward pass otherwise). ``d[u, "keep"] = 0`` exactly.
``"hessian"``
    d[u, k] = 1/2 * Tr(H_u) * mean((w - Q_k(w))^2): the second-order Taylor
    estimate of the loss increase for isotropic noise of the option's mean
    squared size, with Tr(H_u) the Hutchinson estimate (Rademacher probes,
    ``hessian_samples`` of them, seeded) of the trace of the loss Hessian
    w.r.t. the unit's weights. For prune the noise is ||w||^2 / n. A negative
    trace estimate (probe noise, or a non-convex point) is clipped at 0; use
    more probes if that happens (16 is the default).
``"magnitude"``
    d[u, k] = ||w - Q_k(w)||^2 + ||b - b_k||^2, the squared weight perturbation
    (prune: the squared norm of the unit's weights and bias).

Neighbour terms (``pairwise=True``, measured only): for each pair of
consecutive units (u, v) in the listing and each pair of options (k, l)
other than keep, J[u, k, v, l] = dL(u: k, v: l together) - d[u, k] - d[v, l].
Terms with keep are zero by definition and not stored.

Units that are not safe to prune (``DecisionUnit.safe_to_prune`` False, e.g.
the classifier, layers feeding a residual sum) simply have no ``"prune"``
entry: :meth:`Sensitivity.unit_options` lists what each unit may choose, and
the formulations create no variable for a missing option.

Results are cached by (model content hash, data hash, options, method,
groups, pairwise, scale method[, hessian samples, seed]) in an in-memory LRU
and, when ``cache_dir`` is given, as JSON files there.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from core.compress import mixed_precision as _cmp
from core.compress.quantize import SCALE_METHODS
from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.models.hashing import model_hash
from core.sensitivity.options import (
    DecisionUnit,
    Option,
    check_groups,
    decision_units,
    option_from_label,
    option_label,
    parse_options,
)

Progress = Callable[[int, int, str], None]
METHODS = ("measured", "hessian", "magnitude")
CACHE_SIZE = 16

__all__ = [
    "METHODS",
    "Sensitivity",
    "cache_clear",
    "cache_info",
    "measure_sensitivity",
    "model_hash",
]


@dataclass
class Sensitivity:
    """Distortions per unit and option, plus optional neighbour terms.

    ``distortion[unit][option_label]`` and
    ``pairwise[(unit_u, option_label_k, unit_v, option_label_l)]``; option
    labels are ``"prune"``, ``"2"``, ..., ``"keep"``.
    """

    method: str
    options: tuple[Option, ...]
    groups: int
    units: list[DecisionUnit]
    distortion: dict[str, dict[str, float]]
    pairwise: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    baseline_loss: float = 0.0
    key: str = ""
    seconds: float = 0.0
    cached: bool = False

    def unit_options(self, name: str) -> tuple[Option, ...]:
        """The options unit ``name`` may choose (no prune for unprunable units)."""
        return tuple(option_from_label(k) for k in self.distortion[name])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "options": [option_label(o) for o in self.options],
            "groups": self.groups,
            "units": [u.as_dict() for u in self.units],
            "distortion": self.distortion,
            "pairwise": [[*k, v] for k, v in self.pairwise.items()],
            "baseline_loss": self.baseline_loss,
            "key": self.key,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sensitivity:
        units = [
            DecisionUnit(**{k: v for k, v in row.items() if k != "params"}) for row in data["units"]
        ]
        return cls(
            method=data["method"],
            options=tuple(option_from_label(o) for o in data["options"]),
            groups=int(data["groups"]),
            units=units,
            distortion={u: {k: float(v) for k, v in row.items()} for u, row in data["distortion"].items()},
            pairwise={(a, b, c, d): float(v) for a, b, c, d, v in data["pairwise"]},
            baseline_loss=float(data["baseline_loss"]),
            key=data["key"],
            seconds=float(data["seconds"]),
        )


# ----------------------------------------------------------------------------- cache

_CACHE: OrderedDict[str, Sensitivity] = OrderedDict()
_STATS = {"hits": 0, "misses": 0}


def cache_info() -> dict[str, int]:
    """In-memory cache statistics: hits, misses, size."""
    return {**_STATS, "size": len(_CACHE)}


def cache_clear() -> None:
    _CACHE.clear()
    _STATS.update(hits=0, misses=0)


def _cache_get(key: str, cache_dir: Path | None) -> Sensitivity | None:
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if cache_dir is not None:
        path = cache_dir / f"sensitivity-{key}.json"
        if path.exists():
            try:
                found = Sensitivity.from_dict(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError):
                return None  # a damaged cache file is just a miss
            _cache_put(key, found, None)
            return found
    return None


def _cache_put(key: str, value: Sensitivity, cache_dir: Path | None) -> None:
    _CACHE[key] = value
    _CACHE.move_to_end(key)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f"sensitivity-{key}.json.tmp"
        tmp.write_text(json.dumps(value.to_dict()))
        tmp.replace(cache_dir / f"sensitivity-{key}.json")


# ----------------------------------------------------------------------------- forward passes


def _logits(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_clone(v) for v in value)
    return value


class _Replay(fx.Interpreter):
    """Runs a traced model, recomputing only ``dirty`` nodes and reading the
    rest from the baseline activations (cloned, because some ops are in place)."""

    def __init__(self, gm: fx.GraphModule, cache: dict[fx.Node, Any], dirty: set[fx.Node] | None,
                 feeds: set[fx.Node] | None) -> None:
        super().__init__(gm, garbage_collect_values=True)
        self.cache, self.dirty, self.feeds = cache, dirty, feeds

    def run_node(self, n: fx.Node) -> Any:
        if self.dirty is None:  # baseline pass: record everything
            out = super().run_node(n)
            self.cache[n] = _clone(out)
            return out
        if n in self.dirty:
            return super().run_node(n)
        return _clone(self.cache[n]) if n in self.feeds else None


class _Runner:
    """Loss of a private copy of a model on a fixed batch, with unit weights
    swapped in and out, reusing baseline activations where the graph allows."""

    def __init__(self, model: nn.Module, data: EvalData) -> None:
        self.model = copy.deepcopy(model).eval()
        self.x, self.y = data.images, data.labels
        self.gm: fx.GraphModule | None
        try:
            self.gm = fx.symbolic_trace(self.model)
        except Exception:  # noqa: BLE001 - tracing is an optimisation only
            self.gm = None
        self.cache: dict[fx.Node, Any] = {}
        self._downstream: dict[str, set[fx.Node]] = {}
        with torch.no_grad():
            if self.gm is not None:
                try:
                    out = _Replay(self.gm, self.cache, None, None).run(self.x)
                except Exception:  # noqa: BLE001
                    self.gm, self.cache = None, {}
            if self.gm is None:
                out = self.model(self.x)
            self.baseline = self._loss(out)

    def module(self, layer: str) -> nn.Module:
        return (self.gm or self.model).get_submodule(layer)

    def _loss(self, output: Any) -> float:
        return float(F.cross_entropy(_logits(output), self.y).item())

    def _dirty(self, layer: str) -> set[fx.Node]:
        if layer not in self._downstream:
            assert self.gm is not None
            start = [n for n in self.gm.graph.nodes if n.op == "call_module" and n.target == layer]
            seen: set[fx.Node] = set()
            stack = list(start)
            while stack:
                n = stack.pop()
                if n not in seen:
                    seen.add(n)
                    stack.extend(n.users)
            self._downstream[layer] = seen
        return self._downstream[layer]

    def loss(self, layers: Iterable[str]) -> float:
        """Loss with the current weights, given the layers whose weights changed."""
        with torch.no_grad():
            if self.gm is None:
                return self._loss(self.model(self.x))
            dirty: set[fx.Node] = set()
            for layer in layers:
                dirty |= self._dirty(layer)
            feeds = {a for n in dirty for a in n.all_input_nodes if a not in dirty}
            return self._loss(_Replay(self.gm, self.cache, dirty, feeds).run(self.x))

    def swap(self, unit: DecisionUnit, option: Option, scale_method: str) -> Callable[[], None]:
        """Compress ``unit`` in place with ``option``; returns the undo function."""
        module = self.module(unit.layer)
        rows = slice(unit.start, unit.stop)
        with torch.no_grad():
            old_w = module.weight[rows].clone()
            old_b = module.bias[rows].clone() if module.bias is not None else None
            new_w, new_b = _cmp.compress_tensors(old_w, old_b, option, scale_method=scale_method)
            module.weight[rows] = new_w
            if new_b is not None:
                module.bias[rows] = new_b

        def undo() -> None:
            with torch.no_grad():
                module.weight[rows] = old_w
                if old_b is not None:
                    module.bias[rows] = old_b

        return undo


# ----------------------------------------------------------------------------- estimators


def _noise(module: nn.Module, unit: DecisionUnit, option: Option, scale_method: str) -> tuple[float, float]:
    """(sum of squared weight perturbation, of bias perturbation) of ``option``."""
    rows = slice(unit.start, unit.stop)
    w = module.weight[rows].detach()
    b = module.bias[rows].detach() if module.bias is not None else None
    new_w, new_b = _cmp.compress_tensors(w, b, option, scale_method=scale_method)
    dw = float(((new_w - w) ** 2).sum())
    db = 0.0 if b is None or new_b is None else float(((new_b - b) ** 2).sum())
    return dw, db


def _hessian_traces(
    model: nn.Module, data: EvalData, units: Sequence[DecisionUnit], samples: int, seed: int,
    progress: Progress | None, done: int, total: int,
) -> dict[str, float]:
    model = copy.deepcopy(model).eval()
    layers = list(dict.fromkeys(u.layer for u in units))
    for p in model.parameters():
        p.requires_grad_(False)
    weights = [model.get_submodule(layer).weight for layer in layers]
    for w in weights:
        w.requires_grad_(True)
    loss = F.cross_entropy(_logits(model(data.images)), data.labels)
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    acc = [torch.zeros(w.shape[0]) for w in weights]  # per output channel
    for s in range(samples):
        probes = [torch.randint(0, 2, w.shape, generator=gen).to(w.dtype) * 2 - 1 for w in weights]
        hv = torch.autograd.grad(grads, weights, grad_outputs=probes, retain_graph=s < samples - 1)
        for i, (v, h) in enumerate(zip(probes, hv)):
            acc[i] += (v * h).reshape(v.shape[0], -1).sum(dim=1).detach()
        if progress is not None:
            progress(done + s + 1, total, f"Hessian probe {s + 1}/{samples}")
    per_layer = {layer: a / samples for layer, a in zip(layers, acc)}
    return {u.name: float(per_layer[u.layer][u.start : u.stop].sum()) for u in units}


def _key(model: nn.Module, data: EvalData, options: tuple[Option, ...], method: str, groups: int,
         pairwise: bool, scale_method: str, hessian_samples: int, seed: int) -> str:
    parts: list[Any] = [model_hash(model), data.content_hash(), [option_label(o) for o in options],
                        method, groups, pairwise, scale_method]
    if method == "hessian":
        parts += [hessian_samples, seed]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def measure_sensitivity(
    model: nn.Module,
    calib: EvalData,
    *,
    options: str | Iterable[Option] | None = None,
    method: str = "measured",
    groups: int = 1,
    pairwise: bool = False,
    scale_method: str = "minmax",
    hessian_samples: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> Sensitivity:
    """Distortion of every (unit, option) of ``model`` on the calibration batch.

    Parameters
    ----------
    model: a torch classifier (used in eval mode; never modified).
    calib: the calibration batch (all of it is one batch: subset it first).
    options: the option set, e.g. ``"prune,2,4,8,keep"`` (default).
    method: ``"measured"``, ``"hessian"`` or ``"magnitude"`` (module docstring).
    groups: output-channel groups per layer (1 = one unit per layer).
    pairwise: also measure J for consecutive units (``method="measured"`` only).
    scale_method: quantization scale rule, ``"minmax"`` or ``"mse"``.
    hessian_samples, seed: Hutchinson probes and their seed (``"hessian"``).
    progress: called as ``progress(done, total, message)``.
    cache, cache_dir: in-memory LRU cache, optional on-disk JSON cache.
    """
    opts = parse_options(options)
    check_groups(groups)
    if method not in METHODS:
        raise InvalidInputError(f"Sensitivity method must be one of {', '.join(METHODS)}, not {method!r}.")
    if scale_method not in SCALE_METHODS:
        raise InvalidInputError(f"scale_method must be one of {', '.join(SCALE_METHODS)}, not {scale_method!r}.")
    if pairwise and method != "measured":
        raise InvalidInputError("Pairwise terms are measured; use sensitivity method 'measured' with pairwise.")
    if isinstance(hessian_samples, bool) or not isinstance(hessian_samples, int) or hessian_samples < 1:
        raise InvalidInputError(f"hessian_samples must be a whole number >= 1, not {hessian_samples!r}.")
    if not isinstance(calib, EvalData) or len(calib) == 0:
        raise InvalidInputError("Sensitivities need calibration examples, and there are none: load the model again "
                                "on the Model page (or pass calibration data as an EvalData set).")
    units = decision_units(model, groups)
    if not units:
        raise InvalidInputError("This model has no Conv2d or Linear layer to compress.")
    for unit in units:
        if not unit.allowed(opts):
            raise InvalidInputError(
                f"{unit.name} cannot be pruned ({unit.reason}) and no other option is selected; add a bit width or keep."
            )
    directory = Path(cache_dir) if cache_dir is not None else None
    key = _key(model, calib, opts, method, groups, pairwise, scale_method, hessian_samples, seed)
    if cache:
        found = _cache_get(key, directory)
        if found is not None:
            _STATS["hits"] += 1
            result = copy.deepcopy(found)
            result.cached = True
            return result
        _STATS["misses"] += 1

    t0 = time.perf_counter()
    changing = {u.name: [o for o in u.allowed(opts) if o != "keep"] for u in units}
    neighbours = list(itertools.pairwise(units)) if pairwise else []
    total = sum(len(v) for v in changing.values())
    total += sum(len(changing[u.name]) * len(changing[v.name]) for u, v in neighbours)
    if method == "hessian":
        total = hessian_samples + len(units)
    done = 0

    def tick(message: str, step: int = 1) -> None:
        nonlocal done
        done += step
        if progress is not None:
            progress(done, total, message)

    distortion: dict[str, dict[str, float]] = {}
    pair_terms: dict[tuple[str, str, str, str], float] = {}
    baseline = float("nan")
    if method == "measured":
        runner = _Runner(model, calib)
        baseline = runner.baseline
        for unit in units:
            row: dict[str, float] = {}
            for option in unit.allowed(opts):
                if option == "keep":
                    row["keep"] = 0.0
                    continue
                undo = runner.swap(unit, option, scale_method)
                row[option_label(option)] = runner.loss([unit.layer]) - baseline
                undo()
                tick(f"{unit.name} at {option_label(option)}")
            distortion[unit.name] = row
        for u, v in neighbours:
            for k in changing[u.name]:
                undo_u = runner.swap(u, k, scale_method)
                for m in changing[v.name]:
                    undo_v = runner.swap(v, m, scale_method)
                    joint = runner.loss([u.layer, v.layer]) - baseline
                    undo_v()
                    ku, mv = option_label(k), option_label(m)
                    pair_terms[(u.name, ku, v.name, mv)] = joint - distortion[u.name][ku] - distortion[v.name][mv]
                    tick(f"{u.name} at {ku} with {v.name} at {mv}")
                undo_u()
    else:
        traces = (
            _hessian_traces(model, calib, units, hessian_samples, seed, progress, 0, total)
            if method == "hessian" else {}
        )
        done = hessian_samples if method == "hessian" else 0
        if method == "magnitude":
            total = len(units)
        for unit in units:
            module = model.get_submodule(unit.layer)
            row = {}
            for option in unit.allowed(opts):
                dw, db = _noise(module, unit, option, scale_method)
                if option == "keep":
                    row["keep"] = 0.0
                elif method == "magnitude":
                    row[option_label(option)] = dw + db
                else:
                    row[option_label(option)] = 0.5 * max(traces[unit.name], 0.0) * dw / unit.weight_params
            distortion[unit.name] = row
            tick(f"{unit.name}")
    result = Sensitivity(
        method=method,
        options=opts,
        groups=groups,
        units=units,
        distortion=distortion,
        pairwise=pair_terms,
        baseline_loss=baseline,
        key=key,
        seconds=time.perf_counter() - t0,
    )
    if cache:
        _cache_put(key, copy.deepcopy(result), directory)
    return result
