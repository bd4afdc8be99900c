"""Evaluation data: the built-in digits split, uploads, torchvision sets."""

from core.data.dataset import EvalData, adapt, random_data
from core.data.digits import DigitsSplit, digits_split
from core.data.uploads import load_npz, load_torchvision_dataset

__all__ = [
    "EvalData",
    "DigitsSplit",
    "adapt",
    "digits_split",
    "load_npz",
    "load_torchvision_dataset",
    "random_data",
]
