"""``razn benchmark``: every mode on held-out synthetic slides, from data to Pareto plot.

Steps, each reused when its result is already in ``OUT`` (an interrupted benchmark
continues where it stopped):

1. **Data**: the synthetic dataset of ``dataset`` (``OUT/data/clean``) and, when
   ``label_noise_um > 0``, the same slides with jittered mask borders
   (``OUT/data/noisy``; its manifest keeps the clean masks for the test slides).
2. **Runs**: ``OUT/runs/clean`` (and ``noisy``) from the run config: segmenters per level,
   trained side by side in ``workers`` processes.
3. **Caches and policies**: reward caches of the train, matching and test slides, then
   PPO policies for every λ of the sweep.
   **Default λ**: with ``select_lambda``, the ``match_split`` slides are segmented by razn
   at every λ and by cip; the default λ is the largest whose Dice there is at least
   ``lambda_dice_ratio`` × cip's, for the sweep's policies and (``select_over_seeds``) in
   the mean over the policy seeds (``OUT/lambda_selection.json``). Then the policies of
   the other seeds and of the noisy-label run are trained at that λ.
4. **Calibration** on the ``match_split`` slides: the entropy thresholds and zoom
   probabilities that give ``uncertainty`` and ``random`` razn's compute, one set per
   seed; with ``match_test_compute`` also a set at razn's compute on the test slides, from
   their images only (:mod:`razn.benchmark.matched_jobs`).
5. **Segmentation** of every test slide in every mode through the same engine, one slide
   at a time so every mode is timed alike; then Dice and IoU against the masks.
6. ``results.json``, ``results.md`` and ``pareto.png`` (:mod:`razn.benchmark.report`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from razn.benchmark.config import BenchmarkConfig
from razn.benchmark.jobs import Context, Job, Say
from razn.benchmark.matched_jobs import matched_jobs
from razn.benchmark.segment import run_jobs
from razn.benchmark.workers import (
    build_slide_cache,
    policy_set_config,
    run_tasks,
    slide_pairs,
    train_policy_set,
    train_segmenter_level,
)
from razn.config import load_config, to_dict
from razn.data.manifest import Manifest, ManifestEntry, read_manifest, write_manifest
from razn.data.synth import ensure_dataset
from razn.errors import ConfigError, ManifestError
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory
from razn.train.policy_files import policies_exist
from razn.train.segmentation import format_dice


def run_benchmark(
    config: BenchmarkConfig,
    config_path: Path | None,
    out: Path,
    progress: bool = True,
    say: Say = print,
) -> list[dict[str, Any]]:
    """Run the whole benchmark into ``out``; returns the result rows (also written there)."""
    from razn.benchmark.report import write_reports

    out = Path(out)
    user_manifest = config.manifest_path(config_path)
    if user_manifest is not None:  # checked before anything is made
        check_benchmark_manifest(read_manifest(user_manifest), config)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(config, out, say, progress)
    if user_manifest is not None:
        use_manifest(ctx, user_manifest)
    else:
        prepare_data(ctx)
    prepare_runs(ctx, config_path)
    train_models(ctx)
    train_policy_sets(ctx, [("clean", lam, None) for lam in sweep(ctx)])
    if config.select_lambda:
        ctx.selected_lambda = select_default_lambda(ctx)
    train_policy_sets(ctx, default_lambda_sets(ctx))
    jobs = plan_jobs(ctx)
    ctx.log(
        f"segmenting {len(ctx.manifests['clean'].split('test'))} test slides in {len(jobs)} modes"
    )
    rows = run_jobs(ctx, jobs, repeats=config.timing_repeats)
    selection = ctx.out / "lambda_selection.json"
    write_reports(
        rows,
        out,
        config,
        ctx.default_lambda,
        time.perf_counter() - ctx.started,
        json.loads(selection.read_text(encoding="utf-8")) if config.select_lambda else None,
    )
    ctx.log(f"results in {out / 'results.md'}, {out / 'results.json'}, {out / 'pareto.png'}")
    return rows


# -- 1. data -----------------------------------------------------------------------------
def check_benchmark_manifest(manifest: Manifest, config: BenchmarkConfig) -> None:
    """Refuse a manifest the protocol cannot run on: it needs slides to train on, to choose
    λ and match the baselines on (``match_split``), and to score (test)."""
    needed = ("train", config.match_split, "test")
    missing = [name for name in dict.fromkeys(needed) if not manifest.split(name)]
    if missing:
        raise ConfigError(
            f"the benchmark needs {', '.join(dict.fromkeys(needed))} slides and this manifest "
            f"has no {' and no '.join(missing)} slides",
            manifest.path,
        )


def use_manifest(ctx: Context, path: Path) -> None:
    """The user's dataset instead of the synthetic one (no label-noise run: it needs the
    generator's masks)."""
    ctx.manifests["clean"] = read_manifest(path)
    ctx.log(f"dataset: {path} ({len(ctx.manifests['clean'])} slides)")
    if ctx.config.label_noise_um > 0:
        ctx.log("label-noise run skipped: it jitters the synthetic generator's masks")


