"""Training and validation patches for the per-level segmentation networks.

A patch is ``P × P`` pixels at working downsample ``d`` (``read_at_downsample``) with
its labels at the same downsample (``LabelMask.read_labels``, 255 = ignore).
Conventions as in :mod:`razn.slide.base`: a location is ``(x, y)`` in level-0 px,
sizes ``(w, h)`` at the read level, arrays ``[y, x]``.

Sampling works on a low-resolution map of each slide, computed once when the
dataset is built (:func:`index_slides`): the tissue mask of ``detect_tissue`` and the
labels read at the tissue mask's downsample. A patch centre is either a uniformly
drawn tissue pixel, or — with probability ``balance`` — a pixel of a class drawn
uniformly from the classes present, so rare classes (small tumour foci) are seen
often enough. Patch corners are snapped to multiples of ``d`` so that the image
pixels and the label pixels cover exactly the same level-0 squares.

Randomness: batch ``j`` of epoch ``e`` is drawn with ``default_rng((*key, e, j))``
and worker ``w`` of ``W`` makes batches ``w, w + W, …``; the DataLoader hands them
out in order, so the stream is a function of the key alone, whatever the number of
workers, and a run resumed at a step draws what the uninterrupted run would have.
Slides are opened lazily in each process (OpenSlide handles cannot be pickled).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from razn.data.augment import augment_pair
from razn.data.manifest import ManifestEntry
from razn.data.masks import IGNORE, LabelMask, open_mask
from razn.errors import MaskError, RaznError
from razn.slide import Slide, open_slide, read_at_downsample
from razn.slide.tissue import TissueConfig, detect_tissue


@dataclass(frozen=True)
class SlideRecord:
    """What sampling needs to know of one slide, computed once.

    Attributes:
        slide, mask: the files.
        dimensions: level-0 ``(w, h)`` of the slide.
        map_downsample: level-0 px per pixel of the sampling map (the tissue mask's).
        map_width: width of the sampling map in pixels (flat index = row · width + col).
        tissue: flat indices of the map's tissue pixels (all pixels if none was found).
        classes: class value → flat indices of its pixels on tissue (anywhere if none is).
    """

    slide: Path
    mask: Path
    dimensions: tuple[int, int]
    map_downsample: float
    map_width: int
    tissue: np.ndarray
    classes: dict[int, np.ndarray]

    def centre(self, flat: int, rng: np.random.Generator) -> tuple[float, float]:
        """A uniformly drawn level-0 point ``(x, y)`` inside map pixel ``flat``."""
        row, col = divmod(int(flat), self.map_width)
        u, v = rng.random(2)
        return ((col + u) * self.map_downsample, (row + v) * self.map_downsample)


def index_slides(
    entries: Sequence[ManifestEntry], tissue: TissueConfig, num_classes: int
) -> list[SlideRecord]:
    """A :class:`SlideRecord` of every entry (opens each slide and mask once)."""
    if not entries:
        raise RaznError("no slides to sample patches from; check the manifest's splits")
    return [index_slide(entry, tissue, num_classes) for entry in entries]


def index_slide(entry: ManifestEntry, tissue: TissueConfig, num_classes: int) -> SlideRecord:
    """Detect tissue on ``entry``'s slide and read its labels at the tissue mask's downsample."""
    if entry.mask is None:
        raise MaskError(f"slide {entry.slide} has no mask; training needs one", entry.slide)
    with open_slide(entry.slide) as slide:
        found = detect_tissue(slide, tissue)
        dimensions = slide.dimensions
    height, width = found.mask.shape
    with open_mask(entry.mask, dimensions) as mask:
        # at full resolution: a small region of a bad class vanishes at the tissue mask's
        # downsample and would only surface as a crash in the loss, mid-training
        mask.validate(num_classes)
        labels = mask.read_labels((0, 0), found.downsample, (width, height))
    on_tissue = found.mask.ravel()
    if not on_tissue.any():  # nothing detected: sample the whole slide rather than nothing
        on_tissue = np.ones_like(on_tissue)
    flat = labels.ravel()
    classes = {}
    for value in range(num_classes):
        pixels = np.flatnonzero((flat == value) & on_tissue)
        if pixels.size == 0:
            pixels = np.flatnonzero(flat == value)
        if pixels.size:
            classes[value] = pixels.astype(np.int64)
    return SlideRecord(
        entry.slide,
        entry.mask,
        dimensions,
        found.downsample,
        width,
        np.flatnonzero(on_tissue).astype(np.int64),
        classes,
    )


class CentreSampler:
    """Draws patch centres over a set of slides (see the module docstring).

    Slides are weighted by the level-0 area of what is drawn on them (tissue, or the
    chosen class), so every tissue pixel of the dataset is equally likely.
    """

    def __init__(self, records: Sequence[SlideRecord], balance: float) -> None:
        self.records = list(records)
        self.balance = float(balance)
        area = np.array([r.map_downsample**2 for r in self.records])
        self._tissue_weights = _normalised(np.array([len(r.tissue) for r in self.records]) * area)
        present = sorted({c for r in self.records for c in r.classes})
        self.classes = tuple(present)
        self._class_weights = {
            c: _normalised(np.array([len(r.classes.get(c, ())) for r in self.records]) * area)
            for c in present
        }

    def draw(self, rng: np.random.Generator) -> tuple[int, tuple[float, float]]:
        """``(slide index, level-0 centre (x, y))`` of one patch."""
        if self.classes and rng.random() < self.balance:
            value = self.classes[int(rng.integers(len(self.classes)))]
            index = int(rng.choice(len(self.records), p=self._class_weights[value]))
            pixels = self.records[index].classes[value]
        else:
            index = int(rng.choice(len(self.records), p=self._tissue_weights))
            pixels = self.records[index].tissue
        flat = pixels[int(rng.integers(len(pixels)))]
        return index, self.records[index].centre(flat, rng)


def _normalised(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, np.float64)
    return weights / weights.sum() if weights.sum() > 0 else np.full(len(weights), 1 / len(weights))


def patch_location(centre: tuple[float, float], downsample: float, size: int) -> tuple[int, int]:
    """Level-0 top-left corner of the ``size``-pixel patch at ``downsample`` around ``centre``.

    The corner is snapped to a multiple of ``downsample`` so that the slide's pixel
    grid (``floor(x / d)``) and the label sampling (pixel centres) cover the same squares.
    """
    half = size * downsample / 2
    return (
        round(math.floor((centre[0] - half) / downsample) * downsample),
        round(math.floor((centre[1] - half) / downsample) * downsample),
    )


class PatchReader:
    """Reads aligned image and label patches, opening slides and masks on first use.

    Handles are per process: after a fork (DataLoader workers) or unpickling, the
    reader starts with none and opens what it needs.
    """

    def __init__(self, records: Sequence[SlideRecord]) -> None:
        self.records = list(records)
        self._handles: dict[int, tuple[Slide, LabelMask]] = {}
        self._pid = os.getpid()

    def read(
        self, index: int, location: tuple[int, int], downsample: float, size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(image (P, P, 3) uint8, labels (P, P) uint8)`` of slide ``index`` at ``location``."""
        slide, mask = self._open(index)
        image = read_at_downsample(slide, location, downsample, (size, size))
        labels = mask.read_labels(location, downsample, (size, size))
        return image, labels

    def close(self) -> None:
        """Close every handle this process opened."""
        if self._pid == os.getpid():
            for slide, mask in self._handles.values():
                slide.close()
                mask.close()
        self._handles = {}

    def _open(self, index: int) -> tuple[Slide, LabelMask]:
        if self._pid != os.getpid():  # forked: the parent's handles are not ours to use
            self._handles, self._pid = {}, os.getpid()
        if index not in self._handles:
            record = self.records[index]
            slide = open_slide(record.slide)
            self._handles[index] = (slide, open_mask(record.mask, record.dimensions))
        return self._handles[index]

    def __getstate__(self) -> dict[str, object]:
        return {"records": self.records}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["records"])  # type: ignore[misc, arg-type]


