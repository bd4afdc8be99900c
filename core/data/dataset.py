"""Evaluation data: a small, validated, in-memory image classification set."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class EvalData:
    """Images (N, C, H, W) float32 and integer labels (N,)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int, *, seed: int = 0) -> EvalData:
        """A fixed random subset of ``n`` examples (all of them if n >= len)."""
        if n >= len(self):
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:n])
        return EvalData(f"{self.name}[{n}]", self.images[idx], self.labels[idx], self.num_classes)

    def split(self, n: int, *, seed: int = 0) -> tuple[EvalData, EvalData]:
        """(a fixed random ``n`` examples, all the others): two disjoint sets."""
        if not 0 < n < len(self):
            raise ValueError(f"n must be between 1 and {len(self) - 1}, got {n}")
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(self)))
        first, rest = order[:n], order[n:].sort().values
        return (
            EvalData(f"{self.name}[{n}]", self.images[first], self.labels[first], self.num_classes),
            EvalData(f"{self.name}[rest {len(self) - n}]", self.images[rest], self.labels[rest], self.num_classes),
        )

    def content_hash(self) -> str:
        return self._digest

    @cached_property
    def _digest(self) -> str:
        # computed once: pages ask on every rerun, and the tensors are never changed in place
        h = hashlib.sha256()
        h.update(self.images.numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        return h.hexdigest()[:16]


def adapt(data: EvalData, channels: int, size: int) -> EvalData:
    """Resize to ``size`` x ``size`` and repeat/average channels to ``channels``,
    so a small data set can feed a model built for larger images."""
    images = data.images
    if images.shape[1] != channels:
        gray = images.mean(dim=1, keepdim=True)
        images = gray.repeat(1, channels, 1, 1)
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return EvalData(f"{data.name}@{channels}x{size}", images.contiguous(), data.labels, data.num_classes)


def random_data(
    input_shape: tuple[int, int, int], *, n: int = 64, num_classes: int = 10, seed: int = 0
) -> EvalData:
    """Gaussian images with random labels: calibration data for models whose
    real data is not available (accuracy on it means nothing)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn((n, *input_shape), generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return EvalData("random", images, labels, num_classes)
