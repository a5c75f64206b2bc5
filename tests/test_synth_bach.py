"""The four-class (BACH layout) synthetic slides: class values, determinism, scale cues."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import yaml
from click.testing import CliRunner
from scipy import ndimage

from razn.cli import main
from razn.data.synth import SynthConfig, render_layers, render_tile, slide_layout
from razn.data.synth.bach import BENIGN, IN_SITU, INVASIVE, NORMAL
from razn.data.synth.nuclei import nucleus_pad

SIZE = 3072
BINARY = SynthConfig()
# more ducts than the default, so that a 1.5 mm square holds normal and in situ ones
BACH = SynthConfig(classes="bach", duct_density=10.0)


def render(config: SynthConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    layout = slide_layout(SIZE, SIZE, 2, config)
    strips = [render_layers(layout, 0, y, SIZE, 512) for y in range(0, SIZE, 512)]
    rgb = np.concatenate([s[0] for s in strips])
    layers = {
        "mask": np.concatenate([s[1].mask for s in strips]),
        "tumour": np.concatenate([s[1].tumour for s in strips]),
        "tissue": np.concatenate([s[1].tissue_depth for s in strips]) > 0,
        "tint": np.concatenate([s[1].tint for s in strips]),
        "mimic": np.concatenate([s[1].mimic for s in strips]),
    }
    if config.classes == "bach":
        for name in ("benign", "epithelium", "rim", "in_situ", "lumen"):
            layers[name] = np.concatenate([getattr(s[1].bach, name) for s in strips])
    return rgb, layers


@pytest.fixture(scope="module")
def bach() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return render(BACH)


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return render(BINARY)


def test_classes_and_their_names():
    assert SynthConfig().class_names == ("background", "tumour")
    assert BACH.class_names == ("normal", "benign", "in_situ", "invasive")
    assert len(BACH.class_colours) == 4
    assert (NORMAL, BENIGN, IN_SITU, INVASIVE) == (0, 1, 2, 3)


def test_every_class_is_on_tissue_in_a_sensible_share(bach):
    _, layers = bach
    mask, tissue = layers["mask"], layers["tissue"]
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1, 2, 3}
    assert not (mask[~tissue] > 0).any()  # glass is never a lesion
    shares = np.bincount(mask[tissue], minlength=4) / tissue.sum()
    assert 0.4 < shares[NORMAL] < 0.75
    for lesion in (BENIGN, IN_SITU, INVASIVE):
        assert 0.03 < shares[lesion] < 0.35, shares


def test_invasive_is_exactly_the_binary_tumour_and_the_rest_of_the_image_is_unchanged(bach, binary):
    bach_rgb, layers = bach
    binary_rgb, binary_layers = binary
    np.testing.assert_array_equal(layers["mask"] == INVASIVE, binary_layers["mask"])
    # Away from the new lesions (and the nuclei that straddle their outline) nothing moves.
    lesion = layers["benign"] | layers["epithelium"] | layers["rim"] | layers["in_situ"]
    lesion |= layers["lumen"] > 0
    pad = nucleus_pad(slide_layout(SIZE, SIZE, 2, BACH))
    near = ndimage.binary_dilation(lesion, iterations=pad)
    assert 0.05 < near.mean() < 0.5
    np.testing.assert_array_equal(bach_rgb[~near], binary_rgb[~near])


@pytest.mark.parametrize("config", [BACH, SynthConfig(classes="bach", label_noise=8.0)])
def test_four_class_tiles_are_seamless_and_a_pure_function_of_the_seed(config):
    x0, y0, w, h = 1180, 2050, 301, 207
    whole_rgb, whole_labels = render_tile(x0, y0, w, h, 2, config, (SIZE, SIZE))
    again_rgb, again_labels = render_tile(x0, y0, w, h, 2, config, (SIZE, SIZE))
    np.testing.assert_array_equal(whole_rgb, again_rgb)
    np.testing.assert_array_equal(whole_labels, again_labels)
    sx, sy = 117, 64
    for tx, tw in ((x0, sx), (x0 + sx, w - sx)):
        for ty, th in ((y0, sy), (y0 + sy, h - sy)):
            rgb, labels = render_tile(tx, ty, tw, th, 2, config, (SIZE, SIZE))
            window = np.s_[ty - y0 : ty - y0 + th, tx - x0 : tx - x0 + tw]
            np.testing.assert_array_equal(rgb, whole_rgb[window])
            np.testing.assert_array_equal(labels, whole_labels[window])
    other_rgb, _ = render_tile(x0, y0, w, h, 3, config, (SIZE, SIZE))
    assert not np.array_equal(other_rgb, whole_rgb)


def test_each_class_tells_itself_at_its_own_scale(bach):
    """Benign at downsample 16; in situ against a normal duct only at fine levels."""
    rgb, layers = bach
    k, n = 16, SIZE // 16

    def coarse_mean(where: np.ndarray) -> np.ndarray:
        full = where.reshape(n, k, n, k).all(axis=(1, 3))
        assert full.sum() > 100
        return rgb.astype(np.float32).reshape(n, k, n, k, 3).mean(axis=(1, 3))[full].mean(0)

    stroma = layers["tissue"] & (layers["mask"] == NORMAL) & ~layers["epithelium"]
    stroma &= (layers["tint"] < 0.01) & ~layers["mimic"]
    normal_duct = layers["epithelium"] & ~layers["benign"]
    in_situ = layers["in_situ"] & ~layers["rim"]
    reference = coarse_mean(stroma)
    benign_shift = np.abs(coarse_mean(layers["mask"] == BENIGN) - reference).max()
    duct_shift = np.abs(coarse_mean(in_situ) - coarse_mean(normal_duct)).max()
    assert duct_shift < 3 < 8 < benign_shift
    # Downsample 1: the in situ filling is crowded with larger nuclei than regular epithelium.
    nuclear = rgb[..., 0] < 160
    assert nuclear[in_situ].mean() > 1.2 * nuclear[normal_duct].mean()

    def median_nucleus_px(where: np.ndarray) -> float:
        labels, _ = ndimage.label(nuclear & where)
        return float(np.median(np.bincount(labels.ravel())[1:]))

    assert median_nucleus_px(in_situ) > 1.4 * median_nucleus_px(normal_duct)
    # Ducts of both kinds show their dark rim, which is what a coarse look can find.
    assert rgb[layers["rim"]][:, 0].mean() < reference[0] - 15


def test_cli_writes_a_four_class_dataset_with_its_class_names(tmp_path):
    out = tmp_path / "bach"
    result = CliRunner().invoke(
        main, ["synth", str(out), "--slides", "2", "--size", "1024x768", "--classes", "bach"]
    )
    assert result.exit_code == 0, result.output
    assert "classes 0 normal, 1 benign, 2 in_situ, 3 invasive" in result.output
    record = yaml.safe_load((out / "dataset.yaml").read_text(encoding="utf-8"))
    assert record["class_names"] == ["normal", "benign", "in_situ", "invasive"]
    assert record["class_colours"] == [list(c) for c in SynthConfig(classes="bach").class_colours]
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["classes"] == "bach"
    with tifffile.TiffFile(out / "masks" / "synth_000_mask.tiff") as tif:
        assert "0 = normal, 1 = benign, 2 = in_situ, 3 = invasive" in tif.pages[0].description
        assert set(np.unique(tif.pages[0].asarray())) <= {0, 1, 2, 3}


def test_an_unknown_class_set_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "x"), "--set", "classes=three"])
    assert result.exit_code != 0
    assert "classes" in result.output and "three" in result.output
