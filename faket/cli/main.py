"""Entry point of the ``faket`` command: builds the Typer app and handles errors."""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from faket import __version__
from faket.errors import FaketError

app = typer.Typer(
    name="faket",
    help=(
        "Fast, fully annotated synthetic cryo-electron tomography training data "
        "(the FakET method: noiseless projections, tilt-dependent noise, neural style "
        "transfer, weighted back-projection) and the tools to evaluate it."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts use literal [brackets]
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"faket {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """faket: synthetic cryo-ET training data, fast."""


#: Each top-level command and the module of :mod:`faket.cli` that adds it to ``app``.
COMMAND_MODULES = {
    "info": "info",
    "project": "project",
    "reconstruct": "reconstruct",
    "noise": "noise",
    "style": "style",
    "phantom": "phantom",
    "microscope": "microscope",
    "config": "config",
    "run": "run",
    "demo": "run",
    "evaluate": "evaluate",
    "train": "evaluate",
    "segment": "evaluate",
    "locate": "evaluate",
    "experiment": "evaluate",
    "export": "export",
    "weights": "weights",
}
_registered: set[str] = set()


def register_commands(argv: list[str] | None = None) -> typer.Typer:
    """Add the command modules ``argv`` needs to ``app`` (all of them without ``argv``).

    Importing a command's module imports its part of the library (torch, pandas, scipy,
    gemmi...). Only the invoked command's module is imported, which halves the start-up
    of e.g. ``faket style``; the overview (``faket --help``) imports them all.
    """
    words = [arg for arg in (argv or []) if not arg.startswith("-")]
    if words and words[0] in COMMAND_MODULES:
        wanted = [COMMAND_MODULES[words[0]]]
    else:
        wanted = list(dict.fromkeys(COMMAND_MODULES.values()))
    for name in wanted:
        if name not in _registered:
            importlib.import_module(f"faket.cli.{name}").register(app)
            _registered.add(name)
    return app


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # One line for the user, not the library's source line.
    typer.echo(f"faket: warning: {message}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; user errors print one line and exit with status 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            register_commands(args)
            app(args=args, prog_name="faket")
    except FaketError as error:
        typer.echo(f"faket: error: {error}", err=True)
        sys.exit(2)
    except MemoryError:
        typer.echo(
            "faket: error: out of memory; use smaller inputs, binning, or a smaller "
            "--memory-budget",
            err=True,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("faket: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
