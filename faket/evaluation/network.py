"""The DeepFinder 3-D encoder-decoder (Moebel et al. 2021) in PyTorch, and its checkpoints.

Architecture (widths ``(a, b, c)``, paper: ``(32, 48, 64)``): two 3x3x3 convolutions
at full resolution (``a`` channels), max-pool, two at half resolution (``b``),
max-pool, four at quarter resolution (``c``); then nearest-neighbour up-sampling, a
2x2x2 convolution, concatenation with the half-resolution features, two 3x3x3
convolutions (``b``), up-sampling, a 2x2x2 convolution, concatenation with the
full-resolution features, two 3x3x3 convolutions (``a``) and a 1x1x1 convolution to
one score per class (background + particle classes). Every convolution but the last
is followed by a ReLU. The network returns logits; a softmax over the class axis
gives DeepFinder's output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from faket.errors import FaketError
from faket.io import atomic_path
from faket.precision import check_network_precision, network_autocast_dtype

#: DeepFinder's channel widths at full, half and quarter resolution.
DEEPFINDER_WIDTHS = (32, 48, 64)
#: Patch sides must be multiples of this (two 2x poolings).
SIZE_MULTIPLE = 4


def conv_block(
    channels_in: int, channels_out: int, batch_norm: bool = False, stride: int = 1
) -> list[nn.Module]:
    """A 3x3x3 convolution ('same' padding), optionally batch normalisation, and a ReLU.

    Without normalisation the layers (and so the checkpoints' parameter names) are those
    of a plain convolution-ReLU pair.
    """
    layers: list[nn.Module] = [nn.Conv3d(channels_in, channels_out, 3, padding=1, stride=stride)]
    if batch_norm:
        layers.append(nn.BatchNorm3d(channels_out))
    return [*layers, nn.ReLU(inplace=True)]


def _convs(channels_in: int, channels_out: int, count: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for index in range(count):
        first = channels_in if index == 0 else channels_out
        layers += conv_block(first, channels_out, batch_norm)
    return layers


def _up(channels: int) -> nn.Sequential:
    """Nearest-neighbour 2x up-sampling and a 2x2x2 convolution with Keras 'same' padding
    (one zero plane after the data on each axis)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2),
        nn.ConstantPad3d((0, 1, 0, 1, 0, 1), 0.0),
        nn.Conv3d(channels, channels, 2),
        nn.ReLU(inplace=True),
    )


