"""The steps of one tomogram, each a resumable unit recorded in the folder's manifest.

Phase 1 (:func:`specimen_steps`, every tomogram): grand model, noiseless and
benchmark projections, their reconstructions. Phase 2 (dataset level, see
:mod:`faket.pipeline.dataset`): the noise model. Phase 3
(:func:`modality_steps`, training tomograms): BASELINE, NOISY, CONTENT and
FAKET projections and their reconstructions.

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
from faket.pipeline.preflight import resolve_nst_weights

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
    """BASELINE / NOISY / CONTENT / FAKET projections and reconstructions of a training tomogram."""
    from faket.noise import load_noise_model

    folder = tomogram_folder(dataset_dir, index)
    remove_stale_temporaries(folder)
    manifest = Manifest(folder)
    model_digest = Manifest(dataset_dir).digest("noise_model")
    model = load_noise_model(Path(dataset_dir) / NOISE_MODEL)
    angles = config.tilt.angles()
    seed = derive_seed(config.seed, index, "noise")
    records = []
    for mode in ("baseline", "noisy", "content"):
        if mode in config.modalities or (
            mode in ("noisy", "content") and "faket" in config.modalities
        ):
            records.append(_noise_step(config, manifest, mode, model, model_digest, seed))
    if "faket" in config.modalities:
        records.append(_faket_step(config, dataset_dir, manifest, index, device, progress))
    for modality in ("baseline", "noisy", "content", "faket"):
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

    digest = settings_hash(mode, manifest.digest("projections_noiseless"), model_digest, seed)
    output = projections_file(mode)

    def compute() -> None:
        noiseless = read_mrc(manifest.folder / projections_file("noiseless"))
        tilt_series = apply_noise(noiseless.data, model, mode, seed)
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


def _faket_step(config, dataset_dir: Path, manifest: Manifest, index: int, device, progress):
    from faket.style import style_transfer

    source = config.style_source(index)
    style_manifest = Manifest(tomogram_folder(dataset_dir, source))
    weights = resolve_nst_weights(config.nst.weights)
    seed = derive_seed(config.seed, index, "nst")
    arithmetic = compute_identity(device)
    digest = settings_hash(
        "faket",
        manifest.digest("projections_content"),
        manifest.digest("projections_noisy"),
        style_manifest.digest("projections_benchmark"),
        config.nst.model_dump(mode="json"),
        weights,
        seed,
        arithmetic,
    )
    output = projections_file("faket")

    def compute() -> None:
        content = read_mrc(manifest.folder / projections_file("content"))
        init = read_mrc(manifest.folder / projections_file("noisy")).data
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
        manifest, "projections_faket", digest, (output,), compute, device=device, info=info
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