def prepare_data(ctx: Context) -> None:
    spec = ctx.config.dataset
    width, height = spec.size
    clean = ensure_dataset(
        ctx.out / "data" / "clean",
        spec.slides,
        width,
        height,
        spec.seed,
        spec.synth,
        progress=ctx.progress,
    )
    ctx.manifests["clean"] = read_manifest(clean)
    ctx.log(f"dataset: {clean}")
    if ctx.config.label_noise_um > 0:
        synth = replace(spec.synth, label_noise=ctx.config.label_noise_um)
        noisy = ensure_dataset(
            ctx.out / "data" / "noisy",
            spec.slides,
            width,
            height,
            spec.seed,
            synth,
            progress=ctx.progress,
        )
        ctx.manifests["noisy"] = noisy_manifest(read_manifest(noisy), ctx.manifests["clean"])
        ctx.log(f"noisy-label dataset: {noisy}")


def noisy_manifest(noisy: Manifest, clean: Manifest) -> Manifest:
    """Noisy masks for training and validation, clean masks for the test slides."""
    entries = [e for e in noisy.entries if e.split != "test"] + list(clean.split("test"))
    if noisy.path is None:
        raise ManifestError("the noisy-label manifest was not read from a file")
    path = write_manifest(noisy.path.with_name("manifest_noisy_train.csv"), entries)
    return read_manifest(path)


# -- 2. runs ----------------------------------------------------------------------------
def synthetic_classes(ctx: Context) -> tuple[str, ...]:
    """Run-config overrides naming the synthetic dataset's classes and colours (none for a
    user's manifest, whose classes the run config names); ``run_overrides`` may still
    change them."""
    if ctx.config.manifest is not None:
        return ()
    synth = ctx.config.dataset.synth
    names = ", ".join(synth.class_names)
    colours = ", ".join(f"[{r}, {g}, {b}]" for r, g, b in synth.class_colours)
    return (f"data.class_names=[{names}]", f"data.class_colours=[{colours}]")


def prepare_runs(ctx: Context, config_path: Path | None) -> None:
    """Open (or create) the runs. Their segmenters follow the run config of the first
    benchmark; its ``policy`` and ``reward`` sections may change later (policies retrain)."""
    run_yaml: Path | None = ctx.config.run_config_path(config_path)
    if run_yaml is not None and not run_yaml.is_file():
        if config_path is not None:
            raise ConfigError("run config not found", run_yaml)
        run_yaml = None  # no benchmark YAML and no configs/ here: the built-in defaults
    for variant, manifest in ctx.manifests.items():
        if manifest.path is None:
            raise ManifestError(f"the {variant} manifest was not read from a file")
        overrides = (
            *synthetic_classes(ctx),
            *ctx.config.run_overrides,
            f"data.manifest={manifest.path.resolve()}",
        )
        run_config = load_config(RunConfig, run_yaml, overrides)
        ctx.runs[variant] = RunDirectory.open_or_create(
            ctx.out / "runs" / variant, run_config, policy_may_differ=True
        )
        ctx.configs[variant] = run_config


