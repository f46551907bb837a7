"""Data and training side of the GCNN family on cp_grid2d/3d and viscoelastic3d (paper gcnn 3, 4, 6).

Real tiny stores made by the real stages (FFT crystal plasticity, gmsh + DOLFINx viscoelasticity):
graphs equal the stores (sizes, assignment S, periodic 4-/6-neighbour edges, volumes, sigma_xx
histories, exactly), the split roles, scalers fitted on the training split only, the cubic
orientation features against the solver's single-crystal moduli, refusal of damaged stores and of
stores without one shared loading, images for the CNNs, and a short training end to end whose
saved model reloads to the same predictions.
"""

import json
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from homlearn.config import validate_config
from homlearn.data.graphs import TEST, TRAIN, VALIDATION, load_graphs

C11, C12, C44 = 204.6e3, 137.7e3, 126.2e3  # MPa, paper gcnn A.2 (schema defaults)


@pytest.fixture(scope="module")
def cp_stores(tmp_path_factory):
    """cp_grid2d: 12 slices of 10x10 pixels, 8 steps to 0.3% (two Dask batches of 6); cp_grid3d:
    4 cells of 6^3 voxels with 1-3 grains (seed 4 gives two single crystals), 4 steps to 0.2%."""
    from homlearn.datasets.cp_grid import run_solve_stage

    root = tmp_path_factory.mktemp("cp_gcnn")
    base = {"record_strains": [0.001], "device": "cpu", "split": {"fractions": [0.5, 0.25, 0.25], "seed": 1}}
    out = {}
    for dim, extra in (("2d", {"n_steps": 8, "final_strain": 0.003, "batch_size": 6,
                                "grid2d": {"n_samples": 12, "grid": 10}}),
                       ("3d", {"n_steps": 4, "final_strain": 0.002, "batch_size": 4,
                               "grid3d": {"n_samples": 4, "grid": 6, "grain_range": [1, 3], "seed": 4}})):
        cfg = validate_config({"cp_grid": base | extra, "dask": {"progress": False}})
        path = root / f"cp_grid{dim}.zarr"
        rep = run_solve_stage(cfg["cp_grid"], cfg["dask"], dim, path, 1)
        assert rep.samples_done == rep.n_samples and rep.samples_failed == 0
        out[dim] = path
    return out


@pytest.fixture(scope="module")
def ve_store(tmp_path_factory):
    """viscoelastic3d: 3 packings of ~1,500 tetrahedra, 4 steps, one sample per split role."""
    from homlearn.datasets.viscoelastic3d import run_microstructure_stage, run_solve_stage

    root = tmp_path_factory.mktemp("ve_gcnn")
    cfg = validate_config({"viscoelastic3d": {"n_samples": 3, "seed": 4, "target_cells": 1500, "max_cells": 8000,
                                              "curvature_points": 8, "loading": {"n_steps": 4}, "batch_size": 3,
                                              "split": {"fractions": [0.34, 0.33, 0.33], "seed": 0}},
                           "dask": {"progress": False}})
    v = cfg["viscoelastic3d"]
    micro, data = root / "micro.zarr", root / "data.zarr"
    run_microstructure_stage(v, cfg["dask"], micro)
    rep = run_solve_stage(v, cfg["dask"], micro, data)
    assert rep.samples_done == 3 and rep.samples_failed == 0
    return data


def _copy(path, tmp_path):
    dst = tmp_path / path.name
    shutil.copytree(path, dst)
    return dst


