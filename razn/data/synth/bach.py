"""The four classes of breast biopsies (BACH / ICIAR 2018) on top of the binary layers.

``SynthConfig.classes = "bach"`` turns the tumour of :mod:`razn.data.synth.fields` into
*invasive* carcinoma and adds two lesion types whose telling detail sits at other scales,
so that where to zoom depends on the class:

* **benign** (label 1): large regions of glands — open lumens lined by regular epithelium.
  The glandular pattern changes the area-averaged colour, and the label border follows the
  region's smooth outline: recognisable at a coarse level (downsample 8).
* **in situ** (label 2): round ducts with a dark myoepithelial rim, visible coarse. A duct
  is either filled with crowded atypical cells (in situ, label 2) or with regular epithelium
  (normal, label 0); both fillings have about the same mean colour, so telling them apart
  needs the nuclear texture of a middle level (downsample 2-4).
* **invasive** (label 3): the binary generator's tumour — large regions whose label border
  wanders in a band of tens of µm, and small irregular nests in the stroma: fine levels.

Precedence where they meet: invasive over in situ over benign over normal. All layers are
pure functions of level-0 coordinates, like the binary ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from razn.data.synth.blob_grid import disc_window, jittered_blobs
from razn.data.synth.layout import STREAM_DUCT, STREAM_GLAND, SlideLayout, benign_field
from razn.data.synth.noise import hash_uniform

NORMAL, BENIGN, IN_SITU, INVASIVE = 0, 1, 2, 3

_DUCT_ROUNDNESS = 0.25  # duct outlines wobble this much of the blob wobble: nearly round
_DUCT_REACH = 1.5  # how far (in radii) a duct's search reaches: its outline wobbles little
_RIM_UM = 5.0  # width of a duct's myoepithelial rim (µm)
_GLAND_RADIUS = (0.3, 0.42)  # gland radius range, relative to the gland spacing
_LUMEN_RADIUS = 0.5  # lumen radius, relative to its gland's (the rest is epithelium)
_BENIGN_BORDER = 0.15  # benign borders wander this much of the invasive band: crisp


@dataclass(frozen=True)
class BachLayers:
    """The four-class layers of one rectangle, ``[y, x]`` level-0 px."""

    benign: np.ndarray
    """bool: benign glandular regions (on tissue, outside invasive tumour)."""
    lumen: np.ndarray
    """float32 0..1: open gland lumen (pale, no nuclei)."""
    epithelium: np.ndarray
    """bool: regular epithelium, lining benign glands or filling normal ducts."""
    rim: np.ndarray
    """bool: the myoepithelial rim of a duct."""
    in_situ: np.ndarray
    """bool: ducts filled with atypical cells (in situ carcinoma), rim included."""
    lesions: np.ndarray
    """uint8: the class of every pixel apart from invasive tumour (0, 1 or 2)."""

    def crop(self, window: tuple[slice, slice]) -> BachLayers:
        """The same layers of a sub-rectangle ``[y, x]`` slices."""
        return BachLayers(**{name: getattr(self, name)[window] for name in _FIELDS})

    def classes(self, invasive: np.ndarray) -> np.ndarray:
        """uint8 class map 0 … 3: invasive tumour (a bool map) over the other lesions."""
        return np.where(invasive, np.uint8(INVASIVE), self.lesions)


def bach_layers(
    layout: SlideLayout,
    xs: np.ndarray,
    ys: np.ndarray,
    tissue: np.ndarray,
    invasive: np.ndarray,
    wobble: np.ndarray,
    edge: np.ndarray,
) -> BachLayers:
    """Benign regions, ducts and the class map of the rectangle spanned by ``xs`` × ``ys``.

    ``invasive`` is the binary tumour (regions and foci), ``wobble`` the region border noise
    and ``edge`` the blob outline wobble, all from :func:`razn.data.synth.fields.label_layers`.
    """
    level = benign_field(xs, ys, layout.region_px, layout.seed)
    level -= np.float32(layout.benign_threshold)
    level += np.float32(_BENIGN_BORDER * layout.border_amplitude) * wobble
    benign = tissue & (level > 0) & ~invasive
    lumen, lining = _glands(layout, (int(xs[0]), int(ys[0])), tissue.shape)
    lumen = np.where(benign, lumen, np.float32(0.0))
    lining &= benign
    duct, rim, atypical = _ducts(layout, (int(xs[0]), int(ys[0])), edge)
    duct &= tissue & ~invasive
    rim &= duct
    in_situ = duct & atypical
    normal_duct = duct & ~atypical
    lumen = np.where(duct, np.float32(0.0), lumen)
    lesions = np.zeros(tissue.shape, dtype=np.uint8)
    lesions[benign] = BENIGN
    lesions[normal_duct] = NORMAL
    lesions[in_situ] = IN_SITU
    return BachLayers(
        benign=benign & ~duct,
        lumen=lumen,
        epithelium=(lining & ~duct) | (normal_duct & ~rim),
        rim=rim,
        in_situ=in_situ,
        lesions=lesions,
    )


_FIELDS = tuple(BachLayers.__dataclass_fields__)


def duct_params(layout: SlideLayout, box: tuple[int, int, int, int]) -> np.ndarray:
    """Ducts that may touch the level-0 box ``(x0, y0, w, h)``.

    Rows ``(cx, cy, radius, atypical)`` in level-0 px; ``atypical`` is 1.0 for in situ
    carcinoma, 0.0 for a normal duct. Centres lie on a jittered grid hashed by the slide seed.
    """
    cfg = layout.config
    ducts = jittered_blobs(
        layout, STREAM_DUCT, cfg.duct_density, box, cfg.duct_radius_um, _DUCT_REACH, extra=1
    )
    ducts[:, 3] = (ducts[:, 3] < cfg.in_situ_share).astype(np.float64)
    return ducts


def _glands(
    layout: SlideLayout, origin: tuple[int, int], shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Glands of a jittered grid (spacing ``gland_size_um``) over the whole rectangle:
    float32 ``[y, x]`` open lumen (0..1, a soft pixel at the edge) and bool epithelium
    lining it; :func:`bach_layers` keeps those inside benign regions."""
    h, w = shape
    x0, y0 = origin
    spacing = layout.config.um_to_px(layout.config.gland_size_um)
    lumen = np.zeros((h, w), dtype=np.float32)
    lining = np.zeros((h, w), dtype=bool)
    gx: np.ndarray = np.arange(math.floor(x0 / spacing) - 1, math.floor((x0 + w) / spacing) + 2)
    gy: np.ndarray = np.arange(math.floor(y0 / spacing) - 1, math.floor((y0 + h) / spacing) + 2)
    gx, gy = np.meshgrid(gx, gy)
    u = [hash_uniform(gx, gy, layout.seed, STREAM_GLAND * 64 + k) for k in range(3)]
    lo, hi = _GLAND_RADIUS
    radius = spacing * (lo + (hi - lo) * u[2])
    # centres stay far enough inside their cell that neighbouring glands never overlap
    cx = (gx + hi + (1.0 - 2.0 * hi) * u[0]) * spacing
    cy = (gy + hi + (1.0 - 2.0 * hi) * u[1]) * spacing
    for x, y, r in zip(cx.ravel(), cy.ravel(), radius.ravel(), strict=True):
        found = disc_window(origin, (h, w), x, y, r)
        if found is None:
            continue
        window, dist = found
        open_ = np.clip(np.float32(_LUMEN_RADIUS * r + 0.5) - dist, 0.0, 1.0)
        np.maximum(lumen[window], open_, out=lumen[window])
        lining[window] |= (dist < r) & (open_ < 0.5)
    return lumen, lining


def _ducts(
    layout: SlideLayout, origin: tuple[int, int], edge: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bool ``[y, x]`` maps: inside a duct, on its rim, inside an atypical duct."""
    h, w = edge.shape
    x0, y0 = origin
    inside = np.zeros((h, w), dtype=bool)
    rim = np.zeros((h, w), dtype=bool)
    atypical = np.zeros((h, w), dtype=bool)
    rim_px = layout.config.um_to_px(_RIM_UM)
    for cx, cy, radius, flag in duct_params(layout, (x0, y0, w, h)):
        found = disc_window(origin, (h, w), cx, cy, radius * _DUCT_REACH + 1.0)
        if found is None:
            continue
        window, dist = found
        limit = np.float32(radius) * (np.float32(1.0) + np.float32(_DUCT_ROUNDNESS) * edge[window])
        here = dist < limit
        inside[window] |= here
        rim[window] |= here & (dist > limit - np.float32(rim_px))
        if flag > 0.5:
            atypical[window] |= here
    return inside, rim, atypical
