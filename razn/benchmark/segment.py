"""Step 5 of the benchmark: segment the test slides in every mode and score them.

Slides are segmented one after another in this process (never two at once), so the
seconds of different modes are comparable. A job's outputs are reused when their
recorded key (segmenters, policies, mode parameters) is unchanged. Each slide's folder
holds ``labels.zarr``, ``decisions.csv`` and ``summary.json`` (no viewer outputs:
``razn segment`` makes those).

With ``timing_repeats`` > 1 every job is timed that many times (:mod:`.timing`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm

from razn.benchmark.jobs import Context, Job, job_decider, job_key
from razn.benchmark.timing import retime, warm_up
from razn.data.manifest import ManifestEntry
from razn.data.masks import open_mask
from razn.engine import EngineConfig, ZoomEngine
from razn.engine.batch import output_name, segment_one
from razn.errors import MaskError
from razn.evaluate import SegmentationScores, read_truth, score_labels
from razn.inspection.stats import class_level_areas, level_shares
from razn.models import select_device
from razn.outputs.ome_zarr import read_decisions
from razn.outputs.overlay import zoom_level_map
from razn.run_dir import RunDirectory
from razn.slide import open_slide


def run_jobs(
    ctx: Context,
    jobs: list[Job],
    split: str = "test",
    outputs: str = "outputs",
    repeats: int = 1,
) -> list[dict[str, Any]]:
    """One result row per job (the ``split`` slides pooled), in job order; each slide's
    outputs go to ``OUT/<outputs>/<variant>/<job tag>/``. With ``repeats`` > 1 each job is
    timed that many times (see the module docstring)."""
    import torch

    if ctx.config.segment_threads:
        torch.set_num_threads(ctx.config.segment_threads)
    device = select_device(ctx.config.device)
    entries = list(ctx.manifests["clean"].split(split))
    truths = _Truths(ctx.config.evaluation_downsample)
    segmenters = {
        variant: [m.to(device) for m in run.load_segmenters()] for variant, run in ctx.runs.items()
    }
    if repeats > 1:
        warm_up(ctx, entries, segmenters, str(device))
    rows = []
    for job in tqdm(jobs, desc="modes", unit="mode", disable=not ctx.progress):
        run = ctx.runs[job.variant]
        rows.append(
            run_job(ctx, run, job, entries, segmenters[job.variant], truths, str(device), outputs)
        )
        row = rows[-1]
        ctx.log(
            f"{job.variant} {job.tag}: Dice {row['dice']:.4f}, {row['seconds']:.1f} s, "
            f"patches {'/'.join(map(str, row['patches']))}"
        )
    if repeats > 1:
        retime(ctx, jobs, rows, entries, segmenters, str(device), outputs, repeats)
    for row in rows:
        row.pop("_slide_seconds", None)
    return rows


def run_job(
    ctx: Context,
    run: RunDirectory,
    job: Job,
    entries: list[ManifestEntry],
    segmenters: list[Any],
    truths: _Truths,
    device: str,
    outputs: str = "outputs",
) -> dict[str, Any]:
    evaluation = {"evaluation_downsample": ctx.config.evaluation_downsample}
    key = job_key(run, job, evaluation)
    out_dir = ctx.out / outputs / job.variant / job.tag
    total: SegmentationScores | None = None
    summaries, per_slide = [], []
    geometry = run.config.levels.geometry()
    areas = np.zeros((run.config.data.num_classes, geometry.num_levels), np.int64)
    for entry in entries:
        folder = out_dir / output_name(entry.slide)
        summary = _reusable_summary(folder, key)
        if summary is None:
            decider = job_decider(run, job, entry)
            engine = ZoomEngine(segmenters, decider, run.config, EngineConfig(device=device))
            extra = {"lambda": job.lam, "seed": job.seed, "benchmark_key": key, **job.params}
            # Scoring needs the labels and the summary; the viewer outputs (OME-Zarr,
            # GeoJSON, overlay) would add more wall time than the segmentation itself.
            folder, _ = segment_one(entry.slide, engine, out_dir, extra, viewer_outputs=False)
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        labels = zarr.open_array(str(folder / "labels.zarr"), mode="r")
        scores = score_labels(
            labels,
            float(summary["output_downsample"]),
            truths.get(entry),
            run.config.data.num_classes,
            ctx.config.evaluation_downsample,
        )
        total = scores if total is None else total + scores
        summaries.append(summary)
        per_slide.append(scores.foreground_dice)
        areas += decided_areas(folder, truths.get(entry), run, ctx.config.evaluation_downsample)
    assert total is not None
    row = result_row(run, job, total, summaries, per_slide)
    shares = level_shares(areas)
    row["class_area_by_level"] = {
        name: [float(x) for x in shares[k]] for k, name in enumerate(run.config.data.class_names)
    }
    row["_slide_seconds"] = [float(s["seconds"]) for s in summaries]
    return row


def decided_areas(
    folder: Path, truth: np.ndarray, run: RunDirectory, downsample: float
) -> np.ndarray:
    """Pixels of each true class decided at each working level on one slide, ``(K, L)``, on
    the scoring grid (``downsample`` level-0 px per pixel), from the slide's
    ``decisions.csv``."""
    geometry = run.config.levels.geometry()
    extents = [geometry.extent(level) for level in range(geometry.num_levels)]
    size = (truth.shape[1], truth.shape[0])
    level_map = zoom_level_map(read_decisions(folder / "decisions.csv"), extents, size, downsample)
    return class_level_areas(level_map, truth, run.config.data.num_classes, geometry.num_levels)


def result_row(
    run: RunDirectory,
    job: Job,
    scores: SegmentationScores,
    summaries: list[dict[str, Any]],
    per_slide: list[float],
) -> dict[str, Any]:
    """One line of ``results.json``: the job's pooled scores and summed compute."""
    names = run.config.data.class_names
    scored = scores.as_dict(names)
    timings: dict[str, float] = {}
    for s in summaries:
        for name, value in s["timings"].items():
            timings[name] = timings.get(name, 0.0) + float(value)
    seed = job.seed
    if job.mode == "razn" and seed is None:
        seed = run.config.seed
    return {
        "variant": job.variant,
        "mode": job.mode,
        "tag": job.tag,
        "lambda": job.lam,
        "seed": seed,
        "dice": scores.foreground_dice,
        "iou": scores.foreground_iou,
        "dice_per_class": scored["dice"],
        "iou_per_class": scored["iou"],
        "mean_dice_all_classes": scored["mean_dice"],
        "dice_per_slide": per_slide,
        "seconds": float(sum(s["seconds"] for s in summaries)),
        "patches": np.sum([s["patches"] for s in summaries], axis=0).astype(int).tolist(),
        "zoomed": _per_level_sum(summaries, "zoomed"),
        "refined": _per_level_sum(summaries, "refined"),
        "level0_pixels_read": int(sum(s["level0_pixels_read"] for s in summaries)),
        "timings": timings,
        "slides": len(summaries),
        **{k: v for k, v in job.params.items() if k != "matched_to"},
        **({"matched_to": job.params["matched_to"]} if "matched_to" in job.params else {}),
    }


def _reusable_summary(folder: Path, key: str) -> dict[str, Any] | None:
    path = folder / "summary.json"
    if not (path.is_file() and (folder / "labels.zarr").is_dir()):
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return summary if summary.get("benchmark_key") == key else None


class _Truths:
    """Ground truth of each test slide at the evaluation resolution, read once."""

    def __init__(self, downsample: float):
        self.downsample = downsample
        self._cache: dict[Path, np.ndarray] = {}

    def get(self, entry: ManifestEntry) -> np.ndarray:
        if entry.slide not in self._cache:
            if entry.mask is None:
                raise MaskError("the slide has no mask to score against", entry.slide)
            with open_slide(entry.slide) as slide, open_mask(entry.mask, slide.dimensions) as mask:
                self._cache[entry.slide] = read_truth(mask, self.downsample)
        return self._cache[entry.slide]


def _per_level_sum(summaries: list[dict[str, Any]], key: str) -> list[int]:
    """A per-level count of ``summary.json`` summed over slides (0 where a summary lacks it)."""
    zeros = [0] * len(summaries[0]["patches"])
    return np.sum([s.get(key) or zeros for s in summaries], axis=0).astype(int).tolist()