# ------------------------------------------------------------------------------------ cp_grid graphs


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_cp_grid_graphs_equal_the_store(cp_stores, dim):
    """Cells = voxels; S = voxel_grain; edges = the periodic 2d-neighbour grid (degree 4 / 6, each
    pair once); voxel volumes sum per grain to its volume fraction (float32: 1e-6); y and the
    loading are the stored sigma_xx and eps_xx histories bit for bit, without the zero t = 0 row."""
    data = load_graphs(cp_stores[dim])
    ds = xr.open_zarr(cp_stores[dim])
    d = int(dim[0])
    grains = ds.voxel_grain.values
    grid = grains.shape[1:]
    n_vox = int(np.prod(grid))
    assert data.exemplar == f"cp_grid{dim}" and data.grid == grid and len(data.index) == ds.sizes["sample"]
    for k, i in enumerate(data.index):
        assert data.x[k].shape == (n_vox, len(data.feature_names))
        assert np.array_equal(data.cell_grain[k], grains[i].reshape(-1))
        vol = data.x[k][:, data.extensive[0]].astype(float)
        frac = np.bincount(grains[i].reshape(-1)) / n_vox
        assert np.allclose(np.bincount(data.cell_grain[k], weights=vol), frac, rtol=0, atol=1e-6)
    edges = data.edges[0]
    assert all(e is edges for e in data.edges) and edges.shape == (d * n_vox, 2)
    assert np.all(np.bincount(edges.ravel(), minlength=n_vox) == 2 * d)
    assert len(np.unique(np.sort(edges, axis=1), axis=0)) == len(edges)
    a, b = (np.stack(np.unravel_index(edges[:, j], grid), -1) for j in (0, 1))
    step = np.mod(b - a, np.array(grid))                          # periodic offset per axis
    assert np.all((step != 0).sum(1) == 1) and np.all((step == 1) | (step == 0) | (step == np.array(grid) - 1))
    stress = ds.stress.values[data.index, :, 0, 0]
    assert np.all(stress[:, 0] == 0.0)
    assert np.array_equal(data.y, stress[:, 1:]) and data.n_out == ds.sizes["step"] - 1
    assert np.array_equal(data.loading, ds.strain.values[data.index[0], 1:, 0, 0])
    prepared = data.samples(range(len(data.index)), *data.fit_scalers())
    assert all(p["edge_index"] is prepared[0]["edge_index"] for p in prepared)
    assert np.all(np.bincount(prepared[0]["edge_index"][1], minlength=n_vox) == 2 * d)   # both directions


def test_cp_grid2d_orientation_is_the_grain_angle(cp_stores):
    """2D, paper input (`angle`, not the default): the voxel's grain angle (float32 of the stored
    float64, rel 1e-7)."""
    data = load_graphs(cp_stores["2d"], orientation="angle")
    ds = xr.open_zarr(cp_stores["2d"])
    assert data.feature_names == ("angle_z", "voxel_volume") and data.intensive == (0,) and data.extensive == (1,)
    for k, i in enumerate(data.index):
        want = ds.grain_angle.values[i, :, 0][ds.voxel_grain.values[i].reshape(-1)]
        assert np.allclose(data.x[k][:, 0], want, rtol=1e-7, atol=0)


def test_cubic_features_in_2d_are_the_fourfold_harmonics_of_the_angle(cp_stores):
    """2D `cubic`: about z the harmonic tensor reduces to T_xxxx = (3 + cos 4t) / 4 and
    T_xxxy = sin 4t / 4 (module doc; 1e-12), the same for t and t + pi/2 (the 4-fold axis), and
    load_graphs uses them per pixel (float32, 1e-7). Guards the (G, 1) angle shape that scipy needs."""
    from homlearn.data.orientation import orientation_features

    ds = xr.open_zarr(cp_stores["2d"])
    g = int(ds.n_grains.values[0])
    angles = ds.grain_angle.values[0, :g]
    feat, names = orientation_features(angles, 2, "cubic")
    t = angles[:, 0]
    assert names == ("T_xxxx", "T_xxxy") and feat.shape == (g, 2)
    assert np.abs(feat - np.column_stack([(3 + np.cos(4 * t)) / 4, np.sin(4 * t) / 4])).max() < 1e-12
    assert np.abs(orientation_features(angles + np.pi / 2, 2, "cubic")[0] - feat).max() < 1e-12
    data = load_graphs(cp_stores["2d"])                      # the default in 2D as in 3D
    assert data.feature_names == ("T_xxxx", "T_xxxy", "voxel_volume") and data.intensive == (0, 1)
    assert data.options == {"orientation": "cubic"}
    k = 0
    want = feat[ds.voxel_grain.values[data.index[k]].reshape(-1)]
    assert np.allclose(data.x[k][:, :2], want, rtol=0, atol=1e-7)


