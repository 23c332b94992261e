"""A real single-node SLURM on localhost for the tests: munged + slurmctld + slurmd under a temporary directory.

Everything lives under one directory (keys, sockets, state, spool, logs, ``slurm.conf``), so nothing in
``/etc`` is touched and several harnesses can run side by side on free ports. The daemons run in the
foreground (``-D``/``-F``) as children of this process and are stopped by their PIDs.

What works as root in an unprivileged sandbox (no systemd, no cgroups, gVisor): ``SlurmUser=root``,
``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``, ``JobAcctGatherType=jobacct_gather/none``,
``SelectType=select/cons_tres`` with ``CR_Core`` so array tasks share the node, and the node's real CPU count and
memory from ``slurmd -C``. Munge runs with its own key and socket; ``AuthInfo=socket=...`` points the Slurm
daemons and clients at it. Every client call needs ``SLURM_CONF`` in its environment: use :attr:`LocalSlurm.env`.

Use from the command line to get a SLURM to play with::

    python tests/slurm_harness.py          # prints `export SLURM_CONF=...`, Ctrl-C stops the daemons
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "srun")
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
NODE_NAME = "localhost"
PARTITION = "debug"
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                             "BOOT_FAIL", "DEADLINE", "PREEMPTED"})

SLURM_CONF_TEMPLATE = """\
# Minimal single-node SLURM for tests (written by tests/slurm_harness.py).
ClusterName=xrdtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
SchedulerParameters=sched_interval=2
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


def missing_binaries() -> list[str]:
    """Names of the SLURM/munge programs not found on PATH or in the sbin directories."""
    return [name for name in BINARIES if _which(name) is None]


