"""Microscope settings: realistic defaults and one-line errors for impossible values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from faket.errors import FaketError
from faket.microscope import MicroscopeConfig, parse_config


def test_defaults_describe_a_300_kv_cryo_et_session():
    config = MicroscopeConfig()
    assert config.optics.voltage_kv == 300
    assert -5 <= config.optics.defocus_um <= -3
    assert 100 <= config.dose.total_e_per_a2 <= 140
    assert config.dose.scheme == "dose_symmetric"
    assert 0 < config.optics.amplitude_contrast < 0.2
    assert config.multislice == 0
    # Real lamellae and ice are 100-250 nm thick, whatever the grand model's Z extent.
    assert config.ice.thickness_nm == 150
    assert config.film.texture_std == 0


def test_shortcuts_override_the_settings_and_keep_the_rest():
    config = parse_config(
        {"optics": {"defocus_um": -3.0, "spherical_aberration_mm": 2.0}, "multislice": 2},
        defocus=-5.0,
        dose=90,
        voltage=200,
        potential_scale=None,
        ice_thickness=220,
    )
    assert config.ice.thickness_nm == 220
    assert config.optics.defocus_um == -5.0
    assert config.optics.spherical_aberration_mm == 2.0
    assert config.optics.voltage_kv == 200
    assert config.dose.total_e_per_a2 == 90
    assert config.multislice == 2
    assert parse_config(config) == config


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"dose": {"total_e_per_a2": -10}}, "dose.total_e_per_a2"),
        ({"optics": {"voltage_kv": 0}}, "optics.voltage_kv"),
        ({"optics": {"amplitude_contrast": 1.0}}, "optics.amplitude_contrast"),
        ({"optics": {"defocus": -4}}, "optics.defocus"),
        ({"multislice": -1}, "multislice"),
        ({"detector": {"dqe_zero": 0.5, "dqe_nyquist": 0.7}}, "dqe_nyquist"),
        ({"dose": {"scheme": "random"}}, "dose.scheme"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, where):
    with pytest.raises(FaketError, match=where.replace(".", r"\.")) as error:
        parse_config(settings)
    assert "\n" not in str(error.value)
    # The pipeline validates with pydantic directly: the same settings must fail there too.
    with pytest.raises(ValidationError):
        MicroscopeConfig.model_validate(settings)


def test_shortcut_values_are_validated():
    with pytest.raises(FaketError, match="voltage_kv"):
        parse_config(None, voltage=0)
    with pytest.raises(FaketError, match="total_e_per_a2"):
        parse_config(None, dose=-1)
