"""scikit-learn's bundled handwritten digits (8x8, 1797 images), split once.

The split is fixed: a permutation with seed 0, then 70% train (1257),
10% validation (180), 20% test (360). Pixel values 0..16 are scaled to 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits

from core.data.dataset import EvalData

SPLIT_SEED = 0
TRAIN, VAL = 1257, 180  # the remaining 360 are the test split


@dataclass(frozen=True)
class DigitsSplit:
    train: EvalData
    val: EvalData
    test: EvalData


@lru_cache(maxsize=1)
def digits_split() -> DigitsSplit:
    bunch = load_digits()
    images = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(len(labels)))
    parts = {
        "train": order[:TRAIN],
        "val": order[TRAIN : TRAIN + VAL],
        "test": order[TRAIN + VAL :],
    }
    return DigitsSplit(
        **{
            part: EvalData(f"digits-{part}", images[idx].contiguous(), labels[idx].contiguous(), 10)
            for part, idx in parts.items()
        }
    )
