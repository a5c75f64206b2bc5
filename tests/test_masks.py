"""Label masks: downsample inference, nearest sampling, formats, errors, a real mask."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from razn.data.masks import IGNORE, LabelMask, infer_downsample, open_mask
from razn.errors import MaskError

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
NO_DZI = FIXTURES / "slides" / "no_dzi.tif"
needs_fixtures = pytest.mark.skipif(
    not NO_DZI.exists(), reason=f"real mask fixture not found at {NO_DZI} (no ../shared checkout)"
)


def labels(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A random uint8 label image with classes 0..4 and some ignore (255) pixels."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 5, size=(h, w), dtype=np.uint8)
    out[rng.random((h, w)) < 0.05] = IGNORE
    return out


def write_png(path: Path, data: np.ndarray) -> Path:
    Image.fromarray(data).save(path)
    return path


def write_tiff(path: Path, data: np.ndarray) -> Path:
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def write_pyramid(path: Path, levels: list[np.ndarray], tile: int = 16) -> Path:
    """A tiled pyramidal TIFF with the levels as SubIFDs, as slide scanners write them."""
    with tifffile.TiffWriter(path) as tif:
        for k, level in enumerate(levels):
            tif.write(
                level,
                tile=(tile, tile),
                compression="zlib",
                photometric="minisblack",
                subifds=len(levels) - 1 if k == 0 else None,
                subfiletype=1 if k else 0,
            )
    return path


def write_zarr_group(path: Path, levels: list[np.ndarray]) -> Path:
    group = zarr.open_group(str(path), mode="w")
    for k, level in enumerate(levels):
        group.create_array(str(k), data=level, chunks=(16, 16))
    return path


def write_zarr_array(path: Path, data: np.ndarray) -> Path:
    zarr.create_array(str(path), data=data, chunks=(16, 16))
    return path


# --- downsample inference ------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ((1000, 750), 1.0),
        ((500, 375), 2.0),
        ((250, 188), 4.0),  # ceil(750 / 4)
        ((250, 187), 4.0),  # floor(750 / 4)
        ((333, 250), 3.0),  # non-integer ratio 1000 / 333, rounded mask side
        ((400, 300), 2.5),  # a genuinely non-integer downsample
    ],
)
def test_infer_downsample_accepts_rounded_sides(mask: tuple[int, int], expected: float) -> None:
    assert infer_downsample((1000, 750), mask) == pytest.approx(expected)


def test_infer_downsample_error_names_file_sizes_and_ratios() -> None:
    with pytest.raises(MaskError) as info:
        infer_downsample((1000, 750), (333, 300), "masks/a.png")
    message = str(info.value)
    assert message.startswith("masks/a.png: ")
    for part in ("333×300", "1000×750", "3.003", "2.5", "disagree"):
        assert part in message
    assert "\n" not in message


def test_infer_downsample_refuses_a_mask_larger_than_the_slide() -> None:
    with pytest.raises(MaskError, match="larger than the slide"):
        infer_downsample((1000, 750), (1000, 751))


def test_open_mask_rejects_inconsistent_ratio(tmp_path: Path) -> None:
    path = write_png(tmp_path / "m.png", labels(40, 50))
    with pytest.raises(MaskError, match=r"m\.png: mask is 50×40 px but slide is 100×100 px"):
        open_mask(path, (100, 100))


# --- nearest-neighbour sampling with exact values ------------------------------------


@pytest.fixture
def grid(tmp_path: Path) -> LabelMask:
    """A 4×4 mask holding 0..15, at downsample 1 of a 4×4 slide."""
    data = np.arange(16, dtype=np.uint8).reshape(4, 4)
    return open_mask(write_png(tmp_path / "grid.png", data), (4, 4))


def test_read_at_mask_resolution_is_the_mask(grid: LabelMask) -> None:
    assert grid.downsample == 1.0
    assert grid.shape == (4, 4)
    np.testing.assert_array_equal(grid.read_all(), np.arange(16).reshape(4, 4))


def test_read_coarser_takes_the_pixel_under_each_centre(grid: LabelMask) -> None:
    # Output pixel centres at level-0 x = 1, 3: inside mask pixels 1 and 3.
    np.testing.assert_array_equal(grid.read_labels((0, 0), 2, (2, 2)), [[5, 7], [13, 15]])


def test_read_finer_repeats_pixels(grid: LabelMask) -> None:
    # Centres at 1.25, 1.75, 2.25, 2.75 fall in mask pixels 1, 1, 2, 2.
    expected = [[5, 5, 6, 6], [5, 5, 6, 6], [9, 9, 10, 10], [9, 9, 10, 10]]
    np.testing.assert_array_equal(grid.read_labels((1, 1), 0.5, (4, 4)), expected)


def test_read_outside_the_mask_pads_with_background(grid: LabelMask) -> None:
    out = grid.read_labels((-2, 3), 1, (4, 3))
    np.testing.assert_array_equal(out, [[0, 0, 12, 13], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert out.dtype == np.uint8


def test_mask_at_downsample_two_maps_level0_pixels(tmp_path: Path) -> None:
    data = np.arange(6, dtype=np.uint8).reshape(2, 3)
    mask = open_mask(write_png(tmp_path / "m.png", data), (6, 4))
    assert mask.downsample == 2.0
    np.testing.assert_array_equal(
        mask.read_labels((0, 0), 1, (6, 4)), np.repeat(np.repeat(data, 2, 0), 2, 1)
    )
    # Level-0 x = 3.5 (centre of slide pixel 3) lies in mask column 1.
    np.testing.assert_array_equal(mask.read_labels((3, 1), 1, (1, 1)), [[1]])


def test_non_integer_downsample_reads_by_centres(tmp_path: Path) -> None:
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)  # d = 2.5 of a 10×7 slide
    mask = open_mask(write_png(tmp_path / "m.png", data), (10, 7))
    assert mask.downsample == 2.5
    # Slide pixel centres 0.5 … 9.5 → mask columns floor(c / 2.5); the centres 2.5
    # and 7.5 lie on mask pixel edges and belong to the pixel on the right.
    row = mask.read_labels((0, 0), 1, (10, 1))[0]
    np.testing.assert_array_equal(row, [0, 0, 1, 1, 1, 2, 2, 3, 3, 3])


def test_read_validates_arguments(grid: LabelMask) -> None:
    with pytest.raises(MaskError, match="downsample"):
        grid.read_labels((0, 0), 0, (2, 2))
    with pytest.raises(MaskError, match="size"):
        grid.read_labels((0, 0), 1, (-1, 2))


# --- every format gives the same labels ----------------------------------------------


def _all_formats(tmp_path: Path, data: np.ndarray) -> dict[str, Path]:
    # The coarser level samples level-0 pixel centres exactly as the reader does:
    # a level-1 pixel (d = 4) has its centre in level-0 mask pixel 2j + 1.
    level1 = data[1::2, 1::2]
    return {
        "png": write_png(tmp_path / "m.png", data),
        "tiff": write_tiff(tmp_path / "m.tif", data),
        "pyramid": write_pyramid(tmp_path / "p.tif", [data, level1]),
        "zarr": write_zarr_array(tmp_path / "m.zarr", data),
        "zarr-group": write_zarr_group(tmp_path / "g.zarr", [data, level1]),
    }


@pytest.mark.parametrize(
    ("location", "downsample", "size"),
    # At downsample 4 the pyramids read their level 1; its pixels sample the same
    # level-0 pixels as long as the location is on that level's grid (multiples of 4).
    [((0, 0), 2, (64, 48)), ((-7, 5), 1, (50, 40)), ((3, 1), 3, (45, 33)), ((8, -4), 4, (40, 30))],
)
def test_formats_agree(
    tmp_path: Path, location: tuple[int, int], downsample: float, size: tuple[int, int]
) -> None:
    data = labels()
    results = {}
    for name, path in _all_formats(tmp_path, data).items():
        with open_mask(path, (128, 96)) as mask:
            assert mask.downsample == 2.0, name
            results[name] = mask.read_labels(location, downsample, size)
    reference = results.pop("png")
    for name, result in results.items():
        np.testing.assert_array_equal(result, reference, err_msg=name)


def test_pyramid_levels_are_reported_and_used(tmp_path: Path) -> None:
    data = labels()
    path = write_pyramid(tmp_path / "p.tif", [data, data[1::2, 1::2], data[3::4, 3::4]])
    with open_mask(path, (128, 96)) as mask:
        assert [lv.dimensions for lv in mask.levels] == [(64, 48), (32, 24), (16, 12)]
        assert [lv.downsample for lv in mask.levels] == [2.0, 4.0, 8.0]
        np.testing.assert_array_equal(mask.read_labels((0, 0), 8, (16, 12)), data[3::4, 3::4])
        np.testing.assert_array_equal(mask.read_all(4), data[1::2, 1::2])


def test_class_values_validate_and_pickle(tmp_path: Path) -> None:
    data = np.zeros((100, 70), np.uint8)
    data[90:, 60:] = 3
    data[5, 5] = IGNORE
    path = write_zarr_array(tmp_path / "m.zarr", data)  # 16-px chunks: scanned chunk-wise
    mask = open_mask(path, (70, 100))
    assert mask.class_values() == {0, 3, IGNORE}
    mask.validate(4)
    with pytest.raises(MaskError, match=r"class values 3 outside 0\.\.2"):
        mask.validate(3)
    clone = pickle.loads(pickle.dumps(mask))
    np.testing.assert_array_equal(clone.read_all(), data)


def test_wide_integer_masks_are_read_when_values_fit(tmp_path: Path) -> None:
    data = labels().astype(np.uint16)
    with open_mask(write_tiff(tmp_path / "m.tif", data), (64, 48)) as mask:
        np.testing.assert_array_equal(mask.read_all(), data)
    data[0, 0] = 300
    with open_mask(write_tiff(tmp_path / "big.tif", data), (64, 48)) as mask:
        assert 300 in mask.class_values()
        with pytest.raises(MaskError, match="value 300"):
            mask.read_all()


def test_huge_zarr_mask_is_read_lazily(tmp_path: Path) -> None:
    big = zarr.create_array(
        str(tmp_path / "big.zarr"), shape=(100_000, 100_000), dtype="uint8", chunks=(4096, 4096)
    )
    big[50_000:50_010, 50_000:50_010] = 2  # 10 GB logical; only one chunk is stored
    mask = open_mask(tmp_path / "big.zarr", (100_000, 100_000))
    np.testing.assert_array_equal(mask.read_labels((49_985, 49_995), 10, (3, 1)), [[0, 2, 0]])
    assert mask.read_labels((0, 0), 1000, (100, 100)).shape == (100, 100)
    with pytest.raises(MaskError, match="read_all"):
        mask.read_all()


# --- bad inputs ----------------------------------------------------------------------


def _one_line_error(path: Path, slide: tuple[int, int] = (10, 10)) -> str:
    with pytest.raises(MaskError) as info:
        open_mask(path, slide).read_all()
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _one_line_error(tmp_path / "nope.png")


def test_directory_that_is_not_zarr(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    assert "not a zarr" in _one_line_error(tmp_path / "folder")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.tif").write_bytes(b"")
    assert "empty" in _one_line_error(tmp_path / "empty.tif")


def test_corrupt_files(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all")
    assert "cannot open" in _one_line_error(tmp_path / "junk.png")
    good = write_pyramid(tmp_path / "good.tif", [labels(64, 64)])
    data = good.read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 3])
    _one_line_error(tmp_path / "cut.tif", (64, 64))


def test_multi_channel_masks_are_refused(tmp_path: Path) -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    assert "mode 'RGB'" in _one_line_error(write_png(tmp_path / "rgb.png", rgb))
    tif = tmp_path / "rgb.tif"
    tifffile.imwrite(tif, rgb, photometric="rgb")
    assert "single-channel" in _one_line_error(tif)


def test_float_masks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.full((10, 10), 0.5, np.float32))
    assert "floating-point dtype float32" in _one_line_error(path)


# --- a real pyramidal label mask -----------------------------------------------------


@needs_fixtures
def test_real_sparse_pyramid_mask() -> None:
    with open_mask(NO_DZI, (3072, 3968)) as mask, tifffile.TiffFile(NO_DZI) as tif:
        assert [lv.dimensions for lv in mask.levels] == [
            (3072, 3968),
            (1536, 1984),
            (768, 992),
            (384, 496),
        ]
        assert [lv.downsample for lv in mask.levels] == [1.0, 2.0, 4.0, 8.0]
        assert mask.class_values(level=3) <= {0, 1, 2, 3, 4}
        mask.validate(5)
        coarse = tif.series[0].levels[3].asarray()
        np.testing.assert_array_equal(mask.read_labels((0, 0), 8, (384, 496)), coarse)
        region = tif.series[0].levels[0].asarray()[1000:1300, 1500:1900]
        np.testing.assert_array_equal(mask.read_labels((1500, 1000), 1, (400, 300)), region)
        # The first tile is missing from the sparse file: it reads as background.
        assert not mask.read_labels((0, 0), 1, (512, 512)).any()


@needs_fixtures
def test_real_mask_at_downsample_two_of_a_larger_slide() -> None:
    with open_mask(NO_DZI, (6144, 7936)) as mask:
        assert [lv.downsample for lv in mask.levels] == [2.0, 4.0, 8.0, 16.0]
        with pytest.raises(MaskError, match="disagree"):
            open_mask(NO_DZI, (6144, 6144))
