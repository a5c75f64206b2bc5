"""The reward cache: f_i's errors and the policy observations of every node, computed once.

Rewards depend only on the segmenters' outputs and the ground truth, so for every
training slide razn runs f_0 … f_m once over the full zoom tree of each tissue root
and stores, per working level ``j``:

* ``errors``: pixels f_j gets wrong in each node, counted at the evaluation
  resolution on non-ignored pixels inside the slide (areas outside tissue are
  predicted background, as the engine outputs them);
* ``area``: the number of such pixels;
* ``image``, ``seg``, ``stats``: the observation g_j sees (levels below the finest);
* ``parent_errors`` (levels below the root): the pixels f_{j−1} gets wrong in each node's
  area, what a node keeps when its parent breaks and does not refine it;
* ``parent_image``, ``parent_seg``, ``parent_stats`` (same levels): the ``segmentation``
  observation of each node's area cut from its parent's patch and f_{j−1}'s output on it,
  what the refine policy h_{j−1} sees (:mod:`razn.rewards`, refinement).

Arrays are shaped ``(R, n, n, …)`` with ``R`` roots and ``n = r^j`` (see
:mod:`razn.rewards`). A slide's cache lives in ``<cache dir>/<key>.zarr`` where the
key hashes every input (slide and mask files, segmenter weights, geometry,
tissue, observation and evaluation settings), so it is rebuilt exactly when one
of them changes and reused otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from razn.config import to_dict
from razn.data.masks import LabelMask, open_mask
from razn.digest import file_sha256
from razn.geometry import ZoomGeometry, resample_labels
from razn.models import Segmenter, predict_probs, tissue_labels
from razn.observation import NUM_FIXED_STATS, channels_first, enlarged, make_observations
from razn.rewards import block_sums
from razn.run_config import RunConfig
from razn.slide import Slide, open_slide, read_at_downsample
from razn.slide.tissue import TissueMask, detect_tissue

CACHE_FORMAT = "razn-reward-cache/3"
"""Version 3: what refinement needs (``parent_errors``, ``parent_*`` observations); version 2
read the observations' images from the slide at the view's resolution, as the engine reads
them (version 1 pooled them from the full patches)."""
OBSERVATION_KEYS = ("image", "seg", "stats")
PARENT_PREFIX = "parent_"


@dataclass
class LevelTable:
    """Cached values of one working level for some roots; arrays lead with ``(R, n, n)``."""

    errors: np.ndarray
    area: np.ndarray
    observations: dict[str, np.ndarray]
    parent_errors: np.ndarray | None = None
    """f_{j−1}'s misclassified pixels in each node's area (None at the roots)."""
    parent_observations: dict[str, np.ndarray] = field(default_factory=dict)
    """The ``segmentation`` observation of each node's area in its parent's patch."""

    @staticmethod
    def concatenate(tables: Sequence[LevelTable]) -> LevelTable:
        first = tables[0]
        return LevelTable(
            np.concatenate([t.errors for t in tables]),
            np.concatenate([t.area for t in tables]),
            _concatenate([t.observations for t in tables]),
            None
            if first.parent_errors is None
            else np.concatenate([t.parent_errors for t in tables if t.parent_errors is not None]),
            _concatenate([t.parent_observations for t in tables]),
        )


def _concatenate(dicts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([d[key] for d in dicts]) for key in dicts[0]}


def cache_key(
    slide_path: Path, mask_path: Path, segmenter_paths: Sequence[Path], config: RunConfig
) -> str:
    """A hash of every input that changes a slide's cached values."""
    inputs = {
        "format": CACHE_FORMAT,
        "slide": _file_identity(slide_path),
        "mask": _file_identity(mask_path),
        "segmenters": [file_sha256(p) for p in segmenter_paths],
        "levels": to_dict(config.levels),
        "classes": list(config.data.class_names),
        "tissue": to_dict(config.tissue),
        "observation": to_dict(config.observation),
        "eval_downsample": config.eval_downsample,
    }
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def slide_cache_path(
    slide_path: Path,
    mask_path: Path,
    segmenter_paths: Sequence[Path],
    config: RunConfig,
    cache_dir: Path,
) -> Path:
    """Where the cache of one slide for these inputs lives (built or not)."""
    key = cache_key(slide_path, mask_path, segmenter_paths, config)
    return _cache_target(cache_dir, slide_path, key)


