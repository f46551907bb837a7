"""FLN / RLN-t / RLN (paper 'rln' section 3) on a tiny real elastic_ls store (12 cells of 8^3
solved by the FFT stage): exact prescribed mean, periodic-shift equivariance, parameter counts,
training through the shared trainer, MASE (eq. 28), evaluation outputs and config errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from homlearn.config import ConfigError, validate_config
from homlearn.models.rln import build_rln
from homlearn.train.rln import iterate_mse, mase, split_mase, split_samples, train_rln

ROOT = Path(__file__).resolve().parents[1]
TINY = {"channels": 4, "iterations": 5, "history": 2}
TRAIN = {"max_epochs": 6, "batch_size": 2, "lr": 5e-3, "schedule": "cosine", "device": "cpu", "tensorboard": False}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from homlearn.datasets.elastic_ls import run_solve_stage

    root = tmp_path_factory.mktemp("rln")
    cfg = validate_config({"elastic_ls": {"n_design_points": 3, "per_point": 4, "grid": 8, "batch_size": 4},
                           "dask": {"progress": False}})
    rep = run_solve_stage(cfg["elastic_ls"], cfg["dask"], 10.0, root / "cr10.zarr", 1)
    assert rep.samples_done == 12
    return root / "cr10.zarr"


def _micro(store, n=3):
    test = split_samples(store, "test")
    return torch.as_tensor(np.stack([s["m"] for s in test.__getitems__(range(n))]))


def test_every_iterate_has_the_prescribed_mean(store):
    """Zero-mean perturbation + y^R (section 3.2): each iterate's mean is the prescribed strain,
    to 1e-12 relative in float64 (round-off), for any mean strain per sample."""
    torch.manual_seed(0)
    m = _micro(store)
    mean = torch.tensor([1e-3, -2.5e-3, 0.04], dtype=torch.float64)
    for variant in ("fln", "rln_t", "rln"):
        net = build_rln(variant, **TINY).double()
        y = net(m, mean)
        assert y.shape == (3, 1 if variant == "fln" else 5, 8, 8, 8)
        got = y.mean(dim=(-3, -2, -1))
        np.testing.assert_allclose(got.detach().numpy(), mean[:, None].expand_as(got).numpy(), rtol=1e-12, atol=0)
        assert float(y.detach().std(dim=(-3, -2, -1)).min()) > 1e-8  # a field, not the mean alone


def test_periodic_shifts_commute_with_the_rln(store):
    """Circular padding: rolling the microstructure by even shifts (the stride-2 level fixes the
    parity) on an even grid rolls every iterate, to 1e-12 in float64."""
    torch.manual_seed(1)
    net = build_rln("rln", **TINY).double()
    m = _micro(store, 2)
    shifts, dims = (2, -4, 6), (1, 2, 3)
    with torch.no_grad():
        y = net(m)
        y_shift = net(torch.roll(m, shifts, dims))
    assert float(y.std()) > 1e-6
    np.testing.assert_allclose(y_shift.numpy(), torch.roll(y, shifts, (2, 3, 4)).numpy(), rtol=0, atol=1e-12)


def test_rln_t_has_one_nth_of_the_rln_parameters():
    """RLN-t ties the N proximal networks (section 3.2); FLN is N = 1 with RLN-t's parameters;
    the default width gives the paper's ~160,000 parameters per network (section 3.3)."""
    count = {v: sum(p.numel() for p in build_rln(v, iterations=5).parameters()) for v in ("fln", "rln_t", "rln")}
    assert count["rln"] == 5 * count["rln_t"] and count["fln"] == count["rln_t"]
    assert abs(count["rln_t"] - 160_000) / 160_000 < 0.05, count
    assert build_rln("fln", iterations=5).iterations == 1 and build_rln("rln_t", iterations=7).iterations == 7


def test_losses_and_mase_on_known_fields():
    """eq. 28 on a field wrong by 2% of the mean strain in half the voxels: MASE = 1%; the
    calibration loss is the sum over iterates of the per-iterate MSE (uniform weights)."""
    true = np.full((1, 4, 4, 4), 0.002)
    pred = true.copy()
    pred[0, :2] += 0.02 * 0.002
    assert mase(pred, true, 0.002)[0] == pytest.approx(1.0, rel=1e-12)
    y = torch.zeros(2, 4, 4, 4)
    it = torch.stack([torch.full_like(y, 1.0), torch.full_like(y, 2.0)], dim=1)
    assert float(iterate_mse(it, y)) == pytest.approx(1.0 + 4.0, rel=1e-7)


