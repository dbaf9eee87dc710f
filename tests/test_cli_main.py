"""The command table: lazy registration imports one module per command, and no more."""

from __future__ import annotations

import ast
import subprocess
import sys

import click
import typer

from faket.cli.main import COMMAND_MODULES, register_commands


def test_command_table_matches_what_the_modules_register() -> None:
    group = typer.main.get_command(register_commands())
    registered = set(group.list_commands(click.Context(group)))
    assert registered == set(COMMAND_MODULES)


def test_a_command_imports_only_its_own_module() -> None:
    # A fresh interpreter: which faket.cli modules does `faket info` import?
    code = (
        "import sys\n"
        "from faket.cli.main import main\n"
        "try:\n    main(['info'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('faket.cli.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert "faket.cli.info" in loaded
    assert not {"faket.cli.style", "faket.cli.evaluate", "faket.cli.microscope"} & set(loaded)


def test_python_dash_m_faket_is_the_faket_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faket", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("faket ")
    bad = subprocess.run([sys.executable, "-m", "faket", "nosuch"], capture_output=True, text=True)
    assert bad.returncode == 2 and "No such command" in bad.stderr
