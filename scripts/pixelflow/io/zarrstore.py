"""Zarr storage of a dataset: one Zarr v3 array of all its images, written shard by shard.

A dataset is one array ``images.zarr`` of shape (N, h, w) or (N, h, w, c) and
the images' pixel type. Each image is one chunk, (1, h, w[, c]), and Zarr's
sharding codec groups ``shard_images`` consecutive images in one file: shard
k, the file ``c/k/0/0[/0]``, holds images ``k * shard_images`` to
``(k + 1) * shard_images - 1`` (the last shard may hold fewer; N need not be a
multiple). A workflow shard job writes exactly one shard file, in parallel
with the other jobs. As a job that rewrites one shard does not know the
others' count, the shard jobs only check the stored metadata but for the
count (:func:`check_metadata`), and one step after them all writes the final
``zarr.json`` (:func:`finish`); a single writer may use :func:`ensure_metadata`.

Every file is deterministic: the metadata is canonical JSON of what Zarr
itself would write, and a shard file holds the images' chunks encoded by
Zarr's codecs, laid out in index order followed by the shard index, as Zarr's
sharding codec lays out a whole shard it writes at once. So a shard's bytes
depend only on its images, the shard size and the compression: not on the
order the jobs run in, how many run at once, nor on the dataset's count
(except through the last shard's length). A shard is encoded in batches of
about :data:`BATCH_BYTES` of pixels (a shard writer holds one batch, not the
shard), its chunks by numcodecs with the codec settings the metadata pins,
and written to a hidden temporary file beside the shard file, renamed into
place when complete (:mod:`pixelflow.atomic`).

Only Zarr's public API is used: arrays are created and opened with
``zarr.create_array`` and ``zarr.open_array``, codecs come from
``zarr.codecs``, the shard index is encoded in a ``zarr.storage.MemoryStore``
scratch array; the shard layout is the one the Zarr v3 sharding
specification defines (chunks, then an index of (offset, length) pairs
encoded by the array's index codecs).
Zarr is imported where it is used: :func:`shard_file`, :func:`read_metadata`,
:func:`store_form`, :func:`changed_shards`, :func:`check_metadata` and
:func:`finish` work without it, so planning can call the first ones while the
Snakefile is parsed; so do :func:`open_reader` and :func:`read_image`, the
stages' reader of single images.
"""

import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from pixelflow.atomic import atomic_file, write_bytes
from pixelflow.errors import ImageError

METADATA_NAME = "zarr.json"
# Compression names (the config key ``compression``) and their pinned codec settings: see _compressors.
COMPRESSIONS = ("none", "zstd", "blosc")
ZSTD_LEVEL = 3
BLOSC_CNAME = "zstd"
BLOSC_CLEVEL = 5
# Pixels encoded per batch while a shard is written: what a shard writer holds beyond one image.
BATCH_BYTES = 16 << 20
# Chunk keys ``c/0/0/0``: where shard_file looks for a shard.
DEFAULT_KEYS = {"name": "default", "configuration": {"separator": "/"}}
# The offset and length of a chunk absent from a shard, in the shard index (Zarr v3 sharding specification).
ABSENT = np.iinfo(np.uint64).max


# Metadata ---------------------------------------------------------------------


def _compressors(compression: str, dtype: np.dtype) -> list:
    """The bytes-to-bytes codecs of ``compression`` for ``dtype``, every setting pinned."""
    from zarr.codecs import BloscCodec, ZstdCodec

    if compression == "zstd":
        return [ZstdCodec(level=ZSTD_LEVEL, checksum=False)]
    if compression == "blosc":
        shuffle = "bitshuffle" if dtype.itemsize == 1 else "shuffle"  # Zarr's own choice by item size, pinned
        return [BloscCodec(cname=BLOSC_CNAME, clevel=BLOSC_CLEVEL, shuffle=shuffle, typesize=dtype.itemsize)]
    return []


def _canonical_json(value, name: str):
    """``value`` as JSON gives it back (tuples become lists, keys sorted); a ValueError naming ``name`` if not JSON."""
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: not JSON data ({error})") from None


