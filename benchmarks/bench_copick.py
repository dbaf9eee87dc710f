"""Benchmark: exporting a dataset to copick vs writing the same data as MRC files.

Usage::

    python benchmarks/bench_copick.py                   # builds a `small` dataset first
    python benchmarks/bench_copick.py --dataset data/   # an existing dataset (faket run)
    python benchmarks/bench_copick.py --keep /tmp/small # build once, reuse on the next call

Each measurement runs in a fresh interpreter, sides interleaved, ``--repeats`` times
(median kept); modules are imported before the clock starts (their one-time cost is
reported apart, on the table's last line):

- ``MRC files (peer)``: :func:`faket.io.write_mrc` of exactly what the export carries --
  every reconstruction, the class mask and the occupancy mask of every tomogram -- from
  arrays already in memory (what ``faket run`` does when it writes them).
- ``all MRC files``: every ``.mrc`` of the dataset (grand models and tilt series too).
- ``copick export``: :func:`faket.pipeline.export.export_copick` (``faket export
  copick``), reading the MRC files included: OME-Zarr scales 1/2/4 of every
  reconstruction, picks, the multilabel and panoptic segmentations.

Times come from a pass without tracemalloc (which slows allocation-heavy Python code far
more than numpy's bulk writes); peak memory is what Python/numpy allocated during a second,
untimed pass (tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

SIDES = ("MRC files (peer)", "all MRC files", "copick export")


def _exported_files(dataset: Path) -> list[Path]:
    files = []
    for folder in sorted(dataset.glob("tomo_*")):
        files += sorted(folder.glob("reconstruction_*.mrc"))
        files += [folder / "class_mask.mrc", folder / "occupancy_mask.mrc"]
    return files


def _worker(side: str, dataset: Path, out: Path) -> dict:
    """One timed step in this interpreter; returns wall/CPU seconds and peak MiB."""
    # Every module either side needs is imported before the clock (reported apart).
    import copick.impl.cryoet_data_portal  # noqa: F401  (copick.from_file imports it)
    import copick.impl.filesystem  # noqa: F401
    import ome_zarr.writer  # noqa: F401
    import skimage.transform  # noqa: F401  (copick's segmentation pyramids)
    import torch  # noqa: F401  (the export's pyramids)

    from faket.io import read_mrc, write_mrc
    from faket.pipeline.export import export_copick

    if side == "copick export":

        def step(target: Path) -> None:
            export_copick(dataset, target, progress=False)

    else:
        files = _exported_files(dataset) if side == SIDES[0] else sorted(dataset.rglob("*.mrc"))
        arrays = [(f, read_mrc(f)) for f in files]

        def step(target: Path) -> None:
            target.mkdir()
            for index, (file, data) in enumerate(arrays):
                write_mrc(target / f"{index:03d}_{file.name}", data.data, data.voxel_size)

    # Timed without tracemalloc (it slows allocation-heavy Python code, not numpy's bulk
    # writes); the peak comes from a second, untimed pass with it.
    wall, cpu = time.perf_counter(), time.process_time()
    step(out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    tracemalloc.start()
    step(out.with_name(out.name + "_traced"))
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"wall": wall, "cpu": cpu, "peak_mib": peak, "written_mb": size}


def _import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import copick.impl.cryoet_data_portal, "
        "copick.impl.filesystem, ome_zarr.writer, skimage.transform, torch, "
        "faket.pipeline.export; "
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def _build_small(folder: Path) -> Path:
    from faket.pipeline import preset, run_dataset

    print(f"building the small dataset in {folder} (faket run, a few minutes)...", flush=True)
    start = time.perf_counter()
    run_dataset(preset("small").model_copy(update={"device": "cpu"}), folder, progress=False)
    print(f"built in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, help="An existing dataset folder (faket run).")
    parser.add_argument("--keep", type=Path, help="Build the small dataset here (or reuse it).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        side, dataset, out = args.worker
        print(json.dumps(_worker(side, Path(dataset), Path(out))))
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench_copick_"))
    try:
        dataset = args.dataset
        if dataset is None:
            dataset = args.keep or scratch / "small"
            if not (dataset / "dataset_config.yaml").is_file():
                _build_small(dataset)
        results: dict[str, list[dict]] = {side: [] for side in SIDES}
        for repeat in range(args.repeats):
            for side in SIDES:
                out = scratch / f"out_{repeat}_{SIDES.index(side)}"
                command = [sys.executable, __file__, "--worker", side, str(dataset), str(out)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                results[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(out.with_name(out.name + "_traced"), ignore_errors=True)
        _table(dataset, results, _import_seconds())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _table(dataset: Path, results: dict[str, list[dict]], import_s: float) -> None:
    peer = statistics.median(r["wall"] for r in results[SIDES[0]])
    n = len(list(dataset.glob("tomo_*")))
    print(f"\ndataset {dataset} ({n} tomograms), median of {len(results[SIDES[0]])} runs")
    print(f"{'side':<20}{'wall s':>9}{'CPU s':>9}{'peak MiB':>10}{'written MB':>12}{'vs peer':>9}")
    for side, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(r["peak_mib"] for r in runs)
        size = runs[0]["written_mb"]
        print(f"{side:<20}{wall:>9.2f}{cpu:>9.2f}{peak:>10.1f}{size:>12.1f}{wall / peer:>8.2f}x")
    print(f"imports before the clock (once per command: copick, ome-zarr, torch): {import_s:.2f} s")


if __name__ == "__main__":
    main()
