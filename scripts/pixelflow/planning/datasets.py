"""Planning of the datasets stage while the Snakefile is parsed (standard library, and the Zarr array's layout).

A dataset is generated (``generator``) or external (``path``, a glob of
existing images). Its images are split into shards of ``shard_size``: one
Snakemake job and one folder per shard, then the dataset's index, stack and
contact sheet.

A dataset with ``storage: zarr`` is one Zarr array instead, ``images.zarr``
(:mod:`pixelflow.io.zarrstore`): shard job ``k`` writes the array's shard file
``c/k/0/0[/0]`` and ``shard-k/manifest.tsv`` (``k`` as the array numbers its
shards, without zeros in front), the index job writes ``zarr.json`` once every
shard is written. A generated dataset draws its images into it; an external
one is packed, its files decoded into it. Zarr itself is loaded only to check
a store that exists (:func:`check_zarr_stores`), and an image decoder only to
learn the form of an external zarr dataset whose config does not give it
(:func:`external_form`).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pixelflow.datasets.zarrarray import ZarrSpec, array_metadata
from pixelflow.errors import ConfigError, ImageError
from pixelflow.formats import DTYPE_BYTES, FORMATS
from pixelflow.io import zarrstore
from pixelflow.planning.config import glob_files, key_path

if TYPE_CHECKING:  # the types of what planning hands to the jobs; not imported while the Snakefile is parsed
    from pixelflow.datasets.generators import GeneratedSpec

FOLDER = "results/datasets"
STORAGES = ("files", "zarr")
MANIFEST_NAME = "manifest.tsv"  # pixelflow.io.manifest.MANIFEST_NAME (that module loads OpenCV)
ZARR_NAME = "images.zarr"  # pixelflow.io.manifest.ARRAY_NAME (that module loads OpenCV)


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
    storage : str
        ``files`` (shard folders of image files) or ``zarr`` (one Zarr array).
    shape : tuple of int
        With zarr, every image's shape, (h, w) or (h, w, c); else empty.
    dtype : str
        With zarr, every image's pixel type; else empty.
    """

    name: str
    kind: str
    count: int
    shard_size: int
    files: tuple = ()
    storage: str = "files"
    shape: tuple = ()
    dtype: str = ""

    @property
    def shards(self) -> list[str]:
        """Shard ids, one per ``shard_size`` images (none for an empty dataset).

        ``0000``, ``0001``, ... for files; ``0``, ``1``, ... for zarr, as the
        array's shard files are numbered (``c/0/0/0``).
        """
        width = 1 if self.storage == "zarr" else 4
        return [f"{k:0{width}d}" for k in range(math.ceil(self.count / self.shard_size))]

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
        Naming the key: a 3-D ``shape`` with other than 3 or 4 channels; for
        storage files a ``compression`` that is not a deflate level, a
        ``dtype`` the format cannot hold, or a bmp with an alpha channel; for
        storage zarr a ``format`` (zarr has none) or a ``compression`` other
        than :data:`pixelflow.io.zarrstore.COMPRESSIONS`.
    """
    where = ["datasets", name]
    shape = spec["shape"]
    if len(shape) == 3 and shape[2] not in (3, 4):
        raise ConfigError(
            f"config key {key_path(where + ['shape', 2])}: {shape[2]} channels; use 3 (RGB) or 4 (RGBA), "
            "or [height, width] for grey"
        )
    if spec.get("storage") == "zarr":
        check_zarr(name, spec)
        return
    compression = spec["compression"]
    if isinstance(compression, bool) or not isinstance(compression, int):
        raise ConfigError(
            f"config key {key_path(where + ['compression'])}: {compression!r} is not a deflate level 0-9 for "
            f"storage: files ({', '.join(zarrstore.COMPRESSIONS)} are for storage: zarr)"
        )
    dtypes = FORMATS[spec["format"]].dtypes
    if spec["dtype"] not in dtypes:
        raise ConfigError(
            f"config key {key_path(where + ['dtype'])}: {spec['format']} cannot hold {spec['dtype']} pixels "
            f"(use format tiff for float32; {spec['format']} takes {', '.join(dtypes)})"
        )
    if spec["format"] == "bmp" and len(shape) == 3 and shape[2] == 4:
        raise ConfigError(f"config key {key_path(where + ['format'])}: bmp cannot hold an alpha channel")


def check_zarr(name: str, spec: dict) -> None:
    """Check the keys of a dataset with ``storage: zarr``.

    Raises
    ------
    ConfigError
        Naming ``format`` (the images are chunks of one array, not files) or
        ``compression`` (not one of :data:`pixelflow.io.zarrstore.COMPRESSIONS`).
    """
    where = ["datasets", name]
    if spec.get("format") is not None:
        raise ConfigError(
            f"config key {key_path(where + ['format'])}: storage: zarr keeps the images in one array, not in "
            f"{spec['format']} files; remove format (or use storage: files)"
        )
    compression = spec["compression"]
    if not isinstance(compression, str) or compression not in zarrstore.COMPRESSIONS:
        raise ConfigError(
            f"config key {key_path(where + ['compression'])}: {compression!r} is not one of "
            f"{', '.join(zarrstore.COMPRESSIONS)} for storage: zarr"
        )


def check_config(config: dict, workdir) -> None:
    """Check the rules between the keys of each dataset (:func:`check_generated`, :func:`check_zarr`).

    An external dataset's glob is checked by :func:`plan_datasets`, which needs its files anyway;
    ``workdir`` is not read.

    Raises
    ------
    ConfigError
        Naming the key; for an external dataset a ``compression`` without
        ``storage: zarr`` (its files are read where they are).
    """
    for name, spec in config["datasets"].items():
        if "path" not in spec:
            check_generated(name, spec)
        elif spec["storage"] == "zarr":
            check_zarr(name, spec)
        elif "compression" in spec:
            raise ConfigError(
                f"config key {key_path(['datasets', name, 'compression'])}: an external dataset's files are read "
                "where they are; compression is for storage: zarr, which packs them into one array"
            )


def check_zarr_stores(config: dict, datasets: dict[str, DatasetPlan], workdir) -> None:
    """Refuse a zarr dataset whose store holds another array than its config describes; the count may differ.

    Another generation spec, shape, dtype, shard size, compression or format
    version would mix two arrays in one store, so the store must be removed
    first; the shard jobs check this too, but Snakemake removes a job's old
    output before the job starts, so only a check before any job runs keeps
    the store as it was. It loads Zarr (to build the metadata the jobs would
    write), so the Snakefile calls it once per run, in the main process.

    Parameters
    ----------
    config : dict
        The checked config.
    datasets : dict of str to DatasetPlan
        The plans (:func:`plan_datasets`).
    workdir : str or path
        The folder holding ``results/``.

    Raises
    ------
    ConfigError
        Naming ``datasets.<name>``, the store's ``zarr.json`` and each difference.
    """
    for name in zarr_names(datasets):
        where = key_path(["datasets", name])
        try:
            stored = zarrstore.read_metadata(Path(workdir) / zarr_store(name))
        except ImageError as error:
            raise ConfigError(f"config key {where}: {error}; remove {zarr_store(name)} to write it anew") from None
        if stored is None:
            continue
        requested = array_metadata(zarr_spec(config, datasets[name]), datasets[name].count)  # loads Zarr
        words = zarrstore.metadata_differences(stored, requested, ignore_count=True)
        if words:
            raise ConfigError(
                f"config key {where}: {zarr_store(name)} holds another array than the config describes "
                f"(stored vs config): {'; '.join(words)}. Remove {zarr_store(name)} to write it anew"
            )


def is_zarr(config: dict, name: str) -> bool:
    """Whether ``name`` is a dataset of ``datasets`` with ``storage: zarr``."""
    spec = config["datasets"].get(name)
    return spec is not None and spec.get("storage") == "zarr"


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
        Naming ``datasets.<name>.path``, for a glob that matches no file, and
        as :func:`external_form`.
    """
    plans = {}
    for name, spec in config["datasets"].items():
        shard_size = spec.get("shard_size", config["shard_size"])
        storage = spec.get("storage", "files")
        if "path" in spec:
            files = tuple(glob_files(spec["path"], f"datasets.{name}.path", workdir))
            form = external_form(name, spec, Path(workdir) / files[0]) if storage == "zarr" else ((), "")
            plans[name] = DatasetPlan(name, "external", len(files), shard_size, files, storage, *form)
        elif storage == "zarr":
            form = (tuple(spec["shape"]), spec["dtype"])
            plans[name] = DatasetPlan(name, "generated", spec["count"], shard_size, (), storage, *form)
        else:
            plans[name] = DatasetPlan(name, "generated", spec["count"], shard_size)
    return plans