def _cache_target(cache_dir: Path, slide_path: Path, key: str) -> Path:
    return Path(cache_dir) / f"{Path(slide_path).name}-{key}.zarr"


def cache_is_complete(target: Path) -> bool:
    """True when ``target`` holds a fully written cache of this format."""
    return (Path(target) / "zarr.json").exists() and _is_complete(Path(target))


def ensure_slide_cache(
    slide_path: Path,
    mask_path: Path,
    segmenters: Sequence[Segmenter] | Callable[[], Sequence[Segmenter]],
    segmenter_paths: Sequence[Path],
    config: RunConfig,
    cache_dir: Path,
    progress: str = "quiet",
) -> Path:
    """The cache of one slide, built unless an up-to-date one exists; returns its path.

    ``segmenters`` may be a function that loads them: it is called only when the cache
    has to be built. ``progress``: ``bar``, ``log`` or ``quiet`` over the slide's roots
    (:func:`razn.engine.progress.tracked`).
    """
    key = cache_key(slide_path, mask_path, segmenter_paths, config)
    target = _cache_target(cache_dir, slide_path, key)
    if cache_is_complete(target):
        return target
    if callable(segmenters):
        segmenters = segmenters()
    with open_slide(slide_path) as slide, open_mask(mask_path, slide.dimensions) as mask:
        tables, roots = build_slide_tables(slide, mask, segmenters, config, progress)
    write_tables(
        target, tables, roots, {"key": key, "slide": str(slide_path), "mask": str(mask_path)}
    )
    return target


def build_slide_tables(
    slide: Slide,
    mask: LabelMask,
    segmenters: Sequence[Segmenter],
    config: RunConfig,
    progress: str = "quiet",
) -> tuple[list[LevelTable], np.ndarray]:
    """Per-level tables for every tissue root of ``slide``, and the roots' ``(col, row)``."""
    from razn.engine.progress import tracked

    geometry = config.levels.geometry()
    if len(segmenters) != geometry.num_levels:
        raise ValueError(f"need {geometry.num_levels} segmenters, got {len(segmenters)}")
    tissue = detect_tissue(slide, config.tissue)
    roots = tissue_roots(geometry, slide.dimensions, tissue)
    name = Path(slide.path).name if slide.path else "slide"
    per_root = [
        root_tables(slide, mask, tissue, geometry.location(root), segmenters, config)
        for root in tracked(roots, f"reward cache of {name}", progress, unit="root")
    ]
    coords = np.array([(r.col, r.row) for r in roots], np.int32).reshape(-1, 2)
    if not per_root:
        return [_empty_table(config, j) for j in range(geometry.num_levels)], coords
    tables = [LevelTable.concatenate([t[j] for t in per_root]) for j in range(geometry.num_levels)]
    return tables, coords


def tissue_roots(geometry: ZoomGeometry, dimensions: tuple[int, int], tissue: TissueMask) -> list:
    """The root nodes holding any tissue."""
    extent = geometry.extent(0)
    return [
        node
        for node in geometry.roots(dimensions)
        if tissue.fraction_in(geometry.location(node), (extent, extent)) > 0
    ]


