"""The synthetic benchmark generator: files OpenSlide reads, exact masks, determinism,
seamless tiles, content where zooming matters, and the ``razn synth`` command."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from click.testing import CliRunner
from scipy import ndimage

from razn.cli import main
from razn.config import load_config
from razn.data.manifest import read_manifest
from razn.data.synth import (
    SynthConfig,
    ensure_dataset,
    render_layers,
    render_tile,
    slide_layout,
    split_names,
    write_synthetic_slide,
)
from razn.data.synth.pyramid_tiff import PyramidSpec
from razn.errors import ConfigError, RaznError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIG = SynthConfig()


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 1500x1100 slide and mask (2 levels), seed 11."""
    folder = tmp_path_factory.mktemp("slide")
    slide, mask = folder / "s.tiff", folder / "s_mask.tiff"
    write_synthetic_slide(slide, mask, 1500, 1100, 11, CONFIG)
    return slide, mask


@pytest.fixture(scope="module")
def big_layers() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """RGB and label layers of a whole 3072x3072 slide (seed 2), rendered in strips."""
    size = 3072
    layout = slide_layout(size, size, 2, CONFIG)
    rgbs, layers = [], []
    for y in range(0, size, 512):
        rgb, lay = render_layers(layout, 0, y, size, 512)
        rgbs.append(rgb)
        layers.append(lay)
    names = ("tissue_depth", "tumour", "mask", "focus", "mimic", "region", "fine_detail", "tint")
    stacked = {n: np.concatenate([getattr(lay, n) for lay in layers]) for n in names}
    stacked["tissue"] = stacked["tissue_depth"] > 0
    return np.concatenate(rgbs), stacked


def run_synth(out: Path, *args: str) -> None:
    result = CliRunner().invoke(main, ["synth", str(out), *args])
    assert result.exit_code == 0, result.output
    assert "manifest" in result.output


# --- files ------------------------------------------------------------------------------


def test_slide_opens_in_openslide_with_expected_geometry(small_slide):
    slide_path, _ = small_slide
    assert openslide.OpenSlide.detect_format(str(slide_path)) == "aperio"
    with openslide.OpenSlide(str(slide_path)) as slide:
        assert slide.level_dimensions == ((1500, 1100), (750, 550))
        assert slide.level_downsamples == (1.0, 2.0)
        props = slide.properties
        assert float(props[openslide.PROPERTY_NAME_MPP_X]) == 0.5
        assert float(props[openslide.PROPERTY_NAME_MPP_Y]) == 0.5
        assert float(props[openslide.PROPERTY_NAME_OBJECTIVE_POWER]) == 20
        for level in range(2):
            assert props[f"openslide.level[{level}].tile-width"] == "256"
            assert props[f"openslide.level[{level}].tile-height"] == "256"
        region = np.asarray(slide.read_region((400, 300), 0, (300, 200)).convert("RGB"))
    expected, _ = render_tile(400, 300, 300, 200, 11, CONFIG, (1500, 1100))
    # JPEG Q90: small differences only, and the colours are the right way round (RGB).
    assert np.abs(region.astype(int) - expected).mean() < 4


def test_mask_pyramid_matches_slide_and_renderer(small_slide):
    _, mask_path = small_slide
    _, labels = render_tile(0, 0, 1500, 1100, 11, CONFIG, (1500, 1100))
    with tifffile.TiffFile(mask_path) as tif:
        pages = tif.pages
        assert [p.shape for p in pages] == [(1100, 1500), (550, 750)]
        for page in pages:
            assert page.dtype == np.uint8
            assert page.tile == (256, 256)
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert pages[1].subfiletype == 1
        np.testing.assert_array_equal(pages[0].asarray(), labels)
        # Level k holds the level-0 label at the centre pixel of each 2**k block.
        np.testing.assert_array_equal(pages[1].asarray(), labels[1::2, 1::2])
    assert set(np.unique(labels)) == {0, 1}


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((4096, 4096), [(4096, 4096), (2048, 2048), (1024, 1024), (512, 512)]),
        ((1500, 1100), [(1500, 1100), (750, 550)]),
        ((999, 20), [(999, 20)]),
        ((2001, 3), [(2001, 3), (1001, 2), (501, 1)]),
    ],
)
def test_levels_halve_with_ceil_until_below_min_side(size, expected):
    assert PyramidSpec(*size).levels == expected


