"""What a Snakemake call costs before and after its jobs, in one or more Python environments.

For each interpreter given (default: this one), medians of ``--repeats`` whole processes:

import
    ``python -c "import snakemake.cli"``: Snakemake's own import (the job scheduler loads
    every installed executor plugin, so an environment with the SLURM plugin pays for it here).
one-rule dry run
    ``snakemake -n`` of a Snakefile with one rule: the engine's floor.
workflow dry run
    ``snakemake -n`` of this workflow on a config with one map and one projection (all four
    stages' rules are parsed and the config validated).

Prints a markdown table. Run it alone on the machine, e.g.
``python benchmarks/startup.py --python /path/a/bin/python /path/b/bin/python``.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCRATCH = REPO / "benchmarks" / "scratch" / "startup"
ONE_RULE = 'rule all:\n    output:\n        "a.txt",\n    shell:\n        "touch {output}"\n'
CONFIG = {
    "datasets": {},
    "maps": {"world": {"path": str(REPO / "resources" / "natural_earth_shaded_relief_720x360.png")}},
    "projections": {"pole_shift": {"kind": "transverse_mercator", "width": 2048}},
}


def seconds(command, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(python: str, repeats: int) -> dict:
    snakemake = str(Path(python).parent / "snakemake")
    one_rule, workflow = SCRATCH / "one-rule", SCRATCH / "workflow"
    for folder in (one_rule, workflow):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    (one_rule / "Snakefile").write_text(ONE_RULE)
    (workflow / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    commands = {
        "import": ([python, "-c", "import snakemake.cli"], SCRATCH),
        "one-rule dry run": ([snakemake, "-n", "-q", "--cores", "1"], one_rule),
        "workflow dry run": (
            [snakemake, "-n", "-q", "--cores", "1", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"],
            workflow,
        ),
    }
    times = {name: [] for name in commands}
    for _ in range(repeats):  # interleaved
        for name, (command, cwd) in commands.items():
            times[name].append(seconds(command, cwd))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", nargs="+", default=[sys.executable], help="interpreters of the environments")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| environment | SLURM plugin | import | one-rule dry run | workflow dry run |")
    print("|---|---|---|---|---|")
    for python in args.python:
        plugin = subprocess.run(
            [python, "-c", "import importlib.util as u; print(bool(u.find_spec('snakemake_executor_plugin_slurm')))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        times = measure(python, args.repeats)
        cells = " | ".join(
            f"{statistics.median(values):.2f} s [{min(values):.2f}–{max(values):.2f}]" for values in times.values()
        )
        print(f"| {python} | {'yes' if plugin == 'True' else 'no'} | {cells} |", flush=True)
    shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
