"""Planning of the datasets stage while the Snakefile is parsed (standard library only).

A dataset is generated (``generator``) or external (``path``, a glob of
existing images). Its images are split into shards of ``shard_size``: one
Snakemake job and one folder per shard, then the dataset's index, stack and
contact sheet.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pixelflow.errors import ConfigError
from pixelflow.formats import DTYPE_BYTES, FORMATS
from pixelflow.planning.config import glob_files, key_path

if TYPE_CHECKING:  # the types of what planning hands to the jobs; not imported while the Snakefile is parsed
    from pixelflow.datasets.generators import GeneratedSpec

FOLDER = "results/datasets"


@dataclass(frozen=True)
class DatasetPlan:
    """How one dataset is split into shards.

    Attributes
    ----------
    name : str
        The dataset's key under ``datasets``.
    kind : str
        ``generated``, ``external`` or ``pipeline`` (a pipeline's output).
    count : int
        Images in the dataset.
    shard_size : int
        Images per shard; the last shard may hold fewer.
    files : tuple of str
        An external dataset's image files in index order; empty for a generated one.
    """

    name: str
    kind: str
    count: int
    shard_size: int
    files: tuple = ()

    @property
    def shards(self) -> list[str]:
        """Shard ids ``0000``, ``0001``, ..., one per ``shard_size`` images (none for an empty dataset)."""
        return [f"{k:04d}" for k in range(math.ceil(self.count / self.shard_size))]

    def bounds(self, shard: str) -> tuple[int, int]:
        """Image indexes ``(start, stop)`` of a shard.

        Raises
        ------
        ConfigError
            If the dataset has no such shard.
        """
        start = int(shard) * self.shard_size
        if not 0 <= start < self.count:
            raise ConfigError(f"dataset {self.name!r} has no shard {shard}")
        return start, min(start + self.shard_size, self.count)

    def shards_covering(self, count: int) -> list[str]:
        """The shards holding images ``0..count-1`` (every shard when ``count`` is the dataset's size or more)."""
        return self.shards[: math.ceil(min(count, self.count) / self.shard_size)]


def check_generated(name: str, spec: dict) -> None:
    """Check the rules between keys of a generated dataset that the schema cannot say.

    Parameters
    ----------
    name : str
        The dataset's key under ``datasets``.
    spec : dict
        Its validated entry.

    Raises
    ------
    ConfigError
        Naming the key: a ``dtype`` the format cannot hold, a 3-D ``shape``
        with other than 3 or 4 channels, or a bmp with an alpha channel.
    """
    where = ["datasets", name]
    dtypes = FORMATS[spec["format"]].dtypes
    if spec["dtype"] not in dtypes:
        raise ConfigError(
            f"config key {key_path(where + ['dtype'])}: {spec['format']} cannot hold {spec['dtype']} pixels "
            f"(use format tiff for float32; {spec['format']} takes {', '.join(dtypes)})"
        )
    shape = spec["shape"]
    if len(shape) == 3 and shape[2] not in (3, 4):
        raise ConfigError(
            f"config key {key_path(where + ['shape', 2])}: {shape[2]} channels; use 3 (RGB) or 4 (RGBA), "
            "or [height, width] for grey"
        )
    if spec["format"] == "bmp" and len(shape) == 3 and shape[2] == 4:
        raise ConfigError(f"config key {key_path(where + ['format'])}: bmp cannot hold an alpha channel")


def check_config(config: dict, workdir) -> None:
    """Check the rules between the keys of each generated dataset (:func:`check_generated`).

    An external dataset's glob is checked by :func:`plan_datasets`, which needs its files anyway;
    ``workdir`` is not read.

    Raises
    ------
    ConfigError
        Naming the key.
    """
    for name, spec in config["datasets"].items():
        if "path" not in spec:
            check_generated(name, spec)


def plan_datasets(config: dict, workdir) -> dict[str, DatasetPlan]:
    """Shard plans for every dataset of a checked config, by name.

    Parameters
    ----------
    config : dict
        The validated config; a dataset without ``shard_size`` takes the top-level one.
    workdir : str or path
        The folder external datasets' globs are relative to.

    Returns
    -------
    dict of str to DatasetPlan

    Raises
    ------
    ConfigError
        Naming ``datasets.<name>.path``, for a glob that matches no file.
    """
    plans = {}
    for name, spec in config["datasets"].items():
        shard_size = spec.get("shard_size", config["shard_size"])
        if "path" in spec:
            files = tuple(glob_files(spec["path"], f"datasets.{name}.path", workdir))
            plans[name] = DatasetPlan(name, "external", len(files), shard_size, files)
        else:
            plans[name] = DatasetPlan(name, "generated", spec["count"], shard_size)
    return plans


def dataset_names(config: dict) -> list[str]:
    """The names usable as a dataset: the datasets', and those of the pipelines that save their images."""
    pipelines = config.get("pipelines") or {}
    return [*config["datasets"], *(name for name, spec in pipelines.items() if spec["save"] != "none")]


def dataset_spec(config: dict, name: str) -> dict:
    """A dataset's config entry; for a pipeline's output, an estimate for sizing its jobs.

    A pipeline's estimate takes its root dataset's ``shape`` (when given), the
    pipeline's ``stack`` and ``save`` (as ``format``), and dtype float32 when it
    saves TIFF, else uint8.
    """
    if name in config["datasets"]:
        return config["datasets"][name]
    pipeline = config["pipelines"][name]
    root = dataset_spec(config, pipeline["dataset"])
    spec = {"shape": root["shape"]} if "shape" in root else {}
    return {
        **spec,
        "stack": pipeline["stack"],
        "format": pipeline["save"],
        "dtype": "float32" if pipeline["save"] == "tiff" else "uint8",
    }


def shard_dir(name: str, shard: str) -> str:
    """The folder of one shard."""
    return f"{FOLDER}/{name}/shard-{shard}"


def outputs(config: dict, datasets: dict[str, DatasetPlan]) -> list[str]:
    """Every final output of the datasets stage: shards, index, stack and contact sheet of each dataset.

    The stack only when the dataset's ``stack`` is on, the contact sheet only when ``montage.count`` is above 0.

    Parameters
    ----------
    config : dict
        The validated config.
    datasets : dict of str to DatasetPlan
        The plans (:func:`plan_datasets`).

    Returns
    -------
    list of str
    """
    files = []
    for name, spec in config["datasets"].items():
        # Shards are final outputs too: one that failed and was removed is redone
        # even though the stack built from its earlier content still exists.
        files += [shard_dir(name, shard) for shard in datasets[name].shards]
        files.append(f"{FOLDER}/{name}/manifest.tsv")
        if spec["stack"]:
            files.append(f"{FOLDER}/{name}/stack.npy")
        if config["montage"]["count"] > 0:
            files.append(f"{FOLDER}/{name}/montage.png")
    return files


def shard_inputs(dataset: DatasetPlan, shard: str) -> dict:
    """Inputs of a shard job besides its code: for an external dataset, the images it checks (else none)."""
    if dataset.kind != "external":
        return {}
    start, stop = dataset.bounds(shard)
    return {"images": list(dataset.files[start:stop])}


def shard_job_threads(max_threads: int, cores: int | None, shards: int) -> int:
    """Worker processes of one shard job: the cores shared among ``shards`` jobs, 1 to ``max_threads``.

    Without a known core count (a cluster executor) every job gets ``max_threads``.
    """
    if cores is None:
        return max_threads
    return max(1, min(max_threads, cores // max(1, shards)))


def generated_shard_spec(config: dict, name: str) -> "GeneratedSpec":
    """Everything a generated image's bytes depend on, apart from its index; ``seed`` defaults to the top-level one."""
    spec = config["datasets"][name]
    return {
        "name": name,
        "generator": spec["generator"],
        "seed": spec.get("seed", config["seed"]),
        "shape": list(spec["shape"]),
        "dtype": spec["dtype"],
        "format": spec["format"],
        "compression": spec["compression"],
    }


def shard_params(config: dict, dataset: DatasetPlan, shard: str) -> dict:
    """Everything a shard's bytes depend on besides its input files.

    Returns
    -------
    dict
        ``kind``, ``start`` and ``stop`` (image indexes); for a generated
        dataset ``spec`` (:func:`generated_shard_spec`), for an external one
        the ``shape`` and ``dtype`` its images must have (None when not given).

    Raises
    ------
    ConfigError
        If the dataset has no such shard.
    """
    start, stop = dataset.bounds(shard)
    params = {"kind": dataset.kind, "start": start, "stop": stop}
    spec = config["datasets"][dataset.name]
    if dataset.kind == "generated":
        params["spec"] = generated_shard_spec(config, dataset.name)
    else:
        params["shape"] = spec.get("shape")
        params["dtype"] = spec.get("dtype")
    return params


def image_bytes(spec: dict) -> int:
    """Uncompressed bytes of one image of a dataset spec (external without a shape: a nominal 1 MiB).

    ``dtype`` defaults to uint8; a dtype missing from :data:`~pixelflow.formats.DTYPE_BYTES` counts 4 bytes.
    """
    if "shape" not in spec:
        return 1 << 20
    return math.prod(spec["shape"]) * DTYPE_BYTES.get(spec.get("dtype", "uint8"), 4)


def shard_mem_mb(config: dict, name: str, attempt: int) -> int:
    """Memory in MB of a shard job: workers hold one image at a time; allow for a few large ones.

    512 MB plus 8 images per worker (``max_threads``), times the attempt number.
    """
    return attempt * (512 + 8 * image_bytes(config["datasets"][name]) // (1 << 20) * config["max_threads"])


def runtime_minutes(megabytes: float, attempt: int, mb_per_second: float = 50) -> int:
    """Minutes for a job moving ``megabytes`` at ``mb_per_second``, generously: at least 5, more on retries."""
    return attempt * max(5, int(megabytes / mb_per_second / 60) + 5)


def shard_runtime(config: dict, dataset: DatasetPlan, attempt: int) -> int:
    """Minutes of a shard job: its images' uncompressed MB at about 50 MB/s (:func:`runtime_minutes`)."""
    return runtime_minutes(dataset.shard_size * image_bytes(config["datasets"][dataset.name]) / (1 << 20), attempt)


def index_mem_mb(dataset: DatasetPlan, attempt: int) -> int:
    """Memory in MB of a job reading a dataset's manifests: images stream through one at a time, rows take about 1 KB.

    1024 MB plus 1 MB per 1000 images, times the attempt number.
    """
    return attempt * (1024 + dataset.count // 1000)


def stack_runtime(config: dict, dataset: DatasetPlan, attempt: int) -> int:
    """Minutes of a stack job: the dataset's uncompressed MB at about 50 MB/s (:func:`runtime_minutes`)."""
    return runtime_minutes(dataset.count * image_bytes(dataset_spec(config, dataset.name)) / (1 << 20), attempt)
