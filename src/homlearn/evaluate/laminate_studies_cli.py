"""``homlearn history laminate-study | autoencoder-train | autoencoder-evaluate``: the laminate
studies of paper 'rno' section 4 (:mod:`homlearn.evaluate.laminate_studies`,
:mod:`homlearn.train.autoencoder`). Heavy imports happen inside the commands.

    homlearn history laminate-study transfer results/datasets results/rno/laminate/models out_dir
    homlearn history autoencoder-train results/datasets/laminate_M3.zarr ae_models/M3_m3 --latent 3
    homlearn history autoencoder-evaluate results/datasets ae_models out_dir
    homlearn history laminate-resolution results/datasets results/rno/laminate/augmented/models out_dir
"""

from __future__ import annotations

import json


def add_study_commands(sub, with_config, config_of) -> None:
    """Add the subcommands to ``homlearn history``; ``config_of(args)`` is the validated config."""

    def cmd_study(args):
        from homlearn.evaluate.laminate_studies import evaluate_transfer

        cfg = config_of(args)["rno"]["laminate"]
        if args.study == "transfer":
            c = cfg["transfer"]
            m = evaluate_transfer(args.datasets, args.models, args.out, c["source"], c["cases"], c["k"], "transfer")
        else:
            c = cfg["hardening"]
            m = evaluate_transfer(args.datasets, args.models, args.out, c["source"], c["cases"], c["k"], "hardening",
                                  c["example_case"])
        print(json.dumps(m["rows"], indent=1))
        return 0

    def cmd_ae_train(args):
        import torch

        from homlearn.train.autoencoder import train_autoencoder

        torch.set_num_threads(args.threads)
        c = config_of(args)["rno"]["laminate"]["autoencoder"]
        info = train_autoencoder(args.dataset, args.out, latent=args.latent, width=c["width"], depth=c["depth"],
                                 train_cfg=c["train"])
        print(json.dumps(info["metrics"], indent=2))
        return 0

    def cmd_ae_evaluate(args):
        from homlearn.evaluate.laminate_studies import evaluate_autoencoders

        c = config_of(args)["rno"]["laminate"]["autoencoder"]
        m = evaluate_autoencoders(args.datasets, args.models, args.out, c["cases"], c["latent"], c["example_case"],
                                  c["example_latent"])
        print(json.dumps(m["rows"], indent=1))
        return 0

    def cmd_resolution(args):
        from homlearn.evaluate.laminate_resolution import evaluate_resolution

        c = config_of(args)["rno"]["laminate"]["resolution"]
        m = evaluate_resolution(args.datasets, args.models, args.out, c["case"], c["k"], c["steps"], c["models"])
        print(json.dumps(m["summary_rows"], indent=1))
        return 0

    def evaluation(name, help_text, func, datasets_help, models_help, studies=None):
        """A command reading ``datasets`` and ``models`` directories and writing to ``out``
        (``studies``: the choices of a first positional argument ``study``)."""
        p = with_config(sub.add_parser(name, help=help_text))
        if studies:
            p.add_argument("study", choices=studies)
        p.add_argument("datasets", help=datasets_help)
        p.add_argument("models", help=models_help)
        p.add_argument("out")
        p.set_defaults(func=func)

    evaluation("laminate-study", "laminate: direct vs transferred RNOs (rno Fig. 3, 6)", cmd_study,
               "the directory of laminate_<case>.zarr", "directory of the model directories", ["transfer", "hardening"])
    at = with_config(sub.add_parser("autoencoder-train", help="laminate: one auto-encoder of the model variables"))
    at.add_argument("dataset", help="a laminate store")
    at.add_argument("out", help="model directory")
    at.add_argument("--latent", type=int, required=True, help="latent size m")
    at.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    at.set_defaults(func=cmd_ae_train)
    evaluation("autoencoder-evaluate", "laminate: auto-encoder error vs latent size (rno Fig. 4a, 6d)", cmd_ae_evaluate,
               "the directory of laminate_<case>.zarr", "directory of the auto-encoder directories")
    evaluation("laminate-resolution", "laminate: RNO test error against the test paths' stored steps (ours)",
               cmd_resolution, "the directory of laminate_<case>.zarr and laminate_<case>_n<steps>.zarr",
               "directory of the model directories <case>_k<k>")
