# Helpers shared by every stage's rules: config validation, the dataset shard
# plans, code inputs and resources. The planning code is in
# scripts/pixelflow/planning/ (imported here only; job scripts never import it).
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from pixelflow.planning import datasets as datasets_plan  # noqa: E402
from pixelflow.planning import imports, runlock  # noqa: E402
from pixelflow.planning import maps as maps_plan  # noqa: E402
from pixelflow.planning import mosaics as mosaics_plan  # noqa: E402
from pixelflow.planning import pipelines as pipelines_plan  # noqa: E402
from pixelflow.planning import report as report_plan  # noqa: E402
from pixelflow.planning import stats as stats_plan  # noqa: E402
from pixelflow.planning.config import load_schema, validate_config  # noqa: E402

WORKDIR = Path.cwd()
SCRIPTS = Path(workflow.basedir) / "scripts"
# Every stage's planning module offers check_config(config, workdir) and outputs(config, datasets).
STAGES = (datasets_plan, pipelines_plan, maps_plan, mosaics_plan, stats_plan)

validate_config(config, load_schema(Path(workflow.basedir) / "config" / "schema.yaml"))
for stage in STAGES:
    stage.check_config(config, WORKDIR)
# The datasets' shard plans and the pipelines', whose outputs are datasets too.
DATASETS = datasets_plan.plan_datasets(config, WORKDIR)
DATASETS.update(pipelines_plan.plan_pipelines(config, DATASETS))
# A zarr dataset's store holds this config's array or none (checked once per run: it loads Zarr).
if workflow.is_main_process:
    datasets_plan.check_zarr_stores(config, DATASETS, WORKDIR)

# Which core modules each script imports, kept between runs (see planning/imports.py).
IMPORTS_CACHE = imports.imports_cache_path()
imports.load_imports_cache(IMPORTS_CACHE)


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    shard=r"\d{4}",


def core_modules(script):
    """The pixelflow source files a script imports: inputs, so code edits rerun its rules."""
    modules = imports.imported_core_modules(SCRIPTS / script)
    imports.save_imports_cache(IMPORTS_CACHE)  # writes only what was parsed anew
    return modules


def dataset_plan(wildcards):
    """The shard plan of the dataset named by the wildcards."""
    return DATASETS[wildcards.dataset]


def shard_dirs(name, shards=None):
    """Shard folders of a dataset (all, or the given ids)."""
    ids = DATASETS[name].shards if shards is None else shards
    return [datasets_plan.shard_dir(name, shard) for shard in ids]


def zarr_shard_outputs(name, shards=None):
    """A zarr dataset's shard files and shard manifests (all, or the given ids), as ``shards`` and ``manifests``."""
    return datasets_plan.zarr_shard_outputs(DATASETS[name], shards)


def dataset_inputs(name, key, shards=None):
    """Inputs of a job reading shards of a dataset (all, or those numbered as ``shards``), for unpack().

    ``key`` lists what the job reads the images through (shard folders, or a
    zarr dataset's manifests); ``{key}_arrays`` holds a zarr dataset's shard
    files and its zarr.json, which is needed to open the array but whose time
    alone (a new count) does not rerun the job.
    """
    inputs = datasets_plan.read_inputs(DATASETS[name], shards)
    arrays = inputs["arrays"] + [ancient(path) for path in inputs["metadata"]]
    return {key: inputs["listing"], **({f"{key}_arrays": arrays} if arrays else {})}


def provided_cores():
    """The --cores of this run, or None where there is none (e.g. a cluster executor)."""
    try:
        return workflow.cores
    except WorkflowError:
        return None


def shard_threads(name):
    """Worker processes of a shard job of dataset ``name``: --cores shared among its shards, at most max_threads.

    Single-process shard jobs side by side, each creating files in its own
    folder, measured faster than multi-process jobs one after the other.
    """
    shards = len(DATASETS[name].shards)
    return datasets_plan.shard_job_threads(
        config["max_threads"], provided_cores(), shards
    )


def map_threads(wildcards, plan):
    """Threads of a reprojection job (planning/maps.py: job_threads)."""
    return maps_plan.job_threads(config, wildcards.projection, wildcards.map, plan)


def names_pattern(names):
    """A wildcard pattern matching exactly the given names (none when there are none)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


def per_attempt(amount):
    """A resource of ``amount`` on the first attempt, doubled on the second, and so on."""
    return lambda wildcards, attempt: amount * attempt


def stage_outputs():
    """Every final output of the stages the config asks for."""
    return [path for stage in STAGES for path in stage.outputs(config, DATASETS)]


def all_outputs():
    """Every final output: the stages', and the report's table of their jobs."""
    outputs = stage_outputs()
    return outputs + report_plan.outputs(outputs)


# A run killed with SIGKILL leaves Snakemake's locks behind; the next run of the
# workflow removes them once no run that could own them is alive. Runs are
# recorded with their host, and a run of another host is never taken for dead.
RUN_RECORD = None
if workflow.is_main_process:
    if runlock.clear_stale_locks(Path(".snakemake")):
        print(
            "pixelflow: removed the locks left by an earlier run that was killed",
            file=sys.stderr,
        )
    elif (message := runlock.stale_lock_report(Path(".snakemake"))) is not None:
        print(message, file=sys.stderr)
    RUN_RECORD = runlock.register_run(Path(".snakemake"), os.getpid())


def end_run():
    """Forget this run's record (see pixelflow/planning/runlock.py)."""
    if RUN_RECORD is not None:
        runlock.end_run(RUN_RECORD)


onsuccess:
    end_run()


onerror:
    end_run()