class DeepFinder(nn.Module):
    """DeepFinder segmentation network.

    Parameters
    ----------
    n_classes : int
        Output classes including background (label 0).
    widths : (int, int, int)
        Channels at full, half and quarter resolution.
    batch_norm : bool
        Batch normalisation after every 3x3x3 convolution (not in DeepFinder; on in the
        ``cpu`` training preset, where it makes every seed learn the small classes). In
        evaluation mode it applies the running statistics of the training patches.
    precision : {'fp32', 'bf16', 'mixed'}
        Arithmetic of the forward pass (and so of its backward pass): float32, bfloat16
        autocast, or bf16 where the device has it natively
        (:func:`faket.precision.network_autocast_dtype`). Weights and logits are float32.
    """

    def __init__(
        self,
        n_classes: int,
        widths: tuple[int, int, int] = DEEPFINDER_WIDTHS,
        batch_norm: bool = False,
        precision: str = "fp32",
    ):
        super().__init__()
        if n_classes < 2:
            raise FaketError(
                f"the network needs at least 2 classes (background + 1), got {n_classes}"
            )
        if len(widths) != 3 or min(widths) < 1:
            raise FaketError(f"widths must be three positive channel counts, got {widths}")
        a, b, c = (int(w) for w in widths)
        self.n_classes = int(n_classes)
        self.widths = (a, b, c)
        self.batch_norm = norm = bool(batch_norm)
        self.precision = check_network_precision(precision)
        self.high = nn.Sequential(*_convs(1, a, 2, norm))
        self.mid = nn.Sequential(nn.MaxPool3d(2), *_convs(a, b, 2, norm))
        self.low = nn.Sequential(nn.MaxPool3d(2), *_convs(b, c, 4, norm))
        self.up_low = _up(c)
        self.decode_mid = nn.Sequential(*_convs(c + b, b, 2, norm))
        self.up_mid = _up(b)
        self.decode_high = nn.Sequential(*_convs(b + a, a, 2, norm))
        self.head = nn.Conv3d(a, self.n_classes, 1)
        self._initialise()

    def _initialise(self) -> None:
        # He initialisation keeps the activations' scale through the 13 ReLU layers;
        # PyTorch's default (and Keras' Glorot) shrink it ~2x per layer, which makes the
        # first hundreds of steps learn almost nothing.
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Parameters
        ----------
        x : tensor, shape (B, 1, Z, Y, X)
            Normalised patches; each side a multiple of 4.

        Returns
        -------
        tensor, shape (B, n_classes, Z, Y, X)
        """
        if x.ndim != 5 or x.shape[1] != 1 or any(s % SIZE_MULTIPLE for s in x.shape[2:]):
            raise FaketError(
                f"network input must be (B, 1, Z, Y, X) with sides divisible by "
                f"{SIZE_MULTIPLE}, got {tuple(x.shape)}"
            )
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)  # see place_network
        reduced = network_autocast_dtype(self.precision, x.device)
        with torch.autocast(x.device.type, reduced or torch.bfloat16, enabled=bool(reduced)):
            high = self.high(x)
            mid = self.mid(high)
            low = self.low(mid)
            mid = self.decode_mid(torch.cat([self.up_low(low), mid], dim=1))
            logits = self.head(self.decode_high(torch.cat([self.up_mid(mid), high], dim=1)))
        return logits.float()


def place_network(network: nn.Module, device: str | torch.device) -> nn.Module:
    """Move a network to ``device``; on the CPU also to the channels-last 3-D layout.

    oneDNN's 3-D convolutions are ~1.5x faster on channels-last tensors (measured for
    a training step of the ``small`` preset on 2 cores: 0.81 s -> 0.56 s); the values
    are the same up to float round-off.
    """
    network.to(device)
    if torch.device(device).type == "cpu":
        network.to(memory_format=torch.channels_last_3d)
    return network


@dataclass
class TrainedModel:
    """A network together with what is needed to use it on new tomograms.

    Attributes
    ----------
    network : DeepFinder
    class_names : list of str
        Name of output label ``k`` is ``class_names[k - 1]`` (label 0 = background).
    radii : dict of str -> float
        Target sphere radius of each class (voxels of the training volumes); sets the
        default mean-shift bandwidth and cluster-size threshold.
    patch_size : int
        Training patch side (voxels); inference uses it too.
    voxel_size : float or None
        Voxel size (Å) of the training volumes, when known.
    info : dict
        Free-form provenance (epoch, seed, scores), JSON-compatible.
    clustering : dict
        The particle-picking settings training validated and tested with (``mode``,
        ``bandwidth_scale``, ``min_size_fraction``); the defaults of ``predict`` and
        ``locate``. Empty for checkpoints written before they were stored.
    """

    network: DeepFinder
    class_names: list[str]
    radii: dict[str, float]
    patch_size: int = 48
    voxel_size: float | None = None
    info: dict = field(default_factory=dict)
    clustering: dict = field(default_factory=dict)


def save_model(model: TrainedModel, path: str | os.PathLike[str]) -> Path:
    """Write a checkpoint (weights and metadata) atomically.

    Returns
    -------
    Path
        ``path``.
    """
    payload = {
        "format": "faket-deepfinder-1",
        "state_dict": {k: v.detach().cpu() for k, v in model.network.state_dict().items()},
        "n_classes": model.network.n_classes,
        "widths": list(model.network.widths),
        "batch_norm": model.network.batch_norm,
        "precision": model.network.precision,
        "class_names": list(model.class_names),
        "radii": {k: float(v) for k, v in model.radii.items()},
        "patch_size": int(model.patch_size),
        "voxel_size": model.voxel_size,
        "info": model.info,
        "clustering": dict(model.clustering),
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TrainedModel:
    """Read a checkpoint written by :func:`save_model`.

    Parameters
    ----------
    path : checkpoint file (``.pt``).
    device : where to put the weights.

    Returns
    -------
    TrainedModel
        In evaluation mode.
    """
    file = Path(path)
    if not file.is_file():
        raise FaketError(f"{file}: no such checkpoint; pass a .pt file written by faket")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise FaketError(f"{file}: not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != "faket-deepfinder-1":
        raise FaketError(f"{file}: not a faket DeepFinder checkpoint")
    network = DeepFinder(
        payload["n_classes"],
        tuple(payload["widths"]),
        bool(payload.get("batch_norm", False)),
        str(payload.get("precision", "fp32")),  # absent in older checkpoints
    )
    network.load_state_dict(payload["state_dict"])
    place_network(network, device).eval()
    return TrainedModel(
        network=network,
        class_names=list(payload["class_names"]),
        radii=dict(payload["radii"]),
        patch_size=int(payload["patch_size"]),
        voxel_size=payload["voxel_size"],
        info=dict(payload["info"]),
        clustering=dict(payload.get("clustering") or {}),  # absent in older checkpoints
    )
