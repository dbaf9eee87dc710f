"""``python -m faket``: the same as the ``faket`` command."""

from faket.cli import main

main()
