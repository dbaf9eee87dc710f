"""The ``faket`` command line: a thin layer of argument parsing over the library.

Each command lives in its own module with a ``register(app)`` function that adds
it to the Typer application; :mod:`faket.cli.main` collects them and turns
:class:`faket.errors.FaketError` into a one-line message and exit status 2.
"""

from faket.cli.main import app, main

__all__ = ["app", "main"]
