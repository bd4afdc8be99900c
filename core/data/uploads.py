"""Evaluation data the user brings: an ``.npz`` upload or a torchvision data set
from a local folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from core.data.dataset import EvalData
from core.errors import InvalidInputError, UnavailableError

MAX_NPZ_BYTES = 200 * 1024 * 1024
MAX_EXAMPLES = 100_000

EXPECTED_NPZ = (
    "Expected a .npz file with two arrays: 'images' of shape (N, C, H, W) and "
    "'labels' of shape (N,) holding class indices 0..K-1."
)


def load_npz(source: bytes | str | Path, *, name: str = "uploaded") -> EvalData:
    """Validate and load an ``.npz`` evaluation set."""
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if len(raw) > MAX_NPZ_BYTES:
        raise InvalidInputError(
            f"The data file is {len(raw) / 2**20:.0f} MiB; the limit is "
            f"{MAX_NPZ_BYTES / 2**20:.0f} MiB. Upload a smaller evaluation subset."
        )
    if not raw.startswith(b"PK"):
        kind = "a single .npy array" if raw.startswith(b"\x93NUMPY") else "not a .npz (zip) archive"
        raise InvalidInputError(f"The data file is {kind}. {EXPECTED_NPZ}")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInputError(f"The data file could not be read as .npz ({exc}). {EXPECTED_NPZ}") from None
    missing = {"images", "labels"} - arrays.keys()
    if missing:
        raise InvalidInputError(f"The data file has no {' or '.join(sorted(missing))} array. {EXPECTED_NPZ}")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim == 3:  # (N, H, W) grayscale: add the channel axis
        images = images[:, None]
    if images.ndim != 4:
        raise InvalidInputError(f"'images' has shape {images.shape}; {EXPECTED_NPZ}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise InvalidInputError(
            f"'labels' has shape {labels.shape} but there are {images.shape[0]} images; {EXPECTED_NPZ}"
        )
    if not 0 < images.shape[0] <= MAX_EXAMPLES:
        raise InvalidInputError(f"The data must hold between 1 and {MAX_EXAMPLES} examples, not {images.shape[0]}.")
    if not np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_:
        raise InvalidInputError(f"'images' must be numeric, not {images.dtype}.")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise InvalidInputError(f"'labels' must be integer class indices, not {labels.dtype}.")
    images = images.astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise InvalidInputError("'images' contains NaN or infinite values.")
    if labels.min() < 0:
        raise InvalidInputError("'labels' contains negative values; class indices start at 0.")
    num_classes = int(labels.max()) + 1
    if num_classes > 10_000:
        raise InvalidInputError(f"'labels' goes up to {num_classes - 1}; that is not a class index.")
    return EvalData(name, torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), num_classes)


TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def load_torchvision_dataset(
    name: str, root: str | Path, *, train: bool = False, download: bool = False, limit: int = 10_000
) -> EvalData:
    """MNIST, Fashion-MNIST or CIFAR-10 from ``root``; downloaded only if asked."""
    import torchvision

    if name not in TORCHVISION_DATASETS:
        raise InvalidInputError(f"Unknown data set {name!r}; choose one of {', '.join(TORCHVISION_DATASETS)}.")
    cls = getattr(torchvision.datasets, TORCHVISION_DATASETS[name])
    try:
        ds = cls(str(root), train=train, download=download)
    except RuntimeError as exc:
        hint = "" if download else " Put the files there or allow downloading (needs a network connection)."
        raise UnavailableError(f"{TORCHVISION_DATASETS[name]} was not found in {root}.{hint}") from exc
    except OSError as exc:
        raise UnavailableError(f"Could not download {TORCHVISION_DATASETS[name]}: no network connection ({exc}).") from exc
    data = np.asarray(ds.data)[:limit]
    images = torch.from_numpy(data.astype(np.float32) / 255.0)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(ds.targets)[:limit], dtype=torch.int64)
    return EvalData(name, images.contiguous(), labels, 10)
