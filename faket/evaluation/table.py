"""The experiment's summary: ``table.json``, ``table.md`` and the F1 figure.

Layout of ``table.json``:

- ``modalities.<name>.<metric>.{mean, ci_low, ci_high, seed_std, seeds, pct_benchmark}``
  for the **DeepFinder** judge, metrics ``localization_f1``, ``localization_recall``,
  ``localization_precision``, ``classification_f1_macro`` (over particle classes),
  ``classification_f1_macro_shrec`` (SHREC convention) and ``czii_fbeta``; plus
  ``best_epoch_mean``; ``classification_f1_macro.seeds_for_target``: the seeds its
  interval would need to be at most ±``settings.target_half_width`` wide
  (:func:`faket.evaluation.statistics.seeds_for_half_width`; an estimate);
- ``differences.<a>-<b>.<metric>.{mean, ci_low, ci_high}`` (DeepFinder, paired);
- ``rank_correlation.<metric>`` (DeepFinder): Spearman correlation of the modality
  ranking between two disjoint seed sets, with the sets and the per-set means;
- ``classify``: the same three keys for the **classification** judge (metrics
  ``classification_f1_macro``, ``classification_f1_macro_with_background``,
  ``background_f1``, ``accuracy``);
- ``judge_agreement``: Spearman correlation between the judges' modality rankings by
  ``classification_f1_macro``;
- ``data_cost.<name>``: wall time, peak memory and devices of making each modality's
  training data (:mod:`faket.evaluation.datacost`); ``vgg_weights``: the weights the
  dataset's FAKET modality used; ``settings``: seeds, bootstrap, scoring settings;
- ``realism.<name>``: how real the modality's training projections look, from the
  dataset's ``realism.json`` (:func:`faket.realism.dataset.realism_summaries`: spectrum
  log10-ratio RMS, histogram W1, anisotropy and autocorrelation errors against the same
  tomograms' BENCHMARK projections; null when not measured), and
  ``realism_rank_correlation.<judge>``: Spearman correlation over the modalities between
  the spectrum log RMS and the judge's main F1 (negative: the more real, the better).

Without the DeepFinder judge the top-level ``modalities``/``differences``/
``rank_correlation`` are absent; without the classifier, ``classify`` is.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faket.errors import FaketError
from faket.evaluation.datacost import DataCost, data_cost, vgg_weights
from faket.evaluation.experiment import summary_table, write_summary
from faket.evaluation.resampling import (
    classify_features,
    classify_statistic,
    deepfinder_features,
    deepfinder_layout,
    deepfinder_statistic,
)
from faket.evaluation.statistics import (
    BootstrapResult,
    hierarchical_bootstrap,
    seed_set_rank_correlation,
    seeds_for_half_width,
    spearman,
)
from faket.io import write_text_atomic
from faket.realism.dataset import realism_summaries

#: Half-width of a 95 % interval that makes a modality's main score precise (issue 14:
#: differences of 0.03-0.05 between modalities must be told apart).
TARGET_HALF_WIDTH = 0.04
#: The main score of both judges, whose seed planning ``table.md`` reports.
PLANNED_METRIC = "classification_f1_macro"
#: Metrics whose ranking stability is reported, per judge.
RANKED = {
    "deepfinder": ("localization_f1", "classification_f1_macro"),
    "classify": ("classification_f1_macro",),
}
#: Columns of ``table.md`` per judge: (metric, heading).
COLUMNS = {
    "deepfinder": (
        ("localization_f1", "localization F1"),
        ("classification_f1_macro", "class. F1 macro"),
        ("classification_f1_macro_shrec", "class. F1 macro (SHREC)"),
        ("czii_fbeta", "CZII F-beta"),
    ),
    "classify": (
        ("classification_f1_macro", "class. F1 macro"),
        ("background_f1", "background F1"),
        ("accuracy", "accuracy"),
    ),
}
#: Realism columns of ``table.md`` (keys of the dataset's realism summaries): (key, heading).
REALISM_COLUMNS = (("spectrum_log_rms", "spectrum log RMS"), ("histogram_w1", "histogram W1"))
#: The F1 each judge's realism rank correlation uses.
MAIN_METRIC = {"deepfinder": "localization_f1", "classify": "classification_f1_macro"}
TABLE_FILES = {
    "json": "table.json",
    "markdown": "table.md",
    "figure": "f1_by_modality.png",
    "realism_figure": "realism_vs_f1.png",
}


def _by_modality(runs, key):
    grouped: dict[str, list] = {}
    for run in runs:
        grouped.setdefault(key(run), []).append(run)
    return grouped


def _judge_section(boot: BootstrapResult, seeds: Sequence[int], judge: str, extra: dict) -> dict:
    modalities = {}
    reference = boot.modalities.get("benchmark")
    for name, metrics in boot.modalities.items():
        entry = {}
        for metric, estimate in metrics.items():
            entry[metric] = estimate.as_dict()
            base = reference[metric].mean if reference else float("nan")
            pct = 100 * estimate.mean / base if base and np.isfinite(base) else None
            entry[metric]["pct_benchmark"] = None if pct is None or not np.isfinite(pct) else pct
        if PLANNED_METRIC in metrics:
            needed = seeds_for_half_width(metrics[PLANNED_METRIC], TARGET_HALF_WIDTH)
            entry[PLANNED_METRIC]["seeds_for_target"] = needed
        modalities[name] = entry | extra.get(name, {})
    keep = ("mean", "ci_low", "ci_high")
    differences = {
        pair: {m: {k: v for k, v in e.as_dict().items() if k in keep} for m, e in metrics.items()}
        for pair, metrics in boot.differences.items()
    }
    ranks = {}
    for metric in RANKED[judge]:
        per_seed = {
            name: dict(zip(seeds, boot.modalities[name][metric].seeds, strict=False))
            for name in boot.modalities
        }
        ranks[metric] = seed_set_rank_correlation(per_seed, seeds)
    return {"modalities": modalities, "differences": differences, "rank_correlation": ranks}


def realism_columns(dataset_dir: str | os.PathLike[str], names: Sequence[str]) -> dict:
    """``realism.<name>`` of ``table.json``: each modality's realism summary or None.

    A dataset whose realism cannot be read or measured gives None everywhere, with a
    warning: the scores stay valid without it.
    """
    try:
        summaries = realism_summaries(dataset_dir)
    except FaketError as err:
        warnings.warn(f"no realism numbers in the table: {err}", RuntimeWarning, stacklevel=2)
        summaries = {}
    return {name: summaries.get(name) for name in names}


def realism_rank_correlation(section: dict, realism: dict, judge: str) -> dict:
    """Spearman correlation over modalities of the spectrum log RMS with the judge's F1."""
    metric = MAIN_METRIC[judge]
    shared = [m for m, entry in section["modalities"].items() if realism.get(m) and metric in entry]
    rms = [realism[m]["spectrum_log_rms"] for m in shared]
    scores = [section["modalities"][m][metric]["mean"] for m in shared]
    return {
        "realism": "spectrum_log_rms",
        "metric": metric,
        "modalities": shared,
        "spearman": spearman(rms, scores),
    }


