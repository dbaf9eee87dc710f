"""The steps of one tomogram, each a resumable unit recorded in the folder's manifest.

Phase 1 (:func:`specimen_steps`, every tomogram): grand model, noiseless and
benchmark projections, their reconstructions. Phase 2 (dataset level, see
:mod:`faket.pipeline.dataset`): the noise model. Phase 3
(:func:`modality_steps`, training tomograms): BASELINE, NOISY, CONTENT and
FAKET projections (and the opt-in SPECTRAL and FAKET_SPECTRAL) and their
reconstructions.

Each step's hash covers its settings, its seed and the hashes of the steps it
reads, so a changed setting redoes exactly the steps downstream of it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from faket.io import read_mrc, write_mrc, write_tlt
from faket.io.atomic import remove_stale_temporaries
from faket.pipeline.config import DatasetConfig
from faket.pipeline.manifest import Manifest, StepRecord, run_step, settings_hash
from faket.pipeline.preflight import modality_weights, resolve_nst_weights

PHANTOM_OUTPUTS = (
    "grandmodel.mrc",
    "class_mask.mrc",
    "occupancy_mask.mrc",
    "particle_locations.txt",
    "particle_locations.csv",
    "particle_locations.star",
    "classes.csv",
)
NOISE_MODEL = "noise_model.json"
#: Noise modes and what needs them: a mode is made when listed, or when a style
#: transfer uses it as its content or initialisation.
NOISE_MODES = ("baseline", "noisy", "content", "spectral")
#: Style-transfer modalities: (content, initialisation).
NST_INPUTS = {
    "faket": ("content", "noisy"),
    "faket_spectral": ("content", "spectral"),
    "faket_random": ("content", "noisy"),
}
#: The dataset's transfer model (FAKET with ``nst.weights: transfer``).
TRANSFER_MODEL = "transfer_model.npz"


def uses_transfer(config: DatasetConfig) -> bool:
    """Whether the dataset's FAKET is made with the ``transfer`` style (no network)."""
    return "faket" in config.modalities and (
        modality_weights("faket", resolve_nst_weights(config.nst.weights)) == "transfer"
    )


def needed_noise_modes(modalities, transfer: bool = False) -> list[str]:
    """Noise modes a dataset must produce for ``modalities`` (listed or used by NST;
    FAKET in the ``transfer`` style needs none)."""
    needed = set(modalities)
    for name, inputs in NST_INPUTS.items():
        if name in needed and not (name == "faket" and transfer):
            needed.update(inputs)
    return [mode for mode in NOISE_MODES if mode in needed]


def tomogram_folder(dataset_dir: Path, index: int) -> Path:
    """``DATASET/tomo_NNN``."""
    return Path(dataset_dir) / f"tomo_{index:03d}"


def projections_file(modality: str) -> str:
    """File name of a modality's tilt series."""
    return f"projections_{modality}.mrc"


def reconstruction_file(modality: str) -> str:
    """File name of a modality's tomogram."""
    return f"reconstruction_{modality}.mrc"


def derive_seed(master: int, index: int, label: str) -> int:
    """An independent, reproducible seed for one random step of one tomogram."""
    sequence = np.random.SeedSequence([master, index, zlib.crc32(label.encode())])
    return int(sequence.generate_state(1)[0])


def specimen_steps(
    config: DatasetConfig, dataset_dir: Path, index: int, device: str, progress: bool = False
) -> list[StepRecord]:
    """Grand model, noiseless and benchmark projections and reconstructions of one tomogram."""
    folder = tomogram_folder(dataset_dir, index)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)  # from a killed run; this job owns the folder
    manifest = Manifest(folder)
    angles = config.tilt.angles()
    records = [_phantom_step(config, manifest, index, device, progress)]
    records.append(_noiseless_step(manifest, angles, device, progress))
    records.append(_benchmark_step(config, manifest, index, angles, device, progress))
    for modality in ("noiseless", "benchmark"):
        records.append(_reconstruction_step(config, manifest, modality, angles, device, progress))
    return records


