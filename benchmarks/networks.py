"""The networks the benchmarks compress: the shipped built-in weights, or the
same architecture trained from scratch with another seed.

One fixed network lets a comparison rest on a single draw of training: a
baseline that needs no calibration data (L1 norms, round-to-nearest) then
gives one number however many seeds are averaged. Training a network per
seed puts that variation into the spread. The training script is
deterministic (``core.models.training``) and seed 0 reproduces the shipped
weights, so seed 0's network is the shipped one either way.
"""

from __future__ import annotations

import functools

from torch import nn

from core.models import load_model
from core.models.training import train


@functools.cache
def network(name: str, seed: int | None = None) -> nn.Module:
    """``name``'s shipped weights (``seed=None``) or ``name`` trained with ``seed`` (in eval mode)."""
    return load_model(name) if seed is None else train(name, seed=seed)[0]
