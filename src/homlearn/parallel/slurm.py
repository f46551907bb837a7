"""Dask workers as SLURM jobs for one solve stage (DESIGN section 5, config ``dask.slurm``).

The stage's driver (its Snakemake job, one CPU) starts a ``dask_jobqueue.SLURMCluster`` and scales
it adaptively between ``minimum_jobs`` and ``maximum_jobs`` worker jobs. Each job runs
``processes`` single-threaded workers; the job script exports the one-thread BLAS/OpenMP settings
of local workers, the driver's ``PYTHONPATH`` (this checkout of homlearn) and its
``XDG_CACHE_HOME``, where the driver has just compiled the FFCx forms: workers load them instead
of compiling (a warm JIT cache, on the shared filesystem every SLURM cluster has).

Long stages outlive the walltime of a worker job: every worker retires after ``lifetime`` (spread
by ``lifetime_stagger`` so they do not leave together), its unfinished task moves to another
worker, and the adaptive cluster submits a fresh job. A batch is one task that writes whole
chunks and its status last, so a task cut short by a lost worker is simply run again.

If the driver's job is cancelled (``scancel``, walltime), SLURM sends SIGTERM: the driver turns
it into SystemExit, so the cluster is closed and its worker jobs are cancelled with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

from homlearn.parallel.cluster import SINGLE_THREAD_ENV

LIFETIME_MARGIN_S = 120  # a retiring worker's last task needs time to finish or move


def walltime_seconds(walltime: str) -> int:
    """A SLURM time limit in seconds, read as sbatch reads it: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d{2}))?(?::(\d{2}))?", walltime.strip())
    if not m:
        raise ValueError(f"config key 'dask.slurm.walltime': {walltime!r} is not [D-]HH:MM:SS")
    days, *rest = m.groups()
    parts = [int(x) for x in rest if x is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mi, s = (parts + [0, 0])[:3]
        return int(days) * 86400 + h * 3600 + mi * 60 + s
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def worker_lifetime(slurm_cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(lifetime, stagger) in seconds: the configured lifetime, else walltime - stagger - margin.
    Every worker must retire (lifetime + stagger) before its job's walltime."""
    wall = walltime_seconds(slurm_cfg["walltime"])
    stagger = _duration("lifetime_stagger", slurm_cfg["lifetime_stagger"])
    if slurm_cfg.get("lifetime"):
        life = _duration("lifetime", slurm_cfg["lifetime"])
    else:
        life = wall - stagger - LIFETIME_MARGIN_S
    if life <= stagger or life + stagger >= wall:
        raise ValueError(
            f"config keys 'dask.slurm.lifetime' ({life} s) and 'dask.slurm.lifetime_stagger' ({stagger} s) "
            f"must satisfy stagger < lifetime and lifetime + stagger < walltime ({wall} s)")
    return life, stagger


def _duration(key: str, value: str) -> int:
    from dask.utils import parse_timedelta

    try:
        return int(parse_timedelta(value, default="s"))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"config key 'dask.slurm.{key}': {value!r} is not a duration like '50m', '2h', '300s'") from None


def job_prologue(env: Mapping[str, str] | None = None, cwd: str | None = None) -> list[str]:
    """Job-script lines: one BLAS/OpenMP thread, this checkout on PYTHONPATH, the driver's JIT
    cache, the driver's working directory (relative store paths)."""
    env = os.environ if env is None else env
    exports = dict(SINGLE_THREAD_ENV)
    src = str(Path(__file__).resolve().parents[2])  # .../src, so workers import this homlearn
    exports["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p and p != src])
    exports["XDG_CACHE_HOME"] = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
    return lines + [f"cd {shlex.quote(cwd or os.getcwd())}"]


def cluster_kwargs(slurm_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``SLURMCluster`` arguments from the config section ``dask.slurm``."""
    cores = int(slurm_cfg["cores"])
    processes = int(slurm_cfg.get("processes") or cores)
    life, stagger = worker_lifetime(slurm_cfg)
    kwargs = {
        "cores": cores,
        "processes": processes,
        "memory": slurm_cfg["memory"],
        "walltime": slurm_cfg["walltime"],
        # the driver's own partition and account by default (the jobstep drops SBATCH_* from its env)
        "queue": slurm_cfg.get("queue") or os.environ.get("SBATCH_PARTITION") or os.environ.get("SLURM_JOB_PARTITION"),
        "account": slurm_cfg.get("account") or os.environ.get("SBATCH_ACCOUNT") or os.environ.get("SLURM_JOB_ACCOUNT"),
        "interface": slurm_cfg.get("interface"),
        "job_extra_directives": list(slurm_cfg.get("job_extra_directives", [])),
        "job_script_prologue": job_prologue(),
        "local_directory": slurm_cfg.get("local_directory"),
        "log_directory": slurm_cfg["log_directory"],
        "death_timeout": int(slurm_cfg["death_timeout"]),
        "python": sys.executable,
        "worker_extra_args": [f"--lifetime={life}s", f"--lifetime-stagger={stagger}s", "--no-dashboard"],
        "scheduler_options": {"dashboard_address": None},
    }
    return {k: v for k, v in kwargs.items() if v is not None}


@contextlib.contextmanager
def slurm_cluster(slurm_cfg: Mapping[str, Any]) -> Iterator[Any]:
    """An adaptive SLURMCluster for one stage; closed (worker jobs cancelled) on exit or SIGTERM."""
    import dask
    from dask_jobqueue import SLURMCluster

    kwargs = cluster_kwargs(slurm_cfg)
    Path(kwargs["log_directory"]).mkdir(parents=True, exist_ok=True)
    with _sigterm_exits(), dask.config.set({"distributed.scheduler.allowed-failures":
                                            int(slurm_cfg["allowed_failures"])}):
        with SLURMCluster(**kwargs) as cluster:
            cluster.adapt(minimum_jobs=int(slurm_cfg["minimum_jobs"]),
                          maximum_jobs=int(slurm_cfg["maximum_jobs"]))
            yield cluster


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM (scancel, walltime) raises SystemExit in the main thread, so ``with`` blocks close."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
