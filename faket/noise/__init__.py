"""FakET noise models: tilt-dependent noise statistics and the noise modalities.

- :mod:`faket.noise.estimate` -- per-tilt ``r``, ``sigma``, style mean and std (closed form),
  on whole tilts, on selected regions, or on background regions of real data.
- :mod:`faket.noise.model` -- :class:`NoiseModel`: aggregation over tomograms and JSON.
- :mod:`faket.noise.build` -- estimate and aggregate over several training tomograms.
- :mod:`faket.noise.apply` -- the BASELINE / NOISY / CONTENT modalities.
- :mod:`faket.noise.files` -- the same on MRC files, tilt by tilt from memory maps.
"""

from faket.noise.apply import CONTENT_NOISE_FACTOR, MODES, apply_noise, noise_parameters
from faket.noise.build import estimate_noise_model, estimate_noise_model_from_background
from faket.noise.estimate import (
    bisection_r_sigma,
    boxes_to_mask,
    estimate_curves,
    estimate_curves_from_background,
    tilt_statistics,
)
from faket.noise.files import apply_noise_file, check_angles_match, estimate_noise_model_files
from faket.noise.model import (
    NoiseCurves,
    NoiseModel,
    aggregate_curves,
    fit_curve,
    load_noise_model,
    save_noise_model,
)

__all__ = [
    "CONTENT_NOISE_FACTOR",
    "MODES",
    "NoiseCurves",
    "NoiseModel",
    "aggregate_curves",
    "apply_noise",
    "apply_noise_file",
    "bisection_r_sigma",
    "boxes_to_mask",
    "check_angles_match",
    "estimate_curves",
    "estimate_curves_from_background",
    "estimate_noise_model",
    "estimate_noise_model_files",
    "estimate_noise_model_from_background",
    "fit_curve",
    "load_noise_model",
    "noise_parameters",
    "save_noise_model",
    "tilt_statistics",
]
