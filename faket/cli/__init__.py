"""The ``faket`` command line: a thin layer of argument parsing over the library.

Each command lives in its own module with a ``register(app)`` function that adds
it to the Typer application; :func:`faket.cli.main.main` imports only the invoked
command's module (``register_commands``; call it without arguments to get ``app`` with
every command) and turns :class:`faket.errors.FaketError` into a one-line message and
exit status 2.
"""

from faket.cli.main import app, main, register_commands

__all__ = ["app", "main", "register_commands"]