# -- 3. training ------------------------------------------------------------------------
def train_models(ctx: Context) -> None:
    """The segmenters of every run, then the reward caches of the slides that need one."""
    workers = ctx.config.workers
    level_tasks = [
        (str(run.path), level)
        for run in ctx.runs.values()
        for level in range(run.num_levels)
        if not run.is_trained(level)
    ]
    if level_tasks:
        ctx.log(f"training {len(level_tasks)} segmenters ({workers} at a time)")
        run_tasks(
            train_segmenter_level,
            level_tasks,
            workers,
            lambda task, dice: ctx.log(
                f"segmenter of level {task[1]} of {Path(task[0]).name}: validation Dice "
                + format_dice(ctx.clean.config.data.class_names, dice or ())
            ),
        )
    for variant in ctx.runs:  # reopen: run.json now records every level
        reopened = RunDirectory.open(ctx.runs[variant].path)
        ctx.runs[variant] = RunDirectory(reopened.path, ctx.configs[variant], reopened.info)
    cache_tasks = [
        (str(ctx.clean.path), slide, mask)
        for slide, mask in slide_pairs(cache_entries(ctx.manifests["clean"], ctx.clean, ctx.config))
    ]
    if "noisy" in ctx.runs:
        noisy = ctx.runs["noisy"]
        cache_tasks += [
            (str(noisy.path), slide, mask)
            for slide, mask in slide_pairs(
                e for e in ctx.manifests["noisy"].entries if e.split in noisy.config.policy.splits
            )
        ]
    ctx.log(f"reward caches of {len(cache_tasks)} slides")
    run_tasks(build_slide_cache, cache_tasks, workers)


def default_lambda_sets(ctx: Context) -> list[tuple[str, float, int | None]]:
    """The policy sets trained at the default λ beyond the sweep: other seeds, noisy labels."""
    wanted: list[tuple[str, float, int | None]] = [
        ("clean", ctx.default_lambda, ctx.policy_seed(seed))
        for seed in ctx.config.seeds
        if ctx.policy_seed(seed) is not None
    ]
    if "noisy" in ctx.runs:
        wanted.append(("noisy", ctx.default_lambda, None))
    return wanted


def train_policy_sets(ctx: Context, wanted: list[tuple[str, float, int | None]]) -> None:
    """Train (or reuse) the policy sets ``(variant, λ, policy seed)``, ``workers`` at a time."""
    workers = ctx.config.workers
    held_out = (ctx.config.match_split,)  # never test: see BenchmarkConfig.match_split
    policy_tasks = [
        (str(ctx.runs[variant].path), lam, seed, to_dict(ctx.configs[variant]), held_out)
        for variant, lam, seed in wanted
        if not policies_exist(
            ctx.runs[variant], lam, seed, policy_set_config(ctx.configs[variant], lam, seed)
        )
    ]
    if policy_tasks:
        ctx.log(f"training {len(policy_tasks)} policy sets (λ, seed)")
        run_tasks(
            train_policy_set,
            policy_tasks,
            workers,
            lambda task, reports: log_policy_set(ctx, task, reports),
        )
    from razn.policy.store import policy_folder
    from razn.train.validation_cost import ensure_validation_cost

    for variant, lam, seed in wanted:  # sets trained before validation costs were recorded
        run = ctx.runs[variant]
        config = policy_set_config(ctx.configs[variant], lam, seed)
        ensure_validation_cost(run, config, policy_folder(run.policies_dir, lam, seed), False)


def log_policy_set(ctx: Context, task: tuple[Any, ...], reports: list[dict[str, Any]]) -> None:
    """One line per trained policy set, with its levels' held-out comparison."""
    levels = []
    for report in sorted(reports, key=lambda r: (r["level"], r.get("policy", "g"))):
        h = report.get("held_out") or {}
        if h:
            levels.append(
                f"{report.get('policy', 'g')}_{report['level']} {h['zoomed']}/{h['nodes']} "
                f"{'refined' if report.get('policy') == 'h' else 'zoomed'}, "
                f"reward {h['policy']:.2f} "
                f"(uncertainty {h['uncertainty']:.2f}, random {h['random']:.2f}, "
                f"oracle {h['oracle']:.2f})"
            )
    ctx.log(
        f"policies of {Path(task[0]).name} λ={task[1]:g} seed={task[2]}"
        + (f"; {ctx.config.match_split}: " + "; ".join(levels) if levels else "")
    )


