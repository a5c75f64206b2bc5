"""``razn segment SLIDE... --run RUN --out OUT``: segment slides the RAZN way or as a baseline."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from razn.cli.options import MPP_HELP, MppValue, UnitValues
from razn.outputs.layout import MIN_REGION_AREA

if TYPE_CHECKING:
    from razn.engine.batch import SlideJob
    from razn.engine.spec import EngineSpec
    from razn.engine.zoom import ZoomEngine
    from razn.outputs.batch_table import SlideOutcome
    from razn.outputs.ome_zarr import NgffVersion


@click.command("segment")
@click.argument("slides", nargs=-1, type=str)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also segment the slides of this manifest CSV (masks may be empty).",
)
@click.option("--split", type=click.Choice(["train", "val", "test"]), help="Only this split.")
@click.option(
    "--run",
    "run_path",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory with trained segmenters (and policies for --mode razn).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; each slide gets OUT/<slide name>/, the batch OUT/batch.csv.",
)
@click.option(
    "--mode",
    default="razn",
    show_default=True,
    help="razn, ud, cip, fixed-<i>, uncertainty or random.",
)
@click.option(
    "--lambda", "lam", type=click.FloatRange(min=0), help="λ of the policies (default: the run's)."
)
@click.option(
    "--budget",
    type=click.FloatRange(min=0, min_open=True),
    help="Mode razn: at most this share of cip's patch segmentations (e.g. 0.3), mapped to "
    "λ by the validation costs stored with the run's policies; instead of --lambda.",
)
@click.option(
    "--threshold",
    type=UnitValues(),
    help="Mode uncertainty: zoom where f_i's mean normalised entropy (0–1) exceeds this; one "
    "value, or one per decision level coarsest first (e.g. 0.3,0.2,0.1).",
)
@click.option(
    "--zoom-probability",
    type=UnitValues(),
    help="Mode random: zoom with this probability; one value, or one per decision level.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, …")
@click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    default="auto",
    show_default=True,
    help="Network precision on CUDA (auto: bf16 where supported, else fp16); CPU runs fp32 "
    "(bf16 with --backend openvino).",
)
@click.option(
    "--backend",
    type=click.Choice(["torch", "openvino"]),
    default="torch",
    show_default=True,
    help="How the segmenters run: torch, or openvino (CPU only, several times faster; "
    "pip install 'razn[openvino]'). The OpenVINO graph is made from the run's weights once "
    "and kept beside them.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Patches per network call.",
)
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Overlap-tile margin in px: each patch is segmented with this much context on "
    "every side and only its centre kept (no seams at patch borders; costs "
    "((P + 2·overlap) / P)² of the network time). A multiple of 16 for 256-px patches. "
    "A level trained with more context (the run's levels.context) keeps its own.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads for the networks (default: one per core; with --workers, per worker).",
)
@click.option(
    "--output-downsample",
    type=click.FloatRange(min=1),
    help="Label output resolution in level-0 px per pixel (default: the finest working level).",
)
@click.option(
    "--ngff",
    "ngff_version",
    type=click.Choice(["0.4", "0.5"]),
    default="0.4",
    show_default=True,
    help="OME-Zarr version: 0.4 (zarr v2, what QuPath and napari read today) or 0.5 (zarr v3).",
)
@click.option("--resume", is_flag=True, help="Skip slides already complete with these settings.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Segment slides in parallel on a Dask LocalCluster of this many processes.",
)
@click.option("--scheduler", help="Submit the slides to the Dask scheduler at this address.")
@click.option("--mpp", type=MppValue(), help=MPP_HELP)
@click.option(
    "--tissue-method",
    type=click.Choice(["saturation", "darkness", "fluorescence"]),
    help="Tissue detection instead of the run's: saturation (H&E, IHC), darkness, or "
    "fluorescence (dark background).",
)
@click.option(
    "--tissue-threshold",
    type=click.FloatRange(0, 255),
    help="A fixed tissue threshold on the method's 0–255 measure instead of Otsu's.",
)
@click.option(
    "--min-region-area",
    type=click.FloatRange(min=0),
    default=MIN_REGION_AREA,
    show_default=True,
    help="Smallest region written to regions.geojson, in µm² (level-0 px² on slides "
    "without mpp); the label images keep every pixel.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --mode random.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def command(
    slides: tuple[str, ...],
    manifest: Path | None,
    split: str | None,
    run_path: Path,
    out_dir: Path,
    mode: str,
    lam: float | None,
    budget: float | None,
    threshold: float | tuple[float, ...] | None,
    zoom_probability: float | tuple[float, ...] | None,
    device: str,
    precision: str,
    backend: str,
    batch_size: int,
    overlap: int,
    threads: int | None,
    output_downsample: float | None,
    ngff_version: str,
    resume: bool,
    workers: int | None,
    scheduler: str | None,
    seed: int,
    mpp: tuple[float, float] | None,
    tissue_method: str | None,
    tissue_threshold: float | None,
    min_region_area: float,
    quiet: bool,
) -> None:
    """Segment slides, zooming in only where the trained policies say detail matters.

    Each SLIDE (a path or a glob pattern) goes to OUT/<slide name>/: OME-Zarr labels and
    zoom map, decisions.csv, regions.geojson (QuPath), overlay.png and summary.json. A
    slide that fails is reported (one line) and the others go on; the exit code is 2 if
    any failed. --mode picks a baseline instead (ud: all coarse, cip: all at full
    resolution).

    Example: razn segment "slides/*.svs" --run runs/mine --out out --budget 0.3
    """
    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=mode == "razn")  # before the engine's imports: faster
    from razn.engine.batch import plan_jobs
    from razn.engine.inputs import expand_inputs_as_given
    from razn.engine.spec import EngineSpec, cached_engine

    if budget is not None and mode != "razn":
        raise click.UsageError("--budget applies to --mode razn only")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    spec = EngineSpec(
        run_path,
        mode=mode,
        lam=lam,
        threshold=threshold,
        zoom_probability=zoom_probability,
        seed=seed,
        device=device,
        precision=precision,
        backend=backend,
        batch_size=batch_size,
        overlap=overlap,
        output_downsample=output_downsample,
        budget=budget,
        tissue_method=tissue_method,
        tissue_threshold=tissue_threshold,
    )
    paths = expand_inputs_as_given(slides, manifest, split)
    parallel = workers is not None or scheduler is not None
    # Built here too, so a bad run or mode fails before any slide; with Dask on the CPU,
    # since the GPUs (and the device check) belong to the workers.
    engine = cached_engine(replace(spec, device="cpu") if parallel else spec)
    extra = spec.summary_extra(engine)
    version = cast("NgffVersion", ngff_version)
    jobs = plan_jobs(
        paths,
        out_dir,
        extra,
        ngff_version=version,
        resume=resume,
        mpp=mpp,
        min_region_area=min_region_area,
    )
    started = time.perf_counter()
    dask = {"workers": workers, "scheduler": scheduler, "threads": threads} if parallel else None
    outcomes = _segment_batch(spec, engine, jobs, out_dir, dask, progress=not quiet)
    _report_batch(outcomes, engine.decider.name, out_dir, time.perf_counter() - started)


def _segment_batch(
    spec: EngineSpec,
    engine: ZoomEngine,
    jobs: list[SlideJob],
    out_dir: Path,
    dask: dict[str, Any] | None,
    progress: bool,
) -> list[SlideOutcome]:
    """Segment ``jobs`` under OUT's lock, in this process with ``engine`` or, with ``dask``
    (``workers``, ``scheduler``, ``threads``), on Dask workers that build it from ``spec``."""
    from razn.engine.batch import open_batch_table, output_lock, run_jobs

    with output_lock(out_dir):  # a second batch on OUT fails here, before touching anything
        table = open_batch_table(out_dir, len(jobs))
        if dask is None:
            return run_jobs(jobs, engine, table, progress=progress, on_done=_report)
        from razn.engine.distributed import segment_on_dask

        return segment_on_dask(spec, jobs, table, on_done=_report, **dask)


def _report_batch(outcomes: list[SlideOutcome], mode: str, out_dir: Path, seconds: float) -> None:
    """The batch's last line (done, skipped, failed), and the failed slides on stderr with
    exit code 2 when any failed."""
    failed = [o for o in outcomes if o.status == "failed"]
    skipped = sum(o.status == "skipped" for o in outcomes)
    done = len(outcomes) - len(failed) - skipped
    click.echo(
        f"{done} done, {skipped} skipped, {len(failed)} failed of {len(outcomes)} slides "
        f"with mode {mode} in {seconds:.1f} s; outputs in {out_dir}"
    )
    if failed:
        click.echo(f"failed: {', '.join(str(o.slide) for o in failed)}", err=True)
        sys.exit(2)


def _report(outcome: SlideOutcome) -> None:
    """One line per slide: done (seconds, patches per level), skipped, or the error."""
    if outcome.status == "failed":
        click.echo(f"razn: error: {outcome.reason}", err=True)
    elif outcome.status == "skipped":
        click.echo(f"{outcome.slide.name}: skipped, already complete in {outcome.output}")
    else:
        patches = "/".join(str(p) for p in outcome.patches or [])
        click.echo(
            f"{outcome.slide.name}: done in {outcome.seconds:.1f} s, patches per level "
            f"{patches} -> {outcome.output}"
        )
