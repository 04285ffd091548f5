"""Shard jobs of a dataset with ``storage: zarr``: one shard file of the array and a manifest each.

A generated dataset's shard job draws its images exactly as a ``files`` shard
job does (the same generators and random streams, so the pixels are the
same); an external dataset's decodes its files as every stage reads them
(:func:`pixelflow.io.images.read_image`, as a viewer shows them) and checks
that each has the array's shape and dtype. Either writes its one shard file
of ``images.zarr`` and a manifest of its images, and checks that the store
holds no other array; ``zarr.json`` is the index job's
(:mod:`pixelflow.datasets.zarrarray`).

A shard's bytes depend on its images, the shard size and the compression,
never on the count: a shard job describes the array to Zarr as if it ended
with the job's last image (:func:`~pixelflow.datasets.zarrarray.array_metadata`
with ``count=stop``). So when ``count`` changes only the shards whose images
change are rewritten.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pixelflow.datasets.generators import generate_from
from pixelflow.datasets.seeding import ImageStreams
from pixelflow.datasets.zarrarray import ZarrSpec, array_metadata
from pixelflow.errors import ImageError
from pixelflow.io import zarrstore
from pixelflow.io.images import read_image
from pixelflow.io.manifest import manifest_row, write_manifest

DECODE_BATCH = 32  # files decoded ahead of the shard writer, at most


def _shard_of(spec: ZarrSpec, start: int, stop: int) -> int:
    """The shard number of images ``start..stop-1``; a ValueError unless they are one whole shard's."""
    shard, offset = divmod(start, spec["shard_size"])
    if offset or not start < stop <= start + spec["shard_size"]:
        raise ValueError(
            f"images {start}..{stop - 1} are not one shard of {spec['shard_size']} images (from a multiple of it)"
        )
    return shard


def write_zarr_shard(store, manifest, spec: ZarrSpec, start: int, stop: int, progress=None) -> list[tuple]:
    """Generate images ``start..stop-1`` into their shard file of ``store`` and write their manifest.

    The images are drawn as :func:`pixelflow.datasets.shards.write_generated_shard`
    draws them, so their pixels equal a ``files`` dataset's of the same spec.
    The shard file and the manifest are each written atomically; ``zarr.json``
    is not written (:func:`pixelflow.datasets.zarrarray.finish_store`).

    Parameters
    ----------
    store : str or path-like
        The array's folder, ``images.zarr``.
    manifest : str or path-like
        The shard's manifest file; its ``file`` column holds the store's path
        relative to the manifest's folder, its ``sha256`` each image's
        :func:`pixelflow.io.zarrstore.pixel_digest`.
    spec : ZarrSpec
        The dataset.
    start, stop : int
        The shard's images: ``start`` a multiple of ``shard_size``, at most
        ``shard_size`` of them.
    progress : callable, optional
        Called with 1 as each image is handed to the shard writer.

    Returns
    -------
    list of tuple
        The manifest rows, in index order.

    Raises
    ------
    ValueError
        For bounds that are not one shard.
    ImageError
        When the store holds another array (another spec, shard size,
        compression or format version), naming each difference; nothing is
        written then.
    """
    shard = _shard_of(spec, start, stop)
    metadata = array_metadata(spec, stop)  # the array as far as this shard: the file does not depend on the count
    zarrstore.check_metadata(store, metadata, ignore_count=True)
    streams = ImageStreams(spec["seed"], spec["name"], start, stop)

    def images():
        for index in range(start, stop):
            yield generate_from(spec["generator"], streams(index), index, spec["shape"], spec["dtype"])
            if progress is not None:
                progress(1)

    return _store_shard(store, manifest, spec, metadata, shard, start, images())


def _store_shard(store, manifest, spec: ZarrSpec, metadata: dict, shard: int, start: int, images) -> list[tuple]:
    """Write the images of shard ``shard`` (from index ``start``) into ``store``, then their manifest; its rows."""
    digests = zarrstore.write_shard(store, metadata=metadata, shard=shard, images=images)
    file = os.path.relpath(Path(store).resolve(), Path(manifest).parent.resolve())
    form = manifest_row(start, file, np.empty(spec["shape"], spec["dtype"]), "")  # every image has the array's form
    rows = [(start + offset, *form[1:-1], digest) for offset, digest in enumerate(digests)]
    write_manifest(manifest, rows)
    return rows


def _form_text(shape, dtype) -> str:
    return f"{'x'.join(str(size) for size in shape)} {dtype}"


def _decoded(files: list, threads: int):
    """Each file decoded by :func:`pixelflow.io.images.read_image`, in order, by up to ``threads`` threads."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for begin in range(0, len(files), DECODE_BATCH):
            yield from pool.map(read_image, files[begin : begin + DECODE_BATCH])


def pack_zarr_shard(
    store, manifest, spec: ZarrSpec, files, start: int, threads: int = 1, origin: str = "", progress=None
) -> list[tuple]:
    """Decode an external dataset's files ``start..`` into their shard file of ``store`` and write their manifest.

    Parameters
    ----------
    store : str or path-like
        The array's folder, ``images.zarr``.
    manifest : str or path-like
        The shard's manifest file (as :func:`write_zarr_shard` writes it).
    spec : ZarrSpec
        The dataset: its ``path``, the ``shape`` and ``dtype`` every image
        must have, ``compression`` and ``shard_size``.
    files : sequence of str or path-like
        The shard's files, in index order.
    start : int
        The index of the first file, a multiple of ``shard_size``.
    threads : int
        Threads decoding the files.
    origin : str
        Where the dataset's shape and dtype come from, for the message (e.g.
        its first file).
    progress : callable, optional
        Called with 1 as each image is handed to the shard writer.

    Returns
    -------
    list of tuple
        The manifest rows, in index order.

    Raises
    ------
    ImageError
        Naming the first file that cannot be decoded or has another shape or
        dtype than the array's, or the store holding another array; the
        shard file and the manifest are not written then.
    """
    files = [os.fspath(path) for path in files]
    stop = start + len(files)
    shard = _shard_of(spec, start, stop)
    metadata = array_metadata(spec, stop)
    zarrstore.check_metadata(store, metadata, ignore_count=True)
    shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])

    def images():
        for index, (path, image) in enumerate(zip(files, _decoded(files, threads), strict=True), start=start):
            if image.shape != shape or image.dtype != dtype:
                raise ImageError(
                    f"{path}: image {index} of datasets.{spec['name']} is {_form_text(image.shape, image.dtype)}, "
                    f"not {_form_text(shape, dtype)}{f' as {origin}' if origin else ''}; storage: zarr packs images "
                    "of one shape and dtype (use storage: files for mixed images)"
                )
            yield image
            if progress is not None:
                progress(1)

    return _store_shard(store, manifest, spec, metadata, shard, start, images())
