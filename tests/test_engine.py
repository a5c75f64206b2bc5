"""The zoom engine: exact stitching, baselines as deciders, odd sizes and pyramids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import zarr
from conftest import write_tiff_pyramid
from torch import nn

from razn.config import load_config
from razn.engine import EngineConfig, FixedLevel, ZoomEngine
from razn.run_config import RunConfig
from razn.slide import ArraySlide, open_slide
from razn.slide.tissue import TissueMask


class ColourSegmenter(nn.Module):
    """Class 1 wherever the red channel is below 128, else 0: exact and resolution-free."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        dark = (patches[:, 0:1].float() < 128).float()
        return torch.cat([1 - dark, dark], dim=1) * 10.0


class ConstantSegmenter(ColourSegmenter):
    """Predicts ``value`` everywhere."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        n, _, h, w = patches.shape
        logits = torch.zeros(n, 2, h, w)
        logits[:, self.value] = 10.0
        return logits


@dataclass
class Always:
    """Zooms everything (with observations, like a policy would)."""

    zoom: bool
    observes: str = "image"
    name: str = "always"

    def decide(self, level, nodes, observations):
        count = len(nodes)
        assert observations is not None and observations["image"].shape[0] == count
        assert ("seg" in observations) == (self.observes == "segmentation")
        return np.full(count, self.zoom), np.full(count, float(self.zoom), np.float32)


def config_for(patch: int = 16, downsamples=(4, 2, 1)) -> RunConfig:
    return load_config(
        RunConfig,
        None,
        [
            f"levels.downsamples={list(downsamples)}",
            f"levels.patch_size={patch}",
            "observation.size=36",
        ],
    )


def full_tissue(dimensions, downsample=4.0) -> TissueMask:
    w, h = dimensions
    return TissueMask(
        np.ones((int(np.ceil(h / downsample)), int(np.ceil(w / downsample))), bool), downsample, 0
    )


def blob_image(width: int, height: int) -> np.ndarray:
    """White with a dark disc and a dark 1-px line: class 1 where red < 128."""
    image = np.full((height, width, 3), 230, np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    image[(x - width * 0.4) ** 2 + (y - height * 0.5) ** 2 < (min(width, height) * 0.3) ** 2] = (
        60,
        40,
        90,
    )
    image[:, width - 3] = (50, 50, 50)
    return image


def run(engine: ZoomEngine, slide, tmp_path, name, tissue=None):
    result = engine.segment(
        slide, tmp_path / f"{name}.zarr", tissue=tissue or full_tissue(slide.dimensions)
    )
    return np.asarray(zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="r")[:]), result


@pytest.mark.parametrize("observes", ["image", "segmentation"])
def test_always_zoom_equals_cip_and_never_zoom_equals_ud(tmp_path, observes):
    image = blob_image(203, 150)  # not a multiple of the 64 px root
    slide = ArraySlide([image])
    config = config_for()
    models = [ColourSegmenter() for _ in range(3)]
    always = Always(True, observes)
    zoomed, r_zoom = run(ZoomEngine(models, always, config), slide, tmp_path, "z")
    cip, r_cip = run(ZoomEngine(models, FixedLevel(2, name="cip"), config), slide, tmp_path, "cip")
    never, r_never = run(ZoomEngine(models, Always(False, observes), config), slide, tmp_path, "n")
    ud, r_ud = run(ZoomEngine(models, FixedLevel(0, name="ud"), config), slide, tmp_path, "ud")
    np.testing.assert_array_equal(zoomed, cip)
    np.testing.assert_array_equal(never, ud)
    # At full resolution the colour segmenter is exact: cip is the truth.
    np.testing.assert_array_equal(cip, (image[..., 0] < 128).astype(np.uint8))
    assert not np.array_equal(cip, ud)  # the 1-px line is lost at downsample 4
    # Patches holding some of the 203x150 slide: ceil(203 / s) x ceil(150 / s) per extent s;
    # children wholly outside the slide hold no tissue and are never read.
    assert r_ud.patches == r_never.patches == [4 * 3, 0, 0]
    assert r_cip.patches == [0, 0, 13 * 10]
    assert r_cip.level0_pixels_read == 13 * 10 * 16 * 16
    assert r_zoom.zoomed == [4 * 3, 7 * 5, 0]
    if observes == "image":  # decided before f_i: a zoomed node is never segmented
        assert r_zoom.patches == r_cip.patches
    else:  # f_i segments every node before the decider sees it
        assert r_zoom.patches == [4 * 3, 7 * 5, 13 * 10]


def test_constant_segmenter_gives_exactly_the_tissue_mask(tmp_path):
    slide = ArraySlide([np.full((150, 203, 3), 200, np.uint8)])
    tissue_mask = np.zeros((38, 51), bool)  # at downsample 4
    tissue_mask[5:30, 10:45] = True
    tissue = TissueMask(tissue_mask, 4.0, 0)
    models = [ConstantSegmenter(1) for _ in range(3)]
    for name, decider in [("ud", FixedLevel(0)), ("cip", FixedLevel(2)), ("mid", FixedLevel(1))]:
        labels, result = run(
            ZoomEngine(models, decider, config_for()), slide, tmp_path, name, tissue
        )
        expected = np.repeat(np.repeat(tissue_mask, 4, axis=0), 4, axis=1)[:150, :203]
        np.testing.assert_array_equal(labels, expected.astype(np.uint8))
        actions = {row[5] for row in result.decisions.rows}
        assert "empty" in actions  # roots without tissue are never read


@pytest.mark.parametrize("observes", ["image", "segmentation"])
def test_every_area_is_decided_once_under_a_mixed_policy(tmp_path, observes):
    slide = ArraySlide([blob_image(203, 150)])
    models = [ColourSegmenter() for _ in range(3)]

    @dataclass
    class Checkerboard:
        observes: str
        name: str = "checker"
        calls: int = 0

        def decide(self, level, nodes, observations):
            self.calls += 1
            zoom = (np.arange(len(nodes)) + level) % 2 == 0
            return zoom, zoom.astype(np.float32)

    decider = Checkerboard(observes)
    labels, result = run(ZoomEngine(models, decider, config_for()), slide, tmp_path, "mixed")
    coverage = np.zeros((150, 203), int)
    breaks = [0, 0, 0]
    for level, _col, _row, x, y, action, _ in result.decisions.rows:
        if action == "break":
            extent = 16 * (4, 2, 1)[level]
            coverage[y : y + extent, x : x + extent] += 1
            breaks[level] += 1
    assert (coverage == 1).all()
    assert labels.shape == (150, 203)
    assert breaks[0] > 0 and result.zoomed[0] > 0
    if observes == "image":  # f_i runs exactly on the breaks
        assert result.patches == breaks
    else:  # and on the zooms too when the decider needs its output
        assert result.patches == [b + z for b, z in zip(breaks, result.zoomed, strict=True)]


def test_non_power_of_two_pyramid_and_output_resolution(tmp_path):
    image = blob_image(300, 250)
    levels = [image, image[::2, ::2], np.ascontiguousarray(image[::4, ::4][:, :75][:62])]
    path = write_tiff_pyramid(tmp_path / "odd.tiff", levels)
    with open_slide(path) as slide:
        assert slide.level_downsamples[2] == pytest.approx(4.0161, rel=1e-4)
        config = config_for()
        models = [ColourSegmenter() for _ in range(3)]
        engine = ZoomEngine(models, FixedLevel(0), config, EngineConfig(output_downsample=2))
        labels, _ = run(engine, slide, tmp_path, "odd")
    assert labels.shape == (125, 150)  # ceil(250 / 2) x ceil(300 / 2)


def test_a_policy_set_may_observe_f_i_at_its_last_level_only(tmp_path):
    slide = ArraySlide([blob_image(203, 150)])
    models = [ColourSegmenter() for _ in range(3)]

    @dataclass
    class Mixed:
        observes: str = "per level"
        observes_by_level: dict = None  # type: ignore[assignment]
        name: str = "mixed"

        def decide(self, level, nodes, observations):
            assert ("seg" in observations) == (level == 1)
            return np.ones(len(nodes), bool), np.ones(len(nodes), np.float32)

    decider = Mixed(observes_by_level={0: "image", 1: "segmentation"})
    _, result = run(ZoomEngine(models, decider, config_for()), slide, tmp_path, "mixed")
    # level 0 zooms without f_0; level 1 is segmented before it zooms; level 2 breaks
    assert result.patches == [0, 7 * 5, 13 * 10] and result.zoomed == [12, 35, 0]


class BoxSegmenter(ColourSegmenter):
    """Class 1 where the 5 × 5 mean of the red channel is below 128: each label depends on
    its neighbours, so a patch segmented alone is wrong near its borders."""

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        red = patches[:, 0:1].float()
        mean = nn.functional.avg_pool2d(red, 5, stride=1, padding=2, count_include_pad=False)
        dark = (mean < 128).float()
        return torch.cat([1 - dark, dark], dim=1) * 10.0


def test_overlap_tiles_give_the_labels_of_the_whole_image_at_once(tmp_path):
    image = blob_image(203, 150)
    image[::7, :, 0] = 0  # thin dark rows: the 5 × 5 mean is near 128 along many borders
    slide = ArraySlide([image])
    config = config_for()
    cip = FixedLevel(2, name="cip")
    # the network run once over the whole slide (white beyond it, as the reader reads)
    padded = np.pad(image, ((8, 8), (8, 8), (0, 0)), constant_values=255)
    whole = BoxSegmenter()(torch.from_numpy(padded).permute(2, 0, 1)[None])
    expected = whole.argmax(1)[0, 8:-8, 8:-8].numpy().astype(np.uint8)
    models = [BoxSegmenter() for _ in range(3)]
    tiled, _ = run(ZoomEngine(models, cip, config), slide, tmp_path, "tiled")
    overlapped, result = run(
        ZoomEngine(models, cip, config, EngineConfig(overlap=8)), slide, tmp_path, "overlap"
    )
    np.testing.assert_array_equal(overlapped, expected)  # no seams
    assert (tiled != expected).sum() > 0  # patches alone are wrong at their borders
    assert result.patches == [0, 0, 130]  # same patches: only their inputs grew
    # a per-pixel network gives the same labels with and without margins: the centre is kept
    exact = [ColourSegmenter() for _ in range(3)]
    plain, _ = run(ZoomEngine(exact, cip, config), slide, tmp_path, "plain")
    margin, _ = run(ZoomEngine(exact, cip, config, EngineConfig(overlap=16)), slide, tmp_path, "m")
    np.testing.assert_array_equal(plain, margin)


def test_an_overlap_the_network_cannot_take_is_a_one_line_error():
    from razn.errors import ConfigError

    models = [ColourSegmenter() for _ in range(3)]
    with pytest.raises(
        ConfigError, match=r"16 \+ 2 × 4 = 24 is not; use a non-negative multiple of 8"
    ):
        ZoomEngine(models, FixedLevel(2), config_for(), EngineConfig(overlap=4))
    with pytest.raises(ConfigError, match=r"engine\.overlap"):
        EngineConfig(overlap=-1)


class ShapeRecorder(nn.Module):
    """A BoxSegmenter that records the side of every input it is given."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.sides: set[int] = set()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        self.sides.add(int(patches.shape[-1]))
        return BoxSegmenter()(patches)


