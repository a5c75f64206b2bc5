"""Open a mask file as a list of lazily read 2-D integer arrays, finest level first.

One small opener per format, chosen by the file's first bytes (not its name):

* TIFF, plain or pyramidal (tifffile, opened as zarr: only the tiles a read touches
  are decoded; tiles missing from a sparse TIFF read as 0);
* PNG and other Pillow formats (loaded whole: use TIFF or zarr for large masks);
* zarr: a 2-D array, or a group holding a pyramid ``'0', '1', …`` (the order of an
  OME-Zarr ``multiscales`` entry when there is one).

Every failure becomes a one-line :class:`~razn.errors.MaskError` naming the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from razn.errors import MaskError, RaznError

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# PIL modes that hold one integer value per pixel ("P" holds palette indices: the labels).
_PIL_LABEL_MODES = {"1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True)
class LevelArray:
    """One level of a mask: a 2-D view on an array that may have singleton extra axes.

    Attributes:
        data: a numpy or zarr array.
        index: the full index of the 2-D plane, with ``slice(None)`` on the y and x
            axes and ``0`` on singleton axes (e.g. ``(0, slice(None), slice(None))``).
    """

    data: Any
    index: tuple[int | slice, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """``(h, w)`` in pixels of this level."""
        ys, xs = (
            n for n, i in zip(self.data.shape, self.index, strict=True) if isinstance(i, slice)
        )
        return int(ys), int(xs)

    @property
    def chunks(self) -> tuple[int, int]:
        """``(h, w)`` of a storage chunk (the whole plane for in-memory arrays)."""
        chunks = getattr(self.data, "chunks", None)
        if chunks is None:
            return self.shape
        ys, xs = (n for n, i in zip(chunks, self.index, strict=True) if isinstance(i, slice))
        return int(ys), int(xs)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    def block(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The rectangle ``[y0:y1, x0:x1]`` as a numpy array."""
        return np.asarray(self.data[self._plane(slice(y0, y1), slice(x0, x1))])

    def take(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Orthogonal selection ``[rows][:, cols]``; both sorted, unique, in range."""
        if rows.size == 0 or cols.size == 0:
            return np.zeros((rows.size, cols.size), self.dtype)
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        # A dense window is read as one slice (fast); a sparse one by orthogonal
        # indexing so that a coarse read of a huge level never loads the window whole.
        if (y1 - y0) * (x1 - x0) <= 4 * rows.size * cols.size or isinstance(self.data, np.ndarray):
            return self.block(y0, y1, x0, x1)[np.ix_(rows - y0, cols - x0)]
        return np.asarray(self.data.oindex[self._plane(rows, cols)])

    def _plane(self, ys: Any, xs: Any) -> tuple[Any, ...]:
        it = iter((ys, xs))
        return tuple(next(it) if isinstance(i, slice) else 0 for i in self.index)


def open_levels(path: Path) -> tuple[list[LevelArray], Callable[[], None]]:
    """Open ``path`` as mask levels (finest first) and a function that closes the file."""
    kind = _sniff(path)
    with reading(path, "open"):
        if kind == "zarr":
            return _open_zarr(path), _noop
        if kind == "tiff":
            return _open_tiff(path)
        return [_open_pillow(path)], _noop


@contextlib.contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn any third-party failure inside the block into a one-line MaskError."""
    try:
        yield
    except RaznError:
        raise
    except MemoryError:
        raise MaskError(f"out of memory while trying to {what} the mask", path) from None
    except Exception as exc:  # decoders raise many unrelated types; all mean a bad file
        detail = " ".join(str(exc).split())[:200] or "no detail"
        raise MaskError(
            f"cannot {what} the mask ({type(exc).__name__}: {detail}); "
            "expected a readable TIFF, PNG or zarr label mask",
            path,
        ) from None


def _sniff(path: Path) -> str:
    if path.is_dir():
        return "zarr"
    if not path.exists():
        raise MaskError("mask file not found; check the path (or the manifest entry)", path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise MaskError(f"cannot read the mask: {exc.strerror or exc}", path) from None
    if not head:
        raise MaskError("mask file is empty (0 bytes); expected a TIFF, PNG or zarr mask", path)
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    return "png" if head == _PNG_MAGIC else "pillow"


def _noop() -> None:
    return None


def _open_tiff(path: Path) -> tuple[list[LevelArray], Callable[[], None]]:
    import tifffile
    import zarr

    tif = tifffile.TiffFile(path)
    try:
        series = tif.series[0]
        levels = []
        for k, level in enumerate(series.levels):
            store = tif.aszarr(series=0, level=k, fillvalue=0)  # missing tiles are background
            array = zarr.open_array(store, mode="r")
            levels.append(_level(array, path, f"TIFF level {k} (axes {level.axes})"))
    except BaseException:
        tif.close()
        raise
    return levels, tif.close


def _open_pillow(path: Path) -> LevelArray:
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # masks are legitimately huge; not a decompression bomb
    try:
        with Image.open(path) as image:
            if image.mode not in _PIL_LABEL_MODES:
                raise MaskError(
                    f"image mode {image.mode!r} is not a single-channel integer mask; "
                    "expected one channel of class values (mode L, P, I or I;16) — "
                    "save the labels as a grayscale or palette image",
                    path,
                )
            array = np.array(image)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return _level(array, path, f"{image.format or 'image'} file")


def _open_zarr(path: Path) -> list[LevelArray]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:
        raise MaskError(
            "directory is not a zarr array or group; expected a mask file or a zarr store",
            path,
        ) from None
    if isinstance(node, zarr.Array):
        return [_level(node, path, "zarr array")]
    keys = _pyramid_keys(node)
    if not keys:
        raise MaskError(
            f"zarr group has no pyramid arrays (found {sorted(node.keys())}); "
            "expected arrays named '0', '1', … or OME-Zarr multiscales",
            path,
        )
    return [_level(node[key], path, f"zarr array {key!r}") for key in keys]


def _pyramid_keys(group: Any) -> list[str]:
    """Dataset paths of an OME-Zarr multiscales entry (0.4 or 0.5), else '0', '1', …"""
    attrs = dict(group.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        return [str(d["path"]) for d in multiscales[0].get("datasets", [])]
    arrays = {name for name, _ in group.arrays()}
    keys = sorted((k for k in arrays if k.isdigit()), key=int)
    return keys


def _level(array: Any, path: Path, what: str) -> LevelArray:
    """Check that ``array`` is one channel of integers and wrap its 2-D plane."""
    shape = tuple(int(n) for n in array.shape)
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biu":
        kind = "floating-point" if dtype.kind == "f" else "non-integer"
        raise MaskError(
            f"{what} has {kind} dtype {dtype}; expected integer class values "
            "(uint8, 255 = ignore) — convert the mask to an integer type",
            path,
        )
    big = [i for i, n in enumerate(shape) if n != 1]
    if len(shape) < 2 or len(big) > 2:
        raise MaskError(
            f"{what} has shape {shape}; expected a single-channel 2-D mask (h, w) — "
            "multi-channel masks are not label masks, save one channel of class values",
            path,
        )
    # Keep the last two axes as y, x unless one is a singleton channel axis (h, w, 1).
    yx = (len(shape) - 2, len(shape) - 1) if shape[-1] != 1 or len(big) < 2 else tuple(big)
    index = tuple(slice(None) if i in yx else 0 for i in range(len(shape)))
    return LevelArray(array, index)
