"""Deterministic training of the built-in models (``python -m core.models.training``).

Same seed, same torch build, same weights: the script pins the seed, a single
thread and deterministic algorithms, and trains full-batch-shuffled Adam for a
fixed number of epochs, keeping the epoch with the best validation accuracy.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from core.data import digits_split
from core.models.builtin import DigitsCNN, DigitsMLP

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "models"
RECIPES = {
    "digits-cnn": (DigitsCNN, dict(epochs=40, lr=3e-3, batch=64)),
    "digits-mlp": (DigitsMLP, dict(epochs=60, lr=2e-3, batch=64)),
}


def train(name: str, *, seed: int = 0) -> tuple[nn.Module, dict]:
    cls, recipe = RECIPES[name]
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        split = digits_split()
        model = cls()
        opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
        g = torch.Generator().manual_seed(seed)
        best, best_acc = None, -1.0
        for _ in range(recipe["epochs"]):
            model.train()
            order = torch.randperm(len(split.train), generator=g)
            for start in range(0, len(order), recipe["batch"]):
                idx = order[start : start + recipe["batch"]]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(split.train.images[idx]), split.train.labels[idx])
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                acc = (model(split.val.images).argmax(1) == split.val.labels).float().mean().item()
            if acc > best_acc:
                best, best_acc = copy.deepcopy(model.state_dict()), acc
        model.load_state_dict(best)
        model.eval()
        with torch.no_grad():
            test_acc = (model(split.test.images).argmax(1) == split.test.labels).float().mean().item()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    return model, {"val_accuracy": best_acc, "test_accuracy": test_acc}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_environment() -> dict[str, str]:
    """What bit-for-bit reproduction depends on: the torch build and the CPU kernels it dispatches to
    (AVX2 and AVX-512 kernels round differently, so weights then agree only to about 1e-5)."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in args.models:
        model, scores = train(name)
        path = args.out / f"{name}.pt"
        torch.save(model.state_dict(), path)
        manifest[name] = {"file": path.name, "sha256": file_sha256(path), **scores,
                          "trained_with": training_environment()}
        print(f"{name}: val {scores['val_accuracy']:.4f} test {scores['test_accuracy']:.4f} -> {path}")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