def array_metadata(*, count: int, image_shape, dtype, shard_images: int, compression: str, attributes: dict) -> dict:
    """The ``zarr.json`` document of a dataset's array, as Zarr writes it for these settings.

    Parameters
    ----------
    count : int
        Number of images N, at least 1.
    image_shape : sequence of int
        ``(h, w)`` grey or ``(h, w, c)``.
    dtype : str or numpy dtype
        The pixel type, an integer or floating-point type.
    shard_images : int
        Images per shard file (the workflow's ``shard_size``), at least 1.
    compression : str
        One of :data:`COMPRESSIONS`: ``none`` stores each image's raw
        little-endian bytes, ``zstd`` Zstandard level 3 without checksum,
        ``blosc`` Blosc with Zstandard at level 5, bit shuffle for 1-byte
        pixels and byte shuffle for wider ones, typesize the pixel size and
        automatic block size.
    attributes : dict
        JSON data stored with the array (the dataset's spec, a fingerprint, a
        format version); keys are sorted. Keep the count out of it: it is the
        array's first dimension, and :func:`changed_shards` takes any change
        of the attributes for a change of every image.

    Returns
    -------
    dict
        The metadata document, for :func:`write_shard`, :func:`check_metadata`
        and :func:`finish`.

    Raises
    ------
    ValueError
        Naming the argument, for a value out of range, an unknown compression
        (with the allowed ones), a pixel type that is not numeric, or
        attributes that are not JSON.
    """
    import zarr
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec
    from zarr.storage import MemoryStore

    if compression not in COMPRESSIONS:
        raise ValueError(f"compression: {compression!r} is not one of {', '.join(COMPRESSIONS)}")
    image_shape = _checked_image_shape(image_shape)
    dtype = _checked_dtype(dtype)
    for name, value in (("count", count), ("shard_images", shard_images)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}: {value!r} is not a whole number of at least 1")
    if not isinstance(attributes, dict):
        raise ValueError(f"attributes: a dict is needed, not {type(attributes).__name__}")
    attributes = _canonical_json(attributes, "attributes")
    names = ("image", "y", "x", "channel")[: 1 + len(image_shape)]
    store: dict = {}
    zarr.create_array(
        MemoryStore(store),
        shape=(int(count), *image_shape),
        dtype=dtype,
        chunks=(int(shard_images), *image_shape),
        serializer=ShardingCodec(
            chunk_shape=(1, *image_shape),
            codecs=[BytesCodec(endian="little"), *_compressors(compression, dtype)],
            index_codecs=[BytesCodec(endian="little"), Crc32cCodec()],
            index_location="end",
        ),
        compressors=None,
        filters=None,
        fill_value=0,
        attributes=attributes,
        dimension_names=names,
    )
    return json.loads(store[METADATA_NAME].to_bytes())


def _checked_image_shape(image_shape) -> tuple[int, ...]:
    shape = tuple(image_shape)
    if len(shape) not in (2, 3) or not all(
        isinstance(size, int | np.integer) and not isinstance(size, bool) and size >= 1 for size in shape
    ):
        raise ValueError(
            f"image_shape: {list(shape)} is not (height, width) or (height, width, channels) of sizes >= 1"
        )
    return tuple(int(size) for size in shape)


def _checked_dtype(dtype) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype: {dtype!r} is not a pixel type") from None
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise ValueError(f"dtype: {dtype} is not an integer or floating-point pixel type of at most 64 bits")
    return dtype.newbyteorder("=")


def _layout(metadata: dict) -> tuple[int, tuple[int, ...], np.dtype, int]:
    """Count, image shape, dtype and images per shard of a metadata document made by :func:`array_metadata`."""
    try:
        shape = tuple(metadata["shape"])
        shard_images = metadata["chunk_grid"]["configuration"]["chunk_shape"][0]
        dtype = np.dtype(metadata["data_type"])
        (sharding,) = metadata["codecs"]
        if (
            sharding["name"] != "sharding_indexed"
            or sharding["configuration"]["chunk_shape"] != [1, *shape[1:]]
            or metadata["chunk_key_encoding"] != DEFAULT_KEYS
        ):
            raise ValueError
    except (KeyError, TypeError, ValueError, IndexError):
        raise ValueError("metadata: not a dataset array's metadata (made by array_metadata)") from None
    return shape[0], shape[1:], dtype, shard_images


def _metadata_bytes(metadata: dict) -> bytes:
    """The bytes of ``zarr.json``: indented JSON in the document's key order (Zarr's), newline at the end."""
    return (json.dumps(metadata, indent=2, allow_nan=False) + "\n").encode("utf-8")


