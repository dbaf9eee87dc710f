"""``faket config``: write a commented dataset config, or its JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from faket.cli._common import require_output
from faket.evaluation.classify import PRESETS as CLASSIFY_PRESETS
from faket.evaluation.train_config import PRESET_REASONS as TRAINING_REASONS
from faket.evaluation.train_config import PRESETS as TRAINING_PRESETS
from faket.io import write_text_atomic
from faket.pipeline.config import DatasetConfig
from faket.pipeline.presets import PRESET_REASONS, PRESETS, commented_yaml, resolve_preset

config_app = typer.Typer(
    help="Dataset configs: commented starting points and the JSON schema.",
    no_args_is_help=True,
)


@config_app.command("init")
def init_command(
    preset_name: str = typer.Option(
        "demo", "--preset", help=f"Starting point: {', '.join(PRESETS)}."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", "-f", help="Replace an existing file."),
    models: list[Path] | None = typer.Option(
        None, "--models", help="czii: folder of atomic models (<pdb id>.cif/.pdb) to use."
    ),
    offline: bool = typer.Option(False, "--offline", help="czii: do not try to download models."),
) -> None:
    """Print a commented dataset config (YAML) for a preset: demo, small, cpu, shrec or czii.

    czii uses each type's atomic model when one is found (--models, the download cache, or
    RCSB when online) and its built-in stand-in otherwise; stderr says which.
    """
    config, notes = resolve_preset(preset_name, models or [], download=not offline)
    for note in notes:
        typer.echo(f"faket: {note}", err=True)
    text = commented_yaml(config, PRESET_REASONS.get(preset_name)) + _judge_settings(preset_name)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(require_output(output, overwrite), text)


def _judge_settings(preset_name: str) -> str:
    """Comment lines: the judges' settings of ``faket experiment --preset NAME``, and why."""
    deepfinder, classifier = TRAINING_PRESETS.get(preset_name), CLASSIFY_PRESETS.get(preset_name)
    if not deepfinder and not classifier:
        return ""
    judges = [
        ("DeepFinder", deepfinder or {}, TRAINING_REASONS.get(preset_name, {})),
        ("classifier", classifier or {}, {}),
    ]
    lines = [
        f"# faket experiment --preset {preset_name} trains its judges with these settings",
        "# (not part of this file; change them with --settings / --classify-settings FILE):",
    ]
    for judge, settings, reasons in judges:
        lines.append(f"# {judge}:")
        for key, value in settings.items():
            why = f"  # {reasons[key]}" if key in reasons else ""
            lines.append(f"#   {key}: {json.dumps(value)}{why}")
    return "\n".join(lines) + "\n"


@config_app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of dataset configs (for editors and validators)."""
    typer.echo(json.dumps(DatasetConfig.model_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to ``faket``."""
    app.add_typer(config_app, name="config")
