"""``faket phantom``: a grand model (specimen potential) with complete ground truth."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from faket.cli._common import DeviceOption, OverwriteOption, QuietOption, require_input
from faket.errors import FaketError


def _load_settings(path: Path | None) -> dict:
    if path is None:
        return {}
    require_input(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise FaketError(f"cannot read {path} as YAML/JSON ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise FaketError(f"{path}: expected a mapping of phantom settings at the top level")
    if "faket_version" in data and isinstance(data.get("config"), dict):
        return data["config"]  # a phantom_config.json written by an earlier run
    return data.get("phantom", data)


def _class_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def phantom_command(
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (created)."),
    shape: tuple[int, int, int] | None = typer.Option(
        None,
        "--shape",
        metavar="Z Y X",
        help="Volume shape in voxels, three numbers (default: 200 512 512).",
    ),
    voxel_size: float | None = typer.Option(
        None, "--voxel-size", help="Voxel size in Å (default: 10)."
    ),
    classes: list[str] | None = typer.Option(
        None,
        "--classes",
        help="Particle classes: 'builtin' (13 SHREC-like), 'czii' (the 6 CZII types), built-in "
        "names, PDB/mmCIF files, MRC/EM density maps or PDB IDs; "
        "repeat the option or separate with commas (default: builtin).",
    ),
    per_class: int | None = typer.Option(None, "--per-class", help="Particles per class."),
    density: float | None = typer.Option(
        None, "--density", help="Particles per µm³ when --per-class is not given (default: 28000)."
    ),
    vesicles: int | None = typer.Option(
        None, "--vesicles", help="Vesicles (default: 5 per 512 x 512 nm of area)."
    ),
    fiducials: int | None = typer.Option(
        None, "--fiducials", help="Gold fiducials (default: 10 per 512 x 512 nm of area)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: 0)."),
    b_factor: float | None = typer.Option(
        None, "--b-factor", help="B-factor (Å²) for atomic models (default: from the file)."
    ),
    max_attempts: int | None = typer.Option(
        None, "--max-attempts", help="Placement tries per object (default: 200)."
    ),
    allow_partial: bool = typer.Option(
        False, "--allow-partial", help="Write what fits instead of failing when space runs out."
    ),
    map_voxel_size: float | None = typer.Option(
        None,
        "--map-voxel-size",
        help="Voxel size (Å) of the density maps in --classes (or the config's), when "
        "their headers are wrong or unset.",
    ),
    invert: bool | None = typer.Option(
        None,
        "--invert/--no-invert",
        help="Flip the contrast of the density maps among the classes (protein negative, "
        "as in template-matching maps), or use them as they are [default: refuse maps "
        "that look inverted].",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML/JSON file of phantom settings; options override it."
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="A ready-made world: czii (the six CZII types, 630 x 630 x 184 voxels at 10 Å); "
        "the config file and options override it.",
    ),
    models: list[Path] | None = typer.Option(
        None, "--models", help="Folder of atomic models (<pdb id>.cif/.pdb) for --preset czii."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="--preset czii: do not try to download atomic models."
    ),
    plot: bool = typer.Option(False, "--plot", help="Also write grandmodel.png, classes.png."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not cache templates on disk."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Build a SHREC-like grand model: particles, vesicles and gold fiducials in a slab.

    Writes grandmodel.mrc (potential, V), class_mask.mrc, occupancy_mask.mrc (instance i =
    line i of the list), particle_locations.txt/.csv/.star, classes.csv and
    phantom_config.json into the output folder.
    """
    from faket.phantom import check_folder, make_grand_model, parse_config, write_grand_model
    from faket.phantom.classes import with_map_options

    base = _preset_settings(preset, models or [], offline, quiet)
    loaded = base | _load_settings(config)
    class_entries = _class_list(classes)
    if map_voxel_size is not None or invert is not None:
        entries = class_entries or loaded.get("classes") or ["builtin"]
        class_entries = with_map_options(entries, map_voxel_size, invert)
    settings = parse_config(
        loaded,
        shape=shape,
        voxel_size=voxel_size,
        classes=class_entries,
        per_class=per_class,
        number_density=density,
        vesicles=vesicles,
        fiducials=fiducials,
        seed=seed,
        b_factor=b_factor,
        max_attempts=max_attempts,
        allow_partial=allow_partial or None,
        cache=False if no_cache else None,
    )
    check_folder(output, overwrite=overwrite)
    model = make_grand_model(settings, device=device, show_progress=not quiet)
    write_grand_model(model, output, overwrite=overwrite)
    if plot:
        _plot(model, output)
    if not quiet:
        short = f"; could not place {model.unplaced}" if model.unplaced else ""
        typer.echo(f"wrote {output}: {len(model.particles)} objects{short}", err=True)


def _preset_settings(name: str | None, models: list[Path], offline: bool, quiet: bool) -> dict:
    if name is None:
        if models:
            raise FaketError("--models needs --preset czii (or name the files in --classes)")
        return {}
    from faket.phantom.presets import phantom_preset

    settings, notes = phantom_preset(name, models, download=not offline)
    if not quiet:
        for note in notes:
            typer.echo(f"faket: {note}", err=True)
    return settings


def _plot(model, folder: Path) -> None:
    from faket.plots.phantom import plot_class_gallery, plot_grand_model

    plot_grand_model(
        model.potential,
        model.class_mask,
        folder / "grandmodel.png",
        model.voxel_size,
        title=f"grand model {folder.name}",
    )
    gallery = {name: t.potential for name, t in model.templates.items()}
    if gallery:
        plot_class_gallery(gallery, folder / "classes.png", model.voxel_size)


def register(app: typer.Typer) -> None:
    """Add ``phantom`` to the ``faket`` command."""
    app.command("phantom")(phantom_command)
