"""VE RNO resolution study (paper 'rno' Fig. 10a): the viscoelastic RNO (eq. 7) with its rate
feature taken as the rate (F^n - F^(n-1)) / dt_n (homlearn's default) against the increment over
the fixed training step (F^n - F^(n-1)) / dt_train (`rate_step`), both trained the same way on
one N of a composite1d store at its stored resolution and tested at other resolutions drawn from
the fine (solver) histories. The two features agree on the training grid; only the increment
changes with the resolution. A study, not a speed benchmark: it trains two models.

    python benchmarks/ve_rate_vs_increment.py results/datasets/composite1d.zarr out/ve_ab \
        [--n 1] [--k 1] [--steps 50 100 200 500 1000] [--adam 60] [--lbfgs 40] [--batch 100]

Defaults: the budget recipe of workflow/configs/rno_cpu-budget.yaml (60 Adam epochs at batch 100,
cosine from 1e-3, then 40 L-BFGS epochs), 4 x 100 SELU, one thread; ~25 min per model on one core
at the paper's data size (300 train / 100 test paths of 200 steps). Models resume from their
checkpoints, so a rerun only re-evaluates. Writes <out>/ve_rate_vs_increment.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None) -> dict:
    import torch

    from homlearn.evaluate.history import resolution_study
    from homlearn.train.history import load_history_data, train_history

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=1, help="composite1d N (segments) to train and test on")
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    ap.add_argument("--adam", type=int, default=60)
    ap.add_argument("--lbfgs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    n_train_steps = len(load_history_data(a.store, "composite1d", a.n).t) - 1
    train_cfg = {"lr": 1e-3, "schedule": "cosine", "batch_size": a.batch, "max_epochs": a.adam, "lbfgs_epochs": a.lbfgs}
    variants = {"rate": {}, "increment": {"rate_step": 1.0 / n_train_steps}}  # time in units of the duration
    result = {"store": str(a.store), "N": a.n, "k": a.k, "train_steps": n_train_steps, "train": train_cfg, "variants": {}}
    for name, extra in variants.items():
        models = out / name
        t0 = time.perf_counter()
        rec = train_history(a.store, "composite1d", models / f"rno_ve_N{a.n}_k{a.k}", model="rno_ve", k=a.k,
                            group=a.n, hyper={"width": 100, "depth": 4, **extra}, train_cfg=train_cfg, progress=False)
        study = resolution_study(a.store, models, a.n, a.k, a.steps, ["rno_ve"])
        errors = {r["steps"]: r["test_relative_l2"] for r in study["rows"] if r["model"] == "rno_ve"}
        floor = {r["steps"]: r["test_relative_l2"] for r in study["rows"] if r["model"] == "exact_eq3"}
        result["variants"][name] = {"test_relative_l2": errors, "seconds": time.perf_counter() - t0,
                                    "test_at_train_steps": rec["metrics"]["test"]["relative_l2"]}
        result["exact_eq3"] = floor
    print(f"VE RNO (eq. 7), composite1d N = {a.n}, k = {a.k}, trained at {n_train_steps} steps; test relative L2 (eq. 16)")
    print("steps      " + "".join(f"{s:>9d}" for s in a.steps))
    for name, row in [("exact eq.3", result["exact_eq3"])] + [(k, v["test_relative_l2"]) for k, v in result["variants"].items()]:
        print(f"{name:<11}" + "".join(f"{100 * row[s]:8.2f}%" for s in a.steps))
    out.mkdir(parents=True, exist_ok=True)
    (out / "ve_rate_vs_increment.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
