"""Detector-sized runs in bounded memory: tiled style transfer, noise and WBP.

Run ``python benchmarks/bench_detector.py`` (all sections; about an hour on 2 cores) or
pick ``--sections style crop k3 noise wbp``; ``--quick`` runs everything at toy sizes in
seconds. Every command runs as its own process (the ``faket`` CLI where there is one)
and is measured with ``os.wait4``: wall time, CPU seconds (user + system) and the peak
resident memory of that process (``ru_maxrss``, which counts memory-mapped file pages
that are resident too). Sections:

- ``style``: ``faket style`` on a 3 x SIZE^2 stack (content, style, init; default 4096,
  random weights, ``--tile auto``), between two untiled runs on 3 x 1024^2 crops of the
  same stacks; seconds per tilt (the whole command less its start-up, measured on one
  64^2 tilt, / 3) and per megapixel, and the ratio of the per-pixel costs to the faster
  untiled run (goal <= 1.3x);
- ``crop``: agreement of the tiled engine with the untiled one on a 1024^2 crop of the
  same data, with the tile size the SIZE^2 run chose: loss relative error, update-sign
  agreement (goal >= 99.99%), largest output difference in [0, 1] units;
- ``k3``: ``faket style`` on one 5760 x 4092 tilt (goal <= 8 GB);
- ``noise``: ``faket noise estimate`` and ``faket noise apply`` on a 61 x SIZE^2 pair;
- ``wbp``: ``faket reconstruct`` of the 61 x SIZE^2 NOISY series (``--filter shrec
  --thickness 512 --bin 2``).

Inputs are synthetic (smooth random structure plus noise, FakET's data flow) and written
to ``--workdir`` (default: a temporary folder; ~20 GB at the default sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faket.io import MrcStackWriter, write_tlt

FAKET = [sys.executable, "-m", "faket"]


def measure(command: list[str]) -> dict:
    """Run ``command``; wall and CPU seconds and peak resident GiB of that process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_gib": usage.ru_maxrss / 2**20,
        "stdout": out,
    }


