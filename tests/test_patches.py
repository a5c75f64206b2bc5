"""Training patches: image/label alignment, augmentation, class balance, determinism."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from razn.data.augment import augment_pair, flip_rotate, jitter_colour
from razn.data.manifest import ManifestEntry
from razn.data.patches import (
    CentreSampler,
    PatchBatches,
    PatchReader,
    PatchSpec,
    draw_patch,
    index_slides,
    make_loader,
    patch_location,
    validation_set,
)
from razn.errors import MaskError
from razn.slide import write_zarr_slide
from razn.slide.tissue import TissueConfig

BLOCK = 32  # labels are constant on 32×32 level-0 blocks aligned to the origin
WIDTH, HEIGHT = 1024, 768
# Saturated colours (tissue for the saturation detector), one per label; white = glass = 0.
PALETTE = {0: (200, 60, 120), 1: (60, 60, 200), 2: (60, 180, 60), 255: (150, 150, 20)}


def block_labels(seed: int = 0, minority: float | None = None) -> np.ndarray:
    """Level-0 labels ``[y, x]``: random classes 0–2 (and some 255) on 32-px blocks.

    With ``minority``, only classes 0 and 1 with class 1 on that share of the blocks.
    """
    rng = np.random.default_rng(seed)
    shape = (HEIGHT // BLOCK, WIDTH // BLOCK)
    if minority is None:
        blocks = rng.choice(np.array([0, 1, 2, 255], np.uint8), shape, p=[0.4, 0.3, 0.2, 0.1])
    else:
        blocks = (rng.random(shape) < minority).astype(np.uint8)
    return np.kron(blocks, np.ones((BLOCK, BLOCK), np.uint8))


def paint(labels: np.ndarray) -> np.ndarray:
    """The RGB image whose colour at each pixel says its label (see PALETTE)."""
    image = np.zeros((*labels.shape, 3), np.uint8)
    for value, colour in PALETTE.items():
        image[labels == value] = colour
    return image


def decode(image: np.ndarray) -> np.ndarray:
    """Labels from a painted image; white (outside the slide) reads as 0 like masks do."""
    out = np.full(image.shape[:2], 77, np.uint8)  # 77: a colour that is in no palette
    for value, colour in PALETTE.items():
        out[(image == colour).all(axis=-1)] = value
    out[(image == 255).all(axis=-1)] = 0
    return out


def write_dataset(tmp_path: Path, labels: np.ndarray, levels: int = 4) -> ManifestEntry:
    """A zarr slide painted from ``labels`` (pyramid by 2× subsampling) and a PNG mask at 1/4."""
    image = paint(labels)
    pyramid = [image[:: 2**k, :: 2**k] for k in range(levels)]
    slide = write_zarr_slide(tmp_path / "slide.zarr", pyramid, mpp=(0.5, 0.5))
    mask = tmp_path / "mask.png"
    Image.fromarray(np.ascontiguousarray(labels[1::4, 1::4])).save(mask)  # blocks stay exact
    return ManifestEntry(slide, mask, "train")


@pytest.fixture
def entry(tmp_path: Path) -> ManifestEntry:
    return write_dataset(tmp_path, block_labels())


@pytest.mark.parametrize("levels", [4, 2])  # 2: downsamples 4 and 8 are resized from level 1
@pytest.mark.parametrize("downsample", [1.0, 2.0, 4.0, 8.0])
def test_patches_and_labels_align_exactly(tmp_path, levels, downsample):
    entry = write_dataset(tmp_path, block_labels(), levels=levels)
    records = index_slides([entry], TissueConfig(), num_classes=3)
    images, labels = validation_set(records, downsample, 32, count=12, key=(1,))
    assert images.shape == (12, 32, 32, 3) and labels.shape == (12, 32, 32)
    for image, label in zip(images, labels, strict=True):
        np.testing.assert_array_equal(decode(image), label)
    assert len(np.unique(labels)) > 1  # the check saw class borders


def test_patch_corner_is_snapped_to_the_level_grid():
    assert patch_location((100.0, 37.0), 4.0, 16) == (68, 4)  # (100 − 32) → 68, (37 − 32) → 4
    x, y = patch_location((1234.5, 987.6), 8.0, 64)
    assert x % 8 == 0 and y % 8 == 0 and abs(x + 256 - 1234.5) <= 8


def test_augmentation_keeps_image_and_labels_aligned(entry):
    records = index_slides([entry], TissueConfig(), num_classes=3)
    reader, sampler = PatchReader(records), CentreSampler(records, 0.5)
    spec = PatchSpec(2.0, 48, augment=True, colour_jitter=0.0)
    rng = np.random.default_rng(3)
    for _ in range(16):
        image, labels = draw_patch(sampler, reader, spec, rng)
        np.testing.assert_array_equal(decode(image), labels)


def test_flips_and_rotations_cover_the_eight_symmetries_and_move_pairs_together():
    y, x = np.mgrid[0:5, 0:7]
    image = np.stack([x, y, x + y], axis=-1).astype(np.uint8)
    labels = (10 * y + x).astype(np.uint8)
    seen = set()
    for seed in range(64):
        out_image, out_labels = flip_rotate(image, labels, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_labels, 10 * out_image[..., 1] + out_image[..., 0])
        seen.add(out_labels.tobytes() + bytes(out_labels.shape))
    assert len(seen) == 8


def test_colour_jitter_is_mild_and_leaves_labels_alone():
    rng = np.random.default_rng(0)
    image = rng.integers(30, 220, (16, 16, 3), dtype=np.uint8)
    jittered = jitter_colour(image, np.random.default_rng(1), 0.08)
    assert jittered.dtype == np.uint8 and jittered.shape == image.shape
    difference = np.abs(jittered.astype(int) - image.astype(int))
    assert 0 < difference.mean() < 30
    labels = rng.integers(0, 3, (16, 16), dtype=np.uint8)
    _, out = augment_pair(image, labels, np.random.default_rng(5), 0.08)
    _, expected = flip_rotate(image, labels, np.random.default_rng(5))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(("balance", "expected"), [(1.0, 0.5), (0.5, None), (0.0, None)])
def test_class_balance_gives_the_minority_its_share(tmp_path, balance, expected):
    labels = block_labels(seed=2, minority=0.06)
    entry = write_dataset(tmp_path, labels)
    records = index_slides([entry], TissueConfig(), num_classes=2)
    sampler, rng = CentreSampler(records, balance), np.random.default_rng(0)
    hits = []
    for _ in range(3000):
        _, (x, y) = sampler.draw(rng)
        hits.append(labels[int(y), int(x)] == 1)
    tissue_share = labels.mean()  # every block is tissue (saturated colours)
    if expected is None:  # a mix: balance / K + (1 − balance) · the class's natural share
        expected = balance / 2 + (1 - balance) * tissue_share
    assert np.mean(hits) == pytest.approx(expected, abs=0.04)


def test_validation_set_is_deterministic(entry):
    records = index_slides([entry], TissueConfig(), num_classes=3)
    first = validation_set(records, 2.0, 32, 10, key=(0, 1))
    again = validation_set(records, 2.0, 32, 10, key=(0, 1))
    other = validation_set(records, 2.0, 32, 10, key=(0, 2))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_batch_stream_does_not_depend_on_the_number_of_workers(entry):
    records = index_slides([entry], TissueConfig(), num_classes=3)
    batches = PatchBatches(records, PatchSpec(2.0, 32), batch_size=3, key=(7, 0))
    batches.set_window(epoch=1, start=2, stop=7)
    serial = list(make_loader(batches, num_workers=0))
    parallel = list(make_loader(batches, num_workers=2))
    assert len(serial) == len(parallel) == 5
    for (a_img, a_lab), (b_img, b_lab) in zip(serial, parallel, strict=True):
        assert a_img.shape == (3, 3, 32, 32) and a_lab.shape == (3, 32, 32)
        assert np.array_equal(a_img.numpy(), b_img.numpy())
        assert np.array_equal(a_lab.numpy(), b_lab.numpy())
    np.testing.assert_array_equal(batches.batch(1, 2)[0].numpy(), serial[0][0].numpy())
    clone = pickle.loads(pickle.dumps(batches))  # open handles are not pickled
    np.testing.assert_array_equal(clone.batch(1, 3)[1].numpy(), serial[1][1].numpy())


def test_labels_outside_the_classes_are_refused(tmp_path):
    entry = write_dataset(tmp_path, block_labels())
    with pytest.raises(MaskError, match=r"class values 2 outside 0..1"):
        index_slides([entry], TissueConfig(), num_classes=2)


def test_a_context_margin_grows_the_patch_around_the_same_centre_and_ignores_its_frame(entry):
    # levels.context: the image is read 2·margin px larger around the same centre, and the
    # labels outside the centre are ignore (255), so training scores the centre only.
    records = index_slides([entry], TissueConfig(), num_classes=3)
    images, labels = validation_set(records, 2.0, 32, 6, key=(0, 1))
    wide_images, wide_labels = validation_set(records, 2.0, 32, 6, key=(0, 1), margin=8)
    assert wide_images.shape == (6, 48, 48, 3) and wide_labels.shape == (6, 48, 48)
    np.testing.assert_array_equal(wide_images[:, 8:40, 8:40], images)
    np.testing.assert_array_equal(wide_labels[:, 8:40, 8:40], labels)
    frame = np.ones((48, 48), bool)
    frame[8:40, 8:40] = False
    assert (wide_labels[:, frame] == 255).all()
    for image, label in zip(wide_images, wide_labels, strict=True):  # the frame is real slide
        np.testing.assert_array_equal(decode(image)[8:40, 8:40], label[8:40, 8:40])
    assert (decode(wide_images[0])[frame] != 255).any()