@dataclass(frozen=True)
class PatchSpec:
    """What patches to make: ``size`` px at ``downsample``, and how to draw and augment them."""

    downsample: float
    size: int
    balance: float = 0.5
    augment: bool = True
    colour_jitter: float = 0.08
    margin: int = 0
    """Context px on every side: the patch is read ``size + 2·margin`` a side around the same
    centre, and its labels outside the centre ``size × size`` are ignore (255), so the loss
    and Dice count the centre only (``levels.context``)."""


def draw_patch(
    sampler: CentreSampler, reader: PatchReader, spec: PatchSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One (image, labels) patch: a centre from ``sampler``, read and (maybe) augmented."""
    index, centre = sampler.draw(rng)
    side = spec.size + 2 * spec.margin
    location = patch_location(centre, spec.downsample, side)
    image, labels = reader.read(index, location, spec.downsample, side)
    if spec.margin:
        labels = ignore_margin(labels, spec.margin)
    if spec.augment:
        image, labels = augment_pair(image, labels, rng, spec.colour_jitter)
    return image, labels


def ignore_margin(labels: np.ndarray, margin: int) -> np.ndarray:
    """``labels`` (``[y, x]``) with a ``margin``-px frame set to ignore (255)."""
    out = np.full_like(labels, IGNORE)
    out[margin:-margin, margin:-margin] = labels[margin:-margin, margin:-margin]
    return out


class PatchBatches(IterableDataset):
    """Batches of training patches: ``(images (B, 3, P, P) uint8, labels (B, P, P) uint8)``.

    Use with ``DataLoader(batch_size=None)`` (see :func:`make_loader`); choose which
    batches the next iteration makes with :meth:`set_window`.

    Args:
        records: the slides (see :func:`index_slides`).
        spec: patch size, downsample, balance and augmentation.
        batch_size: patches per batch.
        key: the random stream's seed, e.g. ``(run seed, level)``.
    """

    def __init__(
        self, records: Sequence[SlideRecord], spec: PatchSpec, batch_size: int, key: Sequence[int]
    ) -> None:
        super().__init__()
        self.sampler = CentreSampler(records, spec.balance)
        self.reader = PatchReader(records)
        self.spec = spec
        self.batch_size = batch_size
        self.key = tuple(int(k) for k in key)
        self.window = (0, 0, 0)

    def set_window(self, epoch: int, start: int, stop: int) -> None:
        """The next iteration makes batches ``start … stop − 1`` of ``epoch``."""
        self.window = (int(epoch), int(start), int(stop))

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of ``epoch``: a pure function of the key, epoch and index."""
        rng = np.random.default_rng((*self.key, epoch, index))
        pairs = [
            draw_patch(self.sampler, self.reader, self.spec, rng) for _ in range(self.batch_size)
        ]
        images = np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2)
        labels = np.stack([p[1] for p in pairs])
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start, stop = self.window
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for index in range(start + worker, stop, workers):
            yield self.batch(epoch, index)


