"""scripts/bench_engine.py on a tiny slide: both configs measured, the figures consistent."""

from __future__ import annotations

import json

from conftest import load_script


def test_bench_engine_times_the_engine_and_the_network_on_the_same_patches(tmp_path, capsys):
    script = load_script("bench_engine")
    assert script.main(["--size", "640", "--work", str(tmp_path), "--threads", "1"]) == 0
    record = json.loads((tmp_path / "engine_cost.json").read_text(encoding="utf-8"))
    assert [r["config"] for r in record] == ["default", "demo"]
    for row in record:
        assert row["slide_size"] == [640, 640] and row["threads"] == 1
        assert row["patches"] > 0
        assert row["engine_seconds"] > 0 and row["network_seconds"] > 0
        assert row["engine_overhead"] == row["engine_seconds"] / row["network_seconds"]
        assert row["engine_timings"]["segment"] <= row["engine_seconds"]
    assert [r["patch_size"] for r in record] == [256, 64]
    # the demo's 64-px patches tile the same tissue with 16 × the patches of 256-px ones, about
    assert record[1]["patches"] > 4 * record[0]["patches"]
    table = capsys.readouterr().out
    assert "| default | 640×640 | 256 |" in table and "| demo | 640×640 | 64 |" in table
