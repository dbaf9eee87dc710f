"""Benchmark: DeepFinder training step, epoch estimate and whole-tomogram inference.

Usage::

    python benchmarks/bench_evaluation.py                        # 200 x 512 x 512, small preset
    python benchmarks/bench_evaluation.py --presets small paper --device cuda
    python benchmarks/bench_evaluation.py --shape 64 160 160 --presets small
    python benchmarks/bench_evaluation.py --presets cpu --variants --rounds 2  # bf16 / BN

A SHREC-like grand model (built-in classes) provides the particle list and the ideal label
volume (target balls: what a perfect network would output). For each training preset of
:data:`faket.evaluation.train_config.PRESETS` it prints

- the time of one gradient step (a batch of particle-centred patches, forward + backward +
  Adam), averaged over ``--steps`` steps after one warm-up step, and the resulting time of
  one epoch over all the tomogram's particles (the paper's epoch: one pass over them);
- the time to segment the whole tomogram by overlapping patches (untrained weights: the
  cost does not depend on them) and the process's peak resident memory;
- the time to cluster the ideal label volume into particles (mean-shift per class).

``--variants`` also times the step of each preset with batch normalisation off and on,
in float32 and in bf16 autocast, the four interleaved over ``--rounds`` rounds (the
machine is shared: each round gives every variant the same conditions).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch

from faket.evaluation.inference import cluster, inference_patch_size, segment
from faket.evaluation.network import DeepFinder, place_network
from faket.evaluation.optimisation import training_loss
from faket.evaluation.targets import class_radii, sphere_labels
from faket.evaluation.train_config import PRESETS, train_config
from faket.phantom import builtin_names, make_grand_model


def peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def ideal_labels(model, voxel_size: float) -> tuple[np.ndarray, list[str], dict[str, float]]:
    """Target balls of every particle (label k = class_names[k - 1])."""
    names = sorted(set(model.particles["class_name"]))
    radii = class_radii(names, model.classes, voxel_size)
    label_of = {name: k + 1 for k, name in enumerate(names)}
    particles = model.particles
    centres = particles[["z", "y", "x"]].to_numpy(np.float64)
    labels = particles["class_name"].map(label_of).to_numpy()
    balls = particles["class_name"].map(radii).to_numpy()
    return sphere_labels(model.potential.shape, centres, labels, balls), names, radii


def time_training_step(network, volume, labels, centres, config, steps: int, device) -> float:
    """Mean seconds per gradient step over ``steps`` steps (after one warm-up step)."""
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(0)
    patch, half = config.patch_size, config.patch_size // 2
    times = []
    for step in range(steps + 1):
        chosen = centres[rng.integers(0, len(centres), config.batch_size)]
        starts = np.clip(np.rint(chosen).astype(int) - half, 0, np.array(volume.shape) - patch)
        boxes = [tuple(slice(s, s + patch) for s in start) for start in starts]
        images = torch.from_numpy(np.stack([volume[b] for b in boxes])[:, None].copy())
        targets = torch.from_numpy(np.stack([labels[b] for b in boxes]).astype(np.int64))
        started = time.perf_counter()
        loss = training_loss(network(images.to(device)), targets.to(device), config.ce_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - started)
    return float(np.mean(times))


def step_variants(preset: str, n_classes: int, data, args, device) -> None:
    """Print the step time of ``preset`` with batch norm off/on, in fp32 and bf16."""
    settings = train_config(preset)
    variants = [(norm, precision) for norm in (False, True) for precision in ("fp32", "bf16")]
    times: dict[tuple, list[float]] = {v: [] for v in variants}
    for _round in range(args.rounds):
        for norm, precision in variants:
            torch.manual_seed(args.seed)
            network = DeepFinder(n_classes, settings.widths, norm, precision)
            network = place_network(network, device)
            times[(norm, precision)].append(
                time_training_step(network, *data, settings, args.steps, device)
            )
    print(f"\n{preset}: seconds per step (one value per round)")
    print(f"{'batch norm':<11} {'fp32':>20} {'bf16 autocast':>20} {'bf16 / fp32':>11}")
    reference = np.mean(times[(False, "fp32")])
    for norm in (False, True):
        fp32, bf16 = times[(norm, "fp32")], times[(norm, "bf16")]
        cells = [" / ".join(f"{t:.3f}" for t in column) for column in (fp32, bf16)]
        print(
            f"{'on' if norm else 'off':<11} {cells[0]:>20} {cells[1]:>20} "
            f"{np.mean(bf16) / np.mean(fp32):>10.2f}x"
            f"   (vs fp32 without: {np.mean(bf16) / reference:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512))
    parser.add_argument("--per-class", type=int, default=125, help="particles per class")
    parser.add_argument(
        "--presets", nargs="*", default=["small"], choices=PRESETS, help="none: clustering only"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed gradient steps")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", action="store_true", help="step time with/without batch norm, fp32/bf16"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (--variants)")
    args = parser.parse_args()
    from faket.device import select_device

    device = select_device(args.device)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    config = {
        "shape": tuple(args.shape),
        "classes": builtin_names()[:12],
        "per_class": args.per_class,
        "vesicles": 0,
        "fiducials": 0,
        "seed": args.seed,
        "allow_partial": True,
    }
    model = make_grand_model(config, device="cpu")
    labels, names, radii = ideal_labels(model, model.voxel_size)
    rng = np.random.default_rng(args.seed)
    volume = model.potential / max(float(model.potential.std()), 1e-12)
    volume = (volume + rng.standard_normal(volume.shape, dtype=np.float32)).astype(np.float32)
    centres = model.particles[["z", "y", "x"]].to_numpy(np.float64)
    print(
        f"tomogram {'x'.join(map(str, args.shape))}, {len(centres)} particles of "
        f"{len(names)} classes, device {device}, torch threads {torch.get_num_threads()} "
        f"(set up in {time.perf_counter() - start:.1f} s)\n"
    )

    header = f"{'preset':<8} {'widths':<12} {'patch':>5} {'batch':>5} {'step s':>7} "
    header += f"{'epoch s':>8} {'segment s':>9} {'peak MiB':>8}"
    print(header)
    print("-" * len(header))
    for name in args.presets:
        settings = train_config(name)
        network = place_network(
            DeepFinder(len(names) + 1, settings.widths, settings.batch_norm, settings.precision),
            device,
        )
        step_s = time_training_step(network, volume, labels, centres, settings, args.steps, device)
        epoch_s = step_s * int(np.ceil(len(centres) / settings.batch_size))
        network.eval()
        started = time.perf_counter()
        segment(
            volume,
            network,
            patch_size=inference_patch_size(settings.patch_size),
            device=device,
            progress=False,
        )
        segment_s = time.perf_counter() - started
        widths = "/".join(map(str, settings.widths))
        print(
            f"{name:<8} {widths:<12} {settings.patch_size:>5} {settings.batch_size:>5} "
            f"{step_s:>7.2f} {epoch_s:>8.0f} {segment_s:>9.1f} {peak_mib():>8.0f}",
            flush=True,
        )
    if args.variants:
        for name in args.presets:
            step_variants(name, len(names) + 1, (volume, labels, centres), args, device)
    started = time.perf_counter()
    found = cluster(
        labels,
        names,
        bandwidth={n: max(1.0, r) for n, r in radii.items()},
        min_cluster_size={n: max(1, int(0.1 * 4 / 3 * np.pi * r**3)) for n, r in radii.items()},
    )
    cluster_s = time.perf_counter() - started

    print(
        f"\nclustering the ideal labels (mean-shift per class): {cluster_s:.1f} s, "
        f"{len(found)} particles found of {len(centres)}"
    )


if __name__ == "__main__":
    main()
