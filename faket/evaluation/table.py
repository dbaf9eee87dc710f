"""The experiment's summary: ``table.json``, ``table.md`` and the F1 figure.

Layout of ``table.json``:

- ``modalities.<name>.<metric>.{mean, ci_low, ci_high, seed_std, seeds, pct_benchmark}``
  for the **DeepFinder** judge, metrics ``localization_f1``, ``localization_recall``,
  ``localization_precision``, ``classification_f1_macro`` (over particle classes),
  ``classification_f1_macro_shrec`` (SHREC convention) and ``czii_fbeta``; plus
  ``best_epoch_mean``;
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
  dataset's FAKET modality used; ``settings``: seeds, bootstrap, scoring settings.

Without the DeepFinder judge the top-level ``modalities``/``differences``/
``rank_correlation`` are absent; without the classifier, ``classify`` is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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
    spearman,
)
from faket.io import write_text_atomic

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
TABLE_FILES = {"json": "table.json", "markdown": "table.md", "figure": "f1_by_modality.png"}


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
        },
        "vgg_weights": vgg_weights(dataset_dir),
        "data_cost": {m: data_cost(dataset_dir, m).as_dict() for m in names},
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


def _section(summary: dict, section: dict, judge: str, title: str) -> list[str]:
    columns = COLUMNS[judge]
    lines = [f"## {title}", ""]
    lines.append(
        "| training data | data cost | " + " | ".join(h for _, h in columns) + " | best epoch |"
    )
    lines.append("|---" * (len(columns) + 3) + "|")
    for name, entry in section["modalities"].items():
        cost = summary["data_cost"].get(name)
        described = DataCost.from_dict(cost).describe() if cost else "n/a"
        cells = [_cell(entry.get(metric)) for metric, _ in columns]
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
    lines += ["", f"Ranking stability (Spearman, seed sets {sets}): " + "; ".join(ranks) + ".", ""]
    return lines


def table_markdown(summary: dict) -> str:
    """``table.md``: the Table 1 analogue of each judge, differences, ranking stability."""
    settings = summary["settings"]
    lines = [
        "# Training data vs. particle picking (Table 1 analogue)",
        "",
        f"FAKET modality made with VGG-19 weights: **{summary['vgg_weights']}**. "
        f"Seeds per modality: {', '.join(map(str, settings['seeds']))}. Cells: mean over "
        f"seeds [{settings['interval']}, {settings['replicates']} replicates] ± seed "
        f"standard deviation. Excluded classes: {', '.join(settings['exclude']) or 'none'} "
        f"(exclusion convention: {settings['exclusion_convention']}). Data cost: wall time "
        "summed over the modality's own steps on the training tomograms, peak memory, device.",
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
    """``table.json``, ``table.md``, ``f1_by_modality.png`` and the DeepFinder files of
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
