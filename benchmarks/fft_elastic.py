"""fft_elastic: cells per second for the batched FFT linear-elastic solver against the one-cell
numpy/scipy reference, both run here, on the same elastic_ls cells (31^3, contrast 10 and 50).

    python benchmarks/fft_elastic.py [--cells 16] [--batch-size 8] [--reference-cells 2] [--json out.json]
    python benchmarks/fft_elastic.py --device cuda --cells 2048 --batch-size 256   # on a GPU

Cells are built exactly as the elastic_ls dataset builds them (default config: Latin-hypercube
design, design_samples, E_soft = 120, E_hard = CR x 120, nu = 0.3, eps_xx = 0.001); generating the
microstructures is not timed. The reference solves the first --reference-cells cells one by one;
the batched engine solves all --cells cells in batches (after one untimed warm-up solve, so FFT
plans and CUDA start-up are excluded; each run is timed --repeat times and the fastest is kept,
as the machine may be shared; timing includes building the material on the device and
bringing the mean stress back). Every batched cell must converge with true residual <= tol
(max(tol, 1e-5) in float32) and its mean stress must match the reference on the shared cells.
Targets (issue 3): CPU at least 5x the reference; GPU at least 1000 cells/s at contrast 50.
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
from homlearn.datasets.elastic_ls import design
from homlearn.microstructure.random_fields import design_samples
from homlearn.solvers.fft import IsotropicMaterial, reference_solve_linear, solve_linear

STRESS_RTOL = 1e-4  # mean-stress agreement batched vs reference (relative, Frobenius norm)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def young_field(micro: np.ndarray, contrast: float, cfg) -> np.ndarray:
    return np.where(micro == 1, contrast * cfg["young_soft"], cfg["young_soft"]).astype(np.float64)


def run_reference(micro, contrast, cfg, E, tol, max_iter, repeat) -> dict:
    nu, times = cfg["poisson"], []
    for _ in range(repeat):
        out, t0 = [], time.perf_counter()
        for cell in micro:
            young = young_field(cell, contrast, cfg)
            lam, mu = young * nu / ((1 + nu) * (1 - 2 * nu)), young / (2 * (1 + nu))
            stiff = (lambda eps, lam=lam, mu=mu:
                     lam * np.trace(eps)[None, None] * np.eye(3).reshape(3, 3, 1, 1, 1) + 2 * mu * eps)
            out.append(reference_solve_linear(stiff, E, cell.shape, tol=tol, max_iter=max_iter))
        times.append(time.perf_counter() - t0)
    sec = min(times)
    return {"cells": len(micro), "seconds": sec, "seconds_all": times, "cells_per_s": len(micro) / sec,
            "iterations_mean": float(np.mean([r["iterations"] for r in out])),
            "all_converged": all(r.get("info", 0) == 0 for r in out),
            "mean_stress": np.stack([r["mean_stress"] for r in out])}


def solve_cells(micro, contrast, cfg, E, tol, max_iter, device, dtype):
    young = torch.from_numpy(young_field(micro, contrast, cfg))
    material = IsotropicMaterial.from_young_poisson(young, cfg["poisson"]).to(device=device, dtype=dtype)
    res = solve_linear(material, E, micro.shape[1:], batch=len(micro), tol=tol, max_iter=max_iter,
                       device=device, dtype=dtype)
    return (res.mean_stress.double().cpu().numpy(), res.converged.cpu().numpy(),
            res.iterations.cpu().numpy(), res.residual.double().cpu().numpy())


def run_batched(micro, contrast, cfg, E, tol, max_iter, batch_size, device, dtype, repeat) -> dict:
    solve_cells(micro[:batch_size], contrast, cfg, E, tol, 3, device, dtype)  # warm-up, untimed
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        parts, t0 = [], time.perf_counter()
        for s in range(0, len(micro), batch_size):
            parts.append(solve_cells(micro[s:s + batch_size], contrast, cfg, E, tol, max_iter, device, dtype))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    sec = min(times)
    stress, conv, its, resid = (np.concatenate(x) for x in zip(*parts))
    return {"cells": len(micro), "seconds": sec, "seconds_all": times, "cells_per_s": len(micro) / sec,
            "iterations_mean": float(its.mean()), "iterations_max": int(its.max()),
            "all_converged": bool(conv.all()), "max_residual": float(resid.max()), "mean_stress": stress}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--reference-cells", type=int, default=2)
    p.add_argument("--contrasts", type=float, nargs="+", default=[10, 50])
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument("--dtypes", nargs="+", choices=["float64", "float32"], default=None,
                   help="default: float64 on cpu, float64 float32 on cuda")
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--repeat", type=int, default=3, help="time each run this often, keep the fastest")
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    dtypes = a.dtypes or (["float64", "float32"] if device.type == "cuda" else ["float64"])
    cfg = validate_config({})["elastic_ls"]
    n_ref = min(a.reference_cells, a.cells)
    micro = design_samples(design(cfg), cfg["per_point"], (cfg["grid"],) * 3, cfg["seed"], np.arange(a.cells))
    E = np.zeros((3, 3))
    E[0, 0] = cfg["mean_strain_xx"]
    rows, ok = [], True
    for cr in a.contrasts:
        ref = run_reference(micro[:n_ref], cr, cfg, E, a.tol, cfg["max_iter"], a.repeat)
        ok &= ref["all_converged"]
        for dt in dtypes:
            tol = a.tol if dt == "float64" else max(a.tol, 1e-5)
            b = run_batched(micro, cr, cfg, E, tol, cfg["max_iter"], a.batch_size, device,
                            getattr(torch, dt), a.repeat)
            ds = np.linalg.norm(b["mean_stress"][:n_ref] - ref["mean_stress"], axis=(1, 2)) \
                / np.linalg.norm(ref["mean_stress"], axis=(1, 2))
            b.update(tol=tol, max_rel_mean_stress_diff=float(ds.max()), ratio=b["cells_per_s"] / ref["cells_per_s"],
                     residual_ok=b["max_residual"] <= tol, stress_ok=bool(ds.max() <= STRESS_RTOL))
            ok &= b["all_converged"] and b["residual_ok"] and b["stress_ok"]
            rows.append({"contrast": cr, "dtype": dt, "device": device.type,
                         "reference": {k: v for k, v in ref.items() if k != "mean_stress"},
                         "batched": {k: v for k, v in b.items() if k != "mean_stress"}})
    print(f"{'CR':>4} {'dtype':<8}{'tol':>8}{'ref/s':>9}{'ref it':>8}{'batch/s':>10}{'it mean':>9}{'it max':>8}"
          f"{'max resid':>11}{'dS rel':>10}{'ratio':>8}  conv")
    for r in rows:
        f, b = r["reference"], r["batched"]
        print(f"{r['contrast']:>4g} {r['dtype']:<8}{b['tol']:>8.0e}{f['cells_per_s']:>9.3f}{f['iterations_mean']:>8.1f}"
              f"{b['cells_per_s']:>10.2f}{b['iterations_mean']:>9.1f}{b['iterations_max']:>8d}{b['max_residual']:>11.2e}"
              f"{b['max_rel_mean_stress_diff']:>10.1e}{b['ratio']:>8.1f}x  {b['all_converged'] and b['residual_ok']}")
    if device.type == "cpu":
        met = all(r["batched"]["ratio"] >= 5 for r in rows)
        target = "CPU target (batched >= 5x reference, every contrast)"
    else:
        at50 = [r for r in rows if r["contrast"] == 50]
        met = bool(at50) and all(r["batched"]["cells_per_s"] >= 1000 for r in at50)
        target = "GPU target (>= 1000 cells/s at contrast 50, every dtype)"
    print(f"{target}: {'met' if met else 'NOT met'}; checks (convergence, residual <= tol, "
          f"mean stress within {STRESS_RTOL:g} of reference): {'pass' if ok else 'FAIL'}")
    if a.json:
        git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             cwd=Path(__file__).parent).stdout.strip()
        machine = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                   "platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                   "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({
            "git": git, "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "settings": vars(a) | {"dtypes": dtypes, "grid": cfg["grid"], "max_iter": cfg["max_iter"]},
            "results": rows, "target": target, "target_met": met, "checks_pass": bool(ok)}, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