def test_training_reduces_loss_and_error(store, tmp_path):
    """train_rln on the real store: the iterate-summed loss falls over 6 epochs and the trained
    RLN-t has a lower test MASE than its untrained start."""
    torch.manual_seed(0)
    start = split_mase(build_rln("rln_t", **TINY), split_samples(store, "test")).mean()
    info = train_rln(store, tmp_path / "rln_t", "rln_t", hyper=TINY, train_cfg=TRAIN, progress=False)
    rows = (tmp_path / "rln_t" / "history.csv").read_text().splitlines()[1:]
    train_loss = [float(r.split(",")[1]) for r in rows]
    assert len(train_loss) == 6 and train_loss[-1] < 0.7 * train_loss[0], train_loss
    assert info["metrics"]["test"]["mase_mean"] < start, (info["metrics"]["test"], start)
    assert info["n_samples"] == {"train": 5, "validation": 2, "test": 5}
    saved = json.loads((tmp_path / "rln_t" / "model.json").read_text())
    assert saved["hyperparameters"] == TINY and saved["grid"] == [8, 8, 8] and saved["contrast"] == 10.0


def test_evaluation_outputs(store, tmp_path):
    """The three variants (2 epochs each) through evaluate_rln and write_summary: Table 1 rows,
    figures, the worst voxel and the timings against the FFT solver, with the paper's values."""
    from homlearn.evaluate.rln import FIGURES, evaluate_rln, write_summary

    for v in ("fln", "rln_t", "rln"):
        train_rln(store, tmp_path / "models" / v, v, hyper=TINY, train_cfg={**TRAIN, "max_epochs": 2}, progress=False)
    m = evaluate_rln(store, tmp_path / "models", tmp_path / "eval", batch_size=4, timing_cells=2)
    for name in FIGURES:
        assert (tmp_path / "eval" / f"{name}.png").stat().st_size > 1000
    assert m["n_test"] == 5 and m["models"]["rln"]["paper_mase_mean"] == 1.21
    for v, r in m["models"].items():
        assert len(m["mase_test"][v]) == 5 and r["mase_mean"] == pytest.approx(np.mean(m["mase_test"][v]))
        assert len(r["mase_per_iterate"]) == (1 if v == "fln" else 5)
    assert m["timing"]["devices"]["cpu"]["fft_solver"] > 0 and m["timing"]["devices"]["cpu"]["rln"] > 0
    text = write_summary(tmp_path / "field_surrogates.md", [tmp_path / "eval" / "metrics.json"])
    assert "| elastic_ls CR 10, RLN test MASE (Table 1) |" in text and "1.21% +- 0.37%" in text
    assert "5/2/5 cells of 8x8x8" in text and "ordering RLN < RLN-t < FLN" in text and "(paired, SE)" in text
    d = np.array(m["mase_test"]["rln"]) - np.array(m["mase_test"]["rln_t"])
    assert m["paired"]["rln-rln_t"]["mean"] == pytest.approx(d.mean(), rel=1e-12)


def test_bad_config_is_refused_with_the_key_named(store, tmp_path):
    with pytest.raises(ConfigError, match="chanels"):
        validate_config({"rln": {"chanels": 8}})
    with pytest.raises(ConfigError, match="max_epoch"):
        validate_config({"rln": {"train": {"max_epoch": 3}}})
    with pytest.raises(ConfigError, match="rln.data.source"):
        validate_config({"rln": {"data": {"source": "mine"}}})
    with pytest.raises(ConfigError, match="max_epoch"):
        train_rln(store, tmp_path / "x", "rln", hyper=TINY, train_cfg={"max_epoch": 3})
    with pytest.raises(ValueError, match="rln.train.loss"):
        train_rln(store, tmp_path / "x", "rln", hyper=TINY, train_cfg={**TRAIN, "loss": "relative_l2"})
    with pytest.raises(ValueError, match="rln2"):
        train_rln(store, tmp_path / "x", "rln2", hyper=TINY, train_cfg=TRAIN)


def test_rln_targets_in_the_workflow(tmp_path):
    """The default config's rln_all plans 2 own data stores, 6 trainings, 2 evaluations, 1 summary."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "rln_all", "--cores", "1", "--nolock", "--directory",
                          str(ROOT), "--config", f"results={tmp_path}"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = {line.split()[0]: int(line.split()[1]) for line in out.stdout.splitlines()
              if line.startswith("rln_") and len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts == {"rln_data": 2, "rln_train": 6, "rln_evaluate": 2, "rln_summary": 1, "rln_all": 1}, out.stdout
