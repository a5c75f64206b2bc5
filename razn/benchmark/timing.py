"""Timing the benchmark's test segmentations: a warm-up pass, then repeated rounds.

One untimed pass over the slides at every working level comes first (every pyramid level
read enters the page cache, every network's first calls are paid), then every job once
(its outputs are scored, :mod:`.segment`), then further rounds that only time the engine;
``timing.json`` beside each slide's summary keeps them for a resumed run. A slide's
seconds are the median of its runs: one run of a few seconds carries ±10 % noise on a
shared machine, and the first mode of a process used to pay for the page cache and the
kernels' first calls.

A round goes slide by slide and runs every job on that slide, in an order that moves on
with each slide and each round (:func:`round_order`). The machine's speed drifts by as much
as a quarter over minutes (measured: a whole round, job after job over all slides, ran
razn at 0.89 × to 1.25 × cip's seconds); slide-major rounds spread each job's slides over
the round, so a slow spell weighs on every mode alike instead of on whichever jobs it met.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from razn.benchmark.jobs import Context, Job, job_decider, job_key
from razn.data.manifest import ManifestEntry
from razn.engine import EngineConfig, ZoomEngine
from razn.engine.batch import output_name, segment_labels

TIMING_FILE = "timing.json"


def warm_up(
    ctx: Context, entries: list[ManifestEntry], segmenters: dict[str, list[Any]], device: str
) -> None:
    """Segment every slide once at every working level (``ud``, each ``fixed-i``, ``cip``),
    untimed, into a scratch folder: every pyramid level the modes read enters the page
    cache and every level's network pays its first calls before anything is timed (a cip
    pass alone left the coarser levels cold, and the first razn job paid for them: 49.7 s
    against 42.6 and 40.4 in the later rounds)."""
    start = time.perf_counter()
    variant = next(iter(segmenters))  # one architecture: one variant warms every kernel
    run = ctx.runs[variant]
    finest = run.num_levels - 1
    modes = ["ud", *(f"fixed-{i}" for i in range(1, finest)), "cip"]
    with tempfile.TemporaryDirectory(dir=ctx.out) as scratch:
        for mode in modes:
            engine = ZoomEngine(
                segmenters[variant],
                job_decider(run, Job(variant, mode), entries[0]),
                run.config,
                EngineConfig(device=device),
            )
            for entry in entries:
                segment_labels(engine, entry.slide, Path(scratch) / "labels.zarr")
    ctx.log(
        f"warm-up pass ({', '.join(modes)}; untimed) over {len(entries)} slides: "
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
    """Time every job ``repeats − 1`` more times, in slide-major rounds (:func:`round_order`),
    and set each row's ``seconds`` to the sum over slides of the median run
    (``seconds_runs``: every round's total; ``seconds_first``: the scored run's)."""
    runs: dict[tuple[int, int], list[float]] = {}
    for i, (job, row) in enumerate(zip(jobs, rows, strict=True)):
        for k, seconds in enumerate(row["_slide_seconds"]):
            runs[i, k] = [
                seconds,
                *_stored_repeats(_slide_folder(ctx, job, entries[k], outputs), _job_key(ctx, job)),
            ]
    start = time.perf_counter()
    for round_ in range(1, repeats):
        for k, entry in enumerate(entries):
            for i in round_order(len(jobs), round_, k, repeats, len(entries)):
                if len(runs[i, k]) > round_:  # timed by an earlier, interrupted benchmark
                    continue
                job, run = jobs[i], ctx.runs[jobs[i].variant]
                engine = ZoomEngine(
                    segmenters[job.variant],
                    job_decider(run, job, entry),
                    run.config,
                    EngineConfig(device=device),
                )
                with tempfile.TemporaryDirectory(dir=ctx.out) as scratch:
                    result = segment_labels(engine, entry.slide, Path(scratch) / "labels.zarr")
                    runs[i, k].append(result.seconds)
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


def round_order(jobs: int, round_: int, slide: int, repeats: int, slides: int) -> list[int]:
    """The order of the ``jobs`` on slide ``slide`` in timing round ``round_`` (1 …
    ``repeats`` − 1): every job once, the list rotated to a different start for each
    (round, slide) and reversed on every other one, so that no job is always timed first,
    last or next to the same neighbours."""
    step = round_ * slides + slide
    shift = (step * jobs) // (repeats * slides) if jobs else 0
    order = list(range(jobs))[shift:] + list(range(jobs))[:shift]
    return order[::-1] if step % 2 else order


def _job_key(ctx: Context, job: Job) -> str:
    return job_key(
        ctx.runs[job.variant], job, {"evaluation_downsample": ctx.config.evaluation_downsample}
    )


def _slide_folder(ctx: Context, job: Job, entry: ManifestEntry, outputs: str) -> Path:
    return ctx.out / outputs / job.variant / job.tag / output_name(entry.slide)


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
