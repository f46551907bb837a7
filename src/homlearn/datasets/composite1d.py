"""The composite1d exemplar (paper 'rno' section 3): stress histories of 1D elasto-viscoplastic
composites of N equal segments under random strain paths.

For each N in ``segments`` (paper: 1 to 10), ``paths_per_n`` samples (paper: 400, split 300
train / 100 test per N). Sample i has N = segments[i // paths_per_n]. With ``materials:
per_n`` (default; the paper: "for each N, we sample E, n and sigma0 i.i.d.") the N segments of
one composite per N draw E ~ U[1, 10] GPa, n ~ U[1, 20], sigma0 ~ U[0.1, 1] GPa
(eps_p0_dot = 1/s) from a generator seeded by (seed, N's block), and every path of that block
loads the same composite, so the strain-to-stress map an RNO learns per N is a function; with
``per_sample`` each sample draws its own segments (seeded by (seed, i)). Sample i's strain path is
path i of
``homlearn.loading.paths.random_paths`` (Rademacher knots, PCHIP interpolation) with the same
seed. The exact reduction (eq. 11-12) is integrated by Radau through the PCHIP path itself (not
its samples) and written on the fine grid (``time_fine``, n_steps + 1 points) and downsampled
(``time``, n_out + 1 points). One store, one Dask task per batch, resumable.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import zarr

from homlearn import __version__
from homlearn.data.split import draw_split
from homlearn.data.store import BatchWriter, Layout, Variable, create_store

SPLIT_NAMES = {0: "train", 1: "test"}
DEVIATIONS = (
    "strain-path parameters are ours (the paper's section 3 gives none): |eps| <= 0.33 as its "
    "section 4's 'maximum strain of 33%' (F_max = 0.33 / sqrt(M T)), T = 1 s, M = 10 intervals of "
    "uniform random length; paths are PCHIP interpolants (the papers say cubic Hermite)",
    "segment parameters: one composite per N shared by its paths (materials: per_n, our reading "
    "of 'for each N, we sample E, n, sigma0'); per_sample draws one per path",
)


def n_samples(cfg: Mapping[str, Any]) -> int:
    return len(cfg["segments"]) * cfg["paths_per_n"]


def layout(cfg, batch_size) -> Layout:
    p = cfg["path"]
    return Layout(n_samples(cfg), batch_size, capacity={},
                  fixed={"time": p["n_out"] + 1, "time_fine": p["n_steps"] + 1, "segment": max(cfg["segments"])})


def variables(cfg) -> dict[str, Variable]:
    out = {
        "time": Variable(("time",), "float64", {"long_name": "time (stored grid)", "units": "s"}),
        "strain": Variable(("sample", "time"), "float64",
                           {"long_name": "prescribed mean strain eps_bar = u(1, t)", "units": "1"}, np.nan),
        "stress": Variable(("sample", "time"), "float64",
                           {"long_name": "stress (uniform in x), eq. 11", "units": "GPa"}, np.nan),
        "plastic_strain": Variable(("sample", "time"), "float64",
                                   {"long_name": "internal variable xi = <eps_p>, eq. 12-13", "units": "1"},
                                   np.nan),
        "n_segments": Variable(("sample",), "int32", {"long_name": "number of segments N (equal lengths)"}),
        "young": Variable(("sample", "segment"), "float64",
                          {"long_name": "Young's modulus E of each segment (NaN beyond N)", "units": "GPa"},
                          np.nan),
        "exponent": Variable(("sample", "segment"), "float64",
                             {"long_name": "rate exponent n of each segment (NaN beyond N)"}, np.nan),
        "yield_stress": Variable(("sample", "segment"), "float64",
                                 {"long_name": "yield stress sigma0 of each segment (NaN beyond N)", "units": "GPa"},
                                 np.nan),
        "effective_modulus": Variable(("sample",), "float64",
                                      {"long_name": "<1/E>^-1 (eq. 11)", "units": "GPa"}, np.nan),
        "split": Variable(("sample",), "int8", {"long_name": "data split", "flag_values": list(SPLIT_NAMES),
                                                "flag_meanings": list(SPLIT_NAMES.values())}),
    }
    if cfg["store_fine"]:
        out |= {
            "time_fine": Variable(("time_fine",), "float64", {"long_name": "time (solver output grid)", "units": "s"}),
            "strain_fine": Variable(("sample", "time_fine"), "float64",
                                    {"long_name": "eps_bar on the fine grid", "units": "1"}, np.nan),
            "stress_fine": Variable(("sample", "time_fine"), "float64",
                                    {"long_name": "stress on the fine grid", "units": "GPa"}, np.nan),
            "plastic_strain_fine": Variable(("sample", "time_fine"), "float64",
                                            {"long_name": "xi = <eps_p> on the fine grid", "units": "1"}, np.nan),
        }
    return out


def sample_segments(cfg, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E, n, sigma0 of sample i's N segments: those of its N's composite (``materials: per_n``,
    seeded by (seed, block)) or its own (``per_sample``, seeded by (seed, i))."""
    block = i // cfg["paths_per_n"]
    N = cfg["segments"][block]
    if cfg.get("materials", "per_n") == "per_n":
        rng = np.random.default_rng([cfg["seed"], block, 2])
    else:
        rng = np.random.default_rng([cfg["seed"], i, 1])  # entropy differs from the paths' streams
    return (rng.uniform(*cfg["young_range"], N), rng.uniform(*cfg["exponent_range"], N),
            rng.uniform(*cfg["yield_stress_range"], N))


