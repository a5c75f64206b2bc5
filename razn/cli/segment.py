"""``razn segment SLIDE... --run RUN --out OUT``: segment slides the RAZN way or as a baseline."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


@click.command("segment")
@click.argument("slides", nargs=-1, required=True, type=click.Path(path_type=Path))
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
    help="Output folder; each slide gets OUT/<slide name>/.",
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
    "--threshold", type=click.FloatRange(0, 1), help="Entropy threshold of --mode uncertainty."
)
@click.option(
    "--zoom-probability", type=click.FloatRange(0, 1), help="Zoom probability of --mode random."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, …")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--output-downsample",
    type=click.FloatRange(min=1),
    help="Label output resolution in level-0 px per pixel (default: the finest working level).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --mode random.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def command(
    slides: tuple[Path, ...],
    run_path: Path,
    out_dir: Path,
    mode: str,
    lam: float | None,
    threshold: float | None,
    zoom_probability: float | None,
    device: str,
    batch_size: int,
    output_downsample: float | None,
    seed: int,
    quiet: bool,
) -> None:
    """Segment each SLIDE into OUT/<slide name>/: labels.zarr, decisions.csv, summary.json and
    overlay.png. A slide that fails is reported (one line) and the others go on; the exit
    code is 2 if any failed."""
    from razn.engine import EngineConfig, ZoomEngine
    from razn.engine.batch import segment_slides
    from razn.engine.modes import make_decider
    from razn.models import select_device
    from razn.run_dir import RunDirectory

    run = RunDirectory.open(run_path)
    config = run.config
    lam = config.reward.lam if lam is None else lam
    target = select_device(device)
    segmenters = [model.to(target) for model in run.load_segmenters()]
    decider = make_decider(
        mode, run.num_levels, run.policies_dir, lam, threshold, zoom_probability, seed
    )
    engine_config = EngineConfig(
        batch_size=batch_size, output_downsample=output_downsample, device=str(target)
    )
    engine = ZoomEngine(segmenters, decider, config, engine_config)
    extra = {"lambda": lam if mode == "razn" else None, "run": str(run.path)}

    def report(outcome) -> None:
        if outcome.status == "done":
            patches = "/".join(str(p) for p in outcome.patches)
            click.echo(
                f"{outcome.slide.name}: done in {outcome.seconds:.1f} s, patches per level {patches} -> {outcome.output}"
            )
        else:
            click.echo(f"razn: error: {outcome.reason}", err=True)

    started = time.perf_counter()
    outcomes = segment_slides(
        list(slides), engine, out_dir, extra, progress=not quiet, on_done=report
    )
    failed = [o for o in outcomes if o.status != "done"]
    click.echo(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} slides segmented with mode {decider.name} "
        f"in {time.perf_counter() - started:.1f} s; outputs in {out_dir}"
    )
    if failed:
        click.echo(f"failed: {', '.join(str(o.slide) for o in failed)}", err=True)
        sys.exit(2)
