"""``faket compare``: how real does simulated data look? A realism report against a reference."""

from __future__ import annotations

from pathlib import Path

import typer

from faket.cli._common import OverwriteOption, QuietOption
from faket.errors import FaketError

#: Summary rows printed by the command: key, label.
ROWS = (
    ("spectrum_log_rms", "radial power spectrum, log10-ratio RMS"),
    ("histogram_w1", "histogram Wasserstein-1 (standardised values)"),
    ("mean_error", "|mean error| / reference std"),
    ("std_error", "|std ratio - 1|"),
    ("anisotropy_error", "|2-D spectral anisotropy error| (log10)"),
    ("autocorrelation_error", "|autocorrelation error| at lags 1-2"),
)


def compare_command(
    simulated: Path = typer.Argument(
        ..., help="Simulated tilt series or tomogram (MRC or .em file, or a folder of images)."
    ),
    reference: Path = typer.Argument(
        ..., help="Reference (e.g. real) data of the same kind, in any of those forms."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Folder for compare.json and compare.png (created)."
    ),
    tomogram: bool = typer.Option(
        False, "--tomogram", help="The inputs are tomograms: compare their XY slices."
    ),
    quiet: bool = QuietOption,
    overwrite: bool = OverwriteOption,
) -> None:
    """Compare SIMULATED with REFERENCE image by image (tilt i with tilt i).

    Per image: mean and std error, Wasserstein-1 distance of the standardised histograms,
    RMS of the log10 ratio of the radially averaged power spectra, 2-D spectral anisotropy
    (X-axis over Y-axis wedge power) and autocorrelation at lags of 1 and 2 pixels.
    Writes compare.json (summary, per-image values, mean spectra) and compare.png
    (spectra overlaid, 2-D spectra side by side, histograms); prints the summary.

    Either side may be an MRC or TOM/PyTom .em file, or a folder of one image per tilt
    (a PyTom projection folder, ordered by its projectionList.xml, else by file name).
    """
    from faket.realism.files import FIGURE, REPORT, compare_files

    for path in (simulated, reference):
        if not path.exists():
            raise FaketError(f"{path}: no such file or folder; check the path")
    comparison = compare_files(
        simulated,
        reference,
        output,
        tomogram=tomogram,
        overwrite=overwrite,
        show_progress=not quiet,
    )
    summary = comparison.summary
    for key, label in ROWS:
        typer.echo(f"{label:48s} {summary[key]:.4f}")
    anisotropy = (summary["anisotropy_simulated"], summary["anisotropy_reference"])
    typer.echo(
        f"{'anisotropy (log10), simulated / reference':48s} {anisotropy[0]:+.3f} / "
        f"{anisotropy[1]:+.3f}"
    )
    if not quiet:
        typer.echo(f"wrote {output / REPORT} and {output / FIGURE}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the ``faket`` command."""
    app.command("compare")(compare_command)
