"""A one-node SLURM cluster on loopback for the scale-out tests.

It installs Debian's munge and SLURM packages when they are missing (root and
apt-get needed), writes ``/etc/slurm/slurm.conf`` for one node at 127.0.0.1
with this machine's CPUs and memory, starts munged, slurmctld and slurmd in the
foreground as child processes, waits until the node is idle, and stops them by
PID. Everything the daemons write lives under one state folder.

Command line: ``python tests/workflow/slurm_cluster.py start STATE_DIR`` (prints the
PIDs and leaves the daemons running) and ``python tests/workflow/slurm_cluster.py stop
STATE_DIR``.

Facts this relies on (SLURM 22.05 as Debian 12 ships it):
- the job-step plugin drops SLURM_CONF, so the config must sit at the default path;
- without slurmdbd, finished jobs are only visible to squeue, so MinJobAge keeps
  them listed for 300 s and the workflow's profile checks status with squeue;
- without DefMemPerCPU one job is given the whole node's memory.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
CONFIG_PATH = Path("/etc/slurm/slurm.conf")
# SLURM's munge plugin and clients look for munged at its default socket.
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
CONFIG_MARK = "# written by pixelflow's test cluster harness"
NODE_NAME = "pixelflow-node"
DAEMONS = ("munged", "slurmctld", "slurmd")


# Snakemake options for this cluster: without slurmdbd there is no accounting,
# so finished jobs are seen with squeue (MinJobAge keeps them listed), and jobs
# go in without an account. Status checks start at once, as these jobs take seconds.
SNAKEMAKE_ARGS = (
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
)


class ClusterUnavailable(RuntimeError):
    """This machine cannot run the test cluster (no root, no apt-get, install failed)."""


def missing_packages() -> list[str]:
    """The Debian packages of the cluster that are not installed."""
    missing = []
    for package in PACKAGES:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in status.stdout:
            missing.append(package)
    return missing


def install_packages() -> None:
    """apt-get install the missing packages; raise ClusterUnavailable when that cannot work."""
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        raise ClusterUnavailable("apt-get and dpkg-query are needed to install SLURM and munge")
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"packages {', '.join(missing)} are missing and installing them needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(command, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ClusterUnavailable(f"apt-get install {' '.join(missing)} failed:\n{result.stderr[-2000:]}")


def node_resources() -> tuple[int, int]:
    """(CPUs, memory in MB) of this machine, as slurmd itself reports them."""
    report = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in report.split() if "=" in item)
    return int(fields["CPUs"]), int(fields["RealMemory"])


def slurm_config(state: Path, cpus: int, memory_mb: int) -> str:
    """slurm.conf text for one node on loopback, all state under ``state``."""
    mem_per_cpu = max(256, memory_mb // (2 * cpus))
    return f"""{CONFIG_MARK}
ClusterName=pixelflow
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation={state}/slurmctld
SlurmdSpoolDir={state}/slurmd
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=300
DefMemPerCPU={mem_per_cpu}
SlurmdTimeout=60
NodeName={NODE_NAME} NodeAddr=127.0.0.1 NodeHostname={NODE_NAME} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={NODE_NAME} Default=YES MaxTime=INFINITE State=UP
"""


def write_config(state: Path) -> None:
    """Write /etc/slurm/slurm.conf, refusing to replace one this harness did not write."""
    if CONFIG_PATH.exists() and CONFIG_MARK not in CONFIG_PATH.read_text(encoding="utf-8"):
        raise ClusterUnavailable(f"{CONFIG_PATH} exists and was not written by this harness; not replacing it")
    cpus, memory_mb = node_resources()
    CONFIG_PATH.parent.mkdir(parents=True, exist_ok=True)
    CONFIG_PATH.write_text(slurm_config(state, cpus, memory_mb - 512), encoding="utf-8")


def daemon_commands(state: Path) -> dict[str, list[str]]:
    """The foreground command line of each daemon."""
    return {
        "munged": [
            "munged",
            "--foreground",
            "--force",
            f"--socket={MUNGE_SOCKET}",
            f"--pid-file={state}/munge/munged.pid",
            f"--seed-file={state}/munge/munged.seed",
            f"--log-file={state}/munge/munged.log",
        ],
        "slurmctld": ["slurmctld", "-D", "-i"],
        "slurmd": ["slurmd", "-D", "-N", NODE_NAME],
    }


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise ClusterUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")


def node_state() -> str:
    result = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def start(state) -> dict[str, int]:
    """Install if needed, configure and start the cluster; return {daemon: pid}."""
    state = Path(state).resolve()
    install_packages()
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting slurmctld and slurmd as configured here needs root")
    for folder in ("munge", "slurmctld", "slurmd"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    # munged insists on a socket folder that others can enter but not write.
    MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    MUNGE_SOCKET.parent.chmod(0o755)
    write_config(state)
    pids: dict[str, int] = {}
    env = dict(os.environ)
    commands = daemon_commands(state)
    try:
        for name in DAEMONS:
            log = open(state / f"{name}.out", "wb")  # noqa: SIM115 - owned by the daemon's lifetime
            process = subprocess.Popen(commands[name], stdout=log, stderr=subprocess.STDOUT, env=env)
            pids[name] = process.pid
            (state / f"{name}.harness-pid").write_text(str(process.pid), encoding="ascii")
            if name == "munged":
                wait_until(MUNGE_SOCKET.exists, 20, "munged's socket")
            if name == "slurmctld":
                wait_until(lambda: node_state() != "", 30, "slurmctld to answer sinfo")
        wait_until(lambda: node_state() == "idle", 60, f"node {NODE_NAME} to become idle")
    except BaseException:
        stop(state)
        raise
    return pids


def stop(state, timeout: float = 15) -> None:
    """Stop the daemons this harness started (by their recorded PIDs), slurmd first, and remove the config.

    A slurm.conf naming a controller that is gone would make every later
    Snakemake start wait: the SLURM executor plugin asks ``scontrol`` for the
    cluster's settings when it loads, and scontrol retries the dead address.
    """
    state = Path(state).resolve()
    for name in reversed(DAEMONS):
        pid_file = state / f"{name}.harness-pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text(encoding="ascii"))
        if process_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        reap(pid)
        pid_file.unlink()
    if CONFIG_PATH.exists() and CONFIG_MARK in CONFIG_PATH.read_text(encoding="utf-8"):
        CONFIG_PATH.unlink()


def process_alive(pid: int) -> bool:
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child (no zombie is left behind)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("state", help="folder for the daemons' state, logs and PID records")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            for name, pid in start(args.state).items():
                print(f"{name} {pid}")
        else:
            stop(args.state)
    except ClusterUnavailable as error:
        print(f"cluster: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
