"""Variance before and after Gaussian filtering: per-image rows, shard tables, the theory check.

Statistics are taken on the filter's float scale: integer images in [0, 1]
(scikit-image's ``preserve_range=False``), float images as stored. For
independent pixel noise of variance v, a Gaussian blur leaves variance
v · (Σ w²)² in the interior (w the 1-D kernel), about v / (4πσ²) for σ ≳ 1.
"""

import contextlib
import math
import os
from typing import TypedDict

import numpy as np

from pixelflow.atomic import atomic_dir
from pixelflow.datasets.generators import GeneratedSpec, generate_image
from pixelflow.formats import image_file_name
from pixelflow.io.images import encode_image
from pixelflow.io.sources import ARRAY_NAME, array_source, read_source
from pixelflow.io.tables import write_table
from pixelflow.pipelines.filters import kernel_radius, to_float, to_uint8
from pixelflow.pipelines.metrics import moments
from pixelflow.pipelines.operations import OPERATIONS
from pixelflow.runner import parallel_map
from pixelflow.stats.tables import COLUMNS

# Each image and each filtered image is described by the pipelines' metrics mean, var, min and max
# (pixelflow.pipelines.metrics.moments), and filtered by the pipelines' gaussian operation.
GAUSSIAN = OPERATIONS["gaussian"].function


class FilterSettings(TypedDict):
    """Everything a stats shard's outputs depend on besides its images (planning hands it to the job).

    Attributes
    ----------
    sigmas : list of float
        The filters' standard deviations in pixels, in output order.
    truncate : float
        Kernel radius in standard deviations.
    mode : str
        Border mode, as scipy.ndimage names it.
    save_filtered : str
        Format of the 8-bit filtered images, or "none".
    """

    sigmas: list[float]
    truncate: float
    mode: str
    save_filtered: str


def interior_variance(filtered: np.ndarray, radius: int) -> float:
    """Variance of the pixels whose kernel support lies inside the image (NaN if none do).

    Parameters
    ----------
    filtered : ndarray
        (h, w) or (h, w, c) float32 filtered image.
    radius : int
        The kernel's radius; that many pixels are dropped at every edge.
    """
    height, width = filtered.shape[:2]
    if height <= 2 * radius or width <= 2 * radius:
        return math.nan
    return moments(filtered[radius : height - radius, radius : width - radius])[1]


def clipped_fraction(values: np.ndarray) -> float:
    """Share of pixels at or beyond 0 or 1."""
    return float(np.count_nonzero((values <= 0) | (values >= 1))) / values.size


def image_rows(index: int, file: str, image: np.ndarray, sigmas, truncate: float, mode: str, name=None):
    """Statistics rows of one image for every σ, and the filtered images (float32); ``name`` is used in errors.

    Parameters
    ----------
    index : int
        The image's index.
    file : str
        The image's file as the table records it.
    image : ndarray
        (h, w) or (h, w, c) uint8, uint16 or float (:func:`pixelflow.pipelines.filters.to_float`).
    sigmas : sequence of float
        Standard deviations in pixels.
    truncate : float
        Kernel radius in standard deviations.
    mode : str
        Border mode.
    name : str, optional
        Names the image in errors; ``file`` by default.

    Returns
    -------
    rows : list of tuple
        One per σ, in :data:`pixelflow.stats.tables.COLUMNS` order.
    filtered : list of ndarray
        One float32 image per σ, of ``image``'s shape.

    Raises
    ------
    ValueError
        Naming the image, for an unsupported dtype or non-finite pixels; and
        for an unknown mode or a sigma not above 0.
    """
    values = to_float(image, file if name is None else name)
    mean_in, var_in, min_in, max_in = moments(values)
    clipped = clipped_fraction(values)
    rows, filtered = [], []
    for sigma in sigmas:
        out = GAUSSIAN(values, sigma=sigma, truncate=truncate, mode=mode)
        mean_out, var_out, min_out, max_out = moments(out)
        interior = interior_variance(out, kernel_radius(sigma, truncate))
        stats_out = (mean_out, var_out, min_out, max_out, interior)
        rows.append((index, file, sigma, mean_in, var_in, min_in, max_in, *stats_out, clipped))
        filtered.append(out)
    return rows, filtered


# Worker side: the job's settings are handed to each worker once by the initializer.
_JOB: dict = {}


def init_worker(settings: dict) -> None:
    """Pool initializer: keep the shard job's settings in this worker.

    They are the :class:`FilterSettings` plus the dataset's name, the output
    folders and, for a generated dataset, its ``spec``.
    """
    _JOB.clear()
    _JOB.update(settings)


