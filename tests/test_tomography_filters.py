"""Filters against their analytic definitions and the paper's reference outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faket.errors import FaketError
from faket.tomography import crowther_ramp, filter_response, filter_tilt_series, shrec_filter
from faket.tomography.filters import padded_length

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "filters"


def test_ramp_is_the_transform_of_the_ram_lak_kernel():
    kernel = np.fft.ifft(filter_response("ramp", 64)).real
    assert kernel[0] == pytest.approx(0.25)
    np.testing.assert_allclose(kernel[[1, 3, 63, 61]], -1 / (np.pi * np.array([1, 3, 1, 3])) ** 2)
    np.testing.assert_allclose(kernel[[2, 4, 32, 62]], 0, atol=1e-15)


def test_ramp_is_abs_frequency_in_cycles_per_pixel():
    frequency = np.abs(np.fft.fftfreq(256))
    response = filter_response("ramp", 256)
    # The kernel's periodic truncation moves the response by < 0.21 / size, and it
    # gives the zero frequency the positive value that sampling |f| would miss.
    assert np.all(np.abs(response - frequency) < 0.21 / 256)
    assert response[0] > 0.19 / 256


def test_crowther_plateau_caps_the_ramp():
    ramp = filter_response("ramp", 128)
    response = filter_response("ramp", 128, crowther=0.5)
    np.testing.assert_allclose(response, np.minimum(ramp, 0.25))
    assert np.sum(response == 0.25) > 60  # flat above a quarter of the sampling rate


@pytest.mark.parametrize(
    "name, window",
    [
        ("shepp-logan", lambda r: np.sin(np.pi * r / 2) / (np.pi * r / 2)),
        ("cosine", lambda r: np.cos(np.pi * r / 2)),
        ("hamming", lambda r: 0.54 + 0.46 * np.cos(np.pi * r)),
        ("hann", lambda r: 0.5 + 0.5 * np.cos(np.pi * r)),
    ],
)
def test_apodised_ramps_follow_their_windows(name, window):
    frequency = np.abs(np.fft.fftfreq(32))
    relative = frequency / 0.5
    expected = filter_response("ramp", 32) * np.where(
        relative > 0, window(np.where(relative > 0, relative, 1)), 1
    )
    np.testing.assert_allclose(filter_response(name, 32), expected, atol=1e-12)


def test_shrec_filter_structure():
    response = shrec_filter(64, 64, physical=False)
    assert response.max() == pytest.approx(1.0)
    assert np.all(response[:, 0] == 0)  # the ramp removes the DC column
    k = np.fft.fftfreq(64) * 64
    assert np.all(response[np.hypot(k[:, None], k[None, :]) >= 33] == 0)  # circular cut
    # Physical scaling: the ramp plateau (int(0.61 * 32) = 19 pixels) becomes 19/64 cycles/pixel.
    np.testing.assert_allclose(shrec_filter(64, 64), response * 19 / 64)


def test_filtering_matches_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    tilt_series = rng.random((3, 10, 20)).astype(np.float32)
    n_fft = padded_length(20)
    padded = np.zeros((3, 10, n_fft))
    padded[..., :20] = tilt_series
    kernel = np.array(
        [
            0.25 if k == 0 else (-1 / (np.pi * k) ** 2 if k % 2 else 0.0)
            for k in np.minimum(np.arange(n_fft), n_fft - np.arange(n_fft))
        ]
    )
    ramp = np.fft.fft(kernel).real
    expected = np.fft.ifft(np.fft.fft(padded, axis=-1) * ramp, axis=-1).real[..., :20]
    ours = filter_tilt_series(tilt_series, "ramp", device="cpu")
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    expected_2d = np.fft.ifft2(np.fft.fft2(tilt_series) * shrec_filter(10, 20)).real
    np.testing.assert_allclose(
        filter_tilt_series(tilt_series, "shrec", device="cpu"), expected_2d, atol=1e-5
    )


def test_padding_length():
    assert [padded_length(n) for n in (1, 20, 32, 33, 1024)] == [2, 64, 64, 128, 2048]


def test_bad_filter_parameters():
    with pytest.raises(FaketError, match="unknown"):
        filter_response("parzen", 16)
    with pytest.raises(FaketError, match="Crowther"):
        filter_response("ramp", 16, crowther=0.0)
    with pytest.raises(FaketError, match="Crowther"):
        crowther_ramp(16, 0)


@pytest.mark.skipif(not GOLDEN.exists(), reason="../shared/golden not present")
def test_filters_equal_the_reference_code_outputs():
    golden = np.load(GOLDEN / "reference_filters.npz")
    checked = 0
    for key in golden.files:
        if key.startswith("approx_shrec_"):
            size = int(key.rsplit("_", 1)[1].split("x")[0])
            np.testing.assert_allclose(
                shrec_filter(size, size, physical=False), golden[key], atol=1e-12
            )
            checked += 1
        elif key.startswith("ramp1d_"):
            size_part, crowther_part = key[len("ramp1d_") :].split("_crowther")
            crowther = None if crowther_part in ("None", "") else int(crowther_part)
            np.testing.assert_allclose(
                crowther_ramp(int(size_part), crowther), golden[key], atol=1e-12
            )
            checked += 1
    assert checked >= 2
