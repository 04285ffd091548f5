"""Shard manifests and the dataset index: one TSV row per image.

Columns: index, file, height, width, channels, dtype, sha256. ``file`` is
relative to the folder holding the manifest; for a dataset with ``storage: zarr``
it is the array's folder (``../images.zarr``), and the row's image is the one
at its index (:mod:`pixelflow.io.sources`).
"""

import os
import re
import shutil
from pathlib import Path

import numpy as np

from pixelflow.atomic import PARTIAL_MARK, atomic_file
from pixelflow.io.images import image_channels

MANIFEST_NAME = "manifest.tsv"
ARRAY_SUFFIX = ".zarr"
ARRAY_NAME = "images.zarr"  # a zarr dataset's array, in its folder
_ARRAY_ITEM = re.compile(r"(?P<store>.+\.zarr)\[(?P<index>\d+)\]")
MANIFEST_COLUMNS = ("index", "file", "height", "width", "channels", "dtype", "sha256")


def array_source(store, index: int) -> str:
    """The source naming image ``index`` of the Zarr array in ``store``: ``<store>[<index>]``."""
    return f"{os.fspath(store)}[{int(index)}]"


def split_source(source) -> tuple[str, int] | None:
    """``(store, index)`` of a source naming an image of a Zarr array (:func:`array_source`); None for a file."""
    match = _ARRAY_ITEM.fullmatch(os.fspath(source))
    return None if match is None else (match["store"], int(match["index"]))


def manifest_row(index: int, file: str, image: np.ndarray, digest: str) -> tuple:
    """One manifest row for a decoded ``image``.

    Parameters
    ----------
    index : int
        The image's index in the dataset.
    file : str
        The image's file as the manifest records it: relative to the manifest's
        folder, or absolute.
    image : ndarray
        The decoded image, (h, w) or (h, w, c).
    digest : str
        Hex SHA-256 of the file's bytes.

    Returns
    -------
    tuple
        ``(index, file, height, width, channels, dtype, sha256)``, dtype as text.
    """
    height, width = image.shape[:2]
    return (index, file, height, width, image_channels(image), str(image.dtype), digest)


def write_manifest(path, rows) -> None:
    """Write manifest rows (sorted by index) as a TSV file, atomically.

    Parameters
    ----------
    path : str or path-like
        The manifest file; its folder is created.
    rows : iterable of tuple
        Rows in :data:`MANIFEST_COLUMNS` order (:func:`manifest_row`); written
        sorted, so by index, under a header line.
    """
    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += ["\t".join(str(value) for value in row) for row in sorted(rows)]
    with atomic_file(path) as temporary:
        Path(temporary).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _manifest_file(shard) -> tuple[str, str]:
    """The manifest of a shard folder, or the manifest itself, and its folder."""
    path = os.fspath(shard)
    if os.path.basename(path) == MANIFEST_NAME:
        return path, os.path.dirname(path)
    return os.path.join(path, MANIFEST_NAME), path


def _row_path(prefix: str, file: str, index: str) -> str:
    """An image's source (:mod:`pixelflow.io.sources`): ``file`` on the prefix unless absolute; indexed if an array."""
    path = file if file.startswith("/") else prefix + file
    return array_source(path, int(index)) if file.endswith(ARRAY_SUFFIX) else path


def _manifest_lines(shard_dir) -> tuple[str, str, list[str]]:
    """A shard's manifest name, the prefix that turns its files into paths, and its data lines."""
    manifest, base = _manifest_file(shard_dir)
    try:
        with open(manifest, encoding="utf-8") as handle:
            header = tuple(handle.readline().rstrip("\n").split("\t"))
            if header != MANIFEST_COLUMNS:
                raise ValueError(f"{manifest}: columns {header} differ from {MANIFEST_COLUMNS}")
            lines = handle.read().split("\n")
    except FileNotFoundError:
        raise FileNotFoundError(f"{manifest}: shard manifest is missing") from None
    if lines and lines[-1] == "":
        lines.pop()
    return manifest, os.path.join(base, ""), lines


def _field_count_error(manifest: str, number: int, count: int) -> ValueError:
    return ValueError(f"{manifest}: line {number} has {count} fields, not {len(MANIFEST_COLUMNS)}")


