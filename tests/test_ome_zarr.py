"""OME-Zarr label images, read back with the reference reader (ome-zarr-py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr import io as ome_io
from ome_zarr import reader as ome_reader

from razn.errors import RaznError
from razn.outputs import ome_zarr as oz
from razn.outputs.ome_zarr import (
    NOT_DECIDED,
    mode_downsample,
    pyramid_shapes,
    read_decisions,
    write_label_image,
    write_level_map,
)

NAMES = ["background", "tumour", "stroma", "necrosis"]
COLOURS = [(0, 0, 0), (255, 0, 0), (0, 200, 0), (10, 20, 250)]
MPP = (0.25, 0.3)  # (x, y) µm per level-0 pixel


def reference_mode(level: np.ndarray) -> np.ndarray:
    """2×2 mode written the slow, obvious way: most frequent value of each block's real
    pixels, ties to the one met first in raster order."""
    h, w = level.shape
    out = np.zeros(((h + 1) // 2, (w + 1) // 2), level.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = level[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel().tolist()
            out[i, j] = max(block, key=lambda v, b=block: (b.count(v), -b.index(v)))
    return out


def blobby_labels(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Blocky classes with single-pixel noise, so that the mode has ties to break."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, len(NAMES), (height // 7 + 1, width // 7 + 1))
    labels = np.repeat(np.repeat(coarse, 7, 0), 7, 1)[:height, :width]
    noise = rng.random((height, width)) < 0.2
    labels[noise] = rng.integers(0, len(NAMES), int(noise.sum()))
    return labels.astype(np.uint8)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return blobby_labels(1031, 517)  # odd sizes: partial blocks at every level


@pytest.fixture(scope="module")
def reference_pyramid(labels: np.ndarray) -> list[np.ndarray]:
    levels = [labels]
    while max(levels[-1].shape) > 512:
        levels.append(reference_mode(levels[-1]))
    return levels


def read_node(path: Path):
    """The first node ome-zarr-py's reader finds at ``path``."""
    location = ome_io.parse_url(str(path))
    assert location is not None, f"ome-zarr cannot open {path}"
    nodes = list(ome_reader.Reader(location)())
    return location, nodes[0]


def test_mode_downsample_breaks_ties_in_raster_order() -> None:
    block = np.array([[1, 2, 5, 7, 3], [2, 1, 7, 9, 4]], np.uint8)
    assert mode_downsample(block).tolist() == [[1, 7, 3]]
    assert mode_downsample(np.array([[1, 2], [3, 4]], np.uint8)).tolist() == [[1]]
    assert mode_downsample(np.array([[4, 2], [2, 2]], np.uint8)).tolist() == [[2]]
    odd = np.array([[1, 1, 6], [2, 3, 6], [5, 5, 8]], np.uint8)
    assert mode_downsample(odd).tolist() == reference_mode(odd).tolist() == [[1, 6], [5, 8]]


def test_mode_downsample_of_one_class_keeps_shape_and_dtype() -> None:
    for shape in [(4, 6), (5, 3), (1, 1)]:
        block = np.full(shape, 3, np.uint8)
        out = mode_downsample(block)
        assert out.dtype == np.uint8 and out.shape == reference_mode(block).shape
        assert (out == 3).all()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_fill_windows_are_skipped_and_read_back_as_fill(
    tmp_path: Path, labels: np.ndarray, version: str
) -> None:
    # Rows 0-399 background: whole 64-row windows of level 0 and 1 are fill, so they are
    # neither written nor read for the level below, and every level still equals the
    # slow reference.
    glass = labels.copy()
    glass[:400] = 0
    path = write_label_image(
        tmp_path / "g.ome.zarr", glass, 1.0, MPP, NAMES, version=version, chunk=64
    )
    group = zarr.open_group(str(path), mode="r")
    expected = glass
    for k in range(3):
        assert np.array_equal(group[str(k)][:], expected), k
        expected = reference_mode(expected)
    assert group["0"].nchunks_initialized < group["0"].nchunks  # glass chunks not stored


