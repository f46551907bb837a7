"""cp_grid2d / cp_grid3d datasets: real voxel polycrystals, FFT crystal plasticity, Zarr stores.

Checks: every cell converged; the loading is uniaxial stress (other mean stresses below 1e-5 of
the axial one; Newton tolerance 1e-6); the initial slope lies between the crystal's softest
(<100>) and stiffest (<111>) directional Young's moduli (plane strain stays below E111 too);
the flow stress exceeds the resolved-shear yield of the best-oriented grain (Schmid factor at
most 0.5: sigma >= 2 g0); grain maps, orientations and the pixel adjacency are consistent; the stored field averages
to the mean stress; the split is stored; a rerun does nothing.
"""

import re

import numpy as np
import pytest
import xarray as xr

from homlearn.config import validate_config
from homlearn.datasets.cp_grid import record_steps, run_solve_stage


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("cp_grid")
    cfg = validate_config({"cp_grid": {"n_steps": 12, "final_strain": 0.003, "record_strains": [0.001],
                                       "batch_size": 3, "grid2d": {"n_samples": 5, "grid": 12},
                                       "grid3d": {"n_samples": 2, "grid": 6, "grain_range": [2, 6]}},
                           "dask": {"progress": False}})
    out = {}
    for dim in ("2d", "3d"):
        path = root / f"cp{dim}.zarr"
        rep = run_solve_stage(cfg["cp_grid"], cfg["dask"], dim, path, 1)
        out[dim] = (path, rep)
    return cfg, out


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_histories_are_uniaxial_tension_between_bounds(stores, dim):
    cfg, out = stores
    path, rep = out[dim]
    assert rep.samples_failed == 0
    ds = xr.open_zarr(path)
    stress, strain = ds.stress.values, ds.strain.values
    assert np.all(ds.status.values == 1)                              # STATUS_DONE
    axial = stress[:, :, 0, 0]
    lateral = stress.copy()
    lateral[:, :, 0, 0] = 0
    assert np.abs(lateral).max() <= 1e-5 * np.abs(axial).max()
    dt = cfg["cp_grid"]["final_strain"] / cfg["cp_grid"]["n_steps"]
    assert np.allclose(strain[:, :, 0, 0], np.arange(strain.shape[1]) * dt, rtol=0, atol=1e-15)
    c11, c12, c44 = 204.6e3, 137.7e3, 126.2e3
    s11, s12, s44 = (c11 + c12) / ((c11 - c12) * (c11 + 2 * c12)), -c12 / ((c11 - c12) * (c11 + 2 * c12)), 1 / c44
    e100, e111 = 1 / s11, 1 / (s11 - 2 * (s11 - s12 - s44 / 2) / 3)      # softest / stiffest directions
    slope = axial[:, 1] / strain[:, 1, 0, 0]
    assert np.all((slope > e100 * 0.999) & (slope < e111 * 1.001))
    assert np.all(axial[:, -1] > 2 * 122.0) and np.all(np.diff(axial, axis=1) > 0)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_grain_maps_fields_and_split(stores, dim):
    cfg, out = stores
    path, _ = out[dim]
    ds = xr.open_zarr(path)
    n = ds.n_grains.values
    for k in range(ds.sizes["sample"]):
        g = ds.voxel_grain.values[k]
        assert set(np.unique(g)) == set(range(n[k]))
        ang = ds.grain_angle.values[k]
        assert np.all(np.isfinite(ang[:n[k]])) and np.all(np.isnan(ang[n[k]:]))
    # graph form: the pixel adjacency is the periodic grid's (2 or 3 neighbours per pixel, each
    # pair of face neighbours once), indices into the flattened grain map
    edges = ds.pixel_edges.values
    npix = int(np.prod(ds.voxel_grain.shape[1:]))
    nd = ds.voxel_grain.ndim - 1
    assert edges.shape == (nd * npix, 2) and edges.min() == 0 and edges.max() == npix - 1
    coords = np.stack(np.unravel_index(edges, ds.voxel_grain.shape[1:]), -1)      # (edge, pair, axis)
    step = np.abs(coords[:, 0] - coords[:, 1])
    n_side = ds.voxel_grain.shape[1]
    assert np.all(((step == 1) | (step == n_side - 1)).sum(-1) == 1) and np.all((step == 0).sum(-1) == nd - 1)
    assert len({tuple(sorted(e)) for e in edges.tolist()}) == len(edges)
    rec = record_steps(cfg["cp_grid"])[0]
    field_mean = ds.stress_xx_field.values[:, 0].reshape(ds.sizes["sample"], -1).mean(1)
    assert np.allclose(field_mean, ds.stress.values[:, rec, 0, 0], rtol=1e-6)
    assert set(np.unique(ds.split.values)) <= {0, 1, 2}


def test_rerun_resumes_with_nothing_to_do(stores):
    cfg, out = stores
    path, _ = out["2d"]
    rep = run_solve_stage(cfg["cp_grid"], cfg["dask"], "2d", path, 1)
    assert rep.samples_run == 0 and rep.samples_done == 5


@pytest.mark.parametrize("strains", [[0.001], [0.0025, 0.005, 0.02]])
def test_record_strains_off_the_loading_are_refused_before_solving(tmp_path, strains):
    """2 steps to 1% strain (0.5% per step): 0.1% and 0.25% (half a step) round to step 0 and 2% to
    step 4, beyond the last: refused with the key and the offending strains named, no store made."""
    cfg = validate_config({"cp_grid": {"n_steps": 2, "final_strain": 0.01, "record_strains": strains,
                                       "grid2d": {"n_samples": 1, "grid": 4}}, "dask": {"progress": False}})
    path = tmp_path / "cp.zarr"
    offending = [e for e in strains if e != 0.005]
    with pytest.raises(ValueError, match=re.escape(f"cp_grid.record_strains: {offending} fall outside")):
        run_solve_stage(cfg["cp_grid"], cfg["dask"], "2d", path, 1)
    assert not path.exists()
    assert record_steps({**cfg["cp_grid"], "record_strains": [0.005, 0.01]}) == [1, 2]