def read_metadata(store) -> dict | None:
    """The metadata document in ``store``, or None where there is none.

    Raises
    ------
    ImageError
        Naming the file, when ``zarr.json`` cannot be read as JSON.
    """
    path = Path(store) / METADATA_NAME
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ImageError(f"{path}: cannot read the array's metadata ({error})") from error


_MISSING = object()


def _value_text(value) -> str:
    """A value in a difference: compact JSON, or ``absent``."""
    return "absent" if value is _MISSING else json.dumps(value, sort_keys=True)


def _attribute_differences(stored, requested, prefix: str = "") -> list[str]:
    """``key stored vs requested`` for each differing attribute; nested dicts give dotted keys."""
    if isinstance(stored, dict) and isinstance(requested, dict):
        words = []
        for key in sorted(set(stored) | set(requested)):
            words += _attribute_differences(stored.get(key, _MISSING), requested.get(key, _MISSING), f"{prefix}{key}.")
        return words
    if stored == requested:
        return []
    return [f"{prefix.rstrip('.')} {_value_text(stored)} vs {_value_text(requested)}"]


def metadata_differences(stored: dict, requested: dict, *, ignore_count: bool = False) -> list[str]:
    """Words naming each difference between two metadata documents, stored value first.

    Parameters
    ----------
    stored, requested : dict
        Metadata documents (:func:`array_metadata`).
    ignore_count : bool
        Leave out a difference in the first dimension (the number of images).

    Returns
    -------
    list of str
        For example ``shape (1000, 64, 64) vs (2000, 64, 64)`` or
        ``attributes differ: seed 1 vs 2``; empty when they are the same.
    """
    words = []
    for key in sorted(set(stored) | set(requested), key=lambda key: (key != "shape", key)):
        old, new = stored.get(key, _MISSING), requested.get(key, _MISSING)
        if key == "shape" and ignore_count and isinstance(old, list) and isinstance(new, list):
            old, new = old[1:], new[1:]
        if old == new:
            continue
        if key == "shape":
            words.append(f"shape {tuple(stored['shape'])} vs {tuple(requested['shape'])}")
        elif key == "data_type":
            words.append(f"dtype {old if isinstance(old, str) else _value_text(old)} vs {new}")
        elif key == "attributes" and isinstance(old, dict) and isinstance(new, dict):
            words.append("attributes differ: " + ", ".join(_attribute_differences(old, new)))
        elif key == "chunk_grid":
            words.append(f"images per shard {_shard_images_text(old)} vs {_shard_images_text(new)}")
        elif key == "codecs":
            words.append(f"compression {_compression_text(old)} vs {_compression_text(new)}")
        else:
            words.append(f"{key} {_value_text(old)} vs {_value_text(new)}")
    return words


def _shard_images_text(chunk_grid) -> str:
    try:
        return str(chunk_grid["configuration"]["chunk_shape"][0])
    except (KeyError, TypeError, IndexError):
        return _value_text(chunk_grid)


def _compression_text(codecs) -> str:
    """The codecs after the sharding codec's ``bytes``: ``zstd {"checksum": false, "level": 3}``, or ``none``."""
    try:
        (sharding,) = codecs
        inner = sharding["configuration"]["codecs"]
        if inner[0]["name"] != "bytes":
            raise ValueError
    except (KeyError, TypeError, ValueError, IndexError):
        return _value_text(codecs)
    return ", ".join(f"{codec['name']} {_value_text(codec.get('configuration', {}))}" for codec in inner[1:]) or "none"


def _mismatch(path: Path, words: list[str], store) -> ImageError:
    return ImageError(
        f"{path}: the store holds another array (stored vs requested): {'; '.join(words)}. "
        f"Remove {store} to write it anew"
    )


def ensure_metadata(store, metadata: dict) -> None:
    """Write the array's ``zarr.json`` in ``store`` (atomically), or check that the one there is the same.

    For a single writer; shard jobs running side by side check instead
    (:func:`check_metadata`) and one step writes the final metadata after
    them (:func:`finish`).

    Parameters
    ----------
    store : str or path-like
        The array's folder (``images.zarr``); created if needed.
    metadata : dict
        From :func:`array_metadata`.

    Raises
    ------
    ImageError
        Naming ``zarr.json`` and each difference (``shape (1000, 64, 64) vs
        (2000, 64, 64)``, ``attributes differ: seed 1 vs 2``), when the store
        holds other metadata; nothing is changed then.
    """
    if check_metadata(store, metadata) is None:
        write_bytes(Path(store) / METADATA_NAME, _metadata_bytes(metadata))


