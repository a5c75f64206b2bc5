"""``razn benchmark`` end to end on a tiny configuration, and its report on known rows."""

from __future__ import annotations

import json
import operator
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from razn.benchmark import runner
from razn.benchmark.config import BenchmarkConfig
from razn.benchmark.jobs import Context
from razn.benchmark.report import evaluate_targets
from razn.benchmark.runner import bisect_lambda
from razn.benchmark.workers import run_tasks
from razn.cli import main

TINY_RUN = """\
name: tiny-benchmark
levels: {downsamples: [4, 2, 1], patch_size: 32}
model: {encoder_depth: 3, decoder_channels: [16, 8, 8]}
observation: {size: 36}
seg_train: {steps: 3, batch_size: 4, val_every: 3, val_patches: 4, num_workers: 0}
policy: {timesteps: 64, n_envs: 2, n_steps: 32, batch_size: 32, n_epochs: 1}
"""

TINY_BENCHMARK = """\
name: tiny
dataset:
  slides: 3
  size: [256, 256]
  seed: 3
  synth: {val_fraction: 0.34, test_fraction: 0.34}
run_config: tiny_run.yaml
lambdas: [0.004, 0.01]
lambda_refine_steps: 1
seeds: [0, 1]
label_noise_um: 4.0
evaluation_downsample: 1.0
workers: 1
"""


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    folder = tmp_path_factory.mktemp("benchmark")
    (folder / "tiny_run.yaml").write_text(TINY_RUN, encoding="utf-8")
    (folder / "benchmark.yaml").write_text(TINY_BENCHMARK, encoding="utf-8")
    args = ["benchmark", "--config", str(folder / "benchmark.yaml"), "--out", str(folder / "out")]
    result = CliRunner().invoke(main, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    return folder / "out", result.output


def test_benchmark_runs_every_mode_and_writes_its_reports(tiny_benchmark):
    out, output = tiny_benchmark
    rows = json.loads((out / "results.json").read_text())
    modes = sorted({(r["variant"], r["mode"], r["lambda"], r["seed"]) for r in rows}, key=str)
    # the default λ was chosen on the val slide, by the rule, from the sweep's figures there
    selection = json.loads((out / "lambda_selection.json").read_text())
    lam = selection["chosen"]
    good = [
        c["lambda"] for c in selection["candidates"] if c["dice"] >= 0.98 * selection["cip_dice"]
    ]
    # ... and, for the mean over both seeds, checked largest first until one holds
    target = 0.98 * selection["cip_dice"]
    checks = selection["seed_checks"]
    sweep_checks = [c for c in checks if c["lambda"] in (0.004, 0.01)]
    assert [c["lambda"] for c in sweep_checks] == sorted(good, reverse=True)[: len(sweep_checks)]
    assert all(len(c["seed_dice"]) == 2 for c in checks)
    assert all(c["met"] == (c["mean_dice"] >= target) for c in checks)
    held = [c["lambda"] for c in sweep_checks if c["met"]]
    # one bisection step towards the next λ up (√(0.004 × 0.01) to 3 digits) when 0.004 held
    refined = selection["refined"]
    if held == [0.004]:
        assert [c["lambda"] for c in refined] == [0.00632]
        seed_held = [c["met"] for c in checks if c["lambda"] == 0.00632]
        assert refined[0]["held"] == (refined[0]["dice"] >= target and seed_held == [True])
    else:
        assert refined == []
    tried = [c["lambda"] for c in refined]
    assert lam == max([*held[:1], *(c["lambda"] for c in refined if c["held"])], default=0.004)
    assert selection["split"] == "val"
    assert sorted(c["lambda"] for c in selection["candidates"]) == [0.004, 0.01]
    assert json.loads((out / "benchmark.json").read_text())["default_lambda"] == lam
    curve = sorted({0.004, 0.01, *tried, lam})
    expected = [
        *[("clean", "razn", x, 0) for x in curve],
        ("clean", "razn", lam, 1),
        ("clean", "ud", None, None),
        ("clean", "fixed-1", None, None),
        ("clean", "cip", None, None),
        ("clean", "uncertainty", None, 0),
        ("clean", "uncertainty", None, 1),
        ("clean", "random", None, 0),
        ("clean", "random", None, 1),
        *[("clean", "oracle", x, None) for x in curve],
        ("noisy", "razn", lam, 0),
        ("noisy", "cip", None, None),
    ]
    assert modes == sorted(expected, key=str)
    # each seed's baselines matched twice: on the val slides and on the test slides' compute
    for mode in ("uncertainty", "random"):
        matched = sorted((r["matched_on"], r["seed"]) for r in rows if r["mode"] == mode)
        assert matched == [("test", 0), ("test", 1), ("val", 0), ("val", 1)]
    razn_patches = {
        r["seed"]: sum(r["patches"]) for r in rows if r["mode"] == "razn" and r["lambda"] == lam
    }
    for r in rows:  # the cached trees count what the engine then segments
        if r["mode"] == "uncertainty" and r["matched_on"] == "test":
            budget = r["test_patches"]
            assert budget["razn"] == razn_patches[r["seed"]]
            assert sum(r["patches"]) == budget["uncertainty"]
            assert budget["uncertainty"] <= budget["razn"] or not any(r["shares"])
    for row in rows:
        assert 0.0 <= row["dice"] <= 1.0 and row["slides"] == 1
        assert len(row["patches"]) == 3 and row["level0_pixels_read"] > 0
        assert set(row["timings"]) >= {"read", "segment", "policy", "write"}
        # timed three times (the scored run and two rounds); the one slide's median counts
        assert row["timing_repeats"] == 3 and len(row["seconds_runs"]) == 3
        assert row["seconds_runs"][0] == row["seconds_first"]
        assert row["seconds"] == sorted(row["seconds_runs"])[1]
    timing_files = list((out / "outputs").rglob("timing.json"))
    assert len(timing_files) == len(rows)
    assert all(len(json.loads(p.read_text())["repeats"]) == 2 for p in timing_files)
    by_mode = {r["mode"]: r for r in rows if r["variant"] == "clean"}
    # where each true class was decided: ud everything at L_0, cip at L_2, shares sum to 1
    for row in rows:
        assert list(row["class_area_by_level"]) == ["background", "tumour"]
        assert all(sum(s) == pytest.approx(1.0) for s in row["class_area_by_level"].values())
    assert by_mode["ud"]["class_area_by_level"]["tumour"] == [1.0, 0.0, 0.0]
    assert by_mode["cip"]["class_area_by_level"]["background"] == [0.0, 0.0, 1.0]
    assert "## Where each class was decided" in (out / "results.md").read_text()
    # ud segments only at L_0, cip only at L_2, fixed-1 only at L_1
    assert by_mode["ud"]["patches"][1:] == [0, 0] and by_mode["ud"]["patches"][0] > 0
    assert by_mode["cip"]["patches"][:2] == [0, 0]
    assert by_mode["fixed-1"]["patches"][0] == 0 and by_mode["fixed-1"]["patches"][2] == 0
    assert "thresholds" in by_mode["uncertainty"] and "probabilities" in by_mode["random"]
    # the zoom counts per level: never at the finest level, never for ud, always above it for cip
    assert all(len(r["zoomed"]) == 3 and r["zoomed"][2] == 0 for r in rows)
    assert by_mode["ud"]["zoomed"] == [0, 0, 0] and by_mode["cip"]["zoomed"][:2] != [0, 0]
    # each policy level was judged on the val slides against the baselines at equal zooms
    report = json.loads((out / "runs/clean/policies/lam_0.01/level_0.json").read_text())
    held_out = report["held_out"]
    assert held_out["level"] == 0 and 0 <= held_out["zoomed"] <= held_out["nodes"]
    assert held_out["oracle"] >= max(held_out["policy"], held_out["uncertainty"], 0.0)
    for name in ("results.md", "benchmark.json", "pareto.png"):
        assert (out / name).is_file()
    assert "## Targets" in (out / "results.md").read_text() and "## Targets" in output
    meta = json.loads((out / "benchmark.json").read_text())
    assert [t["number"] for t in meta["targets"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    # the noisy run's manifest keeps the clean masks of the test slides
    noisy = (out / "data" / "noisy" / "manifest_noisy_train.csv").read_text()
    assert "clean" in noisy.splitlines()[-1]


def test_benchmark_reuses_everything_when_run_again(tiny_benchmark):
    out, _ = tiny_benchmark
    before = {p: p.stat().st_mtime_ns for p in (out / "outputs").rglob("*.json")}
    folder = out.parent
    args = ["benchmark", "--config", str(folder / "benchmark.yaml"), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    after = {p: p.stat().st_mtime_ns for p in (out / "outputs").rglob("*.json")}
    assert after == before  # nothing segmented or timed again
    assert "training" not in result.output  # no segmenter or policy trained again


def test_new_policy_settings_retrain_the_policies_but_not_the_segmenters(tiny_benchmark):
    out, _ = tiny_benchmark
    folder = out.parent
    segmenters = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("segmenters/*.safetensors")}
    changed = folder / "benchmark_lr.yaml"
    changed.write_text(
        TINY_BENCHMARK + "run_overrides: [policy.learning_rate=0.003]\n", encoding="utf-8"
    )
    args = ["benchmark", "--config", str(changed), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    trained = re.findall(r"training (\d+) policy sets", result.output)
    assert sum(map(int, trained)) == 4 and "segmenters" not in result.output
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("segmenters/*.safetensors")}
    assert after == segmenters
    saved = (out / "runs/clean/policies/lam_0.01/config.yaml").read_text()
    assert "learning_rate: 0.003" in saved


def test_bench_overlap_rescores_the_benchmark_at_margin_0_and_measures_the_others(
    tiny_benchmark, capsys
):
    from conftest import load_script

    out, _ = tiny_benchmark
    script = load_script("bench_overlap")
    assert script.main(["--benchmark", str(out), "--margins", "4", "--repeats", "2"]) == 0
    rows = json.loads((out / "overlap.json").read_text())
    assert [(r["mode"], r["overlap"]) for r in rows] == [
        ("cip", 0), ("cip", 4), ("razn", 0), ("razn", 4)
    ]  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    lam = json.loads((out / "benchmark.json").read_text())["default_lambda"]
    cip = next(r for r in results if r["variant"] == "clean" and r["mode"] == "cip")
    razn = next(
        r for r in results
        if r["variant"] == "clean" and r["mode"] == "razn" and r["lambda"] == lam
        and r["seed"] == 0
    )  # fmt: skip
    # without a margin it is the benchmark's own segmentation, scored the same way
    assert rows[0]["dice"] == cip["dice"] and rows[0]["patches"] == sum(cip["patches"])
    assert rows[2]["dice"] == razn["dice"] and rows[2]["patches"] == sum(razn["patches"])
    assert rows[1]["patches"] == rows[0]["patches"]  # a margin changes inputs, not patches
    for row in rows:
        assert len(row["seconds_runs"]) == 2 and row["seconds"] > 0
    assert "| cip | 4 |" in capsys.readouterr().out


def test_targets_from_known_rows():
    def row(mode, dice, seconds, patches, lam=None, seed=None, variant="clean"):
        return {
            "variant": variant,
            "mode": mode,
            "lambda": lam,
            "seed": seed,
            "dice": dice,
            "seconds": seconds,
            "patches": patches,
        }

    rows = [
        row("razn", 0.97, 98.0, [0, 0, 0, 392], 0.001, 0),
        row("razn", 0.95, 30.0, [10, 20, 30, 40], 0.01, 0),
        row("razn", 0.97, 34.0, [10, 20, 30, 60], 0.01, 1),
        row("razn", 0.86, 5.1, [10, 0, 0, 0], 0.1, 0),
        row("cip", 0.97, 100.0, [0, 0, 0, 400]),
        row("ud", 0.85, 5.0, [10, 0, 0, 0]),
        row("fixed-1", 0.90, 20.0, [0, 40, 0, 0]),
        row("oracle", 0.965, 20.0, [10, 20, 30, 20], 0.01),
        row("uncertainty", 0.94, 31.0, [10, 20, 30, 50], None, 0),
        row("uncertainty", 0.95, 31.0, [10, 20, 30, 50], None, 1),
        row("random", 0.90, 31.0, [10, 20, 30, 50], None, 0),
        row("random", 0.91, 31.0, [10, 20, 30, 50], None, 1),
    ]
    targets = {t.number: t for t in evaluate_targets(rows, 0.01)}
    assert sorted(targets) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    pareto = targets[1]
    assert not pareto.met  # fixed-1's Dice costs razn 1.5 x its seconds
    assert "ud: 1.02x its s" in pareto.figure and "fixed-1: 1.50x its s" in pareto.figure
    assert "uncertainty s0: 0.97x its s (Dice lead at its s +0.0100, saving at its Dice 3%)" in (
        pareto.figure
    )
    assert targets[2].met and "λ=0.001: 98.0 s / 100.0 s = 0.980" in targets[2].figure
    assert targets[3].met and "λ=0.01 Dice 0.9700 = 1.0000 x cip in 0.34 x" in targets[3].figure
    assert not targets[4].met  # 0.99 x cip's Dice, but 0.32 x its seconds
    assert "= 0.990" in targets[4].figure and "= 0.320" in targets[4].figure
    assert "(the oracle meets it)" in targets[4].figure  # 0.995 x cip in 0.20 x: no fallback
    assert not targets[5].met and "110 / 80 = 1.38" in targets[5].figure  # Dice gap 0.005 ok
    assert targets[6].met  # 0.96 >= 0.945 and 0.96 - 0.905 > 2 sd
    assert "matched on val: uncertainty 0.9450 ± 0.0071" in targets[6].figure
    # matched on the test slides' compute too: judged there (uncertainty 0.97 > razn's 0.96)
    on_test = [
        {**r, "dice": 0.97, "matched_on": "test"} for r in rows if r["mode"] == "uncertainty"
    ]
    on_test += [{**r, "matched_on": "test"} for r in rows if r["mode"] == "random"]
    six = {t.number: t for t in evaluate_targets(rows + on_test, 0.01)}[6]
    assert not six.met and six.figure.startswith("razn 0.9600 ± 0.0141 (n=2); matched on test:")
    assert "matched on test: uncertainty 0.9700 ± 0.0000" in six.figure
    assert "matched on val: uncertainty 0.9450" in six.figure
    assert "uncertainty s0 (test compute): " in evaluate_targets(rows + on_test, 0.01)[0].figure
    assert targets[7].met and "gap 0.1200" in targets[7].figure
    assert targets[8].met is None  # no noisy-label rows
    assert targets[9].met is None  # rows without per-class Dice


def test_targets_3_and_4_fall_back_to_the_oracle_point_when_the_oracle_misses_them():
    def row(mode, dice, seconds, patches, lam=None, seed=None):
        return {"variant": "clean", "mode": mode, "lambda": lam, "seed": seed, "dice": dice,
                "seconds": seconds, "patches": patches}  # fmt: skip

    cip = row("cip", 0.96, 100.0, [0, 0, 400])
    oracle = [
        row("oracle", 0.955, 48.0, [0, 50, 150], 0.01),
        row("oracle", 0.95, 35.0, [0, 60, 60], 0.02),
    ]
    razn = [row("razn", 0.956, 60.0, [0, 40, 190], 0.005, 0), row("razn", 0.9549, 45.0, [0, 40, 140], 0.01, 0),
            row("razn", 0.95, 33.0, [0, 70, 70], 0.02, 0)]  # fmt: skip
    targets = {t.number: t for t in evaluate_targets([*razn, cip, *oracle], 0.02)}
    # T3: the oracle's best within half of cip is 0.9948 x cip; razn reaches its Dice 0.955
    # only at λ 0.005, with 230 / 200 = 1.15 x its patches
    assert targets[3].met
    assert "the oracle's best: λ=0.01 0.9948 x cip in 0.48 x" in targets[3].figure
    assert (
        "razn λ=0.005 reaches the oracle's Dice 0.9550 with 230 / 200 = 1.15 x" in targets[3].figure
    )
    # T4: the oracle at 0.02 is 0.990 x cip in 0.35 x: razn meets its Dice with 140 / 120 patches
    assert targets[4].met and "0.990 x cip's Dice in 0.350 x its seconds" in targets[4].figure
    assert "with 1.17 x its patches" in targets[4].figure
    # T9: each foreground class against its own cip Dice
    per_class = {"normal": 0.99, "benign": 0.9, "in situ": 0.8, "invasive": 0.9}
    cip["dice_per_class"] = per_class
    razn[2]["dice_per_class"] = {**per_class, "in situ": 0.75, "invasive": 0.88}
    nine = {t.number: t for t in evaluate_targets([*razn, cip, *oracle], 0.02)}[9]
    assert not nine.met  # in situ at 0.9375 x
    assert nine.figure == (
        "benign 0.9000 / 0.9000 = 1.000; in situ 0.7500 / 0.8000 = 0.938; "
        "invasive 0.8800 / 0.9000 = 0.978"
    )
    worse = [*razn[:2], row("razn", 0.949, 33.0, [0, 70, 70], 0.02, 0)]
    targets = {t.number: t for t in evaluate_targets([*worse, cip, *oracle], 0.02)}
    assert not targets[4].met  # 0.949 < the oracle's 0.95


def test_bisect_lambda_moves_the_bound_each_try_falls_on():
    tried: list[float] = []

    def holds(lam: float) -> bool:
        tried.append(lam)
        return lam <= 0.027

    # √(0.025 × 0.03) = 0.027386 -> 0.0274 misses; √(0.025 × 0.0274) = 0.026173 -> 0.0262 holds
    assert bisect_lambda(0.025, 0.03, 2, holds) == [(0.0274, False), (0.0262, True)]
    assert bisect_lambda(0.025, 0.03, 0, holds) == []
    # the rounded mean lands on a bound: nothing left to try
    assert bisect_lambda(0.0262, 0.0263, 3, holds) == []
    assert tried == [0.0274, 0.0262]


def test_the_default_lambda_is_bisected_towards_the_next_lambda_up(tmp_path, monkeypatch):
    """The selection's logic on made-up val Dice (target 0.98 × cip's 1.0): 0.01 is the
    largest λ of the sweep that holds over the seeds; 0.0141 (√(0.01 × 0.02)) holds too;
    0.0168 (√(0.0141 × 0.02)) holds for seed 0 alone, and the seed check turns it down."""
    dice = {0.01: 0.99, 0.02: 0.97, 0.04: 0.9, 0.0141: 0.985, 0.0168: 0.982}
    other_seeds = {0.01: 0.99, 0.0141: 0.981, 0.0168: 0.95}
    trained: list[tuple[float, int | None]] = []

    def fake_run_jobs(ctx, jobs, split, outputs):
        assert split == "val" and outputs == "selection"
        return [
            {"mode": "cip", "lambda": None, "dice": 1.0, "seconds": 10.0}
            if job.mode == "cip"
            else {
                "mode": "razn",
                "lambda": job.lam,
                "dice": dice[job.lam] if job.seed is None else other_seeds[job.lam],
                "seconds": 1.0,
            }
            for job in jobs
        ]

    def fake_train(ctx, wanted):
        trained.extend((lam, seed) for _, lam, seed in wanted)

    monkeypatch.setattr(runner, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(runner, "train_policy_sets", fake_train)
    config = BenchmarkConfig(lambdas=(0.01, 0.02, 0.04), seeds=(0, 1, 2), lambda_refine_steps=2)
    ctx = Context(config, tmp_path, say=lambda _: None, progress=False)
    ctx.runs["clean"] = SimpleNamespace(config=SimpleNamespace(seed=0))  # type: ignore[assignment]
    assert runner.select_default_lambda(ctx) == 0.0141
    record = json.loads((tmp_path / "lambda_selection.json").read_text())
    assert [(c["lambda"], c["held"]) for c in record["refined"]] == [
        (0.0141, True),
        (0.0168, False),
    ]
    assert [(c["lambda"], c["met"]) for c in record["seed_checks"]] == [
        (0.01, True),
        (0.0141, True),
        (0.0168, False),
    ]
    assert record["seed_checks"][2]["mean_dice"] == pytest.approx((0.982 + 0.95 + 0.95) / 3)
    # seed 0 at each bisected λ, then the other seeds for its check
    assert trained == [
        *[(0.01, 1), (0.01, 2)],
        *[(0.0141, None), (0.0141, 1), (0.0141, 2)],
        *[(0.0168, None), (0.0168, 1), (0.0168, 2)],
    ]
    assert ctx.refined_lambdas == [0.0141, 0.0168] and record["chosen"] == 0.0141


def test_run_tasks_in_worker_processes_keeps_task_order():
    tasks = [(1, 2), (3, 4), (5, 6)]
    assert run_tasks(operator.add, tasks, workers=2) == [3, 7, 11]
    assert run_tasks(operator.add, tasks, workers=1) == [3, 7, 11]


MANIFEST_BENCHMARK = """\
name: own-slides
run_config: tiny_run.yaml
lambdas: [0.01]
seeds: [0]
evaluation_downsample: 1.0
workers: 1
"""


def _own_slides(folder):
    """A user's dataset: three synthetic slides, the train slide's mask drawn in QuPath
    (a GeoJSON polygon rasterised with ``razn rasterize``)."""
    from razn.data.manifest import read_manifest, write_manifest
    from razn.data.synth import SynthConfig, make_dataset

    manifest = read_manifest(
        make_dataset(
            folder / "data",
            3,
            256,
            256,
            seed=3,
            config=SynthConfig(val_fraction=0.34, test_fraction=0.34),
        )
    )
    train = manifest.split("train")[0]
    polygon = [[[32, 32], [200, 40], [180, 210], [40, 190], [32, 32]]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": polygon},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}},
    }
    annotation = folder / "train.geojson"
    annotation.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    mask = folder / "train_mask.tiff"
    args = ["rasterize", str(annotation), "--slide", str(train.slide), "--out", str(mask)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    entries = [replace(e, mask=mask) if e.split == "train" else e for e in manifest.entries]
    return write_manifest(folder / "own.csv", entries), manifest


def test_benchmark_of_your_own_manifest_runs_the_same_protocol(tmp_path):
    (tmp_path / "tiny_run.yaml").write_text(TINY_RUN, encoding="utf-8")
    (tmp_path / "benchmark.yaml").write_text(MANIFEST_BENCHMARK, encoding="utf-8")
    manifest, _ = _own_slides(tmp_path)
    out = tmp_path / "out"
    args = ["benchmark", "--config", str(tmp_path / "benchmark.yaml"), "--manifest", str(manifest)]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "label-noise run skipped" in result.output
    assert not (out / "data").exists()  # no synthetic dataset made
    rows = json.loads((out / "results.json").read_text())
    modes = {(r["variant"], r["mode"]) for r in rows}
    assert ("clean", "razn") in modes and ("clean", "oracle") in modes and ("clean", "cip") in modes
    assert {r["variant"] for r in rows} == {"clean"}
    assert all(r["slides"] == 1 for r in rows)  # the manifest's one test slide
    assert json.loads((out / "lambda_selection.json").read_text())["split"] == "val"
    for name in ("results.md", "pareto.png", "benchmark.json"):
        assert (out / name).is_file()


def test_a_manifest_without_val_or_test_slides_is_a_one_line_error(tmp_path):
    from razn.data.manifest import write_manifest

    _, manifest = _own_slides(tmp_path)
    only_train = write_manifest(
        tmp_path / "train_only.csv", [e for e in manifest.entries if e.split == "train"]
    )
    out = tmp_path / "out"
    args = ["benchmark", "--manifest", str(only_train), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert (
        f"{only_train}: the benchmark needs train, val, test slides and this manifest has no val and no test slides"
        in result.output
    )
    assert "Traceback" not in result.output and not out.exists()


def test_timing_rounds_run_every_job_once_per_slide_starting_somewhere_else_each_time():
    from razn.benchmark.timing import round_order

    orders = [round_order(6, r, k, 3, 4) for r in (1, 2) for k in range(4)]
    assert all(sorted(order) == list(range(6)) for order in orders)
    assert len({order[0] for order in orders}) >= 4  # no job always first
    # round 1, slide 0 is step 4 of 12: the list rotated by 4 × 6 / 12 = 2; slide 1 also
    # starts at 2, reversed
    assert round_order(6, 1, 0, 3, 4) == [2, 3, 4, 5, 0, 1]
    assert round_order(6, 1, 1, 3, 4) == [1, 0, 5, 4, 3, 2]
