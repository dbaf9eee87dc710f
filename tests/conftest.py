"""Test options: the device of the device tests, and skipping CUDA-only tests.

Tests marked ``device`` take the ``device`` fixture: ``cpu`` unless ``--device`` (or the
environment variable ``FAKET_TEST_DEVICE``) names another, e.g.
``python -m pytest -m device --device cuda``. Tests marked ``cuda`` need a CUDA GPU and
are skipped cleanly without one.
"""

from __future__ import annotations

import os

import pytest
import torch


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--device",
        default=None,
        help="device of the tests marked 'device': cpu (default), cuda, cuda:N, mps; "
        "default from $FAKET_TEST_DEVICE",
    )


def _device_name(config) -> str:
    return config.getoption("--device") or os.environ.get("FAKET_TEST_DEVICE") or "cpu"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "device: runs on the --device device (default cpu)")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one)")
    from faket.device import select_device
    from faket.errors import FaketError

    try:
        select_device(_device_name(config))
    except FaketError as error:
        raise pytest.UsageError(f"--device / FAKET_TEST_DEVICE: {error}") from error


def pytest_collection_modifyitems(config, items) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device(pytestconfig) -> torch.device:
    """The device the ``device`` tests run on (``--device`` / ``FAKET_TEST_DEVICE``)."""
    from faket.device import select_device

    return select_device(_device_name(pytestconfig))
