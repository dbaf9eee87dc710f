"""The experiment's table shows each modality's realism (``realism.json``) beside its F1."""

from __future__ import annotations

import json

import pytest
from _evaluation_data import write_dataset

from faket.evaluation.table import realism_columns, realism_rank_correlation, table_markdown

#: Spectrum log RMS and F1 per modality: the more real, the better (a perfect ranking).
RMS = {"benchmark": 0.09, "spectral": 0.17, "noisy": 0.26, "faket": 0.33}
F1 = {"benchmark": 0.80, "spectral": 0.60, "noisy": 0.50, "faket": 0.55}


def _realism_report(names) -> dict:
    modalities = {
        m: {"summary": {"spectrum_log_rms": RMS[m], "histogram_w1": RMS[m] / 4}} for m in names
    }
    return {"modalities": modalities}


def _section(names) -> dict:
    entry = {"mean": 0.0, "ci_low": None, "ci_high": None, "seed_std": 0.0}
    return {
        "modalities": {
            m: {"localization_f1": {**entry, "mean": F1[m]}, "best_epoch_mean": 3.0} for m in names
        },
        "differences": {},
        "rank_correlation": {"localization_f1": {"spearman": None, "seed_sets": [[0], [1]]}},
    }


def test_realism_columns_come_from_the_datasets_realism_report(tmp_path):
    root = write_dataset(tmp_path / "data")
    report = _realism_report(["benchmark", "faket"])
    (root / "realism.json").write_text(json.dumps(report))
    columns = realism_columns(root, ["benchmark", "faket", "noiseless"])
    assert columns["faket"] == {"spectrum_log_rms": 0.33, "histogram_w1": 0.0825}
    assert columns["noiseless"] is None  # not measured: n/a, not an error


def test_a_dataset_without_realism_numbers_gives_none_with_a_warning(tmp_path):
    root = write_dataset(tmp_path / "data")  # reconstructions only: nothing to measure
    with pytest.warns(RuntimeWarning, match="no realism numbers"):
        assert realism_columns(root, ["faket"]) == {"faket": None}
    (root / "realism.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match="not a realism report"):
        assert realism_columns(root, ["faket"]) == {"faket": None}


def test_realism_rank_correlation_is_spearman_over_the_measured_modalities():
    names = list(RMS)
    realism = {m: {"spectrum_log_rms": RMS[m]} for m in names} | {"noiseless": None}
    section = _section(names)
    section["modalities"]["noiseless"] = {"localization_f1": {"mean": 0.1}}
    result = realism_rank_correlation(section, realism, "deepfinder")
    assert result["modalities"] == names  # noiseless has no realism: left out
    # Ranks of RMS 1 2 3 4 against ranks of F1 4 3 1 2: rho = 1 - 6 * 18 / 60 = -0.8.
    assert result["spearman"] == pytest.approx(-0.8)
    assert result["metric"] == "localization_f1"


def test_the_markdown_table_shows_realism_beside_the_scores():
    names = ["benchmark", "spectral", "faket"]
    summary = {
        "settings": {
            "seeds": [0, 1],
            "interval": "95 % bootstrap",
            "replicates": 10,
            "exclude": [],
            "exclusion_convention": "shrec",
        },
        "vgg_weights": "random",
        "data_cost": {},
        "realism": {m: {"spectrum_log_rms": RMS[m], "histogram_w1": 0.05} for m in names[:2]}
        | {"faket": None},
        **_section(names),
    }
    summary["realism_rank_correlation"] = {
        "deepfinder": realism_rank_correlation(summary, summary["realism"], "deepfinder")
    }
    lines = table_markdown(summary).splitlines()
    header = next(line for line in lines if line.startswith("| training data"))
    cells = header.split(" | ")
    assert cells.index("spectrum log RMS") < cells.index("localization F1")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines if line.startswith("| ")}
    assert rows["spectral"][2:5] == ["0.170", "0.050", "0.600"]
    assert rows["faket"][2:4] == ["n/a", "n/a"]
    # Two modalities with realism numbers cannot be ranked.
    assert any("not enough modalities" in line for line in lines)
