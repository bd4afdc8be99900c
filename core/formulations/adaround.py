"""F3 — rounding QUBO for post-training quantization (AdaRound-based, exact).

The problem
-----------
A Conv2d or Linear layer computes, for every calibration row ``x`` (a sample
for Linear, a sample and output position for Conv2d: the columns of
``torch.nn.functional.unfold``), ``y_j = W_j . x + b_j`` for output channel j.
With a per-output-channel scale ``s_j`` (min-max or MSE-optimal, see
:mod:`core.compress.quantize`) every weight is rounded *down or up* on the
grid ``s_j * {-q..q}``::

    W_hat_ji = s_j * (lower_ji + step_ji * v_ji),   v_ji in {0, 1}

with ``lower = floor(W/s)`` and ``step = 1`` (this is ``s (floor(W/s) + v)``
of DESIGN section 3), except where the grid ends:

* **clipping** (bits >= 2): ``lower = clip(floor(W/s), -q, q)`` and
  ``upper = clip(floor(W/s) + 1, -q, q)``; where the two coincide (the weight is
  at or beyond the grid edge, e.g. ``W = max|W|`` with min-max scales, or
  ``|W| > q s`` with the smaller MSE scales) the weight is *fixed* to that grid
  value, ``step = 0``, and it is not a QUBO variable. Round-to-nearest makes
  the same choice there, so clipping never favours either method.
* **1 bit**: the grid is ``{-s, +s}`` (no zero level, as in
  :func:`core.compress.quantize.quantize_with_scale`), so ``lower = -1`` and
  ``step = 2`` for every weight.
* an all-zero channel (``s = 0``) is fixed at zero.

With the residual ``a = W/s - lower`` (``r = W/s - floor(W/s)`` of DESIGN in the
unclipped case) the error of output j on row x is ``s_j (step*v_j - a_j) . x``,
so over calibration rows X (one per row) the squared pre-activation error is
*exactly*::

    E_j(v) = s_j^2 (step*v_j - a_j)^T G (step*v_j - a_j),      G = X^T X

a QUBO per output channel, independent of all other channels (no
approximation: this is the decomposition of the layer's squared output error).
Expanding with ``v^2 = v``: linear ``s^2 (step_i^2 G_ii - 2 step_i (G a)_i)``,
quadratic ``2 s^2 step_i step_k G_ik`` (i < k), constant ``s^2 a^T G a``. The
coefficients are built with numpy for all channels of a layer at once.

The bias column, precisely
--------------------------
DESIGN says "bias column appended, size f+1". We append the column of ones to
X, so ``G`` is (f+1) x (f+1). But **by default the bias stays in float**: its
rounding error is zero, so the bias row/column of G multiplies zero and drops
out of ``E_j`` entirely; the QUBO then has f variables (fewer where weights are
fixed by clipping). The bias column is still used: the relative error's
denominator ``||X W^T + b||^2`` is computed from the augmented G. With
``quantize_bias=True`` the bias is rounded on the channel's weight grid
(scale from the weights, bias clipped to the grid range) and becomes
variable f, so the QUBO has exactly f+1 variables as in DESIGN; the bias column
then couples the bias to every weight through ``G_{i,f} = sum_x x_i``.

Layers in order
---------------
Layers are quantized in definition order. With ``use_quantized_inputs=True``
(default) layer l's Gram matrix comes from the inputs it receives in the
network whose earlier layers are already rounded, so the QUBO minimises the
error layer l adds given what it actually receives; with ``False`` all Gram
matrices come from the float network.

Objective against the float network (``target="float_outputs"``)
----------------------------------------------------------------
Optionally (on every layer, or with ``"float_outputs_last"`` on the last one)
the target is the float network's pre-activation instead of the float layer on
the quantized inputs: ``E_j = ||X_q W_hat_j - X_f W_j||^2`` (bias in float, so it
cancels). With ``d = step*v - a`` and ``e_j = (X_q - X_f) W_j`` this is::

    E_j(v) = s^2 d^T G d + 2 s d^T (X_q^T e_j) + ||e_j||^2,     G = X_q^T X_q

still an exact QUBO per channel: an extra linear term from the cross-Gram
``X_q^T (X_q - X_f)`` and a constant ``W_j^T (X_q - X_f)^T (X_q - X_f) W_j``.
It lets a layer compensate errors propagated from earlier layers. Not the
default: on the validation split it did not raise accuracy (see
benchmarks/RESULTS.md, F3).

Fisher-weighted objective (``target="fisher"``)
-----------------------------------------------
Squared output error treats every output element alike, but at 1-2 bits the
errors are large and where they land decides the predictions. With
``target="fisher"`` each calibration row r of output channel j is weighted by
``w_rj``, the diagonal of the Fisher information of the network's predictions
with respect to that output (:mod:`core.formulations.output_fisher`; computed
on the network with earlier layers rounded and later ones float, no labels)::

    E_j(v) = s_j^2 d_j^T G_j d_j,      G_j = X^T diag(w_:j) X

still an exact QUBO per channel, of the same size, but with one Gram matrix per
output channel (``out x (f+1)^2`` numbers; layers needing more than
``MAX_FISHER_GRAM_BYTES`` together are refused). The weights are divided by their mean over the
layer, so energies stay in units of squared output error, and mixed with
``FISHER_DAMPING`` of the plain weights (1), which decides channels the
predictions do not depend on at all (dead ones). Building ``G_j`` for every
channel costs ``out`` times the plain Gram matrix, so beyond
``FISHER_MAX_ROWS`` calibration rows (samples x output positions) a seeded
random subset is summed and scaled up to the number of rows. A layer called
more than once per forward pass is refused (its calls' outputs feed each other,
which the per-call diagonal does not capture). Up to that normalisation the
energy is the diagonal second-order estimate of the loss increase the rounding
causes (off-diagonal Fisher terms between outputs are left out). See
benchmarks/RESULTS.md, F3: at 1 bit it keeps accuracy at or above
round-to-nearest's where the plain objective does not; from 2 bits up the two
are alike.

Safeguard (``safeguard=True``, off by default): after a layer is rounded, the
whole layer is set back to round-to-nearest if that gives a lower calibration
cross-entropy of the network (later layers still float). It is a guard, not
part of the QUBO; the report says per layer where it kept RTN.

Solving
-------
All channel QUBOs of a layer are relabelled into disjoint variable ranges and
combined into one BQM (split into several when they would exceed
``max_batch_interactions``), sampled once by any dimod sampler, and split back.
Because the channels are independent, each channel then takes its best read
(best-of-``num_reads`` per channel, not per combined sample). With
``polish=True`` (default) a vectorised steepest-descent single-flip search
(sharing G across channels: no per-channel f x f matrices) runs from that
read and, separately, from the round-to-nearest rounding, and each channel
keeps the lower energy. Finally any channel where the result is still worse
than RTN on the QUBO objective falls back to RTN. The report counts the
channels where descent improved the sampler's read, where descent from RTN
won, and where RTN was kept, so the sampler's own contribution stays visible. Channel QUBOs
in a combined BQM are normalised by ``s_j^2 * mean(diag G)``, which does not
change their minimisers but gives every channel the same energy scale, so one
annealing schedule fits all of them.

The baseline is round-to-nearest (:func:`core.compress.quantize.quantize_with_scale`)
at the same scales.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import dimod
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.compress.quantize import (
    SCALE_METHODS,
    channel_scales,
    levels,
    quantize_with_scale,
)
from core.compress.rounding import apply_rounding
from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.evaluate.metrics import Quality, accuracy_and_loss
from core.formulations.base import Decision, Formulation
from core.formulations.output_fisher import output_fisher
from core.models.units import COMPRESSIBLE
from core.solvers import sample_with

METHOD = "adaround"
TARGETS = ("layer", "float_outputs", "float_outputs_last", "fisher")
#: share of plain (unweighted) rows mixed into the Fisher weights (see the module doc)
FISHER_DAMPING = 1e-3
#: largest per-channel Gram matrices ``target="fisher"`` keeps for all layers of a run together (float64;
#: building one layer's briefly takes about twice its share)
MAX_FISHER_GRAM_BYTES = 1 << 30
#: calibration rows the Fisher-weighted Gram matrices sum (a seeded random subset beyond, scaled up): their
#: cost is out x rows x (f+1)^2, out times the plain Gram matrix's (digits-cnn's conv2 has 32,768, all used)
FISHER_MAX_ROWS = 65_536
MAX_BITS = 16
#: weights per output channel above which a layer is refused: one dense channel QUBO is built, sampled and
#: copied at a time, about 225 bytes per coupler at peak (measured: 2.4 GB above the baseline for 4,608), plus the
#: (f+1)^2 float64 Gram matrix. 4,608 is the model zoo's largest (resnet18's 3x3 convs on 512 channels).
MAX_WEIGHTS_PER_CHANNEL = 4608
PEAK_BYTES_PER_COUPLER = 225
Progress = Callable[[float, str], None]
SamplerLike = dimod.Sampler | Callable[..., dimod.SampleSet]

__all__ = [
    "AdaroundResult",
    "LayerProblem",
    "LayerReport",
    "channel_formulation",
    "channel_formulation_of",
    "fisher_gram_bytes",
    "input_matrix",
    "layer_errors",
    "layer_inputs",
    "layer_problem",
    "quantize_model_adaround",
    "rtn_quantize_model",
]


# --------------------------------------------------------------------------- validation


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise InvalidInputError(f"bits must be a whole number from 1 to {MAX_BITS}, not {bits!r}.")
    return int(bits)


def _check_scale(scale: Any) -> str:
    if scale not in SCALE_METHODS:
        raise InvalidInputError(f"scale must be one of {', '.join(SCALE_METHODS)}, not {scale!r}.")
    return str(scale)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise InvalidInputError(f"{name} must be a whole number of at least {minimum}, not {value!r}.")
    return int(value)


def _check_layer(layer: Any, name: str = "layer") -> nn.Conv2d | nn.Linear:
    if not isinstance(layer, COMPRESSIBLE):
        raise InvalidInputError(f"{name} must be a Conv2d or Linear layer, not {type(layer).__name__}.")
    if not torch.isfinite(layer.weight).all() or (layer.bias is not None and not torch.isfinite(layer.bias).all()):
        raise InvalidInputError(f"Layer {name} has NaN or infinite weights; it cannot be quantized.")
    return layer


def _check_qubo_size(layer: nn.Conv2d | nn.Linear, name: str) -> None:
    f = int(layer.weight[0].numel())
    if f > MAX_WEIGHTS_PER_CHANNEL:
        gib = (8 * (f + 1) ** 2 + PEAK_BYTES_PER_COUPLER * f * (f - 1) // 2) / 2**30
        raise InvalidInputError(
            f"Layer {name} has {f:,} weights per output channel; its rounding QUBOs (one dense QUBO of that size per "
            f"channel, plus the Gram matrix) would need about {gib:.0f} GB; this tool takes at most "
            f"{MAX_WEIGHTS_PER_CHANNEL:,} weights per channel. Quantize the other layers (--layers, or Layers to quantize)."
        )


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise InvalidInputError("The model must be a torch nn.Module.")
    return model


def _check_calib(calib: Any) -> EvalData:
    if not isinstance(calib, EvalData):
        raise InvalidInputError("Calibration data must be an EvalData set.")
    if len(calib) < 1:
        raise InvalidInputError("The calibration set is empty.")
    if not torch.isfinite(calib.images).all():
        raise InvalidInputError("The calibration images contain NaN or infinite values.")
    return calib


# --------------------------------------------------------------------------- inputs and Gram


def input_matrix(layer: nn.Conv2d | nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The layer's calibration rows: ``(rows, in_features)`` for Linear (all
    leading dims flattened), ``(N * L, C * kh * kw)`` for Conv2d via
    :func:`torch.nn.functional.unfold` (L output positions), such that the
    layer output is ``rows @ W.reshape(out, -1).T + b`` (per group for grouped
    convolutions: group g uses columns ``g*fg:(g+1)*fg``)."""
    _check_layer(layer)
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError("Layer inputs must be a tensor.")
    if isinstance(layer, nn.Linear):
        if x.dim() < 1 or x.shape[-1] != layer.in_features:
            raise InvalidInputError(
                f"Inputs of shape {tuple(x.shape)} do not fit a Linear layer with {layer.in_features} inputs."
            )
        return x.reshape(-1, layer.in_features)
    if x.dim() != 4 or x.shape[1] != layer.in_channels:
        raise InvalidInputError(
            f"Inputs of shape {tuple(x.shape)} do not fit a Conv2d layer with {layer.in_channels} input channels "
            "(expected N x C x H x W)."
        )
    padding: Any = layer.padding
    if isinstance(padding, str) or layer.padding_mode != "zeros":
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        x = F.pad(x, layer._reversed_padding_repeated_twice, mode=mode)
        padding = 0
    cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=padding, stride=layer.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _groups(layer: nn.Conv2d | nn.Linear) -> int:
    return 1 if isinstance(layer, nn.Linear) else int(layer.groups)


