"""The CZII world: ``faket phantom --preset czii`` and the ``czii`` dataset preset."""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import pytest

from faket.cli.main import main
from faket.errors import FaketError
from faket.phantom import ClassSpec, make_grand_model, parse_config
from faket.phantom.czii import CZII_OBJECTS
from faket.phantom.presets import czii_classes, model_radius_A, phantom_preset
from faket.pipeline.presets import preset, resolve_preset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdb"


def _ball_model(path: Path, radius: float, n: int = 400, seed: int = 0) -> Path:
    """A PDB file of alanine CA atoms filling a ball of ``radius`` Å (model radius = radius)."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(4 * n, 3))
    points = points / np.linalg.norm(points, axis=1, keepdims=True)
    points *= radius * rng.uniform(0, 1, (4 * n, 1)) ** (1 / 3)
    structure, model, chain = gemmi.Structure(), gemmi.Model("1"), gemmi.Chain("A")
    for number, xyz in enumerate(points[:n], start=1):
        residue = gemmi.Residue()
        residue.name, residue.seqid = "ALA", gemmi.SeqId(number, " ")
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = "CA", gemmi.Element("C"), gemmi.Position(*xyz)
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    if path.suffix == ".cif":
        structure.make_mmcif_document().write_file(str(path))
    else:
        structure.write_pdb(str(path))
    return path


def test_model_radius_of_a_ball_is_its_radius(tmp_path):
    assert model_radius_A(_ball_model(tmp_path / "b.pdb", 60.0, n=3000)) == pytest.approx(
        60, rel=0.03
    )


def test_local_downloaded_and_missing_models(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    _ball_model(models / "4V1W.pdb", 62.0)  # apo-ferritin: the right size
    _ball_model(models / "6ek0.pdb", 40.0)  # "ribosome" of a third of the size: refused
    served = tmp_path / "served"
    served.mkdir()
    _ball_model(served / "1FA2-assembly1.cif", 64.0)  # what RCSB would send, as a file URL
    url = (served / "{id}-assembly1.cif").as_uri().replace("%7B", "{").replace("%7D", "}")
    specs, notes = czii_classes([models], cache_dir=tmp_path / "cache", url=url)
    by_name = {spec.name or spec.source: spec for spec in specs}
    assert list(by_name) == list(CZII_OBJECTS)
    assert by_name["apo-ferritin"].source == str(models / "4V1W.pdb")
    assert by_name["beta-amylase"].source.endswith("assemblies/pdb/1fa2.cif")  # cached
    assert by_name["ribosome"].source == "ribosome"  # built-in stand-in
    assert by_name["thyroglobulin"].source == "thyroglobulin"
    assert [s.count for s in specs] == [50, 12, 12, 40, 30, 14]
    text = "\n".join(notes)
    assert "ribosome: built-in stand-in (PDB 6EK0: 6ek0.pdb is 40 Å in radius" in text
    assert "thyroglobulin: built-in stand-in (PDB 6SCJ: download failed: " in text
    # Offline later: the downloaded model is found in the cache.
    specs, notes = czii_classes([], download=False, cache_dir=tmp_path / "cache")
    assert specs[1].source.endswith("1fa2.cif") and "downloads off" in notes[0]


def test_atomic_czii_class_carries_the_competition_radius_and_weight(tmp_path):
    ball = _ball_model(tmp_path / "ferritin.pdb", 60.0)
    config = parse_config(
        {
            "shape": (40, 64, 64),
            "classes": [
                ClassSpec(source=str(ball), name="apo-ferritin", count=1),
                ClassSpec(source="beta-amylase", count=1),
            ],
            "vesicles": 0,
            "fiducials": 0,
            "cache": False,
        }
    )
    table = make_grand_model(config, show_progress=False).classes.set_index("name")
    assert table.loc["apo-ferritin", "radius_A"] == 60.0
    assert table.loc["apo-ferritin", "czii_weight"] == 1.0
    assert table.loc["beta-amylase", "radius_A"] == 65.0
    assert table.loc["beta-amylase", "czii_weight"] == 0.0


@pytest.mark.skipif(not (SHARED / "4v1w.cif").is_file(), reason="no ../shared/data")
def test_shared_apoferritin_model_is_accepted(tmp_path):
    specs, notes = czii_classes([SHARED], download=False, cache_dir=tmp_path)
    assert specs[0].source == str(SHARED / "4v1w.cif") and specs[0].name == "apo-ferritin"
    assert all(
        spec.source == name for spec, name in zip(specs[1:], list(CZII_OBJECTS)[1:], strict=True)
    )


def test_presets_have_the_competition_geometry(tmp_path):
    settings, notes = phantom_preset("czii", download=False, cache_dir=tmp_path)
    config = parse_config(settings)
    assert config.shape == (184, 630, 630) and config.voxel_size == 10.0
    assert [c.source for c in config.classes] == list(CZII_OBJECTS)
    assert len(notes) == 6 and all("built-in stand-in" in n for n in notes)
    dataset = preset("czii")
    assert dataset.phantom.shape == (184, 630, 630) and dataset.copick.enabled
    assert dataset.reconstruction.post_binning == 1  # tomograms at 10 Å, as in the competition
    resolved, _ = resolve_preset("czii", download=False)
    assert [c.source for c in resolved.phantom.classes] == list(CZII_OBJECTS)
    with pytest.raises(FaketError, match="unknown phantom preset"):
        phantom_preset("shrec")


def test_phantom_cli_preset_says_which_models_and_yields_to_config_and_options(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("FAKET_CACHE_DIR", str(tmp_path / "cache"))
    settings = tmp_path / "mine.yaml"
    # The preset's classes take seconds to build; the config file replaces them.
    settings.write_text("classes: [{source: beta-amylase, count: 2}]\n")
    out = tmp_path / "gm"
    argv = ["phantom", "--preset", "czii", "--offline", "--config", str(settings), "-o", str(out)]
    with pytest.raises(SystemExit) as stop:
        main(
            [
                *argv,
                "--shape",
                "48",
                "96",
                "96",
                "--device",
                "cpu",
                "--max-attempts",
                "50",
                "--allow-partial",
            ]
        )
    assert stop.value.code in (0, None)
    err = capsys.readouterr().err
    assert err.count("built-in stand-in") == 6 and "downloads off" in err
    table = pd.read_csv(out / "classes.csv").set_index("name")
    assert table.loc["beta-amylase", "radius_A"] == 65.0
    assert table.loc["beta-amylase", "czii_weight"] == 0.0
    assert table.loc["vesicle", "requested"] == 3 and table.loc["fiducial", "requested"] == 0
    config = json.loads((out / "phantom_config.json").read_text())["config"]
    assert config["shape"] == [48, 96, 96] and config["voxel_size"] == 10.0
    with pytest.raises(SystemExit) as stop:
        main(["phantom", "--models", str(tmp_path), "-o", str(tmp_path / "x")])
    assert stop.value.code == 2 and "--models needs --preset czii" in capsys.readouterr().err
