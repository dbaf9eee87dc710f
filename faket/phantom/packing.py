"""The occupancy grid: places sparse stamps at random free positions, never overlapping."""

from __future__ import annotations

import numpy as np


class Packer:
    """Grand-model arrays plus random, overlap-free placement of stamps.

    Parameters
    ----------
    shape
        Volume shape ``(Z, Y, X)``.
    max_objects
        Upper bound on the number of objects (chooses the label dtype).
    n_classes
        Number of class ids (chooses the class-mask dtype).
    """

    def __init__(self, shape: tuple[int, int, int], max_objects: int, n_classes: int) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.potential = np.zeros(self.shape, dtype=np.float32)
        self.labels = np.zeros(self.shape, dtype=np.uint16 if max_objects < 65535 else np.int32)
        self.classes = np.zeros(self.shape, dtype=np.uint8 if n_classes < 255 else np.int16)
        self.strides = np.array([self.shape[1] * self.shape[2], self.shape[2], 1], dtype=np.int64)
        self.count = 0

    def place(
        self,
        offsets: np.ndarray,
        values: np.ndarray,
        class_id: int,
        rng: np.random.Generator,
        attempts: int,
    ) -> np.ndarray | None:
        """Put a stamp at a random position where it fits whole and touches nothing.

        Parameters
        ----------
        offsets
            ``(k, 3)`` int voxel offsets ``(dz, dy, dx)`` of the stamp from its centre
            (a vesicle's membrane shell does not include the centre itself).
        values
            ``(k,)`` potential at those voxels (V).
        class_id
            Written to the class mask.
        rng
            Random generator for the positions.
        attempts
            Positions to try before giving up.

        Returns
        -------
        np.ndarray or None
            The centre ``(z, y, x)`` it was placed at (its label is :attr:`count`), or None.
        """
        low = -offsets.min(axis=0)
        high = np.asarray(self.shape) - 1 - offsets.max(axis=0)
        if np.any(high < low):
            return None
        flat_offsets = offsets.astype(np.int64) @ self.strides
        labels = self.labels.reshape(-1)
        centres = rng.integers(low, high + 1, size=(attempts, 3))
        # When the centre voxel is part of the stamp, testing it first rejects most misses.
        quick = bool((offsets == 0).all(axis=1).any())
        for centre in centres:
            base = int(centre @ self.strides)
            if (quick and labels[base]) or labels[base + flat_offsets].any():
                continue
            self.count += 1
            index = base + flat_offsets
            labels[index] = self.count
            self.classes.reshape(-1)[index] = class_id
            self.potential.reshape(-1)[index] = values
            return centre
        return None

    def relabel(self, new_ids: np.ndarray) -> None:
        """Renumber objects: label ``i`` becomes ``new_ids[i]`` (``new_ids[0]`` must be 0)."""
        lookup = np.asarray(new_ids, dtype=self.labels.dtype)
        # Slab by slab, in place: a full-size temporary would double the labels' memory.
        step = max(1, (1 << 24) // (self.shape[1] * self.shape[2]))
        for start in range(0, self.shape[0], step):
            part = self.labels[start : start + step]
            part[...] = lookup[part]