def test_big_pyramid_stops_near_1000_px():
    levels = PyramidSpec(50_000, 40_000).levels
    assert levels[-1] == (782, 625)
    assert len(levels) == 7


# --- command line -----------------------------------------------------------------------


def test_cli_is_deterministic_and_writes_manifest(tmp_path):
    args = ["--slides", "3", "--size", "600x500", "--set", "pyramid_min_side=200"]
    run_synth(tmp_path / "a", *args, "--seed", "5")
    run_synth(tmp_path / "b", *args, "--seed", "5")
    run_synth(tmp_path / "c", *args, "--seed", "6")
    with (tmp_path / "a" / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["slide", "mask", "split"]
    assert [r["split"] for r in rows] == ["train", "val", "test"]
    assert rows[0]["slide"] == "slides/synth_000.tiff"
    assert rows[0]["mask"] == "masks/synth_000_mask.tiff"
    assert len(read_manifest(tmp_path / "a" / "manifest.csv")) == 3
    for row in rows:
        a, b, c = (tmp_path / d / row["mask"] for d in "abc")
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
        pixels = [tifffile.imread(tmp_path / d / row["slide"], key=1) for d in "abc"]
        assert pixels[0].shape == (250, 300, 3)
        np.testing.assert_array_equal(pixels[0], pixels[1])
        assert not np.array_equal(pixels[0], pixels[2])
    # Slides of one dataset differ from each other (derived seeds).
    masks = [(tmp_path / "a" / r["mask"]).read_bytes() for r in rows]
    assert len(set(masks)) == 3
    config = load_config(SynthConfig, tmp_path / "a" / "config.yaml")
    assert config == SynthConfig(pyramid_min_side=200)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "10x"], "--size"),
        (["--size", "0x100"], "--size"),
        (["--slides", "0"], "--slides"),
        (["--set", "tumour_fractoin=0.3"], "did you mean 'tumour_fraction'"),
        (["--set", "tile_size=100"], "tile_size"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_clear_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_unwritable_output_is_a_razn_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(RaznError, match="cannot write the synthetic slide"):
        write_synthetic_slide(blocker / "s.tiff", blocker / "m.tiff", 64, 64, 0, CONFIG)


def test_config_file_holds_the_defaults():
    assert load_config(SynthConfig, CONFIGS / "synth.yaml") == SynthConfig()


def test_config_rejects_out_of_range_values():
    with pytest.raises(ConfigError, match="multiple of 16"):
        SynthConfig(tile_size=200)
    with pytest.raises(ConfigError, match="tumour_nucleus_radius_um"):
        SynthConfig(tumour_nucleus_radius_um=(2.0, 9.0))


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)), (10, (6, 2, 2)), (100, (70, 15, 15))],
)
def test_split_rule(n, expected):
    names = split_names(n, 0.15, 0.15)
    assert tuple(names.count(s) for s in ("train", "val", "test")) == expected
    assert names == sorted(names, key=["train", "val", "test"].index)


# --- rendering --------------------------------------------------------------------------


@pytest.mark.parametrize("config", [CONFIG, SynthConfig(label_noise=8.0, mpp=0.37)])
def test_tiles_are_seamless(config):
    x0, y0, w, h = 1180, 2050, 301, 207
    whole_rgb, whole_labels = render_tile(x0, y0, w, h, 2, config, (3072, 3072))
    sx, sy = 117, 64  # uneven split points
    for tx, tw in ((x0, sx), (x0 + sx, w - sx)):
        for ty, th in ((y0, sy), (y0 + sy, h - sy)):
            rgb, labels = render_tile(tx, ty, tw, th, 2, config, (3072, 3072))
            window = np.s_[ty - y0 : ty - y0 + th, tx - x0 : tx - x0 + tw]
            np.testing.assert_array_equal(rgb, whole_rgb[window])
            np.testing.assert_array_equal(labels, whole_labels[window])


