"""What the engine costs beyond the network it drives (``scripts/bench_engine.py``).

One synthetic slide is segmented in ``cip`` mode (every tissue patch at the finest level,
no policy) by the real engine, in process and warm, then the same finest-level patches are
read into memory and pushed through the same network alone, in the same batches. The
engine's overhead is the ratio of the two wall times; the outputs written after the labels
(OME-Zarr pyramid, zoom map, GeoJSON, overlay) are timed on their own.

Weights are random (``encoder_weights=None`` and no training): the network's speed does not
depend on its weights, and nothing here needs a trained run.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from razn.engine import EngineConfig, ZoomEngine
from razn.engine.modes import make_decider
from razn.engine.slide_outputs import write_slide_outputs
from razn.engine.zoom import SlideResult
from razn.models.backends import Predictor, openvino_predictor, torch_predictor
from razn.models.checkpoint import save_segmenter
from razn.models.factory import Segmenter, create_segmenter
from razn.run_config import RunConfig
from razn.slide import Slide, open_slide, read_at_downsample
from razn.slide.tissue import detect_tissue


@dataclass
class EngineCost:
    """One configuration's figures; seconds are wall time on this machine."""

    config: str
    slide_size: tuple[int, int]
    patch_size: int
    patches: int
    """Finest-level patches segmented (cip's work)."""
    engine_seconds: float
    """``ZoomEngine.segment`` from start to the last label written (warm run)."""
    engine_timings: dict[str, float]
    """The engine's own split: reading, segmenting, writing labels, …"""
    network_seconds: float
    """The network alone over the same patches, already in memory, same batch size."""
    outputs_seconds: float
    """The viewer outputs written after the labels (OME-Zarr, zoom map, GeoJSON, overlay)."""
    threads: int

    @property
    def engine_overhead(self) -> float:
        """Engine wall time ÷ network time (1.0: the engine adds nothing)."""
        return self.engine_seconds / self.network_seconds

    @property
    def outputs_share(self) -> float:
        """Outputs' wall time ÷ the engine's."""
        return self.outputs_seconds / self.engine_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "engine_overhead": self.engine_overhead,
            "outputs_share": self.outputs_share,
        }


def random_segmenters(config: RunConfig) -> list[Segmenter]:
    """One randomly initialised f_i per working level, in eval mode on the CPU."""
    torch.manual_seed(config.seed)
    return [
        create_segmenter(config.model, config.data.num_classes).eval()
        for _ in config.levels.downsamples
    ]


def measure_engine_cost(
    name: str,
    slide_path: Path,
    config: RunConfig,
    work: Path,
    *,
    batch_size: int = 16,
    backend: str = "torch",
) -> EngineCost:
    """Segment ``slide_path`` in cip mode twice (the first warms caches and threads), then
    time the network alone (under the same ``backend``) over the second run's finest-level
    patches."""
    segmenters = random_segmenters(config)
    predictors = backend_predictors(
        segmenters, config, work / f"weights_{name}", backend, batch_size
    )
    decider = make_decider("cip", config.levels.geometry().num_levels)
    settings = EngineConfig(batch_size=batch_size)
    engine = ZoomEngine(segmenters, decider, config, settings, predictors)
    folder = work / f"engine_{name}_{backend}"
    with open_slide(slide_path) as slide:
        width, height = slide.dimensions
        tissue = detect_tissue(slide, config.tissue)
        for _ in range(2):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            start = time.perf_counter()
            result = engine.segment(slide, folder / "labels.zarr", tissue=tissue)
            engine_seconds = time.perf_counter() - start
        start = time.perf_counter()
        write_slide_outputs(folder, slide, engine, result, {})
        outputs_seconds = time.perf_counter() - start
        patches = finest_patches(slide, result, config)
    network_seconds = time_network(engine.predictors[-1], patches, batch_size)
    geometry = config.levels.geometry()
    return EngineCost(
        config=name if backend == "torch" else f"{name} ({backend})",
        slide_size=(width, height),
        patch_size=geometry.patch_size,
        patches=len(patches),
        engine_seconds=engine_seconds,
        engine_timings=dict(result.timings),
        network_seconds=network_seconds,
        outputs_seconds=outputs_seconds,
        threads=torch.get_num_threads(),
    )


def finest_patches(slide: Slide, result: SlideResult, config: RunConfig) -> np.ndarray:
    """``(N, P, P, 3)`` uint8: the finest-level patches the engine segmented, read again."""
    geometry = config.levels.geometry()
    finest, size = geometry.num_levels - 1, geometry.patch_size
    downsample = geometry.downsamples[-1]
    locations = [
        (x, y)
        for level, _, _, x, y, action, _ in result.decisions.rows
        if level == finest and action == "break"
    ]
    patches = np.zeros((len(locations), size, size, 3), np.uint8)
    for i, location in enumerate(locations):
        patches[i] = read_at_downsample(slide, location, downsample, (size, size))
    return patches


def backend_predictors(
    segmenters: list[Segmenter], config: RunConfig, folder: Path, backend: str, batch_size: int
) -> list[Predictor]:
    """The engine's predictors under ``backend``; OpenVINO's graphs are derived from the
    random weights saved in ``folder``."""
    if backend == "torch":
        return [torch_predictor(m, batch_size) for m in segmenters]
    folder.mkdir(parents=True, exist_ok=True)
    predictors = []
    for level, model in enumerate(segmenters):
        weights = save_segmenter(model, config.model, folder / f"level_{level}.safetensors")
        size = config.levels.patch_size
        predictors.append(openvino_predictor(model, weights, size, batch_size))
    return predictors


def time_network(predict: Predictor, patches: np.ndarray, batch_size: int) -> float:
    """Wall seconds of the engine's own network call over ``patches`` (after one warm-up
    batch)."""
    predict(patches[:batch_size])
    start = time.perf_counter()
    predict(patches)
    return time.perf_counter() - start


def format_table(costs: list[EngineCost]) -> str:
    """A Markdown table of the figures, one row per configuration."""
    head = (
        "| config | slide | patch | patches | engine s | network s | engine ÷ network "
        "| outputs s | outputs ÷ engine |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {c.config} | {c.slide_size[0]}×{c.slide_size[1]} | {c.patch_size} | {c.patches} "
        f"| {c.engine_seconds:.2f} | {c.network_seconds:.2f} | {c.engine_overhead:.2f} "
        f"| {c.outputs_seconds:.2f} | {c.outputs_share:.2f} |"
        for c in costs
    ]
    return "\n".join([head, *rows])
