"""Faults during ``razn segment`` (issue 8): SIGKILL at several points then ``--resume``, two
batches on one output folder, an unwritable folder and a full disk, a Dask worker lost."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_batch import assert_same_outputs, slides

from razn.cli import main
from razn.engine import batch as batch_module
from razn.engine.batch import LOCK_FILE, output_lock, segment_slides
from razn.engine.spec import EngineSpec
from razn.errors import OutputError
from razn.outputs import layout
from razn.outputs.batch_table import read_batch_table


def segment_args(tiny_run: Path, out: Path, *extra: str) -> list[str]:
    inputs = [str(p) for p in slides(tiny_run)]
    return ["segment", *inputs, "--run", str(tiny_run / "run"), "--out", str(out), *extra]


def slide_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


def assert_nothing_partial_looks_complete(out: Path) -> None:
    """Every visible slide folder is complete; anything unfinished is a hidden ``.partial``."""
    for folder in slide_folders(out):
        assert all((folder / name).exists() for name in layout.FILES), folder
        assert layout.read_summary(folder) is not None, folder


@pytest.fixture(scope="module")
def reference(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted batch of the tiny run's slides."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = CliRunner().invoke(main, [*segment_args(tiny_run, out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_the_same_seed_gives_the_same_outputs_on_the_cpu(tiny_run, reference, tmp_path):
    out = tmp_path / "again"
    result = CliRunner().invoke(main, [*segment_args(tiny_run, out), "--quiet"])
    assert result.exit_code == 0, result.output
    for a, b in zip(slide_folders(reference), slide_folders(out), strict=True):
        assert_same_outputs(a, b)


# --- SIGKILL then --resume ------------------------------------------------------------------


def first_partial(out: Path) -> bool:
    return out.is_dir() and any(p.name.endswith(".partial") and p.is_dir() for p in out.iterdir())


def partial_with(name: str) -> Callable[[Path], bool]:
    def ready(out: Path) -> bool:
        return out.is_dir() and any((p / name).exists() for p in out.glob(".*.partial"))

    return ready


def slides_done(count: int) -> Callable[[Path], bool]:
    def ready(out: Path) -> bool:
        return out.is_dir() and len(slide_folders(out)) >= count

    return ready


KILL_POINTS = {
    "segmenting the first slide": first_partial,
    "writing the labels": partial_with(layout.LABELS_OME),
    "writing the decisions": partial_with(layout.DECISIONS),
    "after one slide": slides_done(1),
    "after two slides": slides_done(2),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_at_any_point_then_resume_equals_an_uninterrupted_run(
    tiny_run, reference, tmp_path, point
):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "razn", *segment_args(tiny_run, out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready, deadline = KILL_POINTS[point], time.monotonic() + 120
    while not ready(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, f"finished before the kill point: {process.stderr.read()}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert_nothing_partial_looks_complete(out)
    result = CliRunner().invoke(main, [*segment_args(tiny_run, out), "--resume", "--quiet"])
    assert result.exit_code == 0, result.output
    statuses = [row["status"] for row in read_batch_table(out / "batch.csv")]
    assert set(statuses) <= {"done", "skipped"} and len(statuses) == len(slides(tiny_run))
    assert [p.name for p in slide_folders(out)] == [p.name for p in slide_folders(reference)]
    for a, b in zip(slide_folders(reference), slide_folders(out), strict=True):
        assert_same_outputs(a, b)
    assert not list(out.glob(".*.partial"))


# --- two batches on one folder ------------------------------------------------------------


def test_a_second_batch_on_the_same_folder_is_refused_in_one_line(tiny_run, tmp_path):
    out = tmp_path / "out"
    with output_lock(out):
        result = CliRunner().invoke(main, [*segment_args(tiny_run, out, "--mode", "ud")])
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("razn: error:")]
    assert lines == [
        f"razn: error: {out}: another razn segment (pid {os.getpid()}) is writing to this "
        "output folder; wait for it to finish or choose another --out"
    ]
    # once the first batch is over, the folder is free again
    result = CliRunner().invoke(main, [*segment_args(tiny_run, out, "--mode", "ud", "--quiet")])
    assert result.exit_code == 0, result.output
    assert not (out / LOCK_FILE).exists()


def test_a_lock_left_by_a_killed_batch_is_taken_over(tiny_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text("pid 999999", encoding="utf-8")  # no process holds it
    result = CliRunner().invoke(main, segment_args(tiny_run, out, "--mode", "ud", "--quiet"))
    assert result.exit_code == 0, result.output
    assert not (out / LOCK_FILE).exists()


LOCK_HOLDER = """
import sys, time
from razn.engine.batch import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_segment_process_is_refused_while_another_process_holds_the_folder(tiny_run, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        command = [sys.executable, "-m", "razn", *segment_args(tiny_run, out, "--mode", "ud")]
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr.strip().splitlines() == [
        f"razn: error: {out}: another razn segment (pid {holder.pid}) is writing to this "
        "output folder; wait for it to finish or choose another --out"
    ]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # the killed holder's, unheld
    result = CliRunner().invoke(main, segment_args(tiny_run, out, "--mode", "ud", "--quiet"))
    assert result.exit_code == 0, result.output  # and the folder is usable again


# --- unwritable folder, full disk -----------------------------------------------------------


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_folder_is_one_line(tiny_run, tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        result = CliRunner().invoke(main, segment_args(tiny_run, parent / "out", "--mode", "ud"))
    finally:
        parent.chmod(0o700)
    assert result.exit_code == 2, result.output
    assert f"razn: error: {parent / 'out'}: cannot write to the output folder" in result.output


def test_a_denied_output_folder_is_one_line(tiny_run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = Path.mkdir

    def denied(self, *args, **kwargs):
        if self == out:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", denied)
    result = CliRunner().invoke(main, segment_args(tiny_run, out, "--mode", "ud"))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"razn: error: {out}: cannot write to the output folder: [Errno 13] Permission denied"
    ]


def test_an_output_path_that_is_a_file_is_one_line(tiny_run, tmp_path):
    out = tmp_path / "out"
    out.write_text("not a folder")
    result = CliRunner().invoke(main, segment_args(tiny_run, out, "--mode", "ud"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"'{out}' is a file" in result.output  # click's check of --out


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_fails_the_slide_and_marks_nothing_done(tiny_run, tmp_path, monkeypatch):
    engine = EngineSpec(tiny_run / "run", mode="ud", device="cpu").build()
    first, second, third = slides(tiny_run)
    real = batch_module.write_slide_outputs
    calls = []

    def fill_up_on_the_second(folder, slide, *args, **kwargs):
        calls.append(slide.path)
        real(folder, slide, *args, **kwargs)  # some files are written, then the disk is full
        if slide.path == second:
            no_space()

    monkeypatch.setattr(batch_module, "write_slide_outputs", fill_up_on_the_second)
    out = tmp_path / "out"
    outcomes = segment_slides([first, second, third], engine, out)
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    assert outcomes[1].reason == (
        f"{second}: cannot write its outputs in {out}: [Errno 28] No space left on device; "
        "nothing of this slide was kept — free space or fix the folder's permissions, then --resume"
    )
    assert [p.name for p in slide_folders(out)] == [first.stem, third.stem]
    assert not list(out.glob(".*.partial"))
    assert [r["status"] for r in read_batch_table(out / "batch.csv")] == [
        "done",
        "failed",
        "done",
    ]


def test_a_full_disk_while_writing_labels_leaves_no_partial(tiny_run, tmp_path, monkeypatch):
    import zarr

    engine = EngineSpec(tiny_run / "run", mode="ud", device="cpu").build()
    monkeypatch.setattr(zarr, "create_array", no_space)
    out = tmp_path / "out"
    outcomes = segment_slides(slides(tiny_run)[:1], engine, out)
    assert outcomes[0].status == "failed" and "No space left on device" in outcomes[0].reason
    assert slide_folders(out) == [] and not list(out.glob(".*.partial"))


def test_a_full_disk_for_the_batch_table_is_one_line(tiny_run, tmp_path, monkeypatch):
    from razn.outputs import batch_table

    monkeypatch.setattr(batch_table.BatchTable, "write", no_space)
    result = CliRunner().invoke(main, segment_args(tiny_run, tmp_path / "out", "--mode", "ud"))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"razn: error: {tmp_path / 'out'}: cannot write batch.csv: [Errno 28] No space left on device"
    )


@contextlib.contextmanager
def small_filesystem(path: Path, size: int) -> Iterator[Path]:
    """A real file system of ``size`` bytes at ``path`` (a tmpfs), unmounted afterwards;
    skips where it cannot be mounted (not root, or no mount permission in a container)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def disk_usage(folder: Path) -> int:
    """Bytes ``folder`` takes on a file system of 4 KiB blocks."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def test_a_really_full_disk_marks_nothing_done_and_resume_completes(tiny_run, reference, tmp_path):
    """Not simulated: the batch writes onto a tmpfs with room for about one and a half
    slides' outputs, so the kernel itself answers ENOSPC somewhere in the second slide."""
    first, second = slide_folders(reference)[:2]
    room = disk_usage(first) + disk_usage(second) // 2 + 8 * 4096  # and batch.csv, the lock
    with small_filesystem(tmp_path / "disk", room) as disk:
        out = disk / "out"
        result = CliRunner().invoke(main, [*segment_args(tiny_run, out), "--quiet"])
        assert result.exit_code == 2, result.output
        assert "No space left on device" in result.output and "Traceback" not in result.output
        assert not list(out.rglob("*.partial"))  # what could not be finished was removed
        assert_nothing_partial_looks_complete(out)
        done = [r for r in read_batch_table(out / "batch.csv") if r["status"] == "done"]
        assert len(done) < 3 and len(slide_folders(out)) == len(done)
        for folder in slide_folders(out):
            assert_same_outputs(reference / folder.name, folder)
        kept = tmp_path / "kept"
        shutil.copytree(out, kept)  # the same folder, on a disk with room
    result = CliRunner().invoke(main, [*segment_args(tiny_run, kept), "--resume", "--quiet"])
    assert result.exit_code == 0, result.output
    for a, b in zip(slide_folders(reference), slide_folders(kept), strict=True):
        assert_same_outputs(a, b)


def test_output_lock_names_an_unusable_folder():
    lock = output_lock(Path("/proc/razn-cannot-be-here"))
    with pytest.raises(OutputError, match="cannot write to the output folder"), lock:
        pass


# --- Dask ---------------------------------------------------------------------------------


def test_a_lost_dask_worker_fails_its_slide_and_keeps_the_others(tiny_run, tmp_path):
    from distributed.scheduler import KilledWorker

    from razn.engine.batch import plan_jobs
    from razn.engine.distributed import _outcome

    class Worker:
        address = "tcp://127.0.0.1:1"

    class Lost:
        def result(self):
            raise KilledWorker("segment_task-1", Worker(), allowed_failures=3)

    job = plan_jobs(slides(tiny_run)[:1], tmp_path)[0]
    outcome = _outcome(Lost(), job)
    assert outcome.status == "failed"
    assert outcome.reason.startswith(f"{job.slide}: the Dask worker was lost (KilledWorker")
    assert len(outcome.reason.splitlines()) == 1


@pytest.mark.slow
def test_a_dask_worker_killed_mid_slide_has_its_slide_retried(tiny_run, reference, tmp_path):
    import threading

    from distributed import Client, LocalCluster

    out = tmp_path / "out"
    killed: list[int] = []
    with (
        LocalCluster(n_workers=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())

        def kill_the_worker_mid_slide() -> None:
            deadline = time.monotonic() + 120
            while not first_partial(out) and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(pids[0], signal.SIGKILL)  # the nanny restarts it; Dask reruns its task
            killed.append(pids[0])

        killer = threading.Thread(target=kill_the_worker_mid_slide, daemon=True)
        killer.start()
        args = segment_args(tiny_run, out, "--scheduler", cluster.scheduler_address, "--quiet")
        result = CliRunner().invoke(main, args)
        killer.join(timeout=5)
    assert killed, "the worker was never killed"
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in read_batch_table(out / "batch.csv")] == ["done"] * 3
    for a, b in zip(slide_folders(reference), slide_folders(out), strict=True):
        assert_same_outputs(a, b)
    assert not list(out.glob(".*.partial"))


def test_free_heap_memory_is_handed_back_between_slides():
    import platform

    from razn.memory import release_free_memory

    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")
