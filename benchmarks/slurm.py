"""The demo config on the local one-node SLURM test cluster against ``--cores 2`` locally.

Starts the cluster with tests/workflow/slurm_cluster.py (root and apt-get
needed), runs the bundled demo config in fresh folders under
benchmarks/scratch/slurm/ (locally with ``--cores 2``, then with
``--workflow-profile profiles/slurm``, whose job groups run the small jobs together;
with ``--ungrouped`` also with a copy of that profile without its ``groups``
and ``group-components``, every job its own SLURM job), checks that every run
wrote the same bytes as the local one, and prints a markdown table: wall
times, rule jobs, SLURM jobs and the cluster's extra wall time per rule job, also
measured directly as the wall time of ``sbatch --wait`` for a job that does
nothing. The workflow run is a copy of the committed one (``--source``). The
table also goes to benchmarks/results/slurm-demo.md.

Usage: ``python benchmarks/slurm.py [--repeats N] [--ungrouped] [--source worktree]``
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


def run_workflow(folder: Path, workflow: Path, extra: list[str]) -> tuple[float, int, int]:
    """Run the demo in ``folder``; return (wall seconds, rule jobs that ran ('all' excluded), SLURM jobs)."""
    remove_tree(folder)
    folder.mkdir(parents=True)
    # The demo config (config/config.yaml, named by the default profile), its bundled inputs and the
    # pipelines' own functions (examples/) are relative to the working folder, as in a run from the repository.
    for name in ("config", "resources", "examples"):
        (folder / name).symlink_to(workflow / name)
    command = snakemake_command(*extra, snakefile=workflow / "Snakefile")
    wall = run_process(command, folder, folder / "snakemake.out", mode="w")
    output = (folder / "snakemake.out").read_text(encoding="utf-8", errors="replace")
    # One "Finished jobid" line per rule job (a group's jobs each have one); one sbatch per SLURM job.
    return wall, output.count("Finished jobid:") - 1, output.count("has been submitted with SLURM jobid")


def ungrouped_profile(profile: Path, target: Path) -> Path:
    """A copy of ``profile`` without its job groups, in ``target``: every job is its own SLURM job."""
    import yaml

    settings = yaml.safe_load((profile / "config.yaml").read_text(encoding="utf-8"))
    for key in ("groups", "group-components"):
        settings.pop(key, None)
    remove_tree(target)
    target.mkdir(parents=True)
    (target / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return target


def empty_job_wall() -> float:
    """Wall time of submitting a job that does nothing and waiting for it to end."""
    return seconds(subprocess.run, ["sbatch", "--wait", "--quiet", "--wrap", "true", "-o", "/dev/null"], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--ungrouped",
        action="store_true",
        help="also run on the cluster with the profile's job groups removed (every job its own SLURM job)",
    )
    add_source_option(parser)
    args = parser.parse_args(argv)
    workflow, note = snapshot_workflow(args.source, STAGE_SCRATCH / "workflow")
    log(f"measuring {note}")
    grouped = workflow / "profiles" / "slurm"
    profiles = {"grouped": grouped}
    if args.ungrouped:
        profiles["ungrouped"] = ungrouped_profile(grouped, STAGE_SCRATCH / "profile-ungrouped")
    state = STAGE_SCRATCH / "cluster"
    state.mkdir(parents=True, exist_ok=True)
    slurm_cluster.start(state)
    try:
        empty = [empty_job_wall() for _ in range(3)]
        local, cluster = [], {name: [] for name in profiles}
        for repeat in range(args.repeats):
            log(f"repeat {repeat + 1} of {args.repeats}: local")
            local.append(run_workflow(STAGE_SCRATCH / f"local-{repeat}", workflow, ["--cores", "2"]))
            expected = result_hashes(STAGE_SCRATCH / f"local-{repeat}")
            for name, profile in profiles.items():
                log(f"repeat {repeat + 1} of {args.repeats}: SLURM, {name}")
                folder = STAGE_SCRATCH / f"slurm-{name}-{repeat}"
                options = ["--workflow-profile", str(profile), *slurm_cluster.SNAKEMAKE_ARGS]
                cluster[name].append(run_workflow(folder, workflow, options))
                if result_hashes(folder) != expected:
                    raise SystemExit(f"the SLURM run ({name}) wrote different bytes from the local run")
    finally:
        slurm_cluster.stop(state)
    local_wall = statistics.median(wall for wall, _, _ in local)
    empty_wall = statistics.median(empty)
    rows = [["demo, `--cores 2` locally", f"{local_wall:.1f}", local[0][1], "—", "—"]]
    labels = {
        "grouped": "demo, `--workflow-profile profiles/slurm` (one-node cluster)",
        "ungrouped": "demo, the same profile without `groups` (one-node cluster)",
    }
    for name, runs in cluster.items():
        wall = statistics.median(wall for wall, _, _ in runs)
        _, jobs, slurm_jobs = runs[0]
        per_job = (wall - local_wall) / max(jobs, 1)
        rows.append([labels[name], f"{wall:.1f}", jobs, slurm_jobs, f"{per_job:.1f} (extra wall per rule job)"])
    rows.append(["`sbatch --wait --wrap true`", f"{empty_wall:.1f}", 1, 1, f"{empty_wall:.1f} (an empty job)"])
    table = md_table(["run", "wall (median s)", "rule jobs", "SLURM jobs", "per-job overhead (s)"], rows)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "slurm-demo.md").write_text(f"# Demo on SLURM vs local\n\n{table}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
