"""Weights for the VGG-19 feature network: ImageNet, a local file, or seeded random.

Three sources, chosen by one string (the CLI's ``--weights``):

``"imagenet"``
    torchvision's published ImageNet weights (``vgg19-dcbb9e9d.pth``, the paper's
    setting). The file named by ``$FAKET_VGG19_WEIGHTS`` when that is set (for compute
    nodes without internet: ``faket weights download --to PATH`` on a login node), else
    looked up in the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and,
    when missing, downloaded there; the download is checked against the SHA-256 prefix
    in the file name and only then renamed into place, so the cache never holds a
    corrupt or partial file. No network and no cached file is an error that names the
    two ways out; nothing ever falls back to other weights silently.
a path
    A state-dict file (``torch.save``) in torchvision's layout (``features.<i>.weight``,
    ``features.<i>.bias``); a whole ``vgg19()`` state dict or just its ``features`` part.
``"random"``
    Seeded Kaiming-normal weights and zero biases (torchvision's VGG initialisation), the
    paper's FAKET_RANDOM ablation: no ImageNet knowledge at all.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import torch

from faket.device import select_device
from faket.errors import FaketError
from faket.io import atomic_path
from faket.style.vgg import LAYER_NAMES, VGG19Features, conv_indices

__all__ = [
    "IMAGENET_HASH_PREFIX",
    "IMAGENET_URL",
    "WEIGHTS_ENV",
    "build_feature_net",
    "download_imagenet",
    "env_weights_file",
    "fetch_imagenet",
    "imagenet_weights_file",
    "imagenet_cache_path",
    "load_state_dict_file",
    "random_state_dict",
]

#: torchvision's ImageNet VGG-19 weights; the hex after the dash is a SHA-256 prefix.
IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
IMAGENET_HASH_PREFIX = "dcbb9e9d"
#: Environment variable naming a local ImageNet VGG-19 state-dict file.
WEIGHTS_ENV = "FAKET_VGG19_WEIGHTS"
_DOWNLOAD_TIMEOUT_S = 60


def imagenet_cache_path(url: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Where the ImageNet weights live: ``<torch hub dir>/checkpoints/<file name>``."""
    url = url or IMAGENET_URL
    folder = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    return folder / os.path.basename(urllib.parse.urlparse(url).path)


def _fixes() -> str:
    return (
        "pass --weights PATH to a torchvision vgg19 state-dict file (vgg19-dcbb9e9d.pth; "
        f"faket weights download fetches it, {WEIGHTS_ENV}=PATH points every command at it), "
        "or --weights random for seeded random features (not the paper's setting)"
    )


def _download(url: str, target: Path, hash_prefix: str | None, progress: bool, check=None) -> None:
    if progress:
        print(f"faket: downloading VGG-19 weights {url} -> {target}", file=sys.stderr)
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        request = urllib.request.Request(url, headers={"User-Agent": "faket"})
        with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as source:
            with open(tmp, "wb") as sink, _bar(source, progress) as advance:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    sink.write(chunk)
                    advance(len(chunk))
        # Checked before the rename, so a corrupt download never reaches the cache.
        if hash_prefix and not digest.hexdigest().startswith(hash_prefix.lower()):
            raise FaketError(
                f"downloaded {url} has SHA-256 {digest.hexdigest()[:16]}..., expected "
                f"{hash_prefix}...; the download is corrupt or the file changed; retry, or "
                + _fixes()
            )
        if check is not None:
            check(tmp)