def sample_paths(cfg, first: int, count: int):
    from homlearn.loading.paths import config_amplitude, random_paths

    p = cfg["path"]
    return random_paths(count, 1, t_final=p["t_final"], n_intervals=p["n_intervals"], max_value=config_amplitude(p),
                        intervals=p["intervals"], n_steps=p["n_steps"], seed=cfg["seed"], first_index=first)


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Draw and solve one batch of composites, write its chunk. The samples of each N's block in
    the batch are one Radau system of their own, so the histories of one N do not depend on which
    other N the store holds (a batch may straddle two blocks)."""
    cfg = params["cfg"]
    group = zarr.open_group(store_path, mode="r+")
    writer = BatchWriter(group, batch)
    idx = np.arange(writer.samples.start, writer.samples.stop)
    blocks = idx // cfg["paths_per_n"]
    failures = []
    for block in np.unique(blocks):
        rows = np.flatnonzero(blocks == block)
        failures += _solve_rows(cfg, writer, idx, rows)
    writer.flush()
    return failures


def _solve_rows(cfg, writer: BatchWriter, idx: np.ndarray, rows: np.ndarray) -> list[dict]:
    """Solve the batch rows ``rows`` (consecutive samples idx[rows]) as one system; add them to ``writer``."""
    from homlearn.loading.paths import hermite_interpolant
    from homlearn.solvers.analytic.composite1d import Segments, batch_interpolant, solve

    S = max(cfg["segments"])
    E, n, s0 = (np.full((len(rows), S), np.nan) for _ in range(3))
    for k, r in enumerate(rows):
        e_, n_, s_ = sample_segments(cfg, int(idx[r]))
        E[k, :len(e_)], n[k, :len(e_)], s0[k, :len(e_)] = e_, n_, s_
    used = int(np.max(np.sum(np.isfinite(E), axis=1)))
    seg = Segments.make(E[:, :used], n[:, :used], s0[:, :used], cfg["rate"])
    paths = sample_paths(cfg, int(idx[rows[0]]), len(rows))
    strain = batch_interpolant([hermite_interpolant(paths.knots_t[k], paths.knots[k][:, 0])
                                for k in range(len(rows))])
    sol = solve(seg, strain, paths.t, rtol=cfg["rtol"], atol=cfg["atol"])
    stride = cfg["path"]["n_steps"] // cfg["path"]["n_out"]
    failures = []
    for k, r in enumerate(rows):
        if not sol.success[k]:
            writer.fail(int(r), -2)
            failures.append({"sample": int(idx[r]), "code": -2, "reason": sol.messages[k]})
            continue
        values = {"strain": sol.strain[k, ::stride], "stress": sol.stress[k, ::stride],
                  "plastic_strain": sol.plastic_strain[k, ::stride], "n_segments": int(np.isfinite(E[k]).sum()),
                  "young": E[k], "exponent": n[k], "yield_stress": s0[k],
                  "effective_modulus": float(seg.effective_modulus[k])}
        if cfg["store_fine"]:
            values |= {"strain_fine": sol.strain[k], "stress_fine": sol.stress[k],
                       "plastic_strain_fine": sol.plastic_strain[k]}
        writer.add(int(r), values, {})
    return failures


def create_dataset_store(path, cfg, batch_size):
    from homlearn.solvers.analytic.composite1d import METHOD

    p = cfg["path"]
    if p["n_steps"] % p["n_out"]:
        raise ValueError(f"composite1d.path.n_steps ({p['n_steps']}) must be a multiple of n_out ({p['n_out']})")
    content = {k: v for k, v in cfg.items() if k != "batch_size"}
    group = create_store(path, layout(cfg, batch_size), variables(cfg), {
        "exemplar": "composite1d", "homlearn_version": __version__, "config": dict(cfg),
        "paper": "rno section 3 (eq. 8-15)",
        "rate_constant": {"value": cfg["rate"], "units": "1/s", "long_name": "eps_p0_dot of every segment"},
        "solver": {"equations": "exact reduction, eq. 11-12: sigma = <1/E>^-1 (eps_bar - xi), "
                                "xi_dot = <eps_p0_dot sign(sigma) (|sigma|/sigma0)^n>",
                   "method": f"scipy solve_ivp {METHOD} with analytic Jacobian",
                   "rtol": cfg["rtol"], "atol": cfg["atol"], "tolerance_per": "path",
                   "input": "the PCHIP strain path itself (exact piecewise cubic)"},
        "deviation": list(DEVIATIONS)},
        content=content, replace_stale=True)
    if not group.attrs.get("split_drawn"):
        fine = np.linspace(0.0, p["t_final"], p["n_steps"] + 1)
        group["time"][:] = fine[::p["n_steps"] // p["n_out"]]
        if cfg["store_fine"]:
            group["time_fine"][:] = fine
        per = cfg["paths_per_n"]
        split = np.concatenate([draw_split(per, cfg["split"]["fractions"], [cfg["split"]["seed"], N])
                                for N in cfg["segments"]])  # stratified: the same counts for every N
        group["split"][:] = split
        group.attrs["split_drawn"] = True
    return group


def run_solve_stage(cfg, dask_cfg, store_path, threads=1, failure_log=None, client=None):
    """Solve every pending composite (resumable); returns the stage report."""
    from homlearn.parallel.stage import run_stage_from_config

    create_dataset_store(store_path, cfg, cfg["batch_size"])
    return run_stage_from_config("composite1d", store_path, solve_batch, {"cfg": dict(cfg)},
                                 {**dask_cfg, "batch_size": cfg["batch_size"]}, threads, failure_log, client)
