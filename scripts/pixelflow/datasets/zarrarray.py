"""The Zarr array of a dataset with ``storage: zarr``: its spec, metadata and final ``zarr.json``.

The dataset is the array ``images.zarr`` of :mod:`pixelflow.io.zarrstore`:
shape (N, h, w[, c]), one image per chunk, ``shard_size`` images per shard
file. Its attributes keep the spec (a generated dataset's generation spec, an
external one's glob and image form) and a format version, never the count.
Shard jobs write the shard files (:mod:`pixelflow.datasets.zarrshards`);
they cannot agree on the dataset's count (a job rewriting one shard after
``count`` changed runs alone), so none of them writes ``zarr.json``: the index
job does, once they are all done (:func:`finish_store`), and removes the
shard files past the end.
"""

from typing import NotRequired, TypedDict

from pixelflow.io import zarrstore

# Kept in the array's attributes as ``format_version``; raise it when the same
# spec would give other files, so that a store written before is refused, not mixed.
FORMAT_VERSION = 1
# The keys of the spec that make the images: the array's attributes keep those a spec has.
SPEC_KEYS = ("name", "generator", "seed", "path", "shape", "dtype")


class ZarrSpec(TypedDict):
    """Everything a Zarr dataset's files depend on besides its count (planning hands it to the jobs).

    A generated dataset's spec has ``generator`` and ``seed``, an external
    (packed) one's ``path``.

    Attributes
    ----------
    name : str
        The dataset's name, part of every generated image's random stream.
    generator : str
        A registered generator's name.
    seed : int
        The master seed, non-negative.
    path : str
        An external dataset's glob, as the config gives it.
    shape : list of int
        ``[height, width]`` grey or ``[height, width, channels]``.
    dtype : str
        ``uint8``, ``uint16`` or ``float32``.
    compression : str
        One of :data:`pixelflow.io.zarrstore.COMPRESSIONS`.
    shard_size : int
        Images per shard file (and per shard job).
    """

    name: str
    generator: NotRequired[str]
    seed: NotRequired[int]
    path: NotRequired[str]
    shape: list[int]
    dtype: str
    compression: str
    shard_size: int


def array_attributes(spec: ZarrSpec) -> dict:
    """The array's attributes: ``format_version`` and ``spec``, what makes the images (not the count)."""
    return {"format_version": FORMAT_VERSION, "spec": {key: spec[key] for key in SPEC_KEYS if key in spec}}


def array_metadata(spec: ZarrSpec, count: int) -> dict:
    """The ``zarr.json`` document of the dataset's array with ``count`` images (:func:`zarrstore.array_metadata`)."""
    return zarrstore.array_metadata(
        count=count,
        image_shape=spec["shape"],
        dtype=spec["dtype"],
        shard_images=spec["shard_size"],
        compression=spec["compression"],
        attributes=array_attributes(spec),
    )


def finish_store(store, spec: ZarrSpec, count: int) -> list[int]:
    """Give the array its ``zarr.json`` for ``count`` images once every shard is written; return removed shards.

    Shard files past the end (after ``count`` shrank) are removed
    (:func:`pixelflow.io.zarrstore.finish`).

    Raises
    ------
    ImageError
        When the store holds another array, naming each difference, or a
        shard file is missing.
    """
    return zarrstore.finish(store, array_metadata(spec, count))
