"""Planning of the pipelines stage while the Snakefile is parsed (standard library only, besides the registries).

A pipeline runs on one dataset (generated, external, or another pipeline's
output) shard by shard: one job per shard of its dataset writes
``results/datasets/{pipeline}/shard-{k}`` (the images, their manifest and the
shard's metrics table), so a pipeline that saves its images is a dataset of
the same name, with the same shards, usable wherever a dataset is. One job per
pipeline then gathers ``results/pipelines/{pipeline}/``: ``metrics.tsv``,
``summary.tsv``, ``metrics.png`` and ``contact.png``.

The registries of operations and metrics are imported to check the steps;
they load no image library until an operation runs.
"""

from typing import TYPE_CHECKING

from pixelflow.errors import ConfigError
from pixelflow.pipelines.metrics import check_metrics
from pixelflow.pipelines.operations import PYTHON, check_step
from pixelflow.pipelines.user_code import source_file
from pixelflow.planning.config import check_name, key_path
from pixelflow.planning.datasets import (
    DatasetPlan,
    dataset_spec,
    image_bytes,
    runtime_minutes,
    shard_dir,
)

if TYPE_CHECKING:  # the type of what planning hands to the jobs; not imported while the Snakefile is parsed
    from pixelflow.pipelines.run import PipelineSpec

FOLDER = "results/pipelines"
SUMMARY_FILES = ("metrics.tsv", "summary.tsv", "metrics.png")
CONTACT_FILE = "contact.png"


def _pipelines(config: dict) -> dict:
    return config.get("pipelines") or {}


def _check_sources(config: dict) -> None:
    """Every pipeline's dataset exists and saves images, and no pipeline depends on itself."""
    pipelines = _pipelines(config)
    for name, spec in pipelines.items():
        where = key_path(["pipelines", name, "dataset"])
        source = spec["dataset"]
        if source in pipelines:
            if pipelines[source]["save"] == "none":
                raise ConfigError(
                    f"config key {where}: pipeline {source!r} saves no images (save: none), so it is not a dataset"
                )
        elif source not in config["datasets"]:
            known = ", ".join(sorted([*config["datasets"], *pipelines])) or "none"
            raise ConfigError(f"config key {where}: {source!r} is neither a dataset nor a pipeline (defined: {known})")
    for name in pipelines:
        trail = [name]
        while (source := pipelines[trail[-1]]["dataset"]) in pipelines:
            if source in trail:
                cycle = " -> ".join([*trail[trail.index(source) :], source])
                raise ConfigError(
                    f"config key {key_path(['pipelines', trail[-1], 'dataset'])}: pipelines take each other's "
                    f"output in a cycle: {cycle}"
                )
            trail.append(source)


def check_config(config: dict, workdir) -> None:
    """Check the pipelines: names, datasets, steps, metrics and the users' modules.

    Parameters
    ----------
    config : dict
        The validated config.
    workdir : str or path
        The working directory the users' modules are in.

    Raises
    ------
    ConfigError
        Naming the key: a pipeline named like a dataset, a dataset that does
        not exist or saves no images, a cycle of pipelines, a step or metric
        the registries refuse (:func:`~pixelflow.pipelines.operations.check_step`,
        :func:`~pixelflow.pipelines.metrics.check_metrics`), or a user module
        with no file in ``workdir``.
    """
    pipelines = _pipelines(config)
    for name in pipelines:
        check_name(name, ["pipelines", name])
        if name in config["datasets"]:
            raise ConfigError(
                f"config key {key_path(['pipelines', name])}: a dataset is named {name!r} too; "
                "a pipeline's output is a dataset of its name, so the names must differ"
            )
    _check_sources(config)
    for name in pipelines:
        pipeline_spec(config, name)
        user_files(config, name, workdir)


def pipeline_spec(config: dict, name: str) -> "PipelineSpec":
    """Everything a pipeline's shard outputs depend on besides its images, checked.

    Returns
    -------
    PipelineSpec
        :class:`~pixelflow.pipelines.run.PipelineSpec`: steps with every
        parameter filled, metrics with their column names.

    Raises
    ------
    ConfigError
        As :func:`check_config`, for a step or metric.
    """
    spec = _pipelines(config)[name]
    where = ["pipelines", name]
    steps = [check_step(step, key_path([*where, "steps", i])) for i, step in enumerate(spec["steps"])]
    return {
        "name": name,
        "steps": steps,
        "metrics": check_metrics(spec["metrics"], key_path([*where, "metrics"])),
        "save": spec["save"],
    }