def check_metadata(store, metadata: dict, *, ignore_count: bool = False) -> dict | None:
    """Check that the array in ``store``, if there is one, is the one ``metadata`` describes; nothing is written.

    For a shard job that must not mix its shard into another array, where
    another step writes ``zarr.json`` (:func:`finish`).

    Parameters
    ----------
    store : str or path-like
        The array's folder; a store without ``zarr.json`` passes.
    metadata : dict
        From :func:`array_metadata`.
    ignore_count : bool
        Accept stored metadata that differs in the number of images alone.

    Returns
    -------
    dict or None
        The stored metadata, None where there is none.

    Raises
    ------
    ImageError
        Naming ``zarr.json`` and each difference, as :func:`ensure_metadata`.
    """
    _layout(metadata)
    stored = read_metadata(store)
    if stored is not None:
        words = metadata_differences(stored, metadata, ignore_count=ignore_count)
        if words:
            raise _mismatch(Path(store) / METADATA_NAME, words, store)
    return stored


def store_form(store) -> tuple[int, tuple[int, ...], str]:
    """The number of images, the image shape and the pixel type of the array in ``store``.

    Read from ``zarr.json`` alone.

    Returns
    -------
    count : int
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)``.
    dtype : str
        For example ``uint8``.

    Raises
    ------
    FileNotFoundError
        Naming the file, when the store has no ``zarr.json``.
    ImageError
        As :func:`read_metadata`.
    """
    metadata = read_metadata(store)
    if metadata is None:
        raise FileNotFoundError(f"{Path(store) / METADATA_NAME}: the array's metadata is missing")
    count, image_shape, dtype, _ = _layout(metadata)
    return count, image_shape, str(dtype)


# Shards -----------------------------------------------------------------------


def shard_count(metadata: dict) -> int:
    """The number of shard files of the array ``metadata`` describes."""
    count, _, _, shard_images = _layout(metadata)
    return math.ceil(count / shard_images)


def shard_file(store, *, shard: int, image_shape) -> Path:
    """The file of shard ``shard`` in ``store``: ``c/{shard}/0/0``, with one more ``/0`` for colour images.

    Parameters
    ----------
    store : str or path-like
        The array's folder.
    shard : int
        The shard number, from 0.
    image_shape : sequence of int
        ``(h, w)`` or ``(h, w, c)``; only its length matters.
    """
    return Path(store, "c", str(int(shard)), *["0"] * len(tuple(image_shape)))


def changed_shards(old: dict | None, new: dict) -> list[int]:
    """The shards of ``new`` whose file must be (re)written where a store holds ``old``.

    With the same metadata but the count, only shards whose range of images
    differs change: the old last shard if it was partial or its length
    changes, and the new ones (a shard's bytes depend only on its images).
    Any other difference, attributes included, changes every shard.

    Parameters
    ----------
    old : dict or None
        The stored metadata (:func:`read_metadata`), None for an empty store.
    new : dict
        The metadata wanted.

    Returns
    -------
    list of int
        Shard numbers in increasing order. Files of shards from
        :func:`shard_count` of ``new`` on, if any, are no longer part of the array.
    """
    count, _, _, shard_images = _layout(new)
    shards = range(math.ceil(count / shard_images))
    if old is None or metadata_differences(old, new, ignore_count=True):
        return list(shards)
    old_count = _layout(old)[0]

    def end(shard: int, total: int) -> int:
        return min((shard + 1) * shard_images, total)

    return [
        shard for shard in shards if shard * shard_images >= old_count or end(shard, old_count) != end(shard, count)
    ]


