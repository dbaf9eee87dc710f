"""Block-mean binning of images and volumes."""

from __future__ import annotations

import numpy as np
import torch

from faket.errors import FaketError


def bin_array(data: np.ndarray | torch.Tensor, factor: int, axes: tuple[int, ...]):
    """Average non-overlapping blocks of ``factor`` samples along ``axes``.

    Trailing samples that do not fill a whole block are dropped, as IMOD's
    ``binvol`` and most tomography packages do, so the binned grid starts at
    the same corner as the original.

    Parameters
    ----------
    data : array or tensor
        Any shape.
    factor : int
        Block size (>= 1); 1 returns ``data`` unchanged.
    axes : tuple of int
        Axes to bin.

    Returns
    -------
    Same type as ``data``, each binned axis of length ``n // factor``.
    """
    if factor < 1:
        raise FaketError(f"binning factor must be a positive integer, got {factor}")
    if factor == 1:
        return data
    axes = tuple(a % data.ndim for a in axes)
    for axis in axes:
        if data.shape[axis] < factor:
            raise FaketError(
                f"cannot bin an axis of {data.shape[axis]} samples by {factor}; bin less"
            )
    is_numpy = isinstance(data, np.ndarray)
    if is_numpy:
        # No copy of a large volume unless it is read-only (e.g. memory-mapped).
        array = np.ascontiguousarray(data)
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    else:
        tensor = data
    index = tuple(
        slice(0, (n // factor) * factor) if i in axes else slice(None)
        for i, n in enumerate(tensor.shape)
    )
    tensor = tensor[index]
    shape: list[int] = []
    for i, n in enumerate(tensor.shape):
        shape.extend((n // factor, factor) if i in axes else (n,))
    block_axes = tuple(i + 1 + k for k, i in enumerate(sorted(axes)))
    binned = tensor.reshape(shape).mean(dim=block_axes)
    return binned.numpy() if is_numpy else binned
