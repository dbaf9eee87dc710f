"""Atomic file writes: a reader never sees a half-written output file.

Every writer in faket writes to a hidden temporary file in the target's own folder and
then renames it onto the target with :func:`os.replace`. The rename is atomic on POSIX and
Windows as long as both names are on the same file system, which is why the temporary file
lives next to the target rather than in the system temp folder.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from faket.errors import FaketError

__all__ = [
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "check_target",
    "temporary_path",
    "write_text_atomic",
]


def check_target(path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
    """Check that a file can be written at ``path``.

    Parameters
    ----------
    path
        The output file.
    overwrite
        If False, an existing file at ``path`` is an error.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    FaketError
        If the parent folder does not exist, ``path`` is a folder, or the file exists and
        ``overwrite`` is False.
    """
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        raise FaketError(f"cannot write {target}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FaketError(
            f"cannot write {target}: folder {parent} is not writable; choose another output "
            "folder or change its permissions"
        )
    if target.is_dir():
        raise FaketError(f"cannot write {target}: it is a folder; pass a file name")
    if target.exists() and not overwrite:
        raise FaketError(
            f"{target} already exists; delete it, choose another name, or allow overwriting"
        )
    return target


_TEMPORARY = re.compile(r"^\..+\.tmp-[0-9a-f]{12}$")
_OF_TARGET = r"^\.{}\.tmp-[0-9a-f]{{12}}$"


def remove_stale_temporaries(
    folder: str | os.PathLike[str], *, target: str | None = None
) -> list[Path]:
    """Delete what atomic writes into ``folder`` left behind when their process died.

    A process killed mid-write (SIGKILL, power loss) cannot remove its temporary file.
    Call this only where no other process is writing into ``folder`` (or, with
    ``target``, that one file) at the same time, e.g. at the start of a resumed run's
    work on that folder, or of a command that writes ``target``.

    Parameters
    ----------
    folder
        The folder to clean.
    target
        Only the temporaries of this file name (``.NAME.tmp-*``); default all.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = _TEMPORARY if target is None else re.compile(_OF_TARGET.format(re.escape(target)))
    stale = [p for p in folder.iterdir() if p.is_file() and pattern.match(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def temporary_path(target: str | os.PathLike[str]) -> Path:
    """A fresh hidden name next to ``target`` for its temporary file (``.NAME.tmp-HEX``).

    :func:`remove_stale_temporaries` recognises such names.
    """
    target = Path(target)
    # A random suffix keeps concurrent writers of the same target from clobbering each
    # other's temporary files; the leading dot hides it from casual directory listings.
    return target.with_name(f".{target.name}.tmp-{secrets.token_hex(6)}")


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block exits cleanly.

    The caller writes the complete file to the yielded path. On a clean exit it is
    renamed onto ``path``; if the block raises, the temporary file is removed and ``path``
    is left exactly as it was.

    Parameters
    ----------
    path
        The final output file. Its folder must exist.
    overwrite
        If False, raise :class:`FaketError` when ``path`` already exists.

    Yields
    ------
    Path
        A not-yet-existing file name in the same folder as ``path``.
    """
    target = check_target(path, overwrite=overwrite)
    tmp = temporary_path(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        # BaseException so that Ctrl-C also cleans up the temporary file.
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", *, overwrite: bool = True
) -> Iterator[IO[Any]]:
    """Yield an open file handle whose contents replace ``path`` on a clean exit.

    Parameters
    ----------
    path
        The final output file. Its folder must exist.
    mode
        ``"w"`` for UTF-8 text (with ``"\\n"`` line endings) or ``"wb"`` for bytes.
    overwrite
        If False, raise :class:`FaketError` when ``path`` already exists.

    Yields
    ------
    IO
        A file handle open for writing to the temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        if mode == "w":
            with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
                yield handle
        else:
            with open(tmp, "wb") as handle:
                yield handle


def write_text_atomic(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, ``"\\n"`` line endings).

    Parameters
    ----------
    path
        The output file. Its folder must exist.
    text
        The complete file contents.
    overwrite
        If False, raise :class:`FaketError` when ``path`` already exists.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_write(path, "w", overwrite=overwrite) as handle:
        handle.write(text)
    return Path(path)


@contextmanager
def atomic_folder(
    path: str | os.PathLike[str], *, overwrite: bool = False, marker: str | None = None
) -> Iterator[Path]:
    """Yield a hidden staging folder that becomes ``path`` when the block exits cleanly.

    The caller fills the staging folder (next to ``path``, so the final rename stays on
    one file system). On a clean exit it replaces ``path``; if the block raises, it is
    deleted and ``path`` is left as it was.

    Parameters
    ----------
    path
        The final folder. Its parent must exist.
    overwrite
        Replace an existing ``path`` (only one that holds ``marker``, when given, so that
        no unrelated folder is ever deleted).
    marker
        A file that an earlier output of the same kind holds (e.g. a config file).

    Yields
    ------
    Path
        The empty staging folder.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise FaketError(f"cannot write {target}: folder {target.parent} does not exist")
    if target.exists():
        if not target.is_dir():
            raise FaketError(f"{target} is a file; pass a folder")
        if any(target.iterdir()):
            if not overwrite:
                raise FaketError(f"{target} already exists; pass --overwrite or another folder")
            if marker is not None and not (target / marker).is_file():
                raise FaketError(
                    f"{target} is not empty and holds no {marker}; refusing to replace it"
                )
    staging = temporary_path(target)
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            # Two renames: the old folder only disappears once the new one is complete.
            retired = temporary_path(target)
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
