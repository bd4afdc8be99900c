"""Symmetric uniform quantization with one scale per output channel.

A weight w with ``bits`` b is mapped to s * clamp(round(w / s), -q, q) with
q = 2^(b-1) - 1 levels on each side (for b = 1, q = 1 with the zero level
excluded: sign(w) * s, a binary weight). Scales are chosen per output channel
either from the channel's max |w| ("minmax") or by a grid search minimising
the squared rounding error ("mse").
"""

from __future__ import annotations

import torch

SCALE_METHODS = ("minmax", "mse")


def levels(bits: int) -> int:
    """Largest integer level q: the grid is {-q, ..., q} (or {-1, 1} for 1 bit)."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be between 1 and 16, got {bits}")
    return max(1, 2 ** (bits - 1) - 1)


def _per_channel_absmax(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1)


def quantize_with_scale(weight: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Round-to-nearest on the grid ``scale * {-q..q}`` (per output channel)."""
    q = levels(bits)
    s = scale.reshape(-1, *([1] * (weight.dim() - 1))).to(weight.dtype)
    s = torch.where(s > 0, s, torch.ones_like(s))
    if bits == 1:
        return torch.where(weight >= 0, s, -s) * (scale.reshape(s.shape) > 0)
    return torch.clamp(torch.round(weight / s), -q, q) * s


def channel_scales(weight: torch.Tensor, bits: int, method: str = "minmax", *, grid: int = 80) -> torch.Tensor:
    """One positive scale per output channel (zero for all-zero channels)."""
    if method not in SCALE_METHODS:
        raise ValueError(f"scale method must be one of {SCALE_METHODS}, got {method!r}")
    absmax = _per_channel_absmax(weight)
    q = levels(bits)
    if bits == 1:
        # For a sign grid the MSE-optimal scale is mean |w|, and max |w| is useless.
        return weight.detach().reshape(weight.shape[0], -1).abs().mean(dim=1)
    base = absmax / q
    if method == "minmax":
        return base
    flat = weight.detach().reshape(weight.shape[0], -1)
    best = base.clone()
    best_err = ((quantize_with_scale(flat, base, bits) - flat) ** 2).sum(dim=1)
    for frac in torch.linspace(0.2, 1.0, grid)[:-1]:
        cand = base * frac
        err = ((quantize_with_scale(flat, cand, bits) - flat) ** 2).sum(dim=1)
        better = err < best_err
        best = torch.where(better, cand, best)
        best_err = torch.where(better, err, best_err)
    return best


def fake_quantize(weight: torch.Tensor, bits: int, method: str = "minmax") -> torch.Tensor:
    """Quantize-dequantize ``weight`` at ``bits`` with per-channel scales."""
    return quantize_with_scale(weight, channel_scales(weight, bits, method), bits)
