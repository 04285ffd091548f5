"""Inverse maps cached as files: one per (source grid, projection, output size, error threshold, grid step).

A file holds, for each column range the output is tiled by
(:func:`pixelflow.maps.inverse_map.column_ranges`; one unless the output is wider
than 16384 pixels), the coarse grid over the whole height: its exact nodes,
the cells that miss the threshold and every pixel of those, refined as
:func:`pixelflow.maps.inverse_map.tile_grid` does it. A job reading the file hands
each tile the very values it would have computed, so the coordinates and the
output bytes are the same; what it saves is the exact inverse on the grid, the
error checks and the refinement. That takes 8 bytes per grid node plus 8 per
refined pixel: about 15 MB for a 10800x5400 output at the defaults, where the
full-resolution maps would take 445 MB.

Layout: :data:`MAGIC`, the header's length (8 bytes, little-endian), the JSON
header (the spec of the values, the column ranges, and where every array lies),
then the arrays, each at a multiple of 64 bytes, so that a reader can read the
rows of one tile alone.
"""

import json
import os
import struct
from typing import TypedDict

import numpy as np

from pixelflow.atomic import atomic_file
from pixelflow.maps.georef import SourceGeometry
from pixelflow.maps.inverse_map import TileGrid, column_ranges, grid_shape, mapping_task, tile_grid
from pixelflow.maps.projections import PARAMETERS

MAGIC = b"PXINVMAP"
# Part of every spec: bumped when the file's layout or the arithmetic of its
# values changes, so that no file of an older kind is taken for current.
INVERSE_FORMAT = 1
ALIGN = 64
BAND_PIXELS = 1 << 21  # output pixels worked on at a time, which bounds the temporaries


class InverseMapError(ValueError):
    """A cached inverse map that cannot be read, or was made for other values."""


class InverseSpec(TypedDict):
    """Exactly what an inverse map depends on; stored in its file's header and checked by every reader.

    Attributes
    ----------
    format : int
        :data:`INVERSE_FORMAT` of the code that wrote it.
    projection : dict
        The output projection's ``kind`` and every parameter of the kind, as floats (degrees).
    width, height : int
        Output size in pixels.
    source : dict
        The source grid: ``kind``, ``width``, ``height`` and ``bounds`` (a list of four floats, degrees).
    error_threshold : float
        Largest interpolation error in source pixels.
    grid_step : int
        Output pixels between coarse grid nodes.
    """

    format: int
    projection: dict
    width: int
    height: int
    source: dict
    error_threshold: float
    grid_step: int


def inverse_spec(
    projection: dict, width: int, height: int, source: dict, threshold: float, grid_step: int
) -> InverseSpec:
    """Exactly what an inverse map depends on: projection kind and parameters, size, source grid, threshold, step.

    The spec is stored in the file's header and checked by every job that
    reads it. Its values are normalised (every parameter of the kind, with its
    default, as float; sizes as int; bounds as a list of floats), so that
    equal inputs give equal specs.

    Parameters
    ----------
    projection : dict
        The output projection's entry; keys other than ``kind`` and its parameters are left out.
    width, height : int
        Output size in pixels.
    source : dict
        The source grid's ``kind``, ``width``, ``height`` and ``bounds``
        (:class:`pixelflow.maps.georef.SourceGeometry`).
    threshold : float
        Largest interpolation error in source pixels.
    grid_step : int
        Output pixels between coarse grid nodes.

    Returns
    -------
    InverseSpec
    """
    kind = projection["kind"]
    parameters = {name: float(projection.get(name, default)) for name, default in PARAMETERS[kind].items()}
    return {
        "format": INVERSE_FORMAT,
        "projection": {"kind": kind, **parameters},
        "width": int(width),
        "height": int(height),
        "source": {
            "kind": source["kind"],
            "width": int(source["width"]),
            "height": int(source["height"]),
            "bounds": [float(value) for value in source["bounds"]],
        },
        "error_threshold": float(threshold),
        "grid_step": int(grid_step),
    }


def mapping_of(spec: InverseSpec):
    """The :class:`pixelflow.maps.inverse_map.Mapping` an :func:`inverse_spec` describes."""
    source = spec["source"]
    geometry = SourceGeometry(source["kind"], source["width"], source["height"], tuple(source["bounds"]))
    return mapping_task(
        spec["projection"], spec["width"], spec["height"], geometry, spec["error_threshold"], spec["grid_step"]
    )


