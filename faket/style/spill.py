"""A full-size activation map kept in a temporary file, written and read by rectangles.

The tiled style transfer (:mod:`faket.style.tiled`) needs the content image's
activations at the content layers twice: for the loss sums of its forward pass and for
the gradients of its backward pass. Recomputing them costs a forward pass of the
network's most expensive layers (conv1_2 to conv2_2 run at full and half resolution);
keeping them in memory costs 2 GiB for a 4096 x 4096 tilt (128 channels of relu2_2 at
half resolution), more than the rest of the tilt's stored maps. Here they go to an
unlinked temporary file instead, which the operating system keeps in its page cache
while memory is free and writes to disk when it is not: never part of the process's
resident memory, and freed by the system when the file is closed, even if the process
dies. The values are stored as they are (float32), so reading them back is exact.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

__all__ = ["SpilledMap"]


class SpilledMap:
    """A ``(1, C, H, W)`` float32 map in a temporary file (laid out channels-last).

    Parameters
    ----------
    channels, height, width : int
        Shape of the map.
    directory : str, optional
        Where the file goes (default: :func:`tempfile.gettempdir`, i.e. ``$TMPDIR``).

    Rectangles are written with :meth:`write` and read with :meth:`read`, one row of
    positions per system call; a read returns a new tensor (never a view of the file),
    so only the rectangle being used occupies memory.
    """

    def __init__(self, channels: int, height: int, width: int, directory: str | None = None):
        self.shape = (1, int(channels), int(height), int(width))
        self._row_bytes = self.shape[1] * 4
        self._file = tempfile.TemporaryFile(dir=directory)
        self._fd = self._file.fileno()
        # Full length at once (a sparse file: no disk used until written), so that
        # positions never written read as zeros.
        os.ftruncate(self._fd, self._offset(self.shape[2], 0))

    def _offset(self, y: int, x: int) -> int:
        return (y * self.shape[3] + x) * self._row_bytes

    def write(self, y0: int, x0: int, block: torch.Tensor) -> None:
        """Store ``block`` (1, C, h, w) at positions ``[y0, y0 + h) x [x0, x0 + w)``."""
        values = block.detach().float()[0].permute(1, 2, 0).cpu().numpy()
        values = np.ascontiguousarray(values)  # (h, w, C): rows of positions, channels last
        for row in range(values.shape[0]):
            data = memoryview(values[row]).cast("B")
            written = os.pwrite(self._fd, data, self._offset(y0 + row, x0))
            if written != len(data):
                raise OSError(f"short write to the spill file ({written} of {len(data)} bytes)")

    def read(self, rows: slice, columns: slice) -> torch.Tensor:
        """The stored values at ``rows x columns`` as a channels-last (1, C, h, w) tensor."""
        y0, y1 = rows.start, rows.stop
        x0, x1 = columns.start, columns.stop
        values = np.empty((y1 - y0, x1 - x0, self.shape[1]), dtype=np.float32)
        for row in range(values.shape[0]):
            data = memoryview(values[row]).cast("B")
            count = os.preadv(self._fd, [data], self._offset(y0 + row, x0))
            if count != len(data):
                raise OSError(f"short read from the spill file ({count} of {len(data)} bytes)")
        return torch.from_numpy(values).permute(2, 0, 1)[None]

    def close(self) -> None:
        """Delete the file (its space goes back to the system)."""
        self._file.close()

    def __enter__(self) -> SpilledMap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
