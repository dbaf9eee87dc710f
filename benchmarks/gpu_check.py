"""One prepared check of faket's GPU paths: the device tests, then the timings of issue 18.

Usage, from the repository root in faket's environment (``pip install -e ".[test]"``)::

    python benchmarks/gpu_check.py                        # on a GPU: at most 8 minutes
    python benchmarks/gpu_check.py --device cpu --quick   # the same script in seconds

1. The test suite's device tests run on the device
   (``python -m pytest -m "device or cuda" --device DEVICE``; ``--quick`` runs one of them).
2. A worker process then measures, one JSON line per measurement (sizes: ``--quick`` in
   brackets): neural style transfer per tilt at 512, 1024, 2048 and 3500 pixels square [64]
   in fp32, tf32, bf16 and fp16 (those the device has), with the fraction of pixels whose
   update direction agrees with fp32; a whole 61 x 1024^2 [5 x 64^2] FAKET tilt series
   (NOISY and CONTENT noise, then the style transfer), fp32 and bf16; the projector and
   weighted back-projection at SHREC size, 360 x 1024^2 -> 61 x 1024^2 -> 180 x 512^2
   [24 x 48^2]; the reference microscope on the same volume, single slice and multislice;
   a DeepFinder training epoch (paper settings, 1,500 particles [8]) and the segmentation
   of a 200 x 512^2 [24 x 48^2] tomogram; last, if time is left, 61 x 3500^2 in bf16.
   Peak GPU memory (``torch.cuda.max_memory_allocated``) is kept for each; on the CPU the
   worker's peak resident memory so far.
3. It prints one table, with the goals of the issue where they apply, and writes
   ``gpu_check.json`` (after every measurement, atomically) and ``gpu_check.txt``.

The script watches its own time (``--time-limit``, default 480 s): the tests and then the
worker are stopped at their deadlines, and whatever was measured is kept, the rest marked
``not run``. Inputs are synthetic (seeded), the VGG weights seeded random unless
``--weights`` names a file (or ``imagenet``): the timings do not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
MICROSCOPE_MODES = ("single slice", "multislice 8")
GiB = 2**30
#: Full and --quick sizes of every measurement.
SIZES = {
    "full": {
        "nst": [512, 1024, 2048, 3500],
        "series": (61, 1024),
        "volume": (360, 1024, 1024),
        "tomogram": (200, 512, 512),
        "particles": 1500,
        "tilts": 61,
        "large_series": (61, 3500),
    },
    "quick": {
        "nst": [64],
        "series": (5, 64),
        "volume": (24, 48, 48),
        "tomogram": (24, 48, 48),
        "particles": 8,
        "tilts": 7,
        "large_series": None,
    },
}
#: Goals of issue 18 on one H100/H200-class GPU: (section, case, field, op, bound); checked
#: on full-size runs only.
GOALS = [
    ("series", "61 x 1024^2 bf16", "seconds", "<=", 10.0),
    ("series", "61 x 1024^2 fp32", "seconds", "<=", 20.0),
    ("series", "61 x 3500^2 bf16", "seconds", "<=", 120.0),
    ("nst", "1024^2 fp32", "peak_gib", "<=", 8e9 / GiB),
    ("nst", "1024^2 bf16", "peak_gib", "<=", 8e9 / GiB),
    ("nst", "1024^2 bf16", "sign_agreement", ">=", 0.999),
    ("deepfinder", "segment 200 x 512^2", "seconds", "<=", 15.0),
]


def plan(mode: str) -> list[tuple[str, str]]:
    """Every (section, case) the worker measures, in its order."""
    sizes = SIZES[mode]
    cases = [("nst", f"{s}^2 {p}") for s in sizes["nst"] for p in PRECISIONS]
    n_tilts, size = sizes["series"]
    cases += [("series", f"{n_tilts} x {size}^2 {p}") for p in ("fp32", "bf16")]
    z, y, x = sizes["volume"]
    cases += [
        ("tomography", f"project {z} x {y} x {x} -> {sizes['tilts']} x {y} x {x}"),
        ("tomography", f"WBP shrec, bin 2 -> {z // 2} x {y // 2} x {x // 2}"),
    ]
    z, y, x = sizes["tomogram"]
    preset = "small" if mode == "quick" else "paper"
    cases += [
        ("deepfinder", f"training epoch ({preset}, {sizes['particles']} particles)"),
        ("deepfinder", f"segment {z} x {y}^2"),
    ]
    z, y, x = sizes["volume"]
    cases += [
        ("microscope", f"{m}, {z} x {y} x {x} -> {sizes['tilts']} tilts") for m in MICROSCOPE_MODES
    ]
    if sizes["large_series"]:
        n_tilts, size = sizes["large_series"]
        cases.append(("series", f"{n_tilts} x {size}^2 bf16"))
    return cases


# ----------------------------------------------------------------------------- worker


def _torch():
    import torch

    return torch


def _sync(device) -> None:
    if device.type == "cuda":
        _torch().cuda.synchronize(device)


def _reset_peak(device) -> None:
    if device.type == "cuda":
        _torch().cuda.reset_peak_memory_stats(device)


def _peak_gib(device) -> float:
    if device.type == "cuda":
        return _torch().cuda.max_memory_allocated(device) / GiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB


def _blurred(shape, density: float, sigma: float, device, seed: int, axes=None) -> np.ndarray:
    """Smooth random blobs (float32, peaks ~1) along ``axes`` (default all), made on
    ``device`` and returned to the host."""
    torch = _torch()
    generator = torch.Generator().manual_seed(seed)
    out = (torch.rand(shape, generator=generator) < density).float().to(device)
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    for axis in range(len(shape)) if axes is None else axes:
        # A 1-D convolution along one axis: that axis last, the others as the batch.
        moved = out.movedim(axis, -1)
        rows = moved.reshape(-1, 1, moved.shape[-1])
        rows = torch.nn.functional.conv1d(rows, kernel.view(1, 1, -1), padding=radius)
        out = rows.reshape(moved.shape).movedim(-1, axis)
    return out.cpu().numpy()


def _stacks(n_tilts: int, size: int, device, seed: int, noisy: bool = True) -> tuple:
    """Noiseless and style (another specimen) stacks, and unless ``noisy`` is False the
    content and init stacks made from the noiseless one (FakET's data flow)."""
    rng = np.random.default_rng(seed)
    shape = (n_tilts, size, size)
    clean = -_blurred(shape, 2e-3, 3.0, device, seed, axes=(1, 2))
    style = 5 + 2 * (-_blurred(shape, 2e-3, 3.0, device, seed + 1, axes=(1, 2)))
    style += rng.standard_normal(style.shape, dtype=np.float32)
    if not noisy:
        return clean, style.astype(np.float32)
    content = clean + 0.1 * rng.standard_normal(clean.shape, dtype=np.float32)
    init = clean + 0.4 * rng.standard_normal(clean.shape, dtype=np.float32)
    return clean, style.astype(np.float32), content, init


def _unit(stack: np.ndarray) -> np.ndarray:
    return (stack - stack.min()) / (stack.max() - stack.min())


def _nst_per_tilt(args, device, net, emit) -> None:
    from faket.style import iter_style_transfer
    from faket.style.settings import TransferSettings

    sizes = SIZES[args.mode]["nst"]
    for size in sizes:
        _, style, content, init = _stacks(1 + args.tilts, size, device, seed=size)
        moves: dict[str, np.ndarray] = {}
        for precision in PRECISIONS:
            name = f"{size}^2 {precision}"
            if not _precision_available(precision, device):
                emit("nst", name, status="n/a", note=f"not on {device.type}")
                continue
            settings = TransferSettings(precision=precision, match_stats="none")
            _reset_peak(device)
            times, outputs = [], []
            try:
                clock = time.perf_counter()
                for _index, tilt in iter_style_transfer(
                    content, style, init, weights=net, settings=settings, device=device,
                    batch_size=1,
                ):  # fmt: skip
                    times.append(time.perf_counter() - clock)
                    outputs.append(tilt)
                    clock = time.perf_counter()
            except _torch().cuda.OutOfMemoryError:
                emit("nst", name, status="out of memory", peak_gib=_peak_gib(device))
                _torch().cuda.empty_cache()
                continue
            moves[precision] = np.sign(np.stack(outputs) - _unit(init))
            agreement = (
                float(np.mean(moves[precision] == moves["fp32"])) if "fp32" in moves else None
            )
            emit(
                "nst", name, seconds=float(np.median(times[1:])), per_tilt=True,
                peak_gib=_peak_gib(device), sign_agreement=agreement,
                note=f"median of {len(times) - 1} tilts after 1 warm-up, batch 1",
            )  # fmt: skip


def _precision_available(precision: str, device) -> bool:
    torch = _torch()
    if precision == "tf32":
        return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)
    if precision == "fp16":
        return device.type != "cpu"
    if precision == "bf16" and device.type == "cpu":
        from faket.precision import cpu_has_native_bf16

        return cpu_has_native_bf16()
    return True


