"""Per-tilt noise statistics: known answers, brute force, the paper's bisection, regions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from faket.errors import FaketError
from faket.noise import (
    bisection_r_sigma,
    boxes_to_mask,
    estimate_curves,
    estimate_curves_from_background,
    tilt_statistics,
)


def smooth_stack(rng, shape, width=2.0):
    """Correlated 'content': smoothed white noise, float32, (n_tilts, Y, X)."""
    return ndi.gaussian_filter(rng.normal(size=shape), (0, width, width)).astype(np.float32)


def synthetic_pair(seed=0, shape=(7, 128, 128)):
    """style = a * clean + b + N(0, s) with tilt-dependent a, b, s; returns truths."""
    rng = np.random.default_rng(seed)
    clean = smooth_stack(rng, shape)
    n = shape[0]
    a = np.linspace(2.0, 0.5, n)
    s = 0.05 + 0.1 * np.linspace(-1, 1, n) ** 2
    b = np.linspace(-3.0, 3.0, n)
    noise = rng.normal(size=shape)
    style = (a[:, None, None] * clean + b[:, None, None] + s[:, None, None] * noise).astype(
        np.float32
    )
    clean_std = clean.std(axis=(1, 2), dtype=np.float64)
    total_std = np.sqrt((a * clean_std) ** 2 + s**2)
    return style, clean, a * clean_std / total_std, s / total_std


def test_recovers_known_tilt_dependent_r_and_sigma_within_two_percent():
    style, clean, r_true, sigma_true = synthetic_pair()
    curves = estimate_curves(style, clean)
    np.testing.assert_allclose(curves.r, r_true, rtol=0.02)
    np.testing.assert_allclose(curves.sigma, sigma_true, rtol=0.02)
    np.testing.assert_allclose(curves.style_mean, style.mean(axis=(1, 2), dtype=np.float64))
    np.testing.assert_allclose(curves.style_std, style.std(axis=(1, 2), dtype=np.float64))


def standardized(image):
    values = np.asarray(image, dtype=np.float64)
    return (values - values.mean()) / values.std()


@pytest.mark.parametrize("scale", [1.5, 0.3, 0.02, -0.7])
def test_closed_form_equals_brute_force_minimum_of_residual_spread(scale):
    rng = np.random.default_rng(7)
    clean = smooth_stack(rng, (1, 32, 32))[0]
    style = scale * clean + 0.1 * rng.normal(size=clean.shape)
    r, sigma, _, _ = tilt_statistics(style, clean)
    z_s, z_c = standardized(style).ravel(), standardized(clean).ravel()
    grid = np.linspace(-1.0, 1.0, 20001)  # step 1e-4
    spreads = np.array([(z_s - g * z_c).std() for g in grid])
    assert abs(r - grid[np.argmin(spreads)]) <= 1e-4
    assert sigma == pytest.approx((z_s - r * z_c).std(), abs=1e-12)
    assert sigma <= spreads.min() + 1e-12


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    scale=st.floats(-3.0, 3.0),
    noise=st.floats(0.01, 3.0),
)
def test_closed_form_sigma_is_the_std_of_the_residual(seed, scale, noise):
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=(16, 16))
    style = scale * clean + noise * rng.normal(size=(16, 16))
    r, sigma, _, _ = tilt_statistics(style, clean)
    residual = standardized(style) - r * standardized(clean)
    assert sigma == pytest.approx(residual.std(), abs=1e-9)
    assert r == pytest.approx(np.corrcoef(style.ravel(), clean.ravel())[0, 1], abs=1e-9)


def test_paper_bisection_finds_the_same_r_and_sigma_for_positive_correlation():
    style, clean, _, _ = synthetic_pair(seed=3, shape=(4, 48, 48))
    for i in range(4):
        r, sigma, _, _ = tilt_statistics(style[i], clean[i])
        r_bis, sigma_bis = bisection_r_sigma(style[i], clean[i], tolerance=1e-5)
        assert abs(r_bis - r) <= 2.5e-5  # the bound derived in faket.noise.estimate
        assert abs(sigma_bis - sigma) <= 1e-8


def test_negative_correlation_is_kept_and_warned_where_bisection_clips_at_zero():
    style, clean, _, _ = synthetic_pair(seed=4, shape=(3, 32, 32))
    with pytest.warns(RuntimeWarning, match="anti-correlated"):
        curves = estimate_curves(style, -clean)
    positive = estimate_curves(style, clean)
    assert np.all(positive.r > 0.1)
    np.testing.assert_allclose(curves.r, -positive.r, rtol=1e-12)
    np.testing.assert_allclose(curves.sigma, positive.sigma, rtol=1e-12)
    r_bis, _ = bisection_r_sigma(style[0], -clean[0])
    assert 0.0 <= r_bis <= 2e-5


def test_masked_estimate_ignores_unrelated_pixels_outside_the_region():
    rng = np.random.default_rng(5)
    clean = smooth_stack(rng, (3, 96, 96))
    a, s = 1.7, 0.08
    noise = s * rng.normal(size=clean.shape)
    style = a * clean + noise
    mask = np.zeros((96, 96), dtype=bool)
    mask[10:60, 20:90] = True
    # Outside the region the style shows something else entirely.
    style[:, ~mask] = 3.0 * rng.normal(size=(3, np.count_nonzero(~mask)))
    curves = estimate_curves(style, clean, mask=mask)
    style_std = style.std(axis=(1, 2))
    np.testing.assert_allclose(curves.r, a * clean.std(axis=(1, 2)) / style_std, rtol=0.02)
    noise_std = noise[:, mask].std(axis=1)  # the realised noise level in the region
    np.testing.assert_allclose(curves.sigma, noise_std / style_std, rtol=0.02)
    whole = estimate_curves(style, clean)
    assert np.all(np.abs(whole.r - curves.r) > 0.05)


def test_full_mask_gives_the_unmasked_estimate():
    style, clean, _, _ = synthetic_pair(seed=6, shape=(3, 40, 40))
    full = np.ones((3, 40, 40), dtype=bool)
    masked, plain = estimate_curves(style, clean, mask=full), estimate_curves(style, clean)
    for name, value in plain.as_dict().items():
        np.testing.assert_allclose(getattr(masked, name), value, rtol=1e-10, atol=1e-12)


def test_background_regions_recover_noise_without_clean_content():
    rng = np.random.default_rng(8)
    clean = smooth_stack(rng, (4, 128, 128))
    boxes = [(0, 0, 40, 30), (90, 100, 128, 128)]
    mask = boxes_to_mask((128, 128), boxes)
    clean[:, mask] = 0.0  # flat background: no specimen structure there
    s = np.array([0.05, 0.08, 0.11, 0.14])
    noise = s[:, None, None] * rng.normal(size=clean.shape)
    style = 1.3 * clean + noise + 10.0
    curves = estimate_curves_from_background(style, mask)
    paired = estimate_curves(style, clean)
    expected = noise[:, mask].std(axis=1) / style.std(axis=(1, 2))
    np.testing.assert_allclose(curves.sigma, expected, rtol=1e-6)
    np.testing.assert_allclose(curves.sigma, paired.sigma, rtol=0.02)
    np.testing.assert_allclose(curves.r, paired.r, rtol=0.02)
    np.testing.assert_allclose(curves.r**2 + curves.sigma**2, 1.0)


def test_boxes_to_mask_is_half_open_x_then_y():
    mask = boxes_to_mask((5, 8), [(1, 2, 4, 3)])
    assert mask.sum() == 3 and mask[2, 1:4].all() and not mask[3].any()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, c: estimate_curves(s, c[:, :10]), "differ in shape"),
        (lambda s, c: estimate_curves(s[0], c[0]), "tilt series"),
        (lambda s, c: estimate_curves(s, c * 0), "tilt 0: the clean tilt is constant"),
        (lambda s, c: estimate_curves(s, c, mask=np.ones((3, 3), bool)), "mask of shape"),
        (lambda s, c: estimate_curves(s, c, mask=np.zeros((16, 16), bool)), "fewer than 2"),
        (lambda s, c: boxes_to_mask((16, 16), [(0, 0, 20, 5)]), "outside"),
        (lambda s, c: boxes_to_mask((16, 16), [(0, 0, 5)]), "four numbers"),
        (lambda s, c: bisection_r_sigma(s[0], c[0], start=1.0, stop=0.0), "start < stop"),
    ],
)
def test_bad_input_gives_one_line_faket_error(call, message):
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(2, 16, 16))
    style = clean + rng.normal(size=clean.shape)
    with pytest.raises(FaketError, match=message) as raised:
        call(style, clean)
    assert "\n" not in str(raised.value)