def test_cubic_features_are_one_per_crystal_and_give_the_single_crystal_modulus(cp_stores):
    """3D default: the cubic harmonic tensor T. (a) The 24 cubic rotations R -> R Q leave it
    unchanged (1e-12) while the Euler angles change; (b) for the single-crystal cells the stored
    initial slope sigma_xx / eps_xx is the uniaxial Young's modulus of T_xxxx,
    1 / E = s11 - (s11 - s12 - s44/2)(1 - T_xxxx) (rel 1e-6: elastic first step, slip rates far
    below the loading rate, features in float32; measured 3e-8 and 7e-8, while the transposed
    rotation would be 2% and 13% off): this ties the features to the solver's rotation convention."""
    from scipy.spatial.transform import Rotation

    from homlearn.data.orientation import cubic_harmonic, orientation_features

    ds = xr.open_zarr(cp_stores["3d"])
    angles = ds.grain_angle.values[0, : int(ds.n_grains.values[0])]
    rot = Rotation.from_euler("ZXZ", angles)
    feat, names = orientation_features(angles, 3, "cubic")
    assert len(names) == 9
    for q in Rotation.create_group("O"):
        sym = rot * q                                        # R Q: the crystal frame turned by a cubic symmetry
        assert np.abs(cubic_harmonic(sym.as_matrix(), 3) - feat).max() < 1e-12
    assert np.abs(orientation_features((rot * Rotation.from_euler("z", 90, degrees=True)).as_euler("ZXZ"), 3,
                                       "euler")[0] - angles).max() > 0.1
    data = load_graphs(cp_stores["3d"])
    assert data.feature_names[:9] == names and data.options == {"orientation": "cubic"}
    s11 = (C11 + C12) / ((C11 - C12) * (C11 + 2 * C12))
    s12, s44 = -C12 / ((C11 - C12) * (C11 + 2 * C12)), 1.0 / C44
    single = [k for k, i in enumerate(data.index) if ds.n_grains.values[i] == 1]
    assert len(single) == 2 and sum(ds.n_grains.values > 1) == 2
    for k in single:
        t_xxxx = float(data.x[k][0, 0])
        young = 1.0 / (s11 - (s11 - s12 - s44 / 2) * (1.0 - t_xxxx))
        assert abs(data.y[k, 0] / data.loading[0] / young - 1.0) < 1e-6
    with pytest.raises(ValueError, match="'orientation'"):
        load_graphs(cp_stores["3d"], orientation="angle")


# ------------------------------------------------------------------------------------ viscoelastic3d


def test_viscoelastic3d_graphs_equal_the_store(ve_store):
    """Cells = tetrahedra (face neighbours, at most 4 each), S = cell_cluster, features phase and
    volume; the cluster sums of the volume are the stored cluster volumes (1e-12); y is the stored
    volume-averaged sigma_xx history without t = 0, bit for bit; the loading the nominal strain."""
    from homlearn.data.store import read_ragged

    data = load_graphs(ve_store)
    ds = xr.open_zarr(ve_store, consolidated=None)
    assert data.feature_names == ("cell_phase", "cell_volume") and data.intensive == (0,) and data.extensive == (1,)
    for k, i in enumerate(data.index):
        cluster = read_ragged(ds, "cell_cluster", i)
        assert data.x[k].shape == (len(cluster), 2) and np.array_equal(data.cell_grain[k], cluster)
        assert np.array_equal(data.x[k][:, 0], (cluster > 0).astype(float))
        assert np.array_equal(data.edges[k], read_ragged(ds, "edge_cells", i))
        assert np.bincount(data.edges[k].ravel(), minlength=len(cluster)).max() <= 4
        sums = np.bincount(cluster, weights=data.x[k][:, 1])
        assert np.allclose(sums, read_ragged(ds, "cluster_volume", i), rtol=1e-12, atol=0)
    stress = ds.mean_stress.values[data.index, :, 0]
    assert np.all(stress[:, 0] == 0.0) and np.array_equal(data.y, stress[:, 1:])
    assert np.array_equal(data.loading, np.asarray(ds.attrs["nominal_strain"])[1:])
    # the paper's names and codes: 0 train, 1 test, 2 validation
    assert sorted(data.split.tolist()) == [TRAIN, TEST, VALIDATION]
    assert np.array_equal(data.split, data.store_split)
    assert data.describe_splits()["validation"]["store_name"] == "validation"
    with pytest.raises(ValueError, match="'orientation' applies to cp_grid stores only"):
        load_graphs(ve_store, orientation="cubic")


