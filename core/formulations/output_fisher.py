"""How much each output of one layer matters to a network's predictions (F3, ``target="fisher"``).

For a classifier with logits ``z_out`` and softmax probabilities ``p``, the
Fisher information of its predictive distribution with respect to the
pre-activations ``z`` of one layer is ``J^T (diag(p) - p p^T) J`` per input,
with ``J = d z_out / d z``. For the cross-entropy loss this is also the
Gauss-Newton matrix, so a small change ``dz`` of the layer's outputs raises
the expected loss by about ``1/2 dz^T F dz``. Its diagonal ``F_ii`` weighs
each output element (sample, channel, position) by how much an error there
moves the predictions; no labels are needed.

The diagonal is computed exactly with one backward pass per class: with
``diag(p) - p p^T = A A^T`` and column k of A ``u_k = sqrt(p_k) (e_k - p)``,
``F_ii = sum_k (J^T u_k)_i^2``. Weighting the rounding QUBO's rows by it is
the diagonal Fisher approximation of BRECQ (Li et al., ICLR 2021), here with
the model's own predictive distribution rather than squared label gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from core.errors import InvalidInputError

__all__ = ["output_fisher"]


def output_fisher(
    model: nn.Module, name: str, images: torch.Tensor, *, batch_size: int = 256
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For each batch: (the inputs layer ``name`` receives, the Fisher diagonal
    of its outputs, same shape as the outputs). A layer called more than once
    per forward pass is refused.

    Later layers are used as they are in ``model``; nothing of ``model``
    changes (its parameters get no gradients)."""
    try:
        layer = model.get_submodule(name)
    except AttributeError as exc:
        raise InvalidInputError(f"The model has no layer named {name!r}.") from exc
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_m: nn.Module, inputs: tuple, out: Any) -> torch.Tensor:
        # A leaf replaces the output, so gradients start here and stop at the layer; its clone goes on,
        # so an in-place operation after the layer (ReLU(inplace=True)) does not write into the leaf.
        z = out.detach().requires_grad_(True)
        calls.append((inputs[0].detach(), z))
        return z.clone()

    handle = layer.register_forward_hook(hook)
    model.eval()
    try:
        for start in range(0, images.shape[0], batch_size):
            calls.clear()
            with torch.enable_grad():
                logits = model(images[start : start + batch_size].detach())
                if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                    raise InvalidInputError("The Fisher objective needs a classifier whose output is N x classes logits.")
                if not calls:
                    raise InvalidInputError(f"Layer {name!r} is never called by the model's forward pass.")
                if len(calls) > 1:
                    raise InvalidInputError(
                        f"Layer {name!r} is called {len(calls)} times per forward pass; the Fisher objective takes "
                        "layers called once. Use the layer objective for it."
                    )
                x, z = calls[0]
                p = torch.softmax(logits.detach().double(), dim=1)
                fisher = torch.zeros_like(z)
                eye = torch.eye(p.shape[1], dtype=p.dtype)
                for k in range(p.shape[1]):
                    u = (p[:, k : k + 1].sqrt() * (eye[k] - p)).to(logits.dtype)
                    (grad,) = torch.autograd.grad(logits, z, grad_outputs=u, retain_graph=k + 1 < p.shape[1],
                                                  allow_unused=True)
                    if grad is not None:  # None: the logits do not depend on this layer
                        fisher += grad.detach() ** 2
            yield x, fisher
    finally:
        handle.remove()
