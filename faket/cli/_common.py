"""Options and small helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.errors import FaketError
from faket.io.atomic import check_target

DeviceOption = typer.Option(
    "auto", "--device", help="Compute device: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N."
)
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bars.")
OverwriteOption = typer.Option(
    False, "--overwrite", "-f", help="Replace an existing output file instead of stopping."
)


def require_input(path: Path) -> Path:
    """Fail with one line when an input file does not exist or is not a file."""
    if not path.exists():
        raise FaketError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise FaketError(f"{path}: is not a file")
    return path


def require_output(path: Path, overwrite: bool) -> Path:
    """Fail with one line if ``path`` cannot be written (exists without --overwrite, no folder)."""
    if path.exists() and not path.is_dir() and not overwrite:
        raise FaketError(f"{path} already exists; pass --overwrite to replace it")
    return check_target(path, overwrite=overwrite)
