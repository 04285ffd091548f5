"""The demo config on the local one-node SLURM test cluster against ``--cores 2`` locally.

Starts the cluster with tests/workflow/slurm_cluster.py (root and apt-get
needed), runs the bundled demo config twice in fresh folders under
benchmarks/scratch/slurm/ (locally with ``--cores 2``, then with
``--profile profiles/slurm``), checks that both wrote the same bytes, and
prints a markdown table: wall times, job counts and the cluster's per-job
overhead, also measured directly as the wall time of ``sbatch --wait`` for a
job that does nothing. The workflow run is a copy of the committed one
(``--source``). The table also goes to benchmarks/results/slurm-demo.md.

Usage: ``python benchmarks/slurm.py [--repeats N]``
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from common import (
    REPO,
    RESULTS,
    SCRATCH,
    add_source_option,
    log,
    md_table,
    remove_tree,
    run_process,
    seconds,
    snakemake_command,
    snapshot_workflow,
)

sys.path.insert(0, str(REPO / "tests" / "workflow"))

import slurm_cluster  # noqa: E402
from result_digests import result_hashes  # noqa: E402

STAGE_SCRATCH = SCRATCH / "slurm"


def run_workflow(folder: Path, workflow: Path, extra: list[str]) -> tuple[float, int]:
    """Run the demo in ``folder``; return (wall seconds, number of jobs that ran, 'all' excluded)."""
    remove_tree(folder)
    folder.mkdir(parents=True)
    # The demo config (config/config.yaml, named by the default profile) and its bundled inputs are
    # relative to the working folder, as in a run from the repository.
    for name in ("config", "resources"):
        (folder / name).symlink_to(workflow / name)
    command = snakemake_command(*extra, snakefile=workflow / "Snakefile")
    wall = run_process(command, folder, folder / "snakemake.out", mode="w")
    jobs = (folder / "snakemake.out").read_text(encoding="utf-8", errors="replace").count("Finished jobid:") - 1
    return wall, jobs


def empty_job_wall() -> float:
    """Wall time of submitting a job that does nothing and waiting for it to end."""
    return seconds(subprocess.run, ["sbatch", "--wait", "--quiet", "--wrap", "true", "-o", "/dev/null"], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    add_source_option(parser)
    args = parser.parse_args(argv)
    workflow, note = snapshot_workflow(args.source, STAGE_SCRATCH / "workflow")
    log(f"measuring {note}")
    state = STAGE_SCRATCH / "cluster"
    state.mkdir(parents=True, exist_ok=True)
    slurm_cluster.start(state)
    try:
        empty = [empty_job_wall() for _ in range(3)]
        local, cluster = [], []
        for repeat in range(args.repeats):
            local.append(run_workflow(STAGE_SCRATCH / f"local-{repeat}", workflow, ["--cores", "2"]))
            profile = ["--profile", str(workflow / "profiles" / "slurm"), *slurm_cluster.SNAKEMAKE_ARGS]
            cluster.append(run_workflow(STAGE_SCRATCH / f"slurm-{repeat}", workflow, profile))
            if result_hashes(STAGE_SCRATCH / f"local-{repeat}") != result_hashes(STAGE_SCRATCH / f"slurm-{repeat}"):
                raise SystemExit("the SLURM run wrote different bytes from the local run")
    finally:
        slurm_cluster.stop(state)
    local_wall = statistics.median(wall for wall, _ in local)
    cluster_wall = statistics.median(wall for wall, _ in cluster)
    jobs = cluster[0][1]
    empty_wall = statistics.median(empty)
    rows = [
        ["demo, `--cores 2` locally", f"{local_wall:.1f}", local[0][1], "—"],
        [
            "demo, `--profile profiles/slurm` (one-node cluster)",
            f"{cluster_wall:.1f}",
            jobs,
            f"{(cluster_wall - local_wall) / max(jobs, 1):.1f} (extra wall per job)",
        ],
        ["`sbatch --wait --wrap true`", f"{empty_wall:.1f}", 1, f"{empty_wall:.1f} (an empty job)"],
    ]
    table = md_table(["run", "wall (median s)", "jobs", "per-job overhead (s)"], rows)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "slurm-demo.md").write_text(f"# Demo on SLURM vs local\n\n{table}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
