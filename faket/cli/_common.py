"""Options and small helpers shared by several commands."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import typer
from typer.core import TyperCommand

from faket.errors import FaketError
from faket.io.atomic import check_target, remove_stale_temporaries

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


VoxelSizeOption = typer.Option(
    None,
    "--voxel-size",
    help="Voxel (pixel) size of the input in Å, overriding its header; needed when the "
    "header has none.",
)


def require_output(path: Path, overwrite: bool) -> Path:
    """Fail with one line if ``path`` cannot be written (exists without --overwrite, no folder).

    Also deletes what an earlier run of a command writing ``path`` left when it was killed
    (hidden ``.NAME.tmp-*`` files of this very output): one command owns its output.
    """
    if path.exists() and not path.is_dir() and not overwrite:
        raise FaketError(f"{path} already exists; pass --overwrite to replace it")
    target = check_target(path, overwrite=overwrite)
    remove_stale_temporaries(target.parent, target=target.name)
    return target


def resolve_voxel_size(
    path: Path, header: float, override: float | None, *, needed_for: str | None = None
) -> float:
    """The input's voxel size in Å: ``--voxel-size`` if given, else the header's.

    A header without one (0) is fine where only the output's header needs it: the output
    then says unknown (0), with a warning. Where the physics needs it (``needed_for``), it
    is an error that asks for ``--voxel-size``. Called before any work starts.
    """
    if override is not None:
        if not override > 0:
            raise FaketError(f"--voxel-size {override}: must be a positive size in Å")
        return float(override)
    if header > 0:
        return header
    if needed_for is not None:
        raise FaketError(
            f"{path} has no voxel size in its header and {needed_for} needs one; pass "
            "--voxel-size in Å"
        )
    warnings.warn(
        f"{path} has no voxel size in its header; the output's will be 0 (unknown); pass "
        "--voxel-size in Å to set it",
        RuntimeWarning,
        stacklevel=2,
    )
    return 0.0


def expand_many(args: list[str], options: tuple[str, ...]) -> list[str]:
    """Rewrite ``--opt A B`` as ``--opt A --opt B`` for the options in ``options``."""
    out: list[str] = []
    current, taken = None, 0
    for token in args:
        if token in options:
            current, taken = token, 0
        elif token.startswith("-"):
            current = None
        elif current is not None:
            if taken:
                out.append(current)
            taken += 1
        out.append(token)
    return out


def many_values_command(*options: str) -> type[TyperCommand]:
    """A command class whose ``options`` each take several values after one flag.

    Click options take one value per flag; users expect ``--style A.mrc B.mrc``.
    A positional argument must then come before these options.
    """

    class ManyValuesCommand(TyperCommand):
        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            return super().parse_args(ctx, expand_many(list(args), options))

    return ManyValuesCommand
