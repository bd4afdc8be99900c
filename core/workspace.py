"""Resolving a (model, data) pair by name, as the command line and the app do.

A "workspace" is what the user has selected: a model in eval mode plus the
evaluation and calibration data that fit its input shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from core.data import EvalData, adapt, digits_split, random_data
from core.errors import InvalidInputError
from core.evaluate import accuracy_and_loss, measure_latency, size_bits
from core.models import check_forward, compressible_units, count_parameters, load_model, model_spec
from core.models.hashing import model_hash

DATA_SOURCES = ("digits", "random")
# Calibration examples for sensitivities, rounding and pruning statistics: drawn from the training split
# for the built-in data (as post-training quantization does), at most this many from an upload.
CALIBRATION_SIZE = 256


@dataclass
class Workspace:
    model_name: str
    model: nn.Module
    data: EvalData  # evaluation (test) data
    calibration: EvalData  # small calibration set for sensitivities / rounding

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.data.input_shape

    def cache_key(self) -> str:
        """What the model and data contain, not their names (both hashes are memoised)."""
        return f"{model_hash(self.model)}-{self.data.content_hash()}-{self.calibration.content_hash()}"


def builtin_data(source: str, input_shape: tuple[int, int, int], *, seed: int = 0) -> tuple[EvalData, EvalData]:
    """(evaluation, calibration) data for a named source, shaped for ``input_shape``."""
    if source == "digits":
        split = digits_split()
        # Training images, as post-training methods calibrate (the validation split stays for choosing settings),
        # always the same ones: a run's seed varies the sampler, not the problem.
        test, calib = split.test, split.train.subset(CALIBRATION_SIZE, seed=0)
        channels, size = input_shape[0], input_shape[1]
        if (channels, size, size) != test.input_shape:
            test, calib = adapt(test, channels, size), adapt(calib, channels, size)
        return test, calib
    if source == "random":
        return (
            random_data(input_shape, n=256, seed=seed),
            random_data(input_shape, n=64, seed=seed + 1),
        )
    raise InvalidInputError(f"Unknown data source {source!r}; choose one of {', '.join(DATA_SOURCES)}.")


def open_workspace(
    model_name: str,
    *,
    data: str | None = None,
    weights: str = "default",
    input_size: int | None = None,
    seed: int = 0,
) -> Workspace:
    """Load a zoo model and its data, checked by a forward pass."""
    spec = model_spec(model_name)
    channels, h, _ = spec.input_shape
    size = input_size or h
    model = load_model(model_name, weights=weights, seed=seed)
    test, calib = builtin_data(data or spec.default_data, (channels, size, size), seed=seed)
    check_forward(model, test)
    return Workspace(model_name, model, test, calib)


def evaluate_report(ws: Workspace, *, latency_repeats: int = 20, threads: int = 1) -> dict:
    """Accuracy, loss, params, size and latency of the workspace's model."""
    quality = accuracy_and_loss(ws.model, ws.data)
    latency = measure_latency(ws.model, ws.input_shape, repeats=latency_repeats, threads=threads)
    return {
        "model": ws.model_name,
        "data": ws.data.name,
        "num_examples": quality.n,
        "accuracy": quality.accuracy,
        "loss": quality.loss,
        "params": count_parameters(ws.model),
        "size_bits": size_bits(ws.model),
        "units": [u.as_dict() for u in compressible_units(ws.model)],
        "latency": latency.as_dict(),
    }



def workspace_from_model(
    name: str,
    model: nn.Module,
    *,
    data: str | EvalData,
    input_shape: tuple[int, int, int] | None = None,
    calibration_size: int = CALIBRATION_SIZE,
    seed: int = 0,
) -> Workspace:
    """A workspace for a model the user brought, checked by a forward pass.

    ``data`` is a built-in source name (then ``input_shape`` says how to shape
    it) or uploaded :class:`EvalData`: then a seeded subset of it (at most
    ``calibration_size``, at most half) calibrates and only the *other*
    examples evaluate, so methods that fit to calibration data (rounding,
    refinement, fine-tuning) are never scored on what they fitted.
    """
    if isinstance(data, EvalData):
        if len(data) < 2:
            raise InvalidInputError(
                "At least 2 labelled examples are needed: part of them calibrates, the rest evaluates."
            )
        calib, test = data.split(min(calibration_size, len(data) // 2), seed=seed)
    else:
        if input_shape is None:
            raise InvalidInputError("Say which input shape (channels, height, width) the model expects.")
        test, calib = builtin_data(data, input_shape, seed=seed)
    check_forward(model.eval(), test)
    return Workspace(name, model, test, calib)