def _series(args, device, net, emit, n_tilts: int, size: int, precisions) -> None:
    """A whole FAKET tilt series: NOISY and CONTENT noise, then the style transfer."""
    from faket.noise import apply_noise, estimate_noise_model
    from faket.style import style_transfer

    clean, style = _stacks(n_tilts, size, device, seed=7, noisy=False)
    # The noise model comes from a benchmark stack of the same specimen as ``clean``.
    rng = np.random.default_rng(8)
    benchmark = 5 + 2 * clean + rng.standard_normal(clean.shape, dtype=np.float32)
    angles = np.linspace(-60, 60, n_tilts)
    model = estimate_noise_model([benchmark], [clean], angles, order=2 if n_tilts > 2 else 0)
    del benchmark
    for precision in precisions:
        name = f"{n_tilts} x {size}^2 {precision}"
        _reset_peak(device)
        clock = time.perf_counter()
        init = apply_noise(clean, model, "noisy", seed=1)
        content = apply_noise(clean, model, "content", seed=2)
        noise_s = time.perf_counter() - clock
        out = style_transfer(content, style, init, weights=net, device=device, precision=precision)
        seconds = time.perf_counter() - clock
        assert out.shape == clean.shape and np.isfinite(out).all()
        emit(
            "series", name, seconds=seconds, peak_gib=_peak_gib(device),
            note=f"noise {noise_s:.1f} s + style transfer {seconds - noise_s:.1f} s "
            "(batch from free memory)",
        )  # fmt: skip
        del init, content, out