def sweep(ctx: Context) -> list[float]:
    """The λ sweep (with the run's own λ in it when that is the default)."""
    extra = set() if ctx.config.select_lambda else {float(ctx.clean.config.reward.lam)}
    return sorted({*map(float, ctx.config.lambdas), *extra})


def lambdas(ctx: Context) -> list[float]:
    """The λ sweep, with the λs the default λ's bisection tried and the default λ in it."""
    return sorted({*sweep(ctx), *ctx.refined_lambdas, float(ctx.default_lambda)})


def select_default_lambda(ctx: Context) -> float:
    """The largest λ of the sweep whose razn Dice on the ``match_split`` slides is at least
    ``lambda_dice_ratio`` × cip's there (the smallest λ when none is); with
    ``select_over_seeds`` that must hold for the mean over the policy seeds too, which are
    trained at each candidate, largest first, until one holds. Then ``lambda_refine_steps``
    bisection steps towards the next λ of the sweep (:func:`bisect_lambda`). Written, with
    every figure it was chosen from, to ``OUT/lambda_selection.json``."""
    split, ratio = ctx.config.match_split, ctx.config.lambda_dice_ratio
    jobs = [Job("clean", "razn", lam) for lam in sweep(ctx)] + [Job("clean", "cip")]
    ctx.log(f"choosing the default λ on the {split} slides ({len(jobs)} modes)")
    rows = run_jobs(ctx, jobs, split=split, outputs="selection")
    cip = next(r for r in rows if r["mode"] == "cip")
    razn = [r for r in rows if r["mode"] == "razn"]
    target = ratio * cip["dice"]
    other_seeds = [s for s in ctx.config.seeds if ctx.policy_seed(s) is not None]
    over_seeds = ctx.config.select_over_seeds and bool(other_seeds)
    checks: list[dict[str, Any]] = []

    def holds(lam: float, dice: float) -> bool:
        """The rule at ``lam``, whose sweep policies scored ``dice`` on the split."""
        if dice < target:
            return False
        if not over_seeds:
            return True
        checks.append(seed_check(ctx, lam, dice, other_seeds, target))
        return bool(checks[-1]["met"])

    chosen = next(
        (
            float(r["lambda"])
            for r in sorted(razn, key=lambda r: -r["lambda"])
            if holds(float(r["lambda"]), r["dice"])
        ),
        None,
    )
    met = chosen is not None
    refined: list[dict[str, Any]] = []
    above = [float(r["lambda"]) for r in razn if met and r["lambda"] > chosen]
    if chosen is not None and above and ctx.config.lambda_refine_steps:

        def try_lambda(lam: float) -> bool:
            train_policy_sets(ctx, [("clean", lam, None)])
            row = run_jobs(ctx, [Job("clean", "razn", lam)], split=split, outputs="selection")[0]
            refined.append({"lambda": lam, "dice": row["dice"], "seconds": row["seconds"]})
            refined[-1]["held"] = holds(lam, row["dice"])
            return bool(refined[-1]["held"])

        tries = bisect_lambda(chosen, min(above), ctx.config.lambda_refine_steps, try_lambda)
        chosen = max([chosen, *(lam for lam, held in tries if held)])
    ctx.refined_lambdas = [r["lambda"] for r in refined]
    if chosen is None:
        chosen = float(min(r["lambda"] for r in razn))
    rule = f"largest λ with Dice >= {ratio:g} × cip's on the {split} slides"
    if over_seeds:
        rule += f", in the mean over the policy seeds {', '.join(map(str, ctx.config.seeds))} too"
    if refined:
        rule += f", bisected {len(refined)} time(s) towards the next λ of the sweep"
    record = {
        "split": split,
        "rule": rule,
        "cip_dice": cip["dice"],
        "cip_seconds": cip["seconds"],
        "candidates": [
            {"lambda": r["lambda"], "dice": r["dice"], "seconds": r["seconds"]} for r in razn
        ],
        "refined": refined,
        "seed_checks": checks,
        "chosen": chosen,
        "met": met,
    }
    (ctx.out / "lambda_selection.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    ctx.log(
        f"default λ = {chosen:g}: "
        + ", ".join(f"λ={r['lambda']:g} Dice {r['dice']:.4f}" for r in [*razn, *refined])
        + f"; cip {cip['dice']:.4f} on {split}"
        + ("" if met else f" (no λ reached {ratio:g} × cip: the smallest is used)")
    )
    return chosen


