"""The whole story on a small built-in default, in a few minutes on two CPU cores.

1. Make a small synthetic dataset (``razn synth``), reused if already there.
2. Train the segmenters f_i and the zoom policies g_i briefly, the policies for five λ
   (the accuracy-versus-compute knob), so that the table shows the trade-off.
3. Segment the held-out test slide with ``razn`` at each λ, ``ud`` and ``cip`` through
   the same engine, after one untimed warm-up pass; each mode's seconds are the median of
   ``timing_runs`` runs, the later ones in rounds over every mode (a run of a few seconds
   carries ±20 % noise on a shared machine, and its speed drifts over a minute).
4. Score each against the ground truth and print Dice, seconds and patches per level.

Everything goes under one folder (``demo/`` by default); running again reuses the
dataset, the trained networks and the policies, and only segments again.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import zarr

from razn.config import load_config
from razn.data.manifest import read_manifest
from razn.data.masks import open_mask
from razn.data.synth import SynthConfig, ensure_dataset
from razn.engine import EngineConfig, ZoomEngine
from razn.engine.batch import segment_labels, segment_one
from razn.engine.modes import make_decider
from razn.errors import MaskError
from razn.evaluate import score_labels
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory
from razn.slide import open_slide

DEMO_SLIDES = 5
DEMO_SIZE = (3072, 3072)
DEMO_SEED = 0
DEMO_MODES = ("razn", "ud", "cip")
DEMO_LAMBDAS = (0.003, 0.01, 0.03, 0.05, 0.07, 0.1)
"""λ of the razn rows: more accurate and slower to faster and coarser; the run's own λ
(0.01, the default) is the one whose outputs go to ``outputs/razn``."""
DEMO_OVERRIDES = (
    "name=demo",
    "levels.downsamples=[4, 2, 1]",
    "levels.patch_size=64",
    "model.encoder_depth=3",
    "model.decoder_channels=[16, 8, 8]",
    # A quarter of the patch side, as in the default config (256 → 64): on 64-px patches a
    # 36² view made each policy call cost nearly a segmentation of this small network.
    "observation.size=16",
    "seg_train.steps=60",
    "seg_train.batch_size=8",
    "seg_train.lr=0.003",
    "seg_train.val_every=30",
    "seg_train.val_patches=32",
    "seg_train.num_workers=0",
    # One thread: on two cores shared with anything else, two threads per op thrash
    # (measured 4.5 s against 0.1 s per step), while alone one thread costs little.
    "seg_train.torch_threads=1",
    "policy.timesteps=4096",
    "policy.n_steps=128",
    "policy.batch_size=128",
)
"""The demo's run config, as overrides of the defaults (small enough for a few minutes)."""


@dataclass
class DemoRow:
    """One line of the demo's table."""

    mode: str
    lam: float | None
    tumour_dice: float
    mean_dice: float
    seconds: float
    patches: list[int]
    output: Path


@dataclass(frozen=True)
class DemoSettings:
    """What the demo makes and trains (the defaults are the demo; smaller ones make tests)."""

    slides: int = DEMO_SLIDES
    size: tuple[int, int] = DEMO_SIZE
    """Level-0 ``(w, h)`` of each synthetic slide."""
    overrides: tuple[str, ...] = ()
    """Run-config overrides applied after ``DEMO_OVERRIDES``."""
    lambdas: tuple[float, ...] = DEMO_LAMBDAS
    """λ of the razn rows (policies are trained for each)."""
    timing_runs: int = 5
    """Runs per mode whose median gives its seconds (the first also writes the outputs)."""


TINY_SETTINGS = DemoSettings(
    slides=3,
    size=(768, 768),
    lambdas=(0.01,),
    timing_runs=2,  # exercises the warm-up and the repeated timing at little cost
    overrides=(
        "seg_train.steps=6",
        "seg_train.val_every=6",
        "seg_train.val_patches=4",
        "policy.timesteps=256",
        "policy.n_envs=2",
        "policy.n_steps=64",
        "policy.batch_size=64",
        "policy.n_epochs=1",
    ),
)
"""Seconds instead of minutes: what the test suite runs the demo and the notebooks with."""


