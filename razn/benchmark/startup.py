"""How soon ``razn`` answers: seconds from the command to its first patch
(``scripts/bench_startup.py``).

Each command runs in a fresh child interpreter, as a user runs it. For ``razn segment`` the
child is started through a small bootstrap that wraps the engine's first decision and first
segmentation, prints the wall-clock time at the first of them and exits there; the parent
subtracts the time it launched the child. Everything a user waits for is inside: the
interpreter's start, the imports (torch, segmentation-models-pytorch, Stable-Baselines3),
loading the networks and policies, opening the slide and detecting its tissue.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

MARK = "RAZN_FIRST_PATCH"

BOOTSTRAP = f"""
import builtins, os, sys, time

def _first(method):
    def wrapped(self, *args, **kwargs):
        print("{MARK}", repr(time.time()), file=sys.stderr, flush=True)
        os._exit(0)  # the rest of the slide is not start-up (minutes on a big slide)
    return wrapped

# The engine is wrapped as soon as the command has imported it, not imported here first:
# importing it means importing torch, which the command does its own way.
_import = builtins.__import__

def _wrap_engine_once_imported(*args, **kwargs):
    module = _import(*args, **kwargs)
    zoom = sys.modules.get("razn.engine.zoom")
    run = getattr(zoom, "_SlideRun", None)  # None while the module is still executing
    if run is not None:
        run._segment, run._decide = _first(run._segment), _first(run._decide)
        builtins.__import__ = _import
    return module

builtins.__import__ = _wrap_engine_once_imported
from razn.cli import main
main(sys.argv[1:], prog_name="razn")
"""
"""Runs ``razn`` and exits at the engine's first decision or segmentation. It wraps
``_SlideRun`` once the command has imported the engine (through ``builtins.__import__``,
restored at once): importing the engine here first would import torch before the command
does, outside :func:`razn.heavy_imports.import_network_stack`."""

COLLECTOR_RUNNING = """
import contextlib
import razn.heavy_imports as heavy

heavy.collector_paused = contextlib.nullcontext  # imports as before razn.heavy_imports
"""
"""Prepended to :data:`BOOTSTRAP` to time the start-up with the garbage collector running
through the imports (the comparison for :mod:`razn.heavy_imports`)."""


@dataclass(frozen=True)
class StartupTime:
    """One command's median seconds over the repeats (and each run's)."""

    command: str
    seconds: float
    """To the first patch for ``segment``; to the end of the command otherwise."""
    runs: list[float]


def time_to_first_patch(arguments: Sequence[str], collector_running: bool = False) -> float:
    """Seconds from launching ``razn segment ARGUMENTS`` to its first patch (the child
    exits there, leaving its unfinished output folder behind); ``collector_running``:
    with the garbage collector left running through the imports."""
    bootstrap = (COLLECTOR_RUNNING if collector_running else "") + BOOTSTRAP
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-c", bootstrap, "segment", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"razn segment failed: {done.stderr.strip().splitlines()[-1:]}")
    for line in done.stderr.splitlines():
        if line.startswith(MARK):
            return float(line.split()[1]) - launched
    raise RuntimeError("razn segment finished without segmenting a patch")


def time_command(arguments: Sequence[str]) -> float:
    """Wall seconds of ``razn ARGUMENTS`` in a fresh interpreter."""
    launched = time.perf_counter()
    subprocess.run([sys.executable, "-m", "razn", *arguments], capture_output=True, check=True)
    return time.perf_counter() - launched


def measure_startup(
    slide: str,
    run: str,
    out: str,
    repeats: int = 3,
    mode: str = "razn",
    compare_collector: bool = False,
) -> list[StartupTime]:
    """``razn --help``, ``razn info SLIDE`` and ``razn segment SLIDE`` (to its first patch),
    each the median of ``repeats`` runs after one untimed run (page cache);
    ``compare_collector`` adds the first patch with the garbage collector running through
    the imports."""
    segment = [slide, "--run", run, "--out", out, "--mode", mode, "--quiet"]
    first_patch = f"razn segment SLIDE --mode {mode}: first patch"
    commands = {
        "razn --help": lambda: time_command(["--help"]),
        "razn info SLIDE": lambda: time_command(["info", slide]),
        first_patch: lambda: time_to_first_patch(segment),
    }
    if compare_collector:
        commands[f"{first_patch}, collector running through the imports"] = lambda: (
            time_to_first_patch(segment, collector_running=True)
        )
    rows = []
    for name, timed in commands.items():
        timed()  # untimed: the files in the page cache, as on a machine in use
        runs = [timed() for _ in range(repeats)]
        rows.append(StartupTime(name, statistics.median(runs), runs))
    return rows


def format_table(rows: Sequence[StartupTime]) -> str:
    lines = ["| command | seconds (median) | runs |", "|---|---|---|"]
    for r in rows:
        lines.append(
            f"| `{r.command}` | {r.seconds:.2f} | {', '.join(f'{x:.2f}' for x in r.runs)} |"
        )
    return "\n".join(lines)
