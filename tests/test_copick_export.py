"""``faket export copick``: the project read back with copick itself matches the dataset."""

from __future__ import annotations

import json
import shutil
import sys
import warnings

import copick
import numpy as np
import pandas as pd
import pytest
import zarr
from _copick_data import TRAINING, write_copick_dataset

from faket.cli.main import main
from faket.errors import FaketError
from faket.io import copick as cp
from faket.io import copick_write as cpw
from faket.io import read_mrc, read_shrec_particles
from faket.phantom.rotations import zxz_to_matrices
from faket.pipeline.export import export_copick, within_object_ids


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("copick")
    dataset = write_copick_dataset(base / "data")
    summary = export_copick(dataset, base / "project", progress=False)
    return dataset, summary


def _open_quietly(path):
    """Open and read a project, failing on any warning (the issue: opens with none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        root = copick.from_file(str(path))
        for run in root.runs:
            for spacing in run.voxel_spacings:
                for tomogram in spacing.tomograms:
                    tomogram.numpy("2")
            for picks in run.picks:
                picks.numpy()
            for segmentation in run.segmentations:
                segmentation.numpy()
    return root


def test_objects_carry_label_radius_pdb_id_and_faket_names():
    classes = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["globule_4nm", "1bxn", "vesicle"],
            "kind": ["particle", "particle", "vesicle"],
            "source": ["builtin", "/data/pdb/1bxn.pdb (sha256 0123abcd)", "procedural"],
            "diameter_nm": [5.47, 12.0, 24.0],
        }
    )
    objects = cp.pickable_objects(classes)
    assert [o.name for o in objects] == ["globule-4nm", "1bxn", "vesicle"]
    assert [o.label for o in objects] == [1, 2, 3]
    assert [o.radius for o in objects] == pytest.approx([27.35, 60.0, 120.0])  # Å
    assert [o.pdb_id for o in objects] == [None, "1BXN", None]
    assert [o.is_particle for o in objects] == [True, True, False]
    assert objects[0].metadata["faket"] == {
        "class_name": "globule_4nm",
        "class_id": 1,
        "kind": "particle",
    }
    assert len({o.color for o in objects}) == 3
    clash = classes.assign(name=["a_b", "a-b", "c"])
    with pytest.raises(FaketError, match="both become copick object 'a-b'"):
        cp.pickable_objects(clash)


def test_project_opens_without_warnings_and_has_a_run_per_tomogram(exported):
    dataset, summary = exported
    root = _open_quietly(summary.config)
    assert sorted(r.name for r in root.runs) == ["tomo_000", "tomo_001", "tomo_002"]
    types = {r.name: sorted(t.tomo_type for t in r.voxel_spacings[0].tomograms) for r in root.runs}
    assert types["tomo_000"] == sorted(TRAINING) and types["tomo_002"] == ["benchmark"]
    assert summary.tomograms == 2 * len(TRAINING) + 1
    config = json.loads(summary.config.read_text())
    assert config["config_type"] == "filesystem"
    assert config["overlay_root"] == f"local://{summary.project.resolve()}"
    assert not list(summary.project.parent.glob(".project.tmp-*"))  # staging renamed away


def test_tomograms_are_the_reconstructions_at_scales_1_2_4(exported):
    dataset, summary = exported
    root = copick.from_file(str(summary.config))
    spacing = root.get_run("tomo_001").get_voxel_spacing(10.0)
    assert spacing.voxel_size == 10.0
    (tomogram,) = spacing.get_tomograms("noisy")
    expected = read_mrc(dataset / "tomo_001" / "reconstruction_noisy.mrc").data
    np.testing.assert_array_equal(tomogram.numpy(), expected)
    assert tomogram.numpy("1").shape == (12, 24, 24) and tomogram.numpy("2").shape == (6, 12, 12)
    # The 2x level is the mean of 2x2x2 blocks (copick's local-mean pyramid).
    blocks = expected.reshape(12, 2, 24, 2, 24, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(tomogram.numpy("1"), blocks, rtol=1e-5, atol=1e-6)
    attrs = zarr.open(tomogram.zarr(), mode="r").attrs.asdict()
    scales = [
        d["coordinateTransformations"][0]["scale"] for d in attrs["multiscales"][0]["datasets"]
    ]
    assert scales == [[10.0] * 3, [20.0] * 3, [40.0] * 3]
    assert [a["unit"] for a in attrs["multiscales"][0]["axes"]] == ["angstrom"] * 3


def test_picks_are_the_particle_list_in_angstrom_with_orientations(exported):
    dataset, summary = exported
    root = copick.from_file(str(summary.config))
    truth = read_shrec_particles(dataset / "tomo_000" / "particle_locations.txt")
    run = root.get_run("tomo_000")
    total = 0
    for name in truth["class_name"].unique():
        rows = truth[truth["class_name"] == name]
        (picks,) = run.get_picks(object_name=cp.object_name(name), user_id="faket")
        assert picks.session_id == "0"
        points, transforms = picks.numpy()
        np.testing.assert_allclose(points, rows[["x", "y", "z"]].to_numpy() * 10.0)
        rotations = zxz_to_matrices(rows[["phi", "theta", "psi"]].to_numpy())
        np.testing.assert_allclose(transforms[:, :3, :3], rotations, atol=1e-12)
        np.testing.assert_array_equal(transforms[:, :3, 3], 0.0)
        assert list(picks.instance_ids()) == list(range(1, len(rows) + 1))
        total += len(rows)
    assert total == len(truth)


def test_segmentations_are_the_class_and_instance_masks(exported):
    dataset, summary = exported
    root = copick.from_file(str(summary.config))
    run = root.get_run("tomo_002")
    folder = dataset / "tomo_002"
    class_mask = read_mrc(folder / "class_mask.mrc").data
    occupancy = np.rint(read_mrc(folder / "occupancy_mask.mrc").data).astype(int)
    (labels,) = run.get_segmentations(name="classes", is_multilabel=True, voxel_size=10.0)
    np.testing.assert_array_equal(labels.numpy(), class_mask)
    (panoptic,) = run.get_segmentations(name="instances", is_panoptic=True, voxel_size=10.0)
    both = panoptic.numpy()
    np.testing.assert_array_equal(both[0], class_mask)
    # Instance k + 1 of an object is point k of its picks: back to the global ids.
    particles = read_shrec_particles(folder / "particle_locations.txt")
    classes = pd.read_csv(folder / "classes.csv")
    ids = particles["class_name"].map(dict(zip(classes["name"], classes["id"], strict=True)))
    for instance in range(1, len(particles) + 1):
        label, within = (
            ids.iloc[instance - 1],
            (ids.iloc[:instance] == ids.iloc[instance - 1]).sum(),
        )
        np.testing.assert_array_equal(
            (both[0] == label) & (both[1] == within), occupancy == instance
        )


def test_within_object_ids():
    assert list(within_object_ids(np.array([2, 1, 2, 2, 1]))) == [0, 1, 1, 2, 3, 2]


def test_binned_reconstruction_gets_picks_and_masks_on_its_own_grid(tmp_path):
    dataset = write_copick_dataset(tmp_path / "data", post_binning=2)
    summary = export_copick(dataset, tmp_path / "project", modalities=["noisy"], progress=False)
    root = copick.from_file(str(summary.config))
    run = root.get_run("tomo_000")
    assert [vs.voxel_size for vs in run.voxel_spacings] == [20.0]
    # The test tomogram has no NOISY reconstruction: its run has its truth, no tomogram.
    test_run = root.get_run("tomo_002")
    assert not test_run.get_voxel_spacing(20.0).tomograms and test_run.get_picks()
    truth = read_shrec_particles(dataset / "tomo_000" / "particle_locations.txt")
    (picks,) = run.get_picks(object_name="dimer-9nm")
    points, _ = picks.numpy()
    # Binned voxel j covers grand-model voxels 2j, 2j + 1: centre c sits at (c - 0.5) / 2.
    rows = truth[truth["class_name"] == "dimer_9nm"][["x", "y", "z"]].to_numpy()
    np.testing.assert_allclose(points, (rows - 0.5) / 2 * 20.0)
    (labels,) = run.get_segmentations(name="classes", is_multilabel=True, voxel_size=20.0)
    assert labels.numpy().shape == (12, 24, 24)


def test_existing_project_needs_overwrite_and_failure_leaves_nothing(exported, tmp_path):
    dataset, summary = exported
    with pytest.raises(FaketError, match="already exists"):
        export_copick(dataset, summary.project, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FaketError, match="holds no copick_config.json"):
        export_copick(dataset, tmp_path / "other", overwrite=True, progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    (broken / "tomo_001" / "reconstruction_noisy.mrc").write_bytes(b"not an MRC file")
    with pytest.raises(FaketError):
        export_copick(broken, tmp_path / "half", progress=False)
    assert not (tmp_path / "half").exists() and not list(tmp_path.glob(".half*"))


def test_cli_export_and_its_errors(exported, tmp_path, capsys):
    dataset, _ = exported
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "export",
                "copick",
                str(dataset),
                "-o",
                str(tmp_path / "p"),
                "-q",
                "--user-id",
                "curation",
                "-m",
                "benchmark",
            ]
        )
    assert stop.value.code == 0
    assert "3 runs, 3 tomograms" in capsys.readouterr().err
    root = copick.from_file(str(tmp_path / "p" / "copick_config.json"))
    assert {p.user_id for p in root.get_run("tomo_000").picks} == {"curation"}
    with pytest.raises(SystemExit) as stop:
        main(["export", "copick", str(tmp_path / "nowhere"), "-o", str(tmp_path / "q")])
    assert stop.value.code == 2
    assert "no dataset_config.yaml" in capsys.readouterr().err


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "copick", None)  # import copick now raises ImportError
    with pytest.raises(FaketError, match=r"pip install 'faket\[copick\]'"):
        cp.import_copick()


def test_run_step_exports_once_and_again_when_a_reconstruction_changes(exported, tmp_path):
    from faket.pipeline import load_dataset_config
    from faket.pipeline.export import copick_step
    from faket.pipeline.manifest import Manifest

    dataset = tmp_path / "data"
    shutil.copytree(exported[0], dataset)
    for folder in sorted(dataset.glob("tomo_*")):  # as faket run records its steps
        manifest = Manifest(folder)
        for step in ["phantom", *(f"reconstruction_{m}" for m in TRAINING)]:
            manifest.record(step, f"{folder.name}-{step}", [], 0.0)
    config = load_dataset_config(dataset / "dataset_config.yaml")
    config = config.model_copy(
        update={
            "copick": config.copick.model_copy(
                update={"enabled": True, "folder": "cp", "user_id": "sim"}
            )
        }
    )
    first = copick_step(config, dataset)
    assert first.ran and first.outputs == ["cp/copick_config.json"]
    root = copick.from_file(str(dataset / "cp" / "copick_config.json"))
    assert {p.user_id for p in root.get_run("tomo_001").picks} == {"sim"}
    assert not copick_step(config, dataset).ran
    Manifest(dataset / "tomo_001").record("reconstruction_noisy", "changed", [], 0.0)
    assert copick_step(config, dataset).ran


def test_writers_store_what_copick_from_numpy_stores(tmp_path):
    """faket's writers only change chunking (and leave tomograms uncompressed): the same
    arrays, dtypes and OME/copick metadata as copick's own ``from_numpy``."""
    classes = pd.DataFrame({"id": [1, 2], "name": ["a", "b"], "kind": "particle"})
    root = cp.new_project(tmp_path / "c.json", tmp_path, cp.pickable_objects(classes), name="t")
    ours, theirs = root.new_run("ours"), root.new_run("theirs")
    rng = np.random.default_rng(3)
    volume = rng.normal(size=(16, 24, 32)).astype(np.float32)
    labels = rng.integers(0, 3, size=volume.shape)
    instances = np.where(labels > 0, rng.integers(1, 5, size=volume.shape), 0)
    mine = [
        cpw.write_tomogram(ours, "wbp", volume, 7.5),
        cpw.write_label_segmentation(ours, "classes", labels, 7.5, user_id="u", session_id="0"),
        cpw.write_panoptic_segmentation(
            ours, "inst", labels, instances, 7.5, user_id="u", session_id="0"
        ),
    ]
    theirs.new_voxel_spacing(7.5).new_tomogram("wbp").from_numpy(volume)
    multi = theirs.new_segmentation(7.5, "classes", "0", is_multilabel=True, user_id="u")
    multi.from_numpy(labels)
    pan = theirs.new_segmentation(7.5, "inst", "0", is_panoptic=True, user_id="u")
    pan.from_numpy(np.stack([labels, instances]))
    for a, b in zip(mine, [theirs.voxel_spacings[0].tomograms[0], multi, pan], strict=True):
        za, zb = zarr.open(a.zarr(), mode="r"), zarr.open(b.zarr(), mode="r")
        assert za.attrs.asdict() == zb.attrs.asdict()
        assert sorted(za.array_keys()) == sorted(zb.array_keys())
        for key in za.array_keys():
            assert za[key].dtype == zb[key].dtype and za[key].shape == zb[key].shape
            np.testing.assert_allclose(za[key][:], zb[key][:], rtol=1e-6, atol=1e-6)
    assert zarr.open(mine[0].zarr(), mode="r")["0"].compressor is None
    assert zarr.open(mine[0].zarr(), mode="r")["0"].chunks == (16, 24, 32)
    assert zarr.open(mine[2].zarr(), mode="r")["0"].compressor is not None
    assert zarr.open(mine[0].zarr(), mode="r")["2"].chunks == (4, 6, 8)  # no padding
