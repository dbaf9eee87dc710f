"""The class table of a tomogram (``classes.csv``): sizes, kinds, order, CZII radii/weights.

Columns read (all optional but ``name``): ``kind`` (``particle``, ``vesicle``,
``fiducial``...), ``diameter_nm`` (or ``diameter`` in Å), ``radius_A`` (particle radius
in Å, as the CZII challenge's copick configs give it) and ``czii_weight`` (the class's
weight in the CZII score).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

#: Names that are non-particle kinds when the class table has no ``kind`` column.
NON_PARTICLE_NAMES = ("vesicle", "fiducial")


def class_sizes(classes: pd.DataFrame | None) -> dict[str, float]:
    """Class name -> diameter in nm from a class table (``diameter_nm`` or Å ``diameter``)."""
    if classes is None:
        return {}
    if "diameter_nm" in classes.columns:
        values = pd.to_numeric(classes["diameter_nm"], errors="coerce")
    elif "diameter" in classes.columns:
        values = pd.to_numeric(classes["diameter"], errors="coerce") / 10.0
    else:
        return {}
    return {str(n): float(v) for n, v in zip(classes["name"], values, strict=True) if v == v}


def class_kinds(classes: pd.DataFrame | None) -> dict[str, str]:
    """Class name -> kind (``particle``, ``vesicle``, ...) from the ``kind`` column."""
    if classes is None or "kind" not in classes.columns:
        return {}
    return {str(n): str(k) for n, k in zip(classes["name"], classes["kind"], strict=True)}


def kind_of(name: str, classes: pd.DataFrame | None) -> str:
    """The kind of a class: the table's ``kind``, else ``vesicle``/``fiducial`` by name,
    else ``particle``."""
    kinds = class_kinds(classes)
    if name in kinds:
        return kinds[name]
    lower = name.lower()
    return lower if lower in NON_PARTICLE_NAMES else "particle"


def sort_by_size(names: Iterable[str], classes: pd.DataFrame | None) -> list[str]:
    """Class names ordered as the paper's figures: particles from smallest to largest,
    then vesicles, fiducials and other non-particle kinds, then classes of unknown size."""
    sizes = class_sizes(classes)
    kinds = class_kinds(classes)
    table_order = {str(n): i for i, n in enumerate(classes["name"])} if classes is not None else {}

    def key(name: str) -> tuple:
        kind = kinds.get(name, "particle" if name not in NON_PARTICLE_NAMES else name)
        if name not in sizes:
            return (2, 0.0, name)
        if kind != "particle":
            return (1, float(table_order.get(name, 0)), name)
        return (0, sizes[name], name)

    return sorted(names, key=key)


def czii_radii_weights(
    names: Iterable[str], classes: pd.DataFrame | None
) -> tuple[dict[str, float], dict[str, float]]:
    """Particle radius (Å) and CZII weight of each class.

    Radius: the table's ``radius_A`` where given, else ``diameter_nm * 5`` Å (half the
    diameter), NaN when neither is known. Weight: ``czii_weight`` where given, else 1.

    Returns
    -------
    (radii, weights) : dicts of class name -> float
    """
    names = [str(n) for n in names]
    sizes = class_sizes(classes)
    table = classes.set_index(classes["name"].astype(str)) if classes is not None else None

    def column(name: str, key: str) -> float:
        if table is None or key not in table.columns or name not in table.index:
            return float("nan")
        value = table.loc[name, key]
        if isinstance(value, pd.Series):  # a name listed twice: the first row
            value = value.iloc[0]
        return float(pd.to_numeric(value, errors="coerce"))

    radii, weights = {}, {}
    for name in names:
        radius = column(name, "radius_A")
        radii[name] = radius if radius == radius else sizes.get(name, float("nan")) * 5.0
        weight = column(name, "czii_weight")
        weights[name] = weight if weight == weight else 1.0
    return radii, weights