class _bar:
    """A byte-count progress bar on stderr while downloading (a no-op when disabled)."""

    def __init__(self, source, enabled: bool):
        length = source.headers.get("Content-Length") if hasattr(source, "headers") else None
        self.total = int(length) if length and str(length).isdigit() else None
        self.enabled, self.progress = enabled, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        self.progress = Progress(
            *Progress.get_default_columns(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.progress.start()
        task = self.progress.add_task("VGG-19", total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def fetch_imagenet(
    *,
    url: str | None = None,
    hash_prefix: str | None = IMAGENET_HASH_PREFIX,
    cache_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = False,
) -> Path:
    """Path of the cached ImageNet VGG-19 weights, downloading them if needed.

    Parameters
    ----------
    url : str, optional
        Where to download from (any URL ``urllib`` opens, ``file://`` included);
        default :data:`IMAGENET_URL`.
    hash_prefix : str or None
        Required leading hex digits of the file's SHA-256; None skips the check.
    cache_dir : path, optional
        Folder of the cache; default the torch hub ``checkpoints`` folder.
    download : bool
        If False, never touch the network: a missing file is an error.
    progress : bool
        Say on stderr that a download is happening.

    Returns
    -------
    Path
        The verified weights file.

    Raises
    ------
    FaketError
        If the file is not cached and cannot be downloaded, or fails the hash check.
    """
    url = url or IMAGENET_URL
    target = imagenet_cache_path(url, cache_dir)
    if target.is_file():
        # Files only enter the cache after passing the hash check (atomic rename).
        return target
    if not download:
        raise FaketError(f"ImageNet VGG-19 weights are not cached at {target}; " + _fixes())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _download(url, target, hash_prefix, progress)
    except (OSError, urllib.error.URLError, ValueError) as error:
        if isinstance(error, FaketError):
            raise
        reason = getattr(error, "reason", None) or error
        raise FaketError(
            f"ImageNet VGG-19 weights are not cached at {target} and could not be downloaded "
            f"from {url} ({reason}); " + _fixes()
        ) from error
    return target


def env_weights_file() -> Path | None:
    """The file ``$FAKET_VGG19_WEIGHTS`` names (None when unset or empty); it must exist."""
    value = os.environ.get(WEIGHTS_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise FaketError(
            f"{WEIGHTS_ENV}={value} is not a file; point it at vgg19-dcbb9e9d.pth (faket "
            f"weights download --to PATH fetches it) or unset it"
        )
    return path


def imagenet_weights_file(*, download: bool = True, progress: bool = False, **fetch) -> Path:
    """The ImageNet weights ``"imagenet"`` means: ``$FAKET_VGG19_WEIGHTS``, else the cache.

    ``fetch`` (``url``, ``cache_dir``, ``hash_prefix``) goes to :func:`fetch_imagenet`.
    """
    return env_weights_file() or fetch_imagenet(download=download, progress=progress, **fetch)


def _check_layout(path: Path, url: str) -> None:
    try:
        load_state_dict_file(path)
    except FaketError as error:
        detail = str(error).replace(str(path), "the file")
        raise FaketError(f"{url} is not a VGG-19 state dict: {detail}") from None


def download_imagenet(
    target: str | Path | None = None,
    *,
    url: str | None = None,
    hash_prefix: str | None = IMAGENET_HASH_PREFIX,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Download the ImageNet VGG-19 weights, check their SHA-256 and their layout.

    Parameters
    ----------
    target : path, optional
        A file, or a folder to hold the URL's file name; default the torch hub cache
        (:func:`imagenet_cache_path`), where ``"imagenet"`` looks.
    url : str, optional
        Where from (any URL ``urllib`` opens, ``file://`` included); default
        :data:`IMAGENET_URL`.
    hash_prefix : str or None
        Leading hex digits of the expected SHA-256 (torchvision publishes 8 of them in
        the file name); the full digest works too.
    progress : bool
        A progress bar on stderr.
    overwrite : bool
        Download again although the file exists.

    Returns
    -------
    Path
        The file, only ever renamed into place after both checks passed.
    """
    url = url or IMAGENET_URL
    path = imagenet_cache_path(url) if target is None else Path(target).expanduser()
    if path.is_dir():
        path = path / os.path.basename(urllib.parse.urlparse(url).path)
    if path.is_file() and not overwrite:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _download(url, path, hash_prefix, progress, check=lambda tmp: _check_layout(tmp, url))
    except (OSError, urllib.error.URLError, ValueError) as error:
        if isinstance(error, FaketError):
            raise
        reason = getattr(error, "reason", None) or error
        raise FaketError(f"could not download {url} to {path} ({reason})") from error
    return path


def random_state_dict(seed: int = 0, last_layer: int = 29) -> dict[str, torch.Tensor]:
    """Seeded random VGG-19 weights in torchvision's layout (Kaiming normal, zero bias).

    Parameters
    ----------
    seed : int
        Seed of the ``torch.Generator``; the same seed gives the same weights everywhere.
    last_layer : int
        Deepest layer index that needs weights.

    Returns
    -------
    dict
        ``{"features.<i>.weight": (out, in, 3, 3), "features.<i>.bias": (out,)}``, float32.
    """
    generator = torch.Generator().manual_seed(int(seed))
    out = {}
    for index, cin, cout in conv_indices(last_layer):
        # Kaiming normal with fan_out and the ReLU gain, torchvision's VGG initialisation.
        std = (2.0 / (cout * 9)) ** 0.5
        weight = torch.randn((cout, cin, 3, 3), generator=generator) * std
        out[f"features.{index}.weight"] = weight
        out[f"features.{index}.bias"] = torch.zeros(cout)
    return out


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise FaketError(f"{path} is not a state dict of tensors; save one with torch.save")
    if not any(str(k).startswith("features.") for k in raw):
        # A file saved from ``vgg19().features`` has keys "0.weight", ...
        raw = {f"features.{k}": v for k, v in raw.items()}
    return raw


def load_state_dict_file(path: str | Path, last_layer: int = 29) -> dict[str, torch.Tensor]:
    """Read a torchvision-layout VGG-19 state dict and check it up to ``last_layer``.

    Parameters
    ----------
    path : path
        A ``torch.save`` file of a state dict (tensors only; loaded with
        ``weights_only=True``, so no code in the file runs).
    last_layer : int
        Deepest layer whose weights are needed; deeper entries are ignored.

    Returns
    -------
    dict
        The ``features.<i>.weight/bias`` entries up to ``last_layer``, float32.

    Raises
    ------
    FaketError
        Unreadable file, missing entries, wrong shapes or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FaketError(f"weights file {path} does not exist; " + _fixes())
    try:
        try:
            # Memory-mapped: of torchvision's 548 MB file only the ~80 MB of convolution
            # weights are then read; the classifier is never touched.
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            # Files in the pre-1.6 (non-zip) format cannot be memory-mapped.
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        # Not torch's own message: it is several lines of advice about weights_only.
        raise FaketError(
            f"{path} is not a readable PyTorch state-dict file ({type(error).__name__}); "
            "pass a torchvision vgg19 state dict saved with torch.save"
        ) from None
    raw = _unwrap(raw, path)
    out = {}
    for index, cin, cout in conv_indices(last_layer):
        for part, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{index}.{part}"
            if key not in raw:
                raise FaketError(
                    f"{path} lacks {key} ({LAYER_NAMES[index]}); expected torchvision's "
                    "vgg19 state-dict layout (features.<i>.weight/bias)"
                )
            tensor = raw[key]
            if tuple(tensor.shape) != shape:
                raise FaketError(
                    f"{path}: {key} ({LAYER_NAMES[index]}) has shape {tuple(tensor.shape)} but "
                    f"VGG-19 needs {shape}; is this a vgg19 (not vgg16/vgg19_bn) state dict?"
                )
            tensor = tensor.detach().to(torch.float32, copy=True)
            if not torch.isfinite(tensor).all():
                raise FaketError(f"{path}: {key} contains NaN or Inf values")
            out[key] = tensor
    return out


def _digest(state: dict[str, torch.Tensor]) -> str:
    hasher = hashlib.blake2b(digest_size=8)
    for key in sorted(state):
        hasher.update(key.encode())
        hasher.update(state[key].contiguous().numpy().tobytes())
    return hasher.hexdigest()


def build_feature_net(
    weights: str | Path = "imagenet",
    *,
    last_layer: int = 29,
    pooling: str = "max",
    seed: int = 0,
    device: str | torch.device = "cpu",
    download: bool = True,
    url: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> VGG19Features:
    """A ready :class:`VGG19Features` with the requested weights on ``device``.

    Parameters
    ----------
    weights : {"imagenet", "random"} or path
        Weight source (see the module docstring).
    last_layer : int
        Deepest layer kept (29 = relu5_1, the deepest the paper's losses use).
    pooling : {"max", "average", "l2"}
        Pooling type.
    seed : int
        Seed of ``"random"`` weights (ignored otherwise).
    device : str or torch.device
        Where the network lives (``"auto"`` resolves as :func:`faket.device.select_device`).
    download, url, cache_dir, progress
        Passed to :func:`fetch_imagenet` for ``"imagenet"`` (unless ``$FAKET_VGG19_WEIGHTS``
        names the file).

    Returns
    -------
    VGG19Features
        In eval mode, no gradients for parameters; ``weights_id`` says which weights
        (source and a digest of the tensors) for caches and logs.
    """
    spec = str(weights)
    if spec == "imagenet":
        path = imagenet_weights_file(
            url=url, cache_dir=cache_dir, download=download, progress=progress
        )
        state, label = load_state_dict_file(path, last_layer), "imagenet"
    elif spec == "random":
        state, label = random_state_dict(seed, last_layer), f"random(seed={seed})"
    else:
        if not Path(spec).exists():
            raise FaketError(
                f"--weights {spec!r} is neither 'imagenet', 'random' nor an existing file; "
                "pass one of those"
            )
        state, label = load_state_dict_file(spec, last_layer), f"file({Path(spec).name})"
    # Parameters without storage, then the loaded tensors themselves: no random init
    # of 20 million weights only to overwrite them (~0.15 s of every command's start-up).
    net = VGG19Features(last_layer=last_layer, pooling=pooling, device="meta")
    net.load_state_dict(state, assign=True)
    net.weights_id = f"{label}:{_digest(state)}"
    resolved = select_device(device)
    if resolved.type == "mps":
        # channels_last convolutions are not reliably faster on MPS.
        net.channels_last = False
    return net.to(resolved)
