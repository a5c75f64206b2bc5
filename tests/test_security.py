"""Hostile files (issue 8): tampered or foreign checkpoints and policies are refused with a
clear :class:`CheckpointError` and nothing in them is ever unpickled; YAML never builds Python
objects; output folder names derived from slide names never leave OUT_DIR."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from razn.cli import main
from razn.engine.inputs import output_name, output_names
from razn.errors import CheckpointError, ConfigError
from razn.models import load_segmenter
from razn.policy.store import load_policy

MARKER = "razn-pwned-marker"


class Payload:
    """Unpickling this creates a marker file: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_pickle(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": Payload(marker)}, path)
    return path


def hostile_sb3_zip(path: Path, marker: Path) -> Path:
    """What a Stable-Baselines3 ``.zip`` holds: a cloudpickled ``data`` entry (here, code)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data", pickle.dumps({"policy_class": Payload(marker)}))
        archive.writestr("policy.pth", b"")
    path.write_bytes(buffer.getvalue())
    return path


def rewrite_metadata(source: Path, target: Path, change) -> Path:
    """A copy of a safetensors file with its header's ``__metadata__`` passed through ``change``."""
    data = source.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"] = change(dict(header["__metadata__"]))
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    target.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + length :])
    return target


def flip(path: Path, offset: int, count: int = 16) -> Path:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def files(tiny_run: Path, tmp_path: Path) -> dict[str, Path]:
    segmenter = tiny_run / "run" / "segmenters" / "level_0.safetensors"
    policy = tiny_run / "run" / "policies" / "lam_0.01" / "level_0.safetensors"
    return {
        "segmenter": Path(shutil.copyfile(segmenter, tmp_path / "segmenter.safetensors")),
        "policy": Path(shutil.copyfile(policy, tmp_path / "policy.safetensors")),
    }


LOADERS = {"segmenter": load_segmenter, "policy": load_policy}


@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_pickle_renamed_to_safetensors_is_refused_and_never_run(files, tmp_path, kind):
    marker = tmp_path / MARKER
    for hostile in (hostile_pickle, hostile_sb3_zip):
        path = hostile(tmp_path / f"{kind}.safetensors", marker)
        with pytest.raises(CheckpointError, match="not a valid safetensors") as error:
            LOADERS[kind](path)
        assert str(error.value).startswith(f"{path}: ")
        assert not marker.exists()


@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_flipped_header_is_refused(files, kind):
    path = flip(files[kind], 8, 24)  # the JSON header right after its 8-byte length
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        LOADERS[kind](path)


@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_huge_header_length_is_refused(files, kind):
    path = files[kind]
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", 2**62) + data[8:])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        LOADERS[kind](path)


@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_truncated_file_is_refused(files, kind):
    path = files[kind]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        LOADERS[kind](path)


@pytest.mark.parametrize(
    ("kind", "change", "reason"),
    [
        ("segmenter", lambda m: {**m, "format": "evil/1"}, "format 'evil/1' is not"),
        ("segmenter", lambda m: {k: v for k, v in m.items() if k != "format"}, "format None"),
        ("policy", lambda m: {**m, "format": "sb3-zip"}, "format 'sb3-zip' is not"),
        ("policy", lambda m: {**m, "net": "{not json"}, "metadata is damaged"),
        ("policy", lambda m: {**m, "inputs": "segmentation"}, "does not match its architecture"),
    ],
    ids=["foreign format", "no format", "policy format", "damaged json", "wrong architecture"],
)
def test_wrong_metadata_is_refused(files, tmp_path, kind, change, reason):
    path = rewrite_metadata(files[kind], tmp_path / f"changed_{kind}.safetensors", change)
    with pytest.raises(CheckpointError, match=reason):
        LOADERS[kind](path)


def copy_run(tiny_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run, ignore=shutil.ignore_patterns("cache"))
    return run


def segment(run: Path, tiny_run: Path, out: Path):
    slide = sorted((tiny_run / "data" / "slides").glob("*.tiff"))[0]
    return CliRunner().invoke(main, ["segment", str(slide), "--run", str(run), "--out", str(out)])


