"""Step 5 of the benchmark: segment the test slides in every mode and score them.

Slides are segmented one after another in this process (never two at once), so the
seconds of different modes are comparable. A job's outputs are reused when their
recorded key (segmenters, policies, mode parameters) is unchanged. Each slide's folder
holds ``labels.zarr``, ``decisions.csv`` and ``summary.json`` (no viewer outputs:
``razn segment`` makes those).

Timing (``timing_repeats`` > 1): one untimed warm-up pass of cip over the slides first,
then every job once (its outputs are scored), then further rounds over all jobs, each
round in another order, that only time the engine (``timing.json`` beside each slide's
summary keeps them for a resumed run). A slide's seconds are the median of its runs: a
single run of a few seconds carries ±10 % noise on a shared machine, and the first mode
of a process used to pay for the page cache and the kernels' first calls.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm

from razn.benchmark.jobs import Context, Job, job_key, oracle_decider
from razn.data.manifest import ManifestEntry
from razn.data.masks import open_mask
from razn.engine import EngineConfig, ZoomEngine
from razn.engine.batch import output_name, segment_one
from razn.engine.deciders import Decider, RandomZoom, UncertaintyThreshold
from razn.engine.modes import make_decider
from razn.errors import MaskError
from razn.evaluate import SegmentationScores, read_truth, score_labels
from razn.models import select_device
from razn.run_dir import RunDirectory
from razn.slide import open_slide
from razn.slide.tissue import detect_tissue


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


def warm_up(
    ctx: Context, entries: list[ManifestEntry], segmenters: dict[str, list[Any]], device: str
) -> None:
    """Segment every slide once in cip mode, untimed, into a scratch folder: the slide files
    enter the page cache and every network's first calls are paid before anything is timed."""
    start = time.perf_counter()
    variant = next(iter(segmenters))  # one architecture: one variant warms every kernel
    run = ctx.runs[variant]
    engine = ZoomEngine(
        segmenters[variant],
        job_decider(run, Job(variant, "cip"), entries[0]),
        run.config,
        EngineConfig(device=device),
    )
    with tempfile.TemporaryDirectory(dir=ctx.out) as scratch:
        for entry in entries:
            _time_once(engine, entry, Path(scratch) / "labels.zarr")
    ctx.log(
        f"warm-up pass (cip, untimed) over {len(entries)} slides: "
        f"{time.perf_counter() - start:.0f} s"
    )


def retime(
    ctx: Context,
    jobs: list[Job],
    rows: list[dict[str, Any]],
    entries: list[ManifestEntry],
    segmenters: dict[str, list[Any]],
    device: str,
    outputs: str,
    repeats: int,
) -> None:
    """Time every job ``repeats − 1`` more times, in rounds whose order rotates, and set each
    row's ``seconds`` to the sum over slides of the median run (``seconds_runs``: every
    round's total; ``seconds_first``: the scored run's)."""
    runs: dict[tuple[int, int], list[float]] = {}
    for i, (job, row) in enumerate(zip(jobs, rows, strict=True)):
        for k, seconds in enumerate(row["_slide_seconds"]):
            runs[i, k] = [
                seconds,
                *_stored_repeats(_slide_folder(ctx, job, entries[k], outputs), _job_key(ctx, job)),
            ]
    start = time.perf_counter()
    for round_ in range(1, repeats):
        shift = (round_ * len(jobs)) // repeats  # every round starts elsewhere in the list
        order = list(range(len(jobs)))[shift:] + list(range(len(jobs)))[:shift]
        if round_ % 2:
            order.reverse()
        for i in order:
            job, run = jobs[i], ctx.runs[jobs[i].variant]
            for k, entry in enumerate(entries):
                if len(runs[i, k]) > round_:  # timed by an earlier, interrupted benchmark
                    continue
                engine = ZoomEngine(
                    segmenters[job.variant],
                    job_decider(run, job, entry),
                    run.config,
                    EngineConfig(device=device),
                )
                with tempfile.TemporaryDirectory(dir=ctx.out) as scratch:
                    runs[i, k].append(_time_once(engine, entry, Path(scratch) / "labels.zarr"))
                folder = _slide_folder(ctx, job, entry, outputs)
                _store_repeats(folder, _job_key(ctx, job), runs[i, k][1:])
        ctx.log(
            f"timing round {round_ + 1} of {repeats} done ({time.perf_counter() - start:.0f} s)"
        )
    for i, row in enumerate(rows):
        per_slide = [runs[i, k][:repeats] for k in range(len(entries))]
        row["seconds_first"] = row["seconds"]
        row["seconds_runs"] = [float(sum(s[r] for s in per_slide)) for r in range(repeats)]
        row["seconds"] = float(sum(np.median(s) for s in per_slide))
        row["timing_repeats"] = repeats


def _time_once(engine: ZoomEngine, entry: ManifestEntry, labels: Path) -> float:
    """The engine's seconds for one slide (tissue detected outside the timed part, as in
    :func:`razn.engine.batch.segment_one`)."""
    with open_slide(entry.slide) as slide:
        tissue = detect_tissue(slide, engine.config.tissue)
        return engine.segment(slide, labels, tissue=tissue).seconds


def _job_key(ctx: Context, job: Job) -> str:
    return job_key(
        ctx.runs[job.variant], job, {"evaluation_downsample": ctx.config.evaluation_downsample}
    )


def _slide_folder(ctx: Context, job: Job, entry: ManifestEntry, outputs: str) -> Path:
    return ctx.out / outputs / job.variant / job.tag / output_name(entry.slide)


TIMING_FILE = "timing.json"


def _stored_repeats(folder: Path, key: str) -> list[float]:
    """The repeated timings of an earlier run of this benchmark (same key), else ``[]``."""
    try:
        record = json.loads((folder / TIMING_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return [float(s) for s in record.get("repeats", [])] if record.get("key") == key else []


def _store_repeats(folder: Path, key: str, repeats: list[float]) -> None:
    (folder / TIMING_FILE).write_text(
        json.dumps({"key": key, "repeats": repeats}), encoding="utf-8"
    )


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
    assert total is not None
    row = result_row(run, job, total, summaries, per_slide)
    row["_slide_seconds"] = [float(s["seconds"]) for s in summaries]
    return row


def job_decider(run: RunDirectory, job: Job, entry: ManifestEntry) -> Decider:
    """The decider of ``job`` (the oracle's depends on the slide)."""
    levels = run.num_levels
    if job.mode == "uncertainty":
        return UncertaintyThreshold(list(job.params["thresholds"]))
    if job.mode == "random":
        return RandomZoom(list(job.params["probabilities"]), seed=job.seed or 0)
    if job.mode == "oracle":
        return oracle_decider(run, entry, job.lam if job.lam is not None else run.config.reward.lam)
    return make_decider(
        job.mode, levels, policies_dir=run.policies_dir, lam=job.lam, policy_seed=job.seed
    )


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
        "zoomed": np.sum([s.get("zoomed", [0] * len(s["patches"])) for s in summaries], axis=0)
        .astype(int)
        .tolist(),
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