def smooth_field(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Zero-mean, unit-std random structure (blobs of ~10-30 pixels), float32."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((shape[0] // 8 + 2, shape[1] // 8 + 2)).astype(np.float32)
    k = np.fft.fftfreq(coarse.shape[0])[:, None] ** 2 + np.fft.rfftfreq(coarse.shape[1]) ** 2
    coarse = np.fft.irfft2(np.fft.rfft2(coarse) * np.exp(-k * 40.0), s=coarse.shape)
    field = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[: shape[0], : shape[1]]
    field = field.astype(np.float32)
    return (field - field.mean()) / field.std()


def write_stack(path: Path, n_tilts: int, make_tilt) -> Path:
    """Write ``make_tilt(i)`` for every tilt into an MRC file, tilt by tilt (10 Å)."""
    first = make_tilt(0)
    with MrcStackWriter(path, (n_tilts, *first.shape), 10.0) as writer:
        writer.write(0, first)
        for i in range(1, n_tilts):
            writer.write(i, make_tilt(i))
        writer.commit()
    return path


def style_inputs(folder: Path, n_tilts: int, shape: tuple[int, int], name: str) -> list[Path]:
    """content, style, init stacks: CONTENT = clean + 1/4 of NOISY's noise."""
    clean = smooth_field(shape, 1)
    other = smooth_field(shape, 2)

    def noise(i: int, seed: int) -> np.ndarray:
        return np.random.default_rng([seed, i]).standard_normal(shape, dtype=np.float32)

    def shifted(field: np.ndarray, i: int) -> np.ndarray:
        return np.roll(field, 7 * i, axis=1)

    makers = {
        "content": lambda i: shifted(clean, i) + 0.25 * noise(i, 3),
        "style": lambda i: 5.0 + 2.0 * (shifted(other, i) + 1.5 * noise(i, 4)),
        "init": lambda i: shifted(clean, i) + noise(i, 3),
    }
    return [write_stack(folder / f"{name}_{k}.mrc", n_tilts, f) for k, f in makers.items()]


def crop_inputs(paths: list[Path], folder: Path, side: int) -> list[Path]:
    """The centre ``side x side`` crop of each stack, as new files."""
    import mrcfile

    out = []
    for path in paths:
        with mrcfile.mmap(path, mode="r") as mrc:
            n, ny, nx = mrc.data.shape
            y0, x0 = (ny - side) // 2, (nx - side) // 2
            crop = np.array(mrc.data[:, y0 : y0 + side, x0 : x0 + side])
        target = folder / f"crop{side}_{path.name}"
        out.append(write_stack(target, n, lambda i, crop=crop: crop[i]))
    return out


def style_command(paths: list[Path], output: Path, *extra: str) -> list[str]:
    content, style, init = map(str, paths)
    return [*FAKET, "style", content, style, "--init", init, "-o", str(output), "-f", "-q",
            "--weights", "random", *extra]  # fmt: skip


def section_style(folder: Path, size: int, reference: int, tile: str) -> dict:
    paths = style_inputs(folder, 3, (size, size), f"s{size}")
    crops = crop_inputs(paths, folder, reference)
    # The command's own start-up (imports, weights, one 64^2 tilt), taken off each run.
    tiny = style_inputs(folder, 1, (64, 64), "tiny")
    startup = min(measure(style_command(tiny, folder / "out.mrc"))["wall_s"] for _ in range(2))
    runs = []
    for label, inputs, extra in [
        (f"untiled {reference}^2", crops, ["--tile", "off"]),
        (f"tiled {size}^2 ({tile})", paths, ["--tile", tile]),
        (f"untiled {reference}^2", crops, ["--tile", "off"]),
    ]:
        side = size if inputs is paths else reference
        result = measure(style_command(inputs, folder / "out.mrc", *extra))
        result.update(label=label, per_tilt_s=(result["wall_s"] - startup) / 3)
        result["s_per_mpx"] = result["per_tilt_s"] / (side * side / 1e6)
        runs.append(result)
        print(f"  {label}: {result['per_tilt_s']:.1f} s/tilt", file=sys.stderr)
    untiled = min(r["s_per_mpx"] for r in runs if r["label"].startswith("untiled"))
    for r in runs:
        r["ratio"] = r["s_per_mpx"] / untiled
    return {"runs": runs, "startup_s": startup}


def crop_worker(size: int, side: int, tile: int) -> dict:
    """Library-level agreement on a ``side^2`` crop: tiled (``tile``) vs untiled."""
    import torch

    from faket.style import TransferSettings, build_feature_net, style_transfer
    from faket.style.losses import gram_matrix, total_loss
    from faket.style.tile_plan import plan_tiles
    from faket.style.tiled import loss_and_gradient

    clean, other = smooth_field((side, side), 1), smooth_field((side, side), 2)
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((side, side), dtype=np.float32)
    content, init = (clean + 0.25 * noise)[None], (clean + noise)[None]
    style = (5.0 + 2.0 * (other + 1.5 * rng.standard_normal((side, side))))[None]
    style = style.astype(np.float32)
    net = build_feature_net("random", seed=0).set_channels_last(True)
    settings = TransferSettings()
    unit = [torch.from_numpy((a - a.min()) / (a.max() - a.min()))[None] for a in
            (content, init, style)]  # fmt: skip
    with torch.no_grad():
        style_feats = net(unit[2], settings.style_layers)
        grams = {k: gram_matrix(v) for k, v in style_feats.items()}
        targets = {8: net(unit[0], [8])[8]}
    image = unit[1].expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
    cw, sw = settings.layer_weights()
    whole_loss = float(total_loss(net(image, [8, *settings.style_layers]), targets, grams, cw, sw))
    plan = plan_tiles(net.features, settings, tile=tile)
    tiled_loss, _ = loss_and_gradient(net, image.clone(), unit[0], grams, settings,
                                      torch.device("cpu"), plan)  # fmt: skip
    kwargs = {"weights": net, "device": "cpu", "match_stats": "none"}
    whole = style_transfer(content, style, init, tile=0, **kwargs)
    tiled = style_transfer(content, style, init, tile=tile, **kwargs)
    x0 = unit[1][0].numpy()
    return {
        "tile": tile,
        "tiles": plan.describe((side, side)),
        "loss_rel_err": abs(float(tiled_loss) / whole_loss - 1),
        "sign_agreement": float(np.mean(np.sign(tiled - x0) == np.sign(whole - x0))),
        "max_abs_diff": float(np.abs(tiled - whole).max()),
    }


def auto_tile(size: int) -> int:
    """The first segment's tile side (pixels) that ``--tile auto`` picks at size^2."""
    import torch

    from faket.style import TransferSettings, build_feature_net
    from faket.style.tile_plan import choose_plan

    net = build_feature_net("random").set_channels_last(True)
    plan = choose_plan(net, TransferSettings(), torch.device("cpu"), (size, size), None, None)
    return 0 if plan is None else plan.backward[0] * plan.segments[0].stride


def section_crop(size: int, side: int, tile: str) -> dict:
    tile = auto_tile(size) if tile == "auto" else int(tile)
    command = [sys.executable, __file__, "--worker", str(size), str(side), str(tile)]
    result = measure(command)
    return {**json.loads(result["stdout"].strip().splitlines()[-1]), "wall_s": result["wall_s"]}


def section_k3(folder: Path, shape: tuple[int, int]) -> dict:
    paths = style_inputs(folder, 1, shape, "k3")
    result = measure(style_command(paths, folder / "k3_out.mrc"))
    return {"shape": list(shape), **{k: v for k, v in result.items() if k != "stdout"}}


def series_inputs(folder: Path, n_tilts: int, size: int) -> tuple[Path, Path, Path]:
    angles = np.linspace(-60.0, 60.0, n_tilts)
    clean_field = smooth_field((size, size), 5)

    def clean(i: int) -> np.ndarray:
        return np.roll(clean_field, 5 * i, axis=1) * np.float32(np.cos(np.deg2rad(angles[i])))

    def style(i: int) -> np.ndarray:
        rng = np.random.default_rng([6, i])
        return 50.0 + 3.0 * clean(i) + 4.0 * rng.standard_normal((size, size), dtype=np.float32)

    paths = (write_stack(folder / "clean.mrc", n_tilts, clean),
             write_stack(folder / "benchmark.mrc", n_tilts, style))  # fmt: skip
    tlt = folder / "angles.tlt"
    write_tlt(tlt, angles)
    return (*paths, tlt)


def section_noise(folder: Path, n_tilts: int, size: int) -> dict:
    clean, style, tlt = series_inputs(folder, n_tilts, size)
    model = folder / "noise_model.json"
    estimate = measure([*FAKET, "noise", "estimate", "--style", str(style), "--clean", str(clean),
                        "--angles", str(tlt), "-o", str(model), "-f", "-q"])  # fmt: skip
    noisy = folder / "noisy.mrc"
    apply = measure([*FAKET, "noise", "apply", str(clean), "--model", str(model), "--mode",
                     "noisy", "--angles", str(tlt), "-o", str(noisy), "-f", "-q"])  # fmt: skip
    stack_gib = n_tilts * size * size * 4 / 2**30
    strip = ("stdout",)
    return {"stack_gib": stack_gib,
            "estimate": {k: v for k, v in estimate.items() if k not in strip},
            "apply": {k: v for k, v in apply.items() if k not in strip}}  # fmt: skip


def section_wbp(folder: Path, thickness: int) -> dict:
    noisy = folder / "noisy.mrc"
    if not noisy.exists():
        raise SystemExit("section wbp needs the noise section's output (run both)")
    result = measure([*FAKET, "reconstruct", str(noisy), "--angles", str(folder / "angles.tlt"),
                      "--filter", "shrec", "--thickness", str(thickness), "--bin", "2",
                      "-o", str(folder / "tomogram.mrc"), "-f", "-q"])  # fmt: skip
    return {"thickness": thickness, **{k: v for k, v in result.items() if k != "stdout"}}


def report(results: dict) -> None:
    if "style" in results:
        print(f"\nfaket style, 3 tilts: (whole command - {results['style']['startup_s']:.1f} s "
              "start-up) / 3; CPU = user + system, all threads")  # fmt: skip
        print(f"{'run':22} {'s/tilt':>8} {'CPU s/tilt':>10} {'s/Mpx':>7} {'vs untiled':>10} "
              f"{'peak GiB':>8}")  # fmt: skip
        for r in results["style"]["runs"]:
            print(f"{r['label']:22} {r['per_tilt_s']:8.1f} {r['cpu_s'] / 3:10.1f} "
                  f"{r['s_per_mpx']:7.2f} {r['ratio']:10.2f} {r['peak_gib']:8.2f}")  # fmt: skip
    if "crop" in results:
        c = results["crop"]
        print(f"\ntiled ({c['tile']} px first-segment tiles; {c['tiles']}) vs untiled, same crop:"
              f" loss rel. err {c['loss_rel_err']:.1e}, update-sign agreement "
              f"{c['sign_agreement']:.6f}, max |diff| {c['max_abs_diff']:.2e}")  # fmt: skip
    if "k3" in results:
        k = results["k3"]
        shape = " x ".join(map(str, k["shape"]))
        print(f"\nK3 tilt {shape}: {k['wall_s']:.0f} s, CPU {k['cpu_s']:.0f} s, "
              f"peak {k['peak_gib']:.2f} GiB")  # fmt: skip
    if "noise" in results:
        n = results["noise"]
        print(f"\nnoise, {n['stack_gib']:.1f} GiB per stack:")
        for step in ("estimate", "apply"):
            r = n[step]
            print(f"  {step:8} {r['wall_s']:7.1f} s, CPU {r['cpu_s']:7.1f} s, "
                  f"peak {r['peak_gib']:.2f} GiB")  # fmt: skip
    if "wbp" in results:
        w = results["wbp"]
        print(f"\nreconstruct (shrec, thickness {w['thickness']}, --bin 2): {w['wall_s']:.0f} s,"
              f" CPU {w['cpu_s']:.0f} s, peak {w['peak_gib']:.2f} GiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=["style", "crop", "k3", "noise", "wbp"])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--reference", type=int, default=1024, help="untiled crop side")
    parser.add_argument("--k3", type=int, nargs=2, default=[5760, 4092])
    parser.add_argument("--series-tilts", type=int, default=61)
    parser.add_argument("--thickness", type=int, default=512)
    parser.add_argument("--tile", default="auto", help="--tile of the large style run")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--quick", action="store_true", help="toy sizes (checks the script)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(crop_worker(*args.worker)))
        return
    if args.quick:
        args.size, args.reference, args.k3 = 256, 128, [200, 168]
        args.series_tilts, args.thickness, args.tile = 5, 32, "64"
    results: dict = {}
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        folder = Path(scratch)
        for section in args.sections:
            print(f"{section} ...", file=sys.stderr)
            if section == "style":
                results["style"] = section_style(folder, args.size, args.reference, args.tile)
            elif section == "crop":
                results["crop"] = section_crop(args.size, args.reference, args.tile)
            elif section == "k3":
                results["k3"] = section_k3(folder, tuple(args.k3))
            elif section == "noise":
                results["noise"] = section_noise(folder, args.series_tilts, args.size)
            elif section == "wbp":
                results["wbp"] = section_wbp(folder, args.thickness)
            for path in folder.glob("*out*.mrc"):
                path.unlink()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
