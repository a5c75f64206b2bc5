"""Shared test fixtures: synthetic pyramids written with tifffile, and the real files in
``../shared/fixtures`` (tests that need those skip with a reason when it is absent)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tifffile

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The suite runs torch on one thread. On a 2-core machine shared with another busy job,
    two threads per operation keep waiting for each other (the suite took 32 minutes there,
    against 4 idle); the tests' tiny networks gain nothing from a second thread. Tests that
    need another count set it themselves (``--threads``)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def shared_fixtures() -> Path:
    """The folder of real slide files beside the checkout; skips the test when it is absent."""
    if not (SHARED_FIXTURES / "slides").is_dir():
        pytest.skip(f"real slide fixtures not found at {SHARED_FIXTURES} (../shared is absent)")
    return SHARED_FIXTURES


def gradient_image(width: int, height: int) -> np.ndarray:
    """An RGB image whose every pixel tells its own (x, y): R = x mod 256, G = y mod 256."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x % 256, y % 256, (x // 256 + 4 * (y // 256)) % 256], axis=-1).astype(np.uint8)


def downsample_pyramid(level0: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` levels, each a 2x nearest subsampling of the previous (ceil sizes)."""
    levels = [level0]
    for _ in range(count - 1):
        levels.append(np.ascontiguousarray(levels[-1][::2, ::2]))
    return levels


def write_tiff_pyramid(
    path: Path,
    levels: Sequence[np.ndarray],
    tile: int = 64,
    mpp: float | None = None,
    compression: str | None = None,
) -> Path:
    """Write ``levels`` as a generic tiled TIFF that OpenSlide opens (levels as successive pages)."""
    with tifffile.TiffWriter(path) as writer:
        for index, level in enumerate(levels):
            kwargs = {}
            if mpp is not None:
                per_cm = 1e4 / (mpp * level0_ratio(levels, index))
                kwargs = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
            writer.write(
                level,
                tile=(tile, tile),
                photometric="rgb",
                compression=compression,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
                **kwargs,
            )
    return path


def level0_ratio(levels: Sequence[np.ndarray], index: int) -> float:
    return levels[0].shape[1] / levels[index].shape[1]


@pytest.fixture
def gradient_pyramid(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """A 3-level 1000x700 lossless generic TIFF (mpp 0.5) and its level arrays."""
    levels = downsample_pyramid(gradient_image(1000, 700), 3)
    return write_tiff_pyramid(tmp_path / "gradient.tiff", levels, mpp=0.5), levels


TINY_OVERRIDES = (
    "levels.downsamples=[4, 2, 1]",
    "levels.patch_size=64",
    "model.encoder_depth=3",
    "model.decoder_channels=[16, 8, 8]",
    "observation.size=36",
    "seg_train.steps=4",
    "seg_train.batch_size=4",
    "seg_train.val_every=4",
    "seg_train.val_patches=4",
    "seg_train.num_workers=0",
    "policy.timesteps=256",
    "policy.n_envs=2",
    "policy.n_steps=64",
    "policy.batch_size=64",
    "policy.n_epochs=1",
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``data/`` (3 synthetic 640x576 slides, manifest) and ``run/`` (segmenters
    and policies trained with tiny budgets through ``razn train``), made once per session."""
    from click.testing import CliRunner

    from razn.cli import main
    from razn.data.synth import SynthConfig, make_dataset

    folder = tmp_path_factory.mktemp("tiny_run")
    manifest = make_dataset(folder / "data", 3, 640, 576, seed=5, config=SynthConfig())
    config = folder / "tiny.yaml"
    config.write_text("name: tiny\n", encoding="utf-8")
    args = ["train", "--run", str(folder / "run"), "--manifest", str(manifest), "--quiet"]
    args += ["--config", str(config)]
    for override in TINY_OVERRIDES:
        args += ["--set", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (folder / "train.log").write_text(result.output, encoding="utf-8")  # for the log's test
    return folder
