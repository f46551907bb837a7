"""Zarr data layer: chunk-aligned writes only, xarray round trip, status and resume."""

import numpy as np
import pytest
import xarray as xr
import zarr

from homlearn.data.store import (BatchWriter, CapacityError, Layout, RegionError, Variable,
                                 create_store, pending_batches, read_ragged, write_block)


def _store(path, n=10, batch=4, cap=5):
    lay = Layout(n, batch, {"cell": cap}, {"xy": 2})
    variables = {"a": Variable(("sample", "xy"), "float64", {"units": "m"}),
                 "c": Variable(("cell",), "int32"), "f": Variable(("cell", "xy"), "float32")}
    return create_store(path, lay, variables, {"purpose": "test"}), lay


def test_round_trip_through_xarray(tmp_path):
    g, lay = _store(tmp_path / "s.zarr")
    rng = np.random.default_rng(0)
    expected = {}
    for b in range(lay.n_batches):
        w = BatchWriter(g, b)
        for local, i in enumerate(range(w.samples.start, w.samples.stop)):
            n = int(rng.integers(1, 6))
            c, f = rng.integers(0, 100, n), rng.random((n, 2)).astype(np.float32)
            expected[i] = (np.array([i, -i]), c, f)
            w.add(local, {"a": expected[i][0]}, {"c": c, "f": f})
        w.flush()
    ds = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    assert ds["a"].dims == ("sample", "xy") and ds["c"].dims == ("cell",)
    assert ds["a"].attrs["units"] == "m" and ds.attrs["purpose"] == "test"
    assert np.all(ds["status"].values == 1)
    for i, (a, c, f) in expected.items():
        np.testing.assert_array_equal(ds["a"].values[i], a)
        np.testing.assert_array_equal(read_ragged(ds, "c", i), c)
        np.testing.assert_array_equal(read_ragged(ds, "f", i), f)
    assert pending_batches(g) == []


def test_partial_chunk_writes_are_refused(tmp_path):
    g, lay = _store(tmp_path / "s.zarr")
    with pytest.raises(RegionError, match="whole"):
        write_block(g["a"], slice(1, 3), np.zeros((2, 2)))
    with pytest.raises(RegionError, match="whole"):
        write_block(g["a"], slice(0, 2), np.zeros((2, 2)))
    with pytest.raises(RegionError):
        write_block(g["c"], slice(5, 25), np.zeros(20, dtype=np.int32))
    write_block(g["a"], slice(8, 10), np.ones((2, 2)))   # the last, short chunk is whole
    np.testing.assert_array_equal(g["a"][8:10], 1.0)


def test_capacity_and_failures_are_recorded(tmp_path):
    g, lay = _store(tmp_path / "s.zarr", cap=3)
    w = BatchWriter(g, 0)
    with pytest.raises(CapacityError):
        w.add(0, {}, {"c": np.arange(20)})
    w.fail(0, -3)
    w.add(1, {"a": [1.0, 2.0]}, {"c": np.arange(2), "f": np.zeros((2, 2))})
    w.flush()
    status = g["status"][:]
    assert status[0] == -3 and status[1] == 1 and status[2] == 0
    assert pending_batches(g) == [0, 1, 2]  # batch 0 still has pending samples 2, 3


def test_existing_store_with_other_layout_is_refused(tmp_path):
    _store(tmp_path / "s.zarr", n=10)
    with pytest.raises(ValueError, match="layout"):
        _store(tmp_path / "s.zarr", n=12)
    g, _ = _store(tmp_path / "s.zarr", n=10)  # same layout: opened for resume
    assert isinstance(g, zarr.Group)