def finish(store, metadata: dict) -> list[int]:
    """Write the array's final ``zarr.json`` once every shard file is written; remove shard files past its end.

    Workflow shard jobs run side by side, each rewriting only its own shard
    file, so none of them may remove or re-count the others'. They check the
    stored metadata but for the count (:func:`check_metadata`); once they are
    all done, one step calls this. Shard files (and leftovers of interrupted
    writes) from :func:`shard_count` of ``metadata`` on are removed first,
    then ``zarr.json`` is written, always anew (so its time is that of this
    step).

    Parameters
    ----------
    store : str or path-like
        The array's folder.
    metadata : dict
        From :func:`array_metadata`, with the final count.

    Returns
    -------
    list of int
        The shard numbers whose files were removed, in increasing order.

    Raises
    ------
    ImageError
        As :func:`check_metadata` with ``ignore_count``, when the store holds
        another array; naming the file, when a shard file of the array is
        missing. Nothing is changed then.
    """
    check_metadata(store, metadata, ignore_count=True)
    store = Path(store)
    image_shape = _layout(metadata)[1]
    shards = shard_count(metadata)
    for shard in range(shards):
        path = shard_file(store, shard=shard, image_shape=image_shape)
        if not path.is_file():
            raise ImageError(f"{path}: shard {shard} of the array is missing; write every shard before finishing")
    removed = []
    chunks = store / "c"
    for entry in sorted(chunks.iterdir()) if chunks.is_dir() else ():
        if re.fullmatch(r"[0-9]+", entry.name) and int(entry.name) >= shards:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(int(entry.name))
    write_bytes(store / METADATA_NAME, _metadata_bytes(metadata))
    return sorted(removed)


def _remove_shard_file(path: Path, store: Path) -> None:
    """Delete a shard file and the folders below ``store/c`` left empty by it."""
    path.unlink(missing_ok=True)
    _remove_empty_folders(path.parent, store / "c")


def _remove_empty_folders(folder: Path, top: Path) -> None:
    """Remove ``folder`` and its parents below ``top`` while they are empty."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            return
        folder = folder.parent


def _scratch_array(document: dict, store: dict):
    """A writable array in the memory store ``store`` with the metadata ``document``; empty chunks are written too."""
    import zarr
    from zarr.buffer.cpu import Buffer
    from zarr.storage import MemoryStore

    store[METADATA_NAME] = Buffer.from_bytes(_metadata_bytes(document))
    return zarr.open_array(MemoryStore(store), mode="r+").with_config({"write_empty_chunks": True})


def _scratch_document(metadata: dict, *, shape, chunk_shape, dtype: str, codecs: list) -> dict:
    """Metadata of an unsharded array with the given chunks and codecs, keyed as ``metadata``'s, without attributes."""
    return {
        "shape": list(shape),
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk_shape)}},
        "chunk_key_encoding": metadata["chunk_key_encoding"],
        "fill_value": 0,
        "codecs": codecs,
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def _checked_images(images, shard: int, start: int, length: int, image_shape: tuple, dtype: np.dtype):
    """Yield the shard's images from an array or an iterable, checking their number and form."""
    position = -1
    for position, image in enumerate(images):
        if position >= length:
            raise ImageError(f"shard {shard}: more than its {length} images ({start}..{start + length - 1}) given")
        image = np.asarray(image)
        if image.shape != image_shape or image.dtype != dtype:
            raise ImageError(
                f"image {start + position}: {image.shape} {image.dtype} differs from the array's images, "
                f"{image_shape} {dtype}"
            )
        yield image
    if position + 1 != length:
        raise ImageError(
            f"shard {shard}: {position + 1} images given, it holds {length} ({start}..{start + length - 1})"
        )


def _batches(images, buffer: np.ndarray):
    """Copy ``images`` into ``buffer``; yield (position in the shard, number filled) when it is full, and at the end."""
    first = filled = 0
    for image in images:
        buffer[filled] = image
        filled += 1
        if filled == len(buffer):
            yield first, filled
            first, filled = first + filled, 0
    if filled:
        yield first, filled


