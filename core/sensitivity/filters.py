"""Filter importance and redundancy for hybrid filter pruning (DESIGN section 3, F2).

For every selected Conv2d layer with output activations ``a[n, c, h, w]`` (the
output of the BatchNorm right after it where there is one: pruning a filter
zeroes that channel, so that is the activation whose loss change is estimated) and
the gradient ``g = dL/da`` of the *per-sample* cross-entropy (the loss summed
over the batch, so each sample's gradient is its own), over the calibration
set of N images:

* ``taylor[c] = mean_n | sum_hw a[n,c,h,w] * g[n,c,h,w] |`` — the first-order
  Taylor estimate of the loss change when filter c is removed (Molchanov et
  al. 2017, per sample then averaged);
* ``fisher[c] = sum_n ( sum_hw a[n,c,h,w] * g[n,c,h,w] )^2`` — the Fisher
  (squared-gradient) estimate (Theis et al. 2018);
* ``fisher_matrix[c, d] = sum_n t[n,c] t[n,d]`` with ``t[n,c] = sum_hw a * g``
  — the whole empirical Fisher matrix of the filters' mask variables
  (``fisher`` is its diagonal). Removing the set R of filters changes the
  loss by about ``1/2 r^T F r / N`` (r the indicator of R; the gradient term
  vanishes at a well-trained model), so the off-diagonal entries say how
  removals compound (positive) or cancel (negative); the mask-Fisher form of
  Kwon et al. 2022 ("A Fast Post-Training Pruning Framework for
  Transformers"). The F2 QUBO uses it in full with ``importance="fisher-matrix"``;
* ``l1[c] = sum | W[c] |`` — the L1 norm of the filter's weights (no data);
* ``similarity[c, d]`` — redundancy of filters c and d: the absolute Pearson
  correlation (default) or the absolute cosine similarity of their flattened
  activations ``a[:, c]`` over all calibration images and positions; the
  diagonal is set to 0, every entry lies in [0, 1]. A filter whose activation
  is constant (e.g. dead) has correlation 0 with everything.

Public API: :class:`FilterStats`, :func:`filter_statistics`,
:func:`conv_layer_names`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.models.units import compressible_units

IMPORTANCE_KINDS = ("taylor", "fisher", "fisher-matrix", "l1")
SIMILARITY_KINDS = ("pearson", "cosine")

__all__ = [
    "IMPORTANCE_KINDS",
    "SIMILARITY_KINDS",
    "FilterStats",
    "conv_layer_names",
    "filter_statistics",
]


@dataclass
class FilterStats:
    """Importance scores (C,), the filters' Fisher matrix (C, C) and the
    redundancy matrix (C, C) of one conv layer."""

    name: str
    taylor: np.ndarray
    fisher: np.ndarray
    l1: np.ndarray
    similarity: np.ndarray
    similarity_kind: str
    n: int  # calibration images used
    fisher_matrix: np.ndarray | None = None  # None only for statistics made without per-sample terms

    @property
    def out_channels(self) -> int:
        return int(self.l1.shape[0])

    def importance(self, kind: str) -> np.ndarray:
        if kind not in IMPORTANCE_KINDS:
            raise InvalidInputError(f"importance must be one of {', '.join(IMPORTANCE_KINDS)}, not {kind!r}.")
        if kind == "fisher-matrix":
            if self.fisher_matrix is None:
                raise InvalidInputError(f"No Fisher matrix was measured for layer {self.name!r}.")
            return np.asarray(self.fisher_matrix, dtype=np.float64)
        return np.asarray(getattr(self, kind), dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "taylor": self.taylor.tolist(),
            "fisher": self.fisher.tolist(),
            "l1": self.l1.tolist(),
            "similarity": self.similarity.tolist(),
            "fisher_matrix": None if self.fisher_matrix is None else self.fisher_matrix.tolist(),
            "similarity_kind": self.similarity_kind,
            "n": self.n,
        }


def conv_layer_names(model: nn.Module, layers: Iterable[str] | None = None) -> list[str]:
    """The conv layers (``kind == "conv"``, groups = 1, not the model output)
    of ``model``, or the given ``layers`` after checking each one is such a layer."""
    units = {u.name: u for u in compressible_units(model)}
    # residual-joined convs are included: their filters are masked instead of removed
    candidates = [u.name for u in units.values() if u.kind == "conv" and u.reason != "produces the class scores"]
    if layers is None:
        if not candidates:
            raise InvalidInputError("The model has no ordinary Conv2d layer whose filters can be pruned.")
        return candidates
    if isinstance(layers, str):
        layers = [layers]
    chosen = list(dict.fromkeys(layers))
    if not chosen:
        raise InvalidInputError("Choose at least one conv layer to prune.")
    for name in chosen:
        unit = units.get(name)
        if unit is None or unit.kind == "linear":
            raise InvalidInputError(
                f"{name!r} is not a conv layer of this model; choose from {', '.join(candidates) or 'none'}."
            )
        if unit.kind != "conv":
            raise InvalidInputError(f"{name} is a {unit.kind}; only ordinary (groups=1) conv filters can be pruned.")
        if unit.out_channels < 2:
            raise InvalidInputError(f"{name} has a single filter; there is nothing to choose.")
    return chosen


class _ActivationMoments:
    """Running (C, C) second moments of a layer's channel activations, so that redundancy needs O(C^2) memory
    whatever the number of images and positions. Values are shifted by the first batch's channel means
    before they are summed, which keeps the Pearson correlation accurate when means dwarf the spread."""

    def __init__(self) -> None:
        self.shift: torch.Tensor | None = None
        self.gram: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, acts: torch.Tensor) -> None:
        """``acts``: (C, M) activations of M more (image, position) pairs."""
        x = acts.to(torch.float64)
        if self.shift is None:
            self.shift = x.mean(dim=1)
            self.gram = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64)
            self.total = torch.zeros(x.shape[0], dtype=torch.float64)
        x = x - self.shift[:, None]
        self.gram += x @ x.T
        self.total += x.sum(dim=1)
        self.count += x.shape[1]

    def similarity(self, kind: str) -> np.ndarray:
        """(C, C) |Pearson| or |cosine| between channels, diagonal 0, in [0, 1]."""
        assert self.gram is not None and self.shift is not None and self.total is not None
        mean = self.total / self.count  # of the shifted values
        if kind == "pearson":
            m = self.gram - self.count * torch.outer(mean, mean)
        else:  # raw products: undo the shift
            s = self.shift
            m = self.gram + torch.outer(s, self.total) + torch.outer(self.total, s) + self.count * torch.outer(s, s)
        norms = m.diagonal().clamp_min(0.0).sqrt()
        ok = norms > 1e-12 * max(float(norms.max()), 1e-300)
        inv = torch.where(ok, 1.0 / torch.where(ok, norms, torch.ones_like(norms)), torch.zeros_like(norms))
        sim = (m * inv[:, None] * inv[None, :]).abs().clamp(0.0, 1.0).numpy()
        np.fill_diagonal(sim, 0.0)
        return sim


def filter_statistics(
    model: nn.Module,
    calib: EvalData,
    layers: Iterable[str] | None = None,
    *,
    similarity: str = "pearson",
    batch_size: int = 256,
) -> dict[str, FilterStats]:
    """Taylor, Fisher and L1 importance and activation similarity of every
    filter of the chosen conv layers (default: all prunable ones), from one
    pass over ``calib`` with gradients. The model is not changed."""
    if not isinstance(model, nn.Module):
        raise InvalidInputError("The model must be a torch nn.Module.")
    if not isinstance(calib, EvalData) or len(calib) < 2:
        raise InvalidInputError("Calibration data must be an EvalData set with at least 2 images.")
    if not torch.isfinite(calib.images).all():
        raise InvalidInputError("The calibration images contain NaN or infinite values.")
    if similarity not in SIMILARITY_KINDS:
        raise InvalidInputError(f"similarity must be one of {', '.join(SIMILARITY_KINDS)}, not {similarity!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a whole number of at least 1, not {batch_size!r}.")
    names = conv_layer_names(model, layers)
    modules = {n: model.get_submodule(n) for n in names}
    # Pruning a filter zeroes the channel after every BatchNorm on its path too (removed or masked
    # alike), so the activation whose loss change the scores estimate is the last BatchNorm's output.
    from core.compress.filters import filter_plans

    plans = filter_plans(model)
    watched = {n: model.get_submodule(plans[n].batchnorms[-1]) if plans[n].batchnorms else modules[n] for n in names}
    per_sample: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    moments = {n: _ActivationMoments() for n in names}
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if name not in captured:  # first call per forward pass
                out.retain_grad()
                captured[name] = out

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in watched.items()]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(calib), batch_size):
            # the input requires grad so the graph exists even for frozen parameters
            x = calib.images[start : start + batch_size].clone().requires_grad_(True)
            y = calib.labels[start : start + batch_size]
            captured.clear()
            model.zero_grad(set_to_none=True)
            logits = model(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            F.cross_entropy(logits, y, reduction="sum").backward()
            for n in names:
                a = captured.get(n)
                if a is None:
                    raise InvalidInputError(f"Layer {n!r} is never called by the model's forward pass.")
                if a.grad is None:
                    raise InvalidInputError(f"Layer {n!r} does not influence the model's output.")
                ag = (a.detach() * a.grad).flatten(2).sum(dim=2)  # (B, C)
                per_sample[n].append(ag.to(torch.float64))
                moments[n].add(a.detach().transpose(0, 1).reshape(a.shape[1], -1))
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    stats = {}
    for n in names:
        ag = torch.cat(per_sample[n], dim=0)
        w = modules[n].weight.detach().to(torch.float64)
        stats[n] = FilterStats(
            name=n,
            taylor=ag.abs().mean(dim=0).numpy(),
            fisher=(ag**2).sum(dim=0).numpy(),
            fisher_matrix=(ag.T @ ag).numpy(),
            l1=w.abs().flatten(1).sum(dim=1).numpy(),
            similarity=moments[n].similarity(similarity),
            similarity_kind=similarity,
            n=len(calib),
        )
    return stats
