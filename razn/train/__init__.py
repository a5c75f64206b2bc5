"""Training: the per-level segmentation networks f_0 … f_m (and, later, the zoom policies).

Public API::

    run = prepare_run("configs/default.yaml", "runs/default")   # create or continue
    results = train_segmenters(run)                              # f_0 … f_m, level by level
    models = run.load_segmenters()

:class:`SegTrainConfig` is imported eagerly (the run config holds one); the training
functions load on first use, because :mod:`razn.run_config` imports this package and
the training modules import the run config back.
"""

from __future__ import annotations

from typing import Any

from razn.train.config import SegTrainConfig

_LAZY = {
    "LevelResult": "razn.train.segmentation",
    "train_level": "razn.train.segmentation",
    "train_segmenters": "razn.train.segmentation",
    "SlideRecords": "razn.train.setup",
    "load_slide_records": "razn.train.setup",
    "prepare_run": "razn.train.setup",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'razn.train' has no attribute {name!r}")


__all__ = ["SegTrainConfig", *_LAZY]
