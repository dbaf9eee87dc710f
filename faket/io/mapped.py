"""Memory-mapped MRC stacks read and written tilt by tilt in bounded resident memory.

Reading a memory-mapped file pages it in, and writing one dirties its pages; both stay
in the process's resident set (and in its peak) until they are unmapped, although the
kernel could drop them. A detector-sized tilt series (61 x 4096 x 4096 float32 = 4 GiB)
read through a map would therefore look like a 4 GiB process. :func:`release_pages` hands
a mapping's pages back after each tilt (the data stays in the page cache, so reading it
again is cheap), and :class:`MrcStackWriter` writes an output stack through a map one
tilt at a time, under a work name that becomes the output only when it is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np

from faket import __version__
from faket.io._mrcutil import chunked_stats, release_pages
from faket.io.atomic import check_target

__all__ = ["MrcStackWriter", "release_pages"]


class MrcStackWriter:
    """Write a float32 MRC stack ``(n, Y, X)`` slice by slice through a memory map.

    The data goes to ``work_path`` (default: a hidden name next to ``path``);
    :meth:`commit` writes the header statistics and renames it onto ``path``, so ``path``
    only ever holds a complete stack. An existing work file of the same shape is reopened
    (``resume=True``), which lets an interrupted run continue where it stopped.

    Parameters
    ----------
    path : path
        The final output file; its folder must exist.
    shape : tuple
        ``(n, Y, X)``.
    voxel_size : float
        Pixel size in Å for the header; 0 leaves it unset (unknown).
    work_path : path, optional
        Where the data lives until :meth:`commit`.
    resume : bool
        Reopen a matching ``work_path`` instead of starting from zeros.
    stack : bool
        Mark the header as an image stack (a tilt series, not a volume; see
        :func:`faket.io.write_mrc`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        shape: tuple[int, int, int],
        voxel_size: float,
        *,
        work_path: str | os.PathLike[str] | None = None,
        resume: bool = False,
        stack: bool = False,
    ) -> None:
        self.path = check_target(path)
        self.shape = tuple(int(n) for n in shape)
        self.voxel_size = float(voxel_size)
        self.stack = bool(stack)
        default = self.path.with_name(f".{self.path.name}.partial")
        self.work_path = Path(work_path) if work_path is not None else default
        self.resumed = resume and self._matching_work_file()
        if self.resumed:
            self._mrc = mrcfile.mmap(self.work_path, mode="r+")
        else:
            self._mrc = mrcfile.new_mmap(
                self.work_path, shape=self.shape, mrc_mode=2, overwrite=True
            )

    def _matching_work_file(self) -> bool:
        if not self.work_path.is_file():
            return False
        try:
            with mrcfile.mmap(self.work_path, mode="r") as mrc:
                return mrc.data.shape == self.shape and mrc.data.dtype == np.float32
        except (OSError, ValueError):  # damaged: start again
            return False

    @property
    def data(self) -> np.ndarray:
        """The memory-mapped data (read what was written; write through :meth:`write`)."""
        return self._mrc.data

    def write(self, index: int, tilt: np.ndarray) -> None:
        """Store ``tilt`` (Y, X) as slice ``index`` and release its pages."""
        self._mrc.data[index] = tilt
        release_pages(self._mrc.data)

    def flush(self) -> None:
        """Make everything written so far durable in the work file."""
        self._mrc.flush()

    def commit(self) -> Path:
        """Finish the header, close, and rename the work file onto ``path``."""
        data = self._mrc.data
        stats = chunked_stats(data)
        if self.stack:
            self._mrc.set_image_stack()
        header = self._mrc.header
        header.dmin, header.dmax = stats["min"], stats["max"]
        header.dmean, header.rms = stats["mean"], stats["std"]
        if self.voxel_size > 0:
            self._mrc.voxel_size = self.voxel_size
        # As faket.io.write_mrc: a fixed label, so equal data gives byte-identical files.
        header.label[0] = f"faket {__version__}".ljust(80).encode("ascii")
        header.nlabl = 1
        self._mrc.close()
        os.replace(self.work_path, self.path)
        return self.path

    def close(self) -> None:
        """Close without committing; the work file stays (for a later resume)."""
        self._mrc.close()

    def discard(self) -> None:
        """Close and delete the work file."""
        self._mrc.close()
        self.work_path.unlink(missing_ok=True)

    def __enter__(self) -> MrcStackWriter:
        return self

    def __exit__(self, *exc) -> None:
        # Without commit() (an error, Ctrl-C) the work file stays, for a resume.
        self.close()
