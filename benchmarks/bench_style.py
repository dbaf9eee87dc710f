"""Benchmark of the style transfer (FAKET modality): time per tilt, memory, accuracy.

Run ``python benchmarks/bench_style.py`` (add ``--sizes 256 512 1024``, ``--device cuda``).
Every configuration runs in its own process so that peak memory is its own. Printed:

- seconds per tilt (fastest of the timed tilts, after one warm-up tilt: robust against
  other processes on a shared machine) for
  ``naive`` -- a straightforward implementation with the structure of the paper's code
  (per tilt: content and style passes, RGB-replicated NCHW float32, out-of-place ReLU),
  written here for comparison; ``naive-reuse`` is the same under faket's host-memory
  setting (:func:`faket.device.reuse_freed_host_memory`), to show what that part alone
  is worth -- and for faket's engine in fp32 (the default,
  channels-last), fp32 in the paper's NCHW layout (bit-for-bit its arithmetic), fp32 /
  bf16 with the style targets prepared once
  (:func:`faket.style.prepare_style`), and bf16;
- peak resident memory of the process (CPU) or peak allocated GPU memory;
- the loss at the initial image relative to ``naive`` (should be ~1e-7), and for the
  other variants the fraction of pixels whose update direction (sign of output - init)
  agrees with fp32-nchw (else fp32), and the max output difference in [0, 1] units;
- a profile of one fp32 tilt: time per phase and the heaviest operators.

Weights are seeded random (ImageNet weights are not needed for timing); the inputs are
synthetic blobs plus noise with the data flow of the paper (content = init with less
noise, style = other blobs with coloured noise).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from faket.precision import cpu_has_native_bf16

CONFIGS = {
    "naive": {},
    "naive-reuse": {"reuse": True},
    "fp32": {},
    "fp32-nchw": {"channels_last": False},
    "fp32-cached": {"cached": True},
    "bf16": {"precision": "bf16"},
    "bf16-cached": {"precision": "bf16", "cached": True},
}


def make_stacks(n_tilts: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Content, style and init stacks (n_tilts, size, size) like the FakET data flow."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]

    def blobs(r: np.random.Generator) -> np.ndarray:
        img = np.zeros((size, size))
        for _ in range(size // 8):
            cy, cx, s = r.uniform(0, size), r.uniform(0, size), r.uniform(2, 6)
            img -= np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        return img

    clean = np.stack([blobs(rng) for _ in range(n_tilts)])
    k = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None] ** 2
    noise = np.fft.ifft2(np.fft.fft2(rng.standard_normal(clean.shape)) * np.sin(2000 * k + 0.1))
    style = 5 + 2 * (np.stack([blobs(rng) for _ in range(n_tilts)]) + 3 * noise.real)
    content = clean + 0.1 * rng.standard_normal(clean.shape)
    init = clean + 0.4 * rng.standard_normal(clean.shape)
    return [a.astype(np.float32) for a in (content, style, init)]


def naive_tilts(net, content, style, init, step=0.15, decay=0.99):
    """Per-tilt NST with the structure of the paper's code; returns [0, 1] outputs."""
    from faket.style.losses import gram_matrix

    mean, std = net.mean.view(1, 3, 1, 1), net.std.view(1, 3, 1, 1)
    style_layers, weights = [1, 6, 11, 20, 29], np.array([256, 64, 16, 4, 1]) / 341

    def feats(x, layers):
        h, out = (x - mean) / std, {}
        for i in range(max(layers) + 1):
            h = net.features[i](h)  # nn.ReLU modules, not in place
            if i in layers:
                out[i] = h
        return out

    def smse(a, b):
        d = a - b
        return d.pow(2).sum() / (d.abs().sum() + 1e-8)

    def unit(s):
        return (s - s.min()) / (s.max() - s.min())

    c, s, x = unit(content), unit(style), unit(init)
    for t in range(len(c)):
        rgb = [torch.from_numpy(a[t])[None, None].repeat(1, 3, 1, 1) for a in (c, s, x)]
        with torch.no_grad():
            target = feats(rgb[0], [8])[8]
            sf = feats(rgb[1], style_layers)
            grams = {i: gram_matrix(sf[i]) for i in style_layers}
        image = rgb[2].clone().requires_grad_(True)
        ema = (1 - decay) * image.detach().clone()
        opt = torch.optim.Adam([image], lr=step)
        f = feats(image, style_layers + [8])
        loss = smse(f[8], target) + sum(
            w * smse(gram_matrix(f[i]), grams[i])
            for i, w in zip(style_layers, weights, strict=True)
        )
        initial_loss = float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            image.clamp_(0, 1)
            ema = ema * decay + (1 - decay) * image
        yield t, (ema / (1 - decay**2)).clamp(0, 1).mean(1)[0].numpy(), initial_loss


