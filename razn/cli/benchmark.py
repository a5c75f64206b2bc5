"""``razn benchmark --config configs/benchmark.yaml --out DIR``: every mode, measured."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("benchmark")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Benchmark YAML (e.g. configs/benchmark.yaml); default: the built-in protocol with "
    "the default run config.",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Benchmark your own slides: a slide,mask,split CSV with train, val and test slides "
    "(instead of the synthetic dataset).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the data, runs, outputs and results (reused when run again).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a benchmark key, e.g. workers=1 or lambdas=[0.001,0.004] (repeatable).",
)
@click.option("--quiet", is_flag=True, help="No progress bars (progress lines still print).")
def command(
    config_path: Path | None,
    manifest: Path | None,
    out_dir: Path,
    overrides: tuple[str, ...],
    quiet: bool,
) -> None:
    """Measure razn against every baseline on held-out slides: make (or reuse) the synthetic
    benchmark or read your --manifest, train (or reuse) the run, choose λ on the val slides,
    segment the test slides in every mode (razn over λ and seeds, ud, cip, fixed-i, matched
    uncertainty and random, the oracle over λ, razn trained on noisy labels), score them, and
    write results.json, results.md, benchmark.json and pareto.png into OUT.

    Example: razn benchmark --manifest my_slides.csv --out runs/my_benchmark
    """
    from dataclasses import replace

    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=True)
    from razn.benchmark import BenchmarkConfig, run_benchmark
    from razn.config import load_config

    config = load_config(BenchmarkConfig, config_path, overrides)
    if manifest is not None:
        config = replace(config, manifest=str(manifest.resolve()))
    run_benchmark(config, config_path, out_dir, progress=not quiet, say=click.echo)
    click.echo((out_dir / "results.md").read_text(encoding="utf-8"))
