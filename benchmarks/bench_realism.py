"""Benchmark: how real the reference microscope and the noise modalities look.

Usage::

    python benchmarks/bench_realism.py ctf            # Thon rings: per-tilt CTF fits
    python benchmarks/bench_realism.py snr            # BENCHMARK vs noiseless, small preset
    python benchmarks/bench_realism.py real           # modalities vs 41 real projections
    python benchmarks/bench_realism.py small [--dataset DIR]  # vs a held-out BENCHMARK

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

``real``: the 41 real TOM/PyTom projections of ``../shared/data/tomo/pytom_p1_projections``
(100 x 100 px, read as a folder by ``faket.io.read_image_folder``: the ``.em`` files in
the order and with the angles of ``projectionList.xml``). The even tilts are the style
data, the odd ones are held out. A phantom (64 x 100 x 100 voxels of 10 Å) is projected
at the style angles; the noise model is estimated from the style tilts' background
(outside the central 50 x 50 pixels, where the particle is); BASELINE, NOISY, SPECTRAL,
FAKET and FAKET_SPECTRAL (random VGG weights, style = the real style tilts) and the
reference microscope are made at the style angles, and style tilt ``2j`` (simulated tilt
``j``) is compared with held-out tilt ``2j + 1`` (3 degrees further) by
:func:`faket.realism.compare_stacks`. The control row compares the real style tilt itself.

``small``: a ``small``-preset dataset with the spectral modalities (made with ``faket run``
unless ``--dataset`` names one); every modality of every training tomogram against the
held-out test tomogram's BENCHMARK, tilt series and tomograms (XY slices).

Sections ``ctf`` and ``snr`` use only ``faket.phantom``, ``faket.microscope`` and
``faket.tomography``: run them with ``PYTHONPATH`` pointing at another checkout to
measure that version.
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


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "tomo" / "pytom_p1_projections"
COLUMNS = ("spectrum_log_rms", "mean_spectrum_log_rms", "histogram_w1", "anisotropy_simulated")


def _row(name: str, summary: dict, reference_anisotropy: float | None = None) -> str:
    values = " | ".join(f"{summary[k]:.3f}" for k in COLUMNS)
    return f"| {name} | {values} | {summary['autocorrelation_error']:.3f} |"


def _header(what: str) -> None:
    print(
        f"| {what} | spectrum log10 RMS (per tilt) | of the mean spectra | histogram W1 "
        "| anisotropy (log10) | autocorrelation error |"
    )
    print("|---|---|---|---|---|---|")


def read_real_projections() -> tuple[np.ndarray, np.ndarray]:
    """The 41 real projections (n, 100, 100) and their tilt angles (degrees)."""
    from faket.io import read_image_folder

    if not REAL.is_dir():
        raise SystemExit(f"{REAL} is not there; the real-data section needs ../shared")
    folder = read_image_folder(REAL)
    return folder.data, folder.angles_deg


def real_section() -> None:
    from faket.microscope import simulate_tilt_series
    from faket.noise import apply_noise, estimate_noise_model_from_background
    from faket.phantom import make_grand_model
    from faket.realism import compare_stacks
    from faket.style import style_transfer
    from faket.tomography import project

    images, angles = read_real_projections()
    style, held_out = images[0::2], images[1::2]
    style_angles = angles[0::2]
    n = len(held_out)  # style tilt 2j is compared with held-out tilt 2j + 1
    phantom = make_grand_model({"shape": (64, 100, 100), "voxel_size": 10.0, "seed": 0})
    volume = np.asarray(phantom.potential, dtype=np.float32)
    clean = project(volume, style_angles, negate=True)
    background = np.ones(style.shape[1:], bool)
    background[25:75, 25:75] = False
    model = estimate_noise_model_from_background(
        [style], background, style_angles, order=2, radial=True
    )
    stacks = {"a neighbouring real tilt (control)": style}
    for mode in ("baseline", "noisy", "spectral", "content"):
        stacks[mode] = apply_noise(clean, model, mode, seed=0)
    stacks["spectral + radial matching"] = apply_noise(
        clean, model, "spectral", seed=0, match_radial=True
    )
    for name, init in (("faket", "noisy"), ("faket_spectral", "spectral")):
        stacks[f"{name} (random weights)"] = style_transfer(
            stacks["content"], style, stacks[init], weights="random", seed=0, device="cpu"
        )
    microscope, _ = simulate_tilt_series(volume, 10.0, style_angles, None, seed=0)
    stacks["reference microscope"] = microscope
    print(
        f"style: {len(style)} even tilts; held out: {n} odd tilts; noise spectrum "
        f"{model.spectrum.size} px tiles"
    )
    _header("compared with held-out real tilts")
    for name, stack in stacks.items():
        if name != "content":
            print(_row(name, compare_stacks(stack[:n], held_out).summary))
    reference = compare_stacks(style[:n], held_out).summary["anisotropy_reference"]
    print(f"held-out anisotropy (log10): {reference:.3f}")


def small_section(dataset: str | None) -> None:
    from faket.io import read_mrc
    from faket.pipeline import preset, run_dataset
    from faket.pipeline.config import MODALITIES, load_dataset_config
    from faket.realism import compare_stacks

    if dataset is None:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="faket-small-"))
        config = preset("small").model_copy(update={"modalities": list(MODALITIES)})
        wall, cpu = time.perf_counter(), _cpu_seconds()
        run_dataset(config, folder, progress=False)
        print(
            f"faket run small with every modality: {time.perf_counter() - wall:.0f} s "
            f"({_cpu_seconds() - cpu:.0f} CPU s) in {folder}"
        )
    else:
        folder = Path(dataset)
        config = load_dataset_config(folder / "dataset_config.yaml")
    test = folder / f"tomo_{config.test_index:03d}"
    for kind, pattern in (
        ("tilt series", "projections_{}.mrc"),
        ("tomogram XY slices", "reconstruction_{}.mrc"),
    ):
        reference = read_mrc(test / pattern.format("benchmark")).data
        _header(f"{kind} vs held-out BENCHMARK ({test.name})")
        for modality in config.modalities:
            summaries = [
                compare_stacks(
                    read_mrc(folder / f"tomo_{i:03d}" / pattern.format(modality)).data, reference
                ).summary
                for i in config.training_indices
            ]
            mean = {k: float(np.mean([s[k] for s in summaries])) for k in summaries[0]}
            print(_row(modality, mean))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("section", choices=["ctf", "snr", "real", "small"])
    parser.add_argument("--seeds", type=int, default=3, help="microscope seeds (ctf)")
    parser.add_argument("--dataset", help="existing small dataset with every modality (small)")
    args = parser.parse_args()
    if args.section == "ctf":
        ctf_section(args.seeds)
    elif args.section == "snr":
        snr_section()
    elif args.section == "real":
        real_section()
    else:
        small_section(args.dataset)


if __name__ == "__main__":
    main()
