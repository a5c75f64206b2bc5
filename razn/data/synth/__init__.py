"""Synthetic H&E-like benchmark slides where zooming matters, with exact ground truth.

Public API (coordinates: a location ``(x, y)`` is in level-0 pixels, arrays are ``[y, x]``):

* :func:`render_tile` — RGB and labels of any level-0 rectangle, seamless across tiles;
* :func:`write_synthetic_slide` — one pyramidal slide (OpenSlide reads it as Aperio) and
  its pyramidal uint8 mask, written tile by tile with bounded memory;
* :func:`make_dataset` — N slides, masks and ``manifest.csv`` with a train/val/test split;
* :class:`SynthConfig` — every knob, with defaults mirrored in ``configs/synth.yaml``.

Modules: ``noise`` (hashed value noise), ``layout`` (per-slide scales and thresholds),
``fields`` (label layers), ``nuclei``, ``content`` (colour), ``pyramid_tiff`` (TIFF
writing), ``slide_writer`` and ``dataset``.
"""

from razn.data.synth.config import SynthConfig
from razn.data.synth.content import render_layers, render_tile
from razn.data.synth.dataset import ensure_dataset, make_dataset, slide_seed, split_names
from razn.data.synth.fields import Layers
from razn.data.synth.layout import SlideLayout, slide_layout
from razn.data.synth.slide_writer import write_synthetic_slide

__all__ = [
    "Layers",
    "SlideLayout",
    "SynthConfig",
    "ensure_dataset",
    "make_dataset",
    "render_layers",
    "render_tile",
    "slide_layout",
    "slide_seed",
    "split_names",
    "write_synthetic_slide",
]
