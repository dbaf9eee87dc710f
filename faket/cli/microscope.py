"""``faket microscope``: simulate a tilt series with the reference (BENCHMARK) microscope."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import typer
import yaml

from faket import __version__
from faket.cli._angles import (
    AnglesOption,
    TiltRangeOption,
    TiltStepOption,
    resolve_angles,
    tlt_beside,
)
from faket.cli._common import (
    DeviceOption,
    OverwriteOption,
    QuietOption,
    VoxelSizeOption,
    require_input,
    require_output,
    resolve_voxel_size,
)
from faket.errors import FaketError
from faket.io import read_mrc, write_mrc, write_text_atomic, write_tlt


def load_settings(path: Path | None) -> dict:
    """Microscope settings from a YAML/JSON file.

    Accepts the settings themselves, a dataset config (its ``microscope`` section) or the
    ``*_metadata.json`` this command writes (its ``config``).
    """
    if path is None:
        return {}
    require_input(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise FaketError(f"cannot read {path} as YAML/JSON ({type(err).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FaketError(f"{path}: expected a mapping of microscope settings at the top level")
    if isinstance(data.get("config"), dict) and "faket_version" in data:
        return data["config"]
    if isinstance(data.get("microscope"), dict):
        return data["microscope"]
    return data


def metadata_paths(output: Path) -> tuple[Path, Path]:
    """The per-tilt CSV and the JSON record written next to ``output``."""
    stem = output.with_suffix("")
    return Path(f"{stem}_metadata.csv"), Path(f"{stem}_metadata.json")


def microscope_command(
    grand_model: Path = typer.Argument(..., help="Specimen potential (MRC or EM, Z Y X, V)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output tilt series (MRC)."),
    angles: Path | None = AnglesOption,
    tilt_range_deg: tuple[float, float] | None = TiltRangeOption,
    tilt_step: float | None = TiltStepOption,
    defocus: float | None = typer.Option(
        None, "--defocus", help="Defocus in µm, negative = underfocus [default: -4]."
    ),
    dose: float | None = typer.Option(
        None, "--dose", help="Total dose over the tilt series in e-/Å² [default: 120]."
    ),
    voltage: float | None = typer.Option(
        None, "--voltage", help="Accelerating voltage in kV [default: 300]."
    ),
    ice_thickness: float | None = typer.Option(
        None,
        "--ice-thickness",
        help="Ice thickness in nm, the specimen centred in it [default: 150; thickened if "
        "the specimen reaches further].",
    ),
    multislice: int | None = typer.Option(
        None, "--multislice", help="Slabs for multislice propagation; 0 = single slice."
    ),
    potential_scale: float | None = typer.Option(
        None, "--potential-scale", help="Volts per input unit [default: 1, faket grand models]."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (a non-negative integer)."),
    config: Path | None = typer.Option(
        None, "--config", help="YAML/JSON file of microscope settings; options override it."
    ),
    plot: bool = typer.Option(
        False, "--plot", help="Also write <output>.png: a projection, its spectrum and the CTF."
    ),
    voxel_size: float | None = VoxelSizeOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Simulate what a 300 kV cryo-electron microscope records of a grand model.

    Ice, phase-object exit wave with amplitude contrast, CTF, inelastic losses, dose per
    tilt, Poisson counts, detector MTF/DQE and misalignment. Writes the projections
    (float32 electrons per pixel unless detector.output is "normalized"), the angles as a
    .tlt file, and per-tilt metadata (angle, order, dose, defocus, shift, ...) as
    <output>_metadata.csv plus <output>_metadata.json (settings, seed and the table).
    """
    from faket.microscope import parse_config, simulate_tilt_series
    from faket.microscope.checks import potential_problem

    require_input(grand_model)
    csv_path, json_path = metadata_paths(output)
    targets = [output, tlt_beside(output), csv_path, json_path]
    if plot:
        targets.append(output.with_suffix(".png"))
    for target in targets:
        require_output(target, overwrite)
    tilt_angles = resolve_angles(angles, tilt_range_deg, tilt_step)
    settings = parse_config(
        load_settings(config),
        defocus=defocus,
        dose=dose,
        voltage=voltage,
        multislice=multislice,
        potential_scale=potential_scale,
        ice_thickness=ice_thickness,
    )
    volume = read_mrc(grand_model, mmap=True, ndim=3)
    voxel = resolve_voxel_size(
        grand_model, volume.voxel_size, voxel_size, needed_for="the microscope (dose, CTF)"
    )
    problem = potential_problem(volume.data, settings.specimen.potential_scale)
    if problem is not None:
        warnings.warn(f"{grand_model}: {problem}", RuntimeWarning, stacklevel=1)
    projections, metadata = simulate_tilt_series(
        volume.data,
        voxel,
        tilt_angles,
        settings,
        seed=seed,
        device=device,
        progress=not quiet,
    )
    record = {
        "faket_version": __version__,
        "input": str(grand_model),
        "voxel_size_angstrom": voxel,
        "seed": seed,
        "config": settings.model_dump(mode="json"),
        "tilts": metadata.to_dict(orient="records"),
    }
    write_mrc(output, projections, voxel, overwrite=overwrite, stack=True)
    write_tlt(tlt_beside(output), tilt_angles)
    write_text_atomic(csv_path, metadata.to_csv(index=False))
    write_text_atomic(json_path, json.dumps(record, indent=2) + "\n")
    if plot:
        from faket.plots.microscope import plot_microscope

        plot_microscope(
            projections, metadata, settings, voxel, targets[-1], source=grand_model.name
        )
    if not quiet:
        names = ", ".join(path.name for path in targets[1:])
        typer.echo(f"wrote {output} {projections.shape} and {names}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``microscope`` to the ``faket`` command."""
    app.command("microscope")(microscope_command)
