"""Shard jobs of a generated dataset with ``storage: zarr``: one shard file of the array and a manifest each.

Each shard job draws its images exactly as a ``files`` shard job does (the
same generators and random streams, so the pixels are the same), writes its
one shard file of ``images.zarr`` and a manifest of its images, and checks
that the store holds no other array; ``zarr.json`` is the index job's
(:mod:`pixelflow.datasets.zarrarray`).

A shard's bytes depend on its images, the shard size and the compression,
never on the count: a shard job describes the array to Zarr as if it ended
with the job's last image (:func:`~pixelflow.datasets.zarrarray.array_metadata`
with ``count=stop``). So when ``count`` changes only the shards whose images
change are rewritten.
"""

import os
from pathlib import Path

import numpy as np

from pixelflow.datasets.generators import generate_from
from pixelflow.datasets.seeding import ImageStreams
from pixelflow.datasets.zarrarray import ZarrSpec, array_metadata
from pixelflow.io import zarrstore
from pixelflow.io.manifest import manifest_row, write_manifest


def _shard_of(spec: ZarrSpec, start: int, stop: int) -> int:
    """The shard number of images ``start..stop-1``; a ValueError unless they are one whole shard's."""
    shard, offset = divmod(start, spec["shard_size"])
    if offset or not start < stop <= start + spec["shard_size"]:
        raise ValueError(
            f"images {start}..{stop - 1} are not one shard of {spec['shard_size']} images (from a multiple of it)"
        )
    return shard


def write_zarr_shard(
    store, manifest, spec: ZarrSpec, start: int, stop: int, threads: int = 1, progress=None
) -> list[tuple]:
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
    threads : int
        Threads Zarr may encode with (:func:`pixelflow.io.zarrstore.limit_threads`).
    progress : callable, optional
        Called with 1 as each image is handed to Zarr.

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
    zarrstore.limit_threads(threads)
    metadata = array_metadata(spec, stop)  # the array as far as this shard: the file does not depend on the count
    zarrstore.check_metadata(store, metadata, ignore_count=True)
    streams = ImageStreams(spec["seed"], spec["name"], start, stop)

    def images():
        for index in range(start, stop):
            yield generate_from(spec["generator"], streams(index), index, spec["shape"], spec["dtype"])
            if progress is not None:
                progress(1)

    digests = zarrstore.write_shard(store, metadata=metadata, shard=shard, images=images())
    file = os.path.relpath(Path(store).resolve(), Path(manifest).parent.resolve())
    form = np.empty(spec["shape"], spec["dtype"])  # manifest_row reads only the shape and dtype
    rows = [manifest_row(index, file, form, digest) for index, digest in zip(range(start, stop), digests, strict=True)]
    write_manifest(manifest, rows)
    return rows
