"""On-disk cache of computed templates and downloaded structures.

Templates are keyed by the sha256 of the source file plus everything that changes the
result (voxel size, B-factor policy, ...), so editing a file or changing a setting never
returns a stale template. The cache lives in ``$FAKET_CACHE_DIR``, else
``$XDG_CACHE_HOME/faket``, else ``~/.cache/faket``. A cache that cannot be written (read-only
home, full disk) only costs time: templates are then recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from faket.io.atomic import atomic_path
from faket.phantom.templates import Template

#: Bump when the template computation changes, so old cache entries are ignored.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """The cache root folder (not created)."""
    if os.environ.get("FAKET_CACHE_DIR"):
        return Path(os.environ["FAKET_CACHE_DIR"]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root).expanduser() / "faket"


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def template_key(digest: str, **settings: object) -> str:
    """Cache key from a file digest and the settings that shape the template."""
    text = json.dumps({"v": CACHE_VERSION, "file": digest, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_template(cache_dir: Path | None, key: str, name: str, source: str) -> Template | None:
    """A cached template, or None when absent or unreadable (then it is rebuilt).

    A truncated or corrupt entry (a killed writer on a file system without atomic
    rename, a full disk) is deleted with a warning, so the rebuilt template replaces it.
    """
    if cache_dir is None:
        return None
    path = cache_dir / "templates" / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return Template(
                name=name,
                source=source,
                potential=stored["potential"],
                mask=stored["mask"],
                voxel_size=float(stored["voxel_size"]),
                info=json.loads(str(stored["info"])),
            )
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(
            f"template cache entry {path} is corrupt ({type(error).__name__}); rebuilding it",
            RuntimeWarning,
            stacklevel=2,
        )
        path.unlink(missing_ok=True)
        return None


def store_template(cache_dir: Path | None, key: str, template: Template) -> None:
    """Save a template under ``key`` (atomically); failures only warn."""
    if cache_dir is None:
        return
    folder = cache_dir / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{key}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                potential=template.potential,
                mask=template.mask,
                voxel_size=np.float64(template.voxel_size),
                info=np.str_(json.dumps(template.info)),
            )
    except OSError as err:
        warnings.warn(f"template cache {folder} not writable ({err}); continuing", stacklevel=2)
