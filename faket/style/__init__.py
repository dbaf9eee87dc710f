"""Neural style transfer of tilt series: the FAKET modality of the FakET paper.

- :func:`style_transfer` -- stylise a tilt series (content, style, init stacks);
  :func:`iter_style_transfer` yields tilts as they finish.
- :func:`prepare_style` -- compute a style stack's targets once, reuse for many tomograms.
- :func:`style_transfer_files` -- MRC in, MRC out, resumable (``faket style``).
- :class:`TransferSettings` -- every knob; defaults are the paper's.
- :func:`build_feature_net` -- the VGG-19 feature network with ImageNet, file or random
  weights (:mod:`faket.style.weights`).
"""

from faket.style.files import parse_tilts, style_transfer_files
from faket.style.reference import StyleReference, prepare_style
from faket.style.settings import TransferSettings
from faket.style.transfer import iter_style_transfer, style_transfer
from faket.style.vgg import LAYER_NAMES, VGG19Features
from faket.style.weights import build_feature_net, fetch_imagenet, random_state_dict

__all__ = [
    "LAYER_NAMES",
    "StyleReference",
    "TransferSettings",
    "VGG19Features",
    "build_feature_net",
    "fetch_imagenet",
    "iter_style_transfer",
    "parse_tilts",
    "prepare_style",
    "random_state_dict",
    "style_transfer",
    "style_transfer_files",
]
