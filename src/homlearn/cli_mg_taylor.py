"""`homlearn rno_mg_taylor ...`: the steps of the mg_taylor surrogate experiments (paper 'rno'
section 5.2, rules in workflow/rules/surrogates_mg_taylor.smk), registered by :mod:`homlearn.cli`.

    homlearn rno_mg_taylor classical results/datasets/mg_taylor_r10.zarr results/rno/mg_taylor/classical.zarr
    homlearn rno_mg_taylor jc results/rno/mg_taylor/classical.zarr results/rno/mg_taylor/models/jc
    homlearn rno_mg_taylor train results/datasets/mg_taylor_r10.zarr results/rno/mg_taylor/models/rno_k5_n240 --model rno --k 5 --n-train 240
    homlearn rno_mg_taylor evaluate results/datasets/mg_taylor_r10.zarr results/rno/mg_taylor/classical.zarr results/rno/mg_taylor/models results/rno/mg_taylor
    homlearn rno_mg_taylor resolution results/datasets/mg_taylor_r10.zarr results/datasets/mg_taylor_r10_n250.zarr results/rno/mg_taylor/models results/rno/mg_taylor/resolution
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from homlearn.config import ConfigError


def _section(cfg) -> dict:
    mg = cfg["rno"]["mg_taylor"]
    cases = [c["name"] for c in cfg["mg_taylor"]["cases"]]
    if mg["case"] not in cases:
        raise ConfigError(f"config key 'rno.mg_taylor.case': {mg['case']!r} is not one of mg_taylor.cases {cases}")
    return mg


def cmd_classical(args, cfg):
    import torch

    from homlearn.datasets.mg_taylor_classical import solve_classical, write_classical_store

    torch.set_num_threads(args.threads)
    mg = _section(cfg)
    t0 = time.perf_counter()
    res = solve_classical(cfg["mg_taylor"], mg["case"], args.store, mg)
    write_classical_store(args.out, res, {"case": mg["case"], "store": str(args.store)})
    summary = {"store": str(args.out), "seconds": round(time.perf_counter() - t0, 1),
               "calibration_rates": list(map(float, res["calibration"]["rate"])), "paths": res["path_names"],
               "n_theta": int(len(res["theta"]["theta"])), "rotated": list(res["rotated"]["stress"].shape[:2])}
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def cmd_jc(args, cfg):
    from homlearn.train.mg_taylor import fit_jc

    info = fit_jc(args.classical, args.out, _section(cfg)["calibration"])
    print(json.dumps(info, indent=2))
    return 0


def cmd_train(args, cfg):
    import torch

    from homlearn.train.mg_taylor import train_mg_taylor

    torch.set_num_threads(args.threads)
    mg = _section(cfg)
    if args.model in ("rno", "rno_ve"):
        hyper, train_cfg = {"width": mg["width"], "depth": mg["depth"]}, mg["train"]
    else:
        p = mg["pcanet"]
        hyper, train_cfg = {k: p[k] for k in ("r_in", "r_out", "hidden", "scale")}, p["train"]
    hyper["target"] = mg["target"]
    info = train_mg_taylor(args.store, args.out, model=args.model, k=args.k, n_train=args.n_train, hyper=hyper,
                           train_cfg=train_cfg)
    print(json.dumps(info["metrics"], indent=2))
    return 0


def cmd_evaluate(args, cfg):
    import torch

    from homlearn.evaluate.mg_taylor import evaluate_mg_taylor

    torch.set_num_threads(args.threads)
    m = evaluate_mg_taylor(args.store, args.classical, args.models, args.out, _section(cfg))
    print(json.dumps(m["summary_rows"], indent=1))
    return 0


def cmd_resolution(args, cfg):
    import torch

    from homlearn.evaluate.mg_taylor_resolution import evaluate_resolution

    torch.set_num_threads(args.threads)
    mg = _section(cfg)
    if not mg["resolution"]["k"] and set(mg["resolution"]["models"]) != {"pcanet"}:
        raise ConfigError("config key 'rno.mg_taylor.resolution.k' is empty: the resolution study is off "
                          "(give the RNOs' internal variables, e.g. [5])")
    m = evaluate_resolution(args.store, args.fine_store, args.models, args.out, mg, cfg["mg_taylor"])
    print(json.dumps(m["summary_rows"], indent=1))
    return 0


def register(sub, with_config, load) -> None:
    """Add the ``rno_mg_taylor`` command to the subparsers ``sub`` of :mod:`homlearn.cli`;
    ``load(args)`` returns the validated config."""
    p = sub.add_parser("rno_mg_taylor", help="RNO / PCA-Net / Johnson-Cook on mg_taylor (paper rno 5.2)"
                       ).add_subparsers(dest="step", required=True)

    def step(name, fn, help_):
        sp = with_config(p.add_parser(name, help=help_))
        sp.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        sp.set_defaults(func=lambda args: fn(args, load(args)))
        return sp

    c = step("classical", cmd_classical, "Taylor solves of the classical, calibration and rotated paths")
    c.add_argument("store", help="the mg_taylor store of rno.mg_taylor.case")
    c.add_argument("out", help="the Zarr store to write")
    c.add_argument("--summary", default=None, help="write a JSON summary here")
    j = step("jc", cmd_jc, "fit the 3D Johnson-Cook law to the calibration tests")
    j.add_argument("classical")
    j.add_argument("out", help="model directory")
    t = step("train", cmd_train, "train one RNO or PCA-Net")
    t.add_argument("store")
    t.add_argument("out", help="model directory")
    t.add_argument("--model", default="rno", choices=["rno", "rno_ve", "pcanet"],
                   help="rno: eq. 2; rno_ve: eq. 7 (stretch rate fed to f); pcanet")
    t.add_argument("--k", type=int, default=5, help="RNO internal variables")
    t.add_argument("--n-train", type=int, required=True, help="training paths (first n of the train split)")
    e = step("evaluate", cmd_evaluate, "metrics and figures (rno Fig. 8, 9; pcanet SI-C)")
    e.add_argument("store")
    e.add_argument("classical")
    e.add_argument("models", help="directory of the model directories")
    e.add_argument("out")
    r = step("resolution", cmd_resolution, "test at other time steps than the training one (rno Fig. 10b)")
    r.add_argument("store", help="the store the models were trained on")
    r.add_argument("fine_store", help="the same case with every solver step stored (n_stored = n_steps)")
    r.add_argument("models", help="directory of the model directories")
    r.add_argument("out")
