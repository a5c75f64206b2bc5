"""Benchmark worker processes: they end when the process that started them is killed.

The watch itself is checked in-process with exact expectations. The real scene — a
benchmark killed by SIGKILL and its spawned workers — is marked ``slow``: at the end of
the full suite the test process received a SIGSEGV while it waited for that scene (in CI,
exit code 245, and twice on this machine, under gdb while blocked in ``poll``), whether
the scene ran in the test process or in a child interpreter, and never when the test ran
alone or after a few other files. Run it with ``-m slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from razn.benchmark import workers

BENCHMARK = """
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

SCENE = """
import json, os, signal, subprocess, sys, time
from pathlib import Path

import psutil

folder = Path(sys.argv[1])


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


benchmark = subprocess.Popen([sys.executable, str(folder / "bench.py"), str(folder)])
report = {}
try:
    deadline = time.monotonic() + 120
    while len(list(folder.glob("*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [int(p.stem) for p in folder.glob("*.pid")]
    report["started"] = len(workers)
    report["alive_before"] = sum(map(alive, workers))
    benchmark.send_signal(signal.SIGKILL)  # cannot be caught: no chance to stop the pool
    benchmark.wait()
    deadline = time.monotonic() + 15
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    report["alive_after"] = sum(map(alive, workers))
    report["finished"] = len(list(folder.glob("*.done")))
finally:
    benchmark.kill()
    for pid in [int(p.stem) for p in folder.glob("*.pid")]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
print(json.dumps(report))
"""


def test_a_worker_exits_once_its_parent_is_gone_and_not_before(monkeypatch) -> None:
    """The watch polls the parent pid; it ends the worker (os._exit) on the first change."""
    parents = iter([100, 100, 100, 1])  # the benchmark (pid 100) is killed: init adopts us
    polls, exits = [], []

    class ExitedError(Exception):
        pass

    def exit_now(code: int) -> None:
        exits.append(code)
        raise ExitedError

    monkeypatch.setattr(workers.os, "getppid", lambda: next(parents))
    monkeypatch.setattr(workers.os, "_exit", exit_now)
    monkeypatch.setattr(workers.time, "sleep", polls.append)
    with pytest.raises(ExitedError):
        workers._exit_when_orphaned(100)
    assert exits == [1]
    assert polls == [workers.ORPHAN_CHECK_SECONDS] * 3  # slept while the parent was there


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="orphans are detected by the parent pid (POSIX)")
def test_workers_end_when_the_benchmark_process_is_killed(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text(BENCHMARK)
    scene = subprocess.run(
        [sys.executable, "-c", SCENE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        start_new_session=True,  # nothing the scene does reaches the test's process group
    )
    assert scene.returncode == 0, scene.stderr
    report = json.loads(scene.stdout.strip().splitlines()[-1])
    assert report["started"] == report["alive_before"] == 2
    assert report["alive_after"] == 0  # both workers ended by themselves
    assert report["finished"] == 0  # and neither finished its task