def _tomography(args, device, emit, volume: np.ndarray) -> np.ndarray:
    from faket.tomography import project, reconstruct

    angles = np.linspace(-60.0, 60.0, SIZES[args.mode]["tilts"])
    z, y, x = volume.shape
    _reset_peak(device)
    clock = time.perf_counter()
    tilts = project(volume, angles, negate=True, device=device)
    emit(
        "tomography", f"project {z} x {y} x {x} -> {len(angles)} x {y} x {x}",
        seconds=time.perf_counter() - clock, peak_gib=_peak_gib(device),
    )  # fmt: skip
    _reset_peak(device)
    clock = time.perf_counter()
    tomogram = reconstruct(
        tilts, angles, filter_name="shrec", thickness=z, post_binning=2, device=device
    )
    shape = " x ".join(map(str, tomogram.shape))
    emit(
        "tomography", f"WBP shrec, bin 2 -> {shape}",
        seconds=time.perf_counter() - clock, peak_gib=_peak_gib(device),
    )  # fmt: skip
    return tilts


def _microscope(args, device, emit, volume: np.ndarray) -> None:
    from faket.microscope import simulate_tilt_series

    angles = np.linspace(-60.0, 60.0, SIZES[args.mode]["tilts"])
    z, y, x = volume.shape
    for mode in MICROSCOPE_MODES:
        slabs = int(mode.split()[-1]) if mode.startswith("multislice") else 0
        _reset_peak(device)
        clock = time.perf_counter()
        images, _ = simulate_tilt_series(
            8.0 * volume, 5.0, angles, {"multislice": slabs}, seed=0, device=device
        )
        assert np.isfinite(images).all()
        emit(
            "microscope", f"{mode}, {z} x {y} x {x} -> {len(angles)} tilts",
            seconds=time.perf_counter() - clock, peak_gib=_peak_gib(device),
        )  # fmt: skip


