"""Slides on Dask: a 2-worker LocalCluster, and an existing scheduler, give the outputs of
one process."""

from __future__ import annotations

import shutil

import pytest
from test_batch import assert_same_outputs, segment, slides

from razn.engine.batch import SlideJob
from razn.engine.distributed import _client, segment_on_dask, segment_task, spread_over_gpus
from razn.engine.spec import EngineSpec
from razn.errors import RaznError
from razn.outputs.batch_table import BatchTable, read_batch_table
from razn.outputs.compare import THREAD_TOLERANCE, compare_outputs


@pytest.fixture(scope="module")
def single_process(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    bad = out.parent / "broken.svs"
    bad.write_text("not a slide")
    inputs = [str(p) for p in slides(tiny_run)] + [str(bad)]
    result = segment(tiny_run, out, *inputs)
    assert result.exit_code == 2, result.output
    return out, inputs


def rows_without_seconds(out):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_batch_table(out)]


def test_two_worker_local_cluster_equals_one_process(tiny_run, single_process, tmp_path):
    reference, inputs = single_process
    result = segment(tiny_run, tmp_path, *inputs, "--workers", "2")
    assert result.exit_code == 2, result.output
    assert "3 done, 0 skipped, 1 failed of 4 slides" in result.output
    assert rows_without_seconds(tmp_path / "batch.csv") == rows_without_seconds(
        reference / "batch.csv"
    )
    for name in ("synth_000", "synth_001", "synth_002"):
        assert_same_outputs(reference / name, tmp_path / name)


def test_one_and_two_torch_threads_give_the_same_outputs(tiny_run, tmp_path):
    """What a LocalCluster worker (one thread) against one process (all cores) differs in,
    forced on any machine: the recorded P(zoom) may move by THREAD_TOLERANCE, nothing else."""
    import torch

    inputs = [str(p) for p in slides(tiny_run)[:2]]
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            result = segment(
                tiny_run, tmp_path / f"threads{count}", *inputs, "--threads", str(count)
            )
            assert result.exit_code == 0, result.output
            assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(threads)
    for name in ("synth_000", "synth_001"):
        one, two = tmp_path / "threads1" / name, tmp_path / "threads2" / name
        comparison = compare_outputs(one, two, THREAD_TOLERANCE)
        assert comparison.differences == [], comparison.differences
        assert comparison.max_probability_difference <= THREAD_TOLERANCE


def test_a_probability_beyond_the_thread_tolerance_is_a_difference(
    tiny_run, single_process, tmp_path
):
    reference, _ = single_process
    copy = tmp_path / "synth_000"
    shutil.copytree(reference / "synth_000", copy)
    decisions = copy / "decisions.csv"
    lines = decisions.read_text(encoding="utf-8").splitlines()
    fields = lines[1].split(",")
    fields[-1] = f"{float(fields[-1]) + 2 * THREAD_TOLERANCE:.6f}"
    lines[1] = ",".join(fields)
    decisions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    differences = compare_outputs(reference / "synth_000", copy, THREAD_TOLERANCE).differences
    assert len(differences) == 1 and "P(zoom) differs by up to 2.00e-04" in differences[0]


def test_existing_scheduler(tiny_run, single_process, tmp_path):
    from distributed import LocalCluster

    reference, inputs = single_process
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        result = segment(tiny_run, tmp_path, *inputs[:2], "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    for name in ("synth_000", "synth_001"):
        assert_same_outputs(reference / name, tmp_path / name)


def _thread_environment() -> tuple[str | None, str | None]:
    import os

    return os.environ.get("OMP_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_workers_get_their_cores_and_glibcs_adaptive_malloc(monkeypatch):
    # Dask's default worker environment sets MALLOC_TRIM_THRESHOLD_, which made every
    # patch array a fresh mmap (1.6x the time per slide); the workers must not inherit it.
    for variable in ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(variable, raising=False)  # set by an earlier cluster's nanny
    with _client(1, None, 30.0, threads=3) as client:
        environments = client.run(_thread_environment)
    assert list(environments.values()) == [("3", None)]


def test_unreachable_scheduler_is_one_line(tmp_path):
    table = BatchTable(tmp_path / "batch.csv", 0)
    spec = EngineSpec(tmp_path / "run")
    with pytest.raises(RaznError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        segment_on_dask(spec, [], table, scheduler="tcp://127.0.0.1:9", connect_timeout=1)


def test_a_worker_that_cannot_build_the_engine_fails_the_slide(tmp_path):
    job = SlideJob(tmp_path / "s.svs", tmp_path / "out" / "s")
    outcome = segment_task(EngineSpec(tmp_path / "no_run", mode="ud"), job)
    assert outcome.status == "failed" and str(tmp_path / "no_run") in outcome.reason


def test_local_workers_take_one_gpu_each(monkeypatch, tmp_path):
    import torch

    spec = EngineSpec(tmp_path / "run", device="auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [spread_over_gpus(spec, k).device for k in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert spread_over_gpus(spec, None) == spec  # not on a local worker
    assert spread_over_gpus(EngineSpec(tmp_path, device="cpu"), 1).device == "cpu"
    assert spread_over_gpus(EngineSpec(tmp_path, device="cuda:1"), 0).device == "cuda:1"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert spread_over_gpus(spec, 1) == spec
