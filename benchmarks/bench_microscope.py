"""Benchmark: the reference microscope (BENCHMARK modality), FakET's "expensive simulator".

Usage::

    python benchmarks/bench_microscope.py                          # 200 x 512 x 512, 61 tilts
    python benchmarks/bench_microscope.py --shape 64 128 128 --multislice 0 8
    python benchmarks/bench_microscope.py --phantom faket          # a real faket grand model

For each multislice setting (0 = single slice), a fresh interpreter simulates a tilt series
with the default 300 kV settings and reports the wall time of ``simulate_tilt_series`` and
the process's peak resident memory (Python, numpy and torch together) both in total and
above what it held before the call (the input volume and the imports). The default phantom
is a slab of random dense blobs and membranes-like shells (cheap to make); ``--phantom faket``
builds a real grand model first (slower, same simulation cost).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

MB = 2**20


def blob_phantom(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A slab with ~1,500 dense blobs (protein-like potential, V), float32, shape (Z, Y, X)."""
    rng = np.random.default_rng(seed)
    volume = np.zeros(shape, np.float32)
    count = int(1500 * np.prod(shape) / (200 * 512 * 512))
    for _ in range(max(count, 10)):
        radius = rng.uniform(1.5, 6.0)
        centre = rng.uniform([r := radius + 1] * 3, np.array(shape) - r)
        lo = np.maximum(np.floor(centre - radius - 1).astype(int), 0)
        hi = np.minimum(np.ceil(centre + radius + 2).astype(int), shape)
        z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        r2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
        box = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        np.maximum(box, 7.9 / (1 + np.exp((np.sqrt(r2) - radius) * 2)), out=box)
    return volume


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """Simulate once in this process and print a JSON line of measurements."""
    import torch

    from faket.microscope import simulate_tilt_series

    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    if args.phantom == "faket":
        from faket.phantom import make_grand_model

        volume = make_grand_model({"shape": shape, "seed": 0}).potential
    else:
        volume = blob_phantom(shape)
    angles = np.linspace(-60, 60, args.tilts)
    before = _peak_rss_mb()
    start = time.perf_counter()
    projections, _ = simulate_tilt_series(
        volume, 10.0, angles, {"multislice": args.child}, seed=0, device=args.device
    )
    seconds = time.perf_counter() - start
    peak = _peak_rss_mb()
    print(
        json.dumps(
            {
                "multislice": args.child,
                "seconds": seconds,
                "per_tilt_s": seconds / args.tilts,
                "peak_rss_mb": peak,
                "peak_above_start_mb": peak - before,
                "output_shape": list(projections.shape),
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512))
    parser.add_argument("--tilts", type=int, default=61)
    parser.add_argument("--multislice", type=int, nargs="+", default=(0, 8))
    parser.add_argument("--phantom", choices=("blobs", "faket"), default="blobs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args)
        return
    z, y, x = args.shape
    print(f"reference microscope: {args.tilts} tilts of {y} x {x} from a {z} x {y} x {x} volume")
    print(f"{'mode':<16}{'time (s)':>10}{'s / tilt':>10}{'peak RSS (MB)':>15}{'above input':>13}")
    for slabs in args.multislice:
        command = [sys.executable, __file__, "--child", str(slabs), "--tilts", str(args.tilts)]
        command += ["--shape", *map(str, args.shape), "--phantom", args.phantom]
        command += ["--device", args.device, "--threads", str(args.threads)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
        mode = "single slice" if slabs == 0 else f"multislice {slabs}"
        print(
            f"{mode:<16}{result['seconds']:>10.1f}{result['per_tilt_s']:>10.2f}"
            f"{result['peak_rss_mb']:>15.0f}{result['peak_above_start_mb']:>13.0f}"
        )


if __name__ == "__main__":
    main()
