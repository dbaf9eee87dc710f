"""Progress bars for long loops, silent when not wanted (``-q``, tests, pipes, workers).

A bar draws only when it is enabled *and* standard error is an interactive terminal:
redirected to a file or a pipe, rich cannot redraw a line in place, and each bar would
leave blank or repeated lines behind (20-45 of them in a ``faket run`` log).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["bars_visible", "progress", "stderr_console"]


def stderr_console():
    """The rich console on standard error that every bar draws on."""
    from rich.console import Console

    return Console(stderr=True)


def bars_visible(enabled: bool = True) -> bool:
    """Whether a bar would draw: ``enabled`` and standard error is a terminal."""
    return enabled and stderr_console().is_terminal


def progress(
    items: Iterable[T], description: str, total: int | None = None, enabled: bool = True
) -> Iterator[T]:
    """Iterate over ``items``, drawing a progress bar on stderr when it is visible.

    Parameters
    ----------
    items
        What to iterate over.
    description
        The bar's label.
    total
        Number of items when ``items`` has no length.
    enabled
        False (``-q``) never draws, not even a blank line.
    """
    if not bars_visible(enabled):
        yield from items
        return
    from rich.progress import track

    yield from track(
        items, description=description, total=total, console=stderr_console(), transient=True
    )