def _deepfinder(args, device, emit) -> None:
    import pandas as pd

    from faket.evaluation import Tomogram, segment, train, train_config
    from faket.evaluation.targets import sphere_labels

    shape = SIZES[args.mode]["tomogram"]
    count = SIZES[args.mode]["particles"]
    rng = np.random.default_rng(0)
    classes = [f"class_{k}" for k in range(12 if count > 12 else 2)]
    radii = {name: 3.0 + k % 6 for k, name in enumerate(classes)}
    centres = rng.uniform(8, np.array(shape) - 8, size=(count, 3))
    names = [classes[k % len(classes)] for k in range(count)]
    labels = sphere_labels(
        shape, centres, np.arange(1, count + 1), np.array([radii[n] for n in names])
    )
    volume = (labels > 0).astype(np.float32) + rng.standard_normal(shape, dtype=np.float32)
    particles = pd.DataFrame(
        {"class_name": names, "x": centres[:, 2], "y": centres[:, 1], "z": centres[:, 0]}
    ).assign(phi=0.0, theta=0.0, psi=0.0)
    tomogram = Tomogram(volume, particles, voxel_size=10.0)
    preset = "small" if args.mode == "quick" else "paper"
    config = train_config(preset, epochs=1, radii=radii, device=str(device), validate_every=1)
    _reset_peak(device)
    result = train([tomogram], None, config)
    seconds = float(result.history["train_seconds"].iloc[0])
    emit(
        "deepfinder", f"training epoch ({preset}, {count} particles)", seconds=seconds,
        peak_gib=_peak_gib(device),
        note=f"batch {config.batch_size}, patch {config.patch_size}, widths {config.widths}",
    )  # fmt: skip
    z, y, x = shape
    network = result.model.network
    _reset_peak(device)
    clock = time.perf_counter()
    segmented = segment(volume, network, patch_size=max(64, config.patch_size), device=device)
    assert segmented.shape == volume.shape
    emit(
        "deepfinder", f"segment {z} x {y}^2",
        seconds=time.perf_counter() - clock, peak_gib=_peak_gib(device),
    )  # fmt: skip


def worker(args) -> None:
    """Run every measurement in this process; one JSON line per result on stdout."""
    torch = _torch()
    from faket.device import select_device
    from faket.style import build_feature_net

    device = select_device(args.device)
    if args.mode == "quick" and device.type == "cpu":
        torch.set_num_threads(1)  # tiny arrays: more threads only wait on each other

    def emit(section: str, name: str, **values) -> None:
        print(json.dumps({"section": section, "name": name, **values}), flush=True)

    deadline = args.deadline
    emit("worker", "environment", status="info", **_environment(device))
    net = build_feature_net(args.weights, device=device, seed=0)
    sizes = SIZES[args.mode]
    n_tilts, size = sizes["series"]
    precisions = ["fp32", "bf16"] if _precision_available("bf16", device) else ["fp32"]
    volume = []

    def tomography():
        volume.append(_blurred(sizes["volume"], 3e-4 if args.mode == "full" else 5e-3, 2.5,
                               device, 3))  # fmt: skip
        _tomography(args, device, emit, volume[0])

    def large_series():
        large = sizes["large_series"]
        # Only when enough time is left for it (the goal: 2 minutes).
        if large and "bf16" in precisions and deadline - time.time() > 150:
            _series(args, device, net, emit, *large, ["bf16"])
        elif large:
            emit("series", f"{large[0]} x {large[1]}^2 bf16", status="not run", note="no time")

    steps = [
        ("nst", lambda: _nst_per_tilt(args, device, net, emit)),
        ("series", lambda: _series(args, device, net, emit, n_tilts, size, precisions)),
        ("tomography", tomography),
        ("deepfinder", lambda: _deepfinder(args, device, emit)),
        ("microscope", lambda: _microscope(args, device, emit, volume[0])),
        ("series", large_series),
    ]
    if "bf16" not in precisions:
        emit("series", f"{n_tilts} x {size}^2 bf16", status="n/a", note="no fast bf16 here")
    for section, step in steps:
        # A failing section is reported and the next one still runs.
        try:
            step()
        except Exception as error:  # noqa: BLE001 - whatever it is, it goes in the table
            emit(section, "error", status="error", note=f"{type(error).__name__}: {error}"[:400])
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _environment(device) -> dict:
    torch = _torch()
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "gpu": props.name,
            "gpu_memory_gib": props.total_memory / GiB,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