def external_form(name: str, spec: dict, first) -> tuple[tuple, str]:
    """The shape and dtype every image of an external zarr dataset must have.

    Its config's ``shape`` and ``dtype`` where given; what it lacks is taken from
    its first file, decoded as its shard job decodes it
    (:func:`pixelflow.io.images.read_image`, imported only here).

    Parameters
    ----------
    name : str
        The dataset's key under ``datasets``.
    spec : dict
        Its validated entry.
    first : str or path-like
        Its first file.

    Returns
    -------
    shape : tuple of int
    dtype : str

    Raises
    ------
    ConfigError
        Naming ``datasets.<name>.path`` and the file, when the file is needed
        and cannot be decoded.
    """
    if "shape" in spec and "dtype" in spec:
        return tuple(spec["shape"]), spec["dtype"]
    from pixelflow.io.images import read_image

    try:
        image = read_image(first)
    except ImageError as error:
        raise ConfigError(
            f"config key {key_path(['datasets', name, 'path'])}: its first file gives the array's shape and "
            f"dtype, but {error}"
        ) from None
    return tuple(spec.get("shape", image.shape)), spec.get("dtype", str(image.dtype))


def storage_names(config: dict, storage: str) -> list[str]:
    """The names of the datasets under ``datasets`` whose images are kept as ``storage`` (``files`` or ``zarr``)."""
    return [name for name, spec in config["datasets"].items() if spec.get("storage", "files") == storage]


