"""Evaluation harness: SHREC 2021 scores, a DeepFinder network, training and picking.

- :mod:`~faket.evaluation.scoring` -- :func:`score` a particle list against ground truth.
- :mod:`~faket.evaluation.report` -- scores as JSON, CSV, text and a figure.
- :mod:`~faket.evaluation.network` -- the DeepFinder encoder-decoder and checkpoints.
- :mod:`~faket.evaluation.targets` -- label volumes to learn (spheres or class mask).
- :mod:`~faket.evaluation.training` -- :func:`train` with per-epoch validation.
- :mod:`~faket.evaluation.inference` -- :func:`segment`, :func:`cluster`, :func:`predict`.
- :mod:`~faket.evaluation.data` -- tomograms, coordinate frames, dataset splits.
- :mod:`~faket.evaluation.experiment` -- training per modality and seed, Table 1.

The modality comparison of the paper on a 2-core CPU (see ``PRESETS`` in
:mod:`~faket.evaluation.training`)::

    faket config init --preset small > small.yaml
    faket run small.yaml -o data                 # ~3.5 min on 2 cores
    faket experiment data -o results --preset small --seeds 2 \
        --modalities benchmark faket noisy baseline noiseless

On a GPU, with a dataset from ``--preset shrec``, use ``--preset shrec`` (the paper's
DeepFinder settings: widths 32/48/64, 48-voxel patches, Dice loss, Adam 1e-4, 70
epochs validated every epoch).
"""

from faket.evaluation.data import Frame, Tomogram, dataset_split, load_tomogram
from faket.evaluation.inference import (
    cluster,
    default_cluster_settings,
    locate,
    normalize,
    predict,
    segment,
)
from faket.evaluation.network import DeepFinder, TrainedModel, load_model, save_model
from faket.evaluation.report import scores_dict, write_scores
from faket.evaluation.scoring import GroundTruth, Scores, load_truth, score
from faket.evaluation.training import TrainConfig, TrainResult, train, train_config

__all__ = [
    "DeepFinder",
    "Frame",
    "GroundTruth",
    "Scores",
    "Tomogram",
    "TrainConfig",
    "TrainResult",
    "TrainedModel",
    "cluster",
    "dataset_split",
    "default_cluster_settings",
    "locate",
    "load_model",
    "load_tomogram",
    "load_truth",
    "normalize",
    "predict",
    "save_model",
    "score",
    "scores_dict",
    "segment",
    "train",
    "train_config",
    "write_scores",
]
