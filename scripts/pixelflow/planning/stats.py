"""Planning of the stats rules while the Snakefile is parsed (standard library only).

A stats shard job filters the images of one dataset shard; a summary job per
dataset gathers the shard tables. For a generated dataset the shard job draws
the images itself (its source is params: seed, generator, shape, dtype, bounds),
so it needs no dataset job (whatever its storage); for an external one it reads the
shard through its manifest, images as files or in a zarr array. σ is spelled in paths by
:func:`sigma_label` (``10``, ``2.5``, ``0.1``), so a path names its σ stably.
"""

import math
from typing import TYPE_CHECKING

from pixelflow.datasets.zarrarray import SPEC_KEYS
from pixelflow.errors import ConfigError
from pixelflow.planning.config import key_path
from pixelflow.planning.datasets import (
    dataset_names,
    generated_shard_spec,
    image_bytes,
    runtime_minutes,
    zarr_spec,
)

if TYPE_CHECKING:  # the types of what planning hands to the jobs; not imported while the Snakefile is parsed
    from pixelflow.stats.variance import FilterSettings

FOLDER = "results/stats"


def sigma_label(sigma) -> str:
    """σ as written in paths: an integer without a decimal point, else the shortest exact float text.

    Values of 1e15 or more are written by ``repr`` even when integral.

    Raises
    ------
    ValueError
        If ``sigma`` is not a positive finite number.
    """
    value = float(sigma)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def check_config(config: dict, workdir=None) -> None:
    """Check the rules of the stats section a JSON schema cannot say; ``workdir`` is not read.

    Raises
    ------
    ConfigError
        Naming the key: a dataset not defined under ``datasets``, or a σ
        that repeats an earlier one (the same :func:`sigma_label`).
    ValueError
        For a σ that is not a positive finite number.
    """
    stats = config["stats"]
    defined = dataset_names(config)
    for position, name in enumerate(stats["datasets"]):
        if name not in defined:
            known = ", ".join(sorted(defined)) or "none"
            raise ConfigError(
                f"config key {key_path(['stats', 'datasets', position])}: dataset {name!r} is not defined "
                f"under datasets, nor a pipeline that saves images (defined: {known})"
            )
    seen = {}
    for position, sigma in enumerate(stats["sigmas"]):
        label = sigma_label(sigma)
        if label in seen:
            raise ConfigError(
                f"config key {key_path(['stats', 'sigmas', position])}: sigma {sigma} repeats "
                f"stats.sigmas.{seen[label]}"
            )
        seen[label] = position


def sigmas(config: dict) -> list[float]:
    """The σ values, as floats, in config order."""
    return [float(sigma) for sigma in config["stats"]["sigmas"]]


def filtered_dirs(config: dict, dataset: str, shard: str) -> list[str]:
    """The folders of a shard's filtered images, one per σ (none when ``stats.save_filtered`` is ``none``)."""
    if config["stats"]["save_filtered"] == "none":
        return []
    return [f"{FOLDER}/{dataset}/filtered/sigma-{sigma_label(s)}/shard-{shard}" for s in sigmas(config)]


def shard_table(dataset: str, shard: str) -> str:
    """The statistics table of one shard."""
    return f"{FOLDER}/{dataset}/shards/shard-{shard}.tsv"


def dataset_outputs(dataset: str) -> list[str]:
    """The per-dataset summary files: ``summary.tsv``, ``theory.tsv`` and ``variance.png``."""
    return [f"{FOLDER}/{dataset}/{name}" for name in ("summary.tsv", "theory.tsv", "variance.png")]


def shard_source(config: dict, dataset_plan, shard: str) -> dict:
    """Where a stats shard's images come from: kind, index bounds and, if generated, what draws them.

    Returns
    -------
    dict
        ``kind``, ``start`` and ``stop``; for a generated dataset also ``spec``
        (:func:`pixelflow.planning.datasets.generated_shard_spec` without
        ``compression``; with ``storage: zarr`` its ``format`` is None).

    Raises
    ------
    ConfigError
        If the dataset has no such shard.
    """
    start, stop = dataset_plan.bounds(shard)
    source = {"kind": dataset_plan.kind, "start": start, "stop": stop}
    if dataset_plan.kind == "generated" and dataset_plan.storage == "zarr":
        spec = zarr_spec(config, dataset_plan)
        source["spec"] = {key: spec[key] for key in SPEC_KEYS if key in spec} | {"format": None}
    elif dataset_plan.kind == "generated":
        spec = generated_shard_spec(config, dataset_plan.name)
        del spec["compression"]  # lossless either way: the pixels do not depend on it
        source["spec"] = spec
    return source


def shard_settings(config: dict) -> "FilterSettings":
    """Everything a stats shard's outputs depend on besides its images.

    Returns
    -------
    FilterSettings
        :class:`~pixelflow.stats.variance.FilterSettings`, σ values as floats in config order.
    """
    stats = config["stats"]
    return {
        "sigmas": sigmas(config),
        "truncate": float(stats["truncate"]),
        "mode": stats["mode"],
        "save_filtered": stats["save_filtered"],
    }


def outputs(config: dict, datasets: dict) -> list[str]:
    """Every final output of the stats stage: each shard's table and filtered images, each dataset's summaries."""
    files = []
    for name in config["stats"]["datasets"]:
        for shard in datasets[name].shards:
            files.append(shard_table(name, shard))
            files += filtered_dirs(config, name, shard)
        files += dataset_outputs(name)
    return files


def shard_mem_mb(config: dict, spec: dict, attempt: int) -> int:
    """MB per stats shard job: each worker holds an image in float32 and one filtered copy per σ.

    512 MB plus, per worker (``max_threads``), 4 × (3 + the σ count) times
    the image's uncompressed bytes; all times the attempt number.
    """
    per_image = image_bytes(spec) * 4 * (3 + len(sigmas(config)))
    return attempt * (512 + per_image * config["max_threads"] // (1 << 20))


def shard_runtime(config: dict, shard_size: int, spec: dict, attempt: int) -> int:
    """Minutes of a stats shard job: its images' uncompressed MB times the σ count (at least 1), at 20 MB/s.

    At least 5, more on retries (:func:`pixelflow.planning.datasets.runtime_minutes`).
    """
    total_mb = shard_size * image_bytes(spec) * max(1, len(sigmas(config))) / (1 << 20)
    return runtime_minutes(total_mb, attempt, mb_per_second=20)