def demo_config(manifest: Path, settings: DemoSettings = DemoSettings()) -> RunConfig:
    """The demo's run config for a dataset ``manifest``."""
    overrides = (*DEMO_OVERRIDES, *settings.overrides, f"data.manifest={manifest.resolve()}")
    return load_config(RunConfig, None, overrides)


def ensure_demo_dataset(
    folder: Path, progress: bool, settings: DemoSettings = DemoSettings()
) -> Path:
    """The demo dataset's manifest, generated unless an identical one is already there."""
    return ensure_dataset(
        folder, settings.slides, *settings.size, DEMO_SEED, SynthConfig(), progress=progress
    )


def run_demo(
    out: Path,
    progress: bool = True,
    say: Callable[[str], None] = print,
    settings: DemoSettings = DemoSettings(),
) -> list[DemoRow]:
    """Run the demo into ``out`` and return its table (see the module docstring)."""
    from razn.train.policy import train_policies
    from razn.train.policy_files import policies_exist
    from razn.train.segmentation import train_segmenters

    started = time.perf_counter()
    manifest = ensure_demo_dataset(out / "data", progress, settings)
    say(f"[{time.perf_counter() - started:5.0f} s] dataset: {manifest}")
    config = demo_config(manifest, settings)
    run = RunDirectory.open_or_create(out / "run", config, policy_may_differ=True)
    for result in train_segmenters(run, progress=progress):
        say(
            f"[{time.perf_counter() - started:5.0f} s] segmenter of level {result.level} "
            f"(downsample {result.downsample:g}): validation Dice "
            f"{result.dice_text(config.data.class_names)}"
        )
    for lam in settings.lambdas:
        config = replace(run.config, reward=replace(run.config.reward, lam=lam))
        if policies_exist(run, lam, None, config):
            continue
        for report in train_policies(run, config, progress=progress, reuse=True):
            say(f"[{time.perf_counter() - started:5.0f} s] λ={lam:g}, {report.describe()}")
    rows = []
    for entry in read_manifest(manifest).split("test"):
        if entry.mask is None:
            raise MaskError("the demo scores every test slide against its mask", entry.slide)
        if settings.timing_runs > 1:  # the slide's file and the networks' first calls
            warm_up(run, entry.slide)
        done = []
        for mode, job_lam in _jobs(run.config.reward.lam, settings.lambdas):
            folder = (
                out
                / "outputs"
                / (mode if job_lam in (None, run.config.reward.lam) else f"razn_lam{job_lam:g}")
            )
            done.append(segment_once(run, entry.slide, mode, folder, job_lam))
            label = mode if job_lam is None else f"{mode} λ={job_lam:g}"
            say(f"[{time.perf_counter() - started:5.0f} s] {label}: {entry.slide.name} segmented")
        time_in_rounds(done, entry.slide, settings.timing_runs)
        if settings.timing_runs > 1:
            say(
                f"[{time.perf_counter() - started:5.0f} s] {settings.timing_runs - 1} more "
                f"timing rounds over every mode done"
            )
        rows += [score_row(run, job, entry.mask) for job in done]
    return rows


def _jobs(run_lambda: float, lambdas: tuple[float, ...]) -> list[tuple[str, float | None]]:
    """``(mode, λ)`` of every row: razn at each λ (and the run's), smallest first, then ud
    and cip."""
    ordered = sorted({run_lambda, *lambdas})
    return [("razn", lam) for lam in ordered] + [(m, None) for m in DEMO_MODES if m != "razn"]


def warm_up(run: RunDirectory, slide: Path) -> None:
    """Segment ``slide`` once in cip mode, untimed and into a scratch folder."""
    engine = ZoomEngine(run.load_segmenters(), make_decider("cip", run.num_levels), run.config)
    with tempfile.TemporaryDirectory() as scratch:
        segment_labels(engine, slide, Path(scratch) / "labels.zarr")


