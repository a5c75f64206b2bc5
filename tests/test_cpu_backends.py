"""The CPU backend comparison: eager torch against itself, the engine's own path, a missing
backend reported."""

from __future__ import annotations

import numpy as np

from razn.benchmark.cpu_backends import format_table, time_backends
from razn.benchmark.engine_cost import random_segmenters
from razn.config import load_config
from razn.run_config import RunConfig

TINY = ("levels.patch_size=64", "model.encoder_depth=3", "model.decoder_channels=[16, 8, 8]")


def test_backends_are_timed_on_the_same_patches_and_missing_ones_reported(tmp_path, monkeypatch):
    config = load_config(RunConfig, None, TINY)
    patches = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)  # as if not installed
    timings = time_backends(
        lambda: random_segmenters(config)[-1],
        patches,
        tmp_path,
        ("eager", "engine", "channels_last", "openvino"),
        repeats=1,
    )
    eager, engine, channels_last, openvino = timings
    assert eager.agreement == 1.0 and eager.speedup(eager) == 1.0
    assert engine.agreement is not None and engine.agreement > 0.999  # softmax keeps argmax
    assert channels_last.agreement is not None and channels_last.agreement > 0.999
    assert openvino.seconds_per_batch is None and "unavailable" in openvino.note
    table = format_table(timings, patches.shape)
    assert "| eager |" in table and "| engine |" in table
    assert "| openvino | — | — | — | unavailable" in table
    engine_row = next(line for line in table.splitlines() if line.startswith("| engine |"))
    assert engine_row.split("|")[4].strip() == "1.00"  # the engine against itself