# ------------------------------------------------------------------------------------ splits, scalers


def test_split_roles_and_scalers_from_the_training_split_only(cp_stores):
    """cp_grid stores name their splits train / validation / test (ML sense): their 'validation'
    samples stop the training (role 1, the paper's 'testing' set), their 'test' samples are held
    out (role 2, the paper's 'validation'). Scalers: min/max over the training samples only (exact),
    the voxel volume scaled by the largest training-sample total (a volume fraction), one range for every step of the history."""
    data = load_graphs(cp_stores["2d"])
    ds = xr.open_zarr(cp_stores["2d"])
    names = dict(zip(ds.split.attrs["flag_values"], ds.split.attrs["flag_meanings"]))
    stored = ds.split.values[data.index]
    want = np.array([{"train": TRAIN, "validation": TEST, "test": VALIDATION}[names[c]] for c in stored])
    assert np.array_equal(data.split, want) and [len(data.subset(r)) for r in (0, 1, 2)] == [6, 3, 3]
    assert data.subset("validation") == data.subset(VALIDATION)
    splits = data.describe_splits()
    assert splits["test"]["store_name"] == "validation" and splits["validation"]["store_name"] == "test"
    xs, ys = data.fit_scalers()
    train = data.subset(TRAIN)
    xt = np.concatenate([data.x[k] for k in train])
    assert xs.lo[0] == xt[:, 0].min() and xs.hi[0] == xt[:, 0].max()
    # the volume column: x / the largest training-sample total, so every sample's cells sum to <= 1
    # (here all samples fill the same grid: 1, to 1e-6 for float32 features) and a grain's sum is its volume fraction
    v = data.extensive[0]                                    # after the orientation columns
    assert data.feature_names[v] == "voxel_volume"
    totals = [xs.transform(data.x[k])[:, v].sum() for k in train]
    assert xs.lo[v] == 0.0 and max(abs(t - 1.0) for t in totals) < 1e-6
    assert np.all(ys.lo == data.y[train].min()) and np.all(ys.hi == data.y[train].max())
    # the test can fail: the other splits reach outside the training range
    assert data.y.max() > data.y[train].max() or data.y.min() < data.y[train].min()
    z = ys.transform(data.y[train])
    assert z.min() == 0.0 and z.max() == 1.0
    # centred: the training mean history removed, the pooled rest of unit size (1e-12), exact inverse
    _, yc = data.fit_scalers("centered")
    zc = yc.transform(data.y[train])
    assert np.abs(zc.mean(axis=0)).max() < 1e-12 and abs(np.sqrt(np.mean(zc ** 2)) - 1.0) < 1e-12
    assert np.allclose(yc.inverse(zc), data.y[train], rtol=0, atol=1e-9)
    assert np.abs(yc.transform(data.y[data.subset(VALIDATION)]).mean(axis=0)).max() > 1e-6  # not fitted there
    with pytest.raises(ValueError, match="target_scaling 'zscore'"):
        data.fit_scalers("zscore")


# ------------------------------------------------------------------------------------ refusals


def test_damaged_store_is_refused_naming_it(cp_stores, tmp_path):
    """A stress chunk file deleted from a copy: StoreIntegrityError naming the store and the file;
    a truncated one likewise."""
    from homlearn.data.integrity import StoreIntegrityError

    bad = _copy(cp_stores["2d"], tmp_path)
    chunk = sorted(p for p in (bad / "stress").rglob("*") if p.is_file() and p.name != "zarr.json")[0]
    chunk.unlink()
    with pytest.raises(StoreIntegrityError, match=str(bad)) as err:
        load_graphs(bad)
    assert "stress" in str(err.value) and "missing" in str(err.value)
    bad2 = _copy(cp_stores["2d"], tmp_path / "t")
    chunk = sorted(p for p in (bad2 / "strain").rglob("*") if p.is_file() and p.name != "zarr.json")[0]
    chunk.write_bytes(chunk.read_bytes()[:20])
    with pytest.raises(StoreIntegrityError, match=str(bad2)):
        load_graphs(bad2)


