"""The slide layer: backends, geometry, alpha, mpp, and the real fixture files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import downsample_pyramid, gradient_image, write_tiff_pyramid

from razn.errors import SlideError
from razn.slide import ArraySlide, OpenSlideSlide, open_slide, write_zarr_slide
from razn.slide.base import composite_on_white


def test_openslide_backend_reads_synthetic_pyramid_exactly(gradient_pyramid):
    path, levels = gradient_pyramid
    with open_slide(path) as slide:
        assert isinstance(slide, OpenSlideSlide)
        assert slide.dimensions == (1000, 700)
        assert slide.level_dimensions == ((1000, 700), (500, 350), (250, 175))
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert slide.vendor == "generic-tiff"
        assert slide.tile_size == (64, 64)
        assert slide.mpp == pytest.approx((0.5, 0.5))
        assert slide.mpp_source == "slide"
        assert slide.name == "gradient"
        region = slide.read_region((100, 60), 0, (37, 21))
        np.testing.assert_array_equal(region, levels[0][60:81, 100:137])
        region = slide.read_region((200, 120), 1, (50, 40))
        np.testing.assert_array_equal(region, levels[1][60:100, 100:150])


def test_array_backend_matches_openslide_on_same_pyramid(gradient_pyramid):
    path, levels = gradient_pyramid
    array_slide = ArraySlide(levels, mpp=(0.5, 0.5))
    with open_slide(path) as file_slide:
        assert array_slide.level_dimensions == file_slide.level_dimensions
        assert array_slide.level_downsamples == file_slide.level_downsamples
        for location, level, size in [((0, 0), 0, (64, 64)), ((404, 208), 2, (40, 30))]:
            np.testing.assert_array_equal(
                array_slide.read_region(location, level, size),
                file_slide.read_region(location, level, size),
            )


def test_regions_outside_the_slide_are_white(gradient_pyramid):
    path, levels = gradient_pyramid
    for slide in (open_slide(path), ArraySlide(levels)):
        region = slide.read_region((990, 690), 0, (20, 20))
        np.testing.assert_array_equal(region[:10, :10], levels[0][690:700, 990:1000])
        assert (region[10:] == 255).all() and (region[:, 10:] == 255).all()
        assert (slide.read_region((-50, -50), 0, (10, 10)) == 255).all()


def test_composite_on_white_blends_straight_alpha():
    rgba = np.array([[[10, 20, 30, 255], [0, 0, 0, 0], [100, 0, 200, 128]]], np.uint8)
    expected = [[[10, 20, 30], [255, 255, 255], [177, 127, 227]]]
    np.testing.assert_array_equal(composite_on_white(rgba), expected)


def test_zarr_slide_round_trip(tmp_path):
    levels = downsample_pyramid(gradient_image(300, 200), 2)
    path = write_zarr_slide(tmp_path / "s.zarr", levels, mpp=(0.25, 0.25), chunk=64)
    slide = open_slide(path)
    assert isinstance(slide, ArraySlide)
    assert slide.level_dimensions == ((300, 200), (150, 100))
    assert slide.mpp == (0.25, 0.25)
    assert slide.tile_size == (64, 64)
    np.testing.assert_array_equal(slide.read_region((10, 20), 1, (30, 40)), levels[1][10:50, 5:35])


def test_mpp_override_and_missing_mpp(tmp_path):
    path = write_tiff_pyramid(tmp_path / "nompp.tiff", [gradient_image(128, 128)])
    with open_slide(path) as slide:
        assert slide.mpp is None and slide.mpp_source is None
    with open_slide(path, mpp=(0.25, 0.26)) as slide:
        assert slide.mpp == (0.25, 0.26) and slide.mpp_source == "override"
    with pytest.raises(SlideError, match="mpp override"):
        open_slide(path, mpp=(0.0, 1.0))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.svs", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.svs", b""), "file is empty"),
        (lambda d: _write(d / "text.svs", b"not a slide at all\n" * 10), "unsupported"),
    ],
)
def test_bad_paths_raise_one_line_slide_errors(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(SlideError) as info:
        open_slide(path)
    message = str(info.value)
    assert str(path) in message and reason in message and "\n" not in message


def test_bad_arguments_to_read_region(gradient_pyramid):
    path, _ = gradient_pyramid
    with open_slide(path) as slide:
        with pytest.raises(SlideError, match=r"level 3 out of range 0\.\.2"):
            slide.read_region((0, 0), 3, (10, 10))
        with pytest.raises(SlideError, match="size must be positive"):
            slide.read_region((0, 0), 0, (0, 10))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- the real files in ../shared/fixtures -------------------------------------------------

REAL_SLIDES = {
    "CMU-1-Small-Region.svs": ([(2220, 2967)], [1.0], 0.499, 20.0, (240, 240), "aperio"),
    "small.svs": ([(16, 16)], [1.0], 0.499, 20.0, (64, 64), "aperio"),
    "boxes.tiff": (
        [(300, 250), (150, 125), (75, 62), (37, 31)],
        [1.0, 2.0, 4.0161, 8.0863],
        352.78,
        None,
        (64, 64),
        "generic-tiff",
    ),
    "test3-DAPI-2-(387).ndpi": (
        [(3968 // 2**k, 4864 // 2**k) for k in range(7)],
        [2.0**k for k in range(7)],
        0.228,
        40.0,
        (3968, 8),
        "hamamatsu",
    ),
    "no_dzi.tif": (
        [(3072, 3968), (1536, 1984), (768, 992), (384, 496)],
        [1.0, 2.0, 4.0, 8.0],
        0.9724,
        None,
        (512, 512),
        "generic-tiff",
    ),
}


@pytest.mark.parametrize("name", sorted(REAL_SLIDES))
def test_real_slides_open_with_expected_geometry(shared_fixtures, name):
    dims, downsamples, mpp, power, tile, vendor = REAL_SLIDES[name]
    with open_slide(shared_fixtures / "slides" / name) as slide:
        assert list(slide.level_dimensions) == dims
        assert list(slide.level_downsamples) == pytest.approx(downsamples, rel=1e-4)
        assert slide.mpp[0] == pytest.approx(mpp, rel=1e-3)
        assert slide.objective_power == power
        assert slide.tile_size == tile
        assert slide.vendor == vendor
        region = slide.read_region((0, 0), slide.level_count - 1, (8, 8))
        assert region.shape == (8, 8, 3) and region.dtype == np.uint8


BAD_FILES = {
    "unopenable.tiff": "Unsupported TIFF compression",
    "unreadable.svs": "Bogus marker length",
    "broken.svs": "unsupported",
    "kidney-48-5.tif": "unsupported",
    "RGB-8bit.czi": "subblock dimension",
    "sm_image_jpegls.dcm": "Unsupported transfer syntax",
}


EXPLAINED = {
    "unopenable.tiff": "TIFF compressed with a codec OpenSlide does not decode; re-save it",
    "unreadable.svs": "damaged JPEG tiles: the file is incomplete or corrupt",
    "RGB-8bit.czi": "Zeiss CZI with time, z or scene dimensions OpenSlide does not read",
    "sm_image_jpegls.dcm": "DICOM compressed with a codec OpenSlide does not decode",
}


@pytest.mark.parametrize("name", sorted(EXPLAINED))
def test_openslides_reasons_come_after_what_they_mean(shared_fixtures, name):
    path = shared_fixtures / "bad" / name
    with pytest.raises(SlideError) as info, open_slide(path) as slide:
        slide.read_region((0, 0), 0, (16, 16))
    message = str(info.value)
    assert EXPLAINED[name] in message
    # the meaning first, OpenSlide's own words kept after it
    assert (
        message.index(EXPLAINED[name])
        < message.index("(OpenSlide: ")
        < message.index(BAD_FILES[name])
    )


def test_unknown_reasons_stay_as_openslide_wrote_them():
    from razn.slide.reasons import explain

    assert explain("Something new went wrong") == "Something new went wrong"
    assert explain("Couldn't get image flavor").startswith("DICOM without a whole-slide ImageType")
    assert explain("Index.dat doesn't have expected version").startswith("MIRAX: its data files")
    assert explain("Nonzero subblock channel 1").startswith("Zeiss CZI with several channels")
    assert explain("Can't validate JPEG 0").endswith("(OpenSlide: Can't validate JPEG 0)")


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_real_files_raise_slide_error_naming_the_file(shared_fixtures, name):
    path = shared_fixtures / "bad" / name
    with pytest.raises(SlideError) as info, open_slide(path) as slide:
        slide.read_region((0, 0), 0, (16, 16))
    assert str(info.value).startswith(f"{path}: ")
    assert BAD_FILES[name] in str(info.value)


def test_read_errors_are_sticky_and_stay_clear(shared_fixtures):
    slide = open_slide(shared_fixtures / "bad" / "unreadable.svs")
    assert slide.dimensions == (16, 16)  # metadata was read at open time
    with pytest.raises(SlideError, match="Bogus marker length") as first:
        slide.read_region((0, 0), 0, (4, 4))
    # later reads, from any thread, repeat the first failure (where it happened) verbatim
    with pytest.raises(SlideError) as later:
        slide.read_region((8, 8), 0, (4, 4))
    assert str(later.value) == f"{first.value} (the slide is unusable after it)"
    assert "read failed at location (0, 0) level 0 size (4, 4)" in str(first.value)
    assert slide.vendor == "aperio"
