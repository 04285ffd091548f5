"""One pipeline shard: each image read once, every step and metric run, the result saved.

A worker process reads an image, converts it as ``img_as_float32`` does, runs
the pipeline's steps (:func:`pixelflow.pipelines.operations.apply_steps`),
measures the result (:func:`pixelflow.pipelines.metrics.measure` and the
user's metrics) and, unless ``save`` is ``none``, writes it in the shard
folder with a manifest, so that the pipeline's output is a dataset.

Saved pixels (:func:`saved_array`):

- a bool result (a mask) is written as uint8, 0 and 255, in every format;
- a float result in ``tiff`` is written as float32, as it is (NaN kept);
- a float result in ``png`` or ``bmp`` is clipped to [0, 1], scaled by 255 and
  rounded to the nearest integer (``skimage.util.img_as_ubyte`` of the clipped
  values); a NaN or infinite pixel is written as 0.

Non-finite pixels are never hidden: each image's count is in the metrics
table's ``nonfinite`` column, and the job's log names how many images have any.
"""

import hashlib
import numbers
import os
from pathlib import Path
from typing import TypedDict

import numpy as np

from pixelflow.atomic import atomic_dir
from pixelflow.formats import image_file_name
from pixelflow.io.images import encode_image
from pixelflow.io.manifest import MANIFEST_NAME, manifest_row, write_manifest
from pixelflow.io.sources import read_source
from pixelflow.io.tables import write_table
from pixelflow.pipelines.filters import to_uint8
from pixelflow.pipelines.metrics import RESERVED_COLUMNS, measure, metric_columns, nonfinite_count
from pixelflow.pipelines.operations import PYTHON, apply_steps, as_float32
from pixelflow.pipelines.user_code import load_function
from pixelflow.runner import parallel_map

METRICS_NAME = "metrics.tsv"
# Saved PNGs as OpenCV writes them by default: zlib level 1, run-length strategy, row filter sub;
# measured 1.7 times faster than level 1 with zlib's default strategy and adaptive filters, and
# smaller, on the benchmark's edge maps.
PNG_COMPRESSION = 1
PNG_STRATEGY = "rle"
PNG_FILTER = "sub"


class PipelineSpec(TypedDict):
    """Everything a pipeline shard's outputs depend on besides its images (planning hands it to the job).

    Attributes
    ----------
    name : str
        The pipeline's name: the stem of its image files and the prefix of config keys in errors.
    steps : list of dict
        Checked steps (:func:`pixelflow.pipelines.operations.check_step`).
    metrics : list
        Checked metrics (:func:`pixelflow.pipelines.metrics.check_metrics`).
    save : str
        ``png``, ``tiff``, ``bmp`` or ``none``.
    """

    name: str
    steps: list[dict]
    metrics: list
    save: str


def metrics_columns(spec: PipelineSpec) -> list[str]:
    """The columns of a pipeline's metrics table: index, file, output (when saved), nonfinite, then the metrics."""
    fixed = [column for column in RESERVED_COLUMNS if column != "output" or spec["save"] != "none"]
    return fixed + metric_columns(spec["metrics"])


def saved_array(image: np.ndarray, fmt: str) -> np.ndarray:
    """The pixels a pipeline result is saved as in ``fmt`` (the module's rules).

    Parameters
    ----------
    image : ndarray
        bool or float32, (h, w) or (h, w, 3).
    fmt : str
        ``png``, ``tiff`` or ``bmp``.

    Returns
    -------
    ndarray
        uint8 (0 and 255 for bool), or float32 for a float image in tiff.
    """
    if image.dtype == bool:
        return image.astype(np.uint8) * np.uint8(255)
    if fmt == "tiff":
        return image.astype(np.float32, copy=False)
    return to_uint8(image)


def user_metric(function, output: np.ndarray, input: np.ndarray, reference: str) -> float:
    """A user metric's value for one image, checked to be a real number.

    Raises
    ------
    ValueError
        Naming ``reference``, when the function returns something other than a real number.
    """
    value = function(output, input)
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(f"metric {reference} returned {value!r} ({type(value).__name__}), not a number")
    return float(value)


def user_functions(spec: PipelineSpec, workdir) -> dict:
    """Import the user's functions a pipeline names, by ``"module:function"`` (:func:`load_function`)."""
    functions = {}
    where = f"pipelines.{spec['name']}"
    for position, step in enumerate(spec["steps"]):
        if step["op"] == PYTHON:
            key = f"{where}.steps.{position}.function"
            functions.setdefault(step["function"], load_function(step["function"], workdir, key))
    for position, entry in enumerate(spec["metrics"]):
        if isinstance(entry, dict):
            key = f"{where}.metrics.{position}.function"
            functions.setdefault(entry["function"], load_function(entry["function"], workdir, key))
    return functions


_WORKER: dict = {}


