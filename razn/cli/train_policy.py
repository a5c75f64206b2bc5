"""``razn train-policy``: train the zoom policies g_{m−1} … g_0 of a run, bottom-up."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("train-policy")
@click.option(
    "--run",
    "run_path",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory holding trained segmenters (from razn train-seg).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Config whose policy and reward sections to use (default: the run's own).",
)
@click.option("--lambda", "lam", type=click.FloatRange(min=0), help="λ, overriding reward.lam.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a policy.* or reward.* key, e.g. policy.timesteps=5000 (repeatable).",
)
@click.option(
    "--held-out",
    "held_out",
    multiple=True,
    type=click.Choice(["train", "val", "test"]),
    help="Also judge each level on these slides against uncertainty, random and the oracle "
    "at equal zooms (e.g. val; repeatable).",
)
@click.option(
    "--into",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Policy folder to write (default RUN/policies/lam_<λ>[_seed_<s>]); for trying settings.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(
    run_path: Path,
    config_path: Path | None,
    lam: float | None,
    overrides: tuple[str, ...],
    held_out: tuple[str, ...],
    folder: Path | None,
    quiet: bool,
) -> None:
    """Train the zoom policies of a run (one reinforcement-learning agent per zoom level,
    finest first) for one accuracy-versus-compute trade-off λ, into RUN/policies/lam_<λ>/.

    The reward cache of the training slides is built on first use (RUN/cache) and
    reused while its inputs are unchanged. Larger λ: fewer zooms, faster, coarser.

    Example: razn train-policy --run runs/mine --lambda 0.02
    """
    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=True)
    from razn.policy.store import policy_folder
    from razn.run_dir import RunDirectory
    from razn.train.policy import policy_config, train_policies

    started = time.perf_counter()
    run = RunDirectory.open(run_path)
    config = policy_config(run, config_path, overrides, lam)
    reports = train_policies(run, config, not quiet, held_out, folder)
    for report in reports:
        what = "refine policy h" if report.policy == "h" else "level"
        click.echo(
            f"{what} {report.level}: {'refine' if report.policy == 'h' else 'zoom'} rate "
            f"{report.zoom_rate:.3f} (oracle "
            f"{report.oracle_zoom_rate:.3f}), agreement with oracle {report.agreement:.3f}, "
            f"mean reward {report.mean_reward:.4f} (oracle {report.oracle_mean_reward:.4f}) "
            f"over {report.patches} patches"
        )
        if report.held_out:
            h = report.held_out
            click.echo(
                f"  held out ({'/'.join(held_out)}): {h['zoomed']} of {h['nodes']} zoomed; "
                f"summed reward policy {h['policy']:.3f}, uncertainty {h['uncertainty']:.3f}, "
                f"random {h['random']:.3f}, oracle {h['oracle']:.3f}"
            )
    folder = folder or policy_folder(run.policies_dir, config.reward.lam, config.policy.seed)
    click.echo(f"policies in {folder} ({time.perf_counter() - started:.0f} s)")
