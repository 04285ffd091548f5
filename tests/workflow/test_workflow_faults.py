"""Fault tolerance: a run killed mid-way, and a pool worker killed inside a job.

Every run here is a real snakemake process started in its own session, so a
SIGKILL to its process group takes down Snakemake and all its jobs at once, as
an out-of-memory killer or a lost node would.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_ok, snapshot_snakefile, write_config
from result_digests import result_hashes

pytestmark = pytest.mark.slow

# Large enough that shard and stack jobs take a second or more, small enough for CI.
# One shard, so that its job gets both cores and runs a pool of two workers.
FAULT_CONFIG = {
    "seed": 3,
    "shard_size": 30000,
    "max_threads": 2,
    "montage": {"count": 4, "cell": 8},
    "datasets": {
        "noise": {"generator": "uniform", "count": 30000, "shape": [24, 24], "dtype": "uint8", "format": "png"},
    },
}
POLL_SECONDS = 0.005


def start_snakemake(workdir, config) -> subprocess.Popen:
    """Start the workflow (default profile, --cores 2) in its own session."""
    configfile = write_config(Path(workdir) / "config.yaml", config)
    command = [sys.executable, "-m", "snakemake", "-s", str(snapshot_snakefile())]
    command += ["--configfile", str(configfile), "--cores", "2"]
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with open(Path(workdir) / "snakemake.out", "w", encoding="utf-8") as log:
        return subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def run_output(workdir) -> str:
    return (Path(workdir) / "snakemake.out").read_text(encoding="utf-8")


def wait_for(condition, process: subprocess.Popen, timeout: float, what: str):
    """Poll ``condition`` until it returns something truthy; fail if the run ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}")
        time.sleep(POLL_SECONDS)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"timed out waiting for {what}")


def partial_entry(folder: Path, name_part: str):
    """A hidden partial output in ``folder`` whose name contains ``name_part``, if one exists now."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return None
    for name in names:
        if name.startswith(".") and name_part in name and ".partial-" in name:
            return folder / name
    return None


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """{path: sha256} of an uninterrupted run of FAULT_CONFIG."""
    workdir = tmp_path_factory.mktemp("clean")
    run_ok(workdir, FAULT_CONFIG)
    return result_hashes(workdir)


@pytest.mark.parametrize("stage", ["shard", "stack"])
def test_a_run_killed_mid_job_is_completed_by_the_next_run(clean_run, tmp_path, stage):
    results = tmp_path / "results" / "datasets" / "noise"
    process = start_snakemake(tmp_path, FAULT_CONFIG)
    wait_for(lambda: partial_entry(results, stage), process, 120, f"a {stage} job writing its output")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    # Whatever exists under a final name is complete: equal to the clean run's bytes.
    survivors = result_hashes(tmp_path)
    for path, digest in survivors.items():
        assert clean_run.get(path) == digest, f"{path} looks finished but differs from a clean run's"

    run_ok(tmp_path, FAULT_CONFIG)
    assert result_hashes(tmp_path) == clean_run
    assert not list(results.rglob("*.partial-*")), "the completed run left partial outputs behind"


def map_fault_config() -> dict:
    """One large reprojection of the bundled world map (a job of about a second)."""
    world = snapshot_snakefile().parent / "resources" / "natural_earth_shaded_relief_720x360.png"
    return {
        "max_threads": 2,
        "maps": {"world": {"path": str(world)}},
        "projections": {"big": {"kind": "transverse_mercator", "width": 6000}},
        "reprojection": {"format": "tif"},
    }


def test_a_run_killed_mid_reprojection_is_completed_by_the_next_run(tmp_path):
    clean = tmp_path / "clean"
    run_ok(clean, map_fault_config())
    clean_hashes = result_hashes(clean)
    assert "maps/world/big.tif" in clean_hashes

    workdir = tmp_path / "killed"
    workdir.mkdir()
    maps = workdir / "results" / "maps" / "world"
    process = start_snakemake(workdir, map_fault_config())
    wait_for(lambda: partial_entry(maps, "big"), process, 120, "the reprojection writing its output")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    for path, digest in result_hashes(workdir).items():
        assert clean_hashes.get(path) == digest, f"{path} looks finished but differs from a clean run's"

    run_ok(workdir, map_fault_config())
    assert result_hashes(workdir) == clean_hashes


def descends_from(pid: int, root: int, parents: dict[int, int]) -> bool:
    """Whether process ``pid`` is ``root`` or one of its descendants."""
    seen = set()
    while pid not in seen and pid > 1:
        if pid == root:
            return True
        seen.add(pid)
        pid = parents.get(pid, 0)
    return False


def pool_workers(script_name: str, root: int) -> list[int]:
    """PIDs of pool workers of a job of the run ``root``: processes of ``script_name`` whose parent runs it too."""
    commands = {}
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            commands[int(entry.name)] = (entry / "cmdline").read_bytes()
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    marker = script_name.encode()
    return [
        pid
        for pid, command in commands.items()
        if marker in command and marker in commands.get(parents.get(pid, -1), b"") and descends_from(pid, root, parents)
    ]


def test_a_killed_pool_worker_fails_the_job_fast_and_a_rerun_completes(clean_run, tmp_path):
    process = start_snakemake(tmp_path, FAULT_CONFIG)
    victims = wait_for(lambda: pool_workers("dataset_shard", process.pid), process, 120, "a shard job's pool workers")
    os.kill(victims[0], signal.SIGKILL)
    killed_at = time.time()
    try:
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = run_output(tmp_path)
    assert process.returncode != 0, output[-4000:]
    assert "SIGKILL" in output, f"the failure does not name the cause:\n{output[-4000:]}"
    assert "Error in rule dataset_shard" in output
    # The job's own failure is logged within seconds; Snakemake then waits for the other jobs.
    logs = sorted((tmp_path / "results" / "logs" / "datasets" / "noise").glob("shard-*.log"))
    failed = [log for log in logs if "SIGKILL" in log.read_text(encoding="utf-8")]
    assert failed, "no shard log names the killed worker"
    assert failed[0].stat().st_mtime - killed_at < 10

    run_ok(tmp_path, FAULT_CONFIG)
    assert result_hashes(tmp_path) == clean_run
