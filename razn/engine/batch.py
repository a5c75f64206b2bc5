"""Segment a batch of slides into ``OUT_DIR/<slide name>/``, one failure never stopping the rest.

Each slide is written into a temporary folder ``OUT_DIR/.<name>.partial`` that is
renamed into place only when every file is written (a half-written slide never looks
done); :mod:`razn.outputs.layout` lists the files. ``OUT_DIR/batch.csv`` records every
slide's status as it finishes (:mod:`razn.outputs.batch_table`).

With ``resume`` a slide whose folder is complete and was made with the same settings
(same slide file, mode, run, λ, output resolution, NGFF version) is skipped; anything
else, a leftover ``.partial`` folder included, is segmented again from scratch. Since
a slide's outputs depend only on the slide and the settings (the random baseline
restarts its seeded generator on every slide), a resumed batch gives the same outputs
as an uninterrupted one, and so does a batch spread over Dask workers
(:mod:`razn.engine.distributed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from razn.engine.inputs import output_name, output_names, unique_given
from razn.engine.progress import SlideProgress, progress_mode, slide_progress
from razn.engine.slide_outputs import write_slide_outputs
from razn.engine.zoom import SlideResult, ZoomEngine
from razn.errors import OutputError, RaznError
from razn.memory import release_free_memory
from razn.outputs import layout
from razn.outputs.batch_table import BatchTable, SlideOutcome
from razn.outputs.layout import MIN_REGION_AREA
from razn.outputs.ome_zarr import NgffVersion
from razn.slide import open_slide
from razn.slide.tissue import detect_tissue

LOG = logging.getLogger(__name__)
BATCH_TABLE = "batch.csv"
LOCK_FILE = ".razn.lock"
"""Held (``flock``) by the batch writing into an output folder, and removed when it ends."""

__all__ = [
    "SlideJob",
    "SlideOutcome",
    "output_lock",
    "output_name",
    "plan_jobs",
    "run_jobs",
    "segment_one",
    "segment_slides",
]


@dataclass(frozen=True)
class SlideJob:
    """One slide of a batch and where its outputs go (picklable, for Dask workers)."""

    slide: Path
    target: Path
    extra: dict[str, Any] = field(default_factory=dict)
    ngff_version: NgffVersion = "0.4"
    resume: bool = False
    mpp: tuple[float, float] | None = None
    """Level-0 µm per pixel given by the user (``--mpp``), instead of the file's."""
    min_region_area: float = MIN_REGION_AREA
    """Smallest region of ``regions.geojson`` in µm² (level-0 px² without mpp)."""
    given: str | None = None
    """The slide as the user named it, for ``batch.csv``."""


OnDone = Callable[[SlideOutcome], None]


def plan_jobs(
    slides: Sequence[Path | tuple[Path, str]],
    out_dir: Path,
    extra: dict[str, Any] | None = None,
    *,
    ngff_version: NgffVersion = "0.4",
    resume: bool = False,
    mpp: tuple[float, float] | None = None,
    min_region_area: float = MIN_REGION_AREA,
) -> list[SlideJob]:
    """One job per distinct slide file, each with its own folder name (see
    :func:`razn.engine.inputs.output_names`). ``slides`` are paths or ``(path, as given)``
    pairs (:func:`razn.engine.inputs.expand_inputs_as_given`). A given ``mpp`` is recorded
    in the summary (``mpp_given``), so ``--resume`` redoes slides made with another."""
    pairs = unique_given(
        [(Path(s[0]), s[1]) if isinstance(s, tuple) else (Path(s), str(s)) for s in slides]
    )
    paths = [path for path, _ in pairs]
    names = output_names(paths)
    settings = {**(extra or {}), **({"mpp_given": list(mpp)} if mpp is not None else {})}
    settings["min_region_area"] = min_region_area  # --resume redoes slides made with another
    return [
        SlideJob(
            path,
            Path(out_dir) / name,
            dict(settings),
            ngff_version,
            resume,
            mpp,
            min_region_area,
            given,
        )
        for (path, given), name in zip(pairs, names, strict=True)
    ]