def summarise(
    runs,
    dataset_dir: str | os.PathLike[str],
    config,
    *,
    differences: Sequence[tuple[str, str]],
    replicates: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """The content of ``table.json`` (module docstring) from an experiment's runs."""
    options = {"differences": differences, "replicates": replicates, "level": level}
    options["seed"] = seed
    names = list(dict.fromkeys(r.record.modality for r in runs.deepfinder))
    names += [r.modality for r in runs.classify if r.modality not in names]
    summary: dict = {
        "settings": {
            "seeds": list(runs.seeds),
            "interval": f"{100 * level:g} % hierarchical bootstrap over test units and seeds",
            "replicates": replicates,
            "bootstrap_seed": seed,
            "exclude": list(config.exclude),
            "exclusion_convention": config.exclusion_convention,
            "target_half_width": TARGET_HALF_WIDTH,
        },
        "vgg_weights": vgg_weights(dataset_dir),
        "data_cost": {m: data_cost(dataset_dir, m).as_dict() for m in names},
        "realism": realism_columns(dataset_dir, names),
    }
    if runs.deepfinder:
        layout = deepfinder_layout([r.scores for r in runs.deepfinder])
        grouped = _by_modality(runs.deepfinder, lambda r: r.record.modality)
        features = {
            m: [deepfinder_features(r.scores, runs.truth, r.predictions, layout) for r in rs]
            for m, rs in grouped.items()
        }
        boot = hierarchical_bootstrap(features, deepfinder_statistic(layout), **options)
        extra = {
            m: {"best_epoch_mean": float(np.mean([r.record.best_epoch for r in rs]))}
            for m, rs in grouped.items()
        }
        summary |= {"judge": "deepfinder", **_judge_section(boot, runs.seeds, "deepfinder", extra)}
        summary["settings"]["n_test_particles"] = len(runs.truth.particles)
    if runs.classify:
        labels = runs.classify[0].scores["confusion_matrix"]["labels"]
        grouped = _by_modality(runs.classify, lambda r: r.modality)
        features = {
            m: [
                classify_features(r.predictions["class_name"], r.predictions["predicted"], labels)
                for r in rs
            ]
            for m, rs in grouped.items()
        }
        boot = hierarchical_bootstrap(features, classify_statistic(labels), **options)
        extra = {
            m: {"best_epoch_mean": float(np.mean([r.best_epoch for r in rs]))}
            for m, rs in grouped.items()
        }
        summary["classify"] = _judge_section(boot, runs.seeds, "classify", extra)
        summary["settings"]["n_test_boxes"] = len(runs.classify[0].predictions)
    if runs.deepfinder and runs.classify:
        summary["judge_agreement"] = judge_agreement(summary)
    sections = {"deepfinder": summary if runs.deepfinder else None}
    sections["classify"] = summary.get("classify")
    summary["realism_rank_correlation"] = {
        judge: realism_rank_correlation(section, summary["realism"], judge)
        for judge, section in sections.items()
        if section is not None
    }
    return summary


def judge_agreement(summary: dict, metric: str = "classification_f1_macro") -> dict:
    """Spearman correlation between the two judges' modality rankings by ``metric``."""
    shared = [m for m in summary["modalities"] if m in summary["classify"]["modalities"]]
    first = [summary["modalities"][m][metric]["mean"] for m in shared]
    second = [summary["classify"]["modalities"][m][metric]["mean"] for m in shared]
    return {"metric": metric, "modalities": shared, "spearman": spearman(first, second)}


def _cell(entry: dict | None) -> str:
    if not entry or entry.get("mean") is None:
        return "n/a"
    text = f"{entry['mean']:.3f}"
    if entry.get("ci_low") is not None:
        text += f" [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
    if entry.get("seed_std"):
        text += f" ± {entry['seed_std']:.3f}"
    return text


def _realism_cells(realism: dict | None) -> list[str]:
    return [
        f"{realism[key]:.3f}" if realism and realism.get(key) is not None else "n/a"
        for key, _ in REALISM_COLUMNS
    ]


def _section(summary: dict, section: dict, judge: str, title: str) -> list[str]:
    columns = COLUMNS[judge]
    headings = [h for _, h in REALISM_COLUMNS] + [h for _, h in columns]
    lines = [f"## {title}", ""]
    lines.append("| training data | data cost | " + " | ".join(headings) + " | best epoch |")
    lines.append("|---" * (len(headings) + 3) + "|")
    realism = summary.get("realism") or {}
    for name, entry in section["modalities"].items():
        cost = summary["data_cost"].get(name)
        described = DataCost.from_dict(cost).describe() if cost else "n/a"
        cells = _realism_cells(realism.get(name))
        cells += [_cell(entry.get(metric)) for metric, _ in columns]
        lines.append(
            f"| {name} | {described} | "
            + " | ".join(cells)
            + f" | {entry['best_epoch_mean']:.1f} |"
        )
    if section["differences"]:
        lines += ["", "Paired differences (same test particles for both sides):", ""]
        lines.append("| difference | " + " | ".join(h for _, h in columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        for pair, metrics in section["differences"].items():
            cells = [_cell(metrics.get(metric)) for metric, _ in columns]
            lines.append(f"| {pair.replace('-', ' − ')} | " + " | ".join(cells) + " |")
    ranks = []
    for metric, result in section["rank_correlation"].items():
        rho = result["spearman"]
        sets = " vs ".join("{" + ", ".join(map(str, s)) + "}" for s in result["seed_sets"])
        ranks.append(f"{metric} {rho:.2f}" if rho is not None else f"{metric} n/a")
    lines += ["", f"Ranking stability (Spearman, seed sets {sets}): " + "; ".join(ranks) + "."]
    lines += [_planning_sentence(section, summary["settings"])]
    lines += [_realism_sentence(summary, judge), ""]
    return lines


def _planning_sentence(section: dict, settings: dict) -> str:
    target = settings.get("target_half_width", TARGET_HALF_WIDTH)
    parts = []
    for name, entry in section["modalities"].items():
        main = entry.get(PLANNED_METRIC) or {}
        if main.get("ci_low") is None:
            continue
        half = (main["ci_high"] - main["ci_low"]) / 2
        needed = main.get("seeds_for_target")
        parts.append(f"{name} ±{half:.3f} ({needed if needed is not None else 'n/a'})")
    return (
        f"Half-width of the class. F1 macro interval (seeds for ±{target:g}, if the seed "
        "spread stays as measured and the width shrinks as 1/√seeds): " + "; ".join(parts) + "."
    )


def _realism_sentence(summary: dict, judge: str) -> str:
    result = (summary.get("realism_rank_correlation") or {}).get(judge)
    if not result or result["spearman"] is None:
        return "Realism vs. F1: not enough modalities with realism numbers to rank."
    return (
        f"Realism vs. F1 (Spearman over {len(result['modalities'])} modalities, spectrum log "
        f"RMS against {result['metric']}; negative: the more real, the better): "
        f"{result['spearman']:.2f}."
    )


def table_markdown(summary: dict) -> str:
    """``table.md``: the Table 1 analogue of each judge, differences, ranking stability."""
    settings = summary["settings"]
    lines = [
        "# Training data vs. particle picking (Table 1 analogue)",
        "",
        f"FAKET made with (VGG-19 weights, or the network-free transfer style): "
        f"**{summary['vgg_weights']}**. "
        f"Seeds per modality: {', '.join(map(str, settings['seeds']))}. Cells: mean over "
        f"seeds [{settings['interval']}, {settings['replicates']} replicates] ± seed "
        f"standard deviation. Excluded classes: {', '.join(settings['exclude']) or 'none'} "
        f"(exclusion convention: {settings['exclusion_convention']}). Data cost: wall time "
        "summed over the modality's own steps on the training tomograms, peak memory, device. "
        "Realism (the dataset's realism.json; lower is more real): RMS over frequency of the "
        "log10 ratio of the radially averaged power spectra, and the Wasserstein-1 distance "
        "of the standardised histograms, of each modality's training projections against "
        "the same tomograms' BENCHMARK projections (the style data), tilt by tilt; "
        "BENCHMARK's own row compares the test tomogram's projections (another specimen).",
        "",
    ]
    if "modalities" in summary:
        title = f"DeepFinder ({settings.get('n_test_particles', '?')} test particles)"
        lines += _section(summary, summary, "deepfinder", title)
    if "classify" in summary:
        title = f"Subtomogram classifier ({settings.get('n_test_boxes', '?')} test boxes)"
        lines += _section(summary, summary["classify"], "classify", title)
    if "judge_agreement" in summary:
        rho = summary["judge_agreement"]["spearman"]
        value = f"{rho:.2f}" if rho is not None else "n/a"
        lines.append(
            f"Agreement of the judges' rankings by classification F1 macro (Spearman): {value}."
        )
    return "\n".join(lines).rstrip() + "\n"


def write_tables(results: Path, runs, summary: dict) -> None:
    """``table.json``, ``table.md``, ``f1_by_modality.png``, ``realism_vs_f1.png`` (when
    the dataset has realism numbers) and the DeepFinder files of
    :func:`faket.evaluation.experiment.write_summary`."""
    from faket.plots.comparison import plot_modality_scores

    if runs.deepfinder:
        records = [r.record for r in runs.deepfinder]
        write_summary(results, records, summary_table(records))
    write_text_atomic(results / TABLE_FILES["json"], json.dumps(summary, indent=2) + "\n")
    write_text_atomic(results / TABLE_FILES["markdown"], table_markdown(summary))
    panels = []
    if "modalities" in summary:
        panels += [
            ("DeepFinder", summary["modalities"], m, h) for m, h in COLUMNS["deepfinder"][:2]
        ]
    if "classify" in summary:
        panels.append(("classifier", summary["classify"]["modalities"], *COLUMNS["classify"][0]))
    plot_modality_scores(panels, results / TABLE_FILES["figure"], weights=summary["vgg_weights"])
    if any(summary.get("realism", {}).values()):
        from faket.plots.comparison import plot_realism_vs_scores

        plot_realism_vs_scores(
            [
                (judge, modalities, metric, heading, summary["realism"])
                for judge, modalities, metric, heading in panels
            ],
            results / TABLE_FILES["realism_figure"],
        )
