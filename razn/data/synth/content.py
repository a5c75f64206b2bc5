"""Procedural H&E rendering of one level-0 rectangle: RGB and its ground-truth labels.

Colour follows the Beer-Lambert stain model that H&E colour deconvolution assumes: every
pixel has a haematoxylin and an eosin amount, and ``rgb = 255 * exp(-(h * H + e * E + r))``
with stain vectors ``H`` (Ruifrok-Johnston), ``E`` (a redder eosin) and a small residual ``r``.

What tells tumour apart, on purpose:

* at **fine** levels (downsample 1-2): tumour nuclei are large, crowded, elongated and
  vesicular; normal nuclei small, sparse and round. This is the only cue for small foci and
  for the exact border of large regions.
* at **coarse** levels (downsample 8 and up) nuclei blur away. Tumour cytoplasm is paler
  than stroma, so that the area-averaged colour of untinted tumour matches normal tissue:
  foci and border detail are hard to see. Only the large regions carry a purple tint and a
  mottled texture, following their *smooth* outline, not their exact label border.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from razn.data.synth.bach import BachLayers
from razn.data.synth.config import SynthConfig
from razn.data.synth.fields import Layers, label_layers
from razn.data.synth.layout import (
    STREAM_FIBRE,
    STREAM_FIBRE_DENSITY,
    STREAM_GRAIN,
    STREAM_MOTTLE,
    STREAM_STAIN_E,
    STREAM_STAIN_H,
    SlideLayout,
    slide_layout,
)
from razn.data.synth.noise import fractal_noise, value_noise
from razn.data.synth.nuclei import NucleusPaint, nucleus_pad, paint_nuclei


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


_H = _unit((0.650, 0.704, 0.286))  # haematoxylin optical density per unit stain (Ruifrok)
# Eosin as scanned H&E shows it: redder than Ruifrok's (0.07, 0.99, 0.11), which looks magenta.
_E = _unit((0.15, 0.95, 0.55))
_RESIDUAL = np.asarray((0.02, 0.04, 0.10), dtype=np.float32)  # unstained tissue, per alpha
_GLASS = np.asarray((0.035, 0.04, 0.03), dtype=np.float32)  # slide glass and mountant


@dataclass(frozen=True)
class _Stains:
    """Stain amounts (OD units) of the tissue classes; tuned by eye and by the colour test."""

    stroma_h: float = 0.16
    stroma_e: float = 0.55
    tumour_h: float = 0.0  # paler cytoplasm: balances the denser tumour nuclei
    tumour_e: float = 0.62
    nucleus_h: float = 1.45
    nucleus_e: float = 0.25
    tint_h: float = 0.22  # large regions at coarse scale: more haematoxylin ...
    tint_e: float = -0.12  # ... less eosin ...
    mottle: float = 0.5  # ... and a blotchy texture of this relative strength
    # classes: bach
    epithelium_h: float = 0.05  # regular epithelium: its mean colour matches in situ filling
    epithelium_e: float = 0.46
    rim_h: float = 0.5  # a duct's myoepithelial rim: a dark band visible coarse
    lumen_clear: float = 0.85  # share of the tissue's stain missing in an open lumen


STAINS = _Stains()


def render_tile(
    x0: int, y0: int, w: int, h: int, seed: int, config: SynthConfig, slide_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Render the level-0 rectangle at location ``(x0, y0)`` of size ``(w, h)`` px.

    ``slide_size`` is the slide's level-0 ``(width, height)``: the layout of islands and
    large regions scales with it. Returns ``rgb`` (uint8 ``[h, w, 3]``) and ``labels``
    (uint8 ``[h, w]``, 0 = not tumour, 1 = tumour). Pure function of its arguments: a region
    rendered in one call equals the same region rendered as several tiles, exactly.
    """
    layout = slide_layout(int(slide_size[0]), int(slide_size[1]), int(seed), config)
    rgb, layers = render_layers(layout, x0, y0, w, h)
    return rgb, layers.mask.astype(np.uint8)


def render_layers(
    layout: SlideLayout, x0: int, y0: int, w: int, h: int
) -> tuple[np.ndarray, Layers]:
    """Like :func:`render_tile` but returns all :class:`Layers` (tissue, focus, band, ...)."""
    pad = nucleus_pad(layout)
    grown = label_layers(layout, x0 - pad, y0 - pad, w + 2 * pad, h + 2 * pad)
    nuclei = paint_nuclei(layout, x0, y0, w, h, grown)
    inner = (slice(pad, pad + h), slice(pad, pad + w))
    layers = grown.crop(inner)
    return _compose(layout, x0, y0, w, h, layers, nuclei), layers


