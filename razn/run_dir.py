"""A run directory: everything one razn run writes, in a layout other runs can read.

Layout::

    RUN/config.yaml                            the resolved RunConfig (what the run used)
    RUN/run.json                               format, razn version, creation time, levels,
                                               SHA-256 of every finished segmenter
    RUN/segmenters/level_{i}.safetensors       f_i: best-by-validation weights and metadata
    RUN/segmenters/level_{i}_metrics.csv       step, split, loss, dice per class (train, val)
    RUN/checkpoints/level_{i}_last.safetensors weights at the last checkpoint
    RUN/checkpoints/level_{i}_best.safetensors best weights so far
    RUN/checkpoints/level_{i}_optimizer.pt     optimizer state + step (tensors and plain types)
    RUN/policies/                              the zoom policies g_i (trained later)
    RUN/cache/                                 the reward cache

A run is created once with :meth:`RunDirectory.create` and reopened with
:meth:`RunDirectory.open`, which refuses anything it cannot vouch for with a
:class:`~razn.errors.CheckpointError` naming the file and the fix.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from razn import __version__
from razn.config import dump_yaml, load_config, to_dict
from razn.digest import file_sha256
from razn.errors import CheckpointError, ConfigError
from razn.models import Segmenter, load_segmenter
from razn.run_config import RunConfig

RUN_FORMAT = "razn-run/1"
"""The version of this layout, stored in ``run.json``; bumped when old runs cannot be read."""

RUNTIME_KEYS = frozenset(
    {"seg_train.num_workers", "seg_train.device", "seg_train.torch_threads", "data.class_colours"}
)
"""Config keys that may differ when a run is continued: they change speed or how outputs
are drawn, not results."""

POLICY_SECTIONS = ("policy", "reward")
"""Config sections that only the zoom policies depend on (not the segmenters or caches)."""


class RunDirectory:
    """One run's folder (see the module docstring). Build with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, config: RunConfig, info: dict[str, Any]) -> None:
        self.path = path
        self._config = config
        self.info = info

    # -- creating and opening ------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: RunConfig) -> RunDirectory:
        """Make a new run at ``path`` (which must not exist or be empty) for ``config``."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise CheckpointError(
                "already exists and is not an empty directory; continue a run with "
                "RunDirectory.open (razn train-seg --run) or choose a new directory",
                path,
            )
        for folder in (path, path / "segmenters", path / "checkpoints"):
            folder.mkdir(parents=True, exist_ok=True)
        dump_yaml(config, path / "config.yaml")
        info = {
            "format": RUN_FORMAT,
            "razn_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "levels": list(config.levels.downsamples),
            "segmenters": {},
        }
        run = cls(path, config, info)
        run._write_info()
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        """Open an existing run, checking ``run.json`` and ``config.yaml``."""
        path = Path(path)
        info = _read_info(path / "run.json")
        if not (path / "config.yaml").is_file():
            raise CheckpointError("config.yaml is missing; the run cannot be continued", path)
        try:
            config = load_config(RunConfig, path / "config.yaml")
        except ConfigError as exc:
            raise CheckpointError(f"its config no longer loads: {exc}", path) from None
        if [float(d) for d in info["levels"]] != list(config.levels.downsamples):
            raise CheckpointError(
                f"run.json levels {info['levels']} disagree with config.yaml levels "
                f"{list(config.levels.downsamples)}; the run was edited by hand",
                path,
            )
        return cls(path, config, info)

    @classmethod
    def open_or_create(
        cls, path: str | Path, config: RunConfig, *, policy_may_differ: bool = False
    ) -> RunDirectory:
        """Continue the run at ``path`` if there is one (its config must match), else create it.

        With ``policy_may_differ`` the :data:`POLICY_SECTIONS` may differ too: the run's
        segmenters and caches stay valid, and the returned run carries ``config`` (in
        memory; ``config.yaml`` keeps what the segmenters were trained with).
        """
        path = Path(path)
        if not (path / "run.json").exists():
            return cls.create(path, config)
        run = cls.open(path)
        changed = config_differences(run.config, config) - RUNTIME_KEYS
        if policy_may_differ:
            changed = {key for key in changed if key.split(".")[0] not in POLICY_SECTIONS}
        if changed:
            raise CheckpointError(
                f"the run was made with a different config (differs at "
                f"{', '.join(sorted(changed))}); continue it with its own config "
                "(omit --config) or start a new run directory",
                path,
            )
        if config != run.config:  # only runtime (or allowed policy) keys differ: use the new ones
            run._config = config
        return run

    # -- layout --------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        """The run's resolved config."""
        return self._config

    @property
    def num_levels(self) -> int:
        return len(self.config.levels.downsamples)

    @property
    def segmenters_dir(self) -> Path:
        return self.path / "segmenters"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def policies_dir(self) -> Path:
        """Where the zoom policies g_i go (reserved for policy training)."""
        return self.path / "policies"

    @property
    def cache_dir(self) -> Path:
        """Where the reward cache goes (reserved for policy training)."""
        return self.path / "cache"

    def segmenter_path(self, level: int) -> Path:
        """The finished f_``level`` (best-by-validation weights)."""
        return self.segmenters_dir / f"level_{self._level(level)}.safetensors"

    def metrics_path(self, level: int) -> Path:
        return self.segmenters_dir / f"level_{self._level(level)}_metrics.csv"

    def checkpoint_path(self, level: int, kind: str) -> Path:
        """``kind``: ``last`` or ``best`` weights (safetensors), or ``optimizer`` state (.pt)."""
        suffix = {"last": "safetensors", "best": "safetensors", "optimizer": "pt"}[kind]
        return self.checkpoints_dir / f"level_{self._level(level)}_{kind}.{suffix}"

    # -- finished segmenters -------------------------------------------------
    def is_trained(self, level: int) -> bool:
        """True once f_``level`` is finished (recorded in run.json and present)."""
        return str(self._level(level)) in self.info["segmenters"] and (
            self.segmenter_path(level).is_file()
        )

    def record_segmenter(self, level: int) -> None:
        """Mark f_``level`` finished, storing its file's SHA-256 to detect later tampering.

        Levels may be trained by parallel processes, so ``run.json`` is re-read and updated
        under an exclusive lock: no process overwrites another's record.
        """
        digest = file_sha256(self.segmenter_path(level))
        with _locked(self.path / "run.json.lock"):
            self.info["segmenters"].update(_read_info(self.path / "run.json")["segmenters"])
            self.info["segmenters"][str(self._level(level))] = {"sha256": digest}
            self._write_info()

    def load_segmenter(self, level: int, device: str = "cpu") -> tuple[Segmenter, dict[str, Any]]:
        """f_``level`` (eval mode) and its metadata, after checking it is the file trained."""
        path = self.segmenter_path(level)
        record = self.info["segmenters"].get(str(level))
        if record is None or not path.is_file():
            raise CheckpointError(
                f"segmenter of level {level} is missing (expected {path.name}); train it "
                f"with `razn train-seg --run {self.path}`",
                path,
            )
        if file_sha256(path) != record["sha256"]:
            raise CheckpointError(
                "file differs from the one this run trained (SHA-256 mismatch); it was "
                "modified or replaced — retrain the level or restore the file",
                path,
            )
        model, extra = load_segmenter(path, device=device)
        if extra.get("level") != level or model.num_classes != self.config.data.num_classes:
            raise CheckpointError(
                f"holds level {extra.get('level')} with {model.num_classes} classes; expected "
                f"level {level} with {self.config.data.num_classes}",
                path,
            )
        return model, extra

    def load_segmenters(self, device: str = "cpu") -> list[Segmenter]:
        """f_0 … f_m in level order (eval mode); a missing or altered level is an error."""
        return [self.load_segmenter(level, device)[0] for level in range(self.num_levels)]

    # -- helpers -------------------------------------------------------------
    def _level(self, level: int) -> int:
        if not 0 <= level < self.num_levels:
            raise CheckpointError(
                f"level {level} is not in this run (levels 0..{self.num_levels - 1})", self.path
            )
        return level

    def _write_info(self) -> None:
        target = self.path / "run.json"
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(self.info, indent=2) + "\n", encoding="utf-8")
        partial.replace(target)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r}, levels={list(self.config.levels.downsamples)})"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing) for the ``with`` block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_info(path: Path) -> dict[str, Any]:
    """``run.json``, checked for the keys and format this version reads."""
    if not path.is_file():
        raise CheckpointError(
            "run.json is missing: not a razn run directory (create one with "
            "`razn train-seg --config CONFIG --run DIR`)",
            path,
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not a readable JSON file ({exc})", path) from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise CheckpointError(
            f"run format {found!r} is not {RUN_FORMAT!r}; this run was written by another "
            "version of razn — use that version or start a new run",
            path,
        )
    missing = [k for k in ("levels", "segmenters") if k not in info]
    if missing:
        raise CheckpointError(f"run.json lacks {', '.join(missing)}; the file is damaged", path)
    return info


def config_differences(a: RunConfig, b: RunConfig) -> set[str]:
    """Dotted keys (``seg_train.steps``) whose values differ between two configs."""
    return _differences(to_dict(a), to_dict(b), "")


def _differences(a: Any, b: Any, prefix: str) -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return set().union(*(_differences(a.get(k), b.get(k), f"{prefix}{k}.") for k in keys))
    return set() if a == b else {prefix.rstrip(".")}


__all__ = ["POLICY_SECTIONS", "RUN_FORMAT", "RunDirectory", "config_differences"]