@dataclass
class SegmentedMode:
    """One mode segmented once on a slide (outputs written), and its engine times so far."""

    mode: str
    lam: float | None
    """razn's λ (None for the baselines)."""
    slide: Path
    engine: ZoomEngine
    output: Path
    patches: list[int]
    seconds: list[float]
    """Engine seconds of each run, the first being the one that wrote the outputs."""


def segment_once(
    run: RunDirectory, slide: Path, mode: str, out_dir: Path, lam: float | None = None
) -> SegmentedMode:
    """Segment ``slide`` with ``mode`` (razn: the policies of λ = ``lam``, default the
    run's) into ``out_dir``, outputs and all."""
    config = run.config
    lam = config.reward.lam if lam is None else lam
    decider = make_decider(mode, run.num_levels, policies_dir=run.policies_dir, lam=lam)
    engine = ZoomEngine(run.load_segmenters(), decider, config, EngineConfig())
    extra = {"lambda": lam if mode == "razn" else None, "run": str(run.path.resolve())}
    output, result = segment_one(slide, engine, out_dir, extra)
    razn_lam = lam if mode == "razn" else None
    return SegmentedMode(mode, razn_lam, slide, engine, output, result.patches, [result.seconds])


def time_in_rounds(modes: list[SegmentedMode], slide: Path, timing_runs: int) -> None:
    """Time every mode ``timing_runs − 1`` more times on ``slide`` (labels only), in rounds
    over all modes whose order turns each round: a slide of a few seconds carries ±20 %
    noise and the machine's speed drifts over a minute, so timing mode after mode would
    put a slow spell on whichever modes it met (measured: λ 0.07's share of cip's
    seconds read 0.48 in one demo run and 0.57 in the next)."""
    from razn.benchmark.timing import round_order

    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(1, timing_runs):
            for i in round_order(len(modes), round_, 0, timing_runs, 1):
                labels = Path(scratch) / f"{i}_{round_}.zarr"
                modes[i].seconds.append(segment_labels(modes[i].engine, slide, labels).seconds)


def score_row(run: RunDirectory, segmented: SegmentedMode, mask: Path) -> DemoRow:
    """``segmented``'s row: its outputs scored against ``mask``, its median seconds."""
    labels = zarr.open_array(str(segmented.output / "labels.zarr"), mode="r")
    downsample = segmented.engine.output_downsample
    with open_slide(segmented.slide) as opened, open_mask(mask, opened.dimensions) as truth:
        scores = score_labels(labels, downsample, truth, run.config.data.num_classes)
    return DemoRow(
        segmented.mode,
        segmented.lam,
        float(scores.dice[1]),
        float(scores.as_dict(run.config.data.class_names)["mean_dice"]),
        statistics.median(segmented.seconds),
        segmented.patches,
        segmented.output,
    )


def segment_and_score(
    run: RunDirectory,
    slide: Path,
    mask: Path,
    mode: str,
    out_dir: Path,
    lam: float | None = None,
    timing_runs: int = 1,
) -> DemoRow:
    """Segment ``slide`` with ``mode`` (razn: the policies of λ = ``lam``, default the
    run's) into ``out_dir`` and score it against ``mask``; its seconds are the median engine
    time of ``timing_runs`` runs."""
    segmented = segment_once(run, slide, mode, out_dir, lam)
    time_in_rounds([segmented], slide, timing_runs)
    return score_row(run, segmented, mask)


def format_table(rows: list[DemoRow]) -> str:
    """The demo's table: Dice (tumour and mean over classes), seconds (also as a share of
    cip's) and patches per level."""
    cip = next((r.seconds for r in rows if r.mode == "cip"), None)
    header = (
        f"{'mode':<14} {'tumour Dice':>11} {'mean Dice':>9} {'seconds':>8} {'x cip':>6}  "
        "patches per level"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        name = row.mode if row.lam is None else f"{row.mode} λ={row.lam:g}"
        share = f"{row.seconds / cip:>6.2f}" if cip else f"{'':>6}"
        patches = " / ".join(str(p) for p in row.patches)
        lines.append(
            f"{name:<14} {row.tumour_dice:>11.3f} {row.mean_dice:>9.3f} {row.seconds:>8.1f} "
            f"{share}  {patches}"
        )
    return "\n".join(lines)