def modality_steps(
    config: DatasetConfig, dataset_dir: Path, index: int, device: str, progress: bool = False
) -> list[StepRecord]:
    """Noise modalities, style transfers and their reconstructions of a training tomogram."""
    from faket.noise import load_noise_model

    folder = tomogram_folder(dataset_dir, index)
    remove_stale_temporaries(folder)
    manifest = Manifest(folder)
    model_digest = Manifest(dataset_dir).digest("noise_model")
    model = load_noise_model(Path(dataset_dir) / NOISE_MODEL)
    angles = config.tilt.angles()
    seed = derive_seed(config.seed, index, "noise")
    records = []
    for mode in needed_noise_modes(config.modalities, uses_transfer(config)):
        records.append(_noise_step(config, manifest, mode, model, model_digest, seed))
    for name in NST_INPUTS:
        if name in config.modalities:
            records.append(
                _faket_step(config, dataset_dir, manifest, index, device, progress, name)
            )
    for modality in (*NOISE_MODES, *NST_INPUTS):
        if modality in config.modalities:
            records.append(
                _reconstruction_step(config, manifest, modality, angles, device, progress)
            )
    return records


def _phantom_step(config, manifest: Manifest, index: int, device: str, progress: bool):
    from faket.phantom import make_grand_model, write_grand_model

    phantom = config.phantom.model_copy(update={"seed": derive_seed(config.seed, index, "phantom")})
    digest = settings_hash("phantom", phantom.model_dump(mode="json"))

    def compute() -> None:
        model = make_grand_model(phantom, device=device, show_progress=progress)
        write_grand_model(model, manifest.folder, overwrite=True)

    return run_step(manifest, "phantom", digest, PHANTOM_OUTPUTS, compute, device=device)


def _noiseless_step(manifest: Manifest, angles: np.ndarray, device: str, progress: bool):
    from faket.tomography import project

    digest = settings_hash("noiseless", manifest.digest("phantom"), angles.tolist())
    outputs = (projections_file("noiseless"), "tilt_angles.tlt")

    def compute() -> None:
        grand_model = read_mrc(manifest.folder / "grandmodel.mrc")
        # Negated line integrals, as in the paper: dense particles are dark, like in the microscope.
        tilt_series = project(
            grand_model.data, angles, negate=True, device=device, progress=progress
        )
        write_mrc(manifest.folder / outputs[0], tilt_series, grand_model.voxel_size, stack=True)
        write_tlt(manifest.folder / outputs[1], angles)

    return run_step(manifest, "projections_noiseless", digest, outputs, compute, device=device)


def _benchmark_step(config, manifest: Manifest, index: int, angles, device: str, progress: bool):
    from faket.microscope import simulate_tilt_series

    microscope = config.microscope
    seed = derive_seed(config.seed, index, "microscope")
    digest = settings_hash(
        "benchmark",
        manifest.digest("phantom"),
        angles.tolist(),
        microscope.model_dump(mode="json"),
        seed,
    )
    outputs = (projections_file("benchmark"), "benchmark_metadata.csv")

    def compute() -> None:
        grand_model = read_mrc(manifest.folder / "grandmodel.mrc")
        tilt_series, metadata = simulate_tilt_series(
            grand_model.data,
            grand_model.voxel_size,
            angles,
            microscope,
            seed=seed,
            device=device,
            progress=progress,
        )
        write_mrc(manifest.folder / outputs[0], tilt_series, grand_model.voxel_size, stack=True)
        from faket.io import write_text_atomic

        write_text_atomic(manifest.folder / outputs[1], metadata.to_csv(index=False))

    return run_step(manifest, "projections_benchmark", digest, outputs, compute, device=device)


def _noise_step(config, manifest: Manifest, mode: str, model, model_digest: str, seed: int):
    from faket.noise import apply_noise

    match_radial = mode == "spectral" and config.noise.match_radial_spectrum
    parts = [mode, manifest.digest("projections_noiseless"), model_digest, seed]
    digest = settings_hash(*parts, "match_radial") if match_radial else settings_hash(*parts)
    output = projections_file(mode)

    def compute() -> None:
        noiseless = read_mrc(manifest.folder / projections_file("noiseless"))
        tilt_series = apply_noise(noiseless.data, model, mode, seed, match_radial=match_radial)
        write_mrc(manifest.folder / output, tilt_series, noiseless.voxel_size, stack=True)

    return run_step(manifest, f"projections_{mode}", digest, (output,), compute, device="cpu")


def compute_identity(device: str) -> dict:
    """What besides the settings decides the FAKET step's floating-point result.

    One Adam step moves every pixel by a full +-step whatever its gradient's size, so
    round-off flips pixels whose gradient is ~0, and round-off depends on the device and,
    on a CPU, on the number of threads (oneDNN splits its convolution reductions by
    thread). Both are part of the step's identity: a dataset resumed with another
    ``--workers`` (another thread count) redoes the FAKET step instead of mixing outputs.
    """
    import torch

    from faket.device import select_device

    kind = select_device(device).type
    return {"device": kind, "threads": torch.get_num_threads() if kind == "cpu" else None}


