"""Evaluation harness: SHREC 2021 scores, a DeepFinder network, training and picking.

- :mod:`~faket.evaluation.scoring` -- :func:`score` a particle list against ground truth
  (SHREC 2021; exclusion conventions ``shrec``/``strict``).
- :mod:`~faket.evaluation.czii` -- the CZII 2024-25 F-beta metric (:func:`czii_score`).
- :mod:`~faket.evaluation.classes`, :mod:`~faket.evaluation.confusion` -- class tables
  (sizes, kinds, CZII radii/weights) and confusion-matrix F1 scores.
- :mod:`~faket.evaluation.report` -- scores as JSON, CSV, text and a figure.
- :mod:`~faket.evaluation.network` -- the DeepFinder encoder-decoder and checkpoints.
- :mod:`~faket.evaluation.targets` -- label volumes to learn (spheres or class mask).
- :mod:`~faket.evaluation.training` -- :func:`train` with per-epoch validation;
  :mod:`~faket.evaluation.train_config` -- its settings and presets;
  :mod:`~faket.evaluation.optimisation` -- losses, patches, schedule, weight averaging.
- :mod:`~faket.evaluation.inference` -- :func:`segment`, :func:`cluster`, :func:`predict`.
- :mod:`~faket.evaluation.data` -- tomograms, coordinate frames, dataset splits.
- :mod:`~faket.evaluation.experiment` -- DeepFinder training per modality and seed.
- :mod:`~faket.evaluation.subtomograms`, :mod:`~faket.evaluation.classify`,
  :mod:`~faket.evaluation.classify_report` -- the subtomogram-classification judge.
- :mod:`~faket.evaluation.statistics`, :mod:`~faket.evaluation.resampling` -- the
  hierarchical paired bootstrap and the resampling units of both judges.
- :mod:`~faket.evaluation.comparison`, :mod:`~faket.evaluation.table`,
  :mod:`~faket.evaluation.datacost` -- the whole experiment (Table 1 with intervals,
  data cost, ranking stability).

The modality comparison of the paper on a 2-core CPU (see ``PRESETS`` in
:mod:`~faket.evaluation.train_config`)::

    faket config init --preset small > small.yaml
    faket run small.yaml -o data                 # ~3.5 min on 2 cores
    faket experiment data -o results --preset small --seeds 3 --judge both \
        --modalities benchmark faket noisy baseline noiseless

On a GPU, with a dataset from ``--preset shrec``, use ``--preset shrec`` (the paper's
DeepFinder settings: widths 32/48/64, 48-voxel patches, Dice loss, Adam 1e-4, 70
epochs validated every epoch).
"""

from faket.evaluation.classify import ClassifyConfig, classify_config, classify_on_dataset
from faket.evaluation.czii import CziiScores, czii_score
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
    "ClassifyConfig",
    "CziiScores",
    "DeepFinder",
    "Frame",
    "GroundTruth",
    "Scores",
    "Tomogram",
    "TrainConfig",
    "TrainResult",
    "TrainedModel",
    "classify_config",
    "classify_on_dataset",
    "cluster",
    "czii_score",
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
