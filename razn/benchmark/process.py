"""Wall time and peak memory of a command run as a child process (the benchmark scripts').

Peak memory is the resident set of the child and all its descendants summed (Dask
workers and any other subprocess), sampled with psutil; a sample interval of 0.1 s misses
only peaks shorter than that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class MeasuredRun:
    """One command's exit code, wall seconds and peak summed RSS in bytes."""

    exit_code: int
    seconds: float
    peak_rss: int


def measure(command: Sequence[str], interval: float = 0.1) -> MeasuredRun:
    """Run ``command`` to its end, sampling the process tree's memory every ``interval`` s."""
    start = time.perf_counter()
    process = psutil.Popen(list(command))
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process))
        time.sleep(interval)
    return MeasuredRun(process.returncode, time.perf_counter() - start, peak)


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:  # a child that just ended
            continue
    return total


def read_through(paths: Sequence[Path], chunk: int = 16 * 2**20) -> int:
    """Read each file once, so that runs timed after it find them in the page cache alike
    (the first of two runs would otherwise pay the disk reads alone); bytes read."""
    total = 0
    for path in paths:
        try:
            with Path(path).open("rb") as handle:
                while block := handle.read(chunk):
                    total += len(block)
        except OSError:  # the timed run reports the slide that cannot be read
            continue
    return total
