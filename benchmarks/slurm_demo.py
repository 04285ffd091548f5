"""The demo config on the local one-node SLURM test cluster against ``--cores 2`` locally.

Starts the cluster with tests/workflow/slurm_cluster.py (root and apt-get
needed), runs the bundled demo config twice in fresh folders under
benchmarks/scratch/ (locally with ``--cores 2``, then with
``--profile profiles/slurm``), checks that both wrote the same bytes, and
prints a markdown table: wall times, job counts and the cluster's per-job
overhead, also measured directly as the wall time of ``sbatch --wait`` for a
job that does nothing. The table also goes to benchmarks/results/slurm-demo.md.

Usage: ``python benchmarks/slurm_demo.py [--repeats N]``
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "workflow"))

import slurm_cluster  # noqa: E402
from result_digests import result_hashes  # noqa: E402

SCRATCH = REPO / "benchmarks" / "scratch" / "slurm-demo"
RESULTS = REPO / "benchmarks" / "results"


def run_workflow(folder: Path, extra: list[str]) -> tuple[float, int]:
    """Run the demo in ``folder``; return (wall seconds, number of jobs that ran, 'all' excluded)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # The demo names its bundled inputs relative to the working folder.
    (folder / "resources").symlink_to(REPO / "resources")
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *extra]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    (folder / "snakemake.out").write_text(completed.stdout + completed.stderr, encoding="utf-8")
    if completed.returncode != 0:
        raise SystemExit(f"the run in {folder} failed:\n{(completed.stdout + completed.stderr)[-4000:]}")
    jobs = (completed.stdout + completed.stderr).count("Finished jobid:") - 1
    return wall, jobs


def empty_job_wall() -> float:
    """Wall time of submitting a job that does nothing and waiting for it to end."""
    started = time.perf_counter()
    subprocess.run(["sbatch", "--wait", "--quiet", "--wrap", "true", "-o", "/dev/null"], check=True)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    state = SCRATCH / "cluster"
    state.mkdir(parents=True, exist_ok=True)
    slurm_cluster.start(state)
    try:
        empty = [empty_job_wall() for _ in range(3)]
        local, cluster = [], []
        for repeat in range(args.repeats):
            local.append(run_workflow(SCRATCH / f"local-{repeat}", ["--cores", "2"]))
            cluster.append(
                run_workflow(
                    SCRATCH / f"slurm-{repeat}",
                    ["--profile", str(REPO / "profiles" / "slurm")] + list(slurm_cluster.SNAKEMAKE_ARGS),
                )
            )
            if result_hashes(SCRATCH / f"local-{repeat}") != result_hashes(SCRATCH / f"slurm-{repeat}"):
                raise SystemExit("the SLURM run wrote different bytes from the local run")
    finally:
        slurm_cluster.stop(state)
    local_wall = statistics.median(wall for wall, _ in local)
    cluster_wall = statistics.median(wall for wall, _ in cluster)
    jobs = cluster[0][1]
    table = "\n".join(
        [
            "| run | wall (median s) | jobs | per-job overhead (s) |",
            "|---|---|---|---|",
            f"| demo, `--cores 2` locally | {local_wall:.1f} | {local[0][1]} | — |",
            f"| demo, `--profile profiles/slurm` (one-node cluster) | {cluster_wall:.1f} | {jobs} | "
            f"{(cluster_wall - local_wall) / max(jobs, 1):.1f} (extra wall per job) |",
            f"| `sbatch --wait --wrap true` | {statistics.median(empty):.1f} | 1 | "
            f"{statistics.median(empty):.1f} (an empty job) |",
        ]
    )
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "slurm-demo.md").write_text(f"# Demo on SLURM vs local\n\n{table}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