def zarr_names(datasets: dict[str, DatasetPlan], channels: bool | None = None) -> list[str]:
    """The names of the zarr datasets among the plans; ``channels`` keeps colour (True) or grey (False) ones.

    A colour array's shard files lie one folder deeper.
    """
    return [
        name
        for name, plan in datasets.items()
        if plan.storage == "zarr" and (channels is None or (len(plan.shape) == 3) == channels)
    ]


def file_dataset_names(config: dict) -> list[str]:
    """The names usable as a dataset whose images are files: ``files`` datasets and pipelines that save images."""
    return [name for name in dataset_names(config) if not is_zarr(config, name)]


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


def shard_manifest(name: str, shard: str) -> str:
    """The manifest of one shard."""
    return f"{shard_dir(name, shard)}/{MANIFEST_NAME}"


def zarr_store(name: str) -> str:
    """The folder of a zarr dataset's array."""
    return f"{FOLDER}/{name}/{ZARR_NAME}"


def zarr_metadata_file(name: str) -> str:
    """The array's metadata, ``zarr.json``: written by the dataset's index job."""
    return f"{zarr_store(name)}/{zarrstore.METADATA_NAME}"


def zarr_shard_file(dataset: DatasetPlan, shard: str) -> str:
    """The file of one shard of a zarr dataset's array (:func:`pixelflow.io.zarrstore.shard_file`)."""
    return zarrstore.shard_file(zarr_store(dataset.name), shard=int(shard), image_shape=dataset.shape).as_posix()


def zarr_shard_outputs(dataset: DatasetPlan, shards=None) -> dict[str, list[str]]:
    """The outputs of a zarr dataset's shard jobs (all, or the given ids): ``shards`` files and ``manifests``."""
    ids = dataset.shards if shards is None else shards
    return {
        "shards": [zarr_shard_file(dataset, shard) for shard in ids],
        "manifests": [shard_manifest(dataset.name, shard) for shard in ids],
    }