def read_manifest(shard_dir) -> list[dict]:
    """Rows of a manifest; ``path`` is each image's source (a string), ``file`` joined to the manifest's folder.

    Parameters
    ----------
    shard_dir : str or path-like
        The folder holding ``manifest.tsv``, or the manifest file itself.

    Returns
    -------
    list of dict
        In file order, keyed by :data:`MANIFEST_COLUMNS` (index, height, width
        and channels as int) plus ``path``: ``file`` itself when absolute, else
        the manifest's folder joined with it (not normalised); for an image of
        a Zarr array, ``<array>[<index>]`` (:func:`pixelflow.io.sources.read_source`
        reads either).

    Raises
    ------
    FileNotFoundError
        Naming the manifest, when it is missing.
    ValueError
        Naming the manifest, for other columns or a line with another number
        of fields.
    """
    manifest, prefix, lines = _manifest_lines(shard_dir)
    rows = []
    for number, line in enumerate(lines, start=2):
        fields = line.split("\t")
        if len(fields) != len(MANIFEST_COLUMNS):
            raise _field_count_error(manifest, number, len(fields))
        index, file, height, width, channels, dtype, digest = fields
        rows.append(
            {
                "index": int(index),
                "file": file,
                "height": int(height),
                "width": int(width),
                "channels": int(channels),
                "dtype": dtype,
                "sha256": digest,
                "path": _row_path(prefix, file, index),
            }
        )
    return rows


def row_label(row: dict) -> str:
    """A manifest row's image as tables name it: its ``file``, or ``<array>[<index>]`` for an image of a Zarr array."""
    file = row["file"]
    return array_source(os.path.basename(file), row["index"]) if file.endswith(ARRAY_SUFFIX) else file


def read_manifests(shard_dirs) -> list[dict]:
    """All rows of several shards in index order; indexes must run 0..N-1 without gaps.

    Parameters
    ----------
    shard_dirs : iterable of str or path-like
        Shard folders, in any order.

    Returns
    -------
    list of dict
        As :func:`read_manifest` gives them, sorted by index.

    Raises
    ------
    ValueError
        Naming the image, at the first index missing or repeated, and as
        :func:`read_manifest`.
    FileNotFoundError
        As :func:`read_manifest`.
    """
    rows = sorted((row for shard in shard_dirs for row in read_manifest(shard)), key=lambda row: row["index"])
    for expected, row in enumerate(rows):
        if row["index"] != expected:
            raise ValueError(f"{row['path']}: index {row['index']} found where {expected} was expected")
    return rows


def _shard_paths(shard_dir) -> tuple[list[int], list[str], dict[str, str]]:
    """A shard's indexes and paths in manifest order, and each distinct image layout text with its first path."""
    manifest, prefix, lines = _manifest_lines(shard_dir)
    indexes, paths, layouts = [], [], {}
    for number, line in enumerate(lines, start=2):
        if line.count("\t") != len(MANIFEST_COLUMNS) - 1:
            raise _field_count_error(manifest, number, line.count("\t") + 1)
        index, file, layout = line.split("\t", 2)
        path = _row_path(prefix, file, index)
        indexes.append(int(index))
        paths.append(path)
        layouts.setdefault(layout.rpartition("\t")[0], path)
    return indexes, paths, layouts


def read_image_paths(shard_dirs) -> tuple[list[str], list[tuple[str, tuple, str]]]:
    """The image paths of several shards in index order, and each distinct (first path, shape, dtype).

    The same checks as :func:`read_manifests` at a fraction of its time and memory, for
    jobs that need only where the images are and what form they share (the stack).
    The forms are listed in the order of their first image.

    Parameters
    ----------
    shard_dirs : iterable of str or path-like
        Shard folders, in any order.

    Returns
    -------
    paths : list of str
        Every image's path, in index order, as ``path`` of :func:`read_manifest`.
    forms : list of tuple
        ``(first path, shape, dtype)`` of each distinct form, shape as
        :func:`image_shape` gives it and dtype as text.

    Raises
    ------
    ValueError, FileNotFoundError
        As :func:`read_manifests`.
    """
    shard_dirs = list(shard_dirs)  # read twice when the fast path does not apply
    parts = sorted((_shard_paths(shard) for shard in shard_dirs), key=lambda part: part[0][:1])
    indexes = [index for part in parts for index in part[0]]
    if indexes != list(range(len(indexes))):
        rows = read_manifests(shard_dirs)  # in order, or the error naming the first misplaced index
        return [row["path"] for row in rows], _row_forms(rows)
    paths = [path for part in parts for path in part[1]]
    return paths, _row_forms([_layout_row(layout, path) for part in parts for layout, path in part[2].items()])


