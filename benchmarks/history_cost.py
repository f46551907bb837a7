"""history_cost: seconds per material-point update of an RNO and of PCA-Net against a classical
implicit J2 return mapping, as a function of the number of time steps, all in this process
(issue 6 "Cost"; paper 'rno' section 7.3, Fig. 13).

    python benchmarks/history_cost.py [--points 1000] [--steps 50 100 200 500 1000] [--repeat 3] [--json out.json]

What is compared. Paper 'rno' Fig. 13 times a single-element ABAQUS calculation on one CPU with
the Johnson-Cook law, the RNO and the PCA-Net for several numbers of time steps. Here, on the
same --points random strain paths (``homlearn.loading.paths.random_paths``, 3 components
(11, 22, 12), the laminate dataset's path settings: t_final 1 s, 10 uniform-random intervals,
max_value 0.33; only n_steps varies):

- J2: the laminate solver's implicit elasto-viscoplastic J2 return map
  (``homlearn.solvers.analytic.laminate._return_map``, numpy, vectorised over points) for one
  layer of case MH (lambda 24 GPa, mu 25 GPa, sigma0 500 MPa, m 0.2, q0_dot 1/s, no hardening),
  called once per step as a material routine would be: prescribed total strain
  [eps11, eps22, eps33 = 0, eps12] (strain-driven; the laminate's plane-stress / interface Newton
  around it is not timed), state (plastic strain, q, last dq as the Newton guess) carried over.
  Strain is fed in absolute units, so the paths drive the material well into plasticity.
- RNO: ``RNO.paper(3, 3, k=3)`` (4 hidden layers x 100, SELU, k = 3 internal variables), evaluated
  step by step with ``RNO.step`` (one material-point update per call, as a finite-element code
  calls it) and, for comparison, by ``RNO.forward`` on whole histories (same recursion; f is
  applied to all times at once). Untrained (random) weights: the cost does not depend on them.
  float32 and float64, ``torch.no_grad``.
- PCA-Net: ``PCANet.paper("2d", n_time=n_steps + 1)`` (32 PCA components x 3 in and out, MLP
  500-1000-2000-1000-500), PCA fitted (untimed) on the paths themselves, MLP untrained. One
  evaluation maps a whole history to the whole stress history: the MLP cost is per path, not per
  step; only the PCA projection and reconstruction grow with n_steps (O(n_steps x 32) per
  component), so its cost per update falls roughly like 1 / n_steps. (In a finite-element code
  that needs the stress at every step from the history so far, it would be evaluated once per
  step instead: n_steps times the cost of one evaluation; the paper's Fig. 13 timing is of that
  use. The column ``pcanet_per_step_s`` gives that estimate: one evaluation / points.)

Each timing is the fastest of --repeat (shared machine; the first run doubles as warm-up); data
generation and model construction are not timed; conversion of the paths to torch tensors is.
Seconds per material-point update = time / (points x n_steps). Default one thread for torch (the
paper ran on a single CPU; numpy's element-wise return map is single-threaded anyway).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from homlearn.config import validate_config
from homlearn.loading.paths import random_paths
from homlearn.models.pcanet import PCANet
from homlearn.models.rno import RNO
from homlearn.solvers.analytic.laminate import _return_map, case


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def j2_history(mat, t: np.ndarray, strain: np.ndarray):
    """Strain-driven implicit J2 updates along (P, T, 3) paths -> stress (P, T, 4) (11, 22, 33, 12),
    all converged, fraction of points that yielded, largest q."""
    P, T, _ = strain.shape
    s0 = np.full(P, mat.sigma0[0])
    m = np.full(P, mat.m[0])
    ep, q, dq = np.zeros((P, 4)), np.zeros(P), np.zeros(P)
    eps = np.zeros((P, 4))
    out = np.zeros((P, T, 4))
    ok = True
    for n in range(1, T):
        eps[:, 0], eps[:, 1], eps[:, 3] = strain[:, n, 0], strain[:, n, 1], strain[:, n, 2]
        sigma, ep, q, dq, _, conv = _return_map(mat, eps, ep, q, t[n] - t[n - 1], s0, m, dq)
        ok &= bool(conv.all())
        out[:, n] = sigma
    return out, ok, float((q > 0).mean()), float(q.max())


@torch.no_grad()
def rno_steps(model: RNO, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    b, n, _ = x.shape
    xi = x.new_zeros(b, model.k)
    ys = [model.step(x[:, 0], x[:, 0], xi, 0.0)[0]]  # n = 0: xi^0 = 0
    for i in range(1, n):
        y, xi = model.step(x[:, i], x[:, i - 1], xi, t[i] - t[i - 1])
        ys.append(y)
    return torch.stack(ys, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=1000, help="material points (paths) in the batch")
    p.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    p.add_argument("--case", default="MH", help="laminate case; its layer '+' material is used")
    p.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--repeat", type=int, default=3, help="time each run this often, keep the fastest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = validate_config({})["laminate"]["path"]
    mat = case(a.case)
    rno = {dt: RNO.paper(3, 3, k=3).to(getattr(torch, dt)).eval() for dt in a.dtypes}
    rows = []
    for n_steps in a.steps:
        paths = random_paths(a.points, 3, t_final=cfg["t_final"], n_intervals=cfg["n_intervals"],
                             max_value=cfg["max_value"], intervals=cfg["intervals"], n_steps=n_steps, seed=a.seed)
        t, strain = paths.t, paths.values
        updates = a.points * n_steps
        sec, all_t, (stress, ok, frac_plastic, q_max) = best_of(lambda: j2_history(mat, t, strain), a.repeat)
        dev = stress - stress[..., :3].mean(-1, keepdims=True) * np.array([1.0, 1.0, 1.0, 0.0])
        vm_max = float(np.sqrt(1.5 * np.sum(np.array([1.0, 1.0, 1.0, 2.0]) * dev * dev, -1)).max())
        row = {"n_steps": n_steps, "points": a.points, "updates": updates,
               "j2": {"seconds": sec, "seconds_all": all_t, "per_update_s": sec / updates, "converged": ok,
                      "fraction_points_yielded": frac_plastic, "max_von_mises_MPa": vm_max,
                      "max_accumulated_plastic_strain": q_max}}
        for dt in a.dtypes:
            td = getattr(torch, dt)
            model = rno[dt]
            step_fn = lambda: rno_steps(model, torch.from_numpy(strain).to(td), torch.from_numpy(t).to(td))  # noqa: E731
            s_step, all_step, y_step = best_of(step_fn, a.repeat)

            def fwd_fn():
                with torch.no_grad():
                    return model(torch.from_numpy(strain).to(td), torch.from_numpy(t).to(td))

            s_fwd, all_fwd, y_fwd = best_of(fwd_fn, a.repeat)
            agree = float((y_step - y_fwd).abs().max() / y_fwd.abs().max().clamp_min(1e-30))
            pca = PCANet.paper("2d", n_time=n_steps + 1).to(td).eval()
            x_t = torch.from_numpy(strain).to(td)
            pca.fit_pca(x_t, x_t)  # untimed; any data of the right shape will do for cost
            pca_fn = lambda: pca(torch.from_numpy(strain).to(td))  # noqa: E731
            with torch.no_grad():
                s_pca, all_pca, _ = best_of(pca_fn, a.repeat)
            row[f"rno_step_{dt}"] = {"seconds": s_step, "seconds_all": all_step, "per_update_s": s_step / updates,
                                     "ratio_to_j2": s_step / sec, "step_vs_forward_max_rel_diff": agree}
            row[f"rno_forward_{dt}"] = {"seconds": s_fwd, "seconds_all": all_fwd, "per_update_s": s_fwd / updates,
                                        "ratio_to_j2": s_fwd / sec}
            row[f"pcanet_{dt}"] = {"seconds": s_pca, "seconds_all": all_pca, "per_update_s": s_pca / updates,
                                   "ratio_to_j2": s_pca / sec, "pcanet_per_step_s": s_pca / a.points,
                                   "parameters": sum(v.numel() for v in pca.mlp.parameters())}
        rows.append(row)
        print(f"n_steps {n_steps} done", file=sys.stderr, flush=True)

    cols = [("j2", "J2")] + [(f"{k}_{dt}", f"{lab} {dt[-2:]}") for dt in a.dtypes
                             for k, lab in (("rno_step", "RNO.step"), ("rno_forward", "RNO.fwd"), ("pcanet", "PCA-Net"))]
    print(f"\nseconds per material-point update ({a.points} points, {a.threads} torch thread(s), "
          f"fastest of {a.repeat}); ratio to J2 in brackets")
    print(f"{'steps':>6}" + "".join(f"{lab:>22}" for _, lab in cols))
    for r in rows:
        cells = [f"{r['j2']['per_update_s']:.2e}"] + [
            f"{r[k]['per_update_s']:.2e} ({r[k]['ratio_to_j2']:.2f}x)" for k, _ in cols[1:]]
        print(f"{r['n_steps']:>6}" + "".join(f"{c:>22}" for c in cells))
    ok = all(r["j2"]["converged"] for r in rows) and all(
        r[f"rno_step_{dt}"]["step_vs_forward_max_rel_diff"] < (1e-4 if dt == "float32" else 1e-10)
        for r in rows for dt in a.dtypes)
    print(f"checks (J2 return map converged everywhere; RNO.step equals RNO.forward): {'pass' if ok else 'FAIL'}")
    if a.json:
        git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             cwd=Path(__file__).parent).stdout.strip()
        machine = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                   "platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                   "device": cpu_name(), "load_average": os.getloadavg()}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({
            "git": git, "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "settings": vars(a) | {"path": cfg, "material": mat.as_dict(), "layer": "+",
                                                       "rno": "RNO.paper(3, 3, k=3), untrained",
                                                       "pcanet": "PCANet.paper('2d'), untrained MLP"},
            "results": rows, "checks_pass": bool(ok)}, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
