"""copick projects: config, objects and reading; writing is :mod:`faket.io.copick_write`.

copick (with zarr and ome-zarr underneath) is an optional extra: ``pip install
'faket[copick]'``; without it every function here raises a :class:`FaketError` that names
the extra. Nothing is written by hand: the config through :func:`copick.new_config`, the
OME-Zarr multiscales through copick's and ome-zarr's writers, the picks through copick's
point files.

Conventions of a faket-written project:

- One pickable object per class; copick names allow no underscores, so ``globule_4nm``
  becomes ``globule-4nm``, and the faket class name, id and kind are kept in the object's
  ``metadata["faket"]`` (read back by :func:`read_picks`). The label is the faket class id.
- Picks are in Å: ``location = voxel index * voxel spacing`` for ``(x, y, z)``, voxel 0 at
  0 Å. An orientation is the transform's rotation block, the object-to-tomogram rotation
  (faket's ZXZ matrix, :mod:`faket.phantom.rotations`); the translation stays 0.
- Segmentations: :data:`CLASS_SEGMENTATION` is multilabel (voxel = object label), and
  :data:`INSTANCE_SEGMENTATION` is panoptic (object label, instance id within that
  object); point ``k`` of an object's picks is its instance ``k + 1`` (``instance_id``).
"""

from __future__ import annotations

import colorsys
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from faket.errors import FaketError

__all__ = [
    "CLASS_SEGMENTATION",
    "CONFIG_FILE",
    "INSTANCE_SEGMENTATION",
    "import_copick",
    "new_project",
    "object_classes",
    "object_name",
    "open_project",
    "pickable_objects",
    "read_picks",
    "read_segmentation",
    "read_tomogram",
    "resolve_spacing",
    "run_names",
]

#: File name of the project config inside a project folder written by faket.
CONFIG_FILE = "copick_config.json"
#: Names of the class (multilabel) and instance (panoptic) segmentations.
CLASS_SEGMENTATION = "classes"
INSTANCE_SEGMENTATION = "instances"
#: The pickable-object metadata key that holds faket's own class description.
METADATA_KEY = "faket"


def import_copick():
    """The ``copick`` module, or a one-line error naming the extra to install."""
    try:
        import copick  # noqa: F401
        import ome_zarr  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as error:
        raise FaketError(
            f"copick projects need the optional copick packages ({error.name} is missing); "
            "install them with: pip install 'faket[copick]'"
        ) from None
    return copick


def object_name(class_name: str) -> str:
    """copick's name of a faket class: invalid characters (``_``, spaces, ...) become ``-``."""
    from copick.util.escape import sanitize_name

    try:
        return sanitize_name(str(class_name), suppress_warnings=True)
    except ValueError:
        raise FaketError(f"class name {class_name!r} cannot be a copick object name") from None


def _pdb_id(row: pd.Series) -> str | None:
    from faket.phantom.download import is_pdb_id

    for key in ("pdb_id", "pdb"):
        value = row.get(key)
        if isinstance(value, str) and is_pdb_id(value.strip()):
            return value.strip().upper()
    source = str(row.get("source", "")).split(" (sha256")[0].strip()
    stem = Path(source).name.split(".")[0] if source else ""
    return stem.upper() if stem and is_pdb_id(stem) else None


def _radius_A(row: pd.Series) -> float | None:
    for key in ("radius_A", "radius"):
        if key in row and pd.notna(row[key]):
            return round(float(row[key]), 2)
    if "diameter_nm" in row and pd.notna(row["diameter_nm"]):
        return round(float(row["diameter_nm"]) * 5.0, 2)  # nm diameter -> Å radius
    return None


def _colour(index: int) -> tuple[int, int, int, int]:
    # Hues a golden-ratio step apart: neighbours differ clearly, for any number of classes.
    red, green, blue = colorsys.hsv_to_rgb((0.6 + 0.618034 * index) % 1.0, 0.7, 0.95)
    return (round(red * 255), round(green * 255), round(blue * 255), 255)


