"""Interpretation of the GCNNs and the CNN on cp_grid2d (paper gcnn sections 5, 6.3, Fig. 14-17) and
the Fig. 12b width sweep, on a real tiny cp_grid2d store (FFT crystal plasticity: 16 slices of 8x8
pixels, 6 steps to 0.3%, 8/4/4 train/test/validation) and real tiny trained models (N_features =
N_filters = 3, N_dense = 1, LSTM head, 3 epochs): eq. 19 against numpy, the node -> pixel mapping
against the store, activation fractions against a direct count, eq. 18, the outputs through the CLI,
the sweep table, and a Snakemake dry run of the new targets."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from homlearn.evaluate.gcnn_interpret import activation_fractions, feature_correlation, model_stack, node_images

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("cnn2d", "fgcnn", "rgcnn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The store and one tiny model per architecture (~15 s on one core)."""
    from homlearn.config import validate_config
    from homlearn.datasets.cp_grid import run_solve_stage
    from homlearn.train.gcnn import train_gcnn

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gcnn_interp")
    cfg = validate_config({"cp_grid": {"n_steps": 6, "final_strain": 0.003, "record_strains": [0.002],
                                       "batch_size": 8, "device": "cpu",
                                       "split": {"fractions": [0.5, 0.25, 0.25], "seed": 1},
                                       "grid2d": {"n_samples": 16, "grid": 8}}, "dask": {"progress": False}})
    store = root / "cp_grid2d.zarr"
    assert run_solve_stage(cfg["cp_grid"], cfg["dask"], "2d", store, 1).samples_done == 16
    dirs = {}
    for m in MODELS:
        hyper = {"n_filters": 3, "n_dense": 1, "head": "lstm"} | ({"n_features": 3} if m == "rgcnn" else {})
        train_gcnn(store, m, hyper, {"max_epochs": 3, "batch_size": 4, "device": "cpu", "tensorboard": False,
                                     "lr": 3e-3}, root / m, progress=False)
        dirs[m] = root / m
    return store, dirs


def _validation_batch(store, model_dir):
    from homlearn.data.graphs import load_graphs
    from homlearn.models.gcnn import collate_graphs
    from homlearn.train.gcnn import load_gcnn

    model, xs, ys, _ = load_gcnn(model_dir)
    data = load_graphs(store)
    ids = data.subset("validation")
    return model, collate_graphs(data.samples(ids, xs, ys)), data, ids


def test_correlation_is_eq19_and_a_dead_filter_is_nan():
    """rho against np.corrcoef on random data (1e-12); F_2 = 2 sigma_3 + 1 gives rho = 1 there (1e-12);
    a constant F_a (a filter that is off) gives NaN, not a number."""
    rng = np.random.default_rng(0)
    sigma = rng.normal(size=(20, 5)) + np.linspace(0, 3, 5)
    f = rng.normal(size=(20, 3))
    f[:, 1] = 2 * sigma[:, 2] + 1
    f[:, 2] = 0.7
    rho = feature_correlation(f, sigma)
    assert rho.shape == (3, 5)
    for a in range(2):
        for t in range(5):
            assert abs(rho[a, t] - np.corrcoef(f[:, a], sigma[:, t])[0, 1]) < 1e-12
    assert abs(rho[1, 2] - 1.0) < 1e-12 and np.all(np.isnan(rho[2]))


def test_node_to_pixel_mapping_is_exact(trained):
    """Fed the pixel index, the mesh mapping puts every node on exactly its pixel; fed the cluster
    index, the cluster mapping (S^T) paints each pixel with its own grain of the store (compacted
    voxel_grain + the sample's cluster offset). Exact."""
    store, dirs = trained
    _, batch, data, ids = _validation_batch(store, dirs["fgcnn"])
    grid, n_pix = data.grid, int(np.prod(data.grid))
    img = node_images(torch.arange(batch.n_cells, dtype=torch.float64)[:, None], batch, "mesh", grid)
    assert img.shape == (len(ids), 1, *grid)
    for b in range(len(ids)):
        assert torch.equal(img[b, 0], torch.arange(b * n_pix, (b + 1) * n_pix, dtype=torch.float64).reshape(grid))
    cimg = node_images(torch.arange(batch.n_clusters, dtype=torch.float64)[:, None], batch, "cluster", grid)
    vg = xr.open_zarr(store)["voxel_grain"].values[data.index[ids]]
    offset = 0
    for b in range(len(ids)):
        labels, local = np.unique(vg[b], return_inverse=True)
        assert np.array_equal(cimg[b, 0].numpy(), (local.reshape(grid) + offset).astype(float))
        offset += len(labels)
    assert offset == batch.n_clusters
    with pytest.raises(ValueError, match="one per cluster node"):
        node_images(torch.zeros(batch.n_clusters + 1, 1), batch, "cluster", grid)


