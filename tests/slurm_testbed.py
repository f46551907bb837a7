"""A real one-node SLURM cluster on localhost for the tests (Debian's slurm-wlm 22.05 and munge).

``one_node_cluster(root)`` installs the packages if they are missing (apt-get, root), writes a
munge key and ``/etc/slurm/slurm.conf`` + ``gres.conf`` (backing up and restoring any existing
ones), starts munged, slurmctld and slurmd in the foreground as child processes, waits for the
node to be idle, and on exit cancels every job and stops the three daemons by their PIDs.

Facts of this set-up (NOTES.md, "SLURM in a container"):
* slurm.conf must be at /etc/slurm/slurm.conf: the Snakemake jobstep plugin drops SLURM_CONF
  from the environment of its ``srun``;
* no cgroups: proctrack/linuxproc and task/none;
* no slurmdbd: sacct cannot report jobs, Snakemake needs ``--slurm-status-command squeue``;
* the node has 2 CPUs and one fake GPU (gres with File=/dev/null): jobs asking --gpus=1 are
  scheduled and see CUDA_VISIBLE_DEVICES=0, and torch finds no CUDA device and runs on CPU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
CONF_DIR = Path("/etc/slurm")
CPUS = 2


def ensure_packages() -> None:
    """apt-get install the SLURM daemons and munge if they are missing (services not started)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("the SLURM test needs slurm-wlm and munge: run as root on Debian (apt-get), "
                           f"or install {' '.join(PACKAGES)}")
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:  # keep the packages' init scripts from starting daemons we would not own
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", *PACKAGES]
    try:
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
            subprocess.run(cmd, env=env, check=True, capture_output=True)
    finally:
        if added_policy:
            policy.unlink()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(root: Path, host: str, memory_mb: int) -> str:
    sock = root / "munge" / "munge.sock"
    return f"""# written by tests/slurm_testbed.py (restored afterwards)
ClusterName=homlearntest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=10
InactiveLimit=0
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _wait_idle(deadline_s: float, procs: dict) -> None:
    t_end = time.time() + deadline_s
    while time.time() < t_end:
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}")
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == "idle":
            return
        time.sleep(0.5)
    raise RuntimeError("the SLURM node did not become idle")


def squeue_ids() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split()


def jobs() -> list[dict]:
    """Every job slurmctld still knows (MinJobAge keeps finished ones), as scontrol key=value dicts."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        if not line.strip() or line.startswith("No jobs"):
            continue
        row = {}
        for item in line.split():
            k, _, v = item.partition("=")
            row[k] = v
        rows.append(row)
    return rows


@contextlib.contextmanager
def one_node_cluster(root: Path) -> Iterator[dict]:
    """Start munged, slurmctld and slurmd (2 CPUs, one fake GPU) under ``root``; stop them on exit."""
    ensure_packages()
    root = Path(root)
    for d in ("munge", "state", "spool", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o711)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    memory_mb = min(8000, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2)
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    backups = {}
    for name in ("slurm.conf", "gres.conf"):
        f = CONF_DIR / name
        if f.exists():
            backups[name] = root / f"{name}.backup"
            shutil.copy2(f, backups[name])
    procs: dict[str, subprocess.Popen] = {}
    logs = {n: open(root / "log" / f"{n}.out", "w") for n in ("munged", "slurmctld", "slurmd")}
    try:
        (CONF_DIR / "slurm.conf").write_text(slurm_conf(root, host, memory_mb))
        (CONF_DIR / "gres.conf").write_text(f"NodeName={host} Name=gpu File=/dev/null\n")
        procs["munged"] = subprocess.Popen(
            ["munged", "-F", "--force", f"--key-file={key}", f"--socket={root}/munge/munge.sock",
             f"--pid-file={root}/munge/munged.pid", f"--log-file={root}/log/munged.log",
             f"--seed-file={root}/munge/seed"], stdout=logs["munged"], stderr=subprocess.STDOUT)
        _wait_for(lambda: (root / "munge" / "munge.sock").exists(), 20, "munged socket")
        procs["slurmctld"] = subprocess.Popen(["slurmctld", "-D", "-c", "-i"], stdout=logs["slurmctld"],
                                              stderr=subprocess.STDOUT)
        procs["slurmd"] = subprocess.Popen(["slurmd", "-D", "-N", host], stdout=logs["slurmd"],
                                           stderr=subprocess.STDOUT)
        _wait_idle(60, procs)
        yield {"root": root, "host": host, "cpus": CPUS, "procs": procs}
    finally:
        try:
            if "slurmctld" in procs and procs["slurmctld"].poll() is None:
                subprocess.run(["scancel", "--full", "--user", str(os.geteuid())], capture_output=True)
                _wait_for(lambda: not squeue_ids(), 60, "cancelled jobs to leave the queue", raise_=False)
        finally:
            for name in ("slurmd", "slurmctld", "munged"):
                p = procs.get(name)
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
            for fh in logs.values():
                fh.close()
            for name in ("slurm.conf", "gres.conf"):
                if name in backups:
                    shutil.copy2(backups[name], CONF_DIR / name)
                else:
                    (CONF_DIR / name).unlink(missing_ok=True)


def _wait_for(cond, seconds: float, what: str, raise_: bool = True) -> bool:
    t_end = time.time() + seconds
    while time.time() < t_end:
        if cond():
            return True
        time.sleep(0.2)
    if raise_:
        raise RuntimeError(f"timed out waiting for {what}")
    return False