def pickable_objects(classes: pd.DataFrame) -> list:
    """copick pickable objects of a faket class table (``id, name, kind, diameter_nm, ...``).

    Parameters
    ----------
    classes : DataFrame
        One row per class; ``id`` becomes the label, ``radius_A`` (or half of
        ``diameter_nm``) the radius in Å, a PDB ID in ``pdb_id`` or the source file's name
        the PDB ID. ``kind`` ``vesicle`` is a non-particle (membrane) object.

    Returns
    -------
    list of copick.models.PickableObject
    """
    import_copick()
    from copick.models import PickableObject

    objects, seen = [], {}
    for index, (_, row) in enumerate(classes.iterrows()):
        name = object_name(row["name"])
        if name in seen:
            raise FaketError(
                f"classes {seen[name]!r} and {row['name']!r} both become copick object {name!r}; "
                "rename one"
            )
        seen[name] = row["name"]
        kind = str(row.get("kind", "particle"))
        metadata = {"class_name": str(row["name"]), "class_id": int(row["id"]), "kind": kind}
        if "czii_weight" in row and pd.notna(row["czii_weight"]):
            metadata["czii_weight"] = float(row["czii_weight"])
        objects.append(
            PickableObject(
                name=name,
                is_particle=kind != "vesicle",
                label=int(row["id"]),
                color=_colour(index),
                pdb_id=_pdb_id(row),
                radius=_radius_A(row),
                metadata={METADATA_KEY: metadata},
            )
        )
    return objects


def new_project(
    config: str | os.PathLike[str],
    overlay_root: str | os.PathLike[str],
    objects,
    *,
    name: str,
    description: str = "",
):
    """Write a filesystem copick config (``copick.new_config``) and open it.

    Parameters
    ----------
    config : path of the JSON file to write.
    overlay_root : folder of the runs (absolute paths make the config usable anywhere).
    objects : pickable objects (:func:`pickable_objects`).
    name, description : project name and description.
    """
    copick = import_copick()
    return copick.new_config(
        str(config),
        str(Path(overlay_root).resolve()),
        proj_name=name,
        proj_description=description,
        pickable_objects=objects,
    )


def open_project(path: str | os.PathLike[str]):
    """Open a copick project from its config file (a project folder: its :data:`CONFIG_FILE`)."""
    copick = import_copick()
    file = Path(path)
    if file.is_dir():
        file = file / CONFIG_FILE
    if not file.is_file():
        raise FaketError(f"{file}: no such copick config; pass the project's JSON config file")
    try:
        return copick.from_file(str(file))
    except Exception as error:  # copick raises JSON, pydantic and filesystem errors
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FaketError(f"{file} is not a readable copick config ({first})") from None


def run_names(root) -> list[str]:
    """Names of a project's runs."""
    return [run.name for run in root.runs]


def _run(root, name: str):
    run = root.get_run(name)
    if run is None:
        names = run_names(root)
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        raise FaketError(f"copick project has no run {name!r}; its runs: {shown or 'none'}")
    return run


def resolve_spacing(run, voxel_size: float | None = None, tomo_type: str | None = None):
    """The run's voxel spacing: ``voxel_size`` (Å), else the only one (holding ``tomo_type``)."""
    spacings = [vs for vs in run.voxel_spacings if tomo_type is None or vs.get_tomograms(tomo_type)]
    sizes = sorted(vs.voxel_size for vs in spacings)
    if voxel_size is not None:
        for vs in spacings:
            if abs(vs.voxel_size - voxel_size) < 1e-3:
                return vs
        raise FaketError(
            f"run {run.name!r} has no voxel spacing {voxel_size} Å"
            + (f" with a {tomo_type!r} tomogram" if tomo_type else "")
            + f"; it has {sizes or 'none'}"
        )
    if len(spacings) != 1:
        what = "no voxel spacing" if not spacings else f"voxel spacings {sizes} Å"
        raise FaketError(
            f"run {run.name!r} has {what}"
            + (f" with a {tomo_type!r} tomogram" if tomo_type else "")
            + ("; pass --voxel-spacing" if spacings else "")
        )
    return spacings[0]


def read_tomogram(
    root, run_name: str, *, tomo_type: str | None = None, voxel_size: float | None = None
) -> tuple[np.ndarray, float, str]:
    """A run's tomogram at full resolution.

    Parameters
    ----------
    root : an open project (:func:`open_project`).
    run_name : the run.
    tomo_type : which tomogram (``benchmark``, ``wbp``, ...); default the only one.
    voxel_size : which voxel spacing (Å); default the only one holding ``tomo_type``.

    Returns
    -------
    (volume, voxel_size, tomo_type)
        ``(Z, Y, X)`` float32 array, its voxel size in Å and its tomogram type.
    """
    run = _run(root, run_name)
    spacing = resolve_spacing(run, voxel_size, tomo_type)
    types = sorted(t.tomo_type for t in spacing.tomograms)
    if tomo_type is None:
        if len(types) != 1:
            raise FaketError(
                f"run {run_name!r} at {spacing.voxel_size} Å has tomograms {types}; "
                "pass --tomo-type"
            )
        tomo_type = types[0]
    tomogram = spacing.get_tomograms(tomo_type)[0]
    volume = np.asarray(tomogram.numpy(), dtype=np.float32)
    return volume, float(spacing.voxel_size), tomo_type