def write_shard(store, *, metadata: dict, shard: int, images: Iterable[np.ndarray] | np.ndarray) -> list[str]:
    """Write shard ``shard`` of the array in ``store`` from its images; return their pixel digests.

    The shard holds images ``shard * shard_images`` up to the count, at most
    ``shard_images`` of them. They are encoded a batch at a time and
    written to a hidden temporary file beside the shard file, renamed into
    place once complete; the shard's folders are created. If ``images``
    raises, or has another number of images or an image of another form, the
    temporary file and the folders made for it are removed and an existing
    shard file is left as it was. Only the shard file is written, not
    ``zarr.json`` (:func:`finish`).

    The file is the one Zarr's sharding codec writes for the whole shard at
    once: each image's chunk, encoded by the inner codecs, in index order,
    then the shard index encoded by the index codecs, positions past the
    count marked absent. The chunks are encoded by the codecs' own library,
    numcodecs, one call per image (:func:`_chunk_encoder`): through Zarr each
    chunk is an asynchronous task costing about 90 µs, most of a shard job.

    Parameters
    ----------
    store : str or path-like
        The array's folder.
    metadata : dict
        From :func:`array_metadata`.
    shard : int
        The shard number, from 0 to :func:`shard_count` - 1.
    images : ndarray or iterable of ndarray
        The shard's images in index order: an (m, h, w[, c]) array or any
        iterable of (h, w[, c]) arrays (a generator making them one by one).
        Each must have the array's image shape and dtype exactly.

    Returns
    -------
    list of str
        :func:`pixel_digest` of each image, in index order.

    Raises
    ------
    ValueError
        For a shard number out of range.
    ImageError
        Naming the image or the shard, for an image of another shape or dtype
        or another number of images.
    OSError
        Naming the shard file, when the file system refuses a write (for
        example ``[Errno 28] No space left on device``: the disk is full);
        nothing of the shard is kept then, as for the errors above.
    """
    count, image_shape, dtype, shard_images = _layout(metadata)
    shards = math.ceil(count / shard_images)
    if isinstance(shard, bool) or not isinstance(shard, int | np.integer) or not 0 <= shard < shards:
        raise ValueError(f"shard: {shard!r} is not a shard of the array (0..{shards - 1})")
    start = int(shard) * shard_images
    length = min(shard_images, count - start)
    configuration = metadata["codecs"][0]["configuration"]
    batch = max(1, min(length, BATCH_BYTES // (dtype.itemsize * math.prod(image_shape))))
    encode = _chunk_encoder(configuration["codecs"], dtype)
    index = np.full((shard_images, *[1] * len(image_shape), 2), ABSENT, dtype=np.uint64)
    buffer = np.empty((batch, *image_shape), dtype=dtype.newbyteorder("<"))  # a chunk's bytes when uncompressed
    chunk_bytes = buffer[0].nbytes
    digests = []
    target = shard_file(store, shard=shard, image_shape=image_shape)
    try:
        # Unbuffered: a write the file system refuses fails once, where it happens (see _write_all).
        with atomic_file(target) as temporary, open(temporary, "wb", buffering=0) as handle:
            offset = 0
            checked = _checked_images(images, shard, start, length, image_shape, dtype)
            for first, filled in _batches(checked, buffer):
                digests += [pixel_digest(image) for image in buffer[:filled]]
                if encode is None:  # the batch's images are their chunks, back to back
                    sizes = np.full(filled, chunk_bytes, dtype=np.uint64)
                    data = memoryview(buffer[:filled]).cast("B")
                else:
                    encoded = [encode(image) for image in buffer[:filled]]
                    sizes = np.array([len(chunk) for chunk in encoded], dtype=np.uint64)
                    data = b"".join(encoded)
                ends = offset + np.cumsum(sizes, dtype=np.uint64)
                index[first : first + filled, ..., 0] = (ends - sizes).reshape(-1, *[1] * len(image_shape))
                index[first : first + filled, ..., 1] = sizes.reshape(-1, *[1] * len(image_shape))
                offset = int(ends[-1])
                _write_all(handle, data, target)  # one write per batch
            _write_all(handle, _encoded_index(metadata, index, configuration["index_codecs"]), target)
    except BaseException:
        _remove_empty_folders(target.parent, Path(store) / "c")  # c/ itself stays: other shard jobs write in it
        raise
    return digests


def _chunk_encoder(codecs: list, dtype: np.dtype) -> Callable[[np.ndarray], bytes] | None:
    """A function encoding one image as the inner ``codecs`` of :func:`array_metadata` encode its chunk.

    The ``bytes`` codec (little-endian values, C order), then the pinned
    ``zstd`` or ``blosc`` settings given to numcodecs, the library Zarr's own
    codecs call; the tests compare the files with Zarr's. None when there is
    no codec after ``bytes`` (``compression: none``): a chunk is then the
    image's little-endian values as they are.

    Raises
    ------
    ValueError
        For a codec :func:`array_metadata` does not write.
    """
    import inspect

    import numcodecs

    if codecs[0]["name"] != "bytes" or codecs[0].get("configuration", {}).get("endian", "little") != "little":
        raise ValueError(f"codecs: {codecs[0]} is not the little-endian bytes codec")  # no endian for 1-byte values
    steps = []
    for codec in codecs[1:]:
        config = codec["configuration"]
        if codec["name"] == "zstd":
            steps.append(numcodecs.Zstd(level=config["level"], checksum=config["checksum"]).encode)
        elif codec["name"] == "blosc":
            shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[config["shuffle"]]
            settings = {"cname": config["cname"], "clevel": config["clevel"], "shuffle": shuffle}
            if "typesize" in inspect.signature(numcodecs.Blosc).parameters:  # as Zarr passes it
                settings["typesize"] = config["typesize"]
            steps.append(numcodecs.Blosc(**settings, blocksize=config["blocksize"]).encode)
        else:
            raise ValueError(f"codecs: {codec['name']} is not a codec of array_metadata")
    if not steps:
        return None
    little = dtype.newbyteorder("<")

    def encode(image: np.ndarray) -> bytes:
        data = np.ascontiguousarray(image, dtype=little).view(np.uint8).reshape(-1)
        for step in steps:
            data = step(data)
        return bytes(data)

    return encode


def _write_all(handle, data: bytes, target: Path) -> None:
    """Write all of ``data`` to the unbuffered file ``handle``, which will become ``target``.

    A write the file system refuses (disk full, quota, file size limit) raises
    its OSError once, with ``target`` as its file name: a buffered file would
    raise it a second time when closed, pointing at the line that opened it.
    A short write (the file system filling up mid-way) is continued, so that
    the next write reports the cause.
    """
    view = memoryview(data)
    try:
        while view:
            view = view[handle.write(view) :]
    except OSError as error:
        error.filename = os.fspath(target)
        raise


def _encoded_index(metadata: dict, index: np.ndarray, codecs: list) -> bytes:
    """A shard index encoded by the index codecs: the single chunk of a scratch array holding it."""
    store: dict = {}
    array = _scratch_array(
        _scratch_document(metadata, shape=index.shape, chunk_shape=index.shape, dtype="uint64", codecs=codecs),
        store,
    )
    array[...] = index
    return store["c" + "/0" * index.ndim].to_bytes()


# Threads ----------------------------------------------------------------------


def limit_threads(threads: int) -> None:
    """Let Zarr encode and decode with at most ``threads`` threads in this process.

    Zarr runs its codecs (zstd, blosc) in a pool of threads, by default
    about as many as the machine has cores, whatever the job was given. The
    pool is made when Zarr is first used: call this before any other function
    of this module that uses Zarr (a later call leaves the pool as it is).

    Raises
    ------
    ValueError
        For fewer than 1 thread.
    """
    import zarr

    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads: {threads!r} is not a whole number of at least 1")
    zarr.config.set({"threading.max_workers": int(threads)})


# Reading ----------------------------------------------------------------------


def open_images(store):
    """Open the array in ``store`` read-only, as ``zarr.open_array`` does: for reading many images at once.

    :func:`open_reader` reads single images faster.

    Raises
    ------
    FileNotFoundError
        Naming the file, when the store has no ``zarr.json``.
    """
    import zarr

    path = Path(store) / METADATA_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the array's metadata is missing")
    return zarr.open_array(os.fspath(store), mode="r")


class ImageReader:
    """Single images of the array in a store, each with one read of its chunk; made by :func:`open_reader`.

    Through Zarr (``array[i]``) one image costs about 1.3 ms here, most of it
    handing the read to Zarr's event-loop thread and reading the shard's
    index; benchmarks/README.md ("Zarr storage") has the figures. The reader
    keeps each shard's index once it has read it (checked against its CRC32C
    and read again when the shard file is replaced, which every shard write
    does), then reads an image's chunk with one ``pread`` and decodes it with
    the array's codecs through numcodecs, the library Zarr's codecs call. The
    tests compare every image with Zarr's.
    """

    def __init__(self, store, metadata: dict):
        self.store = Path(store)
        self.count, self.image_shape, self.dtype, self.shard_images = _layout(metadata)
        configuration = metadata["codecs"][0]["configuration"]
        if configuration.get("index_location", "end") != "end" or [
            codec["name"] for codec in configuration["index_codecs"]
        ] != ["bytes", "crc32c"]:
            raise ValueError(f"{self.store / METADATA_NAME}: a shard index this reader does not know")
        self.decode = _chunk_decoder(configuration["codecs"], self.dtype)
        self.indexes: dict[int, tuple[tuple, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.count

    def shard_index(self, shard: int, handle: int, path: Path) -> np.ndarray:
        """The (offset, length) pairs of the open shard file ``handle``, from the cache while it is the same file."""
        status = os.fstat(handle)
        identity = (status.st_ino, status.st_size, status.st_mtime_ns)
        cached = self.indexes.get(shard)
        if cached is not None and cached[0] == identity:
            return cached[1]
        from numcodecs.checksum32 import CRC32C

        size = 16 * self.shard_images + 4
        data = os.pread(handle, size, status.st_size - size) if status.st_size >= size else b""
        try:
            pairs = np.frombuffer(CRC32C(location="end").decode(data), dtype="<u8").reshape(-1, 2)
        except (RuntimeError, ValueError) as error:
            raise ImageError(f"{path}: the shard index is damaged ({error}); write the shard again") from None
        self.indexes[shard] = (identity, pairs)
        return pairs

    def read(self, index: int) -> np.ndarray:
        """Image ``index``: (h, w) or (h, w, c) of the array's dtype, as Zarr's ``array[index]`` gives it."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < self.count:
            raise IndexError(f"image {index!r} is not in the array (0..{self.count - 1})")
        shard, position = divmod(int(index), self.shard_images)
        path = shard_file(self.store, shard=shard, image_shape=self.image_shape)
        handle = os.open(path, os.O_RDONLY)
        try:
            offset, length = (int(value) for value in self.shard_index(shard, handle, path)[position])
            if offset == ABSENT:
                return np.zeros(self.image_shape, self.dtype)  # the fill value, as Zarr gives it
            data = os.pread(handle, length, offset)
        finally:
            os.close(handle)
        try:
            if len(data) != length:
                raise ValueError("its chunk ends past the end of the file")
            return self.decode(data, self.image_shape)
        except (RuntimeError, ValueError) as error:
            raise ImageError(f"{path}: image {index} cannot be read ({error}); write the shard again") from None


def open_reader(store) -> ImageReader:
    """A reader of single images of the array in ``store`` (:func:`read_image`), faster than Zarr's per image.

    Raises
    ------
    FileNotFoundError
        Naming the file, when the store has no ``zarr.json``.
    """
    metadata = read_metadata(store)
    if metadata is None:
        raise FileNotFoundError(f"{Path(store) / METADATA_NAME}: the array's metadata is missing")
    return ImageReader(store, metadata)


def _chunk_decoder(codecs: list, dtype: np.dtype) -> Callable[[bytes, tuple], np.ndarray]:
    """A function decoding one chunk's bytes into an image, the inverse of :func:`_chunk_encoder`.

    Raises
    ------
    ValueError
        For a codec :func:`array_metadata` does not write.
    """
    import numcodecs

    if codecs[0]["name"] != "bytes" or codecs[0].get("configuration", {}).get("endian", "little") != "little":
        raise ValueError(f"codecs: {codecs[0]} is not the little-endian bytes codec")
    names = [codec["name"] for codec in codecs[1:]]
    if names not in ([], ["zstd"], ["blosc"]):
        raise ValueError(f"codecs: {names} are not codecs of array_metadata")
    step = {"zstd": numcodecs.Zstd, "blosc": numcodecs.Blosc}[names[0]]() if names else None
    little = dtype.newbyteorder("<")

    def decode(data: bytes, image_shape: tuple) -> np.ndarray:
        image = np.empty(image_shape, little)
        if step is None:
            if len(data) != image.nbytes:
                raise ValueError(f"a chunk of {len(data)} bytes, not {image.nbytes}")
            image.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8)
        else:
            step.decode(data, out=image.reshape(-1).view(np.uint8))
        return image.astype(dtype, copy=False)

    return decode


def read_image(reader: ImageReader, index: int) -> np.ndarray:
    """Image ``index`` of the array :func:`open_reader` opened: (h, w) or (h, w, c).

    Raises
    ------
    IndexError
        For an index outside 0..N-1.
    ImageError
        Naming the shard file, when its index or the image's chunk is damaged.
    FileNotFoundError
        Naming the shard file, when it is missing.
    """
    return reader.read(index)


def pixel_digest(image: np.ndarray) -> str:
    """Hex SHA-256 of an image's pixels: its values' bytes in C order, little-endian.

    The manifest keeps it for every image; it depends on the values, shape
    order and dtype only, not on how the image is stored or compressed.
    """
    image = np.asarray(image)
    return hashlib.sha256(np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<"))).hexdigest()
