"""Every file in ``../shared/data`` (real cryo-ET data) is read, or refused with one line
that says what to do (issue 16). Skipped when ``../shared`` is absent (a fresh clone)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from faket.cli.main import main
from faket.io import read_angles, read_mrc, read_particles

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not available")

#: The files faket cannot use, and a word of the fix its one-line refusal must name.
REFUSED = {
    "MANIFEST.sha256": "it reads",
    "SOURCES.md": "it reads",
    "tomo/cylindra_MT_tomogram_crops/13pf_MT.tif": "tif2mrc",
    "tomo/cylindra_MT_tomogram_crops/14pf_MT.tif": "tif2mrc",
    "tomo/angles/etomofiles_TS_001/TS_001.xf": "pass the .tlt",
    "tomo/angles/etomofiles_TS_001/TS_001.xtilt": "pass the .tlt",
    "tomo/angles/etomofiles_TS_001/TS_001.edf": "pass the .tlt",
    "tomo/tomodrgn_EMPIAR-10499_particle_tiltseries/"
    "warptools_test_4-tomos_10-ptcls_box-32_angpix-12_tomograms.star": "pass the tilt series'",
    "tomo/tomodrgn_EMPIAR-10499_particle_tiltseries/"
    "warptools_test_4-tomos_10-ptcls_box-32_angpix-12_optimisation_set.star": "pass the tilt",
}
TOMODRGN = DATA / "tomo" / "tomodrgn_EMPIAR-10499_particle_tiltseries"
PYTOM = DATA / "tomo" / "pytom_p1_projections"
OLD_MAP = DATA / "maps" / "ribosome_templates" / "emd_5592_21A.mrc"


def _info(path: Path, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["info", str(path)])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_every_shared_file_is_read_or_refused_in_one_line(capsys):
    files = sorted(p for p in DATA.rglob("*") if p.is_file())
    assert len(files) > 100
    refused = {}
    for path in files:
        code, out, err = _info(path, capsys)
        name = str(path.relative_to(DATA))
        errors = [line for line in err.splitlines() if line.startswith("faket: error:")]
        if code == 0:
            assert out.startswith(f"File:        {path}") and not errors, (name, err)
        else:
            assert code == 2 and len(errors) == 1 and err.count("\n") == len(err.splitlines())
            assert "Traceback" not in err and str(path) in errors[0], (name, err)
            refused[name] = errors[0]
    assert set(refused) == set(REFUSED), sorted(set(refused) ^ set(REFUSED))
    for name, fix in REFUSED.items():
        assert fix in refused[name], (name, refused[name])


def test_pytom_em_projections_and_their_angles():
    projections = sorted(PYTOM.glob("projection_*.em"), key=lambda p: int(p.stem.split("_")[1]))
    assert len(projections) == 41
    images = [read_mrc(p) for p in projections]
    assert all(m.data.shape == (100, 100) and m.data.dtype == np.float32 for m in images)
    assert all(m.voxel_size == 0.0 for m in images)  # the EM headers leave it unset
    angles = read_angles(PYTOM / "projectionList.xml")
    np.testing.assert_array_equal(angles, read_angles(PYTOM / "projection_tilt_angles_derived.tlt"))
    assert angles[0] == -59.986 and angles[-1] == 59.991


def test_pytom_projections_reconstruct_from_their_xml_angles(tmp_path, capsys):
    projections = sorted(PYTOM.glob("projection_*.em"), key=lambda p: int(p.stem.split("_")[1]))
    from faket.io import write_mrc

    stack = np.stack([read_mrc(p).data for p in projections])
    write_mrc(tmp_path / "p1.mrc", stack, 0.0, stack=True)
    output = tmp_path / "p1_tomogram.mrc"
    args = [
        "reconstruct",
        tmp_path / "p1.mrc",
        "-o",
        output,
        "--angles",
        PYTOM / "projectionList.xml",
    ]
    with pytest.raises(SystemExit) as exited:
        main([*map(str, args), "--thickness", "24", "--voxel-size", "8", "-q"])
    assert exited.value.code == 0, capsys.readouterr().err
    volume = read_mrc(output)
    assert volume.data.shape == (24, 100, 100) and volume.voxel_size == 8.0


def test_serialem_mdoc_angles_are_in_stack_order():
    angles = read_angles(
        DATA / "tomo" / "angles" / "tiltstack_EMPIAR-10164_TS_01" / "TS_01.mrc.mdoc"
    )
    assert angles.size == 41
    # Dose-symmetric acquisition: [ZValue = 0] is ~0 degrees, then +3, -3, -6, +6 ...
    np.testing.assert_allclose(angles[:5], [0.000999877, 3.00113, -2.99863, -5.99876, 6.00126])
    np.testing.assert_allclose(np.sort(angles), np.linspace(-60, 60, 41), atol=0.01)


def test_old_style_map_reads_with_a_warning_everywhere(tmp_path, capsys):
    with pytest.warns(RuntimeWarning, match="old-style MRC file"):
        old = read_mrc(OLD_MAP)
    assert old.data.shape == (20, 20, 20) and old.voxel_size == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = read_mrc(DATA / "maps" / "ribosome_templates" / "human_ribo_21A.em")
    assert em.data.shape == (32, 32, 32)
    # The same reader serves every command: faket project reads it too (issue 16, item 4).
    with pytest.raises(SystemExit) as exited:
        main(["project", str(OLD_MAP), "-o", str(tmp_path / "p.mrc"), "-q", "--tilt-step", "30"])
    err = capsys.readouterr().err
    assert exited.value.code == 0 and "old-style MRC file" in err
    assert read_mrc(tmp_path / "p.mrc").data.shape == (5, 20, 20)


def test_warp_particles_and_float16_tilt_stacks():
    particles = read_particles(TOMODRGN / "warptools_test_4-tomos_10-ptcls_box-32_angpix-12.star")
    assert len(particles) == 40
    stack = read_mrc(next(TOMODRGN.rglob("*.mrcs")))
    assert stack.data.shape == (37, 32, 32) and stack.data.dtype == np.float16
    assert stack.voxel_size == 12.0


def test_inverted_template_is_refused_then_used_with_invert(tmp_path, capsys):
    em = DATA / "maps" / "ribosome_templates" / "human_ribo_21A.em"
    base = ["phantom", "--classes", str(em), "--shape", "48", "96", "96", "--per-class", "1",
            "--vesicles", "0", "--fiducials", "0", "--no-cache", "-q"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main([*base, "-o", str(tmp_path / "a"), "--map-voxel-size", "21"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "contrast-inverted" in err and "--invert" in err
    assert not (tmp_path / "a").exists()
    totals = {}
    for flag in ("--invert", "--no-invert"):
        with pytest.raises(SystemExit) as exited:
            main([*base, "-o", str(tmp_path / flag), "--map-voxel-size", "21", flag])
        assert exited.value.code == 0, capsys.readouterr().err
        potential = read_mrc(tmp_path / flag / "grandmodel.mrc").data
        totals[flag] = (potential.sum(dtype=np.float64), float(potential.max()))
    # Used as it is, the inverted map is clipped to its faint positive halo; flipped, the
    # particle itself carries the potential: about twice the integral and the peak.
    assert totals["--invert"][0] > 1.5 * totals["--no-invert"][0]
    assert totals["--invert"][1] > 1.5 * totals["--no-invert"][1]
