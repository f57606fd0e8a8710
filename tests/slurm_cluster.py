"""A real Slurm cluster for tests: munged, slurmctld and two slurmd on 127.0.0.1, in a temp folder.

Debian's ``slurm-wlm`` and ``munge`` (``make system-packages`` installs them). Everything the
cluster writes (munge key, socket, state, spool, logs, ``slurm.conf``) lives in one folder, the
ports are free ones picked at start, and the client commands find the cluster through
``SLURM_CONF``: nothing outside the folder is touched, and a system-wide Slurm (if any) is left alone.

Two nodes of one CPU each (two slurmd processes, ``slurmd -N``) rather than one node of two: the
same two cores, but ``train/slurm.sh`` then runs as on a real multi-node allocation (one srun task
per node, a c10d rendezvous at the first node's address). ``proctrack/linuxproc`` and
``task/none`` need no cgroups, so the cluster starts inside a container.

Why root: slurmd starts each job as the user who submitted it, and munged runs as the ``munge``
user the package creates (it refuses a key or socket folder that others may write).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ports import free_ports

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "srun")
FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}
)
NODES = ("litedge1", "litedge2")


class SlurmUnavailable(Exception):
    """Slurm cannot start here; the message says why (the tests skip with it)."""


def missing_prerequisite() -> str | None:
    """Why this machine cannot run the cluster at all, or None."""
    absent = [b for b in BINARIES if shutil.which(b) is None]
    if absent:
        return f"Slurm/munge not installed ({', '.join(absent)} missing): make system-packages installs slurm-wlm and munge"
    if os.geteuid() != 0:
        return "a Slurm cluster needs root (slurmd starts jobs as their user, munged runs as 'munge')"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (Debian's munge package creates it)"
    return None


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (which also cancels every job left)."""

    def __init__(self, cpus_per_node: int = 1, real_memory_mb: int = 4096):
        self.cpus_per_node = cpus_per_node
        self.real_memory_mb = real_memory_mb
        self.root = Path(tempfile.mkdtemp(prefix="lit-edge-slurm-"))
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._daemons: list[subprocess.Popen] = []  # what this cluster started

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> SlurmCluster:
        self.root.chmod(0o755)  # munged (user munge) must reach its socket folder
        munge = pwd.getpwnam("munge")
        for d in ("munge", "run", "state", "spool", "log"):
            (self.root / d).mkdir()
        key_dir, run = self.root / "munge", self.root / "run"
        (key_dir / "munge.key").write_bytes(os.urandom(1024))
        for p, mode in ((key_dir, 0o700), (key_dir / "munge.key", 0o400), (run, 0o755)):
            os.chown(p, munge.pw_uid, munge.pw_gid)
            p.chmod(mode)
        self.socket = run / "munge.sock"
        self._spawn(
            [
                "munged", "--foreground",
                f"--socket={self.socket}", f"--key-file={key_dir / 'munge.key'}",
                f"--log-file={key_dir / 'munged.log'}", f"--pid-file={run / 'munged.pid'}",
                f"--seed-file={key_dir / 'munged.seed'}",
            ],
            ready=self.socket,
            user=munge.pw_uid,
            group=munge.pw_gid,
        )  # fmt: skip
        ctld_port, *node_ports = free_ports(1 + len(NODES))
        self.conf.write_text(self._slurm_conf(ctld_port, node_ports))
        self._spawn(["slurmctld", "-D", "-f", str(self.conf)])
        for node in NODES:
            self._spawn(["slurmd", "-D", "-f", str(self.conf), "-N", node])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_daemons()
            states = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False).stdout.split()
            if states.count("idle") == len(NODES):
                return self
            time.sleep(0.2)
        raise SlurmUnavailable(f"the nodes did not come up in {timeout_s:.0f} s:\n{self.logs()}")

    def _slurm_conf(self, ctld_port: int, node_ports: list[int]) -> str:
        host, me, r = socket.gethostname(), pwd.getpwuid(os.geteuid()).pw_name, self.root
        nodes = "\n".join(
            f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname={host} Port={p} CPUs={self.cpus_per_node} "
            f"RealMemory={self.real_memory_mb} State=UNKNOWN"
            for n, p in zip(NODES, node_ports, strict=True)
        )
        return f"""# written by tests/slurm_cluster.py
ClusterName=litedge
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser={me}
SlurmdUser={me}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=5
SchedulerParameters=sched_interval=1,sched_min_interval=0,batch_sched_delay=0
MinJobAge=3600
{nodes}
PartitionName=debug Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP
"""

    def _spawn(self, cmd: list[str], ready: Path | None = None, timeout_s: float = 10.0, **popen) -> None:
        """Start a daemon in the foreground as a child of this process (stopped by :meth:`stop`)."""
        with open(self.root / "log" / f"{len(self._daemons)}-{Path(cmd[0]).name}.out", "wb") as log:
            proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, **popen)
        self._daemons.append(proc)
        deadline = time.monotonic() + timeout_s
        while ready is not None and not ready.exists() and time.monotonic() < deadline:
            self._check_daemons()
            time.sleep(0.05)
        if ready is not None and not ready.exists():
            raise SlurmUnavailable(f"{cmd[-1]} not ready in {timeout_s:.0f} s\n{self.logs()}")

    def _check_daemons(self) -> None:
        for proc in self._daemons:
            if proc.poll() is not None:
                raise SlurmUnavailable(f"{' '.join(proc.args)} exited ({proc.returncode})\n{self.logs()}")

    def stop(self) -> None:
        """Cancel what is left, stop the daemons this cluster started and delete its folder."""
        if self.conf.exists() and all(p.poll() is None for p in self._daemons):
            self.run(["scancel", "--full", f"--user={os.geteuid()}"], check=False)
        for proc in reversed(self._daemons):  # slurmd first, munged last
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self, lines: int = 15) -> str:
        out = []
        logs = self.root / "log"
        for f in [
            *sorted(logs.glob("*.log")),
            *sorted(logs.glob("*.out")),
            self.root / "munge" / "munged.log",
        ]:
            if not f.exists():
                continue
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {f.name}\n" + "\n".join(tail))
        return "\n".join(out)

    # -- client commands -------------------------------------------------------------------------
    def run(self, cmd: list[str], *, env: dict | None = None, check: bool = True, timeout_s: float = 30.0):
        res = subprocess.run(
            cmd, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout_s
        )
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr}\n{self.logs()}")
        return res

    def sbatch(self, args: list[str], *, env: dict | None = None, cwd: Path | None = None) -> str:
        """Submit; returns the job id. ``env`` is added to the submitting environment (exported)."""
        res = subprocess.run(
            ["sbatch", "--parsable", *args],
            env={**self.env, **(env or {})},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if res.returncode != 0:
            raise AssertionError(f"sbatch {' '.join(args)} failed: {res.stderr}\n{self.logs()}")
        return res.stdout.strip().split(";")[0]

    def states(self, job: str) -> dict[str, str]:
        """``{task id ('' for a plain job): state}`` of every task of ``job`` the controller knows."""
        out = self.run(["scontrol", "-o", "show", "job", job], check=False).stdout
        states = {}
        for line in out.splitlines():
            task = re.search(r"\bArrayTaskId=(\S+)", line)
            state = re.search(r"\bJobState=(\S+)", line)
            if state:
                states[task.group(1) if task else ""] = state.group(1)
        return states

    def wait(self, job: str, timeout_s: float = 300.0, until=None) -> dict[str, str]:
        """Wait until every task of ``job`` has ended (or ``until(states)`` holds); returns the states."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = self.states(job)
            if states and (until(states) if until else all(s in FINAL_STATES for s in states.values())):
                return states
            time.sleep(0.2)
        raise AssertionError(f"job {job} still {self.states(job)} after {timeout_s:.0f} s\n{self.logs()}")
