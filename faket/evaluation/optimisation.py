"""The pieces of a training step: losses, training patches, step-size schedule and
weight averaging.

Training patches are centred on particles (plus a random shift) and rotated by 180°
at random, which keeps the missing wedge where it was. The loss is the soft Dice loss
over all classes (DeepFinder's Tversky loss with α = β = 0.5), optionally plus
cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from faket.evaluation.train_config import TrainConfig


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss averaged over classes.

    Parameters
    ----------
    logits : tensor, shape (B, C, Z, Y, X)
    target : tensor, shape (B, Z, Y, X), int labels in 0..C-1

    Returns
    -------
    tensor, scalar
        ``1 - mean_c (2 Σ p g + eps) / (Σ p + Σ g + eps)`` over batch and voxels; a
        class absent from the batch contributes ~1 until its probabilities vanish.
    """
    probabilities = torch.softmax(logits, dim=1)
    truth = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(probabilities.dtype)
    dims = (0, 2, 3, 4)
    overlap = (probabilities * truth).sum(dims)
    total = probabilities.sum(dims) + truth.sum(dims)
    return 1.0 - ((2.0 * overlap + eps) / (total + eps)).mean()


def training_loss(logits: torch.Tensor, target: torch.Tensor, ce_weight: float) -> torch.Tensor:
    """Soft Dice loss plus ``ce_weight`` x cross-entropy (shapes as :func:`dice_loss`)."""
    loss = dice_loss(logits, target)
    if ce_weight > 0:
        # Cross-entropy as log-softmax and gather: CUDA's NLL loss has no deterministic
        # kernel, and this equals F.cross_entropy up to float rounding.
        picked = torch.log_softmax(logits, dim=1).gather(1, target.long().unsqueeze(1))
        loss = loss - ce_weight * picked.mean()
    return loss


class PatchSampler:
    """Particle-centred training patches with jitter and random 180° rotations (about
    the tilt axis Y, or with ``axes="xyz"`` about Z, Y or X)."""

    def __init__(
        self, volumes, labels, samples, patch: int, jitter: int, rotate: bool, rng, axes="y"
    ):
        self.volumes, self.labels, self.samples = volumes, labels, samples
        self.patch, self.jitter, self.rotate, self.rng = patch, jitter, rotate, rng
        self.axes = axes

    def epoch(self, batch_size: int, max_batches: int | None) -> list[np.ndarray]:
        """Indices of the samples of each batch of one epoch (random order)."""
        order = self.rng.permutation(len(self.samples))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return batches[:max_batches] if max_batches else batches

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, 1, P, P, P)`` float32 patches and ``(B, P, P, P)`` int64 labels."""
        images, targets = [], []
        for index in indices:
            tomo, centre = self.samples[index]
            volume, labels = self.volumes[tomo], self.labels[tomo]
            shift = self.rng.integers(-self.jitter, self.jitter + 1, size=3)
            start = np.clip(np.rint(centre).astype(int) + shift - self.patch // 2, 0, None)
            start = np.minimum(start, np.array(volume.shape) - self.patch)
            box = tuple(slice(s, s + self.patch) for s in start)
            image, target = volume[box], labels[box]
            if self.rotate:
                flip = self._rotation()
                image, target = image[flip], target[flip]
            images.append(image)
            targets.append(target)
        return np.stack(images)[:, None].copy(), np.stack(targets).astype(np.int64)

    def _rotation(self) -> tuple[slice, slice, slice]:
        """Index of a random 180° rotation (ZYX axes): about Y with probability 1/2 (axes
        ``y``), or about Z, Y, X or none with 1/4 each (``xyz``). A 180° rotation reverses
        the two axes orthogonal to it, so the particle is turned, not mirrored, and the
        wedge (symmetric in kx, ky and kz) is unchanged."""
        keep, rev = slice(None), slice(None, None, -1)
        if self.axes == "y":
            return (rev, keep, rev) if self.rng.random() < 0.5 else (keep, keep, keep)
        choice = int(self.rng.integers(4))
        return [(keep, keep, keep), (keep, rev, rev), (rev, keep, rev), (rev, rev, keep)][choice]


def pad_to_patch(volume: np.ndarray, patch: int) -> np.ndarray:
    """``volume`` zero-padded at the far end of every axis shorter than ``patch``."""
    shape = tuple(max(s, patch) for s in volume.shape)
    if shape == volume.shape:
        return volume
    out = np.zeros(shape, dtype=volume.dtype)
    out[tuple(slice(0, s) for s in volume.shape)] = volume
    return out


class WeightAverage:
    """Running mean of a network's weights and buffers over the steps from ``start`` on
    (stochastic weight averaging, Izmailov et al. 2018).

    A mean over the late part of a run lands nearer the centre of the flat region the
    iterates wander in than any single iterate does, which makes runs with different
    seeds end more alike; batch-norm statistics are averaged alongside the weights.

    Parameters
    ----------
    network : the network being trained.
    start : number of gradient steps after which averaging begins.
    """

    def __init__(self, network: torch.nn.Module, start: int):
        self.start = start
        self.averaged = torch.optim.swa_utils.AveragedModel(network, use_buffers=True)

    @property
    def count(self) -> int:
        """Steps averaged so far."""
        return int(self.averaged.n_averaged)

    def update(self, network: torch.nn.Module, steps_done: int) -> None:
        """Take in the weights after step ``steps_done`` (1-based) when it is due."""
        if steps_done > self.start:
            self.averaged.update_parameters(network)

    def tested(self, network: torch.nn.Module) -> torch.nn.Module:
        """The network to validate and keep: the average once it holds a step."""
        return self.averaged.module if self.count else network


def steps_per_epoch(n_samples: int, config: TrainConfig) -> int:
    """Gradient steps of one epoch: one per batch of ``n_samples`` training particles,
    at most ``config.max_batches``."""
    batches = math.ceil(n_samples / config.batch_size)
    return min(batches, config.max_batches) if config.max_batches else batches


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate before gradient step ``step`` (0-based).

    Parameters
    ----------
    step : steps taken so far.
    total_steps : steps of the whole run.
    warmup_steps : linear warm-up: factor ``(step + 1) / (warmup_steps + 1)`` first.
    schedule : ``constant`` (1 after the warm-up) or ``cosine``
        (``(1 + cos(pi t)) / 2`` with ``t`` the fraction of the post-warm-up steps taken,
        so the last step is small and the run ends in a minimum rather than bouncing
        around one, which makes runs with different seeds end alike).

    Returns
    -------
    float in (0, 1].
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    decaying = max(total_steps - warmup_steps, 1)
    fraction = min((step - warmup_steps) / decaying, 1.0)
    # Never exactly 0: the last step still moves, and Adam's state stays meaningful.
    return max(0.5 * (1.0 + math.cos(math.pi * fraction)), 1e-3)


def learning_rate_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, schedule: str
) -> torch.optim.lr_scheduler.LambdaLR:
    """The step-size schedule of :func:`learning_rate_factor`; step it after every
    ``optimizer.step()``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, warmup_steps, schedule)
    )