def _faket_step(
    config, dataset_dir: Path, manifest: Manifest, index: int, device, progress, name="faket"
):
    weights = modality_weights(name, resolve_nst_weights(config.nst.weights))
    if weights == "transfer":
        return _transfer_step(config, dataset_dir, manifest, index)
    from faket.style import style_transfer

    content_mode, init_mode = NST_INPUTS[name]
    source = config.style_source(index)
    style_manifest = Manifest(tomogram_folder(dataset_dir, source))
    # The same seed for every style transfer: they differ only in inputs or weights.
    seed = derive_seed(config.seed, index, "nst")
    arithmetic = compute_identity(device)
    digest = settings_hash(
        name,
        manifest.digest(f"projections_{content_mode}"),
        manifest.digest(f"projections_{init_mode}"),
        style_manifest.digest("projections_benchmark"),
        config.nst.model_dump(mode="json"),
        weights,
        seed,
        arithmetic,
    )
    output = projections_file(name)

    def compute() -> None:
        content = read_mrc(manifest.folder / projections_file(content_mode))
        init = read_mrc(manifest.folder / projections_file(init_mode)).data
        style = read_mrc(style_manifest.folder / projections_file("benchmark")).data
        stylised = style_transfer(
            content.data,
            style,
            init,
            weights=weights,
            device=device,
            seed=seed,
            progress=progress,
            iterations=config.nst.iterations,
            step_size=config.nst.step_size,
            precision=config.nst.precision,
        )
        write_mrc(manifest.folder / output, stylised, content.voxel_size, stack=True)

    info = {"weights": weights, **arithmetic}
    return run_step(
        manifest, f"projections_{name}", digest, (output,), compute, device=device, info=info
    )


def _transfer_step(config, dataset_dir: Path, manifest: Manifest, index: int):
    """FAKET in the ``transfer`` style: the dataset's transfer model applied to the
    noiseless projections, moments matched to the style tomogram's tilts."""
    from faket.noise.transfer import apply_transfer, load_transfer_model

    style_manifest = Manifest(tomogram_folder(dataset_dir, config.style_source(index)))
    seed = derive_seed(config.seed, index, "nst")
    digest = settings_hash(
        "faket-transfer",
        manifest.digest("projections_noiseless"),
        style_manifest.digest("projections_benchmark"),
        Manifest(dataset_dir).digest("transfer_model"),
        seed,
    )
    output = projections_file("faket")

    def compute() -> None:
        model = load_transfer_model(Path(dataset_dir) / TRANSFER_MODEL)
        clean = read_mrc(manifest.folder / projections_file("noiseless"))
        style = read_mrc(style_manifest.folder / projections_file("benchmark"), mmap=True).data
        mean = np.array([float(np.mean(t, dtype=np.float64)) for t in style])
        std = np.array([float(np.std(t, dtype=np.float64)) for t in style])
        stylised = apply_transfer(clean.data, model, seed, mean, std)
        write_mrc(manifest.folder / output, stylised, clean.voxel_size, stack=True)

    info = {"weights": "transfer", "device": "cpu"}
    return run_step(
        manifest, "projections_faket", digest, (output,), compute, device="cpu", info=info
    )


def _reconstruction_step(config, manifest: Manifest, modality: str, angles, device, progress):
    from faket.tomography import reconstruct

    settings = config.reconstruction
    digest = settings_hash(
        "reconstruction",
        manifest.digest(f"projections_{modality}"),
        settings.model_dump(mode="json"),
    )
    output = reconstruction_file(modality)

    def compute() -> None:
        tilt_series = read_mrc(manifest.folder / projections_file(modality), mmap=True)
        thickness = settings.thickness or config.phantom.shape[0] // settings.pre_binning
        volume = reconstruct(
            tilt_series.data,
            angles,
            thickness=thickness,
            filter_name=settings.filter,
            crowther=settings.crowther,
            pre_binning=settings.pre_binning,
            z_valid=settings.z_valid,
            post_binning=settings.post_binning,
            device=device,
            progress=progress,
        )
        voxel_size = tilt_series.voxel_size * settings.pre_binning * settings.post_binning
        write_mrc(manifest.folder / output, volume, voxel_size)

    return run_step(
        manifest, f"reconstruction_{modality}", digest, (output,), compute, device=device
    )