def read_inputs(dataset: DatasetPlan, shards=None) -> dict[str, list[str]]:
    """What a job reading shards of a dataset takes as inputs (all shards, or those numbered as ``shards``).

    A job reads the images through their manifests (:func:`pixelflow.io.manifest.read_manifests`
    takes shard folders and manifest files alike). ``shards`` are shard ids of
    any width (``0003`` and ``3`` are the same shard), so that a pipeline's
    shard names the shard of its dataset.

    Returns
    -------
    dict of str to list of str
        ``listing``: the shard folders, or a zarr dataset's shard manifests;
        ``arrays``: a zarr dataset's shard files (else none); ``metadata``: its
        ``zarr.json``, which the job needs to open the array but whose newer
        time alone (a changed count) does not change the images it reads.
    """
    ids = dataset.shards if shards is None else [dataset.shards[int(shard)] for shard in shards]
    if dataset.storage != "zarr":
        return {"listing": [shard_dir(dataset.name, shard) for shard in ids], "arrays": [], "metadata": []}
    outputs = zarr_shard_outputs(dataset, ids)
    metadata = [zarr_metadata_file(dataset.name)]
    return {"listing": outputs["manifests"], "arrays": outputs["shards"], "metadata": metadata}


def outputs(config: dict, datasets: dict[str, DatasetPlan]) -> list[str]:
    """Every final output of the datasets stage: shards, index, stack and contact sheet of each dataset.

    The stack only when the dataset's ``stack`` is on, the contact sheet only
    when ``montage.count`` is above 0. A zarr dataset's shards are its
    array's shard files and their manifests, and its ``zarr.json`` is an
    output too.

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
        if datasets[name].storage == "zarr":
            shards = zarr_shard_outputs(datasets[name])
            files += shards["shards"] + shards["manifests"] + [zarr_metadata_file(name)]
        else:
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
    return {**_image_spec(config, name), "format": spec["format"], "compression": spec["compression"]}


def _image_spec(config: dict, name: str) -> dict:
    """What a generated dataset's pixels depend on, apart from the index: name, generator, seed, shape, dtype."""
    spec = config["datasets"][name]
    return {
        "name": name,
        "generator": spec["generator"],
        "seed": spec.get("seed", config["seed"]),
        "shape": list(spec["shape"]),
        "dtype": spec["dtype"],
    }


def zarr_spec(config: dict, dataset: DatasetPlan) -> ZarrSpec:
    """Everything a zarr dataset's files depend on besides its count (and, when packed, its files' pixels).

    A generated dataset's image spec (``seed`` defaults to the top-level one);
    for an external one its ``path`` and the form of its images
    (:attr:`DatasetPlan.shape`, :attr:`DatasetPlan.dtype`).
    """
    spec = config["datasets"][dataset.name]
    if dataset.kind == "external":
        images = {"name": dataset.name, "path": spec["path"], "shape": list(dataset.shape), "dtype": dataset.dtype}
    else:
        images = _image_spec(config, dataset.name)
    return {**images, "compression": spec["compression"], "shard_size": dataset.shard_size}


def zarr_shard_params(config: dict, dataset: DatasetPlan, shard: str) -> dict:
    """Everything a zarr shard job's files depend on: ``start``, ``stop`` and ``spec`` (:func:`zarr_spec`).

    Not the dataset's count: a shard job whose images stay the same is not
    rerun when the count changes (the index job writes the new count). An
    external dataset's also has ``origin``: where the images' shape and dtype
    come from, in words for its messages (its files are its inputs).

    Raises
    ------
    ConfigError
        If the dataset has no such shard.
    """
    start, stop = dataset.bounds(shard)
    params = {"start": start, "stop": stop, "spec": zarr_spec(config, dataset)}
    if dataset.kind == "external":
        spec = config["datasets"][dataset.name]
        if "shape" in spec and "dtype" in spec:
            params["origin"] = f"datasets.{dataset.name}.shape and dtype give"
        else:
            params["origin"] = f"its first file {dataset.files[0]} is"
    return params


def zarr_index_params(config: dict, dataset: DatasetPlan) -> dict:
    """What a zarr dataset's index job writes from: ``spec``, ``count`` and the current ``shards`` folders' names."""
    return {
        "spec": zarr_spec(config, dataset),
        "count": dataset.count,
        "shards": [f"shard-{shard}" for shard in dataset.shards],
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
