"""Dataset shards: a folder of images plus ``manifest.tsv``, written atomically.

A generated shard holds its images, named ``{dataset}_{index:06d}.{ext}``. An
external shard holds only the manifest, whose ``file`` column points at the
original images (relative to the shard folder), after each was checked.
"""

import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from pixelflow.atomic import atomic_dir, atomic_file
from pixelflow.generators import generate_image
from pixelflow.imageio import FORMAT_SUFFIXES, ImageError, decode_image, encode_image, image_channels
from pixelflow.runner import parallel_map

MANIFEST_NAME = "manifest.tsv"
MANIFEST_COLUMNS = ("index", "file", "height", "width", "channels", "dtype", "sha256")


def image_file_name(dataset: str, index: int, fmt: str) -> str:
    """File name of image ``index`` of a generated dataset."""
    return f"{dataset}_{index:06d}{FORMAT_SUFFIXES[fmt]}"


def manifest_row(index: int, file: str, image: np.ndarray, digest: str) -> tuple:
    """One manifest row for a decoded ``image``."""
    height, width = image.shape[:2]
    return (index, file, height, width, image_channels(image), str(image.dtype), digest)


def write_manifest(path, rows) -> None:
    """Write manifest rows (sorted by index) as a TSV file, atomically."""
    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += ["\t".join(str(value) for value in row) for row in sorted(rows)]
    with atomic_file(path) as temporary:
        Path(temporary).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_manifest(shard_dir) -> list[dict]:
    """Rows of a shard's manifest; ``path`` is each image's location as a Path."""
    shard_dir = Path(shard_dir)
    manifest = shard_dir / MANIFEST_NAME
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{manifest}: shard manifest is missing") from None
    if rows and tuple(rows[0]) != MANIFEST_COLUMNS:
        raise ValueError(f"{manifest}: columns {tuple(rows[0])} differ from {MANIFEST_COLUMNS}")
    for row in rows:
        for key in ("index", "height", "width", "channels"):
            row[key] = int(row[key])
        row["path"] = shard_dir / row["file"]
    return rows


def read_manifests(shard_dirs) -> list[dict]:
    """All rows of several shards in index order; indexes must run 0..N-1 without gaps."""
    rows = sorted((row for shard in shard_dirs for row in read_manifest(shard)), key=lambda row: row["index"])
    for expected, row in enumerate(rows):
        if row["index"] != expected:
            raise ValueError(f"{row['path']}: index {row['index']} found where {expected} was expected")
    return rows


def image_shape(row: dict) -> tuple:
    """The array shape a manifest row describes."""
    if row["channels"] == 1:
        return (row["height"], row["width"])
    return (row["height"], row["width"], row["channels"])


# Generated shards -------------------------------------------------------------

_shard_job: dict = {}


def _start_generated_shard(folder, spec) -> None:
    _shard_job.update(folder=Path(folder), spec=spec)


def _generate_and_write(index: int) -> tuple:
    spec = _shard_job["spec"]
    image = generate_image(spec["generator"], spec["seed"], spec["name"], index, spec["shape"], spec["dtype"])
    data = encode_image(image, spec["format"], spec.get("compression", 0))
    file = image_file_name(spec["name"], index, spec["format"])
    descriptor = os.open(_shard_job["folder"] / file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)
    return manifest_row(index, file, image, hashlib.sha256(data).hexdigest())


def describe_image_index(index: int) -> str:
    """Words naming a generated image in error messages."""
    return f"image {index}"


def write_generated_shard(folder, spec: dict, start: int, stop: int, processes: int) -> list[tuple]:
    """Generate images ``start..stop-1`` of a dataset into ``folder`` with a manifest.

    ``spec`` holds name, generator, seed, shape, dtype, format and compression.
    The folder appears only once every image and the manifest are written.
    """
    with atomic_dir(folder) as temporary:
        rows = parallel_map(
            _generate_and_write,
            range(start, stop),
            processes,
            initializer=_start_generated_shard,
            initargs=(temporary, spec),
            describe=describe_image_index,
        )
        write_manifest(Path(temporary) / MANIFEST_NAME, rows)
    return rows


# External shards --------------------------------------------------------------


def _check_external_image(item) -> tuple:
    index, path, relative, expected_shape, expected_dtype = item
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read file ({error.strerror or error})") from error
    image = decode_image(data, str(path))
    if expected_shape is not None and tuple(image.shape) != tuple(expected_shape):
        raise ImageError(f"{path}: shape {list(image.shape)} differs from the configured shape {list(expected_shape)}")
    if expected_dtype is not None and str(image.dtype) != expected_dtype:
        raise ImageError(f"{path}: dtype {image.dtype} differs from the configured dtype {expected_dtype}")
    return manifest_row(index, relative, image, hashlib.sha256(data).hexdigest())


def describe_external_item(item) -> str:
    """Words naming an external image in error messages."""
    return f"image {item[0]} ({item[1]})"


def write_external_shard(
    folder, files, start: int, processes: int, shape=None, dtype: str | None = None
) -> list[tuple]:
    """Check external images ``files`` (indexes from ``start``) and write their manifest.

    Each file must decode (and match ``shape``/``dtype`` when given); the
    manifest records its path relative to ``folder``, its form and sha256.
    """
    folder = Path(folder)
    anchor = folder.resolve()
    items = [
        (start + offset, str(path), os.path.relpath(Path(path).resolve(), anchor), shape, dtype)
        for offset, path in enumerate(files)
    ]
    rows = parallel_map(_check_external_image, items, processes, describe=describe_external_item)
    with atomic_dir(folder) as temporary:
        write_manifest(Path(temporary) / MANIFEST_NAME, rows)
    return rows