def test_pyramid_shapes_halve_to_a_thumbnail() -> None:
    assert pyramid_shapes((1031, 517)) == [(1031, 517), (516, 259), (258, 130)]
    assert pyramid_shapes((300, 200)) == [(300, 200)]
    assert max(pyramid_shapes((100_000, 70_000))[-1]) <= 512


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_label_image_reads_back_with_ome_zarr(
    tmp_path: Path, labels: np.ndarray, reference_pyramid: list[np.ndarray], version: str
) -> None:
    path = write_label_image(
        tmp_path / "labels.ome.zarr", labels, 4.0, MPP, NAMES, COLOURS, version, chunk=128
    )
    location, node = read_node(path)
    assert location.version == version
    assert {type(s).__name__ for s in node.specs} == {"Label", "Multiscales"}
    assert node.metadata["axes"] == [
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert len(scales) == len(reference_pyramid) == 3
    for k, scale in enumerate(scales):
        assert scale == pytest.approx([0.3 * 4 * 2**k, 0.25 * 4 * 2**k])
    assert node.metadata["properties"] == {v: {"name": n} for v, n in enumerate(NAMES)}
    colours = {v: [round(c * 255) for c in rgba] for v, rgba in node.metadata["color"].items()}
    assert colours == {
        0: [0, 0, 0, 0],
        1: [255, 0, 0, 255],
        2: [0, 200, 0, 255],
        3: [10, 20, 250, 255],
    }
    for level, expected in zip(node.data, reference_pyramid, strict=True):
        got = np.asarray(level)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


def test_zarr_formats_and_versions(tmp_path: Path, labels: np.ndarray) -> None:
    v04 = write_label_image(tmp_path / "a.ome.zarr", labels, 2.0, MPP, NAMES)
    attrs = json.loads((v04 / ".zattrs").read_text())
    assert (v04 / ".zgroup").is_file() and not (v04 / "zarr.json").exists()
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert attrs["image-label"]["version"] == "0.4"
    assert json.loads((v04 / "0" / ".zarray").read_text())["dimension_separator"] == "/"
    assert attrs["razn"]["output_downsample"] == 2.0 and attrs["razn"]["mpp"] == [0.25, 0.3]

    v05 = write_label_image(tmp_path / "b.ome.zarr", labels, 2.0, MPP, NAMES, version="0.5")
    meta = json.loads((v05 / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    assert meta["attributes"]["ome"]["version"] == "0.5"
    assert "version" not in meta["attributes"]["ome"]["multiscales"][0]
    array_meta = json.loads((v05 / "0" / "zarr.json").read_text())
    assert array_meta["dimension_names"] == ["y", "x"]
    with pytest.raises(RaznError, match="NGFF version"):
        write_label_image(tmp_path / "c.ome.zarr", labels, 2.0, MPP, NAMES, version="0.6")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_models_validate(tmp_path: Path, labels: np.ndarray, version: str) -> None:
    import ome_zarr_models as models

    path = write_label_image(tmp_path / "l.ome.zarr", labels, 2.0, MPP, NAMES, version=version)
    group = models.open_ome_zarr(zarr.open_group(str(path), mode="r"), version=version)
    assert type(group).__name__ == "ImageLabel"


def test_without_mpp_scales_are_level0_pixels(tmp_path: Path, labels: np.ndarray) -> None:
    path = write_label_image(tmp_path / "l.ome.zarr", labels, 4.0, None, NAMES)
    _, node = read_node(path)
    assert node.metadata["axes"] == [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[4.0, 4.0], [8.0, 8.0], [16.0, 16.0]]


def test_source_image_only_when_nested(tmp_path: Path, labels: np.ndarray) -> None:
    alone = write_label_image(tmp_path / "a.ome.zarr", labels, 1.0, MPP, NAMES)
    assert "source" not in json.loads((alone / ".zattrs").read_text())["image-label"]
    nested = write_label_image(
        tmp_path / "b.ome.zarr", labels, 1.0, MPP, NAMES, source_image="../../"
    )
    image_label = json.loads((nested / ".zattrs").read_text())["image-label"]
    assert image_label["source"] == {"image": "../../"}


class CountingArray:
    """A label source that records the largest window asked of it."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.largest = data, data.shape, data.dtype, 0

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        block = self.data[key]
        self.largest = max(self.largest, block.size)
        return block


def test_built_window_by_window_from_a_zarr_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels: np.ndarray,
    reference_pyramid: list[np.ndarray],
) -> None:  # fmt: skip
    monkeypatch.setattr(oz, "WINDOW_PIXELS", 64 * 64 * 3)
    source = zarr.create_array(
        store=str(tmp_path / "src.zarr"), shape=labels.shape, chunks=(100, 100), dtype="uint8"
    )
    source[:] = labels
    counting = CountingArray(source)
    path = write_label_image(tmp_path / "l.ome.zarr", counting, 2.0, MPP, NAMES, chunk=64)
    assert counting.largest <= 64 * 64 * 3  # never the whole level
    group = zarr.open_group(str(path), mode="r")
    assert group["0"].chunks == (64, 64)
    for k, expected in enumerate(reference_pyramid):
        np.testing.assert_array_equal(group[str(k)][:], expected)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(("chunk", "tile_levels"), [(64, 1), (32, 2)])
def test_levels_built_from_level_0_tiles_in_memory_equal_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels: np.ndarray,
    reference_pyramid: list[np.ndarray], version: str, chunk: int, tile_levels: int,
) -> None:  # fmt: skip
    # Tiles of 128² px: levels 1 … tile_levels are downsampled from each tile in memory
    # (partial tiles at the right and bottom edges, odd sizes), the rest from the level
    # above; every chunk is stored by razn's own writer and read back through zarr.
    monkeypatch.setattr(oz, "WINDOW_PIXELS", 128 * 128)
    assert oz._tile_side(chunk) == chunk << tile_levels
    noisy = labels.copy()
    noisy[:130, :130] = 0  # a tile and more of fill: chunks left unstored
    expected = [noisy]
    while len(expected) < len(reference_pyramid):
        expected.append(reference_mode(expected[-1]))
    path = write_label_image(
        tmp_path / "t.ome.zarr", noisy, 1.0, MPP, NAMES, version=version, chunk=chunk
    )
    group = zarr.open_group(str(path), mode="r")
    assert len(list(group.array_keys())) == len(expected)
    for k, level in enumerate(expected):
        np.testing.assert_array_equal(group[str(k)][:], level, err_msg=f"level {k}")
    glass_chunks = (128 // chunk) ** 2  # the chunks inside rows and columns 0-129
    assert group["0"].nchunks_initialized == group["0"].nchunks - glass_chunks
    _, node = read_node(path)
    np.testing.assert_array_equal(np.asarray(node.data[0]), noisy)


def test_mode_downsample_matches_the_reference_on_mixed_blocks() -> None:
    rng = np.random.default_rng(3)
    for shape in [(2, 2), (7, 5), (64, 63)]:
        block = rng.integers(0, 4, shape).astype(np.uint8)
        block[: shape[0] // 2] = 2  # uniform blocks beside mixed ones
        assert mode_downsample(block).tolist() == reference_mode(block).tolist(), shape


def test_labels_must_be_uint8_compatible(tmp_path: Path) -> None:
    wide = np.full((10, 10), 300, np.int32)
    with pytest.raises(RaznError, match="0-255"):
        write_label_image(tmp_path / "l.ome.zarr", wide, 1.0, None, NAMES)
    small = np.ones((10, 10), np.int64)
    path = write_label_image(tmp_path / "m.ome.zarr", small, 1.0, None, NAMES)
    assert zarr.open_group(str(path), mode="r")["0"].dtype == np.uint8


# Zoom map geometry: patch 4, working downsamples 4, 2, 1 -> extents 16, 8, 4 level-0 px.
PATCH, DOWNSAMPLES, DIMENSIONS = 4, [4.0, 2.0, 1.0], (40, 26)
DECISIONS = [
    (0, 0, 0, 0, 0, "break", 0.1),
    (0, 1, 0, 16, 0, "zoom", 0.9),
    (1, 2, 0, 16, 0, "break", 0.2),
    (1, 3, 0, 24, 0, "break", 0.2),
    (1, 2, 1, 16, 8, "break", 0.3),
    (1, 3, 1, 24, 8, "zoom", 0.8),
    (2, 6, 2, 24, 8, "break", 0.1),
    (2, 7, 2, 28, 8, "break", 0.1),
    (2, 6, 3, 24, 12, "break", 0.1),
    (2, 7, 3, 28, 12, "empty", 0.0),
    (0, 0, 1, 0, 16, "break", 0.1),  # runs past the slide's bottom edge
]


def expected_level_map(downsample: float) -> np.ndarray:
    """Paint the breaks at level 0, then take the pixel under each output pixel's centre."""
    level0 = np.full((DIMENSIONS[1], DIMENSIONS[0]), NOT_DECIDED, np.uint8)
    for level, _c, _r, x, y, action, _p in DECISIONS:
        if action == "break":
            extent = int(PATCH * DOWNSAMPLES[level])
            level0[y : y + extent, x : x + extent] = level
    height = int(np.ceil(DIMENSIONS[1] / downsample))
    width = int(np.ceil(DIMENSIONS[0] / downsample))
    rows = np.minimum(((np.arange(height) + 0.5) * downsample).astype(int), DIMENSIONS[1] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * downsample).astype(int), DIMENSIONS[0] - 1)
    return level0[np.ix_(rows, cols)]


@pytest.mark.parametrize("downsample", [1.0, 2.0])
def test_level_map_paints_break_squares(tmp_path: Path, downsample: float) -> None:
    path = write_level_map(
        tmp_path / "zoom_levels.ome.zarr", DECISIONS, DIMENSIONS, downsample, PATCH,
        DOWNSAMPLES, MPP, chunk=8,
    )  # fmt: skip
    _, node = read_node(path)
    got = np.asarray(node.data[0])
    np.testing.assert_array_equal(got, expected_level_map(downsample))
    assert got[0, 0] == 0 and got[int(9 / downsample), int(25 / downsample)] == 2
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == pytest.approx([0.3 * downsample, 0.25 * downsample])
    names = {v: p["name"] for v, p in node.metadata["properties"].items()}
    assert names == {0: "level 0 (downsample 4)", 1: "level 1 (downsample 2)",
                     2: "level 2 (downsample 1)", NOT_DECIDED: "not decided"}  # fmt: skip
    assert node.metadata["color"][NOT_DECIDED] == [0, 0, 0, 0]


def test_level_map_from_csv_matches_rows(tmp_path: Path) -> None:
    csv_path = tmp_path / "decisions.csv"
    lines = ["level,col,row,x,y,action,zoom_probability"]
    lines += [f"{lv},{c},{r},{x},{y},{a},{p:.6f}" for lv, c, r, x, y, a, p in DECISIONS]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert list(read_decisions(csv_path)) == DECISIONS
    path = write_level_map(
        tmp_path / "z.ome.zarr", read_decisions(csv_path), DIMENSIONS, 2.0, PATCH, DOWNSAMPLES,
        None, version="0.5", chunk=4,
    )  # fmt: skip
    np.testing.assert_array_equal(zarr.open_group(str(path))["0"][:], expected_level_map(2.0))


def test_level_map_rejects_unknown_levels(tmp_path: Path) -> None:
    rows = [(5, 0, 0, 0, 0, "break", 0.1)]
    with pytest.raises(RaznError, match="levels"):
        write_level_map(tmp_path / "z.ome.zarr", rows, DIMENSIONS, 1.0, PATCH, DOWNSAMPLES, None)


def test_level_map_of_a_big_slide_stays_sparse(tmp_path: Path) -> None:
    """A 4,000² zoom map with one break: chunks that are all 'not decided' are not stored."""
    rows = [(0, 0, 0, 16_000, 16_000, "break", 0.1)]
    path = write_level_map(
        tmp_path / "z.ome.zarr", rows, (32_000, 32_000), 8.0, 256, [16.0, 8.0], None
    )
    group = zarr.open_group(str(path), mode="r")
    assert group["0"].shape == (4000, 4000)
    assert group["0"][2000, 2000] == 0 and group["0"][1999, 1999] == NOT_DECIDED
    assert group["0"].nchunks_initialized <= 4
