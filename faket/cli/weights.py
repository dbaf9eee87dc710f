"""``faket weights``: fetch the VGG-19 weights once, and say where faket looks for them."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from faket.cli._common import OverwriteOption, QuietOption

weights_app = typer.Typer(
    help="The ImageNet VGG-19 weights of the style transfer: download (e.g. on a login node "
    "with internet), info (where faket looks).",
    no_args_is_help=True,
)


def download_command(
    to: Path | None = typer.Option(
        None, "--to", help="File or folder to write (default: the torch hub cache)."
    ),
    url: str | None = typer.Option(
        None, "--url", help="Download from here instead (a mirror; file:// works)."
    ),
    sha256: str | None = typer.Option(
        None, "--sha256", help="Expected SHA-256 (or its first hex digits) of a --url file."
    ),
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Download torchvision's ImageNet VGG-19 state dict and verify it.

    The file is checked against the SHA-256 prefix in its published name (dcbb9e9d) and
    for the VGG-19 layout before it is renamed into place. With --to, point every command
    at it with FAKET_VGG19_WEIGHTS=PATH (or --weights PATH, or nst.weights in a config).
    """
    from faket.style.weights import IMAGENET_HASH_PREFIX, WEIGHTS_ENV, download_imagenet

    expected = sha256.strip().lower() if sha256 else IMAGENET_HASH_PREFIX
    path = download_imagenet(
        to, url=url, hash_prefix=expected, progress=not quiet, overwrite=overwrite
    )
    typer.echo(f"VGG-19 weights verified: {path}", err=True)
    if to is not None:
        typer.echo(f"use them everywhere with: export {WEIGHTS_ENV}={path.resolve()}", err=True)


def _describe(path: Path) -> str:
    if not path.is_file():
        return "missing"
    return f"present, {path.stat().st_size / 1e6:.1f} MB"


def info_command() -> None:
    """Where faket looks for the ImageNet VGG-19 weights, in order, and what it finds."""
    from faket.style.weights import (
        IMAGENET_HASH_PREFIX,
        IMAGENET_URL,
        WEIGHTS_ENV,
        imagenet_cache_path,
    )

    env = os.environ.get(WEIGHTS_ENV, "").strip()
    cache = imagenet_cache_path()
    lines = [
        "--weights imagenet (the default of faket style; nst.weights imagenet/auto in a "
        "dataset config) looks, in order:",
        f"  1. ${WEIGHTS_ENV}: "
        + (f"{env} ({_describe(Path(env).expanduser())})" if env else "not set"),
        f"  2. the torch hub cache: {cache} ({_describe(cache)}; $TORCH_HOME moves it)",
        f"  3. a download of {IMAGENET_URL} into that cache (SHA-256 {IMAGENET_HASH_PREFIX}...)",
    ]
    if env and not Path(env).expanduser().is_file():
        found = f"an error: ${WEIGHTS_ENV} names no file (faket never falls back silently)"
    elif env:
        found = f"${WEIGHTS_ENV} ({env})"
    elif cache.is_file():
        found = str(cache)
    else:
        found = "nothing local: faket style would download; nst.weights auto means random"
    lines.append(f"now: {found}")
    lines.append(
        "--weights PATH (or nst.weights: PATH) uses that file; --weights random needs none."
    )
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    """Add ``weights`` (``download``, ``info``) to the ``faket`` command."""
    weights_app.command("download")(download_command)
    weights_app.command("info")(info_command)
    app.add_typer(weights_app, name="weights")