def bisect_lambda(
    low: float, high: float, steps: int, holds: Callable[[float], bool]
) -> list[tuple[float, bool]]:
    """Up to ``steps`` bisection steps between ``low`` (holds the rule) and ``high`` (does
    not): each tries the geometric mean, rounded to 3 significant digits so that policy
    folders keep readable names, and moves the bound it falls on. Returns ``(λ, held)``
    for every λ tried, in order; stops early when the rounded mean hits a bound."""
    tried: list[tuple[float, bool]] = []
    for _ in range(steps):
        mid = float(f"{math.sqrt(low * high):.3g}")
        if not low < mid < high:
            break
        held = holds(mid)
        tried.append((mid, held))
        low, high = (mid, high) if held else (low, mid)
    return tried


def seed_check(
    ctx: Context, lam: float, first_dice: float, seeds: list[int], target: float
) -> dict[str, Any]:
    """Train the policy sets of the other ``seeds`` at ``lam`` (kept: the default λ's seeds
    are then ready) and score them on the ``match_split`` slides; met when the mean Dice
    over every seed, the sweep's own included, reaches ``target``.

    One seed's Dice at a λ where the policies are about to stop zooming is a coin toss
    (session 22: 0.757 on test for the sweep's seed, 0.735 for both others); the default λ
    is judged on the mean over seeds, so it is chosen on that mean."""
    train_policy_sets(ctx, [("clean", lam, ctx.policy_seed(seed)) for seed in seeds])
    rows = run_jobs(
        ctx,
        [Job("clean", "razn", lam, seed) for seed in seeds],
        split=ctx.config.match_split,
        outputs="selection",
    )
    dice = [float(first_dice), *(float(r["dice"]) for r in rows)]
    mean = sum(dice) / len(dice)
    ctx.log(
        f"λ={lam:g} over {len(dice)} seeds: Dice {', '.join(f'{d:.4f}' for d in dice)} "
        f"(mean {mean:.4f}, needs {target:.4f})"
    )
    return {"lambda": lam, "seed_dice": dice, "mean_dice": mean, "met": mean >= target}


def cache_entries(
    manifest: Manifest, run: RunDirectory, config: BenchmarkConfig
) -> list[ManifestEntry]:
    """Slides needing a reward cache: policy training, calibration, and the test slides of
    the oracle and of the baselines matched to razn's test compute."""
    splits = set(run.config.policy.splits) | {config.match_split}
    matched = {"uncertainty", "random"} & set(config.modes)
    if "oracle" in config.modes or (matched and config.match_test_compute):
        splits.add("test")
    return [e for e in manifest.entries if e.split in splits]


# -- 4. calibration and the job list ------------------------------------------------------
def plan_jobs(ctx: Context) -> list[Job]:
    """Every (mode, parameters) the test slides are segmented with."""
    config, run = ctx.config, ctx.clean
    modes = set(config.modes)
    jobs: list[Job] = []
    if "razn" in modes:
        jobs += [Job("clean", "razn", lam) for lam in lambdas(ctx)]
        jobs += [
            Job("clean", "razn", ctx.default_lambda, seed)
            for seed in config.seeds
            if ctx.policy_seed(seed) is not None
        ]
    if "ud" in modes:
        jobs.append(Job("clean", "ud"))
    if "fixed" in modes:
        jobs += [Job("clean", f"fixed-{i}") for i in range(1, run.num_levels - 1)]
    if "cip" in modes:
        jobs.append(Job("clean", "cip"))
    if modes & {"uncertainty", "random"}:
        jobs += matched_jobs(ctx, modes)
    if "oracle" in modes:  # the method's own ceiling at every λ of the curve
        jobs += [Job("clean", "oracle", lam) for lam in lambdas(ctx)]
    if "noisy" in ctx.runs:
        jobs += [Job("noisy", "razn", ctx.default_lambda), Job("noisy", "cip")]
    return jobs
