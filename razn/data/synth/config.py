"""The knobs of the synthetic slide generator, in one frozen dataclass.

Physical sizes are in micrometres (µm) and become level-0 pixels through ``mpp``, so a
slide "scanned" at 0.25 µm/px shows the same tissue twice as large as one at 0.5 µm/px.
The layout of tissue islands and large tumour regions is instead relative to the slide's
longer side, so every slide size gets a few islands rather than a fragment of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from razn.config import check_range
from razn.errors import ConfigError

ClassSet = Literal["binary", "bach"]
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "binary": ("background", "tumour"),
    # BACH / ICIAR 2018: the four classes of breast biopsies, in mask values 0-3
    "bach": ("normal", "benign", "in_situ", "invasive"),
}
CLASS_COLOURS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "binary": ((0, 0, 0), (230, 30, 30)),
    "bach": ((0, 0, 0), (30, 160, 30), (240, 170, 30), (230, 30, 30)),
}


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic slides look and how they are written (see ``configs/synth.yaml``)."""

    mpp: float = 0.5
    """Micrometres per level-0 pixel, written to the metadata (Aperio ``MPP``)."""

    objective_power: float = 20.0
    """Nominal objective magnification, written to the metadata (Aperio ``AppMag``)."""

    tile_size: int = 256
    """Edge of the square TIFF tiles (px, a multiple of 16); level 0 is rendered in strips of
    one tile row."""

    jpeg_quality: int = 90
    """JPEG quality of the slide tiles (1-100); masks are lossless (deflate)."""

    pyramid_min_side: int = 1000
    """Levels halve (``ceil(W / 2**k)``) until the longer side of a level is below this (px)."""

    classes: ClassSet = "binary"
    """``binary``: masks 0 = not tumour, 1 = tumour. ``bach``: the four classes of breast
    biopsies, 0 = normal, 1 = benign (large glandular regions, telling at coarse levels),
    2 = in situ (ducts whose crowded atypical filling needs a middle level), 3 = invasive
    (the large regions and small foci below, whose borders and nests need fine levels)."""

    tissue_fraction: float = 0.45
    """Fraction of the slide area covered by tissue islands; the rest is white glass."""

    island_size: float = 0.22
    """Typical size of a tissue island, as a fraction of the slide's longer side."""

    tumour_fraction: float = 0.2
    """Fraction of the tissue inside large tumour regions (not counting small foci)."""

    region_size: float = 0.1
    """Typical size of a large tumour region, as a fraction of the slide's longer side."""

    border_width_um: float = 20.0
    """Half-width of the band (µm) in which the label border of a large tumour region wanders
    away from the smooth outline that the coarse colour tint follows."""

    focus_density: float = 12.0
    """Small tumour foci per mm² of slide (only those on tissue are drawn)."""

    focus_radius_um: tuple[float, float] = (10.0, 70.0)
    """Smallest and largest radius (µm) of a small tumour focus (log-uniform between)."""

    mimic_density: float = 3.0
    """Lymphocyte aggregates per mm² of slide: normal tissue (label 0) crowded with small dark
    nuclei, which looks like tumour at coarse levels and only zooming tells apart."""

    benign_fraction: float = 0.15
    """``bach`` only: share of the tissue in large benign glandular regions."""

    gland_size_um: float = 45.0
    """``bach`` only: typical spacing of the glands (lumens lined by epithelium) inside
    benign regions (µm)."""

    duct_density: float = 4.0
    """``bach`` only: ducts per mm² of slide (drawn on tissue only); each is either normal
    (regular epithelium, label 0) or in situ carcinoma (atypical filling, label 2)."""

    duct_radius_um: tuple[float, float] = (60.0, 150.0)
    """``bach`` only: smallest and largest duct radius (µm, log-uniform between)."""

    in_situ_share: float = 0.5
    """``bach`` only: share of the ducts filled with atypical cells (in situ carcinoma)."""

    nucleus_spacing_um: float = 6.0
    """Cell size of the jittered grid that holds at most one nucleus per cell (µm)."""

    normal_nucleus_radius_um: tuple[float, float] = (1.6, 2.4)
    """Radius range (µm) of nuclei in normal tissue: small."""

    tumour_nucleus_radius_um: tuple[float, float] = (2.4, 3.4)
    """Radius range (µm) of tumour nuclei: larger, and elongated at random angles."""

    normal_nucleus_density: float = 0.35
    """Probability that a grid cell of normal tissue holds a nucleus: sparse."""

    tumour_nucleus_density: float = 0.65
    """Probability that a grid cell of tumour holds a nucleus: crowded."""

    stain_variation: float = 0.12
    """Relative amplitude of the slow haematoxylin/eosin intensity drift across a slide and
    between slides."""

    label_noise: float = 0.0
    """Mask-only border jitter (µm): 0 = the mask matches the image exactly; more moves the
    tumour borders of the mask (not of the image) by about this much, by an independent
    noise (further where a region's outline is shallow)."""

    val_fraction: float = 0.15
    """Share of a dataset's slides in the validation split (at least one when N >= 3)."""

    test_fraction: float = 0.15
    """Share of a dataset's slides in the test split (at least one when N >= 2)."""

    def __post_init__(self) -> None:
        check_range("mpp", self.mpp, 0.01, 100.0)
        check_range("objective_power", self.objective_power, 0.1, 1000.0)
        check_range("tile_size", self.tile_size, 16, 4096)
        if self.tile_size % 16:
            raise ConfigError(f"tile_size must be a multiple of 16, got {self.tile_size}")
        check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        check_range("pyramid_min_side", self.pyramid_min_side, 1)
        check_range("tissue_fraction", self.tissue_fraction, 0.0, 1.0)
        check_range("island_size", self.island_size, 0.01, 10.0)
        check_range("tumour_fraction", self.tumour_fraction, 0.0, 1.0)
        check_range("region_size", self.region_size, 0.01, 10.0)
        check_range("border_width_um", self.border_width_um, 0.0, 10_000.0)
        check_range("focus_density", self.focus_density, 0.0, 1000.0)
        check_range("mimic_density", self.mimic_density, 0.0, 1000.0)
        if self.classes not in CLASS_NAMES:
            raise ConfigError(
                f"classes must be one of {', '.join(CLASS_NAMES)}, got {self.classes!r}"
            )
        check_range("benign_fraction", self.benign_fraction, 0.0, 1.0)
        check_range("gland_size_um", self.gland_size_um, 5.0, 10_000.0)
        check_range("duct_density", self.duct_density, 0.0, 1000.0)
        check_range("in_situ_share", self.in_situ_share, 0.0, 1.0)
        check_range("nucleus_spacing_um", self.nucleus_spacing_um, 1.0, 100.0)
        check_range("normal_nucleus_density", self.normal_nucleus_density, 0.0, 1.0)
        check_range("tumour_nucleus_density", self.tumour_nucleus_density, 0.0, 1.0)
        check_range("stain_variation", self.stain_variation, 0.0, 0.5)
        check_range("label_noise", self.label_noise, 0.0, 10_000.0)
        check_range("val_fraction", self.val_fraction, 0.0, 1.0)
        check_range("test_fraction", self.test_fraction, 0.0, 1.0 - self.val_fraction)
        self._check_radii()

    def _check_radii(self) -> None:
        for name in ("focus_radius_um", "duct_radius_um"):
            low, high = getattr(self, name)
            check_range(f"{name}[0]", low, 0.5, high)
            check_range(f"{name}[1]", high, low, 5_000.0)
        # The renderer only looks at the 2x2 cells nearest to a pixel, which is exact while a
        # nucleus (plus its half-pixel soft edge) stays within 0.7 cells of its centre.
        reach = 0.65 * self.nucleus_spacing_um
        for name in ("normal_nucleus_radius_um", "tumour_nucleus_radius_um"):
            low, high = getattr(self, name)
            check_range(f"{name}[0]", low, 0.1, high)
            check_range(f"{name}[1]", high, low, reach)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Name of every mask value 0 … K−1 (the run config's ``data.class_names``)."""
        return CLASS_NAMES[self.classes]

    @property
    def class_colours(self) -> tuple[tuple[int, int, int], ...]:
        """RGB (0–255) of every mask value, as razn's outputs draw the classes."""
        return CLASS_COLOURS[self.classes]

    def um_to_px(self, microns: float) -> float:
        """Convert a length in µm to level-0 pixels."""
        return microns / self.mpp