def test_store_without_one_loading_is_refused_and_failed_samples_are_left_out(cp_stores, tmp_path):
    """One sample's eps_xx history changed by 1e-6 at step 5 (rewritten through zarr, checksums
    valid): refused, naming the step. A sample marked failed (status -2) is not read."""
    store = _copy(cp_stores["2d"], tmp_path)
    g = zarr.open_group(store, mode="r+")
    strain = g["strain"][:]
    strain[3, 5, 0, 0] += 1e-6
    g["strain"][:] = strain
    with pytest.raises(ValueError, match="do not share one loading.*step 5"):
        load_graphs(store)
    other = _copy(cp_stores["2d"], tmp_path / "f")
    g = zarr.open_group(other, mode="r+")
    status = g["status"][:]
    status[4] = -2
    g["status"][:] = status
    data = load_graphs(other)
    assert 4 not in data.index.tolist() and len(data.index) == 11 and data.y.shape == (11, 8)
    with pytest.raises(ValueError, match="holds exemplar 'cp_grid2d', not 'viscoelastic3d'"):
        load_graphs(other, "viscoelastic3d")


# ------------------------------------------------------------------------------------ images


def test_images_carry_the_graph_features_on_the_grid(cp_stores):
    """cnn inputs: (C, *grid) float32, channel c at voxel v = graph feature c of v (exact); the
    training images lie in [0, 1]; targets scaled like the graphs'."""
    from homlearn.data.voxels import load_images

    for dim in ("2d", "3d"):
        images = load_images(cp_stores[dim])
        graphs = load_graphs(cp_stores[dim])
        xs, ys = images.fit_scalers()
        gxs, gys = graphs.fit_scalers()
        assert np.array_equal(xs.lo, gxs.lo) and np.array_equal(ys.hi, gys.hi)
        train = images.subset(TRAIN)
        samples = images.samples(train, xs, ys)
        ds = xr.open_zarr(cp_stores[dim])
        for s, k in zip(samples, train):
            img = s["image"]
            assert img.dtype == np.float32 and img.shape == (len(images.feature_names), *images.grid)
            assert img.min() >= 0.0 and img.max() <= 1.0
            flat = img.reshape(img.shape[0], -1).T
            assert np.array_equal(flat, xs.transform(graphs.x[k]).astype(np.float32))
            assert np.array_equal(s["y"], ys.transform(graphs.y[k]).astype(np.float32))
        if dim == "2d":   # the T_xxxx channel on the grid is (3 + cos 4t) / 4 of each pixel's grain angle t
            k = train[0]
            t = ds.grain_angle.values[images.index[k], :, 0][ds.voxel_grain.values[images.index[k]]]
            want = (3.0 + np.cos(4.0 * t)) / 4.0
            got = samples[0]["image"][0] * (xs.hi[0] - xs.lo[0]) + xs.lo[0]
            assert np.allclose(got, want, rtol=1e-6, atol=1e-6)


def test_images_only_for_voxel_grids(ve_store):
    """The viscoelastic3d tetrahedra have no image form: refused with a clear error."""
    from homlearn.data.voxels import load_images

    with pytest.raises(ValueError, match="not on a voxel grid"):
        load_images(ve_store)


# ------------------------------------------------------------------------------------ training


def test_history_metrics_on_a_known_offset(cp_stores):
    """Prediction = truth + 5 MPa: RMSE 5 at every step and overall (1e-9), relative RMSE 5 / RMS,
    correlation 1 at every step (1e-12)."""
    from homlearn.train.gcnn import history_metrics

    data = load_graphs(cp_stores["2d"])
    m = history_metrics(data.y, data.y + 5.0, data.loading)
    assert abs(m["rmse"] - 5.0) < 1e-9 and np.allclose(m["per_step"]["rmse"], 5.0, atol=1e-9)
    assert np.allclose(m["per_step"]["relative_rmse"], 5.0 / np.sqrt(np.mean(data.y ** 2, axis=0)), rtol=1e-9)
    assert np.allclose(m["per_step"]["correlation"], 1.0, atol=1e-12)
    assert m["per_step"]["strain"] == data.loading.tolist() and m["n"] == 12 and m["n_values"] == 12 * 8


