"""Reinforcement-learning baseline: a REINFORCE policy-gradient agent in torch."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import dimod
import numpy as np

from core.errors import InvalidInputError
from core.solvers.base import (
    Groups,
    ProgressCallback,
    SeededSampler,
    empty_sampleset,
    resolve_groups,
    resolve_seed,
    validate_positive_float,
    validate_positive_int,
)

__all__ = ["ReinforceSampler"]


def _validate_entropy_coef(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if not np.isfinite(out) or out < 0:
        raise InvalidInputError(
            f"entropy_coef must be zero or positive, got {value!r}."
        )
    return out


class ReinforceSampler(SeededSampler, dimod.Sampler):
    """A REINFORCE agent whose policy proposes whole assignments.

    The policy is a product distribution: a Bernoulli (one logit) for each free
    binary variable and a categorical (one logit per option) for each one-hot
    group, so with groups every proposal picks exactly one option per unit.
    Each iteration draws ``batch_size`` assignments, scores them by energy
    (reward = -energy, standardised within the batch as the baseline), and
    takes one Adam step on ``-mean(advantage * log_prob) - entropy_coef *
    entropy``. Logits start at zero (uniform policy), so the only randomness is
    the seeded sampling.

    The returned SampleSet holds the (at most) ``num_reads`` best distinct
    assignments seen during training, lowest energy first (not independent
    reads).

    Args:
        batch_size, num_iterations, learning_rate, entropy_coef: defaults for
            the sample parameters of the same names.

    Sample parameters (None means the sampler's default):
        num_reads: number of distinct best assignments returned (default 10).
        batch_size: assignments per policy update (default 64).
        num_iterations: policy updates (default 300).
        learning_rate: Adam step size on the logits (default 0.1).
        entropy_coef: weight of the entropy bonus (default 0.01).
        groups: one-hot groups (list of lists of variables), ``"auto"`` for the
            ``(unit, option)`` label convention, or None (all variables free).
        seed: random seed (drawn and recorded in ``info["seed"]`` if None).
        progress_callback: ``f(iteration, num_iterations)`` after each update.
    """

    _parameters: dict[str, list[str]] = {
        "num_reads": [],
        "batch_size": [],
        "num_iterations": [],
        "learning_rate": [],
        "entropy_coef": [],
        "groups": [],
        "seed": [],
        "progress_callback": [],
    }
    _properties: dict[str, Any] = {
        "backend": "torch",
        "algorithm": "REINFORCE",
    }

    def __init__(
        self,
        *,
        batch_size: int = 64,
        num_iterations: int = 300,
        learning_rate: float = 0.1,
        entropy_coef: float = 0.01,
    ) -> None:
        self.batch_size = validate_positive_int(batch_size, "batch_size")
        self.num_iterations = validate_positive_int(num_iterations, "num_iterations")
        self.learning_rate = validate_positive_float(learning_rate, "learning_rate")
        self.entropy_coef = _validate_entropy_coef(entropy_coef)

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        *,
        num_reads: int = 10,
        batch_size: int | None = None,
        num_iterations: int | None = None,
        learning_rate: float | None = None,
        entropy_coef: float | None = None,
        groups: Groups | str | None = None,
        seed: int | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> dimod.SampleSet:
        """Train the agent; see the class docstring for the parameters."""
        num_reads = validate_positive_int(num_reads, "num_reads")
        batch_size = validate_positive_int(
            self.batch_size if batch_size is None else batch_size, "batch_size"
        )
        num_iterations = validate_positive_int(
            self.num_iterations if num_iterations is None else num_iterations,
            "num_iterations",
        )
        learning_rate = validate_positive_float(
            self.learning_rate if learning_rate is None else learning_rate,
            "learning_rate",
        )
        entropy_coef = _validate_entropy_coef(
            self.entropy_coef if entropy_coef is None else entropy_coef
        )
        group_lists = resolve_groups(bqm, groups)
        seed = resolve_seed(seed)
        n = bqm.num_variables
        if n == 0:
            return empty_sampleset(bqm, 1, seed=seed)

        import torch

        order: list[Hashable] = list(bqm.variables)
        index = {v: i for i, v in enumerate(order)}
        binary = (
            bqm
            if bqm.vartype is dimod.BINARY
            else bqm.change_vartype(dimod.BINARY, inplace=False)
        )

        grouped = {v for g in group_lists for v in g}
        free_idx = torch.tensor(
            [index[v] for v in order if v not in grouped], dtype=torch.long
        )
        num_groups = len(group_lists)
        kmax = max((len(g) for g in group_lists), default=1)
        group_idx = torch.zeros((num_groups, kmax), dtype=torch.long)
        group_mask = torch.zeros((num_groups, kmax), dtype=torch.bool)
        for gi, g in enumerate(group_lists):
            group_idx[gi, : len(g)] = torch.tensor([index[v] for v in g])
            group_mask[gi, : len(g)] = True

        generator = torch.Generator().manual_seed(seed)
        free_logits = torch.zeros(
            len(free_idx), dtype=torch.float64, requires_grad=True
        )
        group_logits = torch.zeros(
            (num_groups, kmax), dtype=torch.float64, requires_grad=True
        )
        optimizer = torch.optim.Adam([free_logits, group_logits], lr=learning_rate)
        neg_inf = torch.tensor(float("-inf"), dtype=torch.float64)

        best: dict[bytes, float] = {}
        rows = torch.arange(batch_size)
        for iteration in range(1, num_iterations + 1):
            x = torch.zeros((batch_size, n), dtype=torch.float64)
            log_prob = torch.zeros(batch_size, dtype=torch.float64)
            entropy = torch.zeros((), dtype=torch.float64)
            if len(free_idx):
                probs = torch.sigmoid(free_logits.detach()).expand(batch_size, -1)
                bits = torch.bernoulli(probs, generator=generator)
                x[:, free_idx] = bits
                # log sigmoid(l) = -softplus(-l) (softplus is also much faster here)
                logsig_on = -torch.nn.functional.softplus(-free_logits)
                logsig_off = -torch.nn.functional.softplus(free_logits)
                log_prob = log_prob + (bits * logsig_on + (1 - bits) * logsig_off).sum(
                    dim=1
                )
                p = torch.sigmoid(free_logits)
                entropy = entropy - (p * logsig_on + (1 - p) * logsig_off).sum()
            if num_groups:
                logits = torch.where(group_mask, group_logits, neg_inf)
                log_p = torch.log_softmax(logits, dim=1)
                choice = torch.multinomial(
                    log_p.detach().exp(),
                    batch_size,
                    replacement=True,
                    generator=generator,
                )
                chosen = group_idx.gather(1, choice)  # (groups, batch)
                for gi in range(num_groups):
                    x[rows, chosen[gi]] = 1.0
                log_prob = log_prob + log_p.gather(1, choice).sum(dim=0)
                p_group = log_p.exp()
                # masked_fill before the product: 0 * -inf would be NaN, and its gradient too
                entropy = entropy - (p_group * log_p.masked_fill(~group_mask, 0.0)).sum()

            states = x.numpy().astype(np.int8)
            energies = binary.energies((states, order))
            for state, energy in zip(states, energies, strict=True):
                best.setdefault(state.tobytes(), float(energy))
            if len(best) > 4 * num_reads + batch_size:
                best = dict(sorted(best.items(), key=lambda kv: kv[1])[:num_reads])

            reward = -torch.as_tensor(energies, dtype=torch.float64)
            std = (
                reward.std()
                if batch_size > 1
                else torch.tensor(0.0, dtype=torch.float64)
            )
            advantage = (reward - reward.mean()) / (std + 1e-9)
            loss = -(advantage * log_prob).mean() - entropy_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if progress_callback is not None:
                progress_callback(iteration, num_iterations)

        top = sorted(best.items(), key=lambda kv: kv[1])[:num_reads]
        samples = np.array([np.frombuffer(k, dtype=np.int8) for k, _ in top])
        if bqm.vartype is dimod.SPIN:
            samples = 2 * samples - 1
        sampleset = dimod.SampleSet.from_samples_bqm((samples, order), bqm)
        sampleset.info.update(
            seed=seed,
            num_iterations=num_iterations,
            batch_size=batch_size,
            num_evaluations=num_iterations * batch_size,
            num_groups=num_groups,
        )
        return sampleset
