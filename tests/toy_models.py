"""Tiny seeded models and calibration data for the engine's rounding tests."""

from __future__ import annotations

import torch
from torch import nn

from core.data import EvalData


class TwoLayer(nn.Module):
    """Linear ``a`` (fin -> hidden), ReLU, Linear ``b`` (hidden -> out), seeded; inputs are flattened."""

    def __init__(self, fin: int, hidden: int, out: int, *, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a = nn.Linear(fin, hidden)
        self.b = nn.Linear(hidden, out)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.flatten(1))))


def random_calib(n: int, shape: tuple[int, ...], classes: int, *, seed: int, name: str = "toy") -> EvalData:
    """``n`` Gaussian inputs of ``shape`` with random labels."""
    g = torch.Generator().manual_seed(seed)
    return EvalData(name, torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g), classes)
