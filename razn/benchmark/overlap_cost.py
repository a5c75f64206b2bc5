"""What overlap tiles buy and cost on a finished benchmark (``scripts/bench_overlap.py``).

The test slides of a benchmark run are segmented again in ``cip`` and in ``razn`` at the
benchmark's default λ, with each overlap margin (:attr:`razn.engine.zoom.EngineConfig.overlap`),
scored as the benchmark scores (foreground Dice, pooled, at its evaluation resolution) and
timed as it times (an untimed warm-up, then ``repeats`` rounds over every setting in turning
order, the median per slide). Nothing is trained: the run's segmenters and policies are used
as they are, so a margin's Dice gain is what context alone gives networks trained without it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from razn.benchmark.jobs import Job, job_decider
from razn.data.manifest import ManifestEntry, read_manifest
from razn.data.masks import open_mask
from razn.engine import EngineConfig, ZoomEngine
from razn.engine.batch import segment_labels
from razn.errors import ManifestError
from razn.evaluate import SegmentationScores, read_truth, score_labels
from razn.run_dir import RunDirectory
from razn.slide import open_slide


@dataclass
class OverlapCost:
    """One (mode, margin): pooled Dice over the test slides and summed median seconds."""

    mode: str
    overlap: int
    dice: float
    seconds: float
    seconds_runs: list[float]
    """Each round's total over the slides."""
    patches: int


def measure_overlap(
    benchmark: Path, margins: list[int], repeats: int = 3, modes: tuple[str, ...] = ("cip", "razn")
) -> list[OverlapCost]:
    """Segment the test slides of the benchmark in ``benchmark`` with every margin (see the
    module docstring); one row per (mode, margin), in that order."""
    record = json.loads((benchmark / "benchmark.json").read_text(encoding="utf-8"))
    lam = float(record["default_lambda"])
    downsample = float(record["config"]["evaluation_downsample"])
    run = RunDirectory.open(benchmark / "runs" / "clean")
    entries = _test_entries(run)
    segmenters = run.load_segmenters()
    truths = {e.slide: _truth(e, downsample) for e in entries}
    settings = [(mode, margin) for mode in modes for margin in margins]
    jobs = {mode: Job("clean", mode, lam if mode == "razn" else None) for mode in modes}

    def engine(mode: str, margin: int, entry: ManifestEntry) -> ZoomEngine:
        decider = job_decider(run, jobs[mode], entry)
        return ZoomEngine(segmenters, decider, run.config, EngineConfig(overlap=margin))

    seconds: dict[tuple[str, int], list[list[float]]] = {s: [] for s in settings}
    scores: dict[tuple[str, int], SegmentationScores] = {}
    patches: dict[tuple[str, int], int] = {}
    with tempfile.TemporaryDirectory(prefix="razn-overlap-") as scratch:
        labels = Path(scratch) / "labels.zarr"
        for entry in entries:  # warm-up: page cache and first calls, untimed
            segment_labels(engine("cip", 0, entry), entry.slide, labels)
        for round_ in range(repeats):
            order = settings if round_ % 2 == 0 else settings[::-1]
            for mode, margin in order:
                times = []
                for entry in entries:
                    made = engine(mode, margin, entry)
                    shutil.rmtree(labels, ignore_errors=True)  # nothing left of the last slide
                    result = segment_labels(made, entry.slide, labels)
                    times.append(result.seconds)
                    if round_ == 0:  # outputs are deterministic: scored once
                        array = zarr.open_array(str(labels), mode="r")
                        score = score_labels(
                            array,
                            float(made.output_downsample),
                            truths[entry.slide],
                            run.config.data.num_classes,
                            downsample,
                        )
                        key = (mode, margin)
                        scores[key] = score if key not in scores else scores[key] + score
                        patches[key] = patches.get(key, 0) + sum(result.patches)
                seconds[mode, margin].append(times)
    rows = []
    for mode, margin in settings:
        runs = np.asarray(seconds[mode, margin])  # (repeats, slides)
        rows.append(
            OverlapCost(
                mode,
                margin,
                scores[mode, margin].foreground_dice,
                float(np.median(runs, axis=0).sum()),
                [float(x) for x in runs.sum(axis=1)],
                patches[mode, margin],
            )
        )
    return rows


def _test_entries(run: RunDirectory) -> list[ManifestEntry]:
    manifest_path = run.config.data.manifest
    if manifest_path is None:
        raise ManifestError("the benchmark's run names no manifest", run.path)
    entries = list(read_manifest(Path(manifest_path)).split("test"))
    if not entries:
        raise ManifestError("the benchmark's manifest has no test slides", Path(manifest_path))
    return entries


def _truth(entry: ManifestEntry, downsample: float) -> np.ndarray:
    if entry.mask is None:
        raise ManifestError("a test slide has no mask to score against", entry.slide)
    with open_slide(entry.slide) as slide, open_mask(entry.mask, slide.dimensions) as mask:
        return read_truth(mask, downsample)


def format_table(rows: list[OverlapCost]) -> str:
    """A Markdown table: each margin against margin 0 of the same mode."""
    base = {r.mode: r for r in rows if r.overlap == 0}
    lines = [
        "| mode | overlap (px) | Dice | Δ Dice | seconds | × seconds | patches |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base.get(r.mode)
        delta = f"{r.dice - b.dice:+.4f}" if b else ""
        ratio = f"{r.seconds / b.seconds:.2f}" if b and b.seconds else ""
        lines.append(
            f"| {r.mode} | {r.overlap} | {r.dice:.4f} | {delta} | {r.seconds:.1f} | {ratio} "
            f"| {r.patches} |"
        )
    return "\n".join(lines)


def rows_as_json(rows: list[OverlapCost]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
