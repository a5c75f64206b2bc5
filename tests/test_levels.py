"""Working levels: mapping any downsample onto native pyramids, including odd ones."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gradient_image, write_tiff_pyramid

from razn.errors import SlideError
from razn.slide import ArraySlide, level_size, open_slide, plan_level, read_at_downsample

BOXES_DOWNSAMPLES = (1.0, 2.0, 4.016129032258064, 8.086312118570184)


@pytest.mark.parametrize(
    ("working", "level", "exact", "scale"),
    [
        (1, 0, True, 1.0),
        (2, 1, True, 1.0),
        (4, 1, False, 2.0),  # 4.0161 is coarser than 4: read level 1 and halve
        (8, 2, False, 8 / 4.016129032258064),
        (16, 3, False, 16 / 8.086312118570184),
        (3, 1, False, 1.5),
    ],
)
def test_plan_on_non_power_of_two_pyramid(working, level, exact, scale):
    plan = plan_level(BOXES_DOWNSAMPLES, working)
    assert (plan.native_level, plan.exact) == (level, exact)
    assert plan.scale == pytest.approx(scale)


def test_near_exact_native_downsample_is_read_directly():
    # 2.0005 is what OpenSlide reports for a level of ceil(W / 2) pixels.
    plan = plan_level((1.0, 2.0005, 4.0011), 2)
    assert (plan.native_level, plan.exact, plan.scale) == (1, True, 1.0)
    plan = plan_level((1.0, 2.0005, 4.0011), 4)
    assert (plan.native_level, plan.exact) == (2, True)


def test_single_level_slide_maps_every_working_level_to_level_zero():
    for working in (1, 2, 4, 8):
        plan = plan_level((1.0,), working)
        assert plan.native_level == 0 and plan.exact == (working == 1)


def test_upsampling_is_refused():
    with pytest.raises(SlideError, match="no upsampling"):
        plan_level((1.0, 2.0), 0.5)


def test_resized_read_is_the_area_average_of_level_zero():
    # 4x4 blocks of constant value: reading at downsample 4 must give one pixel per block.
    blocks = np.arange(48, dtype=np.uint8).reshape(6, 8)
    level0 = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)
    slide = ArraySlide([np.stack([level0] * 3, axis=-1)])
    region = read_at_downsample(slide, (8, 4), 4, (5, 4))
    np.testing.assert_array_equal(region[..., 0], blocks[1:5, 2:7])
    # Downsample 8 averages 2x2 blocks: means of four integers, rounded by PIL.
    region8 = read_at_downsample(slide, (0, 0), 8, (4, 3))
    expected = blocks.reshape(3, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(region8[..., 0], expected, atol=0.5)


def test_working_level_read_agrees_across_pyramids(tmp_path):
    """Downsample 4 read from a single-level slide and from a 3-level pyramid agree."""
    level0 = gradient_image(512, 384)
    blocky = np.repeat(np.repeat(level0[::4, ::4], 4, axis=0), 4, axis=1)
    single = write_tiff_pyramid(tmp_path / "single.tiff", [blocky])
    pyramid = write_tiff_pyramid(
        tmp_path / "pyramid.tiff", [blocky, blocky[::2, ::2], blocky[::4, ::4]]
    )
    with open_slide(single) as one, open_slide(pyramid) as three:
        a = read_at_downsample(one, (64, 32), 4, (40, 30))
        b = read_at_downsample(three, (64, 32), 4, (40, 30))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, level0[::4, ::4][8:38, 16:56])


def test_boxes_fixture_read_at_working_levels(shared_fixtures):
    with open_slide(shared_fixtures / "slides" / "boxes.tiff") as slide:
        assert slide.level_downsamples == pytest.approx(BOXES_DOWNSAMPLES)
        for working in (1, 2, 4, 8):
            size = level_size(slide.dimensions, working)
            region = read_at_downsample(slide, (0, 0), working, size)
            assert region.shape == (size[1], size[0], 3)
        assert level_size(slide.dimensions, 8) == (38, 32)


def test_thumbnail_keeps_aspect_ratio(gradient_pyramid):
    path, _ = gradient_pyramid
    with open_slide(path) as slide:
        assert slide.get_thumbnail((100, 100)).shape == (70, 100, 3)
        assert slide.get_thumbnail((5000, 5000)).shape == (700, 1000, 3)
