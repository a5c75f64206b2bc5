"""scripts/bench_startup.py on the tiny run: every command timed, the first patch found."""

from __future__ import annotations

import pytest
from conftest import load_script

from razn.benchmark.startup import time_to_first_patch


def test_bench_startup_times_help_info_and_the_first_patch(tiny_run, capsys):
    slide = tiny_run / "data" / "slides" / "synth_002.tiff"
    script = load_script("bench_startup")
    args = ["--run", str(tiny_run / "run"), "--slide", str(slide), "--repeats", "1"]
    assert script.main([*args, "--mode", "cip"]) == 0
    rows = [line.split("|")[1:3] for line in capsys.readouterr().out.splitlines()[2:]]
    commands = [name.strip() for name, _ in rows]
    assert commands == [
        "`razn --help`", "`razn info SLIDE`", "`razn segment SLIDE --mode cip: first patch`"
    ]  # fmt: skip
    seconds = [float(value) for _, value in rows]
    assert 0 < seconds[0] < seconds[2]  # --help imports no torch; segment loads networks


def test_the_first_patch_is_also_timed_with_the_collector_running(tiny_run, capsys):
    slide = tiny_run / "data" / "slides" / "synth_002.tiff"
    script = load_script("bench_startup")
    args = ["--run", str(tiny_run / "run"), "--slide", str(slide), "--repeats", "1"]
    assert script.main([*args, "--mode", "cip", "--compare-collector"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 4
    assert "`razn segment SLIDE --mode cip: first patch, collector running through the " in rows[3]


def test_a_failing_segment_is_reported(tiny_run, tmp_path):
    with pytest.raises(RuntimeError, match="razn segment failed"):
        time_to_first_patch([str(tmp_path / "missing.tiff"), "--run", str(tiny_run / "run"),
                             "--out", str(tmp_path)])  # fmt: skip


@pytest.mark.parametrize("command", [["--help"], ["info", "SLIDE"]])
def test_help_and_info_import_no_torch(tiny_run, command):
    import subprocess
    import sys

    slide = str(tiny_run / "data" / "slides" / "synth_002.tiff")
    argv = [slide if part == "SLIDE" else part for part in command]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "razn", *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "torch" not in imported and "stable_baselines3" not in imported
    assert "razn" in imported  # the import log was read