def _which(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which(name, path=path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_resources() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) as ``slurmd -C`` reports them, memory minus 10 % headroom."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    cpus = int(re.search(r"CPUs=(\d+)", out).group(1))
    memory_mb = int(re.search(r"RealMemory=(\d+)", out).group(1))
    return cpus, max(1, int(memory_mb * 0.9))


class SlurmStartError(RuntimeError):
    """The daemons did not come up; the message carries the tail of their logs."""


@dataclass
class LocalSlurm:
    """A running single-node SLURM; create with :meth:`start`, stop with :meth:`stop` (or use as a context).

    Attributes
    ----------
    root : Path
        Directory with slurm.conf, the munge key/socket, state, spool and logs.
    env : dict
        ``os.environ`` plus ``SLURM_CONF``: pass it to every ``sbatch``/``squeue``/``scontrol`` call.
    cpus : int
        CPUs of the one node (named ``localhost``, partition ``debug``).
    """

    root: Path
    env: dict
    cpus: int
    memory_mb: int
    procs: dict = field(default_factory=dict)
    _own_root: bool = False

    # ----------------------------------------------------------------------------------- start ----
    @classmethod
    def start(cls, root: str | os.PathLike | None = None, timeout_s: float = 60.0) -> "LocalSlurm":
        """Write the configuration, start munged, slurmctld and slurmd, wait until the node is idle."""
        missing = missing_binaries()
        if missing:
            raise SlurmStartError(f"SLURM/munge programs not found: {missing}; install Debian's slurm-wlm and "
                                  f"munge (`.ci/system-deps` does) and try again")
        own = root is None
        root = Path(tempfile.mkdtemp(prefix="xrdslurm-")) if own else Path(root)
        for sub in ("state", "spool", "run", "log", "munge"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        # munged insists on private directories for its key and socket
        os.chmod(root, 0o755)
        os.chmod(root / "munge", 0o700)
        cpus, memory_mb = _node_resources()
        conf = root / "slurm.conf"
        munge_socket = root / "munge" / "munge.socket"
        conf.write_text(SLURM_CONF_TEMPLATE.format(
            node=NODE_NAME, partition=PARTITION, root=root, munge_socket=munge_socket, cpus=cpus,
            memory_mb=memory_mb, ctld_port=_free_port(), slurmd_port=_free_port()))
        env = dict(os.environ, SLURM_CONF=str(conf))
        self = cls(root=root, env=env, cpus=cpus, memory_mb=memory_mb, _own_root=own)
        try:
            self._start_munge(munge_socket)
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(conf)])
            self._wait_for(lambda: self._ok([_which("scontrol"), "ping"]) and "UP" in self._run(
                [_which("scontrol"), "ping"]), timeout_s, "slurmctld answers `scontrol ping`")
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", NODE_NAME, "-f", str(conf)])
            self._wait_for(self._node_idle, timeout_s, f"node {NODE_NAME} reaches state idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self, socket_path: Path) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._spawn("munged", [_which("munged"), "--foreground", "--force", f"--socket={socket_path}",
                               f"--key-file={key}", f"--pid-file={self.root / 'run' / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        self._wait_for(socket_path.exists, 20, f"munged creates its socket {socket_path}")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        log.close()

    def _wait_for(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmStartError(f"{name} exited with code {proc.returncode} while waiting until "
                                          f"{what}\n{self.logs()}")
            if predicate():
                return
            time.sleep(0.3)
        raise SlurmStartError(f"timed out after {timeout_s} s waiting until {what}\n{self.logs()}")

    def _node_idle(self) -> bool:
        out = self._run([_which("sinfo"), "-h", "-N", "-o", "%T", "-n", NODE_NAME])
        return out.strip().rstrip("*").startswith("idle")

    def _run(self, argv: list[str]) -> str:
        p = subprocess.run(argv, capture_output=True, text=True, env=self.env)
        return p.stdout

    def _ok(self, argv: list[str]) -> bool:
        return subprocess.run(argv, capture_output=True, env=self.env).returncode == 0

    # ------------------------------------------------------------------------------------ jobs ----
    def sbatch(self, script: str | os.PathLike, *args: str, cwd: str | os.PathLike | None = None) -> str:
        """Submit ``script`` with ``sbatch --parsable``; returns the job id."""
        p = subprocess.run([_which("sbatch"), "--parsable", *args, str(script)], capture_output=True,
                           text=True, env=self.env, cwd=cwd)
        if p.returncode != 0:
            raise RuntimeError(f"sbatch {script} failed ({p.returncode}): {p.stderr}\n{self.logs()}")
        return p.stdout.strip().split(";")[0]

    def job_states(self, job_id: str) -> dict[str, str]:
        """``{job id (with _task for arrays): state}`` from ``scontrol show job``."""
        out = self._run([_which("scontrol"), "-o", "show", "job", str(job_id)])
        states = {}
        for line in out.splitlines():
            jid = re.search(r"\bJobId=(\S+)", line)
            task = re.search(r"\bArrayTaskId=(\S+)", line)
            array = re.search(r"\bArrayJobId=(\S+)", line)
            state = re.search(r"\bJobState=(\S+)", line)
            if not (jid and state):
                continue
            key = f"{array.group(1)}_{task.group(1)}" if (array and task) else jid.group(1)
            states[key] = state.group(1)
        return states

    def wait(self, job_ids, timeout_s: float = 600.0) -> dict[str, str]:
        """Wait until every job (and every array task) is in a terminal state; return all states."""
        job_ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            states = {}
            for jid in job_ids:
                states.update(self.job_states(jid))
            pending_array = any("[" in k for k in states)  # "123_[1-3]" while tasks are not yet split off
            if states and not pending_array and all(s in TERMINAL_STATES for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs {job_ids} not finished after {timeout_s} s: {states}\n"
                                   f"{self._run([_which('squeue'), '-a'])}\n{self.logs()}")
            time.sleep(1.0)

    def logs(self, tail_lines: int = 25) -> str:
        """The last lines of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail_lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    # ------------------------------------------------------------------------------------ stop ----
    def stop(self) -> None:
        """Stop slurmd, slurmctld and munged by PID (SIGTERM, then SIGKILL after 15 s)."""
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalSlurm":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover - interactive helper
    cluster = LocalSlurm.start()
    print(f"export SLURM_CONF={cluster.env['SLURM_CONF']}   # node {NODE_NAME}: {cluster.cpus} CPUs; Ctrl-C stops")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