def user_files(config: dict, name: str, workdir) -> list[str]:
    """The files of the users' modules a pipeline's steps and metrics name, sorted, relative to ``workdir``.

    Raises
    ------
    ConfigError
        Naming the key of a function whose module has no file in ``workdir``.
    """
    spec = _pipelines(config)[name]
    files = set()
    for i, step in enumerate(spec["steps"]):
        if isinstance(step, dict) and step.get("op") == PYTHON:
            files.add(source_file(step["function"], key_path(["pipelines", name, "steps", i, "function"]), workdir))
    for i, entry in enumerate(spec["metrics"]):
        if isinstance(entry, dict):
            files.add(source_file(entry["function"], key_path(["pipelines", name, "metrics", i, "function"]), workdir))
    return sorted(files)


def plan_pipelines(config: dict, datasets: dict[str, DatasetPlan]) -> dict[str, DatasetPlan]:
    """A shard plan per pipeline: its dataset's count and shard size, kind ``pipeline``.

    Parameters
    ----------
    config : dict
        The checked config (:func:`check_config`).
    datasets : dict of str to DatasetPlan
        The datasets' plans.

    Returns
    -------
    dict of str to DatasetPlan
    """
    pipelines = _pipelines(config)
    plans: dict[str, DatasetPlan] = {}

    def plan(name: str) -> DatasetPlan:
        if name not in plans:
            source = pipelines[name]["dataset"]
            parent = plan(source) if source in pipelines else datasets[source]
            plans[name] = DatasetPlan(name, "pipeline", parent.count, parent.shard_size)
        return plans[name]

    for name in pipelines:
        plan(name)
    return plans


def source(config: dict, name: str) -> str:
    """The dataset (or pipeline) a pipeline runs on."""
    return _pipelines(config)[name]["dataset"]


def summary_files(name: str) -> list[str]:
    """The gathered files of a pipeline: metrics table, summary and plot."""
    return [f"{FOLDER}/{name}/{file}" for file in SUMMARY_FILES]


def contact_count(config: dict, name: str) -> int:
    """Image pairs in a pipeline's contact sheet: its ``contact`` key, none when it saves no images."""
    spec = _pipelines(config)[name]
    return 0 if spec["save"] == "none" else spec["contact"]


def outputs(config: dict, datasets: dict) -> list[str]:
    """Every final output of the pipelines stage.

    Per pipeline: its shard folders and gathered files; when it saves images,
    its dataset index, its stack when ``stack`` is on, and its contact sheet
    when ``contact`` is above 0.
    """
    files = []
    for name, spec in _pipelines(config).items():
        files += [shard_dir(name, shard) for shard in datasets[name].shards]
        files += summary_files(name)
        if spec["save"] != "none":
            files.append(f"results/datasets/{name}/manifest.tsv")
            if spec["stack"]:
                files.append(f"results/datasets/{name}/stack.npy")
        if contact_count(config, name) > 0:
            files.append(f"{FOLDER}/{name}/{CONTACT_FILE}")
    return files


def shard_mem_mb(config: dict, name: str, attempt: int) -> int:
    """MB per pipeline shard job: each worker holds an image in a few float32 copies.

    512 MB plus, per worker (``max_threads``), 16 float32 copies of an image
    of the pipeline's root dataset (:func:`~pixelflow.planning.datasets.image_bytes`); all times the attempt.
    """
    pixels = image_bytes({**dataset_spec(config, name), "dtype": "float32"})
    return attempt * (512 + 16 * pixels * config["max_threads"] // (1 << 20))


def shard_runtime(config: dict, plan: DatasetPlan, attempt: int) -> int:
    """Minutes of a pipeline shard job: its images' float32 MB times the step count (at least 1), at 5 MB/s."""
    steps = max(1, len(_pipelines(config)[plan.name]["steps"]))
    pixels = image_bytes({**dataset_spec(config, plan.name), "dtype": "float32"})
    return runtime_minutes(plan.shard_size * pixels * steps / (1 << 20), attempt, mb_per_second=5)
