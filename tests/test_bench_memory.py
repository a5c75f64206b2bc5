"""scripts/bench_memory.py at a small size: it makes the slide once, segments it in a child
process and reports peak memory and wall time (the 100,000² run is a benchmark, not a test)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import zarr
from conftest import load_script

from razn.benchmark.process import measure
from razn.outputs import layout


def test_bench_memory_reports_peak_rss_and_reuses_the_slide(tiny_run, tmp_path, capsys):
    bench = load_script("bench_memory")
    args = ["--run", str(tiny_run / "run"), "--size", "4096", "--work", str(tmp_path)]
    assert bench.main([*args, "--mode", "ud"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["size"] == "4096x4096" and report["exit_code"] == 0
    assert report["synth_s"] > 0 and report["wall_s"] > report["engine_s"] > 0
    assert report["wall_s"] > report["outputs_s"] > 0
    assert report["outputs_over_engine"] == round(report["outputs_s"] / report["engine_s"], 3)
    assert 50 < report["peak_rss_mib"] < report["limit_mib"] == 2048.0
    assert report["within_limit"] is True
    assert report["patches"][1:] == [0, 0] and report["patches"][0] > 0  # ud: level 0 only
    assert json.loads((tmp_path / "memory_4096.json").read_text(encoding="utf-8")) == report
    labels = zarr.open_group(str(Path(report["output"]) / layout.LABELS_OME), mode="r")
    assert labels["0"].shape == (4096, 4096)
    assert sorted(p.name for p in tmp_path.glob("synthetic_*")) == [
        "synthetic_4096.tiff",
        "synthetic_4096_mask.tiff",
    ]
    assert bench.ensure_slide(tmp_path, 4096, 0) == (tmp_path / "synthetic_4096.tiff", 0.0)


def test_measure_sums_the_process_tree():
    child = 'import time; block = b"x" * (300 * 2**20); time.sleep(1.0)'  # pages touched
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    run = measure([sys.executable, "-c", parent], interval=0.05)
    assert run.exit_code == 0 and run.seconds >= 1.0
    assert run.peak_rss >= 300 * 2**20  # the grandchild's buffer counts
