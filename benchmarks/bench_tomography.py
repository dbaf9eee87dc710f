"""Benchmark: faket's projector and back-projection against what a user would otherwise use.

Usage::

    python benchmarks/bench_tomography.py [--size 256] [--tilts 61] [--repeats 3]
                                          [--skip-large] [--device auto]

Peers (``pip install -e .[bench]``; a missing one is reported as "not installed"): skimage
``radon`` per XZ slice over 2 processes, ASTRA Toolbox CPU ``linear`` projector and ``FBP`` per
slice, ``radontea.backproject_3d``. Every measurement runs in a fresh interpreter (this script
with ``--child``). benchmarks/README.md explains every section and column.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

try:
    import psutil
except ImportError:  # fall back to getrusage maxrss (see PeakMemory)
    psutil = None

MB = 2**20
PEERS = ("skimage", "astra", "radontea")
TARGETS = {  # faket speed-up over a peer that the issue asks for (None: for information)
    "skimage radon, 2 proc": 20.0,
    "ASTRA CPU linear": 3.0,
    "ASTRA CPU linear, 2 proc": None,
    "ASTRA CPU FBP": 3.0,
    "ASTRA CPU FBP, 2 proc": None,
    "radontea backproject_3d": 10.0,
}
PROJECTORS = {  # row name: (case, keep the output for the comparison)
    "faket project": ("faket-project", True),
    "skimage radon, 2 proc": ("skimage", True),
    "ASTRA CPU linear": ("astra-project", True),
    "ASTRA CPU linear, 2 proc": ("astra-project-2p", False),
}
BACKPROJECTORS = {
    "faket reconstruct (ramp)": ("faket-reconstruct", True),
    "ASTRA CPU FBP": ("astra-fbp", True),
    "ASTRA CPU FBP, 2 proc": ("astra-fbp-2p", False),
    "radontea backproject_3d": ("radontea", True),
}


def phantom(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A cell-like slab with a dozen dense blobs, float32, shape (Z, Y, X).

    Built ellipsoid by ellipsoid inside each bounding box, 16 Z planes at a time, so a 1.5 GB
    volume needs no full-size temporaries (which would inflate the memory baseline).
    """
    rng = np.random.default_rng(seed)
    dims = np.array(shape, dtype=float)
    shapes = [(np.zeros(3), dims * [0.35, 0.45, 0.45], 0.3)]
    for _ in range(12):
        centre = rng.uniform(-0.3, 0.3, 3) * dims * [0.6, 1, 1]
        shapes.append((centre, rng.uniform(0.03, 0.1, 3) * dims.min(), rng.uniform(0.5, 2.0)))
    volume = np.zeros(shape, dtype=np.float32)
    grids = [np.arange(n, dtype=np.float32) - n // 2 for n in shape]
    for centre, semi, value in shapes:
        lo = np.maximum(np.floor(centre - semi).astype(int) + dims.astype(int) // 2, 0)
        hi = np.minimum(np.ceil(centre + semi).astype(int) + dims.astype(int) // 2 + 1, shape)
        y2 = ((grids[1][lo[1] : hi[1]] - centre[1]) / semi[1])[None, :, None] ** 2
        x2 = ((grids[2][lo[2] : hi[2]] - centre[2]) / semi[2])[None, None, :] ** 2
        for z0 in range(lo[0], hi[0], 16):
            z1 = min(z0 + 16, hi[0])
            z2 = ((grids[0][z0:z1] - centre[0]) / semi[0])[:, None, None] ** 2
            volume[z0:z1, lo[1] : hi[1], lo[2] : hi[2]] += value * ((z2 + y2 + x2) <= 1)
    return volume


def ellipsoid_rows(n: int, semi_x: float, semi_z: float, supersample: int = 8) -> np.ndarray:
    """Three central Y rows (Z, 3, X) of an anti-aliased solid ellipsoid centred at ``n // 2``.

    Each voxel holds the fraction of ``supersample^3`` sub-voxel samples inside
    ``x²/a² + y²/b² + z²/c² <= 1`` (``b = (a + c) / 2``).
    """
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    centres = np.arange(n) - n // 2
    x2 = ((centres[:, None] + offsets[None, :]) / semi_x) ** 2  # (X, sub)
    volume = np.zeros((n, 3, n))
    for oz in offsets:
        z2 = ((centres + oz) / semi_z) ** 2
        for iy in range(3):
            y2 = ((iy - 1 + offsets) / (0.5 * (semi_x + semi_z))) ** 2
            inside = z2[:, None, None, None] + y2[None, :, None, None] + x2[None, None] <= 1
            volume[:, iy, :] += inside.mean(axis=(1, 3))
    return (volume / supersample).astype(np.float32)


def radon_slice(slice_zx: np.ndarray, angles_deg: np.ndarray, n_det: int) -> np.ndarray:
    """skimage Radon transform of one (Z, X) slice, cut to the detector: (n_tilts, n_det)."""
    from skimage.transform import radon

    sinogram = radon(slice_zx, theta=angles_deg, circle=False).T
    start = (sinogram.shape[1] - n_det) // 2
    return sinogram[:, start : start + n_det].astype(np.float32)


def skimage_project(volume: np.ndarray, angles_deg: np.ndarray, n_det: int) -> np.ndarray:
    """The FakET reference: skimage radon per XZ slice over 2 processes -> (n_tilts, Y, n_det)."""
    slices = (volume[:, y, :] for y in range(volume.shape[1]))
    task = functools.partial(radon_slice, angles_deg=angles_deg, n_det=n_det)
    with ProcessPoolExecutor(2) as pool:
        return np.stack(list(pool.map(task, slices, chunksize=8)), axis=1)


def _astra_geometry(n_z: int, n_x: int, n_det: int, angles_deg: np.ndarray):
    """ASTRA volume and projection geometry with faket's centres (index ``n // 2``).

    ASTRA centres both on ``(n - 1) / 2`` and puts image row 0 at +y: the volume window shifts
    the centre and flips Z, and an even detector gets one (ignored) extra pixel at the end.
    Checked: ASTRA ``linear`` then equals faket's projection to float rounding.
    """
    import astra

    x0, z0 = -(n_x // 2) - 0.5, -(n_z // 2) - 0.5
    vol = astra.create_vol_geom(n_z, n_x, x0, x0 + n_x, -(z0 + n_z), -z0)
    n_pad = n_det + 1 - n_det % 2
    return vol, astra.create_proj_geom("parallel", 1.0, n_pad, np.deg2rad(angles_deg)), n_pad


def astra_project(volume: np.ndarray, angles_deg: np.ndarray, n_det: int) -> np.ndarray:
    """ASTRA CPU ``linear`` projector, slice by slice: (Z, y, X) -> (n_tilts, y, n_det)."""
    import astra

    vol, proj, _ = _astra_geometry(volume.shape[0], volume.shape[2], n_det, angles_deg)
    projector = astra.create_projector("linear", proj, vol)
    out = np.empty((len(angles_deg), volume.shape[1], n_det), dtype=np.float32)
    for y in range(volume.shape[1]):
        sino_id, sino = astra.create_sino(np.ascontiguousarray(volume[:, y, :]), projector)
        astra.data2d.delete(sino_id)
        out[:, y, :] = sino[:, :n_det]
    astra.projector.delete(projector)
    return out


def astra_fbp(tilts: np.ndarray, angles_deg: np.ndarray, thickness: int) -> np.ndarray:
    """ASTRA CPU ``FBP`` (ram-lak), slice by slice: (n_tilts, y, X) -> (thickness, y, X)."""
    import astra

    n_tilts, n_y, n_det = tilts.shape
    vol, proj, n_pad = _astra_geometry(thickness, n_det, n_det, angles_deg)
    projector = astra.create_projector("linear", proj, vol)
    sino_id, rec_id = astra.data2d.create("-sino", proj, 0.0), astra.data2d.create("-vol", vol, 0.0)
    config = astra.astra_dict("FBP")
    config.update(ProjectorId=projector, ProjectionDataId=sino_id, ReconstructionDataId=rec_id)
    config["option"] = {"FilterType": "ram-lak"}
    algorithm = astra.algorithm.create(config)
    sinogram = np.zeros((n_tilts, n_pad), dtype=np.float32)
    out = np.empty((thickness, n_y, n_det), dtype=np.float32)
    for y in range(n_y):
        sinogram[:, :n_det] = tilts[:, y, :]
        astra.data2d.store(sino_id, sinogram)
        astra.algorithm.run(algorithm)
        out[:, y, :] = astra.data2d.get_shared(rec_id)
    astra.algorithm.delete(algorithm)
    astra.data2d.delete([sino_id, rec_id])
    astra.projector.delete(projector)
    return out


def radontea_backproject(tilts: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """``radontea.backproject_3d`` (ramp, 2 processes): (n_tilts, Y, X) -> (X, Y, X).

    radontea takes (A, M, N) sinograms and radians, centres on ``(N - 1) / 2`` and reads
    ``x cos(phi) + y sin(phi)`` with y along rows: negated angles and a zero column for even N
    match faket's geometry. Its angle weights wrap modulo pi, giving the end tilts of a +-60
    degree series ~15x weight, so they are off (uniform weights, like ASTRA's FBP).
    """
    import radontea

    n_det = tilts.shape[2]
    padded = np.pad(tilts, ((0, 0), (0, 0), (0, 1 - n_det % 2)))
    out = radontea.backproject_3d(padded, -np.deg2rad(angles_deg), weight_angles=False, ncpus=2)
    return out[:n_det, :, :n_det]


def in_two_processes(func: Callable, data: np.ndarray) -> np.ndarray:
    """Apply ``func`` to the two halves of ``data`` along Y (axis 1) in two processes."""
    with ProcessPoolExecutor(2) as pool:
        return np.concatenate(list(pool.map(func, np.array_split(data, 2, axis=1))), axis=1)


class PeakMemory:
    """Peak growth (bytes) of this process's RSS + its workers' USS over the entry baseline.

    Workers count with their private memory only (USS): pages they share with this process
    after a fork are already in its RSS. Without psutil: the growth of ``getrusage`` maxrss,
    exact here because inputs are built without full-size temporaries (workers not counted).
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s, self.peak_bytes, self._stop = interval_s, 0, threading.Event()
        self._proc, self._children_bytes, self._samples = psutil and psutil.Process(), 0, 0

    def _now(self) -> int:
        if self._proc is None:
            scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        if self._samples % 20 == 0:  # workers are slow to read and change slowly: every 0.1 s
            self._children_bytes = 0
            for child in self._proc.children(recursive=True):
                try:
                    self._children_bytes += child.memory_full_info().uss
                except psutil.Error:  # a worker that just exited
                    pass
        self._samples += 1
        return self._proc.memory_info().rss + self._children_bytes

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, self._now() - self.baseline)

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self.baseline, self._thread = self._now(), threading.Thread(target=self._watch)
        if self._proc is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._now() - self.baseline)


def _timed(func: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    """Result, wall seconds, CPU seconds of this process and its finished workers."""

    def cpu() -> float:
        usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(u.ru_utime + u.ru_stime for u in usage)

    cpu_start, start = cpu(), time.perf_counter()
    result = func()
    return result, time.perf_counter() - start, cpu() - cpu_start


def _case_function(spec: dict, data: np.ndarray) -> Callable[[], np.ndarray]:
    """The call to time for ``spec["case"]`` on ``data`` (a volume or a tilt series)."""
    angles, case, n = np.asarray(spec["angles"]), spec["case"], data.shape[-1]
    if case.startswith("faket"):
        from faket.tomography import project, reconstruct

        func, kw = project if case == "faket-project" else reconstruct, spec.get("kwargs", {})
        return lambda: func(data, angles, device=spec["device"], **kw)
    calls = {
        "skimage": lambda: skimage_project(data, angles, n),
        "astra-project": lambda: astra_project(data, angles, n),
        "astra-fbp": lambda: astra_fbp(data, angles, n),
        "radontea": lambda: radontea_backproject(data, angles),
        "astra-project-2p": functools.partial(astra_project, angles_deg=angles, n_det=n),
        "astra-fbp-2p": functools.partial(astra_fbp, angles_deg=angles, thickness=n),
    }
    if case.endswith("-2p"):
        return lambda: in_two_processes(calls[case], data)
    return calls[case]


def run_child(spec: dict) -> dict:
    """Load or build the input, time a cold call (with memory), then ``repeats`` warm calls."""
    data = phantom(tuple(spec["phantom"])) if "phantom" in spec else np.load(spec["input"])
    func = _case_function(spec, data)
    cuda = spec["case"].startswith("faket") and "cuda" in spec["device"]
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    with PeakMemory() as memory:
        result, cold_s, cold_cpu = _timed(func)
    report = {"cold_s": cold_s, "peak_mb": memory.peak_bytes / MB, "input_mb": data.nbytes / MB}
    report["out_shape"] = list(result.shape)
    if cuda:
        report["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / MB
    if spec.get("save"):
        np.save(spec["save"], result)
    del result
    warm = [_timed(func)[1:] for _ in range(spec["repeats"])]
    report["best_s"], report["best_cpu_s"] = min(warm) if warm else (cold_s, cold_cpu)
    return report


def run_case(spec: dict, work: Path) -> dict:
    """Run one measurement in a fresh interpreter; ``{"error": ...}`` if it cannot run."""
    if any(spec["case"].startswith(peer) and not _installed(peer) for peer in PEERS):
        return {"error": "not installed"}
    spec_path = work / f"{spec['id']}.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, __file__, "--child", str(spec_path)], check=False)
    out = spec_path.with_suffix(".out.json")
    if done.returncode != 0 or not out.exists():
        return {"error": f"failed (exit {done.returncode}, see stderr)"}
    return {**json.loads(out.read_text()), "saved": spec.get("save")}


def run_cases(cases: dict[str, tuple[str, bool]], base: dict, work: Path) -> dict[str, dict]:
    """``{row name: (case, keep output)}`` -> ``{row name: report}``, all on ``base``'s input."""
    reports = {}
    for name, (case, keep) in cases.items():
        run_id = f"{base['id']}-{case}"
        save = str(work / f"{run_id}.npy") if keep else None
        reports[name] = run_case({**base, "case": case, "id": run_id, "save": save}, work)
    return reports


@functools.cache
def _installed(peer: str) -> bool:
    return importlib.util.find_spec(peer) is not None


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{rule}")
    for row in [header, None, *rows, None]:
        cells = rule.split("  ") if row is None else row
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def _memory_text(report: dict) -> str:
    text = f"{report['peak_mb']:.0f}"
    return text + (f" (GPU {report['gpu_peak_mb']:.0f})" if "gpu_peak_mb" in report else "")


TIMING_HEADER = ["method", "cold s", "best s", "CPU s", "peak MB", "faket x (best/cold)"]
TIMING_HEADER += ["target", "status"]


def timing_rows(reports: dict[str, dict]) -> list[list[str]]:
    """One row per method; the first report is faket's, the others are compared with it."""
    ours, rows = next(iter(reports.values())), []
    for name, rep in reports.items():
        if "error" in rep:
            rows.append([name, rep["error"], *[""] * 6])
            continue
        cells = [name, f"{rep['cold_s']:.2f}", f"{rep['best_s']:.2f}", f"{rep['best_cpu_s']:.1f}"]
        cells.append(_memory_text(rep))
        if rep is ours or "error" in ours:
            rows.append([*cells, "", "", ""])
            continue
        best, cold = rep["best_s"] / ours["best_s"], rep["cold_s"] / ours["cold_s"]
        target = TARGETS.get(name)
        status = "" if target is None else ("met" if best >= target else "MISSED")
        if target is not None and cold < target:
            status += " (cold: missed)"
        goal = "info" if target is None else f">= {target:g}x"
        rows.append([*cells, f"{best:.1f}x / {cold:.1f}x", goal, status])
    return rows


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(np.vdot(a, b) / math.sqrt(np.vdot(a, a) * np.vdot(b, b)))


def agreement_rows(reports: dict[str, dict], truth: np.ndarray | None) -> list[list[str]]:
    """Each kept output vs ``truth`` and faket's (correlation, least-squares scale, difference)."""
    first = next(iter(reports.values()))
    if "error" in first:
        return []
    ours, rows = np.load(first["saved"]).astype(np.float64), []
    for name, rep in reports.items():
        if "error" in rep or not rep.get("saved"):
            continue
        result = np.load(rep["saved"]).astype(np.float64)
        cells = [] if truth is None else [f"{correlation(result, truth):.4f}"]
        scale = np.vdot(result, ours) / np.vdot(ours, ours)
        diff = np.linalg.norm(result - ours) / np.linalg.norm(ours)
        rows.append(
            [name, *cells, f"{correlation(result, ours):.5f}", f"{scale:.3f}", f"{diff:.1e}"]
        )
    return rows


def accuracy(size: int, angles: np.ndarray, device: str) -> tuple[list[list[str]], list[str]]:
    """Central line integral of an anti-aliased sphere and ellipsoid vs the analytic chord."""
    from faket.tomography import project

    methods = {
        "faket": (None, lambda rows: project(rows, angles, device=device)[:, 1, :]),
        "skimage radon": ("skimage", lambda rows: radon_slice(rows[:, 1, :], angles, size)),
        "ASTRA CPU linear": ("astra", lambda rows: astra_project(rows[:, 1:2], angles, size)[:, 0]),
    }
    theta = np.deg2rad(angles)
    shapes = {"sphere r=0.3n": (0.3, 0.3), "ellipsoid 0.4n x 0.15n (x, z)": (0.4, 0.15)}
    table = {name: [name] for name in methods}
    for semi_x, semi_z in (np.array(s) * size for s in shapes.values()):
        rows = ellipsoid_rows(size, semi_x, semi_z)
        chord = 2 / np.sqrt(np.sin(theta) ** 2 / semi_x**2 + np.cos(theta) ** 2 / semi_z**2)
        for name, (peer, method) in methods.items():
            if peer and not _installed(peer):
                table[name].append("not installed")
                continue
            error = np.abs(method(rows)[:, size // 2] / chord - 1)
            worst = int(np.argmax(error))
            table[name].append(f"{error[worst]:.1e} @ {angles[worst]:+.0f} / {error.mean():.1e}")
    return list(table.values()), list(shapes)


def section_memory(base: dict, work: Path) -> list[list[str]]:
    """Project and reconstruct a 512^3 volume; peak memory against the volume's own size."""
    n, tilts = 512, str(work / "m-tilts.npy")
    steps = {
        "project 512^3": {"case": "faket-project", "phantom": [n] * 3, "save": tilts},
        "reconstruct -> 512^3": {"case": "faket-reconstruct", "input": tilts},
    }
    rows = []
    for i, (name, spec) in enumerate(steps.items()):
        rep = run_case({**base, **spec, "id": f"m-{i}", "repeats": 0}, work)
        if "error" in rep:
            rows.append([name, rep["error"], *[""] * 5])
            continue
        ratio = (rep["input_mb"] + rep["peak_mb"]) / (4 * n**3 / MB)
        verdict = "met" if ratio < 3 else "MISSED"
        cells = [f"{rep['cold_s']:.2f}", f"{rep['input_mb']:.0f}", _memory_text(rep)]
        rows.append([name, *cells, f"{ratio:.2f}x", "< 3x", verdict])
    return rows


def _available_bytes() -> int:
    if psutil:
        return psutil.virtual_memory().available
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def section_large(base: dict, work: Path) -> tuple[list[list[str]], str]:
    """SHREC size: project 360 x 1024 x 1024 to 61 x 1024 x 1024 and the paper's WBP back."""
    n_z, n_y, n_x = 360, 1024, 1024
    # Either step holds a full-size volume, an output, its operator and chunks: ~3 volumes.
    fit = int((_available_bytes() - 2 * 2**30) // (3 * 4 * n_z * n_x)) // 2 * 2
    note = "fits in RAM"
    if fit < n_y:
        n_y, note = max(fit, 2), f"360 x 1024 x 1024 does not fit in RAM; using Y = {fit} rows"
    tilts = str(work / "l-tilts.npy")
    steps = {
        f"project {n_z}x{n_y}x{n_x}": {"phantom": [n_z, n_y, n_x], "save": tilts},
        "reconstruct shrec, thickness 360, post-bin 2": {
            "kwargs": {"filter_name": "shrec", "thickness": n_z, "post_binning": 2}
        },
        "  same, pre-bin 2 + thickness 180 instead": {
            "kwargs": {"filter_name": "shrec", "thickness": n_z // 2, "pre_binning": 2}
        },
    }
    rows = []
    for i, (name, spec) in enumerate(steps.items()):
        case = "faket-project" if i == 0 else "faket-reconstruct"
        rep = run_case({**base, "input": tilts, **spec, "case": case, "id": f"l-{i}"}, work)
        if "error" in rep:
            rows.append([name, rep["error"], "", "", ""])
            continue
        shape = " x ".join(str(s) for s in rep["out_shape"])
        rows.append([name, shape, f"{rep['cold_s']:.1f}", f"{rep['best_s']:.1f}"])
        rows[-1].append(_memory_text(rep))
    return rows, note


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="volume edge n (n^3 voxels)")
    parser.add_argument("--tilts", type=int, default=61, help="tilts evenly over -60..60 deg")
    parser.add_argument("--repeats", type=int, default=3, help="warm calls; the best is shown")
    parser.add_argument("--skip-large", action="store_true", help="skip 61 x 1024 x 1024")
    parser.add_argument("--device", default="auto", help="faket's device: auto, cpu, cuda")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def print_header(args: argparse.Namespace) -> None:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from faket.device import select_device

    args.device = str(select_device(args.device))
    packages = []
    for name in ("torch", "numpy", "scikit-image", "astra-toolbox", "radontea", "psutil"):
        try:
            packages.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            packages.append(f"{name} not installed")
    load, ram = os.getloadavg()[0], _available_bytes() / 2**30
    print(f"faket tomography benchmark: {args.size}^3 volume, {args.tilts} tilts -60..60 deg")
    print(f"machine: {os.cpu_count()} CPUs, {ram:.1f} GiB RAM free, load {load:.2f}, ", end="")
    print(f"torch threads {torch.get_num_threads()}, faket on {args.device}")
    if load > 0.5:
        print("warning: the machine is busy; times (the cold ones above all) will be noisy")
    print("versions: " + ", ".join(packages))
    method = "RSS + workers' USS, psutil, 5 ms" if psutil else "getrusage maxrss"
    print(f"peak memory: growth over the pre-call baseline ({method}); times: s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        report = run_child(json.loads(args.child.read_text()))
        args.child.with_suffix(".out.json").write_text(json.dumps(report))
        return
    print_header(args)
    n, angles = args.size, np.linspace(-60.0, 60.0, args.tilts)
    rows, shapes = accuracy(n, angles, args.device)
    title = f"0. Accuracy: central line integral vs analytic chord ({n}^2 slice, 8^3-supersampled"
    title += " voxels): max relative error @ its tilt / mean over tilts"
    print_table(title, ["method", *shapes], rows)
    base = {"angles": angles.tolist(), "device": args.device, "repeats": args.repeats}
    agree = ["method", "corr. with faket", "scale vs faket", "rel. diff to faket"]
    with tempfile.TemporaryDirectory(prefix="faket-bench-") as tmp:
        work = Path(tmp)
        volume = phantom((n,) * 3)
        np.save(work / "volume.npy", volume)
        reports = run_cases(
            PROJECTORS, {**base, "id": "p", "input": str(work / "volume.npy")}, work
        )
        title = f"1. Projector: {n}^3 -> {args.tilts} x {n} x {n}; cold = first call, best of "
        print_table(title + f"{args.repeats} warm calls", TIMING_HEADER, timing_rows(reports))
        print_table("   outputs vs faket's", agree, agreement_rows(reports, None))
        tilts = str(work / "p-faket-project.npy")
        reports = run_cases(BACKPROJECTORS, {**base, "id": "r", "input": tilts}, work)
        title = f"2. Back-projection: {args.tilts} x {n} x {n} -> {n}^3"
        print_table(title, TIMING_HEADER, timing_rows(reports))
        title = "   outputs vs the phantom (+-60 deg: missing wedge) and vs faket's"
        agree.insert(1, "corr. with phantom")
        print_table(title, agree, agreement_rows(reports, volume))
        del volume
        title = f"3. Memory: 512^3 volume (512 MB), {args.tilts} tilts"
        header = ["step", "cold s", "input MB", "peak growth MB", "(input+growth)/volume"]
        print_table(title, [*header, "target", "status"], section_memory(base, work))
        if not args.skip_large:
            rows, note = section_large({**base, "repeats": min(args.repeats, 1)}, work)
            header = ["step", "output", "cold s", "warm s", "peak growth MB"]
            print_table(f"4. SHREC size, {args.tilts} x 1024 x 1024 ({note})", header, rows)


if __name__ == "__main__":
    main()
