"""Time every pipeline step and compare FakET's cost with the BENCHMARK simulator's.

Runs a preset (default ``demo``) into a temporary folder and prints the mean
time per step over the training tomograms, then the cost of one FAKET tilt
series (noiseless projection + NOISY + CONTENT + style transfer) against one
BENCHMARK tilt series (our physics-based reference microscope), measured in the
same run. (The paper's 750x is against SHREC's multislice simulator; pass
``--multislice N`` to make our reference do multislice too.)

Usage::

    python benchmarks/bench_pipeline.py [--preset demo|small|shrec] [--tomograms N]
        [--multislice N] [--device auto] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
from pathlib import Path

from faket.pipeline import preset, run_dataset

FAKET_STEPS = (
    "projections_noiseless",
    "projections_noisy",
    "projections_content",
    "projections_faket",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=("demo", "small", "shrec"))
    parser.add_argument("--tomograms", type=int, default=None, help="Override n_tomograms.")
    parser.add_argument("--multislice", type=int, default=0, help="Reference multislice slabs.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the dataset here.")
    args = parser.parse_args()

    config = preset(args.preset)
    updates = {"device": args.device}
    if args.tomograms is not None:
        updates["n_tomograms"] = args.tomograms
    microscope = config.microscope.model_copy(update={"multislice": args.multislice})
    config = config.model_copy(update={**updates, "microscope": microscope})
    folder = args.keep or Path(tempfile.mkdtemp(prefix="faket-bench-"))
    start = time.perf_counter()
    summary = run_dataset(config, folder, progress=True)
    total = time.perf_counter() - start

    per_step: dict[str, list[float]] = collections.defaultdict(list)
    for record in summary.records:
        per_step[record.name].append(record.seconds)
    shape = config.phantom.shape
    n_tilts = len(config.tilt.angles())
    print(
        f"\npreset {args.preset}: {config.n_tomograms} tomograms, volume {shape}, "
        f"{n_tilts} tilts, device {args.device}, total {total:.1f} s\n"
    )
    print(f"{'step':32s} {'runs':>5s} {'mean s':>9s} {'total s':>9s}")
    for name, times in per_step.items():
        print(f"{name:32s} {len(times):5d} {sum(times) / len(times):9.3f} {sum(times):9.3f}")

    mean = {name: sum(t) / len(t) for name, t in per_step.items()}
    faket = sum(mean.get(name, 0.0) for name in FAKET_STEPS)
    benchmark = mean.get("projections_benchmark", float("nan"))
    print(f"\none FAKET tilt series     {faket:9.3f} s  ({' + '.join(FAKET_STEPS)})")
    print(
        f"one BENCHMARK tilt series {benchmark:9.3f} s  (reference microscope, "
        f"multislice={args.multislice})"
    )
    print(f"FAKET / BENCHMARK time    {faket / benchmark:9.3f}")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
