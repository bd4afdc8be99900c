"""Accuracy, loss, latency and size of a model on evaluation data."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from core.data.dataset import EvalData
from core.models.units import compressible_units, count_parameters

FP32_BITS = 32


@dataclass(frozen=True)
class Quality:
    accuracy: float
    loss: float
    n: int
    # per example, whether the top-1 class is the label: what paired tests need, without a second pass
    correct: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), compare=False, repr=False)


def accuracy_and_loss(model: nn.Module, data: EvalData, *, batch_size: int = 512) -> Quality:
    """Top-1 accuracy, mean cross-entropy and per-example correctness over ``data``."""
    model.eval()
    hits, total_loss = [], 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            x = data.images[start : start + batch_size]
            y = data.labels[start : start + batch_size]
            logits = model(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            hits.append((logits.argmax(1) == y).numpy())
    correct = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
    return Quality(accuracy=int(correct.sum()) / len(data), loss=total_loss / len(data), n=len(data), correct=correct)


@dataclass(frozen=True)
class Latency:
    """Median milliseconds per image at each batch size, with the thread count used."""

    ms_per_image: dict[int, float]
    threads: int
    repeats: int

    def as_dict(self) -> dict:
        return {"ms_per_image": {str(k): v for k, v in self.ms_per_image.items()}, **{
            k: v for k, v in asdict(self).items() if k != "ms_per_image"}}


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    batch_sizes: tuple[int, ...] = (1, 64),
    repeats: int = 20,
    warmup: int = 3,
    threads: int = 1,
    seed: int = 0,
) -> Latency:
    """Median wall time per image over ``repeats`` timed runs after ``warmup`` runs.

    The thread count is fixed (and restored afterwards) because it changes
    latency more than most compression choices do.
    """
    if repeats < 1 or warmup < 0 or threads < 1:
        raise ValueError("repeats and threads must be >= 1 and warmup >= 0")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    model.eval()
    result = {}
    try:
        g = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            for batch in batch_sizes:
                x = torch.randn((batch, *input_shape), generator=g)
                for _ in range(warmup):
                    model(x)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - t0)
                result[batch] = 1000.0 * statistics.median(times) / batch
    finally:
        torch.set_num_threads(previous)
    return Latency(ms_per_image=result, threads=threads, repeats=repeats)


def option_bits(option: str | int) -> int:
    """Bits per weight for a precision option: "prune" -> 0, "keep" -> 32, b -> b."""
    if option == "prune":
        return 0
    if option == "keep":
        return FP32_BITS
    bits = int(option)
    if not 1 <= bits <= FP32_BITS:
        raise ValueError(f"bits must be between 1 and 32, got {option!r}")
    return bits


def stored_bits(bits: int, weight_params: int, bias_params: int, out_channels: int) -> int:
    """Storage of a layer (or channel group) whose weights are quantized to ``bits``.

    Weights at ``bits`` each, plus what dequantizing needs: one fp32 scale per
    output channel (the quantizers here are per channel); biases stay fp32.
    At 32 bits the weights are stored as they are (no scales); at 0 (pruned)
    nothing is stored.
    """
    if bits == 0:
        return 0
    if bits >= FP32_BITS:
        return FP32_BITS * (weight_params + bias_params)
    return bits * weight_params + FP32_BITS * (bias_params + out_channels)


def size_bits(model: nn.Module, assignment: Mapping[str, str | int] | None = None) -> int:
    """Storage in bits when each listed unit is stored at its assigned precision.

    A unit at b bits stores its weights at b bits, one fp32 scale per output
    channel and its bias at 32 (:func:`stored_bits`); a pruned unit stores
    nothing; "keep" and unlisted units store everything at 32 bits, as do
    parameters outside Conv2d/Linear layers (BatchNorm, ...).
    """
    assignment = dict(assignment or {})
    units = {u.name: u for u in compressible_units(model)}
    unknown = set(assignment) - set(units)
    if unknown:
        raise KeyError(f"not compressible units of this model: {sorted(unknown)}")
    total = FP32_BITS * count_parameters(model)
    for name, option in assignment.items():
        unit = units[name]
        total += stored_bits(option_bits(option), unit.weight_params, unit.params - unit.weight_params,
                             unit.out_channels) - FP32_BITS * unit.params
    return total


def sparsity(model: nn.Module) -> float:
    """Fraction of Conv2d/Linear weights that are exactly zero."""
    zeros = total = 0
    for unit in compressible_units(model):
        w = model.get_submodule(unit.name).weight
        zeros += int((w == 0).sum().item())
        total += w.numel()
    return zeros / total if total else 0.0