def compute_arrays(spec: InverseSpec) -> dict[str, np.ndarray]:
    """The arrays of a cache file: ``nodes``, ``cells``, ``values`` and ``exact``, each name then a column range number.

    The grid is computed a band of rows at a time (about :data:`BAND_PIXELS`
    output pixels, a multiple of the grid step) with :func:`tile_grid`;
    consecutive bands share a row of nodes and cells, kept from the first.

    Returns
    -------
    dict of str to ndarray
        For column range k (:func:`~pixelflow.maps.inverse_map.column_ranges`),
        the fields of :class:`~pixelflow.maps.inverse_map.TileGrid` over the
        whole height: ``nodes<k>``, ``cells<k>`` (int32, rows counted from the
        output's first row), ``values<k>`` and ``exact<k>``.

    Raises
    ------
    InverseMapError
        If the error threshold is 0 or less: every pixel is then computed exactly, and there is nothing to cache.
    ValueError
        If the grid step is odd.
    """
    task = mapping_of(spec)
    if task.threshold <= 0:
        raise InverseMapError("nothing to cache: error threshold 0 computes every pixel exactly")
    step = task.grid_step
    arrays = {}
    for number, (col0, col1) in enumerate(column_ranges(task.width)):
        rows = max(step, BAND_PIXELS // (col1 - col0) // step * step)
        parts = []
        for row0 in range(0, task.height, rows):
            row1 = min(row0 + rows, task.height)
            grid = tile_grid(task, row0, row1, col0, col1)
            keep = len(grid.nodes) if row1 == task.height else (row1 - row0) // step
            own = grid.cells[:, 0] < keep
            cells = (grid.cells[own] + [row0 // step, 0]).astype(np.int32)
            parts.append((grid.nodes[:keep], cells, grid.values[own], grid.exact[own]))
        for index, name in enumerate(("nodes", "cells", "values", "exact")):
            arrays[f"{name}{number}"] = np.concatenate([part[index] for part in parts])
        if arrays[f"nodes{number}"].shape[:2] != grid_shape(task.height, col1 - col0, step):
            raise AssertionError("the bands' nodes do not add up to the grid")
    return arrays


def _data_start(header_length: int) -> int:
    return -(-(len(MAGIC) + 8 + header_length) // ALIGN) * ALIGN


def write_inverse_map(path, spec: InverseSpec) -> dict:
    """Compute the inverse map ``spec`` describes and write it to ``path`` atomically.

    Returns
    -------
    dict
        Facts for the log: ``bytes`` (the file's size), ``refined_cells`` and ``exact_pixels``.

    Raises
    ------
    InverseMapError
        If the error threshold is 0 or less.
    """
    arrays = compute_arrays(spec)
    table, offset = {}, 0
    for name, array in arrays.items():
        table[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += -(-array.nbytes // ALIGN) * ALIGN
    columns = column_ranges(spec["width"])
    header = json.dumps({"spec": spec, "columns": columns, "arrays": table}, sort_keys=True).encode()
    start = _data_start(len(header))
    with atomic_file(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(MAGIC + struct.pack("<Q", len(header)) + header)
            for name, array in arrays.items():
                file.seek(start + table[name]["offset"])
                file.write(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
            file.truncate(start + offset)
    cells = sum(len(arrays[f"cells{number}"]) for number in range(len(columns)))
    exact = sum(int(arrays[f"exact{number}"].sum()) for number in range(len(columns)))
    return {"bytes": start + offset, "refined_cells": cells, "exact_pixels": exact}


class InverseMapFile:
    """An open cache file: the spec it was made for, and the coarse grid of any tile, read when asked for.

    Tiles read their rows with ``pread`` into arrays of their own rather than
    mapping the file, so that a worker does not keep every page it once read
    resident (and counted in its memory) until it ends. As a context manager
    it closes the file on exit.

    Parameters
    ----------
    path : str or path
        The cache file.

    Attributes
    ----------
    path : str
        The cache file.
    spec : InverseSpec
        What the file was made for, from its header.
    columns : list of list of int
        The output's column ranges ``[start, stop]``, one grid each.

    Raises
    ------
    InverseMapError
        Naming the file, when it cannot be opened, does not start with
        :data:`MAGIC`, has a header that cannot be parsed, or is shorter than its arrays.
    """

    def __init__(self, path):
        self.path = str(path)
        self._cells: dict = {}
        self._descriptor = -1
        try:
            self._descriptor = os.open(path, os.O_RDONLY)
            head = os.pread(self._descriptor, len(MAGIC) + 8, 0)
            if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
                raise InverseMapError("it does not start like one")
            (length,) = struct.unpack("<Q", head[len(MAGIC) :])
            header = json.loads(os.pread(self._descriptor, length, len(head)))
            self.spec, self.columns, self._table = header["spec"], header["columns"], header["arrays"]
            self._start, size = _data_start(length), os.fstat(self._descriptor).st_size
            for entry in self._table.values():
                end = self._start + entry["offset"] + np.dtype(entry["dtype"]).itemsize * int(np.prod(entry["shape"]))
                if end > size:
                    raise InverseMapError(f"it is truncated ({size} bytes, its arrays reach {end})")
        except (OSError, ValueError, KeyError, TypeError, struct.error) as error:
            self.close()
            raise InverseMapError(
                f"{path}: not a readable inverse-map file ({error}); delete it and run the workflow again"
            ) from error

    def close(self) -> None:
        """Close the file (the arrays already read stay valid)."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def rows(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` (along the first axis) of one stored array, read into a new array.

        ``stop`` None means the array's end; ``stop`` is clipped to the array's length, ``start`` to ``stop``.

        Raises
        ------
        InverseMapError
            Naming the file, when it ends before those rows.
        """
        entry = self._table[name]
        shape, dtype = entry["shape"], np.dtype(entry["dtype"])
        stop = shape[0] if stop is None else min(stop, shape[0])
        start = min(start, stop)
        array = np.empty((stop - start, *shape[1:]), dtype)
        row_bytes = array[:1].nbytes if len(array) else 0
        view, offset = memoryview(array.reshape(-1).view(np.uint8)), self._start + entry["offset"] + start * row_bytes
        while view:
            done = os.preadv(self._descriptor, [view], offset)
            if done <= 0:
                raise InverseMapError(f"{self.path}: truncated while reading {name}")
            view, offset = view[done:], offset + done
        return array

    def check(self, spec: InverseSpec, needed_by: str) -> None:
        """Raise :class:`InverseMapError` unless the file was made for ``spec``, naming what differs.

        Parameters
        ----------
        spec : InverseSpec
            What the reader needs (:func:`inverse_spec`).
        needed_by : str
            What needs the file, for the message.

        Raises
        ------
        InverseMapError
            Naming the file, ``needed_by`` and every key of the spec whose value differs.
        """
        if self.spec == spec:
            return
        keys = sorted(key for key in set(self.spec) | set(spec) if self.spec.get(key) != spec.get(key))
        differences = "; ".join(f"{key}: made for {self.spec.get(key)!r}, needed {spec.get(key)!r}" for key in keys)
        raise InverseMapError(
            f"{self.path} does not fit {needed_by} ({differences}); run the workflow again to remake it"
        )

    def tile(self, row0: int, row1: int, col0: int, col1: int) -> TileGrid:
        """The coarse grid of a tile, as :func:`pixelflow.maps.inverse_map.tile_grid` computes it.

        Parameters
        ----------
        row0, row1, col0, col1 : int
            The tile: output rows ``row0:row1`` and columns ``col0:col1``;
            ``row0`` a multiple of the grid step and ``[col0, col1]`` one of :attr:`columns`.

        Returns
        -------
        TileGrid
            Its cells relative to the tile.

        Raises
        ------
        InverseMapError
            Naming the file, when it holds no grid for those rows and columns.
        """
        step = self.spec["grid_step"]
        if [col0, col1] not in self.columns or row0 % step:
            raise InverseMapError(f"{self.path}: no grid for output rows {row0}-{row1 - 1}, columns {col0}-{col1 - 1}")
        number, first = self.columns.index([col0, col1]), row0 // step
        rows, cols = grid_shape(row1 - row0, col1 - col0, step)
        nodes = self.rows(f"nodes{number}", first, first + rows)
        if nodes.shape[:2] != (rows, cols):
            raise InverseMapError(f"{self.path}: no grid for output rows {row0}-{row1 - 1}")
        if number not in self._cells:  # (n, 2), a few bytes per refined cell: read once
            self._cells[number] = self.rows(f"cells{number}")
        cells = self._cells[number]
        low, high = (int(index) for index in np.searchsorted(cells[:, 0], [first, first + rows - 1]))
        return TileGrid(
            nodes,
            cells[low:high] - np.array([first, 0], np.int32),
            self.rows(f"values{number}", low, high),
            self.rows(f"exact{number}", low, high),
        )
