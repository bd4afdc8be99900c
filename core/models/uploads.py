"""Loading a model the user uploads: a TorchScript archive, or a state_dict for
a named zoo architecture. Never an arbitrary pickle."""

from __future__ import annotations

import io
import pickle
import zipfile

import torch
from torch import nn

from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.models.units import is_finite
from core.models.zoo import build_model, model_spec

MAX_MODEL_BYTES = 500 * 1024 * 1024
EXPECTED = (
    "Expected either a TorchScript archive (torch.jit.script(model).save(path)) or a "
    "state_dict (torch.save(model.state_dict(), path)) together with its architecture."
)


def _is_torchscript(raw: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False
    return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in names)


def load_uploaded_model(
    raw: bytes, *, architecture: str | None = None, num_classes: int = 10
) -> nn.Module:
    """Load uploaded bytes safely; raise InvalidInputError saying what was expected."""
    if not raw:
        raise InvalidInputError(f"The model file is empty. {EXPECTED}")
    if len(raw) > MAX_MODEL_BYTES:
        raise InvalidInputError(
            f"The model file is {len(raw) / 2**20:.0f} MiB; the limit is {MAX_MODEL_BYTES / 2**20:.0f} MiB."
        )
    if _is_torchscript(raw):
        try:
            model = torch.jit.load(io.BytesIO(raw), map_location="cpu")
        except Exception:  # noqa: BLE001 - a damaged archive can fail in many ways, none meant for users
            raise InvalidInputError(f"The TorchScript archive is damaged and could not be loaded. {EXPECTED}") from None
        return _checked(model.eval())
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not raw.startswith(b"\x80") and "Unsupported global" not in str(exc):
            raise InvalidInputError(f"The file is not a PyTorch file (damaged, or another format). {EXPECTED}") from None
        raise InvalidInputError(
            "This file holds pickled Python objects (for example a whole model saved with torch.save(model)); "
            f"for safety those are not loaded. {EXPECTED}"
        ) from None
    except Exception:  # noqa: BLE001 - truncated/corrupt files raise assorted errors, none meant for users
        raise InvalidInputError(f"The file is not a PyTorch file (damaged, or another format). {EXPECTED}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInputError(f"The file holds a {type(state).__name__}, not a state_dict of tensors. {EXPECTED}")
    if architecture is None:
        raise InvalidInputError("This is a state_dict: choose the architecture it belongs to.")
    model_spec(architecture)
    model = build_model(architecture, num_classes=num_classes)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [k for k, v in state.items() if k in expected_shapes and tuple(v.shape) != expected_shapes[k]]
    result = model.load_state_dict({k: v for k, v in state.items() if k not in wrong}, strict=False)
    missing = [k for k in result.missing_keys if k not in wrong]
    if missing or result.unexpected_keys or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if result.unexpected_keys:
            parts.append(f"unexpected {len(result.unexpected_keys)} (e.g. {result.unexpected_keys[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"wrong shape for {k}: {tuple(state[k].shape)} instead of {expected_shapes[k]}")
        raise InvalidInputError(
            f"The state_dict does not match {architecture} with {num_classes} classes: {'; '.join(parts)}."
        )
    return _checked(model.eval())


def _checked(model: nn.Module) -> nn.Module:
    if not is_finite(model):
        raise InvalidInputError("The model has NaN or infinite weights.")
    return model


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def check_forward(model: nn.Module, data: EvalData, *, n: int = 8) -> int:
    """Run a forward pass on a few examples; return the number of outputs per
    example. Raise InvalidInputError when model and data do not fit together."""
    sample = data.images[:n]
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as exc:  # noqa: BLE001 - any shape/type failure is a mismatch to the user
        raise InvalidInputError(
            f"The model cannot run on this data (inputs of shape {tuple(data.input_shape)}): {_short(exc)}."
        ) from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != sample.shape[0]:
        raise InvalidInputError("The model must return class scores of shape (batch, classes).")
    if out.shape[1] < data.num_classes:
        raise InvalidInputError(
            f"The model gives {out.shape[1]} class scores but the data has labels up to {data.num_classes - 1}."
        )
    if not torch.isfinite(out).all():
        raise InvalidInputError("The model produced NaN or infinite outputs on this data.")
    return int(out.shape[1])
