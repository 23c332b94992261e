"""Tests of xrdbatch.config: layering, overrides, validation, conditions resolution, TOML round trip."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xrdbatch import config
from xrdbatch.conditions import Conditions


def test_defaults_resolve_to_the_default_conditions():
    assert config.resolve_conditions(config.load_config()["conditions"]) == Conditions()


def test_file_then_overrides_later_wins(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('out_dir = "runs/a"\n[conditions]\nradiation = "MoKa"\ntwo_theta_max_deg = 40.0\n'
                 '[store]\nchunk_size = 100\n[training]\nn_estimators = 50\n')
    cfg = config.load_config(f, ["store.chunk_size=250", "conditions.fwhm_deg=0.05", "sources.specs=['x/', 'y/']"])
    assert cfg["store"]["chunk_size"] == 250 and cfg["store"]["path"] == "store.zarr"
    assert cfg["sources"]["specs"] == ["x/", "y/"]
    assert cfg["training"] == {"n_estimators": 50}
    c = config.resolve_conditions(cfg["conditions"])
    assert c == Conditions.from_radiation("MoKa", two_theta_max_deg=40.0, fwhm_deg=0.05)
    assert config.path_in(cfg, cfg["store"]["path"]) == "runs/a/store.zarr"
    assert config.path_in(cfg, "/abs/x.zarr") == "/abs/x.zarr" and config.path_in(cfg, "s3://b/k") == "s3://b/k"


def test_ka2_turns_a_line_into_its_doublet():
    c = config.resolve_conditions({"radiation": "CoKa", "ka2": True, "ka2_ratio": 0.45})
    assert (c.wavelength_angstrom, c.wavelength2_angstrom, c.ka2_ratio) == (1.788965, 1.792850, 0.45)
    with pytest.raises(config.ConfigError, match="ka2 = true needs a line name"):
        config.resolve_conditions({"radiation": 1.5, "ka2": True})


@pytest.mark.parametrize("text, match", [
    ("[store]\nchunksize = 3\n", r"unknown key 'store.chunksize'; valid keys here: \['chunk_size'"),
    ("[stores]\npath = 'x'\n", r"unknown section \[stores\]; valid sections: \['cluster', 'conditions'"),
    ("[conditions]\nradiation = 'XxKa'\n", r"unknown radiation 'XxKa'"),
    ("[conditions]\ntwo_theta_max_deg = 200.0\n", r"two_theta_max_deg < 180"),
    ("[store\n", r"not valid TOML"),
])
def test_errors_name_the_file_the_key_and_the_valid_values(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(config.ConfigError, match=match):
        config.load_config(f)


def test_missing_file_and_bad_override():
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load_config("/nonexistent/run.toml")
    with pytest.raises(config.ConfigError, match="expects section.key=value"):
        config.parse_override("store.chunk_size")


@given(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                 st.text(alphabet="abcdefghijklmnopqrstuvwxyz:/_.-", min_size=1, max_size=20)))
def test_override_values_parse_as_toml_else_string(value):
    text = str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)
    got = config.parse_override(f"training.x={text}")["training"]["x"]
    if isinstance(value, str):
        assert isinstance(got, (str, int, float, bool))
    else:
        assert got == value


def test_dumps_round_trips_through_toml():
    cfg = config.load_config(None, ["conditions.radiation=CuKa12", "cluster.n_workers=3"])
    text = config.dumps(cfg)
    assert "# resolved conditions:" in text
    back = tomllib.loads(text)
    assert back["cluster"] == {"n_workers": 3}
    assert config.load_config(None)["conditions"].keys() >= back["conditions"].keys()
    again = config._merge(config.DEFAULTS, back, "round trip")
    assert config.resolve_conditions(again["conditions"]) == config.resolve_conditions(cfg["conditions"])


def test_config_show_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "xrdbatch.cli", "config", "show", "--demo",
                          "--set", "store.chunk_size=64"], capture_output=True, text=True, check=True).stdout
    shown = tomllib.loads(out)
    assert shown["store"]["chunk_size"] == 64 and shown["out_dir"] == "xrdbatch-demo"
    bad = subprocess.run([sys.executable, "-m", "xrdbatch.cli", "config", "show", "--set", "store.nope=1"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown key 'store.nope'" in bad.stderr and "Traceback" not in bad.stderr