def root_tables(
    slide: Slide,
    mask: LabelMask,
    tissue: TissueMask,
    location: tuple[int, int],
    segmenters: Sequence[Segmenter],
    config: RunConfig,
) -> list[LevelTable]:
    """Tables of one root: every level's nodes under it, ``(1, n, n, …)`` arrays."""
    geometry = config.levels.geometry()
    eval_ds = config.eval_downsample
    eval_size = round(geometry.extent(0) / eval_ds)
    labels = mask.read_labels(location, eval_ds, (eval_size, eval_size))
    valid = _inside_slide(location, eval_ds, eval_size, slide.dimensions) & (labels != 255)
    tables: list[LevelTable] = []
    inherited: tuple[np.ndarray | None, dict[str, np.ndarray]] = (None, {})
    for level, segmenter in enumerate(segmenters):
        n = geometry.rate**level
        downsample = geometry.downsamples[level]
        size = geometry.patch_size * n
        margin = config.levels.margin(level)
        patches, inputs = _level_patches(
            slide, location, downsample, n, geometry.patch_size, margin
        )
        probs = predict_probs(segmenter, inputs)
        if margin:  # keep the centre, as the engine does
            probs = probs[:, :, margin:-margin, margin:-margin]
        on_tissue = split_patches(tissue.sample(location, downsample, (size, size)), n)
        prediction = tissue_labels(probs, on_tissue)
        predicted = resample_labels(merge_patches(prediction, n), downsample / eval_ds)
        wrong = (predicted != labels) & valid
        errors = block_sums(wrong, n).astype(np.float64)
        area = block_sums(valid, n).astype(np.float64)
        observations = {}
        if level < geometry.finest_level:
            share = on_tissue.mean(axis=(1, 2))
            views = read_views(slide, geometry, level, location, config.observation.size)
            obs = make_observations(patches, probs, share, config.observation, views)
            observations = {k: v.reshape(1, n, n, *v.shape[1:]) for k, v in obs.items()}
        table = LevelTable(errors[None], area[None], observations, *inherited)
        tables.append(table)
        if level < geometry.finest_level:
            inherited = (
                block_sums(wrong, n * geometry.rate).astype(np.float64)[None],
                root_quadrant_observations(patches, probs, on_tissue, n, geometry.rate, config),
            )
    return tables


def root_quadrant_observations(
    patches: np.ndarray,
    probs: np.ndarray,
    on_tissue: np.ndarray,
    n: int,
    rate: int,
    config: RunConfig,
) -> dict[str, np.ndarray]:
    """The refine policy's observation of every quadrant of a root's ``n × n`` patches, on
    the next level's grid ``(1, n·r, n·r, …)``, computed as the engine computes it
    (:func:`razn.observation.quadrant_observations`)."""
    from razn.observation import quadrant_observations

    m = n * rate
    obs = quadrant_observations(patches, probs, on_tissue, rate, config.observation)
    # the quadrants come ordered (parent, qy, qx); the grid wants (row, col) of the finer level
    return {
        key: value.reshape(n, n, rate, rate, *value.shape[1:])
        .swapaxes(1, 2)
        .reshape(1, m, m, *value.shape[1:])
        for key, value in obs.items()
    }


def read_views(
    slide: Slide, geometry: ZoomGeometry, level: int, location: tuple[int, int], size: int
) -> np.ndarray:
    """The policy views ``(n², 3, S, S)`` uint8 of a root's nodes at ``level``, read from
    the slide at the view's resolution as the engine reads them
    (:meth:`razn.engine.reader.PatchReader.views`)."""
    from razn.engine.reader import view_downsample

    n = geometry.rate**level
    if size > geometry.patch_size:  # patches smaller than a view: read whole, enlarged
        patch = geometry.patch_size
        region = read_at_downsample(
            slide, location, geometry.downsamples[level], (n * patch, n * patch)
        )
        return channels_first(enlarged(split_patches(region, n), size))
    downsample = view_downsample(geometry, level, size)
    region = read_at_downsample(slide, location, downsample, (n * size, n * size))
    return channels_first(split_patches(region, n))