@pytest.mark.parametrize("model", ["fgcnn", "rgcnn"])
def test_short_training_end_to_end_and_exact_reload(cp_stores, tmp_path, model):
    """A tiny model with n_out = 8 steps, 6 epochs, through the CLI (rgcnn) or the function
    (fgcnn): model.json has the exemplar, the loading and per-step metrics in MPa on every role
    that equal the metrics of predictions.npz against the store (exact); the training loss falls;
    load_gcnn + predict_store reproduce the saved predictions bit for bit."""
    from homlearn.train.gcnn import history_metrics, predict_store, train_gcnn

    hyper = {"n_filters": 4, "n_conv": 2, "n_dense": 2, "hidden": 8} | ({"n_features": 4} if model == "rgcnn" else {})
    train_cfg = {"batch_size": 3, "max_epochs": 6, "device": "cpu", "tensorboard": False, "lr": 3e-3}
    out = tmp_path / model
    if model == "rgcnn":
        from homlearn.cli import main

        cfg = {"gcnn": {"cp_grid2d": {"models": {model: hyper}, "train": train_cfg}}}
        assert main(["gcnn", "train", str(cp_stores["2d"]), "cp_grid2d", model, str(out),
                     "--config-json", json.dumps(cfg)]) == 0
        info = json.loads((out / "model.json").read_text())
    else:
        info = train_gcnn(cp_stores["2d"], model, hyper, train_cfg, out, progress=False)
    assert info["exemplar"] == "cp_grid2d" and info["target"] == {"name": "sigma_xx", "units": "MPa", "n_out": 8}
    assert info["structure"] == ({"extensive": [2], "intensive": [0, 1]} if model == "rgcnn" else {})
    data = load_graphs(cp_stores["2d"])
    assert info["loading"] == data.loading.tolist() and info["training"]["epochs"] == 6
    preds = np.load(out / "predictions.npz")
    for role in ("train", "test", "validation"):
        ids = data.subset(role)
        assert np.array_equal(preds[f"{role}_index"], data.index[ids])
        m = info["metrics"][role]
        assert len(m["per_step"]["rmse"]) == 8 and m["per_step"]["strain"] == info["loading"]
        assert json.loads(json.dumps(history_metrics(data.y[ids], preds[role], data.loading))) == \
            json.loads(json.dumps(m))
    losses = [float(r.split(",")[1]) for r in (out / "history.csv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0]
    pred, truth, again = predict_store(out, cp_stores["2d"], "validation")
    assert np.array_equal(pred, preds["validation"]) and np.array_equal(truth, data.y[data.subset("validation")])


def test_a_checkpoint_of_other_target_scaling_is_not_resumed(cp_stores, tmp_path):
    """Same model, data and settings, other `target_scaling`: the second call trains afresh in the
    same directory (new run id, its own 2 epochs, other losses) instead of reusing the finished
    checkpoint of the first (a resumed run returns the first's losses). Before the scalers joined
    the run id, a retrained vGCNN kept its stale history when the volume scaling changed."""
    from homlearn.train.gcnn import train_gcnn

    hyper = {"n_filters": 2, "n_dense": 1, "hidden": 4}
    train_cfg = {"batch_size": 4, "max_epochs": 2, "device": "cpu", "tensorboard": False}
    out = tmp_path / "m"
    first = train_gcnn(cp_stores["2d"], "fgcnn", hyper, train_cfg, out, progress=False,
                       data_cfg={"target_scaling": "minmax"})
    again = train_gcnn(cp_stores["2d"], "fgcnn", hyper, train_cfg, out, progress=False,
                       data_cfg={"target_scaling": "minmax"})
    assert again["run_id"] == first["run_id"]                # the same run: resumed (finished) as it was
    assert again["training"]["best_val_loss"] == first["training"]["best_val_loss"]
    other = train_gcnn(cp_stores["2d"], "fgcnn", hyper, train_cfg, out, progress=False,
                       data_cfg={"target_scaling": "centered"})
    assert other["run_id"] != first["run_id"] and other["training"]["epochs"] == 2
    assert other["training"]["best_val_loss"] != first["training"]["best_val_loss"]


def test_a_model_that_never_leaves_the_mean_plateau_is_retrained_and_flagged(cp_stores, tmp_path):
    """lr 1e-12: no attempt can leave the plateau, so with collapse_restarts 1 both seeds (0, 1) are
    tried and recorded as collapsed (best loss above 0.95 of the mean predictor's, which equals the
    MSE of the training mean on the early-stopping samples, 1e-6 in float32), model.json says so;
    called again (a resumed run), it returns the same records; a negative count is refused."""
    from homlearn.train.gcnn import COLLAPSE_FRACTION, plateau_loss, train_gcnn

    hyper = {"n_filters": 2, "n_dense": 1, "hidden": 4}
    train_cfg = {"batch_size": 4, "max_epochs": 2, "device": "cpu", "tensorboard": False, "lr": 1e-12}
    out = tmp_path / "m"
    kw = {"progress": False, "data_cfg": {"target_scaling": "centered"}}
    info = train_gcnn(cp_stores["2d"], "fgcnn", hyper, train_cfg, out, collapse_restarts=1, **kw)
    att = info["attempts"]
    assert [a["seed"] for a in att] == [0, 1] and all(a["collapsed"] for a in att) and info["collapsed"]
    assert info["train"]["seed"] == 1
    assert all(a["best_val_loss"] > COLLAPSE_FRACTION * a["plateau_loss"] for a in att)
    data = load_graphs(cp_stores["2d"])
    xs, ys = data.fit_scalers("centered")
    y_tr = ys.transform(data.y[data.subset(TRAIN)])
    y_te = ys.transform(data.y[data.subset(TEST)])
    want = float(np.mean((y_te - y_tr.mean(axis=0)) ** 2))
    got = plateau_loss(data.samples(data.subset(TEST), xs, ys), data.samples(data.subset(TRAIN), xs, ys))
    assert abs(got - want) <= 1e-6 * want and abs(att[0]["plateau_loss"] - want) <= 1e-6 * want
    again = train_gcnn(cp_stores["2d"], "fgcnn", hyper, train_cfg, out, collapse_restarts=1, **kw)
    assert again["attempts"] == att
    with pytest.raises(ValueError, match="collapse_restarts"):
        train_gcnn(cp_stores["2d"], "fgcnn", hyper, train_cfg, out, collapse_restarts=-1, **kw)


def test_heat2d_records_from_before_the_exemplar_was_stored_still_load(heat2d_small, tmp_path):
    """heat2d keeps its scalar target and metrics; a model.json without the keys added for the
    other exemplars (as the heat2d rules wrote them before) reloads to the same predictions (exact)."""
    from homlearn.train.gcnn import predict_store, train_gcnn

    hyper = {"n_filters": 4, "n_features": 4, "n_conv": 2, "n_dense": 2, "hidden": 8}
    info = train_gcnn(heat2d_small["data"], "rgcnn", hyper, {"batch_size": 16, "max_epochs": 2, "device": "cpu",
                                                             "tensorboard": False}, tmp_path, progress=False)
    assert info["exemplar"] == "heat2d" and info["structure"] == {"extensive": [1], "intensive": [0]}
    assert "per_step" not in info["metrics"]["validation"] and "loading" not in info
    old = {k: v for k, v in info.items() if k not in ("exemplar", "data", "structure", "feature_kinds", "target",
                                                      "splits")}
    (tmp_path / "model.json").write_text(json.dumps(old))
    pred, truth, _ = predict_store(tmp_path, heat2d_small["data"], "validation")
    assert pred.shape == (len(truth), 1) and np.array_equal(pred, np.load(tmp_path / "predictions.npz")["validation"])
