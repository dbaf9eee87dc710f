"""Everything a dataset run needs, checked before its first step.

A run at SHREC size takes hours; a typo in a config (a device that is not there, a
filter that does not exist, weights that cannot be had, a class file that is missing)
must fail in the first second with one line, not after the first tomograms are written.
"""

from __future__ import annotations

from faket.pipeline.config import DatasetConfig

__all__ = ["NST_WEIGHT_OVERRIDES", "modality_weights", "preflight", "resolve_nst_weights"]

#: Style-transfer modalities whose VGG-19 weights are fixed, whatever ``nst.weights`` says.
NST_WEIGHT_OVERRIDES = {"faket_random": "random"}


def resolve_nst_weights(weights: str) -> str:
    """``auto`` -> ``imagenet`` when the weights are available offline
    (``$FAKET_VGG19_WEIGHTS`` or the torch hub cache), else ``transfer``.

    Random VGG-19 weights made FAKET *worse* than the Gaussian noise it starts from (the
    paper's FAKET_RANDOM ablation, and our own experiment); the ``transfer`` style needs
    no download and beat it (``benchmarks/README.md``), so it is what ``auto`` falls back to.
    """
    if weights != "auto":
        return weights
    from faket.style.weights import env_weights_file, imagenet_cache_path

    return "imagenet" if env_weights_file() or imagenet_cache_path().exists() else "transfer"


def modality_weights(modality: str, weights: str) -> str:
    """The style a style-transfer modality uses when the config's weights resolve to
    ``weights``: overrides first; the network-based ``faket_spectral`` falls back from
    ``transfer`` to random VGG-19 weights (it is an NST initialisation experiment)."""
    if modality in NST_WEIGHT_OVERRIDES:
        return NST_WEIGHT_OVERRIDES[modality]
    if modality != "faket" and weights == "transfer":
        return "random"
    return weights


def preflight(config: DatasetConfig, *, scheduler: str | None = None) -> DatasetConfig:
    """Check that ``config`` can run here; return it with its VGG weights resolved.

    Parameters
    ----------
    config
        A validated dataset config.
    scheduler
        With a remote Dask scheduler the device is checked on the workers, not here.

    Returns
    -------
    DatasetConfig
        ``config`` with ``nst.weights`` resolved from ``auto`` to ``imagenet`` or
        ``transfer``, so that the written config and every worker use the same weights.

    Raises
    ------
    FaketError
        For a device that is not available, an unknown class source, weights that
        cannot be downloaded or read, or a copick step without the ``copick`` extra.
    """
    from faket.device import select_device
    from faket.phantom.classes import check_class_sources

    if scheduler is None:
        select_device(config.device)
    check_class_sources(config.phantom)
    if config.copick.enabled:
        from faket.io.copick import import_copick

        import_copick()  # the missing extra is named now, not after hours of work
    if not any(m.startswith("faket") for m in config.modalities):
        return config
    weights = resolve_nst_weights(config.nst.weights)
    _check_weights(weights)
    nst = config.nst.model_copy(update={"weights": weights})
    return config.model_copy(update={"nst": nst})


def _check_weights(weights: str) -> None:
    from faket.style.weights import imagenet_weights_file, load_state_dict_file

    if weights == "imagenet":
        imagenet_weights_file(download=True, progress=True)  # downloads now, or fails now
    elif weights not in ("random", "transfer"):
        load_state_dict_file(weights)
