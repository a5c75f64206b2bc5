"""scripts/bench_dask.py on one tiny slide: both runs are timed, and their outputs agree
(the speed-up on the benchmark's slides is a measurement, not a test)."""

from __future__ import annotations

import json

import pytest
from conftest import load_script


def test_bench_dask_times_both_runs_and_compares_their_outputs(tiny_run, tmp_path, capsys):
    bench = load_script("bench_dask")
    slide = sorted((tiny_run / "data" / "slides").glob("synth_*.tiff"))[0]
    args = [str(slide), "--run", str(tiny_run / "run"), "--modes", "razn", "--work", str(tmp_path)]
    assert bench.main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mode"] == "razn" and report["workers"] == 2
    assert report["exit_codes"] == [0, 0]
    assert report["one_process_s"] > 0 and report["workers_s"] > 0
    assert report["speed_up"] == round(report["one_process_s"] / report["workers_s"], 3)
    assert report["slides_compared"] == report["slides_identical"] == 1
    assert report["differences"] == [] and report["max_probability_difference"] <= 1e-4
    assert report["workers_peak_rss_mib"] > report["one_process_peak_rss_mib"] > 50
    assert json.loads((tmp_path / "dask_speedup.json").read_text(encoding="utf-8")) == report
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dask_speedup.json",
        "razn_one_process",
        "razn_workers_2",
    ]
    with pytest.raises(SystemExit, match="razn_one_process: exists"):
        bench.main(args)  # never measures into a folder that holds an earlier run
