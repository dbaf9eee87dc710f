"""Entry point of the ``faket`` command: builds the Typer app and handles errors."""

from __future__ import annotations

import sys

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


def _register_commands() -> None:
    # One module per command (or command group); each adds itself to ``app``.
    from faket.cli import (
        config,
        evaluate,
        info,
        microscope,
        noise,
        phantom,
        project,
        reconstruct,
        run,
        style,
    )

    for module in (
        info,
        project,
        reconstruct,
        noise,
        style,
        phantom,
        microscope,
        config,
        run,
        evaluate,
    ):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the command line; user errors print one line and exit with status 2."""
    try:
        app(args=argv, prog_name="faket")
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