def _object_table(root) -> dict[str, dict]:
    table = {}
    for obj in root.pickable_objects:
        meta = (obj.metadata or {}).get(METADATA_KEY, {})
        table[obj.name] = {
            "class_name": meta.get("class_name", obj.name),
            "label": obj.label,
            "radius": obj.radius,
            "is_particle": obj.is_particle,
            "kind": meta.get("kind", "particle" if obj.is_particle else "vesicle"),
            "czii_weight": meta.get("czii_weight"),
            "pdb_id": obj.pdb_id,
        }
    return table


def object_classes(root) -> pd.DataFrame:
    """The project's objects as a faket class table (``id, name, kind, diameter_nm, ...``)."""
    rows = []
    for name, info in _object_table(root).items():
        radius = info["radius"]
        rows.append(
            {
                "id": info["label"],
                "name": info["class_name"],
                "copick_name": name,
                "kind": info["kind"],
                "diameter_nm": np.nan if radius is None else 2 * radius / 10.0,
                "radius_A": np.nan if radius is None else float(radius),
                "czii_weight": info["czii_weight"] if info["czii_weight"] is not None else np.nan,
                "pdb_id": info["pdb_id"] or "",
            }
        )
    return pd.DataFrame(rows)


def _pick_sets(run, names, user_id, session_id):
    sets = [p for p in run.get_picks(object_name=names, user_id=user_id, session_id=session_id)]
    owners = sorted({(p.user_id, p.session_id) for p in sets})
    if len(owners) > 1:
        listed = ", ".join(f"{u}/{s}" for u, s in owners)
        raise FaketError(
            f"run {run.name!r} has picks from several users/sessions ({listed}); "
            "pass --user-id and --session-id"
        )
    return sets


def read_picks(
    root,
    run_name: str,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    objects: list[str] | None = None,
) -> pd.DataFrame:
    """A run's picks as one table, coordinates in Å.

    Parameters
    ----------
    root : an open project.
    run_name : the run.
    user_id, session_id : whose picks; default the only user/session that has any.
    objects : copick object names to read; default every pickable object.

    Returns
    -------
    DataFrame
        ``class_name`` (faket's name when the project was written by faket), ``object``
        (copick name), ``label``, ``x, y, z`` (Å), ``phi, theta, psi`` (ZXZ, degrees, of
        the object-to-tomogram rotation) and ``instance_id``, objects in label order.
    """
    run = _run(root, run_name)
    table = _object_table(root)
    names = list(table) if objects is None else objects
    unknown = [n for n in names if n not in table]
    if unknown:
        raise FaketError(f"copick project has no object {unknown[0]!r}; it has {list(table)}")
    frames = []
    for picks in sorted(
        _pick_sets(run, names, user_id, session_id),
        key=lambda p: table[p.pickable_object_name]["label"],
    ):
        positions = picks.full_positions()
        if len(positions) == 0:
            continue
        _, transforms = picks.numpy()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Gimbal lock", category=UserWarning)
            angles = Rotation.from_matrix(transforms[:, :3, :3]).as_euler("ZXZ", degrees=True)
        info = table[picks.pickable_object_name]
        frames.append(
            pd.DataFrame(
                {
                    "class_name": info["class_name"],
                    "object": picks.pickable_object_name,
                    "label": info["label"],
                    "x": positions[:, 0],
                    "y": positions[:, 1],
                    "z": positions[:, 2],
                    "phi": angles[:, 0],
                    "theta": angles[:, 1],
                    "psi": angles[:, 2],
                    "instance_id": picks.instance_ids(),
                }
            )
        )
    columns = ["class_name", "object", "label", "x", "y", "z", "phi", "theta", "psi", "instance_id"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def read_segmentation(
    root,
    run_name: str,
    name: str,
    voxel_size: float,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    panoptic: bool = False,
) -> np.ndarray | None:
    """A run's segmentation at ``voxel_size`` Å (``(2, Z, Y, X)`` when panoptic), or None."""
    run = _run(root, run_name)
    found = run.get_segmentations(
        user_id=user_id,
        session_id=session_id,
        name=name,
        voxel_size=float(voxel_size),
        is_multilabel=None if panoptic else True,
        is_panoptic=panoptic,
    )
    return np.asarray(found[0].numpy()) if found else None
