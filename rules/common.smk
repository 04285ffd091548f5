import atexit
import gc
import os
import sys
import threading
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from pixelflow import plan, plan_maps, plan_mosaics, plan_stats, runlock  # noqa: E402

SCRIPTS = Path(workflow.basedir) / "scripts"
# Which core modules each script imports, kept between runs and run folders
# (parsing them all takes about 0.1 s); an entry counts only while the file's
# mtime and size match.
IMPORTS_CACHE = plan.imports_cache_path()
plan.load_imports_cache(IMPORTS_CACHE)
atexit.register(plan.save_imports_cache, IMPORTS_CACHE)

plan.validate_config(
    config, plan.load_schema(Path(workflow.basedir) / "config" / "schema.yaml")
)
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


def provided_cores():
    """The --cores of this run, or None where there is none (e.g. a cluster executor)."""
    try:
        return workflow.cores
    except WorkflowError:
        return None


def shard_threads(wildcards):
    """Threads of a shard job: --cores shared among the dataset's shards, at most max_threads.

    Single-process shard jobs side by side, each creating files in its own
    folder, measured faster than multi-process jobs one after the other.
    """
    return plan.shard_job_threads(
        config["max_threads"], provided_cores(), len(dataset_plan(wildcards).shards)
    )


def per_attempt(amount):
    """A resource of ``amount`` on the first attempt, doubled on the second, and so on."""
    return lambda wildcards, attempt: amount * attempt


def all_outputs():
    """Every final output the config asks for."""
    outputs = []
    for name, spec in config["datasets"].items():
        # Shards are final outputs too: one that failed and was removed is redone
        # even though the stack built from its earlier content still exists.
        outputs += shard_dirs(name)
        outputs.append(f"results/datasets/{name}/manifest.tsv")
        if spec["stack"]:
            outputs.append(f"results/datasets/{name}/stack.npy")
        if config["montage"]["count"] > 0:
            outputs.append(f"results/datasets/{name}/montage.png")
    outputs += plan_maps.outputs(config)
    outputs += plan_mosaics.outputs(config)
    outputs += plan_stats.outputs(config)
    return outputs


# Dataset rules ----------------------------------------------------------------


def shard_inputs(wildcards):
    """The code a shard job runs and, for an external dataset, the images it checks."""
    dataset = dataset_plan(wildcards)
    inputs = {"code": core_modules("dataset_shard.py")}
    if dataset.kind == "external":
        start, stop = dataset.bounds(wildcards.shard)
        inputs["images"] = list(dataset.files[start:stop])
    return inputs


def shard_params(wildcards):
    """Everything a shard's bytes depend on besides its input files."""
    dataset = dataset_plan(wildcards)
    start, stop = dataset.bounds(wildcards.shard)
    params = {"kind": dataset.kind, "start": start, "stop": stop}
    spec = config["datasets"][wildcards.dataset]
    if dataset.kind == "generated":
        params["spec"] = plan.generated_shard_spec(config, wildcards.dataset)
    else:
        params["shape"] = spec.get("shape")
        params["dtype"] = spec.get("dtype")
    return params


def shard_mem_mb(wildcards, attempt):
    """Workers hold one image at a time; allow for a few large ones."""
    spec = config["datasets"][wildcards.dataset]
    return attempt * (
        512 + 8 * plan.image_bytes(spec) // (1 << 20) * config["max_threads"]
    )


def shard_runtime(wildcards, attempt):
    """Minutes: generous for about 50 MB/s per job, at least 5."""
    dataset = dataset_plan(wildcards)
    spec = config["datasets"][wildcards.dataset]
    total_mb = dataset.shard_size * plan.image_bytes(spec) / (1 << 20)
    return attempt * max(5, int(total_mb / 50 / 60) + 5)


def manifest_job_mem_mb(wildcards, attempt):
    """Images stream through one at a time; the manifest rows take about 1 KB per image."""
    return attempt * (1024 + dataset_plan(wildcards).count // 1000)


def stack_runtime(wildcards, attempt):
    dataset = dataset_plan(wildcards)
    total_mb = (
        dataset.count
        * plan.image_bytes(config["datasets"][wildcards.dataset])
        / (1 << 20)
    )
    return attempt * max(5, int(total_mb / 50 / 60) + 5)


def cancel_rescheduling_timers():
    """Cancel the scheduler's pending re-scheduling timers once the run is over.

    Snakemake's job rate limiter arms a non-daemon timer of its window (1 s by
    default) on every scheduling pass, and the interpreter waits for the last
    one before exiting. Once the run has ended nothing is left to schedule
    (the name is matched without its last letters, which Snakemake misspells).
    """
    for thread in threading.enumerate():
        action = getattr(thread, "function", None)
        if isinstance(thread, threading.Timer) and "_schedule_reeval" in getattr(
            action, "__qualname__", ""
        ):
            thread.cancel()


def end_run():
    """Forget this run's record (see pixelflow/runlock.py) and let the process exit at once."""
    cancel_rescheduling_timers()
    if RUN_RECORD is not None:
        runlock.end_run(RUN_RECORD)


# A run killed with SIGKILL leaves Snakemake's locks behind; the next run of the
# workflow removes them once no run that could own them is alive.
RUN_RECORD = None
if workflow.is_main_process:
    if runlock.clear_stale_locks(Path(".snakemake")):
        print(
            "pixelflow: removed the locks left by an earlier run that was killed",
            file=sys.stderr,
        )
    RUN_RECORD = runlock.register_run(Path(".snakemake"), os.getpid())


# At exit the interpreter garbage-collects every object still alive, and
# Snakemake's are many: about 0.3 s per run, dry runs included. Frozen, they are
# skipped; exit handlers and file flushes still run.
atexit.register(gc.freeze)


onsuccess:
    end_run()


onerror:
    end_run()
