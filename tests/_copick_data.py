"""A tiny dataset in ``faket run``'s layout for the copick tests (seconds to build).

The grand models are real (built-in classes, random orientations); the reconstructions
are seeded noise of the reconstruction's shape, which is all the export needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faket.io import write_mrc
from faket.phantom import make_grand_model, parse_config, write_grand_model
from faket.pipeline import commented_yaml, parse_dataset_config

PHANTOM = {
    "shape": (24, 48, 48),
    "classes": ["globule_4nm", "dimer_9nm", "ring5_11nm"],
    "per_class": 2,
    "vesicles": 1,
    "fiducials": 1,
    "vesicle_radius_nm": (6.0, 8.0),
}
TRAINING = ("noiseless", "benchmark", "noisy")


def write_copick_dataset(root: Path, post_binning: int = 1) -> Path:
    """Three tomograms (two training with three modalities, one benchmark-only test)."""
    config = parse_dataset_config(
        {
            "name": "copick test",
            "n_tomograms": 3,
            "phantom": PHANTOM,
            "reconstruction": {"filter": "ramp", "post_binning": post_binning},
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_config.yaml").write_text(commented_yaml(config))
    rng = np.random.default_rng(7)
    shape = tuple(n // post_binning for n in PHANTOM["shape"])
    for index in range(3):
        folder = root / f"tomo_{index:03d}"
        model = make_grand_model(parse_config(PHANTOM, seed=index), show_progress=False)
        write_grand_model(model, folder)
        modalities = ("benchmark",) if index == config.test_index else TRAINING
        for modality in modalities:
            volume = rng.normal(size=shape).astype(np.float32)
            write_mrc(folder / f"reconstruction_{modality}.mrc", volume, 10.0 * post_binning)
    return root