def _compose(
    layout: SlideLayout, x0: int, y0: int, w: int, h: int, layers: Layers, nuclei: NucleusPaint
) -> np.ndarray:
    """Stain amounts of every pixel, then Beer-Lambert to uint8 RGB ``[h, w, 3]``."""
    xs = np.arange(x0, x0 + w, dtype=np.float64)
    ys = np.arange(y0, y0 + h, dtype=np.float64)
    tumour = layers.tumour if layers.bach is None else layers.tumour | layers.bach.in_situ
    hem = np.where(tumour, np.float32(STAINS.tumour_h), np.float32(STAINS.stroma_h))
    eos = np.where(tumour, np.float32(STAINS.tumour_e), np.float32(STAINS.stroma_e))
    eos *= _fibres(layout, xs, ys)
    tint_h, tint_e = _region_tint(layout, xs, ys, layers.tint)
    hem += tint_h
    eos += tint_e
    if layers.bach is not None:
        _bach_stains(layers.bach, hem, eos)
    # Nuclei replace cytoplasm where they cover it.
    keep = np.float32(1.0) - nuclei.cover
    hem = hem * keep + nuclei.stain * np.float32(STAINS.nucleus_h)
    eos = eos * keep + nuclei.cover * np.float32(STAINS.nucleus_e)
    alpha = _tissue_alpha(layout, layers.tissue_depth)
    if layers.bach is not None:  # gland lumens are nearly empty
        alpha = alpha * (np.float32(1.0) - np.float32(STAINS.lumen_clear) * layers.bach.lumen)
    drift_h, drift_e = _stain_drift(layout, xs, ys)
    hem *= drift_h * alpha
    eos *= drift_e * alpha
    return _to_rgb(hem, eos, alpha)


def _bach_stains(bach: BachLayers, hem: np.ndarray, eos: np.ndarray) -> None:
    """Cytoplasm of regular epithelium and the duct rims (``hem``, ``eos`` in place)."""
    hem[bach.epithelium] = np.float32(STAINS.epithelium_h)
    eos[bach.epithelium] = np.float32(STAINS.epithelium_e)
    hem[bach.rim] += np.float32(STAINS.rim_h)


def _region_tint(
    layout: SlideLayout, xs: np.ndarray, ys: np.ndarray, tint: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Extra haematoxylin (mottled at ~40 µm) and less eosin over large regions' smooth outline.

    The coarse cue of large regions: visible at downsample 8, blind to the exact border.
    """
    spacing = layout.config.um_to_px(40.0)
    mottle = fractal_noise(xs, ys, spacing, layout.seed, STREAM_MOTTLE, octaves=2)
    blotch = np.float32(1.0 - STAINS.mottle) + np.float32(2.0 * STAINS.mottle) * mottle
    return tint * blotch * np.float32(STAINS.tint_h), tint * np.float32(STAINS.tint_e)


def _tissue_alpha(layout: SlideLayout, depth: np.ndarray) -> np.ndarray:
    """0 on glass, 1 inside tissue, thinning over a rim of a few µm at the outline."""
    rim = layout.tissue_slope * layout.config.um_to_px(4.0)
    t = np.clip(depth * np.float32(1.0 / max(rim, 1e-9)), 0.0, 1.0)
    return t * (np.float32(2.0) - t)


def _fibres(layout: SlideLayout, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Eosin texture around 1: wavy collagen fibres with pale gaps between them.

    Fibres are the ridges (level 0.5 crossings) of a value-noise field: thin, curvy lines
    in every direction; a slow field makes some areas denser than others.
    """
    px = layout.config.um_to_px(1.0)
    seed = layout.seed
    field = fractal_noise(xs, ys, 14.0 * px, seed, STREAM_FIBRE, octaves=2, gain=0.5)
    ridge = np.float32(1.0) - np.abs(field * np.float32(4.0) - np.float32(2.0))
    ridge = np.clip(ridge, 0.0, 1.0)
    dense = value_noise(xs, ys, 50.0 * px, seed, STREAM_FIBRE_DENSITY)
    grain = value_noise(xs, ys, 1.5 * px, seed, STREAM_GRAIN)
    fibre = ridge * ridge * (np.float32(0.6) + np.float32(0.8) * dense)
    return np.float32(0.45) + np.float32(0.9) * fibre + np.float32(0.25) * grain


def _stain_drift(
    layout: SlideLayout, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Slow multiplicative drift of each stain (uneven staining), times the slide's own level."""
    amp = np.float32(2.0 * layout.config.stain_variation)
    spacing = max(layout.island_px, 256.0)
    drifts = []
    for stream, base in ((STREAM_STAIN_H, layout.stain_h), (STREAM_STAIN_E, layout.stain_e)):
        slow = value_noise(xs, ys, spacing, layout.seed, stream) - np.float32(0.5)
        drifts.append(np.float32(base) * (np.float32(1.0) + amp * slow))
    return drifts[0], drifts[1]


def _to_rgb(hem: np.ndarray, eos: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Beer-Lambert: optical densities to uint8 RGB ``[h, w, 3]``."""
    out = np.empty((*hem.shape, 3), dtype=np.uint8)
    for ch in range(3):
        od = hem * _H[ch] + eos * _E[ch] + alpha * _RESIDUAL[ch] + _GLASS[ch]
        out[..., ch] = np.rint(np.float32(255.0) * np.exp(-od))
    return out