def test_stacks_map_nodes_and_inputs_onto_the_store_image(trained):
    """For every model (fed the default cubic tensor): phi images equal the store's grain angles
    painted by voxel_grain (exact);
    mesh-level node rows equal the image pixels in C order and grain-level rows equal the image on
    each of the grain's pixels (exact); the head on F_a reproduces the saved validation predictions
    (rtol 1e-5)."""
    store, dirs = trained
    ds = xr.open_zarr(store)
    for m in MODELS:
        st = model_stack(dirs[m], store)
        vg = ds["voxel_grain"].values[st.index]
        angle = ds["grain_angle"].values[st.index, :, 0]
        assert np.array_equal(st.phi_images, np.take_along_axis(angle, vg.reshape(len(vg), -1), 1)
                              .reshape(vg.shape))            # the angle, whatever the models were fed
        n_pix = vg[0].size
        for layer in st.layers:
            assert layer.nodes.shape[1] == 3 and layer.images.shape == (len(vg), 3, *vg.shape[1:])
            if layer.level == "mesh":
                assert np.array_equal(layer.nodes, layer.images.transpose(0, 2, 3, 1).reshape(-1, 3))
                assert np.array_equal(layer.phi, st.phi_images.reshape(-1))
            else:  # one row per grain, in the order of the samples and of their sorted grain labels
                rows = iter(layer.nodes)
                for s in range(len(vg)):
                    for g in np.unique(vg[s]):
                        r = next(rows)
                        assert np.array_equal(layer.images[s][:, vg[s] == g], np.repeat(r[:, None], (vg[s] == g)
                                                                                       .sum(), 1))
                assert next(rows, None) is None
        saved = np.load(Path(dirs[m]) / "predictions.npz")["validation"]
        assert np.allclose(st.prediction, saved, rtol=1e-5, atol=1e-6 * np.abs(saved).max())
        assert np.array_equal(st.truth, ds["stress"].values[st.index, 1:, 0, 0]) and n_pix == 64


def test_activation_fractions_equal_a_direct_count(trained):
    """fGCNN and rGCNN: fractions in [0, 1] equal to counting (output > 0) in one forward pass of the
    whole validation role (1e-12); every filter of a sample-level count is at least its node count."""
    store, dirs = trained
    for m in ("fgcnn", "rgcnn"):
        model, batch, _, ids = _validation_batch(store, dirs[m])
        with torch.no_grad():
            lv = model.levels(batch)
        direct = [(z, batch.cell_graph) for z in lv["mesh"][1:]] + [(z, batch.cluster_graph) for z in lv["cluster"][1:]]
        rows = activation_fractions(model_stack(dirs[m], store, chunk=3).layers)  # chunks: 3 + 1 samples
        assert len(rows) == 3 * len(direct)
        for k, (z, owner) in enumerate(direct):
            on = (z > 0).numpy()
            for a in range(3):
                r = rows[3 * k + a]
                assert 0.0 <= r["node_fraction"] <= 1.0 and 0.0 <= r["sample_fraction"] <= 1.0
                assert abs(r["node_fraction"] - on[:, a].mean()) < 1e-12
                anyon = [on[owner.numpy() == s, a].any() for s in range(len(ids))]
                assert abs(r["sample_fraction"] - np.mean(anyon)) < 1e-12


def test_pooled_features_are_the_mean_of_the_last_level(trained):
    """Eq. 18: fGCNN F_a = mean over the sample's pixels of the last mesh convolution, rGCNN F_a = mean
    over the sample's grains of the last reduced convolution (1e-6)."""
    store, dirs = trained
    for m, level, owner in (("fgcnn", "mesh", "cell_graph"), ("rgcnn", "cluster", "cluster_graph")):
        model, batch, _, ids = _validation_batch(store, dirs[m])
        with torch.no_grad():
            f = model.global_features(batch)
            last = model.levels(batch)[level][-1]
        idx = getattr(batch, owner)
        mean = torch.stack([last[idx == s].mean(0) for s in range(len(ids))])
        assert f.shape == (len(ids), 3) and torch.allclose(f, mean, atol=1e-6)


