"""What a Snakemake call costs before and after its jobs, in one or more Python environments.

For each interpreter given (default: this one), medians of ``--repeats`` whole processes:

import
    ``python -c "import snakemake.cli"``: Snakemake's own import (the job scheduler loads
    every installed executor plugin, so an environment with the SLURM plugin pays for it here).
one-rule dry run
    ``snakemake -n`` of a Snakefile with one rule: the engine's floor.
workflow dry run
    ``snakemake -n`` of this workflow (a copy of the committed one, ``--source``) on a config
    with one map and one projection (all four stages' rules are parsed and the config validated).

Both dry runs pay Snakemake's whole exit, including the interpreter's final garbage collection:
the workflow does nothing at exit of its own (it no longer freezes the collector or cancels the
scheduler's timers).

Prints a markdown table. Run it alone on the machine, e.g.
``python benchmarks/startup.py --python /path/a/bin/python /path/b/bin/python``.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from common import (
    SCRATCH,
    add_source_option,
    fmt_spread,
    log,
    md_table,
    remove_tree,
    seconds,
    snakemake_command,
    snapshot_workflow,
    write_config,
)

STAGE_SCRATCH = SCRATCH / "startup"
ONE_RULE = 'rule all:\n    output:\n        "a.txt",\n    shell:\n        "touch {output}"\n'
MAP = "resources/natural_earth_shaded_relief_720x360.png"


def measure(python: str, repeats: int, workflow: Path) -> dict:
    one_rule, workdir = STAGE_SCRATCH / "one-rule", STAGE_SCRATCH / "dry-run"
    for folder in (one_rule, workdir):
        remove_tree(folder)
        folder.mkdir(parents=True)
    (one_rule / "Snakefile").write_text(ONE_RULE)
    config = {
        "datasets": {},
        "maps": {"world": {"path": str(workflow / MAP)}},
        "projections": {"pole_shift": {"kind": "transverse_mercator", "width": 2048}},
    }
    write_config(workdir, config)
    dry_run = ["-n", "-q", "--cores", "1"]
    commands = {
        "import": ([python, "-c", "import snakemake.cli"], STAGE_SCRATCH),
        "one-rule dry run": (snakemake_command(*dry_run, python=python, script=True), one_rule),
        "workflow dry run": (
            snakemake_command(
                *dry_run, "--configfile", "config.yaml", snakefile=workflow / "Snakefile", python=python, script=True
            ),
            workdir,
        ),
    }
    times = {name: [] for name in commands}
    for _ in range(repeats):  # interleaved
        for name, (command, cwd) in commands.items():
            times[name].append(seconds(subprocess.run, command, cwd=cwd, check=True, capture_output=True))
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", nargs="+", default=[sys.executable], help="interpreters of the environments")
    parser.add_argument("--repeats", type=int, default=5)
    add_source_option(parser)
    args = parser.parse_args(argv)
    workflow, note = snapshot_workflow(args.source, STAGE_SCRATCH / "workflow")
    log(f"measuring {note}")
    rows = []
    for python in args.python:
        plugin = subprocess.run(
            [python, "-c", "import importlib.util as u; print(bool(u.find_spec('snakemake_executor_plugin_slurm')))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        times = measure(python, args.repeats, workflow)
        cells = [fmt_spread(values, unit=" s") for values in times.values()]
        rows.append([python, "yes" if plugin == "True" else "no", *cells])
        log(f"{python}: {', '.join(cells)}")
    print(md_table(["environment", "SLURM plugin", "import", "one-rule dry run", "workflow dry run"], rows))
    remove_tree(STAGE_SCRATCH)
    return 0


if __name__ == "__main__":
    sys.exit(main())