def peak_memory(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def initial_losses(net, content, style, init, settings, device) -> list[float]:
    """faket's loss at the initial image, per tilt (to compare with naive's)."""
    from faket.style.losses import gram_matrix, total_loss
    from faket.style.settings import normalise

    cw, sw = settings.layer_weights()
    out = []
    for t in range(len(content)):
        c, s, x = (
            torch.from_numpy(normalise(a, "stack")[t : t + 1])[:, None]
            for a in (content, style, init)
        )
        with torch.no_grad():
            target = {8: net(c.to(device), [8])[8]}
            sf = net(s.to(device), settings.style_layers)
            grams = {i: gram_matrix(sf[i]) for i in settings.style_layers}
            f = net(x.to(device), [8, *settings.style_layers])
            out.append(float(total_loss(f, target, grams, cw, sw).sum()))
    return out


def worker(config: str, size: int, n_tilts: int, device_name: str) -> dict:
    """Run one configuration; returns timings, memory, outputs' fingerprints."""
    from faket.device import reuse_freed_host_memory, select_device
    from faket.style import build_feature_net, iter_style_transfer, prepare_style
    from faket.style.settings import TransferSettings

    device = select_device(device_name)
    start = time.perf_counter()
    net = build_feature_net("random", device=device)
    startup = time.perf_counter() - start
    content, style, init = make_stacks(n_tilts + 1, size)
    options = dict(CONFIGS[config])
    times, cpu_times, outputs, losses = [], [], [], []
    if config.startswith("naive"):
        clock, cpu_clock = time.perf_counter(), time.process_time()
        with reuse_freed_host_memory(options.get("reuse", False)):
            for _t, out, loss in naive_tilts(net, content, style, init):
                times.append(time.perf_counter() - clock)
                cpu_times.append(time.process_time() - cpu_clock)
                outputs.append(out)
                losses.append(loss)
                clock, cpu_clock = time.perf_counter(), time.process_time()
    else:
        style_arg = style
        if options.pop("cached", False):
            style_arg = prepare_style(style, weights=net, device=device, **options)
        kwargs = {"weights": net, "device": device, "match_stats": "none", **options}
        clock, cpu_clock = time.perf_counter(), time.process_time()
        for _t, out in iter_style_transfer(content, style_arg, init, **kwargs):
            outputs.append(out)
            times.append(time.perf_counter() - clock)  # outputs are on the CPU: synchronised
            cpu_times.append(time.process_time() - cpu_clock)
            clock, cpu_clock = time.perf_counter(), time.process_time()
        losses = initial_losses(net, content, style, init, TransferSettings(), device)
    x0 = (init - init.min()) / (init.max() - init.min())
    return {
        "config": config,
        "size": size,
        "startup_s": startup,
        "s_per_tilt": float(np.min(times[1:])),
        "cpu_s_per_tilt": float(cpu_times[1 + int(np.argmin(times[1:]))]),
        "peak_gib": peak_memory(device),
        "losses": losses,
        "moves": np.sign(np.stack(outputs) - x0).astype(np.int8).tolist(),
        "outputs": np.stack(outputs).tolist(),
    }


def profile(size: int, device_name: str) -> None:
    """Where one fp32 tilt's time goes: phases, then the heaviest operators."""
    from faket.device import select_device
    from faket.style import build_feature_net, style_transfer
    from faket.style.losses import gram_matrix

    device = select_device(device_name)
    net = build_feature_net("random", device=device)
    content, style, init = make_stacks(1, size)
    style_transfer(content, style, init, weights=net, device=device)  # warm-up
    x = torch.rand(1, 1, size, size, device=device)
    phases = {}

    def style_targets() -> list:
        return [gram_matrix(f) for f in net(x, [1, 6, 11, 20, 29]).values()]

    for name, fn in [
        ("content targets (to layer 8)", lambda: net(x, [8])),
        ("style targets (to 29 + Grams)", style_targets),
    ]:
        with torch.no_grad():
            clock = time.perf_counter()
            fn()
            phases[name] = time.perf_counter() - clock
    image = x.repeat(1, 3, 1, 1).requires_grad_(True)
    clock = time.perf_counter()
    feats = net(image, [1, 6, 8, 11, 20, 29])
    loss = sum(gram_matrix(f).sum() for f in feats.values())
    phases["iterate forward + loss"] = time.perf_counter() - clock
    clock = time.perf_counter()
    loss.backward()
    phases["backward"] = time.perf_counter() - clock
    print(f"\nphases of one {size}x{size} fp32 tilt ({device}):")
    for name, seconds in phases.items():
        print(f"  {name:32s} {seconds:6.2f} s")
    with torch.profiler.profile() as prof:
        style_transfer(content, style, init, weights=net, device=device)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def startup(device_name: str) -> None:
    """Wall time of a whole ``faket style`` command on one 64x64 tilt with a weights file of
    torchvision's size (548 MB: features + classifier), in both torch file formats."""
    import tempfile
    from pathlib import Path

    from faket.io import write_mrc
    from faket.style import random_state_dict

    with tempfile.TemporaryDirectory() as folder:
        state = random_state_dict(0, last_layer=34)
        for name, shape in [("0", (4096, 25088)), ("3", (4096, 4096)), ("6", (1000, 4096))]:
            state[f"classifier.{name}.weight"] = torch.zeros(shape)
            state[f"classifier.{name}.bias"] = torch.zeros(shape[0])
        paths = [write_mrc(Path(folder) / f"{n}.mrc", a[:1], 1.0) for n, a in
                 zip("csi", make_stacks(1, 64), strict=True)]  # fmt: skip
        for legacy in (False, True):
            weights = Path(folder) / f"vgg19-{'legacy' if legacy else 'zip'}.pth"
            torch.save(state, weights, _use_new_zipfile_serialization=not legacy)
            command = [sys.executable, "-c", "from faket.cli import main; main()", "style"]
            command += [str(paths[0])]
            command += [str(paths[1]), "--init", str(paths[2]), "-o", f"{folder}/o.mrc", "-f"]
            command += ["--weights", str(weights), "--device", device_name, "-q"]
            clock = time.perf_counter()
            subprocess.run(command, check=True)
            seconds = time.perf_counter() - clock
            kind = "legacy" if legacy else "zip"
            print(f"start-up: whole `faket style` on one 64x64 tilt, 548 MB {kind} file: "
                  f"{seconds:.2f} s")  # fmt: skip


def report(results: list[dict]) -> None:
    print(
        f"\n{'size':>5} {'config':12} {'s/tilt':>7} {'CPU s':>6} {'speed-up':>8} {'peak GiB':>8} "
        f"{'loss rel.err':>12} {'sign agree':>10} {'max |diff|':>10}"
    )
    by_size: dict[int, dict[str, dict]] = {}
    for r in results:
        by_size.setdefault(r["size"], {})[r["config"]] = r
    for size, rows in sorted(by_size.items()):
        naive, exact = rows.get("naive"), rows.get("fp32-nchw", rows.get("fp32"))
        for name, r in rows.items():
            speed = naive["s_per_tilt"] / r["s_per_tilt"] if naive else float("nan")
            loss_err = (
                np.max(np.abs(np.array(r["losses"]) / np.array(naive["losses"]) - 1))
                if naive
                else float("nan")
            )
            agree = diff = float("nan")
            if exact is not None:
                agree = float(np.mean(np.array(r["moves"]) == np.array(exact["moves"])))
                diff = float(np.max(np.abs(np.array(r["outputs"]) - np.array(exact["outputs"]))))
            print(
                f"{size:5d} {name:12} {r['s_per_tilt']:7.2f} {r['cpu_s_per_tilt']:6.2f} "
                f"{speed:8.2f} {r['peak_gib']:8.2f} "
                f"{loss_err:12.1e} {agree:10.5f} {diff:10.2e}"
            )
    print(f"\nstart-up (import done; build random-weight network): {results[0]['startup_s']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--tilts", type=int, default=3, help="timed tilts per config")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", type=int, default=512, help="size to profile; 0 = none")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        config, size = args.worker
        print(json.dumps(worker(config, int(size), args.tilts, args.device)))
        return
    results = []
    configs = list(args.configs)
    if args.device == "cpu" and not cpu_has_native_bf16():
        # Emulated bfloat16 is ~10x slower than fp32: minutes per tilt, nothing to learn.
        skipped = [c for c in configs if c.startswith("bf16")]
        configs = [c for c in configs if c not in skipped]
        if skipped:
            print(f"skipped {', '.join(skipped)}: this CPU has no fast bfloat16", file=sys.stderr)
    for size in args.sizes:
        for config in configs:
            command = [sys.executable, __file__, "--worker", config, str(size)]
            command += ["--tilts", str(args.tilts), "--device", args.device]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{size} {config}: {results[-1]['s_per_tilt']:.2f} s/tilt", file=sys.stderr)
    report(results)
    startup(args.device)
    if args.profile:
        profile(args.profile, args.device)


if __name__ == "__main__":
    main()
