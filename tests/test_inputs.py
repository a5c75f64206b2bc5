"""The slides of a batch: paths, globs, manifests, and a distinct output name per slide."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from razn.data.manifest import ManifestEntry, write_manifest
from razn.engine.inputs import expand_inputs, output_name, output_names, path_digest
from razn.errors import RaznError


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name in ("a.svs", "b.svs", "c.tiff", "sub/d.svs", "[x] y.svs"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_paths_and_globs_in_order_each_file_once(files: Path) -> None:
    got = expand_inputs([str(files / "c.tiff"), str(files / "*.svs"), files / "a.svs"])
    assert got == [files / "c.tiff", files / "[x] y.svs", files / "a.svs", files / "b.svs"]
    assert expand_inputs([str(files / "**" / "d.svs")]) == [files / "sub" / "d.svs"]


def test_an_existing_name_with_brackets_is_a_path_not_a_pattern(files: Path) -> None:
    assert expand_inputs([str(files / "[x] y.svs")]) == [files / "[x] y.svs"]


def test_a_missing_plain_path_is_kept_for_the_batch_to_report(files: Path) -> None:
    assert expand_inputs([str(files / "gone.svs")]) == [files / "gone.svs"]


def test_a_pattern_matching_nothing_and_no_input_are_errors(files: Path) -> None:
    with pytest.raises(RaznError, match=r"no file matches the pattern '.*\*\.ndpi'"):
        expand_inputs([str(files / "*.ndpi")])
    with pytest.raises(RaznError, match="no slides given"):
        expand_inputs([])


def test_manifest_slides_follow_the_arguments(files: Path) -> None:
    entries = [
        ManifestEntry(files / "b.svs", None, "train"),
        ManifestEntry(files / "c.tiff", None, "test"),
    ]
    manifest = write_manifest(files / "m.csv", entries)
    assert expand_inputs([], manifest) == [files / "b.svs", files / "c.tiff"]
    assert expand_inputs([str(files / "a.svs")], manifest, "test") == [
        files / "a.svs",
        files / "c.tiff",
    ]


def test_output_names_are_distinct_and_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "1" / "s.svs", tmp_path / "2" / "S.svs", tmp_path / "t é [2].ndpi"
    digest = [hashlib.sha256(p.resolve().as_posix().encode()).hexdigest()[:8] for p in (a, b)]
    assert output_names([a, b, c]) == [f"s-{digest[0]}", f"S-{digest[1]}", "t é [2]"]
    assert output_names([a, c]) == ["s", "t é [2]"]
    assert path_digest(a) == digest[0]
    reserved = tmp_path / "batch.csv.svs"
    assert output_names([reserved]) == [f"batch.csv-{path_digest(reserved)}"]


def test_output_name_is_safe() -> None:
    assert output_name(Path("/x/.hidden.svs")) == "hidden"
    assert output_name(Path("a\tb.tiff")) == "a_b"
    assert output_name(Path("...")) == "slide"
