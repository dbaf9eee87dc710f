"""Dataset generation: one config -> every tomogram and modality, resumable, on Dask.

- :mod:`faket.pipeline.config` -- the validated dataset config.
- :mod:`faket.pipeline.presets` -- ``demo`` / ``small`` / ``shrec`` and commented YAML.
- :mod:`faket.pipeline.steps` -- the per-tomogram steps.
- :mod:`faket.pipeline.dataset` -- running them (serially or on Dask), noise model, figures.
- :mod:`faket.pipeline.manifest` -- what makes runs resumable.
"""

from faket.pipeline.config import DatasetConfig, load_dataset_config, parse_dataset_config
from faket.pipeline.dataset import RunSummary, run_dataset
from faket.pipeline.presets import PRESETS, commented_yaml, preset

__all__ = [
    "PRESETS",
    "DatasetConfig",
    "RunSummary",
    "commented_yaml",
    "load_dataset_config",
    "parse_dataset_config",
    "preset",
    "run_dataset",
]
