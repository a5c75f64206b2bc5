"""scripts/bench_engine.py on a tiny slide: both configs measured, the figures consistent."""

from __future__ import annotations

import importlib.util
import json

from conftest import load_script


def test_bench_engine_times_the_engine_and_the_network_on_the_same_patches(tmp_path, capsys):
    script = load_script("bench_engine")
    args = ["--size", "640", "--work", str(tmp_path), "--threads", "1"]
    backends = ["--backends", "torch", "openvino"] if importlib.util.find_spec("openvino") else []
    assert script.main([*args, *backends]) == 0
    record = json.loads((tmp_path / "engine_cost.json").read_text(encoding="utf-8"))
    configs = (
        ["default", "default (openvino)", "demo", "demo (openvino)"]
        if backends
        else [
            "default",
            "demo",
        ]
    )
    assert [r["config"] for r in record] == configs
    for row in record:
        assert row["slide_size"] == [640, 640] and row["threads"] == 1
        assert row["patches"] > 0
        assert row["engine_seconds"] > 0 and row["network_seconds"] > 0
        assert row["engine_overhead"] == row["engine_seconds"] / row["network_seconds"]
        assert row["engine_timings"]["segment"] <= row["engine_seconds"]
    by_config = {r["config"]: r for r in record}
    assert by_config["default"]["patch_size"] == 256 and by_config["demo"]["patch_size"] == 64
    # the demo's 64-px patches tile the same tissue with 16 × the patches of 256-px ones, about
    assert by_config["demo"]["patches"] > 4 * by_config["default"]["patches"]
    if backends:  # the same patches, whatever runs the network
        assert by_config["demo (openvino)"]["patches"] == by_config["demo"]["patches"]
    table = capsys.readouterr().out
    assert "| default | 640×640 | 256 |" in table and "| demo | 640×640 | 64 |" in table