def filter_and_save(index: int, file: str, name: str, image: np.ndarray) -> list[tuple]:
    """Filter one image for every σ, save its 8-bit results, return its rows; ``name`` is used in errors.

    The results go to the job's folders, one per σ, as
    ``{dataset}_{index:06d}`` files of the ``save_filtered`` format, unless it is "none".
    """
    rows, filtered = image_rows(index, file, image, _JOB["sigmas"], _JOB["truncate"], _JOB["mode"], name)
    fmt = _JOB["save_filtered"]
    if fmt != "none":
        saved = image_file_name(_JOB["dataset"], index, fmt)
        for folder, out in zip(_JOB["folders"], filtered, strict=True):
            with open(os.path.join(folder, saved), "wb") as handle:
                handle.write(encode_image(to_uint8(out), fmt))
    return rows


def process_image(item: tuple) -> list[tuple]:
    """Read one image ``(index, file, path)`` and filter it (:func:`filter_and_save`)."""
    index, file, path = item
    return filter_and_save(index, file, str(path), read_source(path))


def process_generated(index: int) -> list[tuple]:
    """Draw image ``index`` of a generated dataset from its own random stream and filter it.

    The array is the one the dataset's shard job encodes; every format and dtype a
    generated dataset may use (png/tiff/bmp, uint8/uint16/float32) stores it losslessly,
    so the rows equal those of the decoded file.
    """
    spec = _JOB["spec"]
    image = generate_image(spec["generator"], spec["seed"], spec["name"], index, spec["shape"], spec["dtype"])
    # Its file, or with storage: zarr (no format) its place in the dataset's array.
    file = image_file_name(spec["name"], index, spec["format"]) if spec["format"] else array_source(ARRAY_NAME, index)
    return filter_and_save(index, file, f"{spec['name']} image {index} ({file})", image)


def describe_item(item: tuple) -> str:
    """An image's path (the item: ``(index, file, path)``), for error messages."""
    return str(item[2])


def describe_generated(index: int) -> str:
    """A generated image (the item: its index), for error messages (the error itself names the dataset)."""
    return f"image {index}"


def write_shard(table, folders, dataset: str, images, settings: FilterSettings, processes: int, progress=None) -> int:
    """Filter a shard's image files ``[(index, file, path)]``; write the table and one folder per σ.

    All outputs appear together or not at all.

    Parameters
    ----------
    table : str or path-like
        The shard's TSV table (:data:`pixelflow.stats.tables.COLUMNS`).
    folders : sequence of str or path-like
        One folder per σ, in ``sigmas`` order, for the 8-bit filtered images;
        each is replaced as a whole (and left empty when they are not saved).
    dataset : str
        The dataset's name, which names the saved files.
    images : iterable of tuple
        ``(index, file, path)`` of each image: ``file`` as the table records it.
    settings : FilterSettings
        The filters and the save format.
    processes : int
        Worker processes.
    progress : callable, optional
        Receives the number of images newly filtered, as they are done; the
        counts add up to the number of images.

    Returns
    -------
    int
        The number of rows: images times sigmas.

    Raises
    ------
    ValueError
        When images are saved and the folders do not match the sigmas in number.
    WorkerError
        Naming the image's path, when it cannot be read or filtered.
    """
    return _write_shard(
        table, folders, dataset, settings, processes, process_image, images, describe_item, progress=progress
    )


def write_generated_shard(
    table,
    folders,
    spec: GeneratedSpec,
    start: int,
    stop: int,
    settings: FilterSettings,
    processes: int,
    progress=None,
) -> int:
    """Like :func:`write_shard` for images ``start..stop-1`` of a generated dataset, drawn in memory.

    ``spec`` holds the dataset's name, generator, seed, shape, dtype and format.

    Parameters
    ----------
    table, folders, settings, processes, progress
        As for :func:`write_shard`; the progress counts add up to ``stop - start``.
    spec : GeneratedSpec
        The dataset; its name names the saved files, ``file`` in the table is
        the image's file name in the dataset.
    start, stop : int
        The images, ``start..stop-1``.

    Returns
    -------
    int
        The number of rows: images times sigmas.

    Raises
    ------
    ValueError
        As :func:`write_shard`.
    WorkerError
        Naming the image's index, when it cannot be drawn or filtered.
    """
    settings = dict(settings, spec=spec)
    # Images of one shape cost the same: one contiguous chunk per worker process.
    chunk = math.ceil((stop - start) / max(1, processes))
    items = range(start, stop)
    return _write_shard(
        table,
        folders,
        spec["name"],
        settings,
        processes,
        process_generated,
        items,
        describe_generated,
        chunk,
        progress=progress,
    )


def _write_shard(
    table, folders, dataset, settings, processes, worker, items, describe, chunk_size=None, progress=None
) -> int:
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_dir(folder)) for folder in folders]
        settings = dict(settings, dataset=dataset, folders=[str(path) for path in temporaries])
        if settings["save_filtered"] != "none" and len(temporaries) != len(settings["sigmas"]):
            raise ValueError(f"{len(temporaries)} output folders for {len(settings['sigmas'])} sigmas")
        results = parallel_map(
            worker,
            items,
            processes,
            chunk_size=chunk_size,
            initializer=init_worker,
            initargs=(settings,),
            describe=describe,
            progress=progress,
        )
        rows = [row for image in results for row in image]
        write_table(table, COLUMNS, rows)
    return len(rows)
