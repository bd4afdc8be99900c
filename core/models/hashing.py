"""Content hash of a model: the cache key for everything measured on it."""

from __future__ import annotations

import hashlib
import itertools
import weakref

import torch
from torch import nn

# module -> (version counters of its tensors, hash). Tensors bump their version
# on every in-place change, so a stale entry is recognised without rehashing.
_MEMO: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], str]] = weakref.WeakKeyDictionary()


def _versions(model: nn.Module) -> tuple[int, ...]:
    return tuple(t._version for t in itertools.chain(model.parameters(), model.buffers()))


def model_hash(model: nn.Module) -> str:
    """Hash of a model's class and state (parameters and buffers).

    Hashing ResNet-18 takes tens of milliseconds, and pages ask for it on every
    rerun, so the result is remembered per module until a tensor changes.
    """
    versions = _versions(model)
    memo = _MEMO.get(model)
    if memo is not None and memo[0] == versions:
        return memo[1]
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    digest = h.hexdigest()[:16]
    _MEMO[model] = (versions, digest)
    return digest
