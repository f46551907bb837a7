"""`homlearn gcnn ...`: GCNN-family and CNN surrogates of the cp_grid and viscoelastic3d stores
(paper gcnn sections 4, 6), registered by :mod:`homlearn.cli`; settings in the config's ``gcnn``
section (one block per exemplar: ``data``, ``models``, ``train``).

    homlearn gcnn train results/datasets/cp_grid2d.zarr cp_grid2d rgcnn results/gcnn/cp_grid2d/models/rgcnn
    homlearn gcnn train results/datasets/viscoelastic3d.zarr viscoelastic3d fgcnn results/gcnn/viscoelastic3d/models/fgcnn
    homlearn gcnn interpret results/datasets/cp_grid2d.zarr results/gcnn/cp_grid2d/interpret --model fgcnn=DIR ...
"""

from __future__ import annotations

import json

EXEMPLARS = ("cp_grid2d", "cp_grid3d", "viscoelastic3d")


def cmd_train(args, cfg) -> int:
    import torch

    from homlearn.train.gcnn import train_gcnn

    torch.set_num_threads(args.threads)
    section = cfg["gcnn"][args.exemplar]
    hyper = {"head": section["head"]} | section["models"].get(args.model, {})  # the model's own head wins
    info = train_gcnn(args.dataset, args.model, hyper, section["train"], args.out,
                      exemplar=args.exemplar, data_cfg=section["data"],
                      collapse_restarts=section["collapse_restarts"])
    print(json.dumps({k: {m: v[m] for m in ("n", "rmse", "relative_rmse", "correlation")}
                      for k, v in info["metrics"].items()}, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from homlearn.evaluate.gcnn import evaluate_gcnn

    models = dict(m.split("=", 1) for m in args.model)
    m = evaluate_gcnn(args.exemplar, args.dataset, models, args.out, args.n_examples)
    print(json.dumps({n: {k: r[k] for k in ("rmse", "rmse_final", "mean_step_correlation")}
                      for n, r in m["models"].items()} | {"checks": m["checks"]}, indent=2))
    return 0


def cmd_summary(args) -> int:
    from homlearn.evaluate.gcnn import write_summary

    print(write_summary(args.out, args.metrics))
    return 0


def cmd_sensitivity(args) -> int:
    from homlearn.evaluate.sensitivity import evaluate_cp_grid2d_sensitivity

    runs = dict(r.split("=", 1) for r in args.run)
    print(json.dumps(evaluate_cp_grid2d_sensitivity(runs, args.out)["summary"], indent=2))
    return 0


def cmd_interpret(args) -> int:
    from homlearn.evaluate.gcnn_interpret import interpret_gcnn

    models = dict(m.split("=", 1) for m in args.model)
    m = interpret_gcnn(args.dataset, models, args.out, sample=args.sample, bins=args.bins)
    print(json.dumps({n: {"rmse": r["rmse"], "active_filters": r["active_filters"]} for n, r in m["models"].items()},
                     indent=2))
    return 0


def register(sub, with_config, load) -> None:
    """Add the ``gcnn`` command to the subparsers ``sub`` of :mod:`homlearn.cli`; ``load(args)``
    returns the validated config."""
    p = sub.add_parser("gcnn", help="GCNN family and CNN baselines on cp_grid / viscoelastic3d (paper gcnn 4, 6)"
                       ).add_subparsers(dest="step", required=True)
    t = with_config(p.add_parser("train", help="train one model on one store (writes model.json, predictions.npz)"))
    t.add_argument("dataset", help="the dataset store")
    t.add_argument("exemplar", choices=EXEMPLARS)
    t.add_argument("model", help="fgcnn, rgcnn, ogcnn, dgcnn, vgcnn (graphs) or cnn2d, cnn3d (cp_grid images)")
    t.add_argument("out", help="model directory")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.set_defaults(func=lambda args: cmd_train(args, load(args)))
    e = p.add_parser("evaluate", help="Fig. 11 / 13b figures and metrics.json of one exemplar's models")
    e.add_argument("exemplar", choices=EXEMPLARS)
    e.add_argument("dataset", help="the dataset store")
    e.add_argument("out", help="directory of metrics.json and the figures")
    e.add_argument("--model", action="append", default=[], required=True, help="name=model_dir (repeatable)")
    e.add_argument("--n-examples", type=int, default=4, help="validation histories to plot")
    e.set_defaults(func=cmd_evaluate)
    s = p.add_parser("summary", help="results/summary/field_surrogates_gcnn.md from metrics JSON files")
    s.add_argument("out")
    s.add_argument("metrics", nargs="+")
    s.set_defaults(func=cmd_summary)
    sv = p.add_parser("sensitivity", help="cp_grid2d Fig. 12b from the trained sweep models")
    sv.add_argument("out", help="directory of metrics.json/csv and fig12b_sensitivity.png")
    sv.add_argument("--run", action="append", default=[], required=True,
                    help="<model>_f<filters>_s<seed>=model_dir (repeatable)")
    sv.set_defaults(func=cmd_sensitivity)
    it = p.add_parser("interpret", help="cp_grid2d Fig. 14-17 and filter activation (sec. 5, 6.3)")
    it.add_argument("dataset", help="the cp_grid2d store")
    it.add_argument("out", help="directory of metrics.json, activation.csv and the figures")
    it.add_argument("--model", action="append", default=[], required=True,
                    help="name=model_dir (repeatable; cnn2d, fgcnn, rgcnn)")
    it.add_argument("--sample", type=int, default=0, help="validation position of the Fig. 16-17 sample")
    it.add_argument("--bins", type=int, default=40, help="bins per axis of the Fig. 15 density plots")
    it.set_defaults(func=cmd_interpret)
