"""Benchmark worker processes: they end when the process that started them is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

SCRIPT = """
import os, sys, time
from pathlib import Path

from razn.benchmark.workers import run_tasks


def task(folder):
    (Path(folder) / f"{os.getpid()}.pid").write_text("started")
    time.sleep(60)
    (Path(folder) / f"{os.getpid()}.done").write_text("a killed benchmark's task went on")


if __name__ == "__main__":
    run_tasks(task, [(sys.argv[1],), (sys.argv[1],)], workers=2)
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(os.name != "posix", reason="orphans are detected by the parent pid (POSIX)")
def test_workers_end_when_the_benchmark_process_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "bench.py"
    script.write_text(SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(p.stem) for p in tmp_path.glob("*.pid")]
        assert len(workers) == 2 and all(map(_alive, workers))
        parent.send_signal(signal.SIGKILL)  # cannot be caught: no chance to stop the pool
        parent.wait()
        deadline = time.monotonic() + 15
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, workers))
        assert not list(tmp_path.glob("*.done"))
    finally:
        parent.kill()
        for pid in [int(p.stem) for p in tmp_path.glob("*.pid")]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
