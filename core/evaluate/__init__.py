"""Accuracy, loss, latency, size and sparsity of models."""

from core.evaluate.metrics import (
    Latency,
    Quality,
    accuracy_and_loss,
    measure_latency,
    option_bits,
    size_bits,
    sparsity,
)
from core.evaluate.paired import PairedAccuracy, paired_accuracy

__all__ = [
    "Latency",
    "PairedAccuracy",
    "Quality",
    "accuracy_and_loss",
    "measure_latency",
    "option_bits",
    "paired_accuracy",
    "size_bits",
    "sparsity",
]
