"""The shared training stack (homlearn.train) on real small data: a composite1d store (exact
reduction, paper rno section 3) and a small recurrent model of stress from strain history."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from homlearn.config import ConfigError, validate_config
from homlearn.data.lazy import ZarrSamples
from homlearn.train.batches import collate_tensors
from homlearn.train.logs import read_history
from homlearn.train.losses import relative_l2
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import evaluate_loss, predict, train


@pytest.fixture(scope="module")
def c1d(tmp_path_factory):
    """16 strain paths through 1- and 2-segment composites, stored in chunks of 4 samples."""
    import xarray as xr

    from homlearn.datasets.composite1d import run_solve_stage

    root = tmp_path_factory.mktemp("c1d_train")
    cfg = validate_config({"composite1d": {"segments": [1, 2], "paths_per_n": 8, "batch_size": 4,
                                           "path": {"n_steps": 100, "n_out": 20}, "store_fine": False},
                           "dask": {"progress": False}})
    rep = run_solve_stage(cfg["composite1d"], cfg["dask"], root / "c1d.zarr", 1)
    assert rep.samples_done == 16
    split = xr.open_zarr(root / "c1d.zarr")["split"].values
    return {"store": root / "c1d.zarr", "train": np.flatnonzero(split == 0), "val": np.flatnonzero(split != 0)}


def in_memory(store, ids) -> list[dict]:
    """The samples read eagerly (whole store into memory), independent of ZarrSamples."""
    import xarray as xr

    ds = xr.open_zarr(store).load()
    strain, stress = ds["strain"].values.astype(np.float32), ds["stress"].values.astype(np.float32)
    return [{"x": strain[i], "y": stress[i]} for i in ids]


class StressGRU(torch.nn.Module):
    """Stress history from strain history (B, T); dropout exercises the RNG state on resume."""

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.gru = torch.nn.GRU(1, hidden, batch_first=True)
        self.drop = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        h, _ = self.gru(x.unsqueeze(-1))
        return self.head(self.drop(h)).squeeze(-1)


class Echo(torch.nn.Module):
    def forward(self, x):
        return x


def fresh(seed: int = 0) -> StressGRU:
    torch.manual_seed(seed)
    return StressGRU()


def settings(**kw) -> TrainSettings:
    base = dict(lr=1e-2, batch_size=4, max_epochs=6, patience=100, seed=1, device="cpu",
                schedule="cosine", loss="relative_l2", weight_decay=1e-4)
    return TrainSettings(**{**base, **kw})


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_resume_after_kill_gives_bit_identical_weights(c1d, tmp_path):
    tr, va = in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"])
    s = settings()
    full = fresh()
    done = train(full, tr, va, collate_tensors, s, tmp_path / "full", progress=False, run_id="r")
    assert done["finished"] and done["epochs"] == 6
    part = tmp_path / "part"
    first = train(fresh(), tr, va, collate_tensors, s, part, progress=False, run_id="r", stop_after_epochs=2)
    assert not first["finished"] and first["epochs"] == 2
    # each call stands for a new process: fresh (even differently initialised) weights, then last.pt
    second = train(fresh(7), tr, va, collate_tensors, s, part, progress=False, run_id="r", stop_after_epochs=3)
    assert second["epochs"] == 5
    resumed = fresh(8)
    third = train(resumed, tr, va, collate_tensors, s, part, progress=False, run_id="r")
    assert third["finished"] and third["epochs"] == 6
    for name in ("last.pt", "best.pt"):
        assert_same_weights(torch.load(tmp_path / "full" / name, weights_only=False)["model"],
                            torch.load(part / name, weights_only=False)["model"])
    assert_same_weights(full.state_dict(), resumed.state_dict())  # both end on the best weights
    h_full, h_part = read_history(tmp_path / "full" / "history.csv"), read_history(part / "history.csv")
    for key in ("epoch", "train_loss", "val_loss", "lr"):
        assert [r[key] for r in h_full] == [r[key] for r in h_part]


def test_checkpoint_of_another_run_is_replaced(c1d, tmp_path):
    tr, va = in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"])
    train(fresh(), tr, va, collate_tensors, settings(), tmp_path, progress=False, run_id="a", stop_after_epochs=4)
    out = train(fresh(), tr, va, collate_tensors, settings(max_epochs=3), tmp_path, progress=False, run_id="b")
    assert out["finished"] and out["epochs"] == 3 and len(read_history(tmp_path / "history.csv")) == 3


def test_cosine_schedule_matches_the_closed_form(c1d, tmp_path):
    """lr of epoch e (1-based) = lr0 (1 + cos(pi (e - 1) / max_epochs)) / 2 (SGDR, eta_min = 0)."""
    tr, va = in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"])
    s = settings(max_epochs=8, lr=3e-3)
    train(fresh(), tr, va, collate_tensors, s, tmp_path, progress=False)
    lrs = [r["lr"] for r in read_history(tmp_path / "history.csv")]
    expected = [3e-3 * (1 + math.cos(math.pi * (e - 1) / 8)) / 2 for e in range(1, 9)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-18)
    train(fresh(), tr, va, collate_tensors, settings(max_epochs=3, schedule="none"), tmp_path / "const",
          progress=False)
    assert [r["lr"] for r in read_history(tmp_path / "const" / "history.csv")] == [1e-2] * 3


def test_relative_l2_loss_on_a_known_case():
    y = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    pred = torch.tensor([[0.0, 4.0], [0.0, 1.0]])
    # sample 1: ||(-3, 0)|| / ||(3, 4)|| = 3/5; sample 2: ||(0, -1)|| / ||(0, 2)|| = 1/2
    assert relative_l2(pred, y).item() == pytest.approx(0.55, rel=1e-7)
    assert relative_l2(pred[..., None], y[..., None]).item() == pytest.approx(0.55, rel=1e-7)  # (B, T, C)
    samples = [{"x": p.numpy(), "y": t.numpy()} for p, t in zip(pred, y)]  # identity model: pred = x
    for bs in (1, 2):  # dataset loss is per sample, not per batch
        assert evaluate_loss(Echo(), samples, collate_tensors, bs, "cpu", "relative_l2") == \
            pytest.approx(0.55, rel=1e-7)
    assert evaluate_loss(Echo(), samples, collate_tensors, 2, "cpu", "mse") == pytest.approx(10 / 4)


def test_per_component_relative_l2_on_a_known_case():
    """relative_l2_components: eq. 16 of each component alone, averaged; a component 100x smaller
    counts as much as the large one (whole-history eq. 16 would hardly see it)."""
    from homlearn.train.losses import relative_l2_components

    y = torch.tensor([[[3.0, 0.03], [4.0, 0.04]]])       # (B=1, T=2, c=2)
    pred = torch.tensor([[[3.0, 0.0], [4.0, 0.04]]])     # component 2 off by 3/5 of its norm
    assert relative_l2_components(pred, y).item() == pytest.approx((0.0 + 0.6) / 2, rel=1e-6)
    assert relative_l2(pred, y).item() == pytest.approx(0.03 / math.hypot(5.0, 0.05), rel=1e-6)
    with pytest.raises(ValueError, match="B, T, c"):
        relative_l2_components(pred[0], y[0])


def test_history_trainer_uses_the_configured_loss(c1d, tmp_path):
    """train.loss of an rno section reaches the trainer (eq. 16 is the default): the first epoch's
    training loss differs between relative_l2 and mse, and the model record says which was used."""
    from homlearn.train.history import train_history

    cfg = {"lr": 1e-3, "batch_size": 8, "max_epochs": 1, "lbfgs_epochs": 0, "device": "cpu",
           "tensorboard": False}
    first = {}
    for loss in ("relative_l2", "mse"):
        info = train_history(c1d["store"], "composite1d", tmp_path / loss, model="rno", k=1, group=1,
                             hyper={"width": 8, "depth": 2}, train_cfg={**cfg, "loss": loss}, progress=False)
        assert info["train"]["loss"] == loss
        first[loss] = read_history(tmp_path / loss / "history.csv")[0]["train_loss"]
    info = train_history(c1d["store"], "composite1d", tmp_path / "default", model="rno", k=1, group=1,
                         hyper={"width": 8, "depth": 2}, train_cfg=cfg, progress=False)
    assert info["train"]["loss"] == "relative_l2"
    assert read_history(tmp_path / "default" / "history.csv")[0]["train_loss"] == first["relative_l2"]
    assert first["mse"] != pytest.approx(first["relative_l2"], rel=1e-3)


def test_lazy_zarr_dataset_trains_like_in_memory_samples(c1d, tmp_path):
    lazy_tr = ZarrSamples(c1d["store"], {"x": "strain", "y": "stress"}, index=c1d["train"])
    lazy_va = ZarrSamples(c1d["store"], {"x": "strain", "y": "stress"}, index=c1d["val"])
    mem_tr, mem_va = in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"])
    assert len(lazy_tr) == len(mem_tr)
    for a, b in zip(lazy_tr.load(), mem_tr):
        np.testing.assert_array_equal(a["x"], b["x"])
        np.testing.assert_array_equal(a["y"], b["y"])
    got = lazy_tr.__getitems__([3, 0, 3])  # batched read: order and repeats kept
    np.testing.assert_array_equal(got[0]["y"], mem_tr[3]["y"])
    np.testing.assert_array_equal(got[1]["y"], mem_tr[0]["y"])
    s = settings(max_epochs=4)
    a, b = fresh(), fresh()
    train(a, lazy_tr, lazy_va, collate_tensors, s, tmp_path / "lazy", progress=False)
    train(b, mem_tr, mem_va, collate_tensors, s, tmp_path / "mem", progress=False)
    assert_same_weights(a.state_dict(), b.state_dict())
    assert read_history(tmp_path / "lazy" / "history.csv")[-1]["val_loss"] == \
        read_history(tmp_path / "mem" / "history.csv")[-1]["val_loss"]
    np.testing.assert_array_equal(predict(a, lazy_va), predict(b, mem_va))
    # a torch DataLoader reads it too (batched fetch through __getitems__)
    loader = torch.utils.data.DataLoader(lazy_tr, batch_size=4, collate_fn=collate_tensors)
    first = next(iter(loader))
    assert first["x"].shape == (4, 21) and first["x"].dtype == torch.float32


def test_cpu_ignores_bf16_and_compile_with_a_note(c1d, tmp_path):
    tr, va = in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"])
    a, b = fresh(), fresh()
    plain = train(a, tr, va, collate_tensors, settings(max_epochs=2), tmp_path / "a", progress=False)
    fancy = train(b, tr, va, collate_tensors, settings(max_epochs=2, amp_bf16=True, compile=True),
                  tmp_path / "b", progress=False)
    assert plain["notes"] == [] and len(fancy["notes"]) == 2
    assert "amp_bf16" in fancy["notes"][0] and "compile" in fancy["notes"][1]
    assert_same_weights(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("patch, needle", [
    ({"learning_rate": 0.01}, "learning_rate"),
    ({"schedule": "linear"}, "train.schedule"),
    ({"loss": "l1"}, "train.loss"),
    ({"weight_decay": -1.0}, "train.weight_decay"),
    ({"amp_bf16": "yes"}, "train.amp_bf16"),
])
def test_wrong_training_key_is_refused_with_its_name(patch, needle):
    with pytest.raises(ConfigError) as err:
        validate_config({"heat2d": {"train": copy.deepcopy(patch)}})
    assert needle in str(err.value)
    with pytest.raises(ConfigError) as err:  # the same check for direct use of the trainer
        TrainSettings.from_config(patch)
    assert needle in str(err.value)


def test_training_defaults_are_the_schema_defaults_and_heat2d_paper_values():
    cfg = validate_config({"heat2d": {"train": {"schedule": "cosine", "loss": "relative_l2", "compile": True}}})
    assert cfg["heat2d"]["train"]["schedule"] == "cosine"
    default = validate_config({})["heat2d"]["train"]
    assert TrainSettings.from_config(default) == TrainSettings() == TrainSettings.from_config({})
    assert (default["lr"], default["loss"], default["schedule"], default["patience"]) == (1e-3, "mse", "none", 100)


def test_model_record_has_config_fingerprint_and_metrics(c1d, tmp_path):
    import json

    import xarray as xr

    from homlearn.train.record import fingerprint, run_id, save_model_record, store_fingerprint

    ds = xr.open_zarr(c1d["store"])
    fp = store_fingerprint(ds, ["strain", "stress"], c1d["train"])
    assert fp == fingerprint([ds["strain"].values[c1d["train"]], ds["stress"].values[c1d["train"]]])
    assert fp != store_fingerprint(ds, ["strain", "stress"], c1d["val"])
    s = settings(max_epochs=2)
    rid = run_id("gru", {"hidden": 8}, s.run_key(), fp)
    model = fresh()
    summary = train(model, in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"]),
                    collate_tensors, s, tmp_path, progress=False, run_id=rid)
    info = save_model_record(tmp_path, model="gru", hyperparameters={"hidden": 8}, train=s.to_dict(),
                             dataset=str(c1d["store"]), dataset_fingerprint=fp, run_id=rid,
                             n_parameters=sum(p.numel() for p in model.parameters()), training=summary,
                             metrics={"validation": {"relative_l2": summary["best_val_loss"]}})
    assert json.loads((tmp_path / "model.json").read_text()) == info
    assert info["dataset_fingerprint"] == fp and info["train"]["schedule"] == "cosine"
    assert info["training"]["epochs"] == 2 and info["training"]["finished"]


def test_heat2d_gcnn_trains_on_the_shared_stack_and_loads_back(heat2d_small, tmp_path):
    """heat2d keeps the paper defaults (Adam 1e-3, MSE, no schedule) and its model.json fields."""
    import json

    from homlearn.data.graphs import load_heat2d_graphs
    from homlearn.models.gcnn import collate_graphs
    from homlearn.train.gcnn import load_gcnn, regression_metrics, train_gcnn

    hyper = {"n_filters": 4, "n_conv": 2, "n_dense": 2, "hidden": 8}
    cfg = {"batch_size": 16, "max_epochs": 3, "device": "cpu"}
    info = train_gcnn(heat2d_small["data"], "fgcnn", hyper, cfg, tmp_path, progress=False)
    assert json.loads((tmp_path / "model.json").read_text()) == info
    assert (info["train"]["lr"], info["train"]["loss"], info["train"]["schedule"], info["train"]["patience"]) == \
        (1e-3, "mse", "none", 100)
    assert len(info["dataset_fingerprint"]) == 64 and info["training"]["epochs"] == 3
    assert {"train", "test", "validation"} <= set(info["metrics"]) and info["x_scaler"] and info["features"]
    model, xs, ys, loaded = load_gcnn(tmp_path)
    data = load_heat2d_graphs(heat2d_small["data"])
    ids = data.subset(1)
    pred = ys.inverse(predict(model, data.samples(ids, xs, ys), collate_graphs))[:, 0]
    assert regression_metrics(data.y[ids, 0], pred) == pytest.approx(info["metrics"]["test"])


def test_more_lbfgs_epochs_carry_the_shorter_run_on(c1d, tmp_path):
    """Raising train.lbfgs_epochs carries on the checkpoint of the same run with fewer L-BFGS
    epochs (finished, or killed inside its L-BFGS phase) to the same weights, bit for bit, as the
    longer run from the start; lowering it retrains (the longer run is not the shorter one)."""
    from homlearn.train.record import run_id, run_ids

    tr, va = in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"])

    def run(lbfgs, out, seed=0, stop=None):
        s = settings(max_epochs=2, lbfgs_epochs=lbfgs, lbfgs_max_iter=3, schedule="none")
        rid, shorter = run_ids(s, lambda key: run_id("gru", key))
        assert len(shorter) == lbfgs and rid not in shorter
        return train(fresh(seed), tr, va, collate_tensors, s, tmp_path / out, progress=False, run_id=rid,
                     extends=shorter, stop_after_epochs=stop)

    assert run(4, "full")["finished"]
    assert run(2, "finished")["finished"]
    assert not run(3, "killed", stop=3)["finished"]  # 2 Adam + 1 L-BFGS epoch of a 3-epoch run
    for out in ("finished", "killed"):
        done = run(4, out, seed=7)  # another init: only the checkpoint can give the same weights
        assert done["finished"] and (done["adam_epochs"], done["lbfgs_epochs"]) == (2, 4)
        assert len(read_history(tmp_path / out / "history.csv")) == 6
        for name in ("last.pt", "best.pt"):
            assert_same_weights(torch.load(tmp_path / "full" / name, weights_only=False)["model"],
                                torch.load(tmp_path / out / name, weights_only=False)["model"])
    short = run(1, "finished")
    assert (short["adam_epochs"], short["lbfgs_epochs"]) == (2, 1)
    assert len(read_history(tmp_path / "finished" / "history.csv")) == 3


def test_lbfgs_phase_after_adam_resumes_to_the_same_weights(c1d, tmp_path):
    """Adam epochs then full-batch L-BFGS epochs (train.lbfgs_epochs): the training loss drops in
    the L-BFGS phase, and a run killed inside it (and inside the Adam phase) resumes bit for bit."""
    tr, va = in_memory(c1d["store"], c1d["train"]), in_memory(c1d["store"], c1d["val"])
    s = settings(max_epochs=3, lbfgs_epochs=3, lbfgs_max_iter=4, schedule="none")
    full = fresh()
    done = train(full, tr, va, collate_tensors, s, tmp_path / "full", progress=False, run_id="l")
    assert done["finished"] and (done["adam_epochs"], done["lbfgs_epochs"], done["epochs"]) == (3, 3, 6)
    hist = read_history(tmp_path / "full" / "history.csv")
    assert len(hist) == 6 and math.isnan(hist[-1]["lr"]) and hist[-1]["train_loss"] < hist[2]["train_loss"]
    part = tmp_path / "part"
    for seed in (0, 5):  # killed in the Adam phase, then inside the L-BFGS phase (new process: other init)
        out = train(fresh(seed), tr, va, collate_tensors, s, part, progress=False, run_id="l", stop_after_epochs=2)
        assert not out["finished"]
    resumed = fresh(6)
    assert train(resumed, tr, va, collate_tensors, s, part, progress=False, run_id="l")["finished"]
    for name in ("last.pt", "best.pt"):
        assert_same_weights(torch.load(tmp_path / "full" / name, weights_only=False)["model"],
                            torch.load(part / name, weights_only=False)["model"])
