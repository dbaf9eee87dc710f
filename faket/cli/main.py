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
    "compare": "compare",
    "config": "config",
    "run": "run",
    "demo": "run",
    "evaluate": "evaluate",
    "train": "evaluate",
    "segment": "evaluate",
    "locate": "evaluate",
    "experiment": "experiment",
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


#: What an interrupted command keeps, and how to go on (the SIGINT message).
_RESUME_HINTS = {
    "run": "finished steps are kept; run the same command again to resume",
    "demo": "finished steps are kept; run the same command again to resume",
    "style": "finished tilts are kept beside the output; run the same command again to continue",
    "experiment": "finished runs are kept; run the same command again to resume",
}


def _interrupted(args: list[str]) -> str:
    words = [arg for arg in args if not arg.startswith("-")]
    hint = _RESUME_HINTS.get(words[0] if words else "")
    if hint is None:
        hint = "no output was written (files appear only when complete); run it again"
    return f"faket: interrupted; {hint}"


def _usage_error(error: typer.TyperException, args: list[str]) -> str:
    words = [arg for arg in args if not arg.startswith("-")][:2]
    command = " ".join(w for w in words if w in COMMAND_MODULES or w in _GROUPS)
    where = f"faket {command}".strip()
    message = " ".join(error.format_message().split())
    return f"faket: error: {message} (see '{where} --help')"


_GROUPS = ("score", "train", "segment", "locate", "predict", "estimate", "apply", "plot",
           "init", "schema")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Run the command line; user errors print one line and exit with status 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            register_commands(args)
            # Not standalone: usage errors and interrupts come back here, to be reported
            # in faket's one-line style instead of click's multi-line one.
            status = app(args=args, prog_name="faket", standalone_mode=False)
    except typer.TyperException as error:  # click's usage errors (typer vendors click)
        if type(error).__name__ == "NoArgsIsHelpError":
            typer.echo(error.format_message())  # a bare group: its help, as before
        else:
            typer.echo(_usage_error(error, args), err=True)
        sys.exit(2)
    except typer.Abort:
        status = 130
    except FaketError as error:
        typer.echo(f"faket: error: {_one_line(error)}", err=True)
        sys.exit(2)
    except MemoryError:
        typer.echo(
            "faket: error: out of memory; use smaller inputs, bin them (--bin, --pre-bin), "
            "or style fewer tilts at a time (faket style --batch-size 1)",
            err=True,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        status = 130
    except OSError as error:
        # Unwritable folders, full disks and the like: the system's reason, on one line.
        where = f"{error.filename}: " if error.filename else ""
        typer.echo(
            f"faket: error: {where}{error.strerror or error}; check the path, its "
            "permissions and the free disk space",
            err=True,
        )
        sys.exit(2)
    if status == 130:
        typer.echo(_interrupted(args), err=True)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":  # pragma: no cover
    main()
