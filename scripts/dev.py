#!/usr/bin/env python3
"""The README's two commands: set up (or reuse) ``.venv`` and run the demo or the tests.

    python3 scripts/dev.py demo    # the main job on the built-in synthetic default
    python3 scripts/dev.py test    # ruff (lint + format check), mypy and the test suite

Only the standard library is used here, so it runs on a bare Python >= 3.11. The
virtual environment is reinstalled only when ``pyproject.toml`` or the
constraints change (a hash is kept in ``.venv/razn-install.sha256``). Extra
arguments after ``test`` go to pytest (e.g. ``-m slow``); after ``demo`` to the demo.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
CONSTRAINTS = ROOT / "scripts" / "constraints.txt"
STAMP = VENV / "razn-install.sha256"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_hash() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_venv() -> Path:
    """Create ``.venv`` and install razn with its dev extra, unless already up to date."""
    python = venv_python()
    wanted = install_hash()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"[dev] creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("[dev] installing razn and its dependencies (first time: a few minutes)", flush=True)
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-c",
            str(CONSTRAINTS),
            "-e",
            f"{ROOT}[dev]",
        ]
    )
    STAMP.write_text(wanted)
    return python


def run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def run_tests(python: Path, pytest_args: list[str]) -> None:
    run([str(python), "-m", "ruff", "check", "."])
    run([str(python), "-m", "ruff", "format", "--check", "."])
    run([str(python), "-m", "mypy"])  # razn and envs, per [tool.mypy] in pyproject.toml
    run([str(python), "-m", "pytest", *pytest_args])


def run_demo(python: Path, demo_args: list[str]) -> None:
    run([str(python), "-m", "razn", "demo", "--out", str(ROOT / "demo"), *demo_args])


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        sys.exit(2)
    python = ensure_venv()
    if argv[0] == "test":
        run_tests(python, argv[1:])
    else:
        run_demo(python, argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