def segment_slides(
    slides: Sequence[Path],
    engine: ZoomEngine,
    out_dir: Path,
    extra_summary: dict[str, Any] | None = None,
    progress: bool = False,
    on_done: OnDone | None = None,
    *,
    ngff_version: NgffVersion = "0.4",
    resume: bool = False,
) -> list[SlideOutcome]:
    """Segment every slide in this process; one outcome per distinct slide, in order."""
    jobs = plan_jobs(slides, out_dir, extra_summary, ngff_version=ngff_version, resume=resume)
    with output_lock(out_dir):
        return run_jobs(jobs, engine, open_batch_table(out_dir, len(jobs)), progress, on_done)


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``OUT_DIR/.razn.lock`` for a batch (the folder is created); a second batch on
    the same folder fails at once with an :class:`OutputError` instead of interleaving
    its writes with the first one's. The kernel drops the lock when the process ends, even
    by SIGKILL; a lock file left behind then is taken over by the next batch."""
    out_dir = Path(out_dir)
    path = out_dir / LOCK_FILE
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle = _acquire(path, out_dir)
    except OSError as exc:
        raise OutputError(
            f"cannot write to the output folder: {_os_reason(exc)}", out_dir
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked: see _acquire
        handle.close()


def _acquire(path: Path, out_dir: Path):
    """Open and lock ``path``. A holder unlinks the file before it unlocks, so a lock won on
    a file that is no longer at ``path`` is stale: try again on the new file."""
    for _ in range(10):
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputError(
                f"another razn segment ({holder}) is writing to this output folder; wait for "
                "it to finish or choose another --out",
                out_dir,
            ) from None
        except OSError:
            handle.close()
            raise
        try:
            same = os.fstat(handle.fileno()).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()
    raise OutputError("cannot lock the output folder: its lock file keeps changing", out_dir)


def _os_reason(exc: OSError) -> str:
    """``[Errno 28] No space left on device`` without the file name (the caller names it)."""
    return f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc)


def run_jobs(
    jobs: Sequence[SlideJob],
    engine: ZoomEngine,
    table: BatchTable,
    progress: bool | str = False,
    on_done: OnDone | None = None,
) -> list[SlideOutcome]:
    """Run ``jobs`` one after another, recording each outcome in ``table`` as it comes.

    ``progress``: ``bar``, ``log`` or ``quiet`` (:mod:`razn.engine.progress`); True picks
    ``bar`` on a terminal and ``log`` elsewhere, False is ``quiet``.
    """
    mode = progress if isinstance(progress, str) else progress_mode(quiet=not progress)
    outcomes = []
    slides = _batch_bar(len(jobs), mode)
    try:
        for index, job in enumerate(jobs):
            outcome = dataclasses.replace(run_job(job, engine, mode), given=job.given)
            record(table, index, outcome)
            outcomes.append(outcome)
            if slides is not None:
                slides.update(1)
            if on_done is not None:
                on_done(outcome)
    finally:
        if slides is not None:
            slides.close()
    return outcomes


def _batch_bar(count: int, mode: str) -> Any:
    """The batch's bar over slides on a terminal (above each slide's own)."""
    if mode != "bar" or count < 2:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=count, desc="slides", unit="slide", position=0)


def record(table: BatchTable, index: int, outcome: SlideOutcome) -> None:
    """``table.record``, with a full disk or a lost folder as one clear :class:`OutputError`
    (the slides already done keep their complete folders; ``--resume`` skips them)."""
    try:
        table.record(index, outcome)
    except OSError as exc:
        raise OutputError(f"cannot update the batch table: {_os_reason(exc)}", table.path) from None


def open_batch_table(out_dir: Path, count: int) -> BatchTable:
    """A fresh ``OUT_DIR/batch.csv`` for ``count`` slides (the folder is created)."""
    table = BatchTable(Path(out_dir) / BATCH_TABLE, count)
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        table.write()
    except OSError as exc:
        raise OutputError(f"cannot write {BATCH_TABLE}: {_os_reason(exc)}", out_dir) from None
    return table


def run_job(job: SlideJob, engine: ZoomEngine, progress: str = "quiet") -> SlideOutcome:
    """Segment (or, resuming, skip) one slide; a :class:`RaznError` becomes a failed outcome.
    ``progress`` is the mode of :func:`razn.engine.progress.slide_progress`."""
    if job.resume and layout.is_complete(job.target, expected_summary(job, engine)):
        summary = layout.read_summary(job.target) or {}
        seconds = float(summary.get("seconds", 0.0))
        reason = "already complete"
        return SlideOutcome(
            job.slide, "skipped", job.target, reason, seconds, summary.get("patches")
        )
    start = time.perf_counter()
    geometry = engine.geometry
    reporter = slide_progress(job.slide.name, progress, geometry.num_levels, geometry.rate)
    try:
        output, result = segment_one(
            job.slide, engine, job.target.parent, job.extra, reporter,
            name=job.target.name, ngff_version=job.ngff_version, mpp=job.mpp,
            min_region_area=job.min_region_area,
        )  # fmt: skip
    except RaznError as exc:
        return SlideOutcome(job.slide, "failed", None, str(exc), time.perf_counter() - start)
    finally:
        reporter.close()
        release_free_memory()  # the next slide starts from the same resident memory
    return SlideOutcome(job.slide, "done", output, "", result.seconds, result.patches)


def expected_summary(job: SlideJob, engine: ZoomEngine) -> dict[str, Any]:
    """The summary values a finished segmentation of ``job`` by ``engine`` has."""
    expected = {
        "slide": str(job.slide.resolve()),
        "mode": engine.decider.name,
        **job.extra,
        "output_downsample": engine.output_downsample,
        "ngff_version": job.ngff_version,
    }
    return json.loads(json.dumps(expected))  # compared as summary.json holds them


def mpp_source(slide: Any, fallback: float) -> str:
    """Where the slide's pixel size comes from: ``override`` (``--mpp``), ``slide`` (its
    file) or ``fallback`` (``tissue.fallback_mpp``, logged: physical sizes are guesses)."""
    if slide.mpp_source is not None:
        return str(slide.mpp_source)
    LOG.warning(
        "%s: the file records no pixel size; tissue detection assumes %g µm/px "
        "(tissue.fallback_mpp); give --mpp X to set it",
        slide.path,
        fallback,
    )
    return "fallback"


def segment_labels(engine: ZoomEngine, path: Path, labels: Path) -> SlideResult:
    """Segment the slide at ``path`` into the label array ``labels`` only, with tissue
    detected outside the timed part as in :func:`segment_one`: what timing runs repeat."""
    with open_slide(path) as slide:
        tissue = detect_tissue(slide, engine.config.tissue)
        return engine.segment(slide, labels, tissue=tissue)


def segment_one(
    path: Path,
    engine: ZoomEngine,
    out_dir: Path,
    extra: dict[str, Any],
    progress: SlideProgress | None = None,
    *,
    name: str | None = None,
    ngff_version: NgffVersion = "0.4",
    viewer_outputs: bool = True,
    mpp: tuple[float, float] | None = None,
    min_region_area: float = MIN_REGION_AREA,
) -> tuple[Path, SlideResult]:
    """Segment one slide into ``out_dir/<name>/`` (default name: :func:`output_name`),
    written to a temporary folder first and moved into place when complete. Without
    ``viewer_outputs`` only ``labels.zarr``, ``decisions.csv`` and ``summary.json`` are
    written (see :func:`razn.engine.slide_outputs.write_slide_outputs`). ``mpp`` overrides
    the file's level-0 µm per pixel; ``summary.json`` says where the one used came from
    (``mpp_source``: ``slide``, ``override`` or ``fallback``, the last also logged)."""
    target = Path(out_dir) / (name or output_name(path))
    partial = target.parent / f".{target.name}.partial"
    try:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        with open_slide(path, mpp=mpp) as slide:
            source = mpp_source(slide, engine.config.tissue.fallback_mpp)
            tissue = detect_tissue(slide, engine.config.tissue)
            labels = partial / layout.LABELS
            result = engine.segment(slide, labels, tissue=tissue, progress=progress)
            summary = {**extra, "mpp_source": source}
            write_slide_outputs(
                partial, slide, engine, result, summary, ngff_version, viewer_outputs,
                min_region_area,
            )  # fmt: skip
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
    except RaznError:
        shutil.rmtree(partial, ignore_errors=True)  # a failed slide leaves nothing behind
        raise
    except OSError as exc:  # disk full, folder unwritable or removed: the slide failed
        shutil.rmtree(partial, ignore_errors=True)
        raise OutputError(
            f"cannot write its outputs in {target.parent}: {_os_reason(exc)}; nothing of "
            "this slide was kept — free space or fix the folder's permissions, then --resume",
            path,
        ) from None
    return target, result
