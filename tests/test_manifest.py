"""Dataset manifest: reading, writing and the errors a user meets."""

from __future__ import annotations

from pathlib import Path

import pytest

from razn.data.manifest import Manifest, ManifestEntry, read_manifest, write_manifest
from razn.errors import ManifestError


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A dataset folder with slides a..d and masks for a..c."""
    for name in "abcd":
        (tmp_path / "slides").mkdir(exist_ok=True)
        (tmp_path / "slides" / f"{name}.svs").write_bytes(b"slide")
    for name in "abc":
        (tmp_path / "masks").mkdir(exist_ok=True)
        (tmp_path / "masks" / f"{name}.tif").write_bytes(b"mask")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """slide,mask,split
slides/a.svs,masks/a.tif,train
slides/b.svs,masks/b.tif,val

slides/c.svs,masks/c.tif,test
"""


def error(path: Path, **kwargs: bool) -> str:
    with pytest.raises(ManifestError) as info:
        read_manifest(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_reads_paths_relative_to_the_csv_folder(data: Path) -> None:
    manifest = read_manifest(write(data / "dataset.csv", GOOD))
    assert len(manifest) == 3
    first = manifest.entries[0]
    assert first == ManifestEntry(data / "slides/a.svs", data / "masks/a.tif", "train")
    assert [e.slide.name for e in manifest.split("val")] == ["b.svs"]
    assert [e.split for e in manifest] == ["train", "val", "test"]


def test_column_order_case_extra_columns_bom_and_absolute_paths(data: Path) -> None:
    text = f"\ufeffSplit, Mask ,SLIDE,patient\nTRAIN,masks/a.tif,{data / 'slides/a.svs'},p1\n"
    (entry,) = read_manifest(write(data / "sub.csv", text)).entries
    assert entry == ManifestEntry(data / "slides/a.svs", data / "masks/a.tif", "train")


def test_round_trip_writes_relative_paths(data: Path) -> None:
    manifest = read_manifest(write(data / "dataset.csv", GOOD))
    (data / "out").mkdir()
    out = write_manifest(data / "out" / "copy.csv", manifest.entries)
    assert out.read_text().splitlines()[:2] == [
        "slide,mask,split",
        "../slides/a.svs,../masks/a.tif,train",
    ]
    assert read_manifest(out).entries == manifest.entries


def test_unlabelled_slides_need_require_masks_false(data: Path) -> None:
    path = write(data / "m.csv", "slide,mask,split\nslides/d.svs,,test\n")
    assert "row 2, column 'mask': empty" in error(path)
    manifest = read_manifest(path, require_masks=False)
    assert manifest.entries[0].mask is None
    out = write_manifest(data / "again.csv", manifest.entries)
    assert read_manifest(out, require_masks=False).entries == manifest.entries


def test_missing_columns_say_which_and_what_exists(data: Path) -> None:
    message = error(write(data / "m.csv", "slides,split\nslides/a.svs,train\n"))
    assert "missing column(s) 'slide', 'mask'" in message
    assert "found 'slides', 'split'" in message
    assert "(rename 'slides' to 'slide'?)" in message


@pytest.mark.parametrize(("value", "hint"), [("trian", "'train'"), ("validation", "'val'")])
def test_unknown_split_suggests_the_closest(data: Path, value: str, hint: str) -> None:
    path = write(data / "m.csv", f"slide,mask,split\nslides/a.svs,masks/a.tif,{value}\n")
    message = error(path)
    assert f"row 2, column 'split': unknown split '{value}'" in message
    assert f"did you mean {hint}?" in message


def test_missing_files_name_row_column_and_path(data: Path) -> None:
    text = "slide,mask,split\nslides/a.svs,masks/a.tif,train\nslides/b.svs,masks/zz.tif,val\n"
    message = error(write(data / "m.csv", text))
    assert "row 3, column 'mask': file not found" in message
    assert str(data / "masks" / "zz.tif") in message
    text = "slide,mask,split\nslides/nope.svs,masks/a.tif,train\n"
    assert "row 2, column 'slide': file not found" in error(write(data / "m.csv", text))
    assert len(read_manifest(data / "m.csv", check_files=False)) == 1


def test_duplicate_slides(data: Path) -> None:
    text = "slide,mask,split\nslides/a.svs,masks/a.tif,train\n./slides/../slides/a.svs,masks/b.tif,val\n"
    message = error(write(data / "m.csv", text))
    assert "row 3, column 'slide'" in message and "already listed in row 2" in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty manifest"),
        (b"slide,mask,split\n\n", "a header but no slides"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a CSV"),
        (b"slide,mask,split\nslides/a.svs\n", "row 2: 1 field(s)"),
        (b"slide,mask,split\n,masks/a.tif,train\n", "row 2, column 'slide': empty"),
    ],
)
def test_malformed_manifests(data: Path, content: bytes, reason: str) -> None:
    path = data / "m.csv"
    path.write_bytes(content)
    assert reason in error(path)


def test_unreadable_paths(tmp_path: Path) -> None:
    assert "not found" in error(tmp_path / "nope.csv")
    assert "cannot read" in error(tmp_path)


def test_split_and_write_refuse_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="did you mean 'test'"):
        Manifest(()).split("tset")
    entry = ManifestEntry(tmp_path / "a.svs", None, "training")  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="unknown split 'training'"):
        write_manifest(tmp_path / "m.csv", [entry])
