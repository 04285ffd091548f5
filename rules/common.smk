import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from pixelflow import plan  # noqa: E402

SCRIPTS = Path(workflow.basedir) / "scripts"

plan.validate_config(config, plan.load_schema(Path(workflow.basedir) / "config" / "schema.yaml"))
DATASETS = plan.plan_datasets(config, Path.cwd())


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    shard=r"\d{4}",


def core_modules(script):
    """The pixelflow source files a script imports: inputs, so code edits rerun its rules."""
    return plan.imported_core_modules(SCRIPTS / script)


def dataset_plan(wildcards):
    """The shard plan of the dataset named by the wildcards."""
    return DATASETS[wildcards.dataset]


def shard_dirs(name, shards=None):
    """Shard folders of a dataset (all, or the given ids)."""
    ids = DATASETS[name].shards if shards is None else shards
    return [f"results/datasets/{name}/shard-{shard}" for shard in ids]


def job_threads(rule_name):
    """Threads of a parallel rule: the config's max_threads (Snakemake caps it at --cores)."""
    return config["max_threads"]


def all_outputs():
    """Every final output the config asks for."""
    outputs = []
    for name, spec in config["datasets"].items():
        outputs += shard_dirs(name)
        if spec["stack"]:
            outputs.append(f"results/datasets/{name}/stack.npy")
        if config["montage"]["count"] > 0:
            outputs.append(f"results/datasets/{name}/montage.png")
    return outputs
