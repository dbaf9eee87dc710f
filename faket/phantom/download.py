"""Atomic models by PDB ID, downloaded once from the RCSB into the cache folder."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from faket.errors import FaketError
from faket.io.atomic import atomic_path
from faket.phantom.cache import default_cache_dir

#: Where mmCIF files are fetched from; ``{id}`` is the upper-case PDB ID.
RCSB_URL = "https://files.rcsb.org/download/{id}.cif"
#: Classic 4-character IDs (digit first) and the extended ``pdb_0000xxxx`` form.
_PDB_ID = re.compile(r"^(?:[0-9][A-Za-z0-9]{3}|pdb_[0-9]{4}[A-Za-z0-9]{4})$", re.IGNORECASE)
_MAX_BYTES = 2 * 1024**3


def is_pdb_id(text: str) -> bool:
    """Whether ``text`` looks like a PDB ID (``1bxn``, ``pdb_00001bxn``)."""
    return bool(_PDB_ID.match(text))


def fetch_pdb(
    pdb_id: str,
    cache_dir: Path | None = None,
    *,
    url: str = RCSB_URL,
    timeout: float = 30.0,
    opener: Callable[..., object] = urllib.request.urlopen,
) -> Path:
    """Path of the mmCIF file of ``pdb_id``, downloading it when not yet cached.

    Parameters
    ----------
    pdb_id
        PDB ID, case-insensitive.
    cache_dir
        Cache root; files go to ``<cache_dir>/pdb/<id>.cif``. Default
        :func:`faket.phantom.cache.default_cache_dir`.
    url
        URL template with ``{id}`` (tests point it at a local server).
    timeout
        Seconds to wait for the server.
    opener
        ``urllib.request.urlopen`` or a stand-in with the same call signature.

    Returns
    -------
    Path
        The cached mmCIF file.

    Raises
    ------
    FaketError
        If the ID is malformed, or the download fails (offline, unknown ID); the message
        says how to pass a local file instead.
    """
    if not is_pdb_id(pdb_id):
        raise FaketError(f"{pdb_id!r} is not a PDB ID (e.g. 1bxn); pass an ID or a file path")
    folder = (cache_dir or default_cache_dir()) / "pdb"
    target = folder / f"{pdb_id.lower()}.cif"
    if target.is_file() and target.stat().st_size > 0:
        return target
    address = url.format(id=pdb_id.upper())
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            _download(address, tmp, timeout, opener)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # leave no trace of a failed first download
        raise _explain(err, pdb_id, address) from None
    return target


def _explain(err: BaseException, pdb_id: str, address: str) -> FaketError:
    if isinstance(err, urllib.error.HTTPError):
        return FaketError(
            f"cannot download PDB {pdb_id} from {address} (HTTP {err.code}); check the ID, "
            "or download the .cif/.pdb yourself and pass its path instead"
        )
    reason = getattr(err, "reason", None) or err
    return FaketError(
        f"cannot download PDB {pdb_id} from {address} (offline? {reason}); download the "
        ".cif/.pdb elsewhere and pass its local path instead of the ID"
    )


def _download(address: str, tmp: Path, timeout: float, opener: Callable[..., object]) -> None:
    total = 0
    with opener(address, timeout=timeout) as response, open(tmp, "wb") as handle:
        for block in iter(lambda: response.read(1 << 20), b""):
            total += len(block)
            if total > _MAX_BYTES:
                raise OSError(f"more than {_MAX_BYTES} bytes; not an mmCIF file")
            handle.write(block)
    if total == 0:
        raise OSError("the server sent an empty file")
