"""Evaluation data: the fixed digits split, validated .npz uploads, adapt and
random_data (issue 2, "Data")."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from core.data import EvalData, adapt, digits_split, load_npz, random_data
from core.errors import InvalidInputError

EXPECTED = "Expected a .npz file with two arrays"


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _images(n: int = 6, shape=(1, 4, 4), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


# ----------------------------------------------------------------------------- digits split


def test_digits_split_sizes_shapes_and_ranges():
    split = digits_split()
    assert (len(split.train), len(split.val), len(split.test)) == (1257, 180, 360)
    for part in (split.train, split.val, split.test):
        assert part.images.dtype == torch.float32 and part.labels.dtype == torch.int64
        assert part.input_shape == (1, 8, 8) and part.num_classes == 10
        assert 0.0 <= part.images.min() and part.images.max() <= 1.0
    assert set(split.test.labels.tolist()) == set(range(10))


def test_digits_split_is_a_partition_of_the_bundled_digits():
    """Every one of the 1797 images appears in exactly one part (multiset equality)."""
    split = digits_split()
    bunch = load_digits()
    full = np.hstack([bunch.images.reshape(len(bunch.target), -1) / 16.0, bunch.target[:, None]])
    parts = np.vstack([
        np.hstack([p.images.reshape(len(p), -1).double().numpy(), p.labels[:, None].numpy()])
        for p in (split.train, split.val, split.test)
    ])
    assert parts.shape == full.shape == (1797, 65)

    def rows(a):
        return a[np.lexsort(a.T[::-1])]

    np.testing.assert_allclose(rows(parts), rows(full), atol=1e-7)


def test_digits_split_is_fixed():
    """Same content across calls, cache clears and machines (documented seed-0 split)."""
    before = {p: getattr(digits_split(), p).content_hash() for p in ("train", "val", "test")}
    digits_split.cache_clear()
    after = {p: getattr(digits_split(), p).content_hash() for p in ("train", "val", "test")}
    assert before == after
    assert digits_split().test.labels[:10].tolist() == [0, 8, 8, 9, 8, 3, 7, 5, 0, 6]
    assert digits_split().val.labels[:10].tolist() == [4, 7, 6, 6, 2, 3, 3, 8, 6, 1]


# ----------------------------------------------------------------------------- adapt / random / subset


def test_adapt_resizes_and_repeats_channels():
    test = digits_split().test
    rgb = adapt(test, 3, 32)
    assert rgb.images.shape == (360, 3, 32, 32) and rgb.input_shape == (3, 32, 32)
    assert torch.equal(rgb.labels, test.labels) and rgb.num_classes == 10
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 2])  # grey repeated
    back = adapt(rgb, 1, 8)
    assert back.images.shape == (360, 1, 8, 8)
    same = adapt(test, 1, 8)
    assert torch.equal(same.images, test.images)
    two = EvalData("two", torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])[None].repeat(3, 1, 1, 1),
                   torch.zeros(3, dtype=torch.long), 1)
    assert torch.allclose(adapt(two, 1, 2).images, torch.full((3, 1, 2, 2), 0.5))  # channels averaged


def test_random_data_is_seeded_and_shaped():
    a = random_data((3, 16, 16), n=10, num_classes=4, seed=1)
    b = random_data((3, 16, 16), n=10, num_classes=4, seed=1)
    c = random_data((3, 16, 16), n=10, num_classes=4, seed=2)
    assert a.images.shape == (10, 3, 16, 16) and a.labels.shape == (10,)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert 0 <= a.labels.min() and a.labels.max() < 4


def test_subset_is_fixed_and_bounded():
    test = digits_split().test
    s1, s2 = test.subset(50, seed=3), test.subset(50, seed=3)
    assert len(s1) == 50 and torch.equal(s1.labels, s2.labels)
    assert test.subset(1000) is test


# ----------------------------------------------------------------------------- load_npz: good files


def test_load_npz_nchw(tmp_path):
    images = _images(6, (3, 5, 5))
    labels = np.array([0, 1, 2, 2, 1, 4])
    raw = _npz(images=images, labels=labels)
    data = load_npz(raw, name="mine")
    assert data.name == "mine" and data.images.shape == (6, 3, 5, 5)
    assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
    np.testing.assert_array_equal(data.images.numpy(), images)
    assert data.labels.tolist() == labels.tolist() and data.num_classes == 5
    path = tmp_path / "data.npz"
    path.write_bytes(raw)
    for source in (path, str(path)):
        assert torch.equal(load_npz(source).images, data.images)


def test_load_npz_adds_the_channel_axis_to_nhw():
    data = load_npz(_npz(images=np.zeros((4, 7, 7), dtype=np.uint8), labels=np.arange(4, dtype=np.uint8)))
    assert data.images.shape == (4, 1, 7, 7) and data.images.dtype == torch.float32
    assert data.labels.dtype == torch.int64


def test_load_npz_accepts_integral_float_labels():
    data = load_npz(_npz(images=_images(3), labels=np.array([2.0, 0.0, 1.0])))
    assert data.labels.tolist() == [2, 0, 1] and data.labels.dtype == torch.int64


def test_load_npz_compressed_with_extra_arrays():
    buf = io.BytesIO()
    np.savez_compressed(buf, images=_images(2), labels=np.array([0, 1]), notes=np.array([1, 2, 3]))
    assert len(load_npz(buf.getvalue())) == 2


# ----------------------------------------------------------------------------- load_npz: bad files


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, _images(3))
    return buf.getvalue()


BAD_NPZ = [
    pytest.param(lambda: np.random.default_rng(0).bytes(300), [EXPECTED], id="random-bytes"),
    pytest.param(lambda: b"images,labels\n0.1,2\n", [EXPECTED], id="csv-text"),
    pytest.param(lambda: b"", [EXPECTED], id="empty-file"),
    pytest.param(lambda: _npz(images=_images(40, (1, 8, 8)), labels=np.arange(40))[:400],
                 ["could not be read", EXPECTED], id="truncated-zip"),
    pytest.param(lambda: _npz(labels=np.arange(3)), ["no images", EXPECTED], id="missing-images"),
    pytest.param(lambda: _npz(images=_images(3)), ["no labels", EXPECTED], id="missing-labels"),
    pytest.param(lambda: _npz(x=_images(3), y=np.arange(3)), ["no images or labels", EXPECTED], id="missing-both"),
    pytest.param(lambda: _npz(images=np.zeros(3), labels=np.arange(3)), ["'images' has shape (3,)", EXPECTED],
                 id="images-1d"),
    pytest.param(lambda: _npz(images=np.zeros((3, 1, 2, 2, 2)), labels=np.arange(3)), ["'images' has shape", EXPECTED],
                 id="images-5d"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.arange(4)), ["'labels' has shape (4,)", "3 images"],
                 id="label-count-mismatch"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.zeros((3, 1), dtype=int)), ["'labels' has shape (3, 1)"],
                 id="labels-2d"),
    pytest.param(lambda: _npz(images=np.full((3, 1, 2, 2), np.nan), labels=np.arange(3)), ["NaN or infinite"],
                 id="nan-images"),
    pytest.param(lambda: _npz(images=np.full((3, 1, 2, 2), np.inf), labels=np.arange(3)), ["NaN or infinite"],
                 id="inf-images"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.array([0, -1, 2])), ["negative"], id="negative-labels"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.array([0.0, 1.5, 2.0])), ["integer class indices"],
                 id="non-integral-labels"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.array([0.0, np.nan, 2.0])), ["integer class indices"],
                 id="nan-labels"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.array([True, False, True])), ["integer class indices"],
                 id="bool-labels"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.array(["a", "b", "c"])), ["integer class indices"],
                 id="string-labels"),
    pytest.param(lambda: _npz(images=np.full((3, 1, 2, 2), "x"), labels=np.arange(3)), ["numeric"],
                 id="string-images"),
    pytest.param(lambda: _npz(images=np.array([None, None, None], dtype=object), labels=np.arange(3)),
                 ["could not be read", "allow_pickle=False"], id="object-images"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.array([0, "a", None], dtype=object)),
                 ["could not be read"], id="object-labels"),
    pytest.param(lambda: _npz(images=np.zeros((0, 1, 2, 2)), labels=np.zeros(0, dtype=int)), ["between 1 and"],
                 id="no-examples"),
    pytest.param(lambda: _npz(images=_images(3), labels=np.array([0, 1, 10**9])), ["not a class index"],
                 id="absurd-label"),
    pytest.param(_npy, [EXPECTED], id="npy-not-npz"),
]


@pytest.mark.parametrize("make, needles", BAD_NPZ)
def test_bad_npz_is_refused_with_a_clear_message(make, needles):
    with pytest.raises(InvalidInputError) as info:
        load_npz(make())
    message = str(info.value)
    for needle in needles:
        assert needle in message
    assert "Traceback" not in message


def test_non_npz_message_does_not_advise_unsafe_loading():
    with pytest.raises(InvalidInputError) as info:
        load_npz(b"images,labels\n0.1,2\n")
    assert "unsafely" not in str(info.value)


def test_oversized_npz_is_refused_before_parsing(monkeypatch):
    from core.data import uploads

    monkeypatch.setattr(uploads, "MAX_NPZ_BYTES", 100)
    with pytest.raises(InvalidInputError, match="the limit is"):
        load_npz(b"\0" * 101)


def test_split_is_disjoint_seeded_and_complete() -> None:
    data = digits_split().val
    calib, rest = data.split(50, seed=3)
    assert (len(calib), len(rest)) == (50, len(data) - 50)
    rows = {tuple(r) for r in data.images.flatten(1).tolist()}
    a, b = ({tuple(r) for r in part.images.flatten(1).tolist()} for part in (calib, rest))
    assert a | b == rows and not (a & b)
    again, _ = data.split(50, seed=3)
    assert torch.equal(again.images, calib.images)
    with pytest.raises(ValueError):
        data.split(len(data))


def test_uploaded_data_calibrates_on_examples_it_never_scores() -> None:
    from core.errors import InvalidInputError
    from core.models import load_model
    from core.workspace import workspace_from_model

    data = digits_split().test
    ws = workspace_from_model("upload:x", load_model("digits-cnn"), data=data)
    assert len(ws.calibration) == 180 and len(ws.data) == 180  # at most half calibrates
    seen = {tuple(r) for r in ws.calibration.images.flatten(1).tolist()}
    assert not seen & {tuple(r) for r in ws.data.images.flatten(1).tolist()}
    big = workspace_from_model("upload:x", load_model("digits-cnn"), data=digits_split().train)
    assert len(big.calibration) == 256 and len(big.data) == len(digits_split().train) - 256
    with pytest.raises(InvalidInputError, match="At least 2"):
        workspace_from_model("upload:x", load_model("digits-cnn"), data=data.subset(1))
