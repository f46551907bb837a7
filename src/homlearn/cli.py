"""`homlearn` command line: the same steps the Snakemake rules call.

    homlearn validate config.yaml
    homlearn heat2d microstructure results/heat2d/microstructures.zarr --threads 2
    homlearn heat2d solve results/heat2d/microstructures.zarr results/datasets/heat2d.zarr --threads 2
    homlearn heat2d train results/datasets/heat2d.zarr rgcnn results/heat2d/models/rgcnn
    homlearn heat2d evaluate results/datasets/heat2d.zarr results/heat2d --model fgcnn=... --model rgcnn=...
    homlearn elastic_ls solve 10 results/datasets/elastic_ls_cr10.zarr --threads 2
    homlearn cp_grid solve 2d results/datasets/cp_grid2d.zarr --threads 2
    homlearn composite1d solve results/datasets/composite1d.zarr --threads 2
    homlearn laminate solve M3 results/datasets/laminate_M3.zarr --threads 2
    homlearn viscoelastic3d microstructure results/viscoelastic3d/microstructures.zarr --threads 2
    homlearn viscoelastic3d solve results/viscoelastic3d/microstructures.zarr results/datasets/viscoelastic3d.zarr
    homlearn mg_taylor solve r10 results/datasets/mg_taylor_r10.zarr --threads 2
    homlearn cp_paths2d train pcanet results/datasets/cp_paths2d.zarr results/surrogates_cp_paths2d/models/pcanet_n6 --n-train 6
    homlearn cp_paths2d train rno_deviatoric results/datasets/cp_paths2d.zarr results/surrogates_cp_paths2d/models/rno_deviatoric_k2 --k 2
    homlearn cp_paths2d named results/surrogates_cp_paths2d/named_paths.zarr
    homlearn cp_paths2d evaluate fig1a results/datasets/cp_paths2d.zarr results/surrogates_cp_paths2d/models results/surrogates_cp_paths2d
    homlearn history train composite1d results/datasets/composite1d.zarr results/rno/composite1d/models/rno_N1_k1 --group 1 --k 1
    homlearn history evaluate composite1d results/datasets/composite1d.zarr results/rno/composite1d/models results/rno/composite1d --resolution
    homlearn history train laminate results/datasets/laminate_M3.zarr results/rno/laminate/models/M3_k3 --k 3
    homlearn history summary results/summary/history_surrogates.md results/rno/*/metrics.json
    homlearn rln train results/datasets/elastic_ls_cr10.zarr results/rln/cr10/models/rln --model rln
    homlearn rln evaluate results/datasets/elastic_ls_cr10.zarr results/rln/cr10/models results/rln/cr10
    homlearn rln summary results/summary/field_surrogates.md results/rln/cr*/metrics.json
    homlearn gcnn train results/datasets/cp_grid2d.zarr cp_grid2d rgcnn results/gcnn/cp_grid2d/models/rgcnn
    homlearn rno_mg_taylor train results/datasets/mg_taylor_r10.zarr results/rno/mg_taylor/models/rno_k5_n240 --k 5 --n-train 240
    homlearn export results/datasets/heat2d.zarr 0 sample0.vtu
    homlearn store verify results/datasets/heat2d.zarr     # damaged or truncated? (names what)
    homlearn store hash results/datasets/heat2d.zarr       # content hash of every variable's values

Every command reads the config (``--configfile``, default config.yaml, or ``--config-json``) and
validates it before doing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from homlearn.config import ConfigError, load_config, validate_config


def _config(args) -> dict:
    if args.config_json:
        return validate_config(json.loads(args.config_json))
    return load_config(args.configfile)


def _write_report(path, report) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report.to_json(), indent=2))


def _stage_summary(report) -> str:
    rate = report.samples_run / report.seconds if report.seconds > 0 and report.samples_run else 0.0
    return (f"{report.name}: {report.samples_done}/{report.n_samples} done, {report.samples_failed} failed, "
            f"{report.samples_pending} pending; {report.samples_run} samples ({report.batches_run} batches) "
            f"run now in {report.seconds:.1f} s"
            + (f" ({rate:.1f} samples/s)" if rate else ""))


def cmd_microstructure(args):
    from homlearn.datasets.heat2d import run_microstructure_stage

    cfg = _config(args)
    rep = run_microstructure_stage(cfg["heat2d"], cfg["dask"], args.out, args.threads, args.failure_log)
    return _finish_stage(args, rep)


def cmd_solve(args):
    from homlearn.datasets.heat2d import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["heat2d"], cfg["dask"], args.microstructures, args.out, args.threads,
                          args.failure_log)
    return _finish_stage(args, rep)


def cmd_elastic_ls_solve(args):
    from homlearn.datasets.elastic_ls import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["elastic_ls"], cfg["dask"], args.contrast, args.out, args.threads, args.failure_log)
    return _finish_stage(args, rep)


def cmd_composite1d_solve(args):
    from homlearn.datasets.composite1d import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["composite1d"], cfg["dask"], args.out, args.threads, args.failure_log)
    return _finish_stage(args, rep)


def cmd_laminate_solve(args):
    from homlearn.datasets.laminate import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["laminate"], cfg["dask"], args.case, args.out, args.threads, args.failure_log)
    return _finish_stage(args, rep)


def cmd_cp_paths2d_solve(args):
    from homlearn.datasets.cp_paths2d import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["cp_paths2d"], cfg["dask"], args.out, args.threads, args.failure_log)
    return _finish_stage(args, rep)


def cmd_cp_paths2d_train(args):
    import torch

    from homlearn.train.cp_paths2d import train_cp_paths2d

    torch.set_num_threads(args.threads)
    cfg = _config(args)["surrogates_cp_paths2d"]
    info = train_cp_paths2d(args.dataset, args.out, args.model, cfg, k=args.k, n_train=args.n_train)
    print(json.dumps(info["metrics"], indent=2))
    return 0


def cmd_cp_paths2d_named(args):
    import torch

    from homlearn.datasets.cp_paths2d_named import solve_named_paths
    from homlearn.train.device import pick_device

    torch.set_num_threads(args.threads)
    cfg = _config(args)
    named = cfg["surrogates_cp_paths2d"]["named_paths"]
    summary = solve_named_paths(cfg["cp_paths2d"], named["amplitude"], args.out, str(pick_device(named["device"])))
    _write_summary_json(args.summary, summary)
    print(json.dumps(summary))
    return 0 if all(s == 0 for s in summary["status"]) else 1


def cmd_cp_paths2d_evaluate(args):
    from homlearn.evaluate.cp_paths2d import run_experiment

    cfg = _config(args)["surrogates_cp_paths2d"]
    m = run_experiment(args.experiment, args.dataset, args.models, args.out, cfg, named=args.named)
    print(json.dumps(m["summary_rows"], indent=1))
    return 0


def _write_summary_json(path, obj) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(obj, indent=2))


def cmd_cp_grid_solve(args):
    from homlearn.datasets.cp_grid import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["cp_grid"], cfg["dask"], args.dim, args.out, args.threads, args.failure_log)
    return _finish_stage(args, rep)


def cmd_viscoelastic3d_microstructure(args):
    from homlearn.datasets.viscoelastic3d import retry_counts, run_microstructure_stage

    cfg = _config(args)
    rep = run_microstructure_stage(cfg["viscoelastic3d"], cfg["dask"], args.out, args.threads, args.failure_log)
    retries = retry_counts(args.out)
    _write_report(args.summary, _Extended(rep, retries))
    print(_stage_summary(rep) + "; retries: " + json.dumps(retries), file=sys.stderr)
    return _stage_exit(rep)


def cmd_viscoelastic3d_solve(args):
    from homlearn.datasets.viscoelastic3d import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["viscoelastic3d"], cfg["dask"], args.microstructures, args.out, args.threads,
                          args.failure_log)
    return _finish_stage(args, rep)


def cmd_mg_taylor_solve(args):
    from homlearn.datasets.mg_taylor import run_solve_stage

    cfg = _config(args)
    rep = run_solve_stage(cfg["mg_taylor"], cfg["dask"], args.case, args.out, args.threads, args.failure_log)
    return _finish_stage(args, rep)


class _Extended:
    """A stage report with extra summary fields."""

    def __init__(self, report, extra):
        self.report, self.extra = report, extra

    def to_json(self):
        return {**self.report.to_json(), **self.extra}


def _finish_stage(args, rep) -> int:
    """Write the stage summary JSON, print the one-line summary, return the exit code."""
    _write_report(args.summary, rep)
    print(_stage_summary(rep), file=sys.stderr)
    return _stage_exit(rep)


def _stage_exit(rep) -> int:
    if rep.broken_batches:  # tasks that failed as a whole: rerun the stage to resume them
        print(f"{len(rep.broken_batches)} batch task(s) failed; rerun to resume: {rep.broken_batches}",
              file=sys.stderr)
        return 1
    return 0


def cmd_train(args):
    import torch

    from homlearn.train.gcnn import train_gcnn

    torch.set_num_threads(args.threads)  # the rule's threads; more oversubscribes a shared CPU
    cfg = _config(args)["heat2d"]
    info = train_gcnn(args.dataset, args.model, cfg["models"][args.model], cfg["train"], args.out)
    print(json.dumps(info["metrics"], indent=2))
    return 0


def cmd_evaluate(args):
    from homlearn.evaluate.heat2d import evaluate_heat2d

    cfg = _config(args)["heat2d"]
    models = dict(m.split("=", 1) for m in args.model)
    metrics = evaluate_heat2d(args.dataset, models, args.out, cfg["report"]["n_examples"])
    print(json.dumps(metrics["models"], indent=2))
    return 0


def cmd_heat2d_sensitivity(args):
    from homlearn.evaluate.heat2d import evaluate_sensitivity

    runs = dict(r.split("=", 1) for r in args.run)
    metrics = evaluate_sensitivity(runs, args.out)
    print(json.dumps(metrics["summary"], indent=2))
    return 0


def cmd_history_train(args):
    import torch

    from homlearn.train.history import train_history

    torch.set_num_threads(args.threads)
    cfg = _config(args)["rno"][args.exemplar]
    hyper = {"width": cfg["width"], "depth": cfg["depth"]}
    if args.model in ("gru", "lstm"):  # baseline of about the RNO's size (k = baseline.match_k)
        hyper |= {"match_k": cfg["baseline"]["match_k"], "n_layers": cfg["baseline"]["n_layers"]}
    info = train_history(args.dataset, args.exemplar, args.out, model=args.model, k=args.k, group=args.group,
                         hyper=hyper, train_cfg=cfg["train"], init=args.init,
                         symmetries=cfg.get("symmetries", []))
    print(json.dumps(info["metrics"], indent=2))
    return 0


def cmd_history_evaluate(args):
    from homlearn.evaluate.history import evaluate_composite1d, evaluate_laminate

    cfg = _config(args)["rno"][args.exemplar]
    if args.exemplar == "composite1d":
        res = cfg["resolution"] if args.resolution else None
        m = evaluate_composite1d(args.data, args.models, args.out, cfg["segments"], cfg["k"], res,
                                 baselines=cfg["baseline"]["models"])
    else:
        m = evaluate_laminate(args.data, args.models, args.out, cfg["cases"], cfg["k"], cfg["example_case"],
                              baselines=cfg["baseline"]["models"])
    print(json.dumps(m["error_vs_k"], indent=1))
    return 0


def cmd_history_summary(args):
    from homlearn.evaluate.history import write_summary

    print(write_summary(args.out, args.metrics))
    return 0


def cmd_rln_train(args):
    import torch

    from homlearn.train.rln import train_rln

    torch.set_num_threads(args.threads)
    cfg = _config(args)["rln"]
    hyper = {k: cfg[k] for k in ("iterations", "history", "channels")}
    info = train_rln(args.dataset, args.out, args.model, hyper=hyper, train_cfg=cfg["train"])
    print(json.dumps(info["metrics"], indent=2))
    return 0


def cmd_rln_evaluate(args):
    import torch

    from homlearn.evaluate.rln import evaluate_rln

    torch.set_num_threads(args.threads)
    cfg = _config(args)["rln"]["evaluate"]
    m = evaluate_rln(args.dataset, args.models, args.out, cfg["batch_size"], cfg["timing_cells"])
    print(json.dumps({v: [r["mase_mean"], r["mase_std"]] for v, r in m["models"].items()}, indent=1))
    return 0


def cmd_rln_summary(args):
    from homlearn.evaluate.rln import write_summary

    print(write_summary(args.out, args.metrics))
    return 0


def cmd_summary_index(args):
    from homlearn.evaluate.summary_index import write_index

    print(write_index(args.out, args.summaries))
    return 0


def cmd_validate(args):
    cfg = load_config(args.path)
    print(f"{args.path}: valid")
    if args.show:
        print(json.dumps(cfg, indent=2))
    return 0


def cmd_export(args):
    """Write one sample's mesh and fields as VTU/XDMF (meshio) for ParaView."""
    import meshio
    import xarray as xr

    from homlearn.data.store import read_ragged

    ds = xr.open_zarr(args.store, consolidated=None)
    s = args.sample
    if not 0 <= s < ds.sizes["sample"]:
        raise SystemExit(f"sample {s} out of range 0..{ds.sizes['sample'] - 1}")
    import numpy as np

    if "point_xyz" in ds:  # tetrahedral meshes (viscoelastic3d)
        pts, kind = read_ragged(ds, "point_xyz", s), "tetra"
    else:
        pts, kind = read_ragged(ds, "point_xy", s), "triangle"
        pts = np.column_stack([pts, np.zeros(len(pts))])  # VTU wants 3D points
    cell_data = {name: [read_ragged(ds, name, s)] for name in
                 ("cell_grain", "cell_angle", "cell_area", "cell_cluster", "cell_phase", "cell_volume")
                 if name in ds}
    point_data = {"temperature": read_ragged(ds, "temperature", s)} if "temperature" in ds else {}
    mesh = meshio.Mesh(pts, [(kind, read_ragged(ds, "cell_nodes", s))],
                       point_data=point_data, cell_data=cell_data)
    mesh.write(args.out)
    print(f"wrote {args.out}")
    return 0


