"""Laminate studies of paper 'rno' section 4 (homlearn.evaluate.laminate_studies,
homlearn.train.autoencoder): transfer learning from MH (Fig. 3c-f), exponential hardening
(Fig. 6), the auto-encoder of the layers' model variables (Fig. 4a, 6d), and the GRU baseline
rows, on real tiny laminate stores (MH, M3, MH-EH: 20 paths each, 16 train / 4 test, solved on
200 SDIRK3 steps, 20 stored) and tiny networks (f, g 2 x 16; the study functions do not depend
on the size). The rules are checked by a Snakemake dry run of a tiny config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CASES = ("MH", "M3", "MH-EH")
HYPER = {"width": 16, "depth": 2}
TINY = {"lr": 1e-3, "batch_size": 16, "max_epochs": 3, "lbfgs_epochs": 0, "loss": "relative_l2", "device": "cpu",
        "tensorboard": False, "patience": 100000}
AE_TRAIN = {"lr": 1e-3, "batch_size": 4, "max_epochs": 60, "lbfgs_epochs": 10, "schedule": "cosine",
            "device": "cpu", "tensorboard": False, "patience": 100000}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from homlearn.config import validate_config
    from homlearn.datasets.laminate import run_solve_stage

    root = tmp_path_factory.mktemp("laminate_studies")
    cfg = validate_config({"laminate": {"n_trajectories": 20, "batch_size": 20, "path": {"n_steps": 200, "n_out": 20}},
                           "dask": {"progress": False}})
    for case in CASES:
        rep = run_solve_stage(cfg["laminate"], cfg["dask"], case, root / f"laminate_{case}.zarr", 1)
        assert rep.samples_done == 20 and rep.samples_failed == 0
    return root


@pytest.fixture(scope="module")
def rnos(stores, tmp_path_factory):
    """Direct RNOs <case>_k<k> of every case and the ones trained from MH, <case>_from_MH_k<k>,
    k = 1, 2 (3 Adam epochs each: the evaluation only needs them to exist)."""
    from homlearn.train.history import train_history

    models = tmp_path_factory.mktemp("laminate_study_models")
    for k in (1, 2):
        for case in CASES:
            train_history(stores / f"laminate_{case}.zarr", "laminate", models / f"{case}_k{k}", k=k, hyper=HYPER,
                          train_cfg=TINY, progress=False)
        for case in ("M3", "MH-EH"):
            train_history(stores / f"laminate_{case}.zarr", "laminate", models / f"{case}_from_MH_k{k}", k=k,
                          hyper=HYPER, train_cfg=TINY, init=models / f"MH_k{k}", progress=False)
    return models


@pytest.fixture(scope="module")
def autoencoders(stores, tmp_path_factory):
    """Auto-encoders of MH's six model variables with latent sizes 1, 2, 3 (60 Adam + 10
    L-BFGS epochs on 320 training points)."""
    from homlearn.train.autoencoder import train_autoencoder

    models = tmp_path_factory.mktemp("ae_models")
    infos = {m: train_autoencoder(stores / "laminate_MH.zarr", models / f"MH_m{m}", latent=m, train_cfg=AE_TRAIN,
                                  progress=False) for m in (1, 2, 3)}
    return models, infos


def test_transfer_starts_from_the_source_weights_exactly(stores, rnos, tmp_path):
    """Transfer learning (rno Fig. 3: the MH model is "a starting point"): every weight and
    scaling of the source is copied bit for bit (the target's own scalings are overwritten),
    nothing is frozen; trained with a negligible learning rate (one Adam step of 1e-12), the
    transferred model's test error on M3 equals the source's on M3 to 1e-6 relative; a source of
    another architecture is refused by name."""
    from homlearn.train.history import (build_model, load_history, load_history_data, relative_errors,
                                        train_history, transfer_weights)

    src_dir = rnos / "MH_k2"
    data = load_history_data(stores / "laminate_M3.zarr", "laminate")
    tr, te = data.subset(0), data.subset(1)
    net = build_model("rno", 3, 3, 2, HYPER)
    net.fit_scaling(torch.as_tensor(data.x[tr]), torch.as_tensor(data.y[tr]), torch.as_tensor(np.array(data.t)))
    src = torch.load(src_dir / "best.pt", weights_only=False)["model"]
    assert not torch.equal(net.y_scale, src["y_scale"])  # M3's stresses are not MH's
    transfer_weights(net, src_dir)
    state = net.state_dict()
    assert state.keys() == src.keys() and all(torch.equal(state[k], src[k]) for k in src)
    assert all(p.requires_grad for p in net.parameters())

    info = train_history(stores / "laminate_M3.zarr", "laminate", tmp_path / "M3_from_MH", k=2, hyper=HYPER,
                         train_cfg={**TINY, "lr": 1e-12, "max_epochs": 1}, init=src_dir, progress=False)
    source_model, _ = load_history(src_dir)
    e_src = float(relative_errors(source_model, data.x[te], data.y[te], data.t).mean())
    assert info["init"] == str(src_dir)
    assert abs(info["metrics"]["test"]["relative_l2"] - e_src) <= 1e-6 * e_src, (info["metrics"], e_src)
    with pytest.raises(ValueError, match="does not match this model's architecture"):
        transfer_weights(build_model("rno", 3, 3, 1, HYPER), src_dir)


def test_a_retrained_transfer_source_restarts_the_transfer_run(stores, rnos, tmp_path):
    """The transfer run is named by the source's weights, not its directory: after the source's
    best.pt changes (here replaced by another trained model of the same architecture), the same
    command starts again from the new weights (test error equal to the new source's on M3 to 1e-6
    after one step of 1e-12) instead of resuming the old run; unchanged, it resumes (same run id)."""
    import shutil

    from homlearn.train.history import load_history, load_history_data, relative_errors, train_history

    src, out = tmp_path / "source", tmp_path / "M3_from_source"
    shutil.copytree(rnos / "MH_k2", src)
    cfg = dict(k=2, hyper=HYPER, train_cfg={**TINY, "lr": 1e-12, "max_epochs": 1}, init=src, progress=False)
    first = train_history(stores / "laminate_M3.zarr", "laminate", out, **cfg)
    shutil.copy(rnos / "M3_k2" / "best.pt", src / "best.pt")            # the source was retrained
    second = train_history(stores / "laminate_M3.zarr", "laminate", out, **cfg)
    assert second["run_id"] != first["run_id"] and second["init_fingerprint"] != first["init_fingerprint"]
    data = load_history_data(stores / "laminate_M3.zarr", "laminate")
    e_new = float(relative_errors(load_history(rnos / "M3_k2")[0], data.x[data.subset(1)], data.y[data.subset(1)],
                                  data.t).mean())
    assert abs(second["metrics"]["test"]["relative_l2"] - e_new) <= 1e-6 * e_new, (second["metrics"], e_new)
    third = train_history(stores / "laminate_M3.zarr", "laminate", out, **cfg)
    assert third["run_id"] == second["run_id"] and third["training"]["epochs"] == second["training"]["epochs"]


def test_training_on_mirrored_paths(stores, tmp_path):
    """The mirrored copies join the training set (twice the paths, recorded in model.json, a run
    id of its own so a plain checkpoint is never resumed), the metrics stay on the stored paths,
    and 'diagonal' is refused for M3 before anything is trained."""
    from homlearn.train.history import train_history

    store, one = stores / "laminate_M3.zarr", {**TINY, "max_epochs": 1}
    plain = train_history(store, "laminate", tmp_path / "plain", k=1, hyper=HYPER, train_cfg=one, progress=False)
    mirrored = train_history(store, "laminate", tmp_path / "mirror", k=1, hyper=HYPER, train_cfg=one,
                             symmetries=["mirror"], progress=False)
    n_train = plain["metrics"]["train"]["n"]
    assert plain["symmetries"] == [] and plain["n_train_paths"] == n_train == 16
    assert mirrored["symmetries"] == ["mirror"] and mirrored["n_train_paths"] == 2 * n_train
    assert mirrored["metrics"]["train"]["n"] == n_train and mirrored["run_id"] != plain["run_id"]
    saved = json.loads((tmp_path / "mirror" / "model.json").read_text())
    assert saved["symmetries"] == ["mirror"]
    with pytest.raises(ValueError, match="'diagonal'.*'M3'"):
        train_history(store, "laminate", tmp_path / "diag", k=1, hyper=HYPER, train_cfg=one,
                      symmetries=["diagonal"], progress=False)
    assert not (tmp_path / "diag").exists()
    info = train_history(stores / "laminate_MH.zarr", "laminate", tmp_path / "mh", k=1, hyper=HYPER, train_cfg=one,
                         symmetries=["mirror", "diagonal"], progress=False)
    assert info["n_train_paths"] == 4 * n_train


def test_model_variables_and_their_linear_dimension(stores):
    """The store's model variables (rno section 4): 6 plastic strains without hardening, and the
    two accumulated plastic strains q with it (8). Equal layers (MH, MH-EH) have equal states, so
    the points lie in a linear subspace of dimension 3 (4 with q): the PCA of that size
    reconstructs the test points to round-off (eq. 25 < 1e-10), one size less does not (> 1%)."""
    from homlearn.train.autoencoder import load_model_variables, pca_reconstruction, reconstruction_errors

    for case, n, dim in (("MH", 6, 3), ("MH-EH", 8, 4)):
        d = load_model_variables(stores / f"laminate_{case}.zarr")
        assert d.x.shape == (20, 20, n) and len(d.names) == n and d.names[2] == "eps_p12+"
        np.testing.assert_allclose(d.x[..., :3], d.x[..., 3:6], rtol=0, atol=1e-12)  # eps_p+ = eps_p-
        if n == 8:
            assert d.names[6:] == ["q+", "q-"] and np.all(np.diff(d.x[..., 6], axis=1) >= 0)
        tr, te = d.points(0), d.points(1)
        assert len(tr) == 16 * 20 and len(te) == 4 * 20
        exact = reconstruction_errors(te, pca_reconstruction(tr, te, dim))
        short = reconstruction_errors(te, pca_reconstruction(tr, te, dim - 1))
        assert exact["eq25"] < 1e-10 and exact["relative_l2"] < 1e-10, exact
        assert short["eq25"] > 0.01, short
    assert load_model_variables(stores / "laminate_M3.zarr").hardening == "none"


def test_autoencoder_error_falls_with_latent_size_to_the_manifold(autoencoders):
    """Auto-encoder (one SELU layer of 50 each side, rno section 4.1) of MH's six model variables:
    the test error (eq. 25) falls with the latent size, and at the data's dimension (3) it is
    below 10% (measured 4%; the PCA is exact there) while one latent variable leaves > 30%."""
    models, infos = autoencoders
    err = {m: infos[m]["metrics"]["test"]["eq25"] for m in infos}
    print("auto-encoder MH, eq. 25:", err, "PCA:", {m: infos[m]["metrics"]["pca_test"]["eq25"] for m in infos})
    assert err[1] > err[2] > err[3]
    assert err[3] < 0.1 and err[1] > 0.3
    assert infos[3]["metrics"]["pca_test"]["eq25"] < 1e-10
    info = infos[3]
    assert info["variables"][:3] == ["eps_p11+", "eps_p22+", "eps_p12+"] and info["hardening"] == "none"
    assert info["n_parameters"] == (6 * 50 + 50 + 50 * 3 + 3) + (3 * 50 + 50 + 50 * 6 + 6)
    assert info["training"]["adam_epochs"] == 60 and info["training"]["lbfgs_epochs"] == 10
    assert json.loads((models / "MH_m3" / "model.json").read_text()) == info


def test_studies_write_tables_figures_and_summary(stores, rnos, autoencoders, tmp_path):
    """Transfer (Fig. 3a, 3c-f), hardening (Fig. 6a-c) and auto-encoder (Fig. 4a-b, 6d)
    evaluations: every figure written, one row per (case, k, training), the source model's error
    before training recomputed independently (1e-6 relative), and their summary rows."""
    from homlearn.evaluate.history import write_summary
    from homlearn.evaluate.laminate_studies import FIGURES, evaluate_autoencoders, evaluate_transfer
    from homlearn.train.history import load_history, load_history_data, relative_errors

    ae_models, _ = autoencoders
    t = evaluate_transfer(stores, rnos, tmp_path / "transfer", "MH", ["M3"], [1, 2])
    h = evaluate_transfer(stores, rnos, tmp_path / "hardening", "MH", ["MH-EH"], [1, 2], study="hardening",
                          example_case="MH-EH")
    a = evaluate_autoencoders(stores, ae_models, tmp_path / "autoencoder", ["MH"], [1, 2, 3, 7], "MH", 3)
    for study, m in (("transfer", t), ("hardening", h), ("autoencoder", a)):
        for name in FIGURES[study]:
            assert (tmp_path / study / f"{name}.png").stat().st_size > 1000, (study, name)
        assert json.loads((tmp_path / study / "metrics.json").read_text()) == m
    assert [(r["case"], r["k"], r["training"]) for r in t["rows"]] == [
        ("MH", 1, "direct"), ("MH", 2, "direct"), ("M3", 1, "direct"), ("M3", 2, "direct"),
        ("M3", 1, "transfer"), ("M3", 2, "transfer")]
    row = t["rows"][-1]
    src, _ = load_history(rnos / "MH_k2")
    data = load_history_data(stores / "laminate_M3.zarr", "laminate")
    te = data.subset(1)
    e = float(relative_errors(src, data.x[te], data.y[te], data.t).mean())
    assert abs(row["source_on_test_relative_l2"] - e) <= 1e-6 * e
    assert row["test_relative_l2"] == json.loads((rnos / "M3_from_MH_k2" / "model.json").read_text())[
        "metrics"]["test"]["relative_l2"]
    assert [r["latent"] for r in a["rows"]] == [1, 2, 3]  # 7 > 6 variables: skipped
    text = write_summary(tmp_path / "summary.md", [tmp_path / s / "metrics.json"
                                                   for s in ("transfer", "hardening", "autoencoder")])
    assert "laminate M3 <- MH vs direct (Fig. 3c-f)" in text and "laminate MH-EH <- MH vs direct (Fig. 6a-b)" in text
    assert "auto-encoder of the 6 model variables" in text and text.count("\n| laminate") == 3


def test_gru_baseline_has_the_rno_size_and_joins_the_table(stores, rnos, tmp_path):
    """GRU baseline (rno.laminate.baseline): the hidden width whose parameter count is closest to
    the RNO with k = match_k (within 5% here), rebuilt by load_history, a row in the laminate
    table (k empty) and in the summary."""
    from homlearn.evaluate.history import component_errors, evaluate_laminate, write_summary
    from homlearn.models.sequence import sequence_parameter_count
    from homlearn.train.history import load_history, load_history_data, relative_errors, train_history

    out = rnos / "gru_M3"
    info = train_history(stores / "laminate_M3.zarr", "laminate", out, model="gru",
                         hyper={**HYPER, "match_k": 2, "n_layers": 1}, train_cfg=TINY, progress=False)
    h = info["hyperparameters"]
    n_rno = sum(p.numel() for p in load_history(rnos / "M3_k2")[0].parameters())
    assert h["rno_parameters"] == n_rno and h["n_layers"] == 1
    assert info["n_parameters"] == sequence_parameter_count(3, 3, h["hidden"], 1, "gru")
    assert abs(info["n_parameters"] - n_rno) <= 0.05 * n_rno, (info["n_parameters"], n_rno)
    assert abs(sequence_parameter_count(3, 3, h["hidden"] + 1, 1) - n_rno) >= abs(info["n_parameters"] - n_rno)
    model, _ = load_history(out)
    assert model.rnn.hidden_size == h["hidden"]
    m = evaluate_laminate(stores, rnos, tmp_path, ["M3"], [1, 2], baselines=["gru"])
    assert [r["model"] for r in m["baselines"]] == ["gru"] and m["baselines"][0]["k"] == ""
    assert all(m["error_vs_k"][-1][f"test_relative_l2_{c}"] > 0 for c in ("11", "22", "12"))
    # on one path, eq. 16 over the three components is a weighted mean of the per-component errors
    data = load_history_data(stores / "laminate_M3.zarr", "laminate")
    rno, j = load_history(rnos / "M3_k2")[0], data.subset(1)[:1]
    comps = list(component_errors(rno, data.x[j], data.y[j], data.t).values())
    whole = float(relative_errors(rno, data.x[j], data.y[j], data.t)[0])
    assert min(comps) * (1 - 1e-5) <= whole <= max(comps) * (1 + 1e-5), (whole, comps)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(lines) == 6 and lines[-1].startswith("gru,M3,,") and "rno_parameters" in lines[0]
    assert [r["model"] for r in m["classical"]] == ["exact_be", "exact_sdirk3"]
    text = write_summary(tmp_path / "summary.md", [tmp_path / "metrics.json"])
    assert f"laminate M3, GRU baseline ({info['n_parameters']} parameters" in text
    assert "k=2 per component: 11:" in text
    assert "laminate M3, the laminate's own law (eq. 17-24) integrated at the RNO's 20 steps by backward Euler" in text
    # the default amplitude (|eps| <= 33%: F_max = 0.33 / sqrt(10 intervals x 1 s)) is not labelled;
    # another one (F_max = 0.33, the reading before session 11) is
    assert m["path_max_strain"] == pytest.approx(0.33) and m["path_max_value"] == pytest.approx(0.33 / 10 ** 0.5)
    (tmp_path / "rough.json").write_text(json.dumps({**m, "path_max_value": 0.33, "path_max_strain": 0.33 * 10 ** 0.5}))
    rough = write_summary(tmp_path / "s2.md", [tmp_path / "rough.json"])
    assert "| laminate (paths max strain 1.04) M3, error vs k" in rough and "| laminate M3, error" not in rough


def test_laminate_law_at_the_stored_step_is_the_classical_reference(stores, tmp_path):
    """The laminate's own law integrated at the RNO's step (evaluate.history.laminate_law_rows).
    On a store solved by backward Euler on the stored grid itself (n_steps = n_out), with
    exponential hardening of a non-default modulus, its backward-Euler row reproduces the stored
    stress to 1e-9 (so case, hardening and grid are read from the store). On the tiny SDIRK3
    store (200 solver steps, 20 stored), SDIRK3 at the stored step is closer than backward Euler
    (order 3 against 1) and neither is exact (> 0.1%)."""
    from homlearn.config import validate_config
    from homlearn.datasets.laminate import run_solve_stage
    from homlearn.evaluate.history import laminate_law_rows
    from homlearn.train.history import load_history_data

    cfg = validate_config({"laminate": {"n_trajectories": 6, "batch_size": 6, "method": "be",
                                        "hardening_modulus": 2500.0, "path": {"n_steps": 20, "n_out": 20}},
                           "dask": {"progress": False}})
    store = tmp_path / "laminate_MH-EH.zarr"
    assert run_solve_stage(cfg["laminate"], cfg["dask"], "MH-EH", store, 1).samples_done == 6
    data = load_history_data(store, "laminate")
    be = laminate_law_rows(store, "MH-EH", data.x, data.y, data.t)[0]
    assert be["model"] == "exact_be" and be["steps"] == 20 and be["failed"] == 0
    assert be["test_relative_l2"] < 1e-6, be  # float32 strain in, float64 solve
    data = load_history_data(stores / "laminate_M3.zarr", "laminate")
    te = data.subset(1)
    be, sd = laminate_law_rows(stores / "laminate_M3.zarr", "M3", data.x[te], data.y[te], data.t)
    assert 1e-3 < sd["test_relative_l2"] < be["test_relative_l2"], (sd, be)


def test_bad_study_config_is_refused_with_its_key():
    from homlearn.config import ConfigError, validate_config

    with pytest.raises(ConfigError, match="rno.laminate.transfer.cases' must not contain its source 'MH'"):
        validate_config({"rno": {"laminate": {"transfer": {"cases": ["MH", "M3"]}}}})
    with pytest.raises(ConfigError, match="rno.laminate.hardening.source"):
        validate_config({"rno": {"laminate": {"hardening": {"source": "M3-EH"}}}})  # a no-hardening case
    with pytest.raises(ConfigError, match="rno.laminate.autoencoder.latent"):
        validate_config({"rno": {"laminate": {"autoencoder": {"latent": [0, 3]}}}})
    with pytest.raises(ConfigError, match="rno.composite1d.baseline.models"):
        validate_config({"rno": {"composite1d": {"baseline": {"models": ["transformer"]}}}})


def test_snakemake_plans_the_studies(tmp_path):
    """Dry run of rno_laminate_studies and the baselines on a tiny config: transferred RNOs start
    from the source's directory of the same k, auto-encoder latent sizes beyond a case's
    variables are skipped, and the training jobs get only their own config keys (rerun triggers:
    a change of the auto-encoder's settings cannot retrain an RNO)."""
    cfg = {"results": str(tmp_path / "results"),
           "laminate": {"cases": ["MH", "M3", "M3-EH"], "n_trajectories": 4, "batch_size": 4,
                        "path": {"n_steps": 100, "n_out": 20}},
           "rno": {"composite1d": {"segments": [1], "k": [1], "resolution": {"segments": 1, "k": 1}},
                   "laminate": {"cases": ["MH", "M3"], "k": [2], "transfer": {"cases": ["M3"], "k": [2, 3]},
                                "hardening": {"cases": ["M3-EH"], "k": [3]},
                                "autoencoder": {"cases": ["M3", "M3-EH"], "latent": [3, 7, 8]},
                                "augmented": {"cases": ["M3"], "k": [2], "train": {"max_epochs": 7}}}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "-m", "snakemake", "rno_laminate_studies", "rno_laminate", "rno_composite1d",
                          "rno_laminate_augmented", "rno_all", "-n", "-p", "--cores", "1", "--configfile", str(path)],
                         cwd=ROOT, capture_output=True, text=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    models = f"{tmp_path}/results/rno/laminate/models"
    for case, k in (("M3", 2), ("M3", 3), ("M3-EH", 3)):
        assert f"{models}/{case}_from_MH_k{k} --k {k} --init {models}/MH_k{k} " in out, case
    for job, count in (("rno_laminate_transfer_train", 3), ("rno_laminate_train", 5),
                       ("rno_laminate_autoencoder_train", 4), ("rno_laminate_baseline_train", 2),
                       ("rno_composite1d_baseline_train", 1), ("rno_laminate_augmented_train", 1)):
        assert any(line.split() == [job, str(count)] for line in out.splitlines()), (job, out[-2500:])
    assert "autoencoder/models/M3_m7" not in out and "autoencoder/models/M3-EH_m7" in out

    # rerun triggers (params): an RNO's training sees no study keys, an auto-encoder's no RNO keys
    rno_jobs = [line for line in out.splitlines() if "history train laminate" in line]
    ae_jobs = [line for line in out.splitlines() if "history autoencoder-train" in line]
    assert len(rno_jobs) == 11 and len(ae_jobs) == 4
    assert not any(word in line.split("--config-json")[1].split(" > ")[0] for line in rno_jobs
                   for word in ("autoencoder", "transfer", "hardening", "augmented", "cases"))
    # the augmented study trains on mirrored paths with its own recipe in its own directory, and
    # joins the summary; no other model sees its symmetries
    aug = [line for line in rno_jobs if "/augmented/models/M3_k2 " in line]
    assert len(aug) == 1 and '"symmetries": ["mirror"]' in aug[0] and '"max_epochs": 7' in aug[0], aug
    assert not any("symmetries" in line for line in rno_jobs if line not in aug)
    summary = next(line for line in out.splitlines() if "history summary" in line)
    assert "rno/laminate/augmented/metrics.json" in summary
    assert all('"width": 50' in line and '"k"' not in line and "baseline" not in line for line in ae_jobs)
