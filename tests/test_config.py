"""Config validation: defaults filled in, bad input refused with the key named."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from homlearn.config import ConfigError, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_valid_and_filled():
    cfg = load_config(ROOT / "config.yaml")
    h = cfg["heat2d"]
    assert h["kappa"] == [1.0, 0.25]                  # paper A.1
    assert h["n_grains"] == [14, 18]                  # paper section 3.1
    assert h["split"]["fractions"] == [0.7, 0.2, 0.1]  # paper section 6
    assert h["train"]["lr"] == 0.001 and h["train"]["batch_size"] == 32
    assert cfg["dask"]["cluster"] == "local"


def test_paper_config_is_valid():
    cfg = load_config(ROOT / "workflow" / "configs" / "heat2d-paper.yaml")
    assert cfg["heat2d"]["n_samples"] == 10000
    assert cfg["heat2d"]["train"]["patience"] == 100 and cfg["heat2d"]["train"]["max_epochs"] == 1000


@pytest.mark.parametrize("patch, needle", [
    ({"heat2d": {"n_samplez": 3}}, "n_samplez"),
    ({"bogus": 1}, "bogus"),
    ({"heat2d": {"n_samples": -5}}, "heat2d.n_samples"),
    ({"heat2d": {"n_samples": "many"}}, "heat2d.n_samples"),
    ({"heat2d": {"tessellation": "hexagonal"}}, "heat2d.tessellation"),
    ({"heat2d": {"kappa": [1.0, 0.0]}}, "heat2d.kappa.1"),
    ({"heat2d": {"n_grains": [18, 14]}}, "heat2d.n_grains"),
    ({"heat2d": {"split": {"fractions": [0.5, 0.2, 0.1]}}}, "heat2d.split.fractions"),
    ({"heat2d": {"train": {"device": "tpu"}}}, "heat2d.train.device"),
    ({"dask": {"cluster": "address"}}, "dask.address"),
])
def test_bad_config_names_the_key(patch, needle):
    with pytest.raises(ConfigError) as err:
        validate_config(copy.deepcopy(patch))
    assert needle in str(err.value)


def test_snakemake_refuses_bad_config_before_any_work(tmp_path):
    """A real snakemake dry run with an unknown key stops with the key named."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"results": str(tmp_path / "out"), "heat2d": {"n_samples": 0}}))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "heat2d.n_samples" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "workflow" / "configs").glob("*.yaml")))
def test_every_shipped_config_is_valid(name):
    """Each file under workflow/configs (full configs and overlays alike) passes the schema and the
    semantic checks on its own, so a typo in a paper-size or CPU overlay fails here, not hours in."""
    validate_config(yaml.safe_load((ROOT / "workflow" / "configs" / name).read_text()))
