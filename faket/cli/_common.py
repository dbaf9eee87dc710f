"""Options and small helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click
import typer
from typer.core import TyperCommand

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
