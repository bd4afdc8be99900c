"""AdaRound's continuous relaxation: the classical way to solve the F3 rounding problem.

Nagel et al., "Up or Down? Adaptive Rounding for Post-Training Quantization"
(ICML 2020) minimise the same layer objective as the rounding QUBO of
:mod:`core.formulations.adaround`, ``||W_hat X - W X||^2``, but over a
continuous rounding variable: each rounding bit ``v`` becomes ``h(V)``, a
rectified sigmoid of a real ``V``, optimised by Adam together with a
regulariser ``sum 1 - |2 h(V) - 1|^beta`` that pushes every ``h`` to 0 or 1 as
``beta`` is annealed from 20 to 2; at the end ``v = [h(V) >= 1/2]``. This is the
classical baseline a QUBO solver of that objective has to beat.

As in the authors' setting (and BRECQ's implementation of it) the
reconstruction term is the squared output error summed over output features
and averaged over calibration samples, the regulariser's weight is 0.01, the
first 20% of the iterations run without it, and Adam runs 20,000 steps at a
learning rate of 1e-3 (fewer steps left digits-cnn's conv2 2-4x above that). Unlike their mini-batches this
uses the whole calibration set through the layer's Gram matrix, so every step
is an exact gradient. Layers are rounded in order, each on the inputs it gets
from the already rounded earlier layers, as the QUBO method does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
from torch import nn

from core.data.dataset import EvalData
from core.errors import InvalidInputError
from core.formulations.adaround import (
    LayerProblem,
    _check_positive_int,
    _collect_fisher_grams,
    _collect_grams,
    _resolve_layers,
    _set_layer,
    layer_problem,
)

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (Louizos et al., as in AdaRound)
REG_WEIGHT = 0.01
BETA_START, BETA_END = 20.0, 2.0
WARMUP = 0.2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _stretched(sig: np.ndarray) -> np.ndarray:
    """The rectified sigmoid before its clip to [0, 1]."""
    return sig * (ZETA - GAMMA) + GAMMA


def relaxed_rounding(
    problem: LayerProblem,
    num_samples: int,
    *,
    iterations: int = 20_000,
    learning_rate: float = 1e-3,
    reg_weight: float = REG_WEIGHT,
) -> np.ndarray:
    """AdaRound's rounding bits ``v`` (out, n) for all channels of ``problem``: Adam on the relaxed
    objective, each channel starting at its weights' own position between the two grid points.

    ``num_samples`` is the number of calibration samples the Gram matrices sum over (the reconstruction
    term is their mean). The gradient is written out (numpy, float64): the problems are small and an
    autograd step would cost more than its arithmetic."""
    iterations = _check_positive_int("iterations", iterations)
    num_samples = _check_positive_int("num_samples", num_samples)
    step, resid = problem.step, problem.resid
    free = step > 0
    factor = 2.0 * (problem.scale**2)[:, None] / num_samples  # d(reconstruction)/d(d) = factor * (G d + c)
    grams, group = problem.gram, problem.group
    start = np.clip(np.where(free, resid / np.where(free, step, 1.0), 0.5), 0.01, 0.99)
    logits = np.log((start - GAMMA) / (ZETA - start))  # h(logits) = start
    first = np.zeros_like(logits)
    second = np.zeros_like(logits)
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # Adam's defaults
    warmup = int(WARMUP * iterations)
    for it in range(1, iterations + 1):
        sig = _sigmoid(logits)
        raw = _stretched(sig)
        h = np.clip(raw, 0.0, 1.0)
        d = np.where(free, step * h - resid, -resid)
        if grams.shape[0] == 1:
            gd = d @ grams[0]
        else:
            gd = np.einsum("jn,jnm->jm", d, grams[group])
        if problem.cross_lin is not None:
            gd = gd + problem.cross_lin
        grad_h = step * factor * gd
        if it > warmup:
            beta = BETA_START + (BETA_END - BETA_START) * (it - warmup - 1) / max(iterations - warmup - 1, 1)
            centred = 2.0 * h - 1.0
            grad_h = grad_h - reg_weight * 2.0 * beta * np.abs(centred) ** (beta - 1.0) * np.sign(centred)
        grad = np.where(free & (raw > 0.0) & (raw < 1.0), grad_h * (ZETA - GAMMA) * sig * (1.0 - sig), 0.0)
        first = beta1 * first + (1.0 - beta1) * grad
        second = beta2 * second + (1.0 - beta2) * grad * grad
        logits -= learning_rate * (first / (1.0 - beta1**it)) / (np.sqrt(second / (1.0 - beta2**it)) + eps)
    return np.where(free & (_stretched(_sigmoid(logits)) >= 0.5), 1.0, 0.0)


def relaxed_rounding_model(
    model: nn.Module,
    calib: EvalData,
    *,
    bits: int,
    scale: str = "minmax",
    layers: Iterable[str] | None = None,
    iterations: int = 20_000,
    batch_size: int = 256,
    target: str = "layer",
) -> nn.Module:
    """A copy of ``model`` with ``layers`` (default: every Conv2d/Linear) rounded by AdaRound's relaxation,
    in order, each on the inputs the already rounded earlier layers give it (biases stay float).
    ``target`` is the objective, as in :func:`core.formulations.adaround.quantize_model_adaround`:
    ``"layer"`` (AdaRound's own) or ``"fisher"`` (its rows weighted by the Fisher information of the
    predictions, normalised to mean 1, so the regulariser keeps AdaRound's balance)."""
    if target not in ("layer", "fisher"):
        raise InvalidInputError(f"target must be 'layer' or 'fisher', not {target!r}.")
    names = _resolve_layers(model, layers)
    reference = copy.deepcopy(model).eval()
    rounded = copy.deepcopy(model).eval()
    for name in names:
        if target == "fisher":
            gram = _collect_fisher_grams(rounded, name, calib.images, batch_size)
        else:
            gram = _collect_grams(rounded, [name], calib.images, batch_size)[name]
        problem = layer_problem(reference.get_submodule(name), gram, bits, scale=scale, name=name)
        _set_layer(rounded.get_submodule(name), problem, relaxed_rounding(problem, len(calib), iterations=iterations))
    return rounded
