"""Benchmark: noise estimation + NOISY apply, closed form vs the paper's bisection.

Usage::

    python benchmarks/bench_noise.py              # 61 x 1024 x 1024 float32
    python benchmarks/bench_noise.py --size 256   # quicker

Prints one row per approach, all measured in this run on the same synthetic pair:

- ``white (arrays)``: :func:`faket.noise.estimate_noise_model` without the noise
  spectrum (``spectrum=False``) + :func:`faket.noise.apply_noise` NOISY on in-memory
  arrays: the paper's white path.
- ``spectral (arrays)``: the same estimate with the 2-D noise spectrum + SPECTRAL apply
  (coloured noise). The two are interleaved ``--repeats`` times (fastest kept); their
  ratio is printed.
- ``closed form (files)``: the default estimate (with spectrum) + NOISY from
  memory-mapped MRC files, tilt by tilt
  (``estimate_noise_model_files`` + ``apply_noise_file``; writing the output included).
- ``paper: bisection``: per-tilt bisection search for r (:func:`bisection_r_sigma`, the
  paper's method, tolerance 1e-5), then the paper's whole-stack float64 noise addition.

Peak memory is what Python/numpy allocated during the step (tracemalloc), on top of the
inputs that already exist.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faket.io import write_mrc
from faket.noise import (
    apply_noise,
    apply_noise_file,
    bisection_r_sigma,
    estimate_noise_model,
    estimate_noise_model_files,
)
from faket.noise.model import NoiseCurves, NoiseModel


def synthetic_pair(n_tilts: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth-ish clean stack and style = a * clean + b + N(0, s) with tilt-dependent a, s."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((n_tilts, size // 8, size // 8), dtype=np.float32)
    clean = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    clean += 0.3 * rng.standard_normal(clean.shape, dtype=np.float32)
    style = np.empty_like(clean)
    for i, t in enumerate(np.linspace(-1.0, 1.0, n_tilts)):
        noise = rng.standard_normal(clean.shape[1:], dtype=np.float32)
        style[i] = (1.5 - 0.5 * t * t) * clean[i] + 100.0 + (1.0 + t * t) * noise
    return style, clean


def measure(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``step``; return its result, seconds and peak MiB allocated while it ran."""
    tracemalloc.start()
    start = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def timed(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``step``; return its result, wall seconds and CPU seconds (no tracemalloc)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def white_versus_spectral(style, clean, angles, seed: int, repeats: int) -> None:
    """Estimate + apply, the paper's white path against the spectral one, interleaved."""

    def white():
        model = estimate_noise_model([style], [clean], angles, 2, spectrum=False)
        return apply_noise(clean, model, "noisy", seed)

    def spectral():
        model = estimate_noise_model([style], [clean], angles, 2)
        return apply_noise(clean, model, "spectral", seed)

    best = {"white": (np.inf, np.inf), "spectral": (np.inf, np.inf)}
    for _ in range(repeats):
        for name, step in (("white", white), ("spectral", spectral)):
            _, wall, cpu = timed(step)
            best[name] = min(best[name], (wall, cpu))
    (w_wall, w_cpu), (s_wall, s_cpu) = best["white"], best["spectral"]
    print(f"fastest of {repeats}, interleaved: estimate + apply")
    print(f"{'path':<22} {'wall s':>8} {'CPU s':>8}")
    print(f"{'white (NOISY)':<22} {w_wall:>8.2f} {w_cpu:>8.2f}")
    print(f"{'spectral (SPECTRAL)':<22} {s_wall:>8.2f} {s_cpu:>8.2f}")
    print(f"spectral / white: {s_wall / w_wall:.2f}x wall, {s_cpu / w_cpu:.2f}x CPU (goal <= 2x)")


def paper_estimate(style: np.ndarray, clean: np.ndarray, angles: np.ndarray) -> NoiseModel:
    """The paper's estimation: bisection for r on every tilt, then an order-2 model."""
    rows = []
    for i in range(style.shape[0]):
        r, sigma = bisection_r_sigma(style[i], clean[i], tolerance=1e-5)
        tilt = style[i].astype(np.float64)
        rows.append((r, sigma, tilt.mean(), tilt.std()))
    return NoiseModel.from_curves([NoiseCurves(*np.array(rows).T)], angles, order=2)


def paper_apply(clean: np.ndarray, model: NoiseModel, seed: int) -> np.ndarray:
    """The paper's apply: whole-stack float64 standardize, scale, add noise, match stats."""
    values = clean.astype(np.float64)
    values -= values.mean(axis=(1, 2), keepdims=True)
    values /= values.std(axis=(1, 2), keepdims=True)
    values *= model.r[:, None, None]
    rng = np.random.default_rng(seed)
    values += rng.normal(size=values.shape) * model.sigma[:, None, None]
    values -= values.mean(axis=(1, 2), keepdims=True)
    values *= (model.style_std / values.std(axis=(1, 2)))[:, None, None]
    values += model.style_mean[:, None, None]
    return values.astype(np.float32)


def run(n_tilts: int, size: int, seed: int, repeats: int) -> None:
    angles = np.linspace(-60.0, 60.0, n_tilts)
    style, clean = synthetic_pair(n_tilts, size, seed)
    white_versus_spectral(style, clean, angles, seed, repeats)
    rows = []

    model, t_est, m_est = measure(
        lambda: estimate_noise_model([style], [clean], angles, 2, spectrum=False)
    )
    _, t_app, m_app = measure(lambda: apply_noise(clean, model, "noisy", seed))
    rows.append(("white (arrays)", t_est, t_app, max(m_est, m_app)))
    spectral, t_est, m_est = measure(lambda: estimate_noise_model([style], [clean], angles, 2))
    _, t_app, m_app = measure(lambda: apply_noise(clean, spectral, "spectral", seed))
    rows.append(("spectral (arrays)", t_est, t_app, max(m_est, m_app)))

    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / name for name in ("style.mrc", "clean.mrc", "out.mrc")]
        write_mrc(paths[0], style, 1.0)
        write_mrc(paths[1], clean, 1.0)
        file_model, t_est, m_est = measure(
            lambda: estimate_noise_model_files([paths[0]], [paths[1]], angles, 2)
        )
        _, t_app, m_app = measure(
            lambda: apply_noise_file(paths[1], file_model, "noisy", paths[2], seed=seed)
        )
        rows.append(("closed form (files)", t_est, t_app, max(m_est, m_app)))

    paper_model, t_est, m_est = measure(lambda: paper_estimate(style, clean, angles))
    _, t_app, m_app = measure(lambda: paper_apply(clean, paper_model, seed))
    rows.append(("paper: bisection", t_est, t_app, max(m_est, m_app)))

    raw_gap = np.abs(model.raw[0].r - paper_model.raw[0].r).max()
    print(f"noise estimation + apply, {n_tilts} x {size} x {size} float32 (traced memory)")
    print(f"{'approach':<22} {'estimate s':>10} {'apply s':>9} {'total s':>9} {'peak MiB':>9}")
    for name, t_e, t_a, peak in rows:
        print(f"{name:<22} {t_e:>10.2f} {t_a:>9.2f} {t_e + t_a:>9.2f} {peak:>9.0f}")
    print(f"max |r closed form - r bisection| over tilts: {raw_gap:.2e} (bound 2.5e-5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="tilt width/height (pixels)")
    parser.add_argument("--tilts", type=int, default=61, help="number of tilts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="white/spectral repeats")
    args = parser.parse_args()
    if args.size < 8 or args.size % 8:
        parser.error("--size must be a positive multiple of 8")
    run(args.tilts, args.size, args.seed, args.repeats)


if __name__ == "__main__":
    main()
