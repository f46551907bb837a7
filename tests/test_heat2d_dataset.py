"""The heat2d dataset built by the real stages: physics checks on every sample, mesh and graph
checks, the stored split, and the Zarr round trip through xarray."""

import numpy as np
import xarray as xr

from homlearn.data.store import read_ragged


def test_every_sample_done(heat2d_small):
    m, s = heat2d_small["reports"]
    assert m.samples_done == 48 and s.samples_done == 48
    assert m.samples_failed == 0 and s.samples_failed == 0


def test_bounds_hold_for_every_sample(heat2d_small):
    """1/<(kappa^-1)_xx> <= kbar_x <= <kappa_xx> (true bounds for these boundary conditions)."""
    ds = xr.open_zarr(heat2d_small["data"])
    k = ds["kbar"].values[:, 0]
    lo, hi = ds["kbar_lower"].values, ds["kbar_upper"].values
    assert np.all(lo <= k + 1e-12) and np.all(k <= hi + 1e-12)
    assert np.all(lo < hi)
    # eq. 6 (uniform gradient) is the upper bound itself; eq. 7 lies above the lower bound
    np.testing.assert_allclose(ds["kbar_gradient_rule"].values, hi, rtol=1e-12)
    assert np.all(ds["kbar_flux_rule"].values >= lo - 1e-12)
    assert np.all((k > 0.25) & (k < 1.0))
    assert np.all(ds["solver_residual"].values < 1e-8)


def test_mesh_and_graph_checks(heat2d_small):
    ds = xr.open_zarr(heat2d_small["data"])
    for s in range(ds.sizes["sample"]):
        area, grain = read_ragged(ds, "cell_area", s), read_ragged(ds, "cell_grain", s)
        n_grains = int(ds["n_grains"].values[s])
        assert 14 <= n_grains <= 18
        assert abs(area.sum() - 1.0) < 1e-10 and np.all(area > 0)
        assert grain.min() == 0 and grain.max() == n_grains - 1          # each cell in one grain
        assert len(np.unique(grain)) == n_grains                         # no empty grain
        np.testing.assert_allclose(read_ragged(ds, "grain_area", s).sum(), 1.0, atol=1e-10)
        edges = read_ragged(ds, "edge_cells", s)
        assert np.all(edges[:, 0] < edges[:, 1])                         # no self pairs
        assert len({tuple(e) for e in edges}) == len(edges)              # no duplicates
        a = np.zeros((len(area), len(area)), bool)
        a[edges[:, 0], edges[:, 1]] = True
        a = a | a.T                                                      # symmetric adjacency
        assert np.all(a.sum(axis=1) >= 1) and np.all(a.sum(axis=1) <= 3)
        angle = read_ragged(ds, "cell_angle", s)
        np.testing.assert_array_equal(angle, read_ragged(ds, "grain_angle", s)[grain])
        temp = read_ragged(ds, "temperature", s)
        pts = read_ragged(ds, "point_xy", s)
        assert np.all(temp[pts[:, 0] < 1e-12] == 0.0) and np.allclose(temp[pts[:, 0] > 1 - 1e-12], 1.0)
        assert temp.min() >= -1e-9 and temp.max() <= 1 + 1e-9           # maximum principle


def test_split_is_stored_and_seeded(heat2d_small):
    from homlearn.data.split import draw_split

    ds = xr.open_zarr(heat2d_small["data"])
    split = ds["split"].values
    cfg = heat2d_small["cfg"]["heat2d"]
    np.testing.assert_array_equal(split, draw_split(48, cfg["split"]["fractions"], cfg["split"]["seed"]))
    counts = np.bincount(split, minlength=3)
    assert counts.tolist() == [34, 9, 5]  # 7:2:1 of 48: cut points round(33.6), round(43.2)


def test_dataset_attrs_and_units(heat2d_small):
    ds = xr.open_zarr(heat2d_small["data"])
    assert ds.attrs["exemplar"] == "heat2d" and ds.attrs["config"]["n_samples"] == 48
    assert ds["kbar"].dims == ("sample", "component")
    assert ds["temperature"].dims == ("point",)
    assert "units" in ds["kbar"].attrs and "codes" in ds["status"].attrs


def test_same_seed_same_dataset(heat2d_small, tmp_path):
    """Rebuilding the first batch from the same config reproduces it bit for bit."""
    from homlearn.config import validate_config
    from homlearn.datasets.heat2d import run_microstructure_stage

    cfg = validate_config({"heat2d": {"n_samples": 16, "seed": 3}, "dask": {"batch_size": 16, "progress": False}})
    run_microstructure_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m.zarr", 1)
    a, b = xr.open_zarr(tmp_path / "m.zarr"), xr.open_zarr(heat2d_small["micro"])
    for s in range(16):
        np.testing.assert_array_equal(read_ragged(a, "point_xy", s), read_ragged(b, "point_xy", s))
        np.testing.assert_array_equal(read_ragged(a, "grain_angle", s), read_ragged(b, "grain_angle", s))
