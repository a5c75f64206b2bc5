"""Slides in parallel on Dask: a LocalCluster of ``workers`` processes, or an existing
cluster at a scheduler address.

Each task is one whole slide (slides are independent and a slide's engine run is
already pipelined inside), sent as an :class:`~razn.engine.spec.EngineSpec` and a
:class:`~razn.engine.batch.SlideJob`: each worker process builds the engine once from
the run directory (no network is pickled) and writes the slide's outputs itself, so
the workers of a remote cluster must see the run, the slides and the output folder at
the same paths. On a machine with several GPUs the local workers take one each, in
turn. Outcomes come back as slides finish and are recorded in input order.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from razn.engine.batch import OnDone, SlideJob, record, run_job
from razn.engine.spec import EngineSpec, cached_engine
from razn.errors import RaznError
from razn.outputs.batch_table import BatchTable, SlideOutcome


def segment_on_dask(
    spec: EngineSpec,
    jobs: Sequence[SlideJob],
    table: BatchTable,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    on_done: OnDone | None = None,
    connect_timeout: float = 30.0,
    threads: int | None = None,
) -> list[SlideOutcome]:
    """Run ``jobs`` on Dask; one outcome per job, in job order.

    Args:
        workers: processes of a new LocalCluster (one task each); ignored with ``scheduler``.
        scheduler: address of a running Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
        connect_timeout: seconds to wait for ``scheduler``.
        threads: torch threads per worker (default: a local worker gets its share of the
            cores, a remote cluster's workers keep theirs).
    """
    from distributed import as_completed

    outcomes: list[SlideOutcome | None] = [None] * len(jobs)
    if threads is None and not scheduler:
        threads = max(1, (os.cpu_count() or 1) // (workers or 1))
    with _client(workers, scheduler, connect_timeout, threads or 1) as client:
        futures = {
            client.submit(segment_task, spec, job, threads, pure=False): index
            for index, job in enumerate(jobs)
        }
        for future in as_completed(futures):
            index = futures[future]
            outcome = replace(_outcome(future, jobs[index]), given=jobs[index].given)
            outcomes[index] = outcome
            record(table, index, outcome)
            if on_done is not None:
                on_done(outcome)
    return [o for o in outcomes if o is not None]


def segment_task(spec: EngineSpec, job: SlideJob, threads: int | None = None) -> SlideOutcome:
    """One slide on a worker, with the worker's engine for ``spec`` (built on first use)
    and ``threads`` torch threads (None: as the worker is set up)."""
    if threads is not None:  # a LocalCluster worker
        import torch

        torch.set_num_threads(threads)
        spec = spread_over_gpus(spec, _worker_index())
    try:
        engine = cached_engine(spec)
    except RaznError as exc:
        return SlideOutcome(job.slide, "failed", None, str(exc))
    return run_job(job, engine)  # the worker's threads share it: it segments one at a time


def spread_over_gpus(spec: EngineSpec, worker: int | None) -> EngineSpec:
    """``spec`` for local worker number ``worker``: on a machine with several GPUs, worker
    ``k`` of an ``auto`` or ``cuda`` spec uses GPU ``k mod count`` (not all of them GPU 0)."""
    import torch

    if worker is None or spec.device not in ("auto", "cuda") or not torch.cuda.is_available():
        return spec
    count = torch.cuda.device_count()
    return spec if count < 2 else replace(spec, device=f"cuda:{worker % count}")


def _worker_index() -> int | None:
    """The number of this LocalCluster worker (its name), or None outside one."""
    from distributed import get_worker

    try:
        name = get_worker().name
    except ValueError:  # not running on a worker
        return None
    return name if isinstance(name, int) else None


def _outcome(future: Any, job: SlideJob) -> SlideOutcome:
    """The task's outcome; a worker that died on the slide makes it a failed one."""
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except (KilledWorker, CommClosedError, FutureCancelledError) as exc:
        reason = f"{job.slide}: the Dask worker was lost ({type(exc).__name__}: {exc})"
        return SlideOutcome(job.slide, "failed", None, " ".join(reason.split()))


def worker_environment(threads: int) -> dict[str, str | None]:
    """Dask's ``distributed.nanny.pre-spawn-environ`` for LocalCluster workers of
    ``threads`` cores each (a variable already set in this process's environment wins).

    BLAS/OpenMP get the worker's share of the cores, not Dask's one thread, and
    ``MALLOC_TRIM_THRESHOLD_`` is left unset (Dask sets it to 65536). Setting it at all
    turns off glibc's adaptive mmap threshold, so every patch-sized array (≥ 128 KiB)
    is mmapped and page-faulted afresh: on the benchmark's test slides a process with it
    spent 3.2× the system time and took 1.6× as long.
    """
    value = str(threads)
    return {
        "OMP_NUM_THREADS": value,
        "MKL_NUM_THREADS": value,
        "OPENBLAS_NUM_THREADS": value,
        "MALLOC_TRIM_THRESHOLD_": None,  # None: not set (Dask's own convention)
    }


@contextlib.contextmanager
def _client(
    workers: int | None, scheduler: str | None, timeout: float, threads: int
) -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise RaznError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment(threads)}):
        cluster = LocalCluster(
            n_workers=workers or 1,
            threads_per_worker=1,  # one slide per process; torch gets the process's cores
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
    with cluster, Client(cluster) as client:
        yield client