def _level_patches(
    slide: Slide,
    location: tuple[int, int],
    downsample: float,
    n: int,
    patch_size: int,
    margin: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n²`` patches of one root's level read in one region (row by row), and what
    f_i is given: the same patches, or with a ``margin`` each ``P + 2·margin`` a side,
    overlapping their neighbours by the margins (the engine's reads, pixel for pixel)."""
    size = patch_size * n
    if not margin:
        patches = split_patches(read_at_downsample(slide, location, downsample, (size, size)), n)
        return patches, patches
    shift = round(margin * downsample)  # level-0 px of context before the region
    side = size + 2 * margin
    region = read_at_downsample(
        slide, (location[0] - shift, location[1] - shift), downsample, (side, side)
    )
    inputs = np.stack([
        region[i * patch_size : i * patch_size + patch_size + 2 * margin,
               j * patch_size : j * patch_size + patch_size + 2 * margin]
        for i in range(n) for j in range(n)
    ])  # fmt: skip
    return inputs[:, margin:-margin, margin:-margin], inputs


def split_patches(region: np.ndarray, n: int) -> np.ndarray:
    """``(n·P, n·P, …)`` → ``(n², P, P, …)``, row by row."""
    size = region.shape[0] // n
    rest = region.shape[2:]
    blocks = region.reshape(n, size, n, size, *rest).swapaxes(1, 2)
    return blocks.reshape(n * n, size, size, *rest)


def merge_patches(patches: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`split_patches`."""
    size = patches.shape[1]
    rest = patches.shape[3:]
    return (
        patches.reshape(n, n, size, size, *rest).swapaxes(1, 2).reshape(n * size, n * size, *rest)
    )


def write_tables(
    target: Path, tables: Sequence[LevelTable], roots: np.ndarray, attrs: dict
) -> None:
    """Write ``tables`` to a zarr group; the ``complete`` attribute is set last."""
    import zarr

    group = zarr.open_group(str(target), mode="w")
    group.create_array("roots", data=roots)
    for level, table in enumerate(tables):
        sub = group.create_group(f"level{level}")
        sub.create_array("errors", data=table.errors)
        sub.create_array("area", data=table.area)
        for key, values in table.observations.items():
            sub.create_array(key, data=values)
        if table.parent_errors is not None:
            sub.create_array(PARENT_PREFIX + "errors", data=table.parent_errors)
        for key, values in table.parent_observations.items():
            sub.create_array(PARENT_PREFIX + key, data=values)
    group.attrs.update({**attrs, "format": CACHE_FORMAT, "levels": len(tables)})
    group.attrs["complete"] = True  # written last: a half-written cache is never reused


def read_tables(paths: Sequence[Path]) -> tuple[list[LevelTable], list[np.ndarray]]:
    """Load slide caches into memory, concatenated along the root axis."""
    import zarr

    from razn.zarr_nodes import child_array

    per_slide, roots = [], []
    for path in paths:
        group = zarr.open_group(str(path), mode="r")
        attrs: Mapping[str, Any] = group.attrs  # JSON values; "levels" was written as an int
        levels = int(attrs["levels"])
        per_slide.append([_read_level(group[f"level{j}"]) for j in range(levels)])
        roots.append(np.asarray(child_array(group, "roots", path)[:]))
    tables = [LevelTable.concatenate([s[j] for s in per_slide]) for j in range(len(per_slide[0]))]
    return tables, roots


def _read_level(group) -> LevelTable:
    observations = {k: np.asarray(group[k][:]) for k in OBSERVATION_KEYS if k in group}
    parent = {
        k: np.asarray(group[PARENT_PREFIX + k][:])
        for k in OBSERVATION_KEYS
        if PARENT_PREFIX + k in group
    }
    parent_errors = (
        np.asarray(group[PARENT_PREFIX + "errors"][:])
        if PARENT_PREFIX + "errors" in group
        else None
    )
    return LevelTable(
        np.asarray(group["errors"][:]),
        np.asarray(group["area"][:]),
        observations,
        parent_errors,
        parent,
    )


def _is_complete(target: Path) -> bool:
    import zarr

    try:
        group = zarr.open_group(str(target), mode="r")
    except Exception:  # an unreadable half-written cache is rebuilt
        return False
    return bool(group.attrs.get("complete")) and group.attrs.get("format") == CACHE_FORMAT


def _empty_table(config: RunConfig, level: int) -> LevelTable:
    n = config.levels.geometry().rate ** level
    s, k = config.observation.size, config.data.num_classes

    def empty_observations() -> dict[str, np.ndarray]:
        return {
            "image": np.zeros((0, n, n, 3, s, s), np.uint8),
            "seg": np.zeros((0, n, n, k, s, s), np.uint8),
            "stats": np.zeros((0, n, n, NUM_FIXED_STATS + k), np.float32),
        }

    observations = empty_observations() if level < config.levels.geometry().finest_level else {}
    if level == 0:
        return LevelTable(np.zeros((0, n, n)), np.zeros((0, n, n)), observations)
    return LevelTable(
        np.zeros((0, n, n)),
        np.zeros((0, n, n)),
        observations,
        np.zeros((0, n, n)),
        empty_observations(),
    )


def _inside_slide(location, downsample: float, size: int, dimensions) -> np.ndarray:
    """Evaluation pixels whose centre lies inside the slide."""
    xs = location[0] + (np.arange(size) + 0.5) * downsample
    ys = location[1] + (np.arange(size) + 0.5) * downsample
    return (ys[:, None] < dimensions[1]) & (xs[None, :] < dimensions[0])


def _file_identity(path: Path) -> list:
    path = Path(path).resolve()
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]