def make_loader(dataset: PatchBatches, num_workers: int) -> DataLoader:
    """A DataLoader over ``dataset``'s batches, in order, with ``num_workers`` processes.

    Workers start from a fork server, not a fork of this process: a process that has run
    threaded native code (OpenVINO's thread pool, some BLAS builds) is not safe to fork,
    and a forked worker was seen to return another buffer's bytes as labels."""
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        prefetch_factor=None if num_workers == 0 else 4,
        multiprocessing_context=None if num_workers == 0 else "forkserver",
    )


def validation_set(
    records: Sequence[SlideRecord],
    downsample: float,
    size: int,
    count: int,
    key: Sequence[int],
    margin: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed validation set: ``count`` patches centred on uniformly drawn tissue pixels.

    No class balancing and no augmentation, so Dice on it estimates Dice on the
    slides' tissue. Deterministic for a given ``key``. With a ``margin``, images and labels
    are ``P + 2·margin`` a side and the labels' frame is ignore (:class:`PatchSpec`).

    Returns:
        images ``(N, S, S, 3)`` uint8 and labels ``(N, S, S)`` uint8, ``S = P + 2·margin``.
    """
    spec = PatchSpec(downsample, size, balance=0.0, augment=False, margin=margin)
    sampler, reader = CentreSampler(records, 0.0), PatchReader(records)
    rng = np.random.default_rng(tuple(int(k) for k in key))
    try:
        pairs = [draw_patch(sampler, reader, spec, rng) for _ in range(count)]
    finally:
        reader.close()
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
