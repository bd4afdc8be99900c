"""The model zoo: built-in digits networks and torchvision architectures."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.errors import InvalidInputError, UnavailableError
from core.models.builtin import DigitsCNN, DigitsMLP

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "models"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "builtin" or "torchvision"
    description: str
    input_shape: tuple[int, int, int]  # default (C, H, W)
    default_data: str  # "digits" or "random"


BUILTIN: dict[str, tuple[type[nn.Module], str]] = {
    "digits-cnn": (DigitsCNN, "Small CNN (2 conv + linear, ~10k params) trained on the digits split"),
    "digits-mlp": (DigitsMLP, "Dense 64-128-64-10 network (~17k params) trained on the digits split"),
}
TORCHVISION: dict[str, str] = {
    "resnet18": "ResNet-18 (11M params), residual CNN",
    "googlenet": "GoogLeNet / Inception v1 (6M params)",
    "densenet121": "DenseNet-121 (7M params), densely connected CNN",
    "mobilenet_v3_small": "MobileNetV3-Small (1.5M params), depthwise separable CNN",
}


def list_models() -> list[ModelSpec]:
    specs = [ModelSpec(n, "builtin", d, (1, 8, 8), "digits") for n, (_, d) in BUILTIN.items()]
    specs += [ModelSpec(n, "torchvision", d, (3, 32, 32), "random") for n, d in TORCHVISION.items()]
    return specs


def model_spec(name: str) -> ModelSpec:
    for spec in list_models():
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in list_models())
    raise InvalidInputError(f"Unknown model {name!r}. Available models: {known}.")


def _manifest() -> dict:
    path = ASSETS / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def builtin_weights_path(name: str) -> Path:
    entry = _manifest().get(name)
    if entry is None:
        raise UnavailableError(
            f"No shipped weights for {name}; run `python -m core.models.training` to create them."
        )
    path = ASSETS / entry["file"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    if digest != entry["sha256"]:
        raise UnavailableError(
            f"The shipped weights for {name} are missing or damaged (checksum mismatch); "
            "restore assets/models or run `python -m core.models.training`."
        )
    return path


def build_torchvision(name: str, *, num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    import torchvision.models as tvm

    if name not in TORCHVISION:
        raise InvalidInputError(f"Unknown torchvision architecture {name!r}; choose one of {', '.join(TORCHVISION)}.")
    kwargs: dict = {}
    if name == "googlenet":
        kwargs = {"aux_logits": False, "init_weights": True}
    if pretrained:
        weights = tvm.get_model_weights(name).DEFAULT
        try:
            model = tvm.get_model(name, weights=weights, **({"aux_logits": True} if name == "googlenet" else {}))
        except Exception as exc:  # noqa: BLE001 - any download failure means the same to the user
            raise UnavailableError(
                f"Pretrained {name} weights could not be downloaded (this machine appears to be offline). "
                "Use random initialisation or upload your own weights."
            ) from exc
        if name == "googlenet":
            model.aux_logits, model.aux1, model.aux2 = False, None, None
        if num_classes != 1000:
            _replace_classifier(model, num_classes)
        return model
    return tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)


def _replace_classifier(model: nn.Module, num_classes: int) -> None:
    last_name, last = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent_name, _, attr = last_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Linear(last.in_features, num_classes))


def build_model(name: str, *, num_classes: int = 10, seed: int = 0) -> nn.Module:
    """An untrained instance of ``name`` (random init, seeded)."""
    model_spec(name)
    torch.manual_seed(seed)
    if name in BUILTIN:
        return BUILTIN[name][0](num_classes)
    return build_torchvision(name, num_classes=num_classes)


def load_model(
    name: str, *, weights: str = "default", num_classes: int = 10, seed: int = 0
) -> nn.Module:
    """Load a zoo model in eval mode.

    ``weights``: "default" (shipped weights for built-ins, random init for
    torchvision), "random", or "pretrained" (torchvision, online only).
    """
    spec = model_spec(name)
    if weights not in ("default", "random", "pretrained"):
        raise InvalidInputError(f"weights must be 'default', 'random' or 'pretrained', not {weights!r}.")
    if weights == "pretrained":
        if spec.family != "torchvision":
            raise InvalidInputError(f"{name} has no pretrained download; its shipped weights are the default.")
        model = build_torchvision(name, num_classes=num_classes, pretrained=True)
    else:
        model = build_model(name, num_classes=num_classes, seed=seed)
        if spec.family == "builtin" and weights == "default":
            if num_classes != 10:
                raise InvalidInputError(f"The shipped {name} weights are for 10 classes, not {num_classes}.")
            state = torch.load(builtin_weights_path(name), weights_only=True)
            model.load_state_dict(state)
    return model.eval()
