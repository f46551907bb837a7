"""The elastic_ls dataset (paper 'rln' section 4) built by the real stage on a small grid:
energy bounds, exact mean strain and volume fractions, stored split, resume."""

import numpy as np
import pytest
import xarray as xr

from homlearn.config import validate_config
from homlearn.datasets.elastic_ls import run_solve_stage


def _voigt_stiffness(young, nu):
    lam, mu = young * nu / ((1 + nu) * (1 - 2 * nu)), young / (2 * (1 + nu))
    c = np.zeros((6, 6))
    c[:3, :3] = lam
    c[np.arange(3), np.arange(3)] += 2 * mu
    c[np.arange(3, 6), np.arange(3, 6)] = mu  # engineering shear strains
    return c


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("elastic_ls")
    cfg = validate_config({"elastic_ls": {"n_design_points": 3, "per_point": 2, "grid": 12, "batch_size": 2},
                           "dask": {"progress": False}})
    reports = {cr: run_solve_stage(cfg["elastic_ls"], cfg["dask"], cr, root / f"cr{cr}.zarr", 1) for cr in (10.0, 50.0)}
    return cfg, root, reports


def test_every_cell_converged_and_mean_strain_exact(stores):
    cfg, root, reports = stores
    for cr, rep in reports.items():
        assert rep.samples_done == 6 and rep.samples_failed == 0
        ds = xr.open_zarr(root / f"cr{cr}.zarr")
        eps = ds["strain_xx"].values
        np.testing.assert_allclose(eps.mean(axis=(1, 2, 3)), 0.001, rtol=1e-5)  # float32 storage
        assert np.all(ds["residual"].values < 1e-7) and np.all(ds["iterations"].values > 0)
        assert eps.std(axis=(1, 2, 3)).min() > 1e-5  # heterogeneous fields, not the mean strain


def test_effective_response_within_voigt_reuss(stores):
    """E : C_eff : E = <sigma> : E (Hill-Mandel) lies between E : C_Reuss : E and E : C_Voigt : E."""
    cfg, root, _ = stores
    c = cfg["elastic_ls"]
    e = np.array([0.001, 0, 0, 0, 0, 0])
    for cr in (10.0, 50.0):
        ds = xr.open_zarr(root / f"cr{cr}.zarr")
        soft, hard = _voigt_stiffness(c["young_soft"], c["poisson"]), _voigt_stiffness(cr * c["young_soft"], c["poisson"])
        for s in range(6):
            f = ds["microstructure"].values[s].mean()
            voigt = (1 - f) * soft + f * hard
            reuss = np.linalg.inv((1 - f) * np.linalg.inv(soft) + f * np.linalg.inv(hard))
            energy = ds["mean_stress"].values[s, 0, 0] * 0.001
            assert e @ reuss @ e <= energy <= e @ voigt @ e
            assert ds["mean_stress"].values[s, 1, 1] > 0  # Poisson effect under uniaxial strain


def test_microstructures_follow_the_design_and_split(stores):
    cfg, root, _ = stores
    a, b = xr.open_zarr(root / "cr10.0.zarr"), xr.open_zarr(root / "cr50.0.zarr")
    np.testing.assert_array_equal(a["microstructure"].values, b["microstructure"].values)  # same cells
    vf = a["microstructure"].values.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(vf, np.round(a["design"].values[:, 3] * 12 ** 3) / 12 ** 3, atol=1e-12)
    assert np.bincount(a["split"].values, minlength=3).tolist() == [2, 2, 2]  # cuts round(2.4), round(3.6)
    assert a.attrs["contrast"] == 10.0 and "deviation" in a.attrs


def test_rerun_resumes_with_nothing_to_do(stores):
    cfg, root, _ = stores
    rep = run_solve_stage(cfg["elastic_ls"], cfg["dask"], 10.0, root / "cr10.0.zarr", 1)
    assert rep.batches_run == 0 and rep.samples_done == 6
