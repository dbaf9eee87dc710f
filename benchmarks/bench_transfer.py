"""Cost per tilt of FAKET's two styles: the one-step VGG-19 style transfer and ``transfer``.

Run ``python benchmarks/bench_transfer.py [--size 320] [--tilts 8] [--repeats 3]``.
Both sides run on the same synthetic tilts in this process, interleaved, ``--repeats``
times; printed are the fastest wall and CPU seconds per tilt of each and their ratio
(transfer / NST). The NST side is :func:`faket.style.style_transfer` with seeded random
weights (what a machine without ImageNet weights runs: the same arithmetic as ImageNet
weights); the transfer side is :func:`faket.noise.transfer.apply_transfer` with a model
estimated once from two synthetic (style, noiseless) pairs (its estimation, once per
dataset, is timed separately).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.fft
import torch

from faket.noise.transfer import apply_transfer, estimate_transfer
from faket.style import style_transfer


def _stacks(n_tilts: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    clean = scipy.fft.irfft2(
        scipy.fft.rfft2(rng.standard_normal((n_tilts, size, size)))
        * np.exp(-200 * (np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size) ** 2)),
        s=(size, size),
    ).astype(np.float32)
    style = (-clean + 0.5 * rng.standard_normal(clean.shape)).astype(np.float32)
    noisy = (clean + 0.5 * rng.standard_normal(clean.shape)).astype(np.float32)
    return clean, style, noisy


def _timed(function) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320, help="tilt side (pixels)")
    parser.add_argument("--tilts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    clean, style, noisy = _stacks(args.tilts, args.size)
    wall, cpu = _timed(lambda: estimate_transfer([style, style], [clean, clean]))
    model = estimate_transfer([style, style], [clean, clean])
    mean, std = style.mean(axis=(1, 2)), style.std(axis=(1, 2))
    sides = {
        "nst (random VGG-19, 1 step)": lambda: style_transfer(
            clean, style, noisy, weights="random", device="cpu", seed=0
        ),
        "transfer": lambda: apply_transfer(clean, model, 0, mean, std),
    }
    best = {name: (np.inf, np.inf) for name in sides}
    for _ in range(args.repeats):  # interleaved: both sides see the same machine state
        for name, side in sides.items():
            w, c = _timed(side)
            best[name] = (min(best[name][0], w), min(best[name][1], c))
    print(f"{args.tilts} tilts of {args.size}^2, torch threads {torch.get_num_threads()}")
    print(f"transfer model estimation (2 pairs): {wall:.3f} s wall, {cpu:.3f} s CPU")
    print("| style | wall s / tilt | CPU s / tilt |")
    print("|---|---|---|")
    for name, (w, c) in best.items():
        print(f"| {name} | {w / args.tilts:.4f} | {c / args.tilts:.4f} |")
    (nw, nc), (tw, tc) = best.values()
    print(f"| ratio transfer / nst | {tw / nw:.3f} | {tc / nc:.3f} |")


if __name__ == "__main__":
    main()
