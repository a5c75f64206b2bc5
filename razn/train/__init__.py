"""Training: the per-level segmentation networks f_0 … f_m (and the zoom policies, in
:mod:`razn.train.policy` and the modules beside it).

Public API::

    run = prepare_run("configs/default.yaml", "runs/default")   # create or continue
    results = train_segmenters(run)                              # f_0 … f_m, level by level
    models = run.load_segmenters()

The training configs live in the leaf module :mod:`razn.training_config`, so that the
run config can hold them without importing the training code.
"""

from __future__ import annotations

from razn.train.segmentation import LevelResult, train_level, train_segmenters
from razn.train.setup import SlideRecords, load_slide_records, prepare_run
from razn.training_config import SegTrainConfig

__all__ = [
    "LevelResult",
    "SegTrainConfig",
    "SlideRecords",
    "load_slide_records",
    "prepare_run",
    "train_level",
    "train_segmenters",
]