def _start_worker(folder: str, shown_folder: str, spec: PipelineSpec, workdir: str) -> None:
    _WORKER.update(folder=folder, shown_folder=shown_folder, spec=spec, functions=user_functions(spec, workdir))


def process_image(raw: np.ndarray, spec: PipelineSpec, functions: dict) -> tuple[np.ndarray, int, list[float]]:
    """Run a pipeline's steps and metrics on one image.

    Parameters
    ----------
    raw : ndarray
        The image as read: grey (h, w) or RGB (h, w, 3), bool, uint8, uint16 or float.
    spec : PipelineSpec
        The pipeline.
    functions : dict
        Its user functions (:func:`user_functions`).

    Returns
    -------
    output : ndarray
        The result, float32 or bool.
    nonfinite : int
        Its NaN or infinite pixels (:func:`pixelflow.pipelines.metrics.nonfinite_count`).
    values : list of float
        The metrics in the order of ``spec["metrics"]``.

    Raises
    ------
    ValueError
        As :func:`~pixelflow.pipelines.operations.apply_steps` and
        :func:`~pixelflow.pipelines.metrics.measure`, and for a user metric
        that does not return a number.
    Exception
        Whatever a user's function raises.
    """
    input = as_float32(raw)
    output = apply_steps(input, spec["steps"], functions)
    names = [entry for entry in spec["metrics"] if isinstance(entry, str)]
    builtin = measure(output, input, names)
    values = [
        float(builtin[entry])
        if isinstance(entry, str)
        else user_metric(functions[entry["function"]], output, input, entry["function"])
        for entry in spec["metrics"]
    ]
    return output, nonfinite_count(output), values


def _process(item) -> tuple:
    index, path, shown = item
    spec, folder = _WORKER["spec"], _WORKER["folder"]
    output, nonfinite, values = process_image(read_source(path), spec, _WORKER["functions"])
    if spec["save"] == "none":
        return None, (index, shown, nonfinite, *values)
    name = image_file_name(spec["name"], index, spec["save"])
    pixels = saved_array(output, spec["save"])
    data = encode_image(pixels, spec["save"], PNG_COMPRESSION, PNG_STRATEGY, PNG_FILTER)
    Path(folder, name).write_bytes(data)
    row = manifest_row(index, name, pixels, hashlib.sha256(data).hexdigest())
    return row, (index, shown, os.path.join(_WORKER["shown_folder"], name), nonfinite, *values)


def describe_item(item) -> str:
    """Words naming an image in error messages; the item is ``(index, path, file as shown)``."""
    return f"image {item[0]} ({item[2]})"


def write_pipeline_shard(
    folder, sources: list[dict], spec: PipelineSpec, processes: int, workdir=".", progress=None
) -> list[tuple]:
    """Run a pipeline on one shard of its dataset and write the shard folder.

    The folder holds ``metrics.tsv`` (:func:`metrics_columns`, in index order;
    ``file`` and ``output`` are the input's and the result's paths as the
    manifests and ``folder`` give them, normalised)
    and, unless ``save`` is ``none``, the images and their ``manifest.tsv``.
    It is replaced as a whole, and only once every image passed.

    Parameters
    ----------
    folder : str or path-like
        The shard folder.
    sources : list of dict
        The input shard's manifest rows (:func:`pixelflow.io.manifest.read_manifest`).
    spec : PipelineSpec
        The pipeline.
    processes : int
        Worker processes.
    workdir : str or path-like
        The folder the user's modules are imported from.
    progress : callable, optional
        Receives the number of images newly processed, as they are done; the
        counts add up to ``len(sources)``.

    Returns
    -------
    list of tuple
        The metrics rows, in index order.

    Raises
    ------
    WorkerError
        Naming the image and carrying the cause's traceback (a user function's
        own included) when an image cannot be read or processed.
    ConfigError
        When a user's function cannot be imported (naming its config key).
    """
    items = [(row["index"], row["path"], os.path.normpath(row["path"])) for row in sorted(sources, key=_index)]
    with atomic_dir(folder) as temporary:
        workdir = os.fspath(Path(workdir).resolve())
        state = (os.fspath(temporary), os.path.normpath(folder), spec, workdir)
        _start_worker(*state)  # imports the user's code here first: errors name the key
        results = parallel_map(
            _process,
            items,
            processes,
            initializer=_start_worker,
            initargs=state,
            describe=describe_item,
            progress=progress,
        )
        rows = [metrics for _, metrics in results]
        write_table(Path(temporary) / METRICS_NAME, metrics_columns(spec), rows)
        if spec["save"] != "none":
            write_manifest(Path(temporary) / MANIFEST_NAME, [row for row, _ in results])
    return rows


def _index(row: dict) -> int:
    return row["index"]


def images_with_nonfinite(rows: list[tuple], spec: PipelineSpec) -> int:
    """How many metrics rows count NaN or infinite pixels."""
    position = metrics_columns(spec).index("nonfinite")
    return sum(1 for row in rows if row[position] > 0)
