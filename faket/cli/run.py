"""``faket run`` and ``faket demo``: produce a whole dataset from one config."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._common import DeviceOption, QuietOption
from faket.errors import FaketError
from faket.pipeline.config import DatasetConfig, load_dataset_config, parse_dataset_config
from faket.pipeline.dataset import RunSummary, run_dataset
from faket.pipeline.presets import preset

WorkersOption = typer.Option(
    1, "--workers", "-w", help="Tomograms in parallel on a local Dask cluster (1 = no cluster)."
)
SchedulerOption = typer.Option(
    None,
    "--scheduler",
    help="Address of a running Dask scheduler (tcp://HOST:PORT), e.g. from dask-jobqueue.",
)


def run_command(
    config_file: Path = typer.Argument(..., help="Dataset config (YAML, TOML or JSON)."),
    output: Path = typer.Option(..., "--output", "-o", help="Dataset folder (created)."),
    workers: int = WorkersOption,
    scheduler: str | None = SchedulerOption,
    device: str | None = typer.Option(None, "--device", help="Override the config's device."),
    quiet: bool = QuietOption,
) -> None:
    """Produce every tomogram and modality a dataset config describes.

    Re-running with the same folder skips finished steps and redoes only what a
    changed setting affects; an interrupted run resumes where it stopped.
    """
    config = load_dataset_config(config_file)
    if device is not None:
        config = parse_dataset_config(
            {**config.model_dump(mode="json"), "device": device}, source="--device"
        )
    _run_and_report(config, output, workers, scheduler, quiet)


def demo_command(
    output: Path = typer.Option(
        Path("demo_output"), "--output", "-o", help="Dataset folder (created)."
    ),
    workers: int = WorkersOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
) -> None:
    """A small, fully offline dataset with every modality and figures (minutes on a CPU).

    Built-in particles, the built-in reference microscope, and ImageNet VGG-19
    weights when they are cached locally (else FAKET's network-free transfer style;
    the run says which).
    """
    config = parse_dataset_config(
        {**preset("demo").model_dump(mode="json"), "device": device}, source="--device"
    )
    _run_and_report(config, output, workers, None, quiet)
    typer.echo(f"figures: {output / 'figures'}")


def _run_and_report(
    config: DatasetConfig, output: Path, workers: int, scheduler: str | None, quiet: bool
) -> None:
    if workers < 1:
        raise FaketError(f"--workers must be at least 1, got {workers}")
    if output.exists() and not output.is_dir():
        raise FaketError(f"{output} is a file; give a folder for the dataset")
    summary = run_dataset(config, output, workers=workers, scheduler=scheduler, progress=not quiet)
    used = {r.details["weights"] for r in summary.records if "weights" in r.details}
    if used:
        from faket.pipeline.dataset import style_label

        styles = ", ".join(style_label(w) for w in sorted(used))
        typer.echo(f"FAKET made with: {styles}", err=True)
    _print_summary(summary, quiet)


def _print_summary(summary: RunSummary, quiet: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"faket run: {summary.seconds:.1f} s")
    for column in ("folder", "step", "status", "seconds", "outputs"):
        table.add_column(column)
    for record in summary.records:
        status = "done" if record.ran else "up to date"
        table.add_row(
            Path(record.folder).name,
            record.name,
            status,
            f"{record.seconds:.2f}",
            ", ".join(record.outputs),
        )
    console = Console(stderr=True)
    if quiet:
        console.print(
            f"{len(summary.ran)} steps run, {len(summary.records)} total, {summary.seconds:.1f} s"
        )
    else:
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``demo`` to the ``faket`` command."""
    app.command("run")(run_command)
    app.command("demo")(demo_command)
