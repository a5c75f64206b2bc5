"""``razn benchmark``: razn against every baseline of ``docs/method.md`` on held-out slides.

Modules: ``config`` (what is measured), ``matching`` (oracle decisions and compute-matched
baselines over cached zoom trees), ``workers`` (training side by side), ``runner``
(the steps), ``segment`` (timed segmentation and scoring) and ``report`` (results files
and the Pareto plot).
"""

from razn.benchmark.config import BenchmarkConfig, DatasetSpec
from razn.benchmark.runner import run_benchmark

__all__ = ["BenchmarkConfig", "DatasetSpec", "run_benchmark"]
