"""The optimiser of the style transfer: Adam on the iterate and its moving average."""

from __future__ import annotations

import torch

__all__ = ["Adam", "Ema"]


class Ema:
    """Bias-corrected exponential moving average of the iterate (as Adam's moments).

    Parameters
    ----------
    start : Tensor
        The starting image (not modified).
    decay : float
        Weight of the old average per update (paper: 0.99).
    """

    def __init__(self, start: torch.Tensor, decay: float) -> None:
        # Seeded with the starting image, as the paper's code does: after one update the
        # corrected value is (decay * x0 + x1) / (1 + decay).
        self.decay, self.weight = decay, decay
        self.value = (1 - decay) * start

    def update(self, image: torch.Tensor) -> None:
        """Average in the next iterate."""
        self.weight *= self.decay
        self.value.mul_(self.decay).add_(image, alpha=1 - self.decay)

    def get(self) -> torch.Tensor:
        """The bias-corrected average (a new tensor)."""
        return self.value / (1 - self.weight)


class Adam:
    """Adam (Kingma & Ba 2015) on one tensor, betas 0.9/0.999, no weight decay.

    The arithmetic of ``torch.optim.Adam``'s single-tensor path (PyTorch's default on
    the CPU) operation for operation, so results equal it bit for bit. It is written out
    because ``torch.optim`` imports TorchDynamo on first use, ~3 s of every command's
    start-up. Every operation is elementwise, so the update is the same whether the
    tensor is updated whole or (``rows``) in blocks of rows, which bounds the temporary
    memory of detector-sized images; ``steps=1`` (a single step, the paper's setting)
    keeps no moments at all.
    """

    def __init__(
        self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps=1e-8, *, steps=None
    ) -> None:
        self.param, self.lr, self.eps = param, lr, eps
        self.beta1, self.beta2 = betas
        # A single step needs no moments kept: they are made (from zeros, so with the
        # same arithmetic) one block of rows at a time.
        self.single = steps == 1
        if not self.single:
            self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
            self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.steps = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor | None = None, *, rows: int | None = None) -> None:
        """Update ``param`` in place from ``grad`` (default ``param.grad``).

        Parameters
        ----------
        grad : Tensor, optional
            Gradient of the shape of ``param``.
        rows : int, optional
            Update blocks of this many rows (dimension -2) at a time.
        """
        grad = self.param.grad if grad is None else grad
        self.steps += 1
        if self.single and self.steps > 1:
            raise RuntimeError("this Adam was made for one step (steps=1)")
        bias_correction1 = 1 - self.beta1 ** float(self.steps)
        bias_correction2_sqrt = (1 - self.beta2 ** float(self.steps)) ** 0.5
        if self.single:
            tensors = (self.param, grad)
        else:
            tensors = (self.param, self.exp_avg, self.exp_avg_sq, grad)
        for block in _row_blocks(tensors, rows):
            if self.single:
                param, g = block
                m, v = torch.zeros_like(g), torch.zeros_like(g)
            else:
                param, m, v, g = block
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
            param.addcdiv_(m, denom, value=-self.lr / bias_correction1)


def _row_blocks(tensors: tuple[torch.Tensor, ...], rows: int | None):
    if rows is None:
        yield tensors
        return
    height = tensors[0].shape[-2]
    for start in range(0, height, max(1, rows)):
        yield tuple(t[..., start : start + rows, :] for t in tensors)