def cmd_store_verify(args):
    from homlearn.data.integrity import StoreIntegrityError, verify_store

    try:
        verify_store(args.store, decode=not args.quick, require_done=not args.allow_pending)
    except StoreIntegrityError as exc:
        print(f"homlearn: {exc}", file=sys.stderr)
        return 1
    print(f"{args.store}: ok")
    return 0


def cmd_store_hash(args):
    from homlearn.data.digest import content_hash, variable_hashes

    if args.variables:
        print(json.dumps(variable_hashes(args.store), indent=1))
    print(content_hash(args.store))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homlearn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp):
        sp.add_argument("--configfile", default="config.yaml", help="YAML config (default config.yaml)")
        sp.add_argument("--config-json", default=None, help="the config as a JSON string (used by the rules)")
        return sp

    v = sub.add_parser("validate", help="validate a config file")
    v.add_argument("path")
    v.add_argument("--show", action="store_true", help="print the config with defaults filled in")
    v.set_defaults(func=cmd_validate)

    h = sub.add_parser("heat2d", help="the 2D polycrystal heat-conduction exemplar").add_subparsers(
        dest="step", required=True)
    m = with_config(h.add_parser("microstructure", help="mesh Voronoi polycrystals (Dask)"))
    m.add_argument("out")
    s = with_config(h.add_parser("solve", help="steady conduction with DOLFINx (Dask)"))
    s.add_argument("microstructures")
    s.add_argument("out")
    for sp, fn in ((m, cmd_microstructure), (s, cmd_solve)):
        sp.add_argument("--threads", type=int, default=1, help="Dask workers (1: run in this process)")
        sp.add_argument("--summary", default=None, help="write the stage summary JSON here")
        sp.add_argument("--failure-log", default=None, help="append failed samples (JSON lines) here")
        sp.set_defaults(func=fn)
    t = with_config(h.add_parser("train", help="train fgcnn or rgcnn"))
    t.add_argument("dataset")
    t.add_argument("model", choices=["fgcnn", "rgcnn"])
    t.add_argument("out")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.set_defaults(func=cmd_train)
    e = with_config(h.add_parser("evaluate", help="metrics and figures"))
    e.add_argument("dataset")
    e.add_argument("out")
    e.add_argument("--model", action="append", default=[], help="name=model_dir (repeatable)")
    e.set_defaults(func=cmd_evaluate)
    sv = h.add_parser("sensitivity", help="Fig. 12a from the trained sweep models")
    sv.add_argument("dataset")
    sv.add_argument("out")
    sv.add_argument("--run", action="append", default=[], help="<model>_f<filters>_s<seed>=model_dir (repeatable)")
    sv.set_defaults(func=cmd_heat2d_sensitivity)

    el = sub.add_parser("elastic_ls", help="voxel strain fields of two-phase cells (paper rln)").add_subparsers(
        dest="step", required=True)
    es = with_config(el.add_parser("solve", help="generate and solve the cells at one contrast (Dask)"))
    es.add_argument("contrast", type=float, help="E_hard / E_soft")
    es.add_argument("out")
    es.add_argument("--threads", type=int, default=1, help="Dask workers (1: run in this process)")
    es.add_argument("--summary", default=None, help="write the stage summary JSON here")
    es.add_argument("--failure-log", default=None, help="append failed samples (JSON lines) here")
    es.set_defaults(func=cmd_elastic_ls_solve)

    cg = sub.add_parser("cp_grid", help="FCC polycrystal plasticity on voxel grids (paper gcnn A.2)").add_subparsers(
        dest="step", required=True)
    cs = with_config(cg.add_parser("solve", help="generate and solve the polycrystals (Dask)"))
    cs.add_argument("dim", choices=["2d", "3d"])
    cs.add_argument("out")
    cs.add_argument("--threads", type=int, default=1, help="Dask workers (1: run in this process)")
    cs.add_argument("--summary", default=None, help="write the stage summary JSON here")
    cs.add_argument("--failure-log", default=None, help="append failed samples (JSON lines) here")
    cs.set_defaults(func=cmd_cp_grid_solve)

    cq = sub.add_parser("cp_paths2d", help="2D polycrystal under random F paths (paper rno 5.1)").add_subparsers(
        dest="step", required=True)
    cqs = with_config(cq.add_parser("solve", help="solve the random paths (Dask)"))
    cqs.add_argument("out")
    cqs.add_argument("--threads", type=int, default=1, help="Dask workers (1: run in this process)")
    cqs.add_argument("--summary", default=None, help="write the stage summary JSON here")
    cqs.add_argument("--failure-log", default=None, help="append failed samples (JSON lines) here")
    cqs.set_defaults(func=cmd_cp_paths2d_solve)
    cqt = with_config(cq.add_parser("train", help="train a PCA-Net or a pressure / deviatoric RNO (pcanet, rno 5.1)"))
    cqt.add_argument("model", choices=["pcanet", "rno_pressure", "rno_deviatoric"])
    cqt.add_argument("dataset", help="the cp_paths2d Zarr store")
    cqt.add_argument("out", help="model directory")
    cqt.add_argument("--k", type=int, default=None, help="RNO internal variables")
    cqt.add_argument("--n-train", type=int, default=None, help="first n paths of the training split (0: all)")
    cqt.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    cqt.set_defaults(func=cmd_cp_paths2d_train)
    cqn = with_config(cq.add_parser("named", help="solve the named test paths of pcanet Fig. 1e-g on the same cell"))
    cqn.add_argument("out", help="Zarr store to write")
    cqn.add_argument("--summary", default=None, help="write the summary JSON here")
    cqn.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    cqn.set_defaults(func=cmd_cp_paths2d_named)
    cqe = with_config(cq.add_parser("evaluate", help="one surrogate experiment (pcanet Fig. 1a/1d/1e-g/2, rno Fig. 7)"))
    cqe.add_argument("experiment", choices=["fig1a", "fig1d", "fig1eg", "fig2", "fig7bc"])
    cqe.add_argument("dataset", help="the cp_paths2d Zarr store")
    cqe.add_argument("models", help="directory of the model directories")
    cqe.add_argument("out")
    cqe.add_argument("--named", default=None, help="fig1eg: the named-path store")
    cqe.set_defaults(func=cmd_cp_paths2d_evaluate)

    ve = sub.add_parser("viscoelastic3d", help="viscoelastic matrix with glass spheres (paper gcnn 3.3)").add_subparsers(
        dest="step", required=True)
    vm = with_config(ve.add_parser("microstructure", help="pack spheres and mesh them with gmsh (Dask)"))
    vm.add_argument("out")
    vs = with_config(ve.add_parser("solve", help="viscoelastic tension with DOLFINx (Dask)"))
    vs.add_argument("microstructures")
    vs.add_argument("out")
    for sp, fn in ((vm, cmd_viscoelastic3d_microstructure), (vs, cmd_viscoelastic3d_solve)):
        sp.add_argument("--threads", type=int, default=1, help="Dask workers (1: run in this process)")
        sp.add_argument("--summary", default=None, help="write the stage summary JSON here")
        sp.add_argument("--failure-log", default=None, help="append failed samples (JSON lines) here")
        sp.set_defaults(func=fn)

    c1 = sub.add_parser("composite1d", help="1D elasto-viscoplastic composites (paper rno section 3)").add_subparsers(
        dest="step", required=True)
    c1s = with_config(c1.add_parser("solve", help="draw and solve every composite and strain path (Dask)"))
    c1s.add_argument("out")
    la = sub.add_parser("laminate", help="elasto-viscoplastic laminate (paper rno section 4)").add_subparsers(
        dest="step", required=True)
    ls = with_config(la.add_parser("solve", help="solve every strain path for one Table 1 case (Dask)"))
    ls.add_argument("case", help="Table 1 case: MH, M1, M2, M3, M4, MH-EH or M3-EH")
    ls.add_argument("out")
    for sp, fn in ((c1s, cmd_composite1d_solve), (ls, cmd_laminate_solve)):
        sp.add_argument("--threads", type=int, default=1, help="Dask workers (1: run in this process)")
        sp.add_argument("--summary", default=None, help="write the stage summary JSON here")
        sp.add_argument("--failure-log", default=None, help="append failed samples (JSON lines) here")
        sp.set_defaults(func=fn)

    mg = sub.add_parser("mg_taylor", help="Taylor-averaged magnesium under random stretch paths (paper pcanet)"
                        ).add_subparsers(dest="step", required=True)
    ms = with_config(mg.add_parser("solve", help="draw and solve the paths of one case (Dask)"))
    ms.add_argument("case", help="a case name of mg_taylor.cases (e.g. r10)")
    ms.add_argument("out")
    ms.add_argument("--threads", type=int, default=1, help="Dask workers (1: run in this process)")
    ms.add_argument("--summary", default=None, help="write the stage summary JSON here")
    ms.add_argument("--failure-log", default=None, help="append failed samples (JSON lines) here")
    ms.set_defaults(func=cmd_mg_taylor_solve)

    hi = sub.add_parser("history", help="RNO / GRU surrogates of stress histories (paper rno)").add_subparsers(
        dest="step", required=True)
    ht = with_config(hi.add_parser("train", help="train one model on composite1d (one N) or laminate (one case)"))
    ht.add_argument("exemplar", choices=["composite1d", "laminate"])
    ht.add_argument("dataset", help="the Zarr store")
    ht.add_argument("out", help="model directory")
    ht.add_argument("--model", default="rno", choices=["rno", "rno_ve", "gru", "lstm"])
    ht.add_argument("--k", type=int, default=1, help="internal variables")
    ht.add_argument("--group", type=int, default=None, help="composite1d: the number of segments N")
    ht.add_argument("--init", default=None, help="start from this trained model (transfer learning)")
    ht.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ht.set_defaults(func=cmd_history_train)
    he = with_config(hi.add_parser("evaluate", help="metrics and figures of an rno experiment"))
    he.add_argument("exemplar", choices=["composite1d", "laminate"])
    he.add_argument("data", help="composite1d: the store; laminate: the directory of laminate_<case>.zarr")
    he.add_argument("models", help="directory of the model directories")
    he.add_argument("out")
    he.add_argument("--resolution", action="store_true", help="composite1d: also the resolution study (Fig. 10a)")
    he.set_defaults(func=cmd_history_evaluate)
    hs = hi.add_parser("summary", help="results/summary/history_surrogates.md from metrics JSON files")
    hs.add_argument("out")
    hs.add_argument("metrics", nargs="+")
    hs.set_defaults(func=cmd_history_summary)
    from homlearn.evaluate.laminate_studies_cli import add_study_commands

    add_study_commands(hi, with_config, _config)  # laminate-study, autoencoder-train, autoencoder-evaluate

    rl = sub.add_parser("rln", help="FLN / RLN-t / RLN strain-field surrogates on elastic_ls (paper rln)"
                        ).add_subparsers(dest="step", required=True)
    rt = with_config(rl.add_parser("train", help="train one variant on one elastic_ls store"))
    rt.add_argument("dataset", help="the elastic_ls Zarr store")
    rt.add_argument("out", help="model directory")
    rt.add_argument("--model", default="rln", choices=["fln", "rln_t", "rln"])
    rt.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    rt.set_defaults(func=cmd_rln_train)
    re_ = with_config(rl.add_parser("evaluate", help="MASE table, figures and timings of the three variants"))
    re_.add_argument("dataset", help="the elastic_ls Zarr store")
    re_.add_argument("models", help="directory holding fln/, rln_t/, rln/")
    re_.add_argument("out")
    re_.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    re_.set_defaults(func=cmd_rln_evaluate)
    rs = rl.add_parser("summary", help="results/summary/field_surrogates.md from metrics JSON files")
    rs.add_argument("out")
    rs.add_argument("metrics", nargs="+")
    rs.set_defaults(func=cmd_rln_summary)

    si = sub.add_parser("summary", help="results/summary/README.md: one reproduction table for the four papers")
    si.add_argument("out")
    si.add_argument("summaries", nargs="+", help="experiment summaries (Markdown tables); missing ones are listed")
    si.set_defaults(func=cmd_summary_index)

    from homlearn.cli_mg_taylor import register as register_mg_taylor

    register_mg_taylor(sub, with_config, _config)  # rno_mg_taylor classical|jc|train|evaluate

    from homlearn.cli_gcnn import register as register_gcnn

    register_gcnn(sub, with_config, _config)  # gcnn train (cp_grid2d/3d, viscoelastic3d)

    x = sub.add_parser("export", help="one sample's mesh and fields to VTU/XDMF")
    x.add_argument("store")
    x.add_argument("sample", type=int)
    x.add_argument("out")
    x.set_defaults(func=cmd_export)

    st = sub.add_parser("store", help="check or hash a dataset store").add_subparsers(dest="action", required=True)
    sv = st.add_parser("verify", help="detect a corrupted, truncated or incomplete store")
    sv.add_argument("store")
    sv.add_argument("--quick", action="store_true", help="structure and chunk files only, no decoding")
    sv.add_argument("--allow-pending", action="store_true", help="a store whose stage has not finished yet")
    sv.set_defaults(func=cmd_store_verify)
    sh = st.add_parser("hash", help="SHA-256 of every variable's values (not of the chunk files)")
    sh.add_argument("store")
    sh.add_argument("--variables", action="store_true", help="also print one hash per variable")
    sh.set_defaults(func=cmd_store_hash)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"homlearn: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