def _layout_row(layout: str, path: str) -> dict:
    """The row fields of a layout text (height, width, channels, dtype), with ``path``."""
    height, width, channels, dtype = layout.split("\t")
    return {"height": int(height), "width": int(width), "channels": int(channels), "dtype": dtype, "path": path}


def _row_forms(rows: list[dict]) -> list[tuple[str, tuple, str]]:
    """Each distinct (shape, dtype) of ``rows`` as (its first row's path, shape, dtype)."""
    forms = {}
    for row in rows:
        forms.setdefault((image_shape(row), row["dtype"]), row["path"])
    return [(path, shape, dtype) for (shape, dtype), path in forms.items()]


def image_shape(row: dict) -> tuple:
    """The array shape a manifest row describes: (height, width) for one channel, else (height, width, channels)."""
    if row["channels"] == 1:
        return (row["height"], row["width"])
    return (row["height"], row["width"], row["channels"])


def _stored_file(source: str) -> str:
    """The file a source is stored in: the image file, or its Zarr array's folder."""
    item = split_source(source)
    return source if item is None else item[0]


def write_dataset_index(output, shard_dirs) -> int:
    """Write all shards' rows, in index order, as one manifest beside the shards; return the count.

    Parameters
    ----------
    output : str or path-like
        The dataset's manifest; its ``file`` column holds each image's path
        (or its Zarr array's) relative to this file's folder, symbolic links
        resolved.
    shard_dirs : iterable of str or path-like
        The dataset's shard folders.

    Returns
    -------
    int
        The number of images.

    Raises
    ------
    ValueError, FileNotFoundError
        As :func:`read_manifests`.
    """
    output = Path(output)
    rows = read_manifests(shard_dirs)
    anchor = output.parent.resolve()
    relative: dict[str, str] = {}  # each stored file resolved once: a zarr dataset's rows share one array

    def file_of(source: str) -> str:
        stored = _stored_file(source)
        if stored not in relative:
            relative[stored] = os.path.relpath(Path(stored).resolve(), anchor)
        return relative[stored]

    write_manifest(
        output,
        [
            (
                row["index"],
                file_of(row["path"]),
                row["height"],
                row["width"],
                row["channels"],
                row["dtype"],
                row["sha256"],
            )
            for row in rows
        ],
    )
    return len(rows)


def stale_shards(dataset_dir, current: list[str]) -> list[Path]:
    """Shard folders (and their partial leftovers) of ``dataset_dir`` not among ``current`` shard names.

    Parameters
    ----------
    dataset_dir : str or path-like
        The dataset's folder; a missing one has no stale shards.
    current : list of str
        Names of the shard folders the plan has, e.g. ``shard-0000``.

    Returns
    -------
    list of Path
        Sorted: every ``shard-*`` entry not in ``current``, and every hidden
        ``.shard-*.partial-*`` entry whose shard is not in ``current``.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        return []
    keep = set(current)
    stale = []
    for entry in sorted(dataset_dir.iterdir()):
        name = entry.name
        if name.startswith("shard-") and name not in keep:
            stale.append(entry)
        elif name.startswith(".shard-") and PARTIAL_MARK in name and name[1:].split(".", 1)[0] not in keep:
            stale.append(entry)
    return stale


def remove_stale_shards(dataset_dir, current: list[str]) -> list[Path]:
    """Delete shard folders the plan no longer has (after ``count`` shrank); return them.

    Parameters
    ----------
    dataset_dir, current
        As for :func:`stale_shards`.

    Returns
    -------
    list of Path
        The entries deleted.
    """
    removed = stale_shards(dataset_dir, current)
    for entry in removed:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    return removed
