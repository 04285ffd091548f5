"""Dataset shards: a folder of images plus ``manifest.tsv``, written atomically.

A generated shard holds its images, named ``{dataset}_{index:06d}.{ext}``. An
external shard holds only the manifest, whose ``file`` column points at the
original images (relative to the shard folder), after each was checked.
"""

import hashlib
import os
from pathlib import Path

from pixelflow.atomic import atomic_dir
from pixelflow.datasets.generators import GeneratedSpec, generate_from
from pixelflow.datasets.seeding import ImageStreams
from pixelflow.errors import ImageError
from pixelflow.formats import image_file_name
from pixelflow.io.images import decode_image, image_encoder, read_file
from pixelflow.io.manifest import MANIFEST_NAME, manifest_row, write_manifest
from pixelflow.runner import parallel_map

# Generated shards -------------------------------------------------------------

_shard_job: dict = {}


def _start_generated_shard(folder, spec, start: int, stop: int) -> None:
    shape = tuple(spec["shape"])
    _shard_job.update(
        folder_fd=os.open(folder, os.O_RDONLY | os.O_DIRECTORY),
        spec=spec,
        streams=ImageStreams(spec["seed"], spec["name"], start, stop),
        encode=image_encoder(spec["format"], spec["dtype"], spec["compression"]),
        # height, width, channels and dtype: the same for every image of the shard
        form=(shape[0], shape[1], shape[2] if len(shape) == 3 else 1, spec["dtype"]),
    )


def _finish_generated_shard() -> None:
    folder_fd = _shard_job.pop("folder_fd", None)
    if folder_fd is not None:
        os.close(folder_fd)


def write_new_file(name: str, data: bytes, folder_fd: int) -> None:
    """Create file ``name`` in the folder open as ``folder_fd`` and write ``data`` in full.

    Raises
    ------
    FileExistsError
        If the file exists already.
    OSError
        Naming the file, when the file system refuses the write (a full disk).
    """
    descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=folder_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    except OSError as error:
        error.filename = error.filename or name
        raise
    finally:
        os.close(descriptor)


def _generate_and_write(index: int) -> tuple:
    spec = _shard_job["spec"]
    image = generate_from(spec["generator"], _shard_job["streams"](index), index, spec["shape"], spec["dtype"])
    data = _shard_job["encode"](image)
    file = image_file_name(spec["name"], index, spec["format"])
    write_new_file(file, data, _shard_job["folder_fd"])
    return (index, file, *_shard_job["form"], hashlib.sha256(data).hexdigest())


def describe_image_index(index: int) -> str:
    """Words naming a generated image (the item: its index) in error messages."""
    return f"image {index}"


def write_generated_shard(
    folder, spec: GeneratedSpec, start: int, stop: int, processes: int, progress=None
) -> list[tuple]:
    """Generate images ``start..stop-1`` of a dataset into ``folder`` with a manifest.

    ``spec`` holds name, generator, seed, shape, dtype, format and compression.
    The folder appears only once every image and the manifest are written.

    Parameters
    ----------
    folder : str or path-like
        The shard folder, replaced as a whole.
    spec : GeneratedSpec
        The dataset; ``compression`` is required here.
    start, stop : int
        The images written, ``start..stop-1``.
    processes : int
        Worker processes.
    progress : callable, optional
        Receives the number of images newly written, as they are written
        (:func:`pixelflow.runner.parallel_map`); the counts add up to ``stop - start``.

    Returns
    -------
    list of tuple
        The manifest rows (:func:`pixelflow.io.manifest.manifest_row`), in index order.

    Raises
    ------
    ValueError
        Before anything is written, for an unknown format or a dtype it cannot hold.
    WorkerError
        Naming the image, when one fails (an unknown generator fails this way too).
    """
    image_encoder(spec["format"], spec["dtype"], spec["compression"])  # a format that cannot hold dtype fails here
    with atomic_dir(folder) as temporary:
        try:
            rows = parallel_map(
                _generate_and_write,
                range(start, stop),
                processes,
                initializer=_start_generated_shard,
                initargs=(temporary, spec, start, stop),
                describe=describe_image_index,
                progress=progress,
            )
        finally:
            _finish_generated_shard()  # only set here when the work ran in this process
        write_manifest(Path(temporary) / MANIFEST_NAME, rows)
    return rows


# External shards --------------------------------------------------------------


def _check_external_image(item) -> tuple:
    index, path, relative, expected_shape, expected_dtype = item
    data = read_file(path)
    image = decode_image(data, str(path))
    if expected_shape is not None and tuple(image.shape) != tuple(expected_shape):
        raise ImageError(f"{path}: shape {list(image.shape)} differs from the configured shape {list(expected_shape)}")
    if expected_dtype is not None and str(image.dtype) != expected_dtype:
        raise ImageError(f"{path}: dtype {image.dtype} differs from the configured dtype {expected_dtype}")
    return manifest_row(index, relative, image, hashlib.sha256(data).hexdigest())


def describe_external_item(item) -> str:
    """Words naming an external image in error messages; the item is ``(index, path, relative path, shape, dtype)``."""
    return f"image {item[0]} ({item[1]})"


def write_external_shard(
    folder, files, start: int, processes: int, shape=None, dtype: str | None = None, progress=None
) -> list[tuple]:
    """Check external images ``files`` (indexes from ``start``) and write their manifest.

    Each file must decode (and match ``shape``/``dtype`` when given); the
    manifest records its path relative to ``folder``, its form and sha256.
    Nothing is written unless every file passes.

    Parameters
    ----------
    folder : str or path-like
        The shard folder, replaced as a whole; it holds only the manifest.
    files : sequence of str or path-like
        The images, in index order.
    start : int
        The index of the first file.
    processes : int
        Worker processes.
    shape : sequence of int, optional
        The shape every image must have.
    dtype : str, optional
        The pixel type every image must have.
    progress : callable, optional
        Receives the number of images newly checked, as they are checked; the
        counts add up to ``len(files)``.

    Returns
    -------
    list of tuple
        The manifest rows, in index order; ``file`` is the path relative to
        ``folder`` with symbolic links resolved.

    Raises
    ------
    WorkerError
        Naming the image (index and path) that cannot be read or decoded, or
        has another shape or dtype.
    """
    folder = Path(folder)
    anchor = folder.resolve()
    items = [
        (start + offset, str(path), os.path.relpath(Path(path).resolve(), anchor), shape, dtype)
        for offset, path in enumerate(files)
    ]
    rows = parallel_map(_check_external_image, items, processes, describe=describe_external_item, progress=progress)
    with atomic_dir(folder) as temporary:
        write_manifest(Path(temporary) / MANIFEST_NAME, rows)
    return rows