def test_content_has_tissue_tumour_regions_and_foci(big_layers):
    _, layers = big_layers
    tissue = layers["tissue"]
    assert 0.35 < tissue.mean() < 0.55  # configured 0.45, plus the frayed outline
    tumour = layers["mask"].astype(bool)
    assert not (tumour & ~tissue).any()
    assert 0.12 < tumour[tissue].mean() < 0.4
    regions, _ = ndimage.label(layers["region"])
    region_sizes = np.bincount(regions.ravel())[1:]
    assert region_sizes.max() > 100_000  # large regions: hundreds of µm across
    foci, n_foci = ndimage.label(
        layers["focus"] & ~ndimage.binary_dilation(layers["region"], iterations=2)
    )
    assert n_foci >= 10
    assert np.median(np.bincount(foci.ravel())[1:]) < 40_000  # small: tens of µm
    assert 0.01 < layers["mimic"][tissue].mean() < 0.1
    assert 0.1 < layers["fine_detail"][tissue].mean() < 0.3


def test_foci_hide_at_coarse_scale_and_show_at_fine_scale(big_layers):
    rgb, layers = big_layers
    k, n = 8, rgb.shape[0] // 8

    def blocks(a: np.ndarray) -> np.ndarray:
        return a.reshape(n, k, n, k, *a.shape[2:])

    coarse = blocks(rgb.astype(np.float32)).mean(axis=(1, 3))
    untinted = layers["tint"] < 0.01
    focus = blocks(layers["focus"] & untinted).all(axis=(1, 3))
    normal = blocks(layers["tissue"] & ~layers["fine_detail"] & ~layers["tumour"] & untinted)
    normal = normal.all(axis=(1, 3))
    region = blocks(layers["region"] & (layers["tint"] > 0.99)).all(axis=(1, 3))
    assert focus.sum() > 100 and normal.sum() > 1000 and region.sum() > 100
    # Downsample 8: foci have about the colour of normal tissue; large regions do not.
    focus_shift = np.abs(coarse[focus].mean(0) - coarse[normal].mean(0)).max()
    region_shift = np.abs(coarse[region].mean(0) - coarse[normal].mean(0)).max()
    assert focus_shift < 4 < 10 < region_shift
    # Downsample 1: tumour is crowded with nuclei (dark blue-purple pixels).
    nuclear = rgb[..., 0] < 160
    assert nuclear[layers["focus"]].mean() > 2 * nuclear[normal.repeat(k, 0).repeat(k, 1)].mean()


def test_label_noise_moves_mask_borders_only(big_layers):
    noisy = SynthConfig(label_noise=10.0)
    x0, y0, w, h = 0, 0, 3072, 1024
    clean_rgb, clean = render_layers(slide_layout(3072, 3072, 2, CONFIG), x0, y0, w, h)
    noisy_rgb, moved = render_layers(slide_layout(3072, 3072, 2, noisy), x0, y0, w, h)
    np.testing.assert_array_equal(clean_rgb, noisy_rgb)  # the image does not change
    np.testing.assert_array_equal(clean.tumour, moved.tumour)
    changed = clean.mask != moved.mask
    assert 0 < changed.mean() < 0.05
    # Changes hug the borders: 10 µm is 20 px; more only where the outline is shallow.
    border = clean.mask != ndimage.binary_erosion(clean.mask)
    distance = ndimage.distance_transform_edt(~border)[changed]
    assert np.percentile(distance, 99) < 60
    assert distance.max() < 120


def test_render_is_a_pure_function_of_seed():
    a = render_tile(500, 500, 64, 64, 1, CONFIG, (2048, 2048))
    b = render_tile(500, 500, 64, 64, 1, CONFIG, (2048, 2048))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].dtype == np.uint8 and a[0].shape == (64, 64, 3)
    assert a[1].dtype == np.uint8 and a[1].shape == (64, 64)


def test_ensure_dataset_reuses_a_matching_dataset_and_remakes_a_changed_one(tmp_path):
    config = SynthConfig()
    manifest = ensure_dataset(tmp_path, 2, 256, 192, 4, config)
    slide = tmp_path / "slides" / "synth_000.tiff"
    made = slide.stat().st_mtime_ns
    assert ensure_dataset(tmp_path, 2, 256, 192, 4, config) == manifest
    assert slide.stat().st_mtime_ns == made  # reused, not written again
    ensure_dataset(tmp_path, 2, 256, 192, 4, SynthConfig(focus_density=30.0))
    assert slide.stat().st_mtime_ns != made  # a generator setting changed: made again
    (tmp_path / "masks" / "synth_001_mask.tiff").unlink()
    ensure_dataset(tmp_path, 2, 256, 192, 4, SynthConfig(focus_density=30.0))
    assert (tmp_path / "masks" / "synth_001_mask.tiff").is_file()  # a missing file: made again