# ----------------------------------------------------------------------------- parent


def _run_tests(args, limit: float) -> dict:
    """The device tests on the device, within ``limit`` seconds; counts and failures."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["-m", "device or cuda", "--device", args.device, f"--junitxml={report}"]
        if args.mode == "quick":  # one test, one module: the mechanism, in seconds
            command += ["-k", "projector", str(ROOT / "tests" / "test_device_compute.py")]
        else:
            command.append(str(ROOT / "tests"))
        clock = time.perf_counter()
        try:
            done = subprocess.run(
                command, cwd=ROOT, env=_environ(), capture_output=True, text=True,
                timeout=max(limit, 1),
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"status": "stopped at the time limit", "seconds": time.perf_counter() - clock}
        result = {"returncode": done.returncode, "seconds": time.perf_counter() - clock}
        if not report.is_file():
            return result | {"status": "error", "output": done.stdout[-2000:] + done.stderr[-2000:]}
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        failures = []
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            outcome = next((c.tag for c in case), "passed")
            key = {"failure": "failed", "error": "failed", "skipped": "skipped"}.get(
                outcome, "passed"
            )
            counts[key] += 1
            if key == "failed":
                failures.append(f"{case.get('classname')}::{case.get('name')}")
    status = "passed" if done.returncode == 0 else "failed"
    return result | counts | {"status": status, "failures": failures}


def _environ() -> dict[str, str]:
    """This environment, with this checkout first on the module path."""
    path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.environ | {"PYTHONPATH": os.pathsep.join(path)}


def _run_worker(args, deadline: float, save) -> list[dict]:
    """Start the worker, collect its lines until it ends or the deadline passes."""
    command = [sys.executable, __file__, "--worker", "--device", args.device]
    command += ["--tilts", str(args.tilts), "--weights", args.weights, "--deadline", str(deadline)]
    command += ["--quick"] if args.mode == "quick" else []
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=_environ(),
        start_new_session=True,
    )  # fmt: skip
    return collect(process, deadline, save)


def collect(process: subprocess.Popen, deadline: float, save) -> list[dict]:
    """JSON lines of ``process`` until it ends; at ``deadline`` it (and its children) are
    killed and the results so far returned, with a ``stopped`` record."""
    results: list[dict] = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    while True:
        remaining = deadline - time.time()
        if remaining <= 0:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            results.append({"section": "worker", "name": "stopped", "status": "time limit"})
            break
        if not selector.select(timeout=min(remaining, 5.0)):
            continue
        line = process.stdout.readline()
        if not line:
            code = process.wait()
            if code:
                results.append({"section": "worker", "name": "exit", "status": f"failed ({code})"})
            break
        if line.startswith("{"):
            results.append(json.loads(line))
            save(results)
    selector.close()
    process.stdout.close()
    return results


def _goal(record: dict, quick: bool) -> str:
    texts = []
    for section, case, field, op, bound in GOALS:
        value = record.get(field)
        if quick or value is None or (section, case) != (record["section"], record["name"]):
            continue
        met = value <= bound if op == "<=" else value >= bound
        unit = {"peak_gib": " GiB", "seconds": " s"}.get(field, "")
        texts.append(f"goal {field} {op} {bound:.4g}{unit}: {'met' if met else 'MISSED'}")
    return "; ".join(texts)


def table(summary: dict) -> str:
    lines = []
    env = summary.get("environment", {})
    lines.append(f"faket GPU check, {summary['date']}, {env.get('gpu', env.get('cpu', '?'))}, "
                 f"torch {env.get('torch', '?')}, {summary['mode']} sizes")  # fmt: skip
    tests = summary.get("tests", {"status": "not run (--skip-tests)"})
    lines.append(
        f"device tests: {tests.get('status')} ({tests.get('passed', 0)} passed, "
        f"{tests.get('failed', 0)} failed, {tests.get('skipped', 0)} skipped, "
        f"{tests.get('seconds', 0):.0f} s) {' '.join(tests.get('failures', []))}"
    )
    header = f"{'section':<11} {'case':<42} {'s':>8} {'peak GiB':>9} {'sign agr.':>9}  notes"
    lines += [header, "-" * len(header)]
    for r in summary["results"]:
        seconds = f"{r['seconds']:8.3f}" if "seconds" in r else f"{r.get('status', ''):>8}"
        peak = f"{r['peak_gib']:9.2f}" if r.get("peak_gib") is not None else " " * 9
        agree = r.get("sign_agreement")
        agree = f"{agree:9.5f}" if agree is not None else " " * 9
        notes = "; ".join(filter(None, [r.get("note", ""), _goal(r, summary["mode"] == "quick")]))
        lines.append(f"{r['section']:<11} {r['name']:<42} {seconds} {peak} {agree}  {notes}")
    for name in summary.get("not_run", []):
        section, case = name.split(": ", 1)
        lines.append(f"{section:<11} {case:<42} {'not run':>8}")
    lines.append(f"total {summary['seconds']:.0f} s of {summary['time_limit_s']:.0f} s allowed")
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, cpu, mps")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument("--time-limit", type=float, default=480.0, help="seconds for everything")
    parser.add_argument("--tilts", type=int, default=2, help="timed NST tilts per case")
    parser.add_argument("--weights", default="random", help="random, imagenet or a file")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default "
                        "benchmarks/gpu_check.json; --quick: in the temporary folder)")  # fmt: skip
    parser.add_argument("--skip-tests", action="store_true", help="timings only")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.mode = "quick" if args.quick else "full"
    if args.worker:
        worker(args)
        return
    started = time.time()
    # The parent's last seconds: writing the table; the worker must end before them.
    deadline = started + args.time_limit - 5
    _check_device(args.device)
    output = args.output or (
        Path(tempfile.gettempdir()) / "gpu_check_quick.json" if args.quick
        else HERE / "gpu_check.json"
    )  # fmt: skip
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "mode": args.mode,
        "device": args.device,
        "time_limit_s": args.time_limit,
        "command": " ".join(sys.argv),
        "commit": _commit(),
        "results": [],
    }

    def save(results: list[dict]) -> None:
        info = next((r for r in results if r["name"] == "environment"), {})
        summary["environment"] = {
            k: v for k, v in info.items() if k not in ("section", "name", "status")
        }
        summary["results"] = [r for r in results if r["name"] != "environment"]
        summary["not_run"] = _not_run(args.mode, results)
        summary["seconds"] = time.time() - started
        _write(output, json.dumps(summary, indent=1) + "\n")

    if not args.skip_tests:
        # The tests get up to a third of the time; the timings are the bigger part.
        summary["tests"] = _run_tests(args, min(args.time_limit / 3, deadline - time.time()))
        print(f"device tests: {summary['tests'].get('status')}", file=sys.stderr)
    results = _run_worker(args, deadline, save)
    summary["completed"] = not _not_run(args.mode, results)
    save(results)
    text = table(summary)
    _write(output.with_suffix(".txt"), text + "\n")
    print(text)
    print(f"wrote {output} and {output.with_suffix('.txt')}", file=sys.stderr)


def _check_device(name: str) -> None:
    """Stop with one line when the device is not there (before any test or timing)."""
    if name == "cpu":
        return  # always there; spares importing torch here
    sys.path.insert(0, str(ROOT))
    from faket.device import select_device
    from faket.errors import FaketError

    try:
        select_device(name)
    except FaketError as error:
        sys.exit(f"gpu_check: {error}")


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True)
        return done.stdout.decode().strip()
    except OSError:
        return ""


def _not_run(mode: str, results: list[dict]) -> list[str]:
    """Cases of the plan that the worker did not report."""
    done = {(r["section"], r["name"]) for r in results}
    return [f"{section}: {case}" for section, case in plan(mode) if (section, case) not in done]


if __name__ == "__main__":
    main()
