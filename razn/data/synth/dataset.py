"""A synthetic dataset: N slides with masks, a manifest and the record of how they were made.

Layout of ``out_dir``::

    slides/synth_000.tiff ...   pyramidal JPEG slides (OpenSlide: Aperio)
    masks/synth_000_mask.tiff   uint8 masks: 0 = not tumour, 1 = tumour (``classes: bach``:
                                0 normal, 1 benign, 2 in situ, 3 invasive)
    manifest.csv                slide,mask,split (paths relative to out_dir)
    config.yaml                 the resolved SynthConfig (reusable with --config)
    dataset.yaml                size, dataset seed, class names and colours, and each
                                slide's derived seed

Split rule (see :func:`split_names`): slide ``i`` is train for the first ``n_train``
indices, then val, then test. Slides are independent draws, so taking them in index
order biases nothing and adding slides to a dataset keeps the early ones in train.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from razn.config import dump_yaml, to_dict
from razn.data.manifest import ManifestEntry, Split, write_manifest
from razn.data.synth.config import SynthConfig
from razn.data.synth.slide_writer import write_synthetic_slide
from razn.errors import RaznError


def make_dataset(
    out_dir: str | PathLike[str],
    n_slides: int,
    width: int,
    height: int,
    seed: int,
    config: SynthConfig,
    *,
    progress: bool = False,
) -> Path:
    """Write ``n_slides`` synthetic slides of ``width x height`` level-0 px; return the manifest path.

    Slide ``i`` uses the seed :func:`slide_seed` ``(seed, i)``, so every slide differs and the
    whole dataset is a function of ``seed``, the size and ``config``.
    """
    if n_slides < 1:
        raise RaznError(f"the number of slides must be at least 1, got {n_slides}")
    if seed < 0:
        raise RaznError(f"the seed must be a non-negative integer, got {seed}")
    out = Path(out_dir)
    (out / "slides").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    splits = split_names(n_slides, config.val_fraction, config.test_fraction)
    digits = max(3, len(str(n_slides - 1)))
    entries, record = [], []
    for i in tqdm(range(n_slides), desc="slides", unit="slide", disable=not progress):
        name = f"synth_{i:0{digits}d}"
        slide, mask = out / "slides" / f"{name}.tiff", out / "masks" / f"{name}_mask.tiff"
        write_synthetic_slide(
            slide, mask, width, height, slide_seed(seed, i), config, progress=progress
        )
        entries.append(ManifestEntry(slide=slide, mask=mask, split=splits[i]))
        record.append({"slide": slide.name, "seed": slide_seed(seed, i), "split": splits[i]})
    dump_yaml(config, out / "config.yaml")
    dataset = {
        "width": width,
        "height": height,
        "seed": seed,
        # what a run config's data.class_names (and the outputs' colours) should say
        "class_names": list(config.class_names),
        "class_colours": [list(rgb) for rgb in config.class_colours],
        "slides": record,
    }
    (out / "dataset.yaml").write_text(yaml.safe_dump(dataset, sort_keys=False), encoding="utf-8")
    return write_manifest(out / "manifest.csv", entries)


def ensure_dataset(
    out_dir: str | PathLike[str],
    n_slides: int,
    width: int,
    height: int,
    seed: int,
    config: SynthConfig,
    *,
    progress: bool = False,
) -> Path:
    """The manifest of the dataset :func:`make_dataset` would write, made only if needed.

    An existing dataset in ``out_dir`` is reused when its ``dataset.yaml`` (size, seed,
    slide count) and ``config.yaml`` (every generator setting) match and every file it
    lists is present; otherwise it is generated again.
    """
    out = Path(out_dir)
    if _dataset_matches(out, n_slides, width, height, seed, config):
        return out / "manifest.csv"
    return make_dataset(out, n_slides, width, height, seed, config, progress=progress)


def _dataset_matches(
    out: Path, n_slides: int, width: int, height: int, seed: int, config: SynthConfig
) -> bool:
    manifest, record, recorded_config = (
        out / "manifest.csv",
        out / "dataset.yaml",
        out / "config.yaml",
    )
    if not (manifest.is_file() and record.is_file() and recorded_config.is_file()):
        return False
    made = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
    slides = made.get("slides") or []
    if (made.get("width"), made.get("height"), made.get("seed"), len(slides)) != (
        width,
        height,
        seed,
        n_slides,
    ):
        return False
    if yaml.safe_load(recorded_config.read_text(encoding="utf-8")) != to_dict(config):
        return False
    return all(
        (out / "slides" / s["slide"]).is_file()
        and (out / "masks" / s["slide"].replace(".tiff", "_mask.tiff")).is_file()
        for s in slides
    )


def slide_seed(seed: int, index: int) -> int:
    """The seed of slide ``index`` of a dataset made with ``seed`` (a 32-bit integer)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


def split_names(n: int, val_fraction: float = 0.15, test_fraction: float = 0.15) -> list[Split]:
    """The split of each of ``n`` slides: train first, then val, then test.

    ``n_test = round(n * test_fraction)``, at least 1 when ``n >= 2``; ``n_val = round(n *
    val_fraction)``, at least 1 when ``n >= 3``; a fraction of 0 means none. Train keeps the
    rest. For 70/15/15 (train/val/test): n = 1 -> 1/0/0, 2 -> 1/0/1, 3 -> 1/1/1, 10 -> 6/2/2,
    100 -> 70/15/15.
    """
    n_test = _share(n, test_fraction, minimum_n=2)
    n_val = min(_share(n, val_fraction, minimum_n=3), n - n_test)
    n_train = n - n_val - n_test
    train: list[Split] = ["train"]
    val: list[Split] = ["val"]
    test: list[Split] = ["test"]
    return train * n_train + val * n_val + test * n_test


def _share(n: int, fraction: float, minimum_n: int) -> int:
    """``round(n * fraction)`` (halves up), at least 1 when ``n >= minimum_n`` and fraction > 0."""
    count = math.floor(n * fraction + 0.5)
    if fraction > 0 and n >= minimum_n:
        count = max(count, 1)
    return min(count, n)
