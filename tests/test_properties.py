"""Property tests (hypothesis) of the zoom lattice: level mapping, patch grids, zoom children
and stitching, on arbitrary slide sizes, patch sizes, zoom rates and non-power-of-two
downsamples. Each test is bounded by ``max_examples`` so the file runs in a few seconds."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from razn.engine.stitch import LabelWriter
from razn.errors import RaznError, SlideError
from razn.geometry import Node, ZoomGeometry
from razn.slide.array_backend import ArraySlide
from razn.slide.levels import DEFAULT_REL_TOL, level_size, plan_level, read_at_downsample
from razn.slide.tissue import TissueMask

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def geometries(draw: st.DrawFn, max_levels: int = 3) -> ZoomGeometry:
    """Working levels ``finest · r^k`` (finest 1…6, so 3, 5, 6, 9, 15 … occur) and a patch size."""
    rate = draw(st.integers(2, 4))
    levels = draw(st.integers(1, max_levels))
    finest = draw(st.integers(1, 6))
    patch = draw(st.integers(1, 12))
    downsamples = tuple(finest * rate ** (levels - 1 - i) for i in range(levels))
    return ZoomGeometry(downsamples, patch)


sizes = st.tuples(st.integers(1, 240), st.integers(1, 240))


def final_nodes(
    geometry: ZoomGeometry,
    dimensions: tuple[int, int],
    seed: int,
    tissue: TissueMask | None = None,
) -> list[Node]:
    """The nodes a zoom run decides (breaks and the finest level), with random zooms and,
    like the engine, nodes without tissue dropped unread."""
    rng = np.random.default_rng(seed)
    frontier, final = list(geometry.roots(dimensions)), []
    while frontier:
        node = frontier.pop()
        extent = geometry.extent(node.level)
        if (
            tissue is not None
            and tissue.fraction_in(geometry.location(node), (extent, extent)) == 0
        ):
            continue
        if node.level < geometry.finest_level and rng.random() < 0.6:
            frontier.extend(geometry.children(node))
        else:
            final.append(node)
    return final


# --- level mapping ---------------------------------------------------------------------


native_pyramids = st.lists(st.floats(1.01, 70.0), max_size=5).map(
    lambda ds: (1.0, *sorted(set(ds)))
)


@FAST
@given(natives=native_pyramids, downsample=st.floats(1.0, 100.0))
def test_a_working_level_is_read_from_the_coarsest_native_level_not_coarser_than_it(
    natives, downsample
):
    plan = plan_level(natives, downsample)
    assert plan.native_downsample <= downsample * (1 + DEFAULT_REL_TOL)
    coarser = [d for d in natives if d > plan.native_downsample]
    assert all(d > downsample * (1 + DEFAULT_REL_TOL) for d in coarser)
    assert plan.exact == (abs(plan.native_downsample / downsample - 1) <= DEFAULT_REL_TOL)
    assert plan.scale >= 1 - DEFAULT_REL_TOL


@FAST
@given(downsample=st.floats(0.0, 0.99))
def test_upsampling_is_refused(downsample):
    with pytest.raises(SlideError, match="no upsampling"):
        plan_level((1.0, 2.0), downsample)


@FAST
@given(dimensions=sizes, downsample=st.floats(1.0, 50.0))
def test_level_size_covers_the_slide_with_no_spare_pixel(dimensions, downsample):
    for side, n in zip(dimensions, level_size(dimensions, downsample), strict=True):
        assert n >= 1
        assert n * downsample >= side - 1e-6
        assert (n - 1) * downsample < side


@FAST
@given(
    dimensions=st.tuples(st.integers(8, 120), st.integers(8, 120)),
    factors=st.lists(st.floats(1.3, 5.0), min_size=1, max_size=3),
    downsample=st.floats(1.0, 12.0),
    colour=st.integers(0, 254),
    location=st.tuples(st.integers(0, 60), st.integers(0, 60)),
    size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
)
def test_reads_at_any_downsample_of_a_non_power_of_two_pyramid(
    dimensions, factors, downsample, colour, location, size
):
    width, height = dimensions
    levels, scale = [np.full((height, width, 3), colour, np.uint8)], 1.0
    for factor in factors:
        scale *= factor
        w, h = max(1, math.ceil(width / scale)), max(1, math.ceil(height / scale))
        levels.append(np.full((h, w, 3), colour, np.uint8))
    slide = ArraySlide(levels)
    region = read_at_downsample(slide, location, downsample, size)
    assert region.shape == (size[1], size[0], 3)
    # Pixels wholly inside the slide keep a uniform slide's colour through any resize.
    inside_w = int((width - location[0]) // downsample) - 1
    inside_h = int((height - location[1]) // downsample) - 1
    if inside_w > 0 and inside_h > 0:
        assert (region[:inside_h, :inside_w] == colour).all()


# --- patch grids and zoom children -------------------------------------------------------


@FAST
@given(geometry=geometries(), dimensions=sizes)
def test_the_root_grid_covers_the_slide_and_starts_at_the_origin(geometry, dimensions):
    cols, rows = geometry.grid_shape(dimensions)
    extent = geometry.extent(0)
    assert (cols - 1) * extent < dimensions[0] <= cols * extent
    assert (rows - 1) * extent < dimensions[1] <= rows * extent
    assert len(list(geometry.roots(dimensions))) == cols * rows


@FAST
@given(geometry=geometries(), col=st.integers(0, 50), row=st.integers(0, 50))
def test_children_tile_their_parent_exactly(geometry, col, row):
    for level in range(geometry.finest_level):
        node = Node(level, col, row)
        extent, child_extent = geometry.extent(level), geometry.extent(level + 1)
        assert extent == geometry.rate * child_extent
        children = geometry.children(node)
        assert len(children) == geometry.rate**2 == len(set(children))
        x, y = geometry.location(node)
        covered = np.zeros((extent, extent), np.int32)
        for child in children:
            assert geometry.parent(child) == node
            cx, cy = geometry.location(child)
            covered[cy - y : cy - y + child_extent, cx - x : cx - x + child_extent] += 1
        assert (covered == 1).all()


@FAST
@given(
    geometry=geometries(),
    dimensions=sizes,
    seed=st.integers(0, 2**32 - 1),
    tissue_downsample=st.sampled_from([1.0, 2.0, 3.0, 2.5, 7.0]),
    density=st.floats(0.0, 1.0),
)
def test_every_tissue_pixel_is_decided_exactly_once(
    geometry, dimensions, seed, tissue_downsample, density
):
    width, height = dimensions
    rng = np.random.default_rng(seed)
    mask_w, mask_h = level_size(dimensions, tissue_downsample)
    tissue = TissueMask(rng.random((mask_h, mask_w)) < density, tissue_downsample, 0.0)
    coverage = np.zeros((height, width), np.int32)
    for node in final_nodes(geometry, dimensions, seed, tissue):
        x0, y0, x1, y1 = geometry.clipped_box(node, dimensions)
        coverage[y0:y1, x0:x1] += 1
    assert coverage.max() <= 1  # nothing is decided twice
    ys, xs = np.nonzero(tissue.mask)
    for y, x in zip(ys, xs, strict=True):
        top, left = math.floor(y * tissue_downsample), math.floor(x * tissue_downsample)
        bottom = min(math.ceil((y + 1) * tissue_downsample), height)
        right = min(math.ceil((x + 1) * tissue_downsample), width)
        assert (coverage[top:bottom, left:right] == 1).all(), (x, y)


# --- stitching ---------------------------------------------------------------------------


def output_downsamples(geometry: ZoomGeometry) -> list[float]:
    """Output resolutions at which the finest patch is a whole number of pixels."""
    finest, patch = geometry.downsamples[-1], geometry.patch_size
    coarser = [finest * q for q in range(2, patch + 1) if patch % q == 0]
    finer = [finest / j for j in range(2, int(finest) + 1) if finest % j == 0]
    return [finest, *coarser, *finer]


def on_lattice(geometry: ZoomGeometry, downsample: float) -> bool:
    """Whether every working level is an integer multiple or an integer fraction of it."""
    for d in geometry.downsamples:
        ratio = d / downsample
        value = ratio if ratio >= 1 else 1 / ratio
        if abs(value - round(value)) > 1e-9:
            return False
    return True


def expected_labels(
    geometry: ZoomGeometry,
    dimensions: tuple[int, int],
    downsample: float,
    patches: dict[Node, np.ndarray],
) -> np.ndarray:
    """The stitched image computed pixel by pixel: each output pixel takes the label under
    its sample point (its top-left corner, or the centre pixel of a coarser output pixel)."""
    width, height = level_size(dimensions, downsample)
    out = np.zeros((height, width), np.uint8)
    for node, labels in patches.items():
        d = geometry.downsamples[node.level]
        q = round(downsample / d) if downsample > d else 1
        x, y, extent = *geometry.location(node), geometry.extent(node.level)
        # output pixels whose level-0 corner lies in the node's square
        ox = np.arange(
            math.ceil(x / downsample - 1e-9), math.ceil((x + extent) / downsample - 1e-9)
        )
        oy = np.arange(
            math.ceil(y / downsample - 1e-9), math.ceil((y + extent) / downsample - 1e-9)
        )
        ox, oy = ox[ox < width], oy[oy < height]
        px = np.floor((ox * downsample - x) / d + 1e-9).astype(int) + q // 2
        py = np.floor((oy * downsample - y) / d + 1e-9).astype(int) + q // 2
        out[np.ix_(oy, ox)] = labels[np.ix_(py, px)]
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    geometry=geometries(max_levels=3),
    dimensions=st.tuples(st.integers(1, 90), st.integers(1, 90)),
    seed=st.integers(0, 2**32 - 1),
    pick=st.integers(0, 100),
)
def test_stitching_is_exact_at_every_edge(geometry, dimensions, seed, pick):
    candidates = output_downsamples(geometry)
    downsample = candidates[pick % len(candidates)]
    rng = np.random.default_rng(seed)
    size = geometry.patch_size
    patches = {
        node: rng.integers(1, 255, (size, size), dtype=np.uint8)
        for node in final_nodes(geometry, dimensions, seed)
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "labels.zarr"
        if not on_lattice(geometry, downsample):
            with pytest.raises(RaznError, match="output downsample"):
                LabelWriter(path, geometry, dimensions, downsample)
            return
        # a buffer of about one root: canvases are written early and merged back later
        writer = LabelWriter(path, geometry, dimensions, downsample, buffer_bytes=1 + seed % 3)
        for node, labels in patches.items():
            writer.write(node, labels)
        writer.close()
        stitched = np.asarray(writer.array[:])
    assert stitched.shape == level_size(dimensions, downsample)[::-1]
    np.testing.assert_array_equal(
        stitched, expected_labels(geometry, dimensions, downsample, patches)
    )
    assert writer.pixels_written == stitched.size  # every output pixel written exactly once
