"""`homlearn gcnn ...`: GCNN-family and CNN surrogates of the cp_grid and viscoelastic3d stores
(paper gcnn sections 4, 6), registered by :mod:`homlearn.cli`; settings in the config's ``gcnn``
section (one block per exemplar: ``data``, ``models``, ``train``).

    homlearn gcnn train results/datasets/cp_grid2d.zarr cp_grid2d rgcnn results/gcnn/cp_grid2d/models/rgcnn
    homlearn gcnn train results/datasets/viscoelastic3d.zarr viscoelastic3d fgcnn results/gcnn/viscoelastic3d/models/fgcnn
"""

from __future__ import annotations

import json

EXEMPLARS = ("cp_grid2d", "cp_grid3d", "viscoelastic3d")


def cmd_train(args, cfg) -> int:
    import torch

    from homlearn.train.gcnn import train_gcnn

    torch.set_num_threads(args.threads)
    section = cfg["gcnn"][args.exemplar]
    info = train_gcnn(args.dataset, args.model, section["models"].get(args.model, {}), section["train"], args.out,
                      exemplar=args.exemplar, data_cfg=section["data"])
    print(json.dumps({k: {m: v[m] for m in ("n", "rmse", "relative_rmse", "correlation")}
                      for k, v in info["metrics"].items()}, indent=2))
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
