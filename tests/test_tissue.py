"""Tissue detection: Otsu with clean-up, brightfield and fluorescence."""

from __future__ import annotations

import numpy as np
import pytest

from razn.errors import ConfigError
from razn.slide import ArraySlide, open_slide
from razn.slide.tissue import (
    TissueConfig,
    TissueMask,
    detect_tissue,
    otsu_threshold,
    thumbnail_downsample,
    tissue_from_rgb,
    tissue_measure,
)

NO_SMOOTHING = TissueConfig(smoothing_um=0, closing_um=0, min_object_um2=0, max_hole_um2=0)


def _slide_with_tissue(background, tissue, size=(400, 300), box=(100, 50, 300, 250)):
    image = np.empty((size[1], size[0], 3), np.uint8)
    image[:] = background
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = tissue
    return image


def test_otsu_separates_two_populations():
    values = np.array([10] * 100 + [200] * 50, np.uint8)
    threshold = otsu_threshold(values)
    assert 10 <= threshold < 200
    assert ((values > threshold) == (values == 200)).all()


def test_brightfield_rectangle_found_exactly():
    rgb = _slide_with_tissue((242, 242, 245), (210, 140, 190))
    mask = tissue_from_rgb(rgb, downsample=4, thumbnail_mpp=2.0, config=NO_SMOOTHING)
    expected = np.zeros((300, 400), bool)
    expected[50:250, 100:300] = True
    np.testing.assert_array_equal(mask.mask, expected)
    assert mask.downsample == 4
    assert mask.fraction == pytest.approx(200 * 200 / (400 * 300))
    assert mask.fraction_in((400, 200), (800, 800)) == 1.0  # level-0 box inside the rectangle
    assert mask.fraction_in((0, 0), (400, 200)) == 0.0


def test_clean_up_drops_specks_and_fills_small_holes():
    rgb = _slide_with_tissue((245, 245, 245), (200, 120, 180))
    rgb[140:150, 190:200] = 245  # a 10x10 px hole inside the tissue
    rgb[10:13, 10:13] = (200, 120, 180)  # a 3x3 px speck on the glass
    config = TissueConfig(smoothing_um=0, closing_um=0, min_object_um2=100, max_hole_um2=500)
    mask = tissue_from_rgb(rgb, downsample=1, thumbnail_mpp=1.0, config=config).mask
    assert mask[145, 195] and not mask[11, 11]
    assert mask.sum() == 200 * 200


def test_fluorescence_finds_bright_tissue_on_black():
    rng = np.random.default_rng(0)
    rgb = np.zeros((200, 200, 3), np.uint8)
    nuclei = rng.random((100, 100)) < 0.15  # sparse bright nuclei inside the tissue square
    rgb[50:150, 50:150, 2] = np.where(nuclei, 220, 6)
    mask = tissue_from_rgb(rgb, 1, 2.0, TissueConfig(method="fluorescence", smoothing_um=4))
    inside = mask.mask[60:140, 60:140].mean()
    outside = np.concatenate([mask.mask[:40].ravel(), mask.mask[160:].ravel()]).mean()
    assert inside > 0.95 and outside == 0.0
    brightfield = tissue_from_rgb(rgb, 1, 2.0, TissueConfig(method="saturation"))
    assert brightfield.mask[60:140, 60:140].mean() > 0.95  # blue is chroma too


def test_blank_slide_has_no_tissue():
    rgb = np.full((64, 64, 3), 244, np.uint8)
    rgb[::7, ::5] = 250  # glass texture
    assert not tissue_from_rgb(rgb, 1, 8.0).mask.any()


def test_detect_tissue_uses_mpp_to_size_the_thumbnail():
    level0 = _slide_with_tissue(
        (245, 245, 245), (200, 120, 180), (1600, 1200), (400, 400, 1200, 800)
    )
    slide = ArraySlide([level0], mpp=(0.5, 0.5))
    mask = detect_tissue(slide, TissueConfig(mpp=8.0))
    assert mask.downsample == 16.0 and mask.mask.shape == (75, 100)
    assert mask.mask[27:48, 27:73].all() and not mask.mask[:20].any()  # corners round off
    assert thumbnail_downsample((100_000, 80_000), 0.25, TissueConfig()) == pytest.approx(32.0)
    assert thumbnail_downsample((100_000, 80_000), 0.25, TissueConfig(max_size=1000)) == 100.0


def test_config_ranges_are_checked():
    with pytest.raises(ConfigError, match=r"tissue.threshold must be in \[0, 255\]"):
        TissueConfig(threshold=300)


def test_real_slides_have_tissue(shared_fixtures):
    slides = shared_fixtures / "slides"
    with open_slide(slides / "CMU-1-Small-Region.svs") as slide:
        assert 0.2 < detect_tissue(slide).fraction < 0.6
    with open_slide(slides / "test3-DAPI-2-(387).ndpi") as slide:
        assert detect_tissue(slide, TissueConfig(method="fluorescence")).fraction > 0.5


def test_sample_maps_pixel_centres_and_treats_outside_as_not_tissue() -> None:
    # A 3 × 4 mask at downsample 10: pixel [i, j] covers level-0 [10j, 10j + 10) × [10i, 10i + 10).
    grid = np.array([[1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 0, 1]], bool)
    tissue = TissueMask(grid, downsample=10.0, threshold=0.0)
    # Downsample 5 from level-0 (0, 0): centres at 2.5, 7.5, 12.5, … map to mask pixels 0, 0, 1, 1, …
    assert (tissue.sample((0, 0), 5.0, (8, 6)) == grid.repeat(2, 0).repeat(2, 1)).all()
    # Straddling the top-left corner: the rows and columns before the slide are not tissue.
    expected = np.zeros((3, 3), bool)
    expected[1:, 1:] = grid[:2, :2]
    assert (tissue.sample((-10, -10), 10.0, (3, 3)) == expected).all()
    # Wholly outside.
    assert not tissue.sample((100, 100), 10.0, (2, 2)).any()
    # Many boxes at once: the same samples, box by box (inside, straddling, outside).
    many = tissue.sample_many([(0, 0), (-10, -10), (100, 100)], 10.0, (3, 3))
    assert many.shape == (3, 3, 3)
    assert (many[0] == grid[:3, :3]).all() and (many[1] == expected).all()
    assert not many[2].any()


def test_tissue_measures_are_the_per_pixel_definitions():
    """Saturation is max − min of R, G, B; fluorescence the brightest channel; darkness
    255 − the ITU-R 601 luma (integer weights /256); an alpha channel is ignored."""
    rgba = np.random.default_rng(3).integers(0, 256, (17, 23, 4), dtype=np.uint8)
    rgb = rgba[..., :3].astype(int)
    np.testing.assert_array_equal(
        tissue_measure(rgba, "saturation"), rgb.max(axis=2) - rgb.min(axis=2)
    )
    np.testing.assert_array_equal(tissue_measure(rgba, "fluorescence"), rgb.max(axis=2))
    luma = (rgb @ np.array([77, 150, 29])) >> 8
    np.testing.assert_array_equal(tissue_measure(rgba, "darkness"), 255 - luma)
    assert tissue_measure(rgba, "saturation").dtype == np.uint8