def test_interpret_cli_and_sensitivity_sweep(trained, tmp_path):
    """`homlearn gcnn interpret`: metrics.json with eq. 19 per model (3 features x 6 steps, in [-1, 1]
    or null for a dead filter) equal to the correlation recomputed from the saved predictions
    (1e-5), activation.csv with 3 rows per convolution, the figures. `gcnn sensitivity`: one row per
    run with the RMSE its training recorded (exact) and the figure; a badly named run is refused."""
    from homlearn.cli import main

    store, dirs = trained
    out = tmp_path / "interpret"
    assert main(["gcnn", "interpret", str(store), str(out), "--sample", "1"]
                + [f"--model={m}={dirs[m]}" for m in MODELS]) == 0
    met = json.loads((out / "metrics.json").read_text())
    assert met["n_validation"] == 4 and met["sample"]["position"] == 1 and len(met["strain"]) == 6
    ds = xr.open_zarr(store)
    for m in MODELS:
        r = met["models"][m]
        rho = np.array(r["correlation_prediction"], dtype=float)
        assert rho.shape == (3, 6) and np.all(np.isnan(rho) | (np.abs(rho) <= 1 + 1e-12))
        st = model_stack(dirs[m], store)
        saved = np.load(Path(dirs[m]) / "predictions.npz")
        assert np.array_equal(saved["validation_index"], st.index)
        again = feature_correlation(st.features, saved["validation"])
        assert np.allclose(np.nan_to_num(rho, nan=9), np.nan_to_num(again, nan=9), atol=1e-5)
        truth = feature_correlation(st.features, ds["stress"].values[st.index, 1:, 0, 0])
        assert np.allclose(np.nan_to_num(np.array(r["correlation_truth"], float), nan=9), np.nan_to_num(truth, nan=9),
                           atol=1e-9)
    lines = (out / "activation.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * (2 + 2 + 2)  # cnn2d, fgcnn: 2 pixel convolutions; rgcnn: featurization + 1
    for fig in ("fig14_feature_correlation", "fig15_filter_maps", *(f"fig16_17_filters_{m}" for m in MODELS)):
        assert (out / f"{fig}.png").stat().st_size > 10_000

    sens = tmp_path / "sensitivity"
    runs = {"fgcnn_f3_s0": dirs["fgcnn"], "rgcnn_f3_s0": dirs["rgcnn"]}
    assert main(["gcnn", "sensitivity", str(sens)] + [f"--run={k}={v}" for k, v in runs.items()]) == 0
    rows = json.loads((sens / "metrics.json").read_text())["runs"]
    assert [(r["model"], r["n_filters"], r["n_features"], r["n_dense"]) for r in rows] == \
        [("fgcnn", 3, 3, 1), ("rgcnn", 3, 3, 1)]
    for r in rows:
        rec = json.loads((Path(runs[f"{r['model']}_f3_s0"]) / "model.json").read_text())["metrics"]["validation"]
        assert r["rmse"] == rec["rmse"] and r["rmse_final"] == rec["per_step"]["rmse"][-1]
    assert (sens / "fig12b_sensitivity.png").stat().st_size > 10_000 and (sens / "metrics.csv").exists()
    from homlearn.evaluate.sensitivity import evaluate_cp_grid2d_sensitivity

    with pytest.raises(ValueError, match="<model>_f<filters>_s<seed>"):
        evaluate_cp_grid2d_sensitivity({"fgcnn_3_0": dirs["fgcnn"]}, tmp_path / "bad")


def test_snakemake_dry_run_of_the_new_targets(tmp_path):
    """Both targets plan: one sweep model per (fGCNN/rGCNN, width, seed) and one interp_<model> per
    configured model; a bad interpret model is refused naming the key."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "gcnn": {"cp_grid2d": {
        "sensitivity": {"filters": [1, 2, 4], "seeds": [0, 1]}, "interpret": {"models": ["fgcnn", "rgcnn"]}}}}))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "gcnn_cp_grid2d_sensitivity",
                          "gcnn_cp_grid2d_interpret", "--configfile", str(cfg)], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in run.stdout.splitlines()
              if ln.startswith("gcnn_") and len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert counts == {"gcnn_cp_grid2d_sensitivity_train": 12, "gcnn_cp_grid2d_sensitivity": 1,
                      "gcnn_cp_grid2d_interpret_train": 2, "gcnn_cp_grid2d_interpret": 1}
    assert "interp_fgcnn/model.json" in run.stdout and "rgcnn_f4_s1/model.json" in run.stdout
    cfg.write_text(yaml.safe_dump({"results": str(tmp_path / "r"),
                                   "gcnn": {"cp_grid2d": {"interpret": {"models": ["vgcnn"]}}}}))
    bad = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "gcnn_cp_grid2d_interpret",
                          "--configfile", str(cfg)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "gcnn.cp_grid2d.interpret.models" in bad.stdout + bad.stderr
