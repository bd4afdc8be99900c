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

__all__ = [
    "Latency",
    "Quality",
    "accuracy_and_loss",
    "measure_latency",
    "option_bits",
    "size_bits",
    "sparsity",
]