def test_a_segmenter_with_flipped_weights_is_refused_by_its_run(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    path = run / "segmenters" / "level_2.safetensors"
    flip(path, path.stat().st_size // 2)  # tensor data, not the header: valid safetensors
    result = segment(run, tiny_run, tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"razn: error: {path}: file differs from the one this run trained (SHA-256 mismatch); "
        "it was modified or replaced — retrain the level or restore the file"
    ]


def test_a_pickle_in_place_of_a_policy_is_refused_by_segment(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    marker = tmp_path / MARKER
    path = hostile_sb3_zip(run / "policies" / "lam_0.01" / "level_1.safetensors", marker)
    result = segment(run, tiny_run, tmp_path / "out")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    # refused on its SHA-256 before it is parsed at all
    assert lines == [
        f"razn: error: {path}: does not match the SHA-256 recorded in policies.json: it was "
        "modified or replaced — retrain the level (razn train-policy) or restore the file"
    ]
    assert not marker.exists()


def test_a_policy_with_flipped_weights_or_no_digests_is_refused_by_segment(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    path = run / "policies" / "lam_0.01" / "level_0.safetensors"
    flip(path, path.stat().st_size // 2)  # tensor data, not the header: valid safetensors
    load_policy(path)  # still a well-formed policy file on its own
    result = segment(run, tiny_run, tmp_path / "out")
    assert result.exit_code == 2 and "does not match the SHA-256 recorded" in result.output
    (path.parent / "policies.json").unlink()
    result = segment(run, tiny_run, tmp_path / "out2")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"razn: error: {path}: no readable policies.json beside it (the SHA-256 razn records "
        "for every policy it saves): not trained by this version of razn; retrain with razn "
        "train-policy"
    ]


def test_a_hostile_optimizer_checkpoint_is_not_unpickled(tiny_run, tmp_path):
    from razn.run_dir import RunDirectory
    from razn.train.state import restore_checkpoint

    run = RunDirectory.open(copy_run(tiny_run, tmp_path))
    marker = tmp_path / MARKER
    hostile_pickle(run.checkpoint_path(0, "optimizer"), marker)
    with pytest.raises(CheckpointError, match="unreadable optimizer checkpoint"):
        restore_checkpoint(run, 0, state=None)  # refused before the state is touched
    assert not marker.exists()


# --- YAML -----------------------------------------------------------------------------------

PYTHON_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:os.system ['touch {marker}']",
    "!!python/name:os.system",
]


@pytest.mark.parametrize("tag", PYTHON_TAGS)
def test_yaml_python_tags_are_refused_in_configs_and_run_configs(tiny_run, tmp_path, tag):
    from razn.run_config import load_run_config

    marker = tmp_path / MARKER
    config = tmp_path / "config.yaml"
    config.write_text(f"name: {tag.format(marker=marker)}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_run_config(config)
    run = copy_run(tiny_run, tmp_path)
    shutil.copyfile(config, run / "config.yaml")
    result = segment(run, tiny_run, tmp_path / "out")
    assert result.exit_code == 2 and "invalid YAML" in result.output
    assert "Traceback" not in result.output
    assert not marker.exists()


def test_manifest_cells_are_never_evaluated(tiny_run, tmp_path):
    from razn.data.manifest import read_manifest

    marker = tmp_path / MARKER
    manifest = tmp_path / "manifest.csv"
    cell = f"__import__('os').system('touch {marker}')"
    manifest.write_text(f'slide,mask,split\n"{cell}",,test\n', encoding="utf-8")
    table = read_manifest(manifest, require_masks=False, check_files=False)
    assert str(table.entries[0].slide).endswith(cell)
    assert not marker.exists()


def test_a_nul_byte_in_a_manifest_path_is_one_line(tiny_run, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("slide,mask,split\nab\x00c.svs,,test\n", encoding="utf-8")
    args = ["segment", "--manifest", str(manifest), "--run", str(tiny_run / "run")]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"razn: error: {manifest}: row 2, column 'slide': path holds a NUL byte"
    ]


# --- output names ---------------------------------------------------------------------------

HOSTILE_NAMES = [
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../b.svs",
    "..\\..\\windows\\system32.svs",
    "C:\\evil.svs",
    ".hidden.svs",
    "...svs",
    " .. .svs",
    "a\x00b.svs",
    "line\nbreak.svs",
    "batch.csv",
    ".razn.lock",
    "x.partial",
]


def assert_stays_inside(out: Path, name: str) -> None:
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")  # never hidden, never a .partial or the lock
    assert (out / name).resolve().parent == out.resolve()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_slide_names_stay_inside_out_dir(tmp_path, name):
    assert_stays_inside(tmp_path, output_name(Path(name)))
    if "\x00" in name:
        return  # no real path holds one (manifests refuse it); output_names resolves paths
    for folder in output_names([Path(name), Path("other") / Path(name).name]):
        assert_stays_inside(tmp_path, folder)
        assert folder.casefold() not in ("batch.csv", "metrics.json")


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.one_of(st.sampled_from(["..", ".", "", "/", "\\", "C:"]), st.text(max_size=12)),
        min_size=1,
        max_size=5,
    )
)
def test_any_slide_path_gives_a_name_inside_out_dir(parts):
    out = Path("/tmp/razn-out")
    path = "/".join(parts).replace("\x00", "")  # a file path cannot hold NUL
    assert_stays_inside(out, output_name(Path(path or ".")))
