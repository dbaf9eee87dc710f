"""Benchmark: how real the reference microscope and the noise modalities look.

Usage::

    python benchmarks/bench_realism.py ctf            # Thon rings: per-tilt CTF fits
    python benchmarks/bench_realism.py snr            # BENCHMARK vs noiseless, small preset

``ctf``: the issue's setting (``faket phantom --shape 64 256 256 --voxel-size 5``, default
microscope at -4 µm, 120 e-/Å²), once over 61 tilts (-60..60 step 2) and once over 41
(step 3), for ``--seeds`` microscope seeds. Per tilt, the CTFFIND-style fit of
``tests/_ctf_fit.py`` (nominal -4 ± 2 µm, 30 Å to Nyquist) is compared with the simulated
defocus of the metadata table; printed: the fraction of tilts within 0.2 µm, the median
error, and the CTF-correlated ripple of the mean spectrum (fraction by which the Thon
rings modulate the power).

``snr``: one tomogram of the ``small`` preset (phantom seed as ``faket run`` derives it for
tomogram 0): per-tilt Pearson correlation of the BENCHMARK tilt series with the noiseless
(negated) projections, i.e. the paper's ``r``; ``r² / (1 - r²)`` is the signal-to-noise
power ratio the noise model sees.

Run a section with ``PYTHONPATH`` pointing at another checkout to measure that version
(this script uses only ``faket.phantom``, ``faket.microscope`` and ``faket.tomography``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _ctf_fit import ctf_ripple, fit_defocus  # noqa: E402


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _issue_phantom(seed: int = 0) -> np.ndarray:
    from faket.phantom import make_grand_model

    model = make_grand_model({"shape": (64, 256, 256), "voxel_size": 5.0, "seed": seed})
    return np.asarray(model.potential, dtype=np.float32)


def ctf_section(seeds: int) -> None:
    from faket.microscope import simulate_tilt_series

    volume = _issue_phantom()
    print("| tilts | seed | within 0.2 µm | median error µm | ripple | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for step in (2.0, 3.0):
        angles = np.arange(-60.0, 60.0 + step / 2, step)
        for seed in range(seeds):
            wall, cpu = time.perf_counter(), _cpu_seconds()
            images, metadata = simulate_tilt_series(volume, 5.0, angles, None, seed=seed)
            wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
            fitted = np.array([fit_defocus(image, 5.0)[0] for image in images])
            errors = np.abs(fitted - metadata["defocus_um"].to_numpy())
            ripple = ctf_ripple(images, 5.0, float(metadata["defocus_um"].mean()))
            print(
                f"| {len(angles)} | {seed} | {np.mean(errors <= 0.2):.3f} | "
                f"{np.median(errors):.3f} | {ripple:.4f} | {wall:.1f} | {cpu:.1f} |",
                flush=True,
            )


def snr_section() -> None:
    from faket.microscope import simulate_tilt_series
    from faket.phantom import make_grand_model
    from faket.pipeline.presets import preset
    from faket.pipeline.steps import derive_seed
    from faket.tomography import project

    config = preset("small")
    phantom = config.phantom.model_copy(update={"seed": derive_seed(config.seed, 0, "phantom")})
    model = make_grand_model(phantom)
    volume = np.asarray(model.potential, dtype=np.float32)
    angles = config.tilt.angles()
    clean = project(volume, angles, negate=True)
    seed = derive_seed(config.seed, 0, "microscope")
    benchmark, metadata = simulate_tilt_series(
        volume, phantom.voxel_size, angles, config.microscope, seed=seed
    )
    r = np.array(
        [np.corrcoef(b.ravel(), c.ravel())[0, 1] for b, c in zip(benchmark, clean, strict=True)]
    )
    snr = r**2 / (1 - r**2)
    zero = int(np.argmin(np.abs(angles)))
    print("| tilts | r at 0° | r mean | r min | r max | SNR at 0° | SNR mean | ice nm |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {len(angles)} | {r[zero]:.4f} | {r.mean():.4f} | {r.min():.4f} | {r.max():.4f} | "
        f"{snr[zero]:.4f} | {snr.mean():.4f} | {metadata['ice_path_nm'][zero]:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("section", choices=["ctf", "snr"])
    parser.add_argument("--seeds", type=int, default=3, help="microscope seeds (ctf)")
    args = parser.parse_args()
    if args.section == "ctf":
        ctf_section(args.seeds)
    else:
        snr_section()


if __name__ == "__main__":
    main()