def _augmented_groups(rows: torch.Tensor, groups: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(g, ``[X_g 1]``) for each group g of the calibration rows ``X`` (float64)."""
    fg = rows.shape[1] // groups
    ones = torch.ones(rows.shape[0], 1, dtype=torch.float64)
    for g in range(groups):
        yield g, torch.cat([rows[:, g * fg : (g + 1) * fg], ones], dim=1)


def _gram_update(layer: nn.Conv2d | nn.Linear, x: torch.Tensor, acc: np.ndarray) -> int:
    """Add ``[X 1]^T [X 1]`` of each group to ``acc`` (groups, f+1, f+1); return rows."""
    rows = input_matrix(layer, x.detach()).to(torch.float64)
    for g, xa in _augmented_groups(rows, acc.shape[0]):
        acc[g] += (xa.T @ xa).numpy()
    return int(rows.shape[0])


def _collect_grams(
    model: nn.Module, names: list[str], images: torch.Tensor, batch_size: int
) -> dict[str, np.ndarray]:
    """Augmented Gram matrices (groups, f+1, f+1) of the named layers' inputs."""
    modules = {n: model.get_submodule(n) for n in names}
    acc: dict[str, np.ndarray] = {}
    for n, m in modules.items():
        fg = m.weight[0].numel()
        acc[n] = np.zeros((_groups(m), fg + 1, fg + 1))
    handles = []
    for n, m in modules.items():
        def hook(mod: nn.Module, inputs: tuple, _out: Any, n: str = n) -> None:
            _gram_update(mod, inputs[0], acc[n])  # type: ignore[arg-type]

        handles.append(m.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                model(images[start : start + batch_size])
    finally:
        for h in handles:
            h.remove()
    return acc


def fisher_gram_bytes(layer: nn.Conv2d | nn.Linear) -> int:
    """Bytes of the per-channel Gram matrices ``target="fisher"`` needs for ``layer``."""
    fg = layer.weight[0].numel()
    return int(layer.weight.shape[0]) * (fg + 1) ** 2 * 8


def _check_fisher_size(layers: list[tuple[str, nn.Conv2d | nn.Linear]]) -> None:
    """Refuse layers whose per-channel Gram matrices would together exceed ``MAX_FISHER_GRAM_BYTES``
    (a run keeps every layer's until it ends)."""
    sizes = [(fisher_gram_bytes(layer), name) for name, layer in layers]
    need = sum(b for b, _ in sizes)
    if need > MAX_FISHER_GRAM_BYTES:
        largest, name = max(sizes)
        which = f"layer {name}" if len(sizes) == 1 else f"the {len(sizes)} layers (the largest, {name}, {largest / 2**30:.1f} GiB)"
        raise InvalidInputError(
            f"The Fisher objective keeps one Gram matrix per output channel: {which} would need "
            f"{need / 2**30:.1f} GiB (at most {MAX_FISHER_GRAM_BYTES / 2**30:.0f} GiB). Choose fewer or smaller "
            "layers, or use the layer objective."
        )


def _collect_fisher_grams(model: nn.Module, name: str, images: torch.Tensor, batch_size: int) -> np.ndarray:
    """Per-output-channel Fisher-weighted augmented Gram matrices (out, f+1, f+1) of layer ``name``'s
    inputs in ``model`` (see the module doc: weights normalised to mean 1, damped by ``FISHER_DAMPING``).
    Beyond ``FISHER_MAX_ROWS`` rows a seeded random subset is summed and scaled up to all rows."""
    layer = model.get_submodule(name)
    _check_layer(layer, name)
    _check_fisher_size([(name, layer)])
    out = int(layer.weight.shape[0])
    fg = layer.weight[0].numel()
    groups = _groups(layer)
    weighted = np.zeros((out, fg + 1, fg + 1))
    plain = np.zeros((groups, fg + 1, fg + 1))
    total_weight = 0.0
    seen = kept = 0
    keep_share = 0.0
    draw = torch.Generator().manual_seed(0)
    for x, fisher in output_fisher(model, name, images, batch_size=batch_size):
        rows = input_matrix(layer, x).to(torch.float64)
        # (rows, out) in input_matrix's row order: samples, then output positions
        w = (fisher.movedim(1, -1) if isinstance(layer, nn.Conv2d) else fisher).reshape(-1, out).to(torch.float64)
        if not keep_share:  # rows per image times images, from the first batch
            total_rows = rows.shape[0] / max(x.shape[0], 1) * images.shape[0]
            keep_share = min(1.0, FISHER_MAX_ROWS / max(total_rows, 1.0))
        seen += rows.shape[0]
        if keep_share < 1.0:
            keep = torch.rand(rows.shape[0], generator=draw) < keep_share
            rows, w = rows[keep], w[keep]
        kept += rows.shape[0]
        for g, xa in _augmented_groups(rows, groups):
            plain[g] += (xa.T @ xa).numpy()
            for j in range(g * out // groups, (g + 1) * out // groups):
                weighted[j] += ((xa * w[:, j : j + 1]).T @ xa).numpy()
        total_weight += float(w.sum())
    if kept:  # sums over the kept rows, scaled to all rows
        plain *= seen / kept
        weighted *= seen / kept
    mean = total_weight / (kept * out) if kept else 0.0
    group = np.arange(out) // (out // groups)
    if mean <= 0.0:  # the predictions depend on no output of this layer: plain weights
        return np.ascontiguousarray(plain[group])
    weighted *= (1.0 - FISHER_DAMPING) / mean  # in place: these matrices are the large part
    for j in range(out):
        weighted[j] += FISHER_DAMPING * plain[group[j]]
    return weighted


def _cross_update(
    layer: nn.Conv2d | nn.Linear, xq: torch.Tensor, xf: torch.Tensor, acc: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """Add ``[X_q 1]^T [X_q 1]``, ``[X_q 1]^T (X_q - X_f)`` (bias column of the
    difference is zero) and ``(X_q - X_f)^T (X_q - X_f)`` of each group to ``acc``."""
    rq = input_matrix(layer, xq.detach()).to(torch.float64)
    rf = input_matrix(layer, xf.detach()).to(torch.float64)
    gram, cross, diff = acc
    fg = rq.shape[1] // gram.shape[0]
    for g, xa in _augmented_groups(rq, gram.shape[0]):
        dx = rq[:, g * fg : (g + 1) * fg] - rf[:, g * fg : (g + 1) * fg]
        gram[g] += (xa.T @ xa).numpy()
        cross[g, :, :fg] += (xa.T @ dx).numpy()
        diff[g] += (dx.T @ dx).numpy()


def _collect_cross(
    qmodel: nn.Module, reference: nn.Module, name: str, images: torch.Tensor, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gram_aug, cross_aug, diff_gram) of layer ``name``: its inputs X_q in
    ``qmodel`` against X_f in ``reference``, on the same images."""
    mq = qmodel.get_submodule(name)
    fg = mq.weight[0].numel()
    groups = _groups(mq)
    acc = (np.zeros((groups, fg + 1, fg + 1)), np.zeros((groups, fg + 1, fg + 1)), np.zeros((groups, fg, fg)))
    qmodel.eval()
    reference.eval()
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            xq = layer_inputs(qmodel, name, x, batch_size=x.shape[0] or 1)
            xf = layer_inputs(reference, name, x, batch_size=x.shape[0] or 1)
            if xq.shape != xf.shape:
                raise InvalidInputError(f"Layer {name!r} receives inputs of different shapes in the two models.")
            _cross_update(mq, xq, xf, acc)
    return acc


def layer_inputs(model: nn.Module, name: str, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """The inputs layer ``name`` receives when ``model`` runs on ``images``
    (concatenated over batches, and over every call of a layer used several
    times per forward pass)."""
    _check_model(model)
    try:
        layer = model.get_submodule(name)
    except AttributeError as exc:
        raise InvalidInputError(f"The model has no layer named {name!r}.") from exc
    _check_layer(layer, name)
    seen: list[torch.Tensor] = []

    def hook(_m: nn.Module, inputs: tuple, _out: Any) -> None:
        seen.append(inputs[0].detach())

    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                model(images[start : start + batch_size])
    finally:
        handle.remove()
    if not seen:
        raise InvalidInputError(f"Layer {name!r} is never called by the model's forward pass.")
    return torch.cat(seen, dim=0)


# --------------------------------------------------------------------------- the QUBO


@dataclass
class LayerProblem:
    """All channel QUBOs of one layer, as arrays (n = f, or f+1 with the bias).

    Channel j's energy is ``scale[j]^2 * d^T gram[group[j]] d`` with
    ``d = step[j] * v - resid[j]``; W_hat = scale * (lower + step * v).
    """

    name: str
    bits: int
    scale_method: str
    quantize_bias: bool
    f: int  # weights per output channel
    scale: np.ndarray  # (out,)
    lower: np.ndarray  # (out, n) integer grid level at v = 0
    step: np.ndarray  # (out, n) 0 (fixed), 1, or 2 (1 bit)
    resid: np.ndarray  # (out, n) W/s - lower
    gram: np.ndarray  # (groups, n, n)
    gram_aug: np.ndarray  # (groups, f+1, f+1), bias column last
    group: np.ndarray  # (out,) group index of each channel
    weight2d: np.ndarray  # (out, f) float weights
    bias: np.ndarray | None  # (out,) float bias
    # target="float_outputs": energy += s^2 * 2 d.cross_lin[j] + cross_const[j] (see module doc)
    cross_lin: np.ndarray | None = None  # (out, n) X_q^T (X_q - X_f) W_j / s_j
    cross_const: np.ndarray | None = None  # (out,) ||(X_q - X_f) W_j||^2

    @property
    def out_channels(self) -> int:
        return int(self.scale.shape[0])

    @property
    def n(self) -> int:
        return int(self.lower.shape[1])

    def free(self, j: int) -> np.ndarray:
        return np.flatnonzero(self.step[j] > 0)

    def energies(self, v: np.ndarray, channels: np.ndarray | None = None) -> np.ndarray:
        """Exact squared errors for assignments ``v`` of shape (..., m, n) of the
        channels ``channels`` (all by default)."""
        ch = np.arange(self.out_channels) if channels is None else np.asarray(channels)
        d = self.step[ch] * v - self.resid[ch]
        out = np.empty(d.shape[:-1])
        for g in np.unique(self.group[ch]):
            sel = self.group[ch] == g
            dg = d[..., sel, :]
            out[..., sel] = np.einsum("...i,...i->...", dg @ self.gram[g], dg)
        if self.cross_lin is not None and self.cross_const is not None:
            out = out + 2.0 * np.einsum("...i,...i->...", d, np.broadcast_to(self.cross_lin[ch], d.shape))
            return out * self.scale[ch] ** 2 + self.cross_const[ch]
        return out * self.scale[ch] ** 2

    def dequantize(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(W_hat (out, f), bias_hat (out,) or None when the bias stays float)."""
        q = self.scale[:, None] * (self.lower + self.step * v)
        if self.quantize_bias:
            return q[:, : self.f], q[:, self.f]
        return q, None

    def assignment_of(self, w_hat: np.ndarray, b_hat: np.ndarray | None = None) -> np.ndarray:
        """The v that produces ``w_hat`` (which must lie on {lower, lower+step})."""
        vals = w_hat if not self.quantize_bias else np.concatenate([w_hat, b_hat[:, None]], axis=1)  # type: ignore[index]
        safe = np.where(self.scale > 0, self.scale, 1.0)[:, None]
        lev = np.rint(vals / safe)
        v = np.where(self.step > 0, (lev - self.lower) / np.where(self.step > 0, self.step, 1), 0.0)
        return np.clip(np.rint(v), 0, 1)

    def channel_qubo(self, j: int, *, normalise: bool = False) -> tuple[np.ndarray, np.ndarray, tuple, float]:
        """(free indices, linear, (rows, cols, quad) over positions in ``free``,
        offset) of channel j. ``normalise`` divides by ``s^2 mean(diag G)``."""
        idx = self.free(j)
        g = self.gram[self.group[j]]
        step = self.step[j, idx]
        a = self.resid[j]
        factor = self.scale[j] ** 2
        if normalise:
            c = float(np.mean(np.diag(g)))
            factor = 1.0 / (c if c > 0 else 1.0)
        ga = g[idx] @ a  # (G a)_i for free i
        linear = factor * (step**2 * np.diag(g)[idx] - 2.0 * step * ga)
        rows, cols = np.triu_indices(idx.size, 1)
        quad = factor * 2.0 * step[rows] * step[cols] * g[idx[rows], idx[cols]]
        offset = factor * float(a @ g @ a)
        if self.cross_lin is not None and self.cross_const is not None:
            u = self.cross_lin[j]
            linear = linear + factor * 2.0 * step * u[idx]
            offset -= factor * 2.0 * float(a @ u)
            if not normalise:
                offset += float(self.cross_const[j])
        return idx, linear, (rows, cols, quad), offset


def _scales(weight: torch.Tensor, bits: int, method: str) -> np.ndarray:
    return channel_scales(weight.detach().float(), bits, method).double().numpy()


def _rounding_grid(vals: np.ndarray, s: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, step, resid) of every value on its channel's grid (see the module doc)."""
    positive = (s > 0)[:, None]
    u = vals / np.where(positive, s[:, None], 1.0)
    if bits == 1:
        lower = np.full_like(u, -1.0)
        step = np.full_like(u, 2.0)
    else:
        q = levels(bits)
        fl = np.floor(u)
        lower = np.clip(fl, -q, q)
        step = np.clip(fl + 1, -q, q) - lower
    lower = np.where(positive, lower, 0.0)
    step = np.where(positive, step, 0.0)
    return lower, step, np.where(positive, u, 0.0) - lower


def _max_free_variables(layer: nn.Conv2d | nn.Linear, bits: int, scale: str, quantize_bias: bool) -> int:
    """The most QUBO variables any output channel of ``layer`` will have (no calibration data needed)."""
    w = layer.weight.detach().to(torch.float64).reshape(layer.weight.shape[0], -1).numpy()
    if quantize_bias and layer.bias is not None:
        w = np.concatenate([w, layer.bias.detach().to(torch.float64).numpy()[:, None]], axis=1)
    _, step, _ = _rounding_grid(w, _scales(layer.weight, bits, scale), bits)
    return int((step > 0).sum(axis=1).max(initial=0))


def layer_problem(
    layer: nn.Conv2d | nn.Linear,
    gram_aug: np.ndarray,
    bits: int,
    *,
    scale: str = "minmax",
    quantize_bias: bool = False,
    scales: np.ndarray | None = None,
    name: str = "layer",
    cross_aug: np.ndarray | None = None,
    diff_gram: np.ndarray | None = None,
) -> LayerProblem:
    """The channel QUBOs of ``layer`` given its augmented Gram matrices
    ``(groups, f+1, f+1)`` (or ``(f+1, f+1)`` for groups = 1), or one per
    output channel ``(out, f+1, f+1)`` (a row-weighted objective such as
    ``target="fisher"``).

    With ``cross_aug = [X_q 1]^T [X_q - X_f 0]`` (groups, f+1, f+1) and
    ``diff_gram = (X_q - X_f)^T (X_q - X_f)`` (groups, f, f) the objective is the
    error against the float network's pre-activations (``target="float_outputs"``)."""
    _check_layer(layer, name)
    bits = _check_bits(bits)
    scale = _check_scale(scale)
    if quantize_bias and layer.bias is None:
        raise InvalidInputError(f"Layer {name} has no bias to quantize.")
    w = layer.weight.detach().to(torch.float64).reshape(layer.weight.shape[0], -1).numpy()
    out, f = w.shape
    groups = _groups(layer)
    gram_aug = np.asarray(gram_aug, dtype=np.float64)
    if gram_aug.ndim == 2:
        gram_aug = gram_aug[None]
    per_channel = gram_aug.shape == (out, f + 1, f + 1)
    if gram_aug.shape != (groups, f + 1, f + 1) and not per_channel:
        raise InvalidInputError(
            f"The Gram matrix of {name} must be {groups} x {f + 1} x {f + 1}, or {out} x {f + 1} x {f + 1} "
            "(one per output channel)."
        )
    if not np.isfinite(gram_aug).all():
        raise InvalidInputError(f"The calibration inputs of {name} contain NaN or infinite values.")
    if scales is None:
        s = _scales(layer.weight, bits, scale)
    else:
        s = np.asarray(scales, dtype=np.float64).reshape(-1)
        if s.shape != (out,) or not np.isfinite(s).all() or (s < 0).any():
            raise InvalidInputError(f"{name} needs {out} finite, non-negative scales.")
    b = None if layer.bias is None else layer.bias.detach().to(torch.float64).numpy()
    vals = np.concatenate([w, b[:, None]], axis=1) if quantize_bias else w  # type: ignore[index]
    lower, step, resid = _rounding_grid(vals, s, bits)
    positive = (s > 0)[:, None]
    n = vals.shape[1]
    gram = gram_aug if quantize_bias else gram_aug[:, :f, :f]
    group = np.arange(out) if per_channel else np.arange(out) // (out // groups)
    cross_lin = cross_const = None
    if (cross_aug is None) != (diff_gram is None):
        raise InvalidInputError("cross_aug and diff_gram must be given together.")
    if cross_aug is not None and per_channel and groups != out:
        raise InvalidInputError("The float-outputs objective takes one Gram matrix per group, not per channel.")
    if cross_aug is not None and diff_gram is not None:
        cross_aug = np.asarray(cross_aug, dtype=np.float64).reshape(groups, f + 1, f + 1)
        diff_gram = np.asarray(diff_gram, dtype=np.float64).reshape(groups, f, f)
        if not (np.isfinite(cross_aug).all() and np.isfinite(diff_gram).all()):
            raise InvalidInputError(f"The calibration inputs of {name} contain NaN or infinite values.")
        # h_j = [X_q 1]^T (X_q - X_f) W_j, restricted to the n QUBO positions
        h = np.einsum("jnf,jf->jn", cross_aug[group][:, :n, :f], w)
        cross_lin = np.where(positive, h / np.where(positive, s[:, None], 1.0), 0.0)
        cross_const = np.einsum("jf,jfk,jk->j", w, diff_gram[group], w)
    return LayerProblem(
        name=name,
        bits=bits,
        scale_method=scale,
        quantize_bias=quantize_bias,
        f=f,
        scale=s,
        lower=lower,
        step=step,
        resid=resid,
        gram=np.ascontiguousarray(gram[:, :n, :n]),
        gram_aug=gram_aug,
        group=group,
        weight2d=w,
        bias=b,
        cross_lin=cross_lin,
        cross_const=cross_const,
    )


def _rtn_assignment(problem: LayerProblem, layer: nn.Conv2d | nn.Linear) -> np.ndarray:
    s = torch.from_numpy(problem.scale).float()
    w_rtn = quantize_with_scale(layer.weight.detach().float(), s, problem.bits)
    w2 = w_rtn.reshape(problem.out_channels, -1).double().numpy()
    b2 = None
    if problem.quantize_bias:
        b2 = _rtn_bias(layer, s, problem.bits).double().numpy()
    return problem.assignment_of(w2, b2)


def _rtn_bias(layer: nn.Conv2d | nn.Linear, s: torch.Tensor, bits: int) -> torch.Tensor:
    assert layer.bias is not None
    return quantize_with_scale(layer.bias.detach().float()[:, None], s, bits)[:, 0]


def channel_formulation(
    layer: nn.Conv2d | nn.Linear,
    X: torch.Tensor,
    j: int,
    bits: int,
    *,
    scale: str = "minmax",
    quantize_bias: bool = False,
    scales: np.ndarray | None = None,
    name: str = "layer",
    float_inputs: torch.Tensor | None = None,
) -> Formulation:
    """The rounding QUBO of output channel ``j`` of ``layer`` on inputs ``X``.

    With ``float_inputs`` (what the layer receives in the float network, same
    shape as ``X``) the objective is the error against the float network's
    pre-activation, ``||layer_hat(X) - layer(float_inputs)||^2`` for channel j
    (``target="float_outputs"``); otherwise against ``layer(X)``.

    ``X`` is what the layer receives (N x in for Linear, N x C x H x W for
    Conv2d). Variables are the weight positions ``i`` (index into
    ``W[j].flatten()``) that are not fixed by clipping, plus ``f`` for the bias
    with ``quantize_bias``. ``bqm.energy(sample)`` is exactly the squared
    pre-activation error of channel j summed over all calibration rows (the
    constant ``s^2 a^T G a`` is the BQM offset, also in ``tables["constant"]``).
    ``tables`` holds the Gram matrix, residuals, grid levels, scale, the fixed
    positions and the round-to-nearest sample and energy for comparison.
    """
    _check_layer(layer, name)
    _check_qubo_size(layer, name)
    out = layer.weight.shape[0]
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= int(j) < out:
        raise InvalidInputError(f"Output channel must be from 0 to {out - 1}, not {j!r}.")
    j = int(j)
    rows = input_matrix(layer, X)
    if rows.shape[0] < 1:
        raise InvalidInputError("At least one calibration input is needed.")
    if not torch.isfinite(rows).all():
        raise InvalidInputError("The calibration inputs contain NaN or infinite values.")
    fg = layer.weight[0].numel()
    if float_inputs is None:
        acc = np.zeros((_groups(layer), fg + 1, fg + 1))
        _gram_update(layer, X, acc)
        problem = layer_problem(
            layer, acc, bits, scale=scale, quantize_bias=quantize_bias, scales=scales, name=name
        )
    else:
        if not isinstance(float_inputs, torch.Tensor) or float_inputs.shape != X.shape:
            raise InvalidInputError("float_inputs must be a tensor of the same shape as X.")
        if not torch.isfinite(float_inputs).all():
            raise InvalidInputError("The float inputs contain NaN or infinite values.")
        groups = _groups(layer)
        cacc = (np.zeros((groups, fg + 1, fg + 1)), np.zeros((groups, fg + 1, fg + 1)), np.zeros((groups, fg, fg)))
        _cross_update(layer, X, float_inputs, cacc)
        problem = layer_problem(
            layer,
            cacc[0],
            bits,
            scale=scale,
            quantize_bias=quantize_bias,
            scales=scales,
            name=name,
            cross_aug=cacc[1],
            diff_gram=cacc[2],
        )
    target = "layer" if float_inputs is None else "float_outputs"
    return channel_formulation_of(problem, layer, j, rows=int(rows.shape[0]), target=target)


def channel_formulation_of(
    problem: LayerProblem, layer: nn.Conv2d | nn.Linear, j: int, *, rows: int, target: str = "layer"
) -> Formulation:
    """Output channel ``j``'s QUBO of an already built ``problem`` (of ``layer``, on ``rows`` calibration
    rows, with objective ``target``) as a :class:`Formulation`; see :func:`channel_formulation`."""
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= int(j) < problem.out_channels:
        raise InvalidInputError(f"Output channel must be from 0 to {problem.out_channels - 1}, not {j!r}.")
    j = int(j)
    name, quantize_bias = problem.name, problem.quantize_bias
    idx, linear, (r, c, quad), offset = problem.channel_qubo(j)
    bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(
        linear, (r, c, quad), offset, dimod.BINARY, variable_order=[int(i) for i in idx]
    )
    v_rtn = _rtn_assignment(problem, layer)[j]
    free = [int(i) for i in idx]
    f = problem.f

    def decoder(sample: Mapping[Any, int]) -> Decision:
        missing = [i for i in free if i not in sample]
        if missing:
            raise InvalidInputError(f"The sample has no value for weight position(s) {missing[:5]}.")
        v = np.zeros(problem.n)
        v[free] = [float(sample[i]) for i in free]
        lev = problem.lower[j] + problem.step[j] * v
        vals = problem.scale[j] * lev
        err = float(problem.energies(v[None], np.array([j]))[0])
        details = {"weights": vals[:f].tolist(), "squared_error": err, "v": v.astype(int).tolist()}
        if quantize_bias:
            details["bias"] = float(vals[f])
        return Decision(
            choices={f"{name}[{j}]": lev.astype(int).tolist()}, feasible=True, details=details
        )

    rtn_energy = float(problem.energies(v_rtn[None], np.array([j]))[0])
    return Formulation(
        method=METHOD,
        bqm=bqm,
        decoder=decoder,
        tables={
            "gram": problem.gram[problem.group[j]],
            "residual": problem.resid[j],
            "lower": problem.lower[j],
            "step": problem.step[j],
            "scale": float(problem.scale[j]),
            "free": free,
            "fixed": [int(i) for i in np.flatnonzero(problem.step[j] == 0)],
            "constant": offset,
            "rtn_sample": {i: int(v_rtn[i]) for i in free},
            "rtn_energy": rtn_energy,
            "weights": problem.weight2d[j],
        },
        params={
            "layer": name,
            "channel": j,
            "bits": problem.bits,
            "scale": problem.scale_method,
            "quantize_bias": quantize_bias,
            "f": f,
            "qubo_size": problem.n,
            "rows": rows,
            "target": target,
        },
    )


# --------------------------------------------------------------------------- solving


def _descend(problem: LayerProblem, v: np.ndarray, channels: np.ndarray, max_sweeps: int = 50) -> np.ndarray:
    """Steepest-descent single flips for channels (rows of ``v``), vectorised
    with the shared Gram matrix of each group; each flip strictly lowers E_j."""
    v = v.copy()
    for g in np.unique(problem.group[channels]):
        sel = np.flatnonzero(problem.group[channels] == g)
        ch = channels[sel]
        G = problem.gram[g]
        diag = np.diag(G)
        step = problem.step[ch]
        vv = v[sel]
        d = step * vv - problem.resid[ch]
        h = d @ G
        if problem.cross_lin is not None:
            h = h + problem.cross_lin[ch]  # gradient of the extra linear term 2 d.u
        energy = np.einsum("ij,ij->i", h, d)
        tol = 1e-12 * (np.abs(energy) + diag.max(initial=0.0) + 1e-300)
        for _ in range(max_sweeps * max(problem.n, 1)):
            delta = step * (1.0 - 2.0 * vv)
            gain = 2.0 * delta * h + delta**2 * diag
            best = np.argmin(gain, axis=1)
            rows = np.flatnonzero(gain[np.arange(len(ch)), best] < -tol)
            if rows.size == 0:
                break
            cols = best[rows]
            dl = delta[rows, cols]
            vv[rows, cols] = 1.0 - vv[rows, cols]
            h[rows] += dl[:, None] * G[cols]
        v[sel] = vv
    return v


def _default_beta_range(linear: np.ndarray, rows: np.ndarray, cols: np.ndarray, quad: np.ndarray) -> list[float]:
    """dwave-samplers' default simulated-annealing beta range, vectorised.

    Same formula as ``dwave.samplers.sa.sampler._default_ising_beta_range``
    (hot: every flip accepted with probability >= 1/2; cold: excitation rate
    0.01 from the smallest bias per spin) on the Ising form of the QUBO; the
    original loops over every coupling in Python, which takes seconds for the
    million couplings of a dense 512-input layer.
    """
    n = linear.size
    J = np.abs(quad) / 4.0
    h = linear / 2.0
    np.add.at(h, rows, quad / 4.0)
    np.add.at(h, cols, quad / 4.0)
    h = np.abs(h)
    total = h.copy()
    np.add.at(total, rows, J)
    np.add.at(total, cols, J)
    smallest = np.where(h != 0, h, np.inf)
    nz = J != 0
    np.minimum.at(smallest, rows[nz], J[nz])
    np.minimum.at(smallest, cols[nz], J[nz])
    finite = smallest[np.isfinite(smallest)]
    if n == 0 or finite.size == 0:
        return [0.1, 1.0]
    max_field = float(total.max())
    hot = 1.0 if max_field == 0 else float(np.log(2.0) / (2.0 * max_field))
    min_field = float(finite.min())
    count = int(np.sum(finite == min_field))
    cold = float(np.log(count / 0.01) / (2.0 * min_field))
    return [hot, cold]


def _anneals_as_given(sampler: SamplerLike, kwargs: Mapping[str, Any]) -> bool:
    """Whether to pass the vectorised default ``beta_range`` (it replaces dwave-samplers' Python loop): the
    sampler is simulated annealing on the problem as given (also behind a
    :class:`core.methods.common.RegistrySampler`; not a QPU-like sampler, whose parameters act on the embedded
    problem) and neither ``kwargs`` nor the sampler's own ``params`` set a range or a custom schedule."""
    from core.solvers.qpu import qpu_topology

    chosen = {**(getattr(sampler, "params", None) or {}), **kwargs}
    if "beta_range" in chosen or chosen.get("beta_schedule_type", "geometric") == "custom":
        return False
    if "beta_range" not in (getattr(sampler, "parameters", None) or {}):
        return False
    return getattr(sampler, "max_dense_variables", None) is None and qpu_topology(sampler) is None


def _check_fits(name: str, variables: int, max_batch_variables: int | None) -> None:
    if max_batch_variables is not None and variables > max_batch_variables:
        raise InvalidInputError(
            f"Layer {name} has output channels with {variables} rounding variables, each a fully connected QUBO; "
            f"this sampler's qubit graph holds fully connected problems of at most {max_batch_variables} "
            "variables. Quantize fewer layers (the others stay float), or use a classical sampler such as sa "
            "or tabu, or the leap-hybrid solver."
        )


@dataclass
class _LayerSolution:
    v: np.ndarray
    energy: np.ndarray
    rtn_energy: np.ndarray
    polished: int  # channels where descent improved the sampler's best read
    from_rtn_descent: int  # channels where descent from RTN beat the sampler (+ descent)
    rtn_kept: int  # channels left at RTN because nothing beat it
    batches: int
    solve_s: float


def _solve_layer(
    problem: LayerProblem,
    v_rtn: np.ndarray,
    sampler: SamplerLike,
    *,
    num_reads: int,
    seed: int,
    layer_index: int,
    sample_kwargs: Mapping[str, Any],
    polish: bool,
    max_batch_interactions: int,
    max_batch_variables: int | None = None,
) -> _LayerSolution:
    t0 = time.perf_counter()
    out = problem.out_channels
    v = np.zeros((out, problem.n))
    free_counts = (problem.step > 0).sum(axis=1)
    _check_fits(problem.name, int(free_counts.max(initial=0)), max_batch_variables)
    order = [j for j in range(out) if free_counts[j] > 0]
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_int = cur_vars = 0
    for j in order:
        k = int(free_counts[j])
        inter = k * (k - 1) // 2
        too_many = max_batch_variables is not None and cur_vars + k > max_batch_variables
        if cur and (cur_int + inter > max_batch_interactions or too_many):
            batches.append(cur)
            cur, cur_int, cur_vars = [], 0, 0
        cur.append(j)
        cur_int += inter
        cur_vars += k
    if cur:
        batches.append(cur)
    for b, chans in enumerate(batches):
        lin_parts, row_parts, col_parts, quad_parts, idx_parts = [], [], [], [], []
        offset = 0
        for j in chans:
            idx, linear, (r, c, quad), _ = problem.channel_qubo(j, normalise=True)
            lin_parts.append(linear)
            row_parts.append(r + offset)
            col_parts.append(c + offset)
            quad_parts.append(quad)
            idx_parts.append(idx)
            offset += idx.size
        lin_all, quad_all = np.concatenate(lin_parts), np.concatenate(quad_parts)
        rows_all, cols_all = np.concatenate(row_parts), np.concatenate(col_parts)
        bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(
            lin_all, (rows_all, cols_all, quad_all), 0.0, dimod.BINARY
        )
        batch_seed = int(np.random.SeedSequence([seed, layer_index, b]).generate_state(1)[0]) % (2**31 - 1)
        kwargs = dict(sample_kwargs)
        if _anneals_as_given(sampler, kwargs):
            kwargs["beta_range"] = _default_beta_range(lin_all, rows_all, cols_all, quad_all)
        sampleset = sample_with(sampler, bqm, num_reads=num_reads, seed=batch_seed, **kwargs)
        record = sampleset.record.sample
        if record.shape[0] == 0:
            raise InvalidInputError("The sampler returned no samples.")
        labels = np.asarray(list(sampleset.variables), dtype=np.int64)
        if labels.size != offset or set(labels.tolist()) != set(range(offset)):
            raise InvalidInputError("The sampler returned samples that do not match the problem's variables.")
        reads = np.zeros((record.shape[0], offset))
        reads[:, labels] = record
        chans_arr = np.asarray(chans)
        full = np.zeros((record.shape[0], len(chans), problem.n))
        pos = 0
        for k, idx in enumerate(idx_parts):
            full[:, k, idx] = reads[:, pos : pos + idx.size]
            pos += idx.size
        e = problem.energies(full, chans_arr)  # (reads, channels)
        best = np.argmin(e, axis=0)
        v[chans_arr] = full[best, np.arange(len(chans))]
    all_ch = np.arange(out)
    energy = problem.energies(v)
    polished = 0
    from_rtn = 0
    if polish:
        # Descend from the sampler's best read and from RTN; keep the better.
        v_a = _descend(problem, v, all_ch)
        e_a = np.minimum(problem.energies(v_a), energy)
        v_a = np.where((e_a < energy)[:, None], v_a, v)
        polished = int((e_a < energy).sum())
        v_b = _descend(problem, v_rtn, all_ch)
        e_b = problem.energies(v_b)
        use_b = e_b < e_a
        from_rtn = int(use_b.sum())
        v, energy = np.where(use_b[:, None], v_b, v_a), np.where(use_b, e_b, e_a)
    rtn_energy = problem.energies(v_rtn)
    worse = energy > rtn_energy
    v[worse] = v_rtn[worse]
    energy = np.where(worse, rtn_energy, energy)
    return _LayerSolution(
        v=v,
        energy=energy,
        rtn_energy=rtn_energy,
        polished=polished,
        from_rtn_descent=from_rtn,
        rtn_kept=int(worse.sum()),
        batches=len(batches),
        solve_s=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- evaluation


def layer_errors(
    model: nn.Module,
    reference: nn.Module,
    images: torch.Tensor,
    names: Iterable[str],
    *,
    batch_size: int = 256,
) -> dict[str, dict[str, float]]:
    """Per layer of quantized ``model`` vs float ``reference`` on ``images``:

    * ``error``: relative squared pre-activation error the layer itself adds,
      ``||layer_q(x_q) - layer_f(x_q)||^2 / ||layer_f(x_q)||^2`` on the inputs
      x_q the layer receives in ``model`` (what the rounding QUBO minimises);
    * ``drift``: ``||layer_q(x_q) - layer_f(x_f)||^2 / ||layer_f(x_f)||^2``, the
      deviation from the float network's pre-activation, including errors
      propagated from earlier layers.
    """
    names = list(names)
    ref_mods = {n: reference.get_submodule(n) for n in names}
    q_mods = {n: model.get_submodule(n) for n in names}
    sums = {n: np.zeros(4) for n in names}  # err, local_ref, drift, ref
    # A layer called several times per forward pass (a shared layer) is measured on every call, the k-th
    # call in ``model`` against the k-th in ``reference``, as its Gram matrix sums every call.
    ref_out: dict[str, list[torch.Tensor]] = {}
    calls: dict[str, int] = {}

    def ref_hook(n: str) -> Callable:
        def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
            ref_out.setdefault(n, []).append(out.detach())

        return hook

    def q_hook(n: str) -> Callable:
        def hook(_m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            k = calls[n] = calls.get(n, 0) + 1
            if k > len(ref_out.get(n, ())):
                raise InvalidInputError(f"Layer {n!r} is called more often in the quantized model than in the float one.")
            local = ref_mods[n](inputs[0])
            yf = ref_out[n][k - 1]
            sums[n] += [
                float(((out - local) ** 2).sum()),
                float((local**2).sum()),
                float(((out - yf) ** 2).sum()),
                float((yf**2).sum()),
            ]

        return hook

    reference.eval()
    model.eval()
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            ref_out.clear()
            calls.clear()
            handles = [ref_mods[n].register_forward_hook(ref_hook(n)) for n in names]
            try:
                reference(x)
            finally:
                for h in handles:
                    h.remove()
            handles = [q_mods[n].register_forward_hook(q_hook(n)) for n in names]
            try:
                model(x)
            finally:
                for h in handles:
                    h.remove()
    res = {}
    for n, (err, lref, drift, ref) in sums.items():
        res[n] = {"error": err / lref if lref > 0 else 0.0, "drift": drift / ref if ref > 0 else 0.0}
    return res


# --------------------------------------------------------------------------- model level


@dataclass
class LayerReport:
    layer: str
    kind: str
    out_channels: int
    f: int
    qubo_vars: int  # variables of each channel QUBO before clipping (f, or f+1 with the bias)
    free_vars: int  # QUBO variables over all channels after clipping fixed some
    error_qubo: float
    error_rtn: float
    drift_qubo: float
    drift_rtn: float
    energy_ratio: float  # sum of channel QUBO energies / RTN's, on this layer's Gram
    polished_channels: int  # descent improved the sampler's best read
    rtn_descent_channels: int  # descent from RTN beat sampler + descent
    rtn_kept_channels: int  # nothing beat round-to-nearest
    batches: int
    gram_s: float
    solve_s: float
    target: str = "layer"  # this layer's objective: "layer", "float_outputs" or "fisher"
    safeguard_rtn: bool = False  # the safeguard kept round-to-nearest for the whole layer

    @property
    def ratio(self) -> float:
        return self.error_qubo / self.error_rtn if self.error_rtn > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["ratio"] = self.ratio
        return row


@dataclass
class AdaroundResult:
    model: nn.Module  # quantized copy (QUBO rounding)
    rtn_model: nn.Module  # round-to-nearest baseline at the same scales
    layers: list[LayerReport]
    bits: int
    scale: str
    params: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    # on eval_data, keyed "float", "qubo", "rtn": accuracy, loss and per-example hits
    quality: dict[str, Quality] | None = None
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # W_hat per layer
    problems: dict[str, LayerProblem] = field(default_factory=dict)  # the channel QUBOs solved, per layer

    @property
    def accuracy(self) -> dict[str, float] | None:
        return None if self.quality is None else {key: q.accuracy for key, q in self.quality.items()}

    @property
    def correct(self) -> dict[str, np.ndarray] | None:
        """Per example of eval_data, whether each model's top-1 class is the label."""
        return None if self.quality is None else {key: q.correct for key, q in self.quality.items()}

    def table(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.layers]


def _resolve_layers(model: nn.Module, layers: Iterable[str] | None) -> list[str]:
    all_layers = [n for n, m in model.named_modules() if isinstance(m, COMPRESSIBLE)]
    if not all_layers:
        raise InvalidInputError("The model has no Conv2d or Linear layers to quantize.")
    if layers is None:
        return all_layers
    chosen = list(layers)
    unknown = [n for n in chosen if n not in all_layers]
    if unknown:
        raise InvalidInputError(f"Unknown or non-quantizable layer(s): {', '.join(unknown)}.")
    if not chosen:
        raise InvalidInputError("Choose at least one layer to quantize.")
    return [n for n in all_layers if n in chosen]


def _set_layer(layer: nn.Conv2d | nn.Linear, problem: LayerProblem, v: np.ndarray) -> None:
    """Write the rounding ``v`` of ``problem`` into ``layer`` (bias only when quantized)."""
    w_hat, b_hat = problem.dequantize(v)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w_hat).to(layer.weight.dtype).reshape(layer.weight.shape))
        if b_hat is not None:
            layer.bias.copy_(torch.from_numpy(b_hat).to(layer.bias.dtype))


def _calib_loss(model: nn.Module, calib: EvalData, batch_size: int) -> float:
    """Mean cross-entropy of ``model`` on the calibration set (the safeguard's criterion)."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(calib), batch_size):
            logits = model(calib.images[start : start + batch_size])
            total += float(F.cross_entropy(logits.double(), calib.labels[start : start + batch_size], reduction="sum"))
    return total / len(calib)


def rtn_quantize_model(
    model: nn.Module,
    *,
    bits: int,
    scale: str = "minmax",
    layers: Iterable[str] | None = None,
    quantize_bias: bool = False,
) -> nn.Module:
    """Round-to-nearest baseline: a copy of ``model`` with every chosen layer's
    weights (and bias, if asked) rounded at the same per-channel scales the
    rounding QUBO uses."""
    _check_model(model)
    bits = _check_bits(bits)
    scale = _check_scale(scale)
    names = _resolve_layers(model, layers)
    weights, biases = {}, {}
    for n in names:
        layer = _check_layer(model.get_submodule(n), n)
        s = torch.from_numpy(_scales(layer.weight, bits, scale)).float()
        weights[n] = quantize_with_scale(layer.weight.detach().float(), s, bits)
        if quantize_bias and layer.bias is not None:
            biases[n] = _rtn_bias(layer, s, bits)
    return apply_rounding(model, weights, biases=biases)


def quantize_model_adaround(
    model: nn.Module,
    calib: EvalData,
    *,
    bits: int,
    scale: str = "minmax",
    sampler: SamplerLike | None = None,
    num_reads: int = 4,
    seed: int = 0,
    sample_kwargs: Mapping[str, Any] | None = None,
    use_quantized_inputs: bool = True,
    quantize_bias: bool = False,
    polish: bool = True,
    layers: Iterable[str] | None = None,
    eval_data: EvalData | None = None,
    max_batch_interactions: int = 3_000_000,
    max_batch_variables: int | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    target: str = "layer",
    safeguard: bool = False,
) -> AdaroundResult:
    """Quantize every Conv2d/Linear layer (or ``layers``) of a copy of ``model``
    with the F3 rounding QUBO, and the round-to-nearest baseline alongside.

    ``sampler`` is any :class:`dimod.Sampler` (default
    ``dwave.samplers.SimulatedAnnealingSampler()``); ``num_reads`` and ``seed``
    are passed when the sampler accepts them, plus ``sample_kwargs`` (e.g.
    ``{"num_sweeps": 500}``). A plain callable ``fn(bqm, *, num_reads, seed,
    **sample_kwargs) -> SampleSet`` is accepted too (e.g. a solver registry's
    ``functools.partial(solve, sampler_name="sa")``).

    Per-layer errors (see :func:`layer_errors`) are measured on ``calib``;
    accuracy of the float, QUBO and RTN models on ``eval_data`` if given.
    ``progress(fraction, message)`` is called after each layer.

    ``max_batch_variables`` caps the variables of each combined BQM (for a
    QPU-like sampler: the largest fully connected problem its qubit graph
    holds, so every batch has a clique embedding); a layer whose single
    channel needs more is refused before any layer is solved.

    ``target`` is the objective: ``"layer"`` (default) the error the layer adds
    on the inputs it receives, ``||W_hat X_q - W X_q||^2``;
    ``"float_outputs"`` the error against the float network's pre-activations,
    ``||W_hat X_q - W X_f||^2`` (still an exact QUBO per channel: an extra
    linear term from ``X_q^T (X_q - X_f) W_j`` and a constant), on every layer;
    ``"float_outputs_last"`` that objective on the last layer only. With
    float inputs (``use_quantized_inputs=False``) X_q = X_f and all coincide.
    ``"fisher"``: the layer's error with each output weighted by the Fisher
    information of the network's predictions (see the module doc); a layer
    whose per-channel Gram matrices would exceed ``MAX_FISHER_GRAM_BYTES`` is
    refused before any layer is solved.

    ``safeguard=True``: after each layer is rounded, the calibration
    cross-entropy of the network (earlier layers as already decided, later
    layers still float) is computed with the QUBO rounding and with
    round-to-nearest for that layer, and the lower one is kept (ties keep the
    QUBO). ``LayerReport.safeguard_rtn`` says where RTN was kept.
    """
    t_start = time.perf_counter()
    _check_model(model)
    calib = _check_calib(calib)
    bits = _check_bits(bits)
    scale = _check_scale(scale)
    num_reads = _check_positive_int("num_reads", num_reads)
    seed = _check_positive_int("seed", seed, 0)
    max_batch_interactions = _check_positive_int("max_batch_interactions", max_batch_interactions)
    if max_batch_variables is not None:
        max_batch_variables = _check_positive_int("max_batch_variables", max_batch_variables)
    batch_size = _check_positive_int("batch_size", batch_size)
    if target not in TARGETS:
        raise InvalidInputError(f"target must be one of {', '.join(TARGETS)}, not {target!r}.")
    if not isinstance(safeguard, bool):
        raise InvalidInputError("safeguard must be True or False.")
    if eval_data is not None:
        _check_calib(eval_data)
    if progress is not None and not callable(progress):
        raise InvalidInputError("progress must be a function taking (fraction, message).")
    if sampler is None:
        from dwave.samplers import SimulatedAnnealingSampler

        sampler = SimulatedAnnealingSampler()
    elif not (isinstance(sampler, dimod.Sampler) or callable(sampler)):
        raise InvalidInputError("sampler must be a dimod sampler or a function (bqm, ...) -> SampleSet.")
    sample_kwargs = dict(sample_kwargs or {})
    names = _resolve_layers(model, layers)
    for n in names:
        layer = _check_layer(model.get_submodule(n), n)
        _check_qubo_size(layer, n)  # refuse before any layer is solved
        if max_batch_variables is not None:
            _check_fits(n, _max_free_variables(layer, bits, scale, quantize_bias), max_batch_variables)
    if target == "fisher":
        _check_fisher_size([(n, model.get_submodule(n)) for n in names])
    quantize_bias_layers = [n for n in names if model.get_submodule(n).bias is not None] if quantize_bias else []

    reference = copy.deepcopy(model).eval()
    qmodel = copy.deepcopy(model).eval()
    images = calib.images
    float_grams: dict[str, np.ndarray] = {}
    t_gram0 = time.perf_counter()
    if not use_quantized_inputs:
        float_grams = _collect_grams(reference, names, images, batch_size)
    shared_gram_s = time.perf_counter() - t_gram0

    reports: list[LayerReport] = []
    weights: dict[str, torch.Tensor] = {}
    solutions: dict[str, tuple[LayerProblem, _LayerSolution, float]] = {}
    for li, n in enumerate(names):
        layer = qmodel.get_submodule(n)
        tg = time.perf_counter()
        layer_target = "float_outputs" if target == "float_outputs" or (
            target == "float_outputs_last" and li == len(names) - 1
        ) else target if target == "fisher" else "layer"
        if layer_target == "fisher":
            gram_aug = _collect_fisher_grams(qmodel if use_quantized_inputs else reference, n, images, batch_size)
            problem = layer_problem(
                reference.get_submodule(n), gram_aug, bits, scale=scale, quantize_bias=n in quantize_bias_layers, name=n
            )
        elif layer_target == "float_outputs" and use_quantized_inputs:
            gram_aug, cross_aug, diff_gram = _collect_cross(qmodel, reference, n, images, batch_size)
            problem = layer_problem(
                reference.get_submodule(n),
                gram_aug,
                bits,
                scale=scale,
                quantize_bias=n in quantize_bias_layers,
                name=n,
                cross_aug=cross_aug,
                diff_gram=diff_gram,
            )
        else:
            gram_aug = _collect_grams(qmodel, [n], images, batch_size)[n] if use_quantized_inputs else float_grams[n]
            problem = layer_problem(
                reference.get_submodule(n), gram_aug, bits, scale=scale, quantize_bias=n in quantize_bias_layers, name=n
            )
        gram_s = time.perf_counter() - tg if use_quantized_inputs else shared_gram_s / len(names)
        v_rtn = _rtn_assignment(problem, reference.get_submodule(n))
        sol = _solve_layer(
            problem,
            v_rtn,
            sampler,
            num_reads=num_reads,
            seed=seed,
            layer_index=li,
            sample_kwargs=sample_kwargs,
            polish=polish,
            max_batch_interactions=max_batch_interactions,
            max_batch_variables=max_batch_variables,
        )
        _set_layer(layer, problem, sol.v)
        kept_rtn = False
        if safeguard:
            ce_qubo = _calib_loss(qmodel, calib, batch_size)
            _set_layer(layer, problem, v_rtn)
            ce_rtn = _calib_loss(qmodel, calib, batch_size)
            if ce_rtn < ce_qubo:
                kept_rtn = True
                sol.v, sol.energy = v_rtn.copy(), sol.rtn_energy.copy()
            else:
                _set_layer(layer, problem, sol.v)
        weights[n] = layer.weight.detach().clone()
        solutions[n] = (problem, sol, gram_s, layer_target, kept_rtn)
        if progress is not None:
            progress((li + 1) / len(names), f"Quantized {n} ({li + 1}/{len(names)})")
    quantize_s = time.perf_counter() - t_start

    rtn_model = rtn_quantize_model(
        model, bits=bits, scale=scale, layers=names, quantize_bias=bool(quantize_bias_layers)
    )
    errs_q = layer_errors(qmodel, reference, images, names, batch_size=batch_size)
    errs_r = layer_errors(rtn_model, reference, images, names, batch_size=batch_size)
    for n in names:
        problem, sol, gram_s, layer_target, kept_rtn = solutions[n]
        mod = reference.get_submodule(n)
        rtn_sum = float(sol.rtn_energy.sum())
        reports.append(
            LayerReport(
                layer=n,
                kind="linear" if isinstance(mod, nn.Linear) else "conv",
                out_channels=problem.out_channels,
                f=problem.f,
                qubo_vars=problem.n,
                free_vars=int((problem.step > 0).sum()),
                error_qubo=errs_q[n]["error"],
                error_rtn=errs_r[n]["error"],
                drift_qubo=errs_q[n]["drift"],
                drift_rtn=errs_r[n]["drift"],
                energy_ratio=float(sol.energy.sum()) / rtn_sum if rtn_sum > 0 else float("nan"),
                polished_channels=sol.polished,
                rtn_descent_channels=sol.from_rtn_descent,
                rtn_kept_channels=sol.rtn_kept,
                batches=sol.batches,
                gram_s=gram_s,
                solve_s=sol.solve_s,
                target=layer_target,
                safeguard_rtn=kept_rtn,
            )
        )
    quality = None
    if eval_data is not None:
        quality = {key: accuracy_and_loss(m, eval_data) for key, m in
                   (("float", reference), ("qubo", qmodel), ("rtn", rtn_model))}
    return AdaroundResult(
        model=qmodel,
        rtn_model=rtn_model,
        layers=reports,
        bits=bits,
        scale=scale,
        params={
            "sampler": type(sampler).__name__,
            "num_reads": num_reads,
            "seed": seed,
            "sample_kwargs": sample_kwargs,
            "use_quantized_inputs": use_quantized_inputs,
            "quantize_bias": bool(quantize_bias_layers),
            "polish": polish,
            "max_batch_variables": max_batch_variables,
            "target": target,
            "safeguard": safeguard,
            "safeguard_rtn_layers": [n for n in names if solutions[n][4]],
            "calibration": calib.name,
            "calibration_size": len(calib),
        },
        timing={"quantize_s": quantize_s, "total_s": time.perf_counter() - t_start},
        quality=quality,
        weights=weights,
        problems={n: solutions[n][0] for n in names},
    )