def test_a_level_trained_with_context_is_run_with_it(tmp_path):
    # levels.context gives each level its own margin (the finest 8 px here): the finest
    # level is segmented on 32-px inputs and keeps their centres, so its labels are the
    # whole image's, as with an engine overlap of 8 at every level.
    image = blob_image(203, 150)
    image[::7, :, 0] = 0
    slide = ArraySlide([image])
    config = load_config(
        RunConfig, None,
        ["levels.downsamples=[4, 2, 1]", "levels.patch_size=16", "observation.size=36",
         "levels.context=[0, 0, 8]"],
    )  # fmt: skip
    assert [config.levels.margin(level) for level in range(3)] == [0, 0, 8]
    models = [ShapeRecorder() for _ in range(3)]
    cip = FixedLevel(2, name="cip")
    engine = ZoomEngine(models, cip, config)
    assert engine.margins == (0, 0, 8) and engine.input_size(2) == 32
    labels, result = run(engine, slide, tmp_path, "context")
    assert models[2].sides == {32} and result.patches == [0, 0, 130]
    everywhere = ZoomEngine(
        [BoxSegmenter() for _ in range(3)], cip, config_for(), EngineConfig(overlap=8)
    )
    expected, _ = run(everywhere, slide, tmp_path, "overlap")
    np.testing.assert_array_equal(labels, expected)
    # an engine overlap larger than a level's context wins there
    assert ZoomEngine(models, cip, config, EngineConfig(overlap=16)).margins == (16, 16, 16)
