"""Reproject a map image: inverse mapping on an error-checked coarse grid, OpenCV remap, row bands in worker processes.

For every output pixel the source pixel it comes from is found by the
projection's closed-form inverse. Doing that exactly for every pixel costs
more than the resampling itself, so the exact inverse (in float32) is evaluated
on a grid every ``grid_step`` pixels and interpolated bilinearly
(``cv2.resize``). Each cell's interpolation error is measured against the
exact inverse at the cell's centre and edge midpoints, where a bilinear
interpolant's error from the quadratic part of the map peaks; a cell that
misses half the threshold gets a grid four times finer, and a fine cell that
still misses is computed exactly, pixel by pixel. Threshold 0 computes every
pixel exactly.

Worker processes (``pixelflow.runner.parallel_map``) render tiles: row bands,
split into columns when wider than :data:`MAX_TILE` (which keeps OpenCV's
32767-pixel remap limit out of the way). Each writes its pixels straight into
the output's pixel area with ``pwrite`` (for TIFF, the output file itself).
The source reaches the workers without a copy: an uncompressed TIFF is
memory-mapped where it lies (bilinear and nearest only, rows clamped at the
poles); otherwise it is decoded into an array with a few extra rows above and
below (across a pole, a pixel's neighbour is the pixel half-way round the same
row), inherited by forked workers or shared through a scratch file under
spawn.
"""

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelflow import projections
from pixelflow.atomic import atomic_file, partial_name
from pixelflow.georef import SourceGeometry, source_geometry
from pixelflow.imageio import ImageError, read_image, write_image
from pixelflow.plan_maps import PIXELS_PER_PROCESS
from pixelflow.rawtiff import tiff_header, uncompressed_layout
from pixelflow.runner import default_start_method, limit_native_threads, parallel_map

INTERPOLATIONS = ("nearest", "bilinear", "cubic", "lanczos")
KERNEL_REACH = {"nearest": 1, "bilinear": 1, "cubic": 2, "lanczos": 4}
MAX_TILE = 16384  # pixels per tile side, below OpenCV remap's 32767
TILE_PIXELS = 1 << 21  # about 2 Mpx per tile keeps each worker's maps near 30 MB
# A cell passes when the error measured at its midpoints is within this share
# of the threshold: the rest covers how the map's curvature varies inside the
# cell (steep near a pole or an orthographic limb), where the midpoints are not
# quite the worst points.
CHECK_MARGIN = 0.5
INVALID = -16000.0
# a map coordinate that is outside any source (fits remap's int16 maps)


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to render tiles of one output."""

    projection: dict
    transform: tuple
    width: int
    height: int
    geometry: SourceGeometry
    source_file: str  # "" when the workers inherit the source array
    source_offset: int
    source_shape: tuple  # padded (rows, cols, channels)
    source_dtype: str
    pad: int
    output_file: str
    output_offset: int
    output_channels: int
    interpolation: str
    threshold: float
    grid_step: int
    alpha: bool  # some output pixels may lack a source: they get alpha 0


def mapping_task(projection: dict, width: int, height: int, geometry: SourceGeometry, threshold=0.0, grid_step=8):
    """A Task for computing source coordinates only (no files): for tests and benchmarks."""
    transform = projections.geotransform(projection, width, height)
    return Task(
        projection, transform, width, height, geometry, "", 0, (1, 1, 3), "|u1", 0, "", 0, 3, "bilinear",
        float(threshold), int(grid_step), False,
    )  # fmt: skip


def exact_coordinates(task: Task, rows, cols, dtype=np.float64):
    """Exact source (column, row) of output pixels, NaN where there is no source.

    float32 is several times faster (SIMD) and good to about 0.001 pixel on
    maps up to 32767 pixels wide.
    """
    x, y = projections.pixel_centres_to_xy(task.transform, cols, rows, dtype)
    lon, lat = projections.inverse(task.projection, x, y)
    return task.geometry.to_pixel(lon, lat)


def _difference(a, b, period):
    difference = np.abs(a - b)
    if period:
        difference = np.minimum(difference, period - difference)
    return difference


def cell_errors(nodes: np.ndarray, mid_y, mid_x, node_y, node_x, exact, period) -> np.ndarray:
    """Largest miss of bilinear interpolation between ``nodes`` at each cell's centre and edge midpoints.

    ``nodes`` is (..., rows, cols, 2) at positions ``node_y`` x ``node_x`` (arrays
    broadcasting to (..., rows, 1) and (..., 1, cols)); ``mid_y``/``mid_x`` are the
    midpoints between them; ``exact(y, x)`` gives the true (column, row) there.
    Columns compare modulo ``period`` on a wrapping map; a cell straddling the
    wrap seam has nodes a width apart, so its linear guess misses by ~width/2.
    NaN (no source) counts as an infinite miss, except in a cell where all
    nine points are NaN: that cell lies outside the projection's domain (its
    interpolated values are NaN too), as no convex domain edge can bulge into a
    cell between all of them by a visible amount.
    """
    checks = (
        (
            mid_y,
            mid_x,
            (nodes[..., :-1, :-1, :] + nodes[..., 1:, :-1, :] + nodes[..., :-1, 1:, :] + nodes[..., 1:, 1:, :]) / 4,
        ),
        (mid_y, node_x, (nodes[..., :-1, :, :] + nodes[..., 1:, :, :]) / 2),
        (node_y, mid_x, (nodes[..., :, :-1, :] + nodes[..., :, 1:, :]) / 2),
    )
    missing = np.isnan(nodes[..., 0])
    empty = missing[..., :-1, :-1] & missing[..., 1:, :-1] & missing[..., :-1, 1:] & missing[..., 1:, 1:]
    error = None
    for kind, (points_y, points_x, guess) in enumerate(checks):
        truth_x, truth_y = exact(points_y, points_x)
        miss = np.maximum(_difference(truth_x, guess[..., 0], period), np.abs(truth_y - guess[..., 1]))
        absent = np.isnan(truth_x)
        miss = np.where(np.isnan(miss), np.inf, miss)
        if kind == 1:  # vertical edges: each belongs to the cells left and right
            miss = np.maximum(miss[..., :-1], miss[..., 1:])
            absent = absent[..., :-1] & absent[..., 1:]
        elif kind == 2:  # horizontal edges: the cells above and below
            miss = np.maximum(miss[..., :-1, :], miss[..., 1:, :])
            absent = absent[..., :-1, :] & absent[..., 1:, :]
        error = miss if error is None else np.maximum(error, miss)
        empty &= absent
    return np.where(empty, 0.0, error)


def interpolated_coordinates(task: Task, row0: int, row1: int, col0: int, col1: int):
    """Source coordinates of a tile as a float32 (rows, cols, 2) map, NaN where there is no source.

    Two levels: a grid every ``grid_step`` pixels, then, in the cells where it
    misses, a grid every ``grid_step / 4``; pixels of fine cells that still miss
    are computed exactly. Returns the map and the number of pixels computed exactly.
    """
    import cv2

    height, width = row1 - row0, col1 - col0
    step = task.grid_step
    if step % 2:
        raise ValueError(f"grid step {step} must be even")
    if task.threshold <= 0 or step <= 1:
        rows, cols = np.mgrid[row0:row1, col0:col1]
        mx, my = exact_coordinates(task, rows, cols, np.float32)
        return np.dstack([mx, my]).astype(np.float32), height * width

    def exact(y, x):
        return exact_coordinates(task, y, x, np.float32)

    def exact_double(y, x):  # where cells are refined the map is steep, and float32 too coarse near a pole
        return exact_coordinates(task, y, x, np.float64)

    limit = task.threshold * CHECK_MARGIN
    period = task.geometry.width if task.geometry.wraps else 0
    # Node j sits at pixel (j - 1) * step + (step - 1) / 2, so that cv2.resize by
    # `step` interpolates linearly between nodes, offset by `step` pixels.
    ny = math.floor((height - 0.5) / step + 0.5) + 2
    nx = math.floor((width - 0.5) / step + 0.5) + 2
    node_y = (row0 + (np.arange(ny) - 1) * step + (step - 1) / 2)[:, None]
    node_x = (col0 + (np.arange(nx) - 1) * step + (step - 1) / 2)[None, :]
    nodes = np.stack(exact(node_y, node_x), axis=-1)
    error = cell_errors(nodes, node_y[:-1] + step / 2, node_x[:, :-1] + step / 2, node_y, node_x, exact, period)
    resized = cv2.resize(nodes, (nx * step, ny * step), interpolation=cv2.INTER_LINEAR)
    coords = resized[step : step + height, step : step + width]
    bad_cells = np.argwhere(error > limit)
    if len(bad_cells) == 0:
        return coords, 0
    fine = step // 4 if step % 4 == 0 else 1
    values, exact_count = refine_cells(task, bad_cells, step, fine, row0, col0, limit, period, exact_double)
    # Cell (i, j) covers resized[i * step + step // 2 :][:step, j * step + step // 2 :][:, :step].
    half = step // 2
    blocks = resized[half : half + (ny - 1) * step, half : half + (nx - 1) * step]
    blocks = blocks.reshape(ny - 1, step, nx - 1, step, 2)
    blocks[bad_cells[:, 0], :, bad_cells[:, 1], :] = values
    return coords, exact_count


def refine_cells(task, cells, step, fine, row0, col0, limit, period, exact):
    """Pixels of coarse ``cells`` by a grid every ``fine`` pixels inside each, exact where that misses.

    Returns tile-relative rows, columns, their (column, row) values and the
    number of pixels computed exactly (some may fall outside the tile).
    """
    count = step // fine
    first_y = cells[:, 0] * step - step // 2  # the first pixel row of each cell, tile-relative
    first_x = cells[:, 1] * step - step // 2
    offsets = -0.5 + fine * np.arange(count + 1)
    node_y = (row0 + first_y[:, None] + offsets)[:, :, None]  # (n, count + 1, 1)
    node_x = (col0 + first_x[:, None] + offsets)[:, None, :]  # (n, 1, count + 1)
    nodes = np.stack(exact(node_y, node_x), axis=-1).astype(np.float32)  # (n, count + 1, count + 1, 2)
    error = cell_errors(nodes, node_y[:, :-1] + fine / 2, node_x[:, :, :-1] + fine / 2, node_y, node_x, exact, period)
    # Bilinear weights of the pixels inside a cell: pixel p lies in sub-cell p // fine.
    pixel = np.arange(step)
    sub = pixel // fine
    t = ((pixel - sub * fine + 0.5) / fine).astype(np.float32)[:, None]
    across = nodes[:, :, sub] * (1 - t) + nodes[:, :, sub + 1] * t  # (n, count + 1, step, 2)
    values = across[:, sub] * (1 - t[:, :, None]) + across[:, sub + 1] * t[:, :, None]  # (n, step, step, 2)
    bad = (error > limit)[:, sub][:, :, sub]  # (n, step, step)
    cell, py, px = np.nonzero(bad)
    if cell.size:
        values[cell, py, px] = np.stack(exact(row0 + first_y[cell] + py, col0 + first_x[cell] + px), axis=-1)
    return values, int(cell.size)


# Worker state: the shared source and output, opened once per worker process.
_SHARED: dict = {}
# The source array, handed to forked workers by inheritance (copy-on-write; they only read it).
_INHERITED: dict = {}


def attach(task: Task) -> None:
    """Open the shared source and output files (worker initializer)."""
    _SHARED.clear()
    if task.source_file:
        _SHARED["source"] = np.memmap(
            task.source_file, dtype=task.source_dtype, mode="r", offset=task.source_offset, shape=task.source_shape
        )
    else:  # inherited from the parent by fork (or this is the parent, running inline)
        _SHARED["source"] = _INHERITED["source"]
    _SHARED["output"] = os.open(task.output_file, os.O_WRONLY)
    _SHARED["task"] = task


def detach() -> None:
    """Close what :func:`attach` opened in this process."""
    if "output" in _SHARED:
        os.close(_SHARED["output"])
    _SHARED.clear()


def _tile_buffer(shape: tuple, dtype) -> np.ndarray:
    """A reusable buffer for rendered tiles, so its pages are faulted in once per worker."""
    buffer = _SHARED.get("buffer")
    size = math.prod(shape)
    if buffer is None or buffer.size < size or buffer.dtype != dtype:
        buffer = _SHARED["buffer"] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


def render_tile(tile: tuple) -> int:
    """Resample one tile ``(row0, row1, col0, col1)`` and write it to the output file; returns its exact-pixel count."""
    import cv2

    task: Task = _SHARED["task"]
    source = _SHARED["source"]
    row0, row1, col0, col1 = tile
    coords, exact = interpolated_coordinates(task, row0, row1, col0, col1)
    geometry = task.geometry
    valid = None
    if task.alpha:
        mx, my = coords[..., 0], coords[..., 1]
        valid = (my >= -0.5) & (my <= geometry.height - 0.5)
        if not geometry.wraps:
            valid &= (mx >= -0.5) & (mx <= geometry.width - 0.5)
        coords[~valid] = INVALID
    if task.pad:
        coords[..., 1] += task.pad
    else:  # no rows across the poles: stay on the map (bilinear never reaches past a clamped row)
        np.clip(coords[..., 1], 0, geometry.height - 1, out=coords[..., 1])
    method = {
        "nearest": cv2.INTER_NEAREST,
        "bilinear": cv2.INTER_LINEAR,
        "cubic": cv2.INTER_CUBIC,
        "lanczos": cv2.INTER_LANCZOS4,
    }[task.interpolation]
    map1, map2 = cv2.convertMaps(coords, None, cv2.CV_16SC2, nninterpolation=task.interpolation == "nearest")
    del coords
    border = cv2.BORDER_WRAP if geometry.wraps else cv2.BORDER_REPLICATE
    channels = source.shape[2]
    target = _tile_buffer((row1 - row0, col1 - col0, task.output_channels), source.dtype)
    if task.output_channels == channels:
        cv2.remap(source, map1, map2, method, dst=target[..., 0] if channels == 1 else target, borderMode=border)
    else:  # add an alpha channel; grey becomes RGB
        pixels = cv2.remap(source, map1, map2, method, borderMode=border)
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        target[..., :3] = pixels[..., :1] if channels == 1 else pixels[..., :3]
        target[..., 3] = np.iinfo(target.dtype).max
    if valid is not None:
        target[~valid] = 0
    write_rows(_SHARED["output"], task, target, row0, col0)
    return exact


def write_rows(descriptor: int, task: Task, pixels: np.ndarray, row0: int, col0: int) -> None:
    """Write a rendered tile into the output file's pixel area (rows of ``task.width`` pixels)."""
    pixel_bytes = task.output_channels * pixels.dtype.itemsize
    row_bytes = task.width * pixel_bytes
    start = task.output_offset + row0 * row_bytes + col0 * pixel_bytes
    if pixels.shape[1] == task.width:
        chunks = [(start, pixels)]
    else:
        chunks = [(start + k * row_bytes, pixels[k]) for k in range(pixels.shape[0])]
    for offset, chunk in chunks:
        data = memoryview(np.ascontiguousarray(chunk).reshape(-1).view(np.uint8))
        while data:
            written = os.pwrite(descriptor, data, offset)
            data, offset = data[written:], offset + written


def plan_tiles(height: int, width: int, processes: int, step: int) -> list[tuple]:
    """Row bands (split into column tiles when wide): a multiple of ``step`` rows, about TILE_PIXELS each."""
    tile_width = min(width, MAX_TILE)
    column_tiles = [(c, min(c + tile_width, width)) for c in range(0, width, tile_width)]
    rows = max(step, TILE_PIXELS // tile_width // step * step)
    rows = min(rows, max(step, math.ceil(height / (4 * processes) / step) * step), MAX_TILE // step * step)
    return [(r, min(r + rows, height), c0, c1) for r in range(0, height, rows) for c0, c1 in column_tiles]


def pad_poles(buffer: np.ndarray, pad: int, height: int, has_poles: bool) -> None:
    """Fill the ``pad`` rows above and below the image rows of ``buffer`` (image at rows pad..pad+height)."""
    if pad == 0:
        return
    image = buffer[pad : pad + height]
    if has_poles:
        half = image.shape[1] // 2
        for k in range(pad):
            buffer[pad - 1 - k] = np.roll(image[min(k, height - 1)], half, axis=0)
            buffer[pad + height + k] = np.roll(image[max(height - 1 - k, 0)], half, axis=0)
    else:
        buffer[:pad] = image[:1]
        buffer[pad + height :] = image[-1:]


def output_channels(source_channels: int, alpha: bool) -> int:
    """Channels of the output: the source's, or RGBA when pixels may lack a source."""
    return 4 if alpha else source_channels


def needs_alpha(projection: dict, geometry: SourceGeometry) -> bool:
    """Whether some output pixels may have no source: outside the projection's domain or the map's coverage."""
    return projection["kind"] == "orthographic" or not geometry.covers_globe


def _to_channels(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] == 2:  # grey + alpha
        return np.dstack([image[..., :1]] * 3 + [image[..., 1:]])
    return image


def load_source(path, pad: int, pixel_limit: int, in_place: bool = False) -> tuple:
    """Read a map image into a (rows + 2 pad, columns, channels) array; the ``pad`` rows are left to fill.

    Returns ``(array, file, offset)``. With ``in_place``, an uncompressed
    TIFF is not read at all but memory-mapped where it lies (no padding; file
    and offset say where); otherwise an uncompressed TIFF is read straight into
    place and other files are decoded by :func:`pixelflow.imageio.read_image`
    (file ""). The size is checked against ``pixel_limit`` from the header
    before anything is decoded.
    """

    height, width = image_size(path)
    if height * width > pixel_limit:
        raise ImageError(
            f"{path}: {width}x{height} pixels is over the limit of {pixel_limit} (reprojection.pixel_limit); "
            "a decompression bomb, or raise the limit"
        )
    layout = uncompressed_layout(path)
    image = None
    if layout is None:
        image = _to_channels(read_image(path))
        height, width, channels = image.shape
        dtype = image.dtype
    else:
        height, width, channels, dtype, offset = layout
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: {np.dtype(dtype)} pixels; maps must be 8- or 16-bit")
    if max(height, width) + 2 * pad >= 32767:
        raise ImageError(f"{path}: {width}x{height} pixels; source maps must be under 32767 pixels on each side")
    if image is None and in_place and offset % np.dtype(dtype).itemsize == 0:
        mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(height, width, channels))
        return mapped, str(path), offset
    buffer = np.empty((height + 2 * pad, width, channels), np.dtype(dtype).newbyteorder("="))
    if image is None:
        with open(path, "rb") as file:
            file.seek(offset)
            view = memoryview(buffer[pad : pad + height].reshape(-1).view(np.uint8))
            if file.readinto(view) != view.nbytes:
                raise ImageError(f"{path}: pixel data is truncated")
    else:
        buffer[pad : pad + height] = image
    return buffer, "", 0


def share_source(buffer: np.ndarray, start_method: str, output_path: Path) -> str:
    """Make the source visible to workers: inherited under fork (returns ""), else a scratch file's path.

    Scratch files are named like a partial write of the output, so a killed
    job's leftovers go the next time that output is written.
    """
    _INHERITED["source"] = buffer
    if start_method == "fork":
        return ""
    scratch = partial_name(output_path)
    with open(scratch, "wb") as file:
        file.write(memoryview(buffer.reshape(-1).view(np.uint8)))
    return str(scratch)


def image_size(path) -> tuple[int, int]:
    """``(height, width)`` from an image file's header, without decoding the pixels."""
    from PIL import Image

    if not Path(path).is_file():
        raise ImageError(f"{path}: no such map file")
    Image.MAX_IMAGE_PIXELS = None  # the caller applies its own limit
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as error:
        raise ImageError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error
    return height, width


def reproject_file(
    source_path,
    output_path,
    geometry_spec: dict,
    projection: dict,
    size: tuple,
    *,
    interpolation: str = "bilinear",
    threshold: float = 0.125,
    grid_step: int = 8,
    processes: int = 1,
    pixel_limit: int = 1 << 30,
    compression: int = 6,
    pixels_per_process: int = PIXELS_PER_PROCESS,
    log=None,
) -> dict:
    """Reproject the map at ``source_path`` to ``output_path`` (.png or .tif), written atomically.

    ``size`` is ``(width, height)``; a missing height (None) means square
    pixels over the projection's natural extent, a width of ``("scale", s)``
    means ``s`` times the source width. ``processes`` is an upper bound: a
    process per ``pixels_per_process`` output pixels at most. Returns facts for the log and the
    georeferencing: width, height, transform, channels, exact pixel count.
    """

    output_path = Path(output_path)
    fmt = output_path.suffix.lower().lstrip(".")
    if fmt not in ("png", "tif"):
        raise ValueError(f"{output_path}: output must be .png or .tif")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}")
    projections.parameters(projection)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    pad = KERNEL_REACH[interpolation] + 1
    # The parent decodes with OpenCV before forking workers: without a thread
    # pool of its own, no forked worker inherits a pool it could deadlock on.
    limit_native_threads(1)
    clock = time.perf_counter()
    # Bilinear and nearest reach one pixel at most: rows clamped at the poles
    # suffice, so an uncompressed TIFF can be used where it lies, unread.
    source, mapped_file, mapped_offset = load_source(
        source_path, pad, pixel_limit, in_place=interpolation in ("nearest", "bilinear")
    )
    if mapped_file:
        pad = 0
    _note(log, "read %s: %s %s in %.3f s", source_path, source.shape, source.dtype, clock)
    source_height, source_width = source.shape[0] - 2 * pad, source.shape[1]
    geometry = source_geometry(geometry_spec, source_width, source_height, str(source_path))
    width, height = resolve_size(projection, size, source_width)
    if width * height > pixel_limit:
        raise ImageError(f"{output_path}: {width}x{height} pixels is over the limit of {pixel_limit}")
    processes = max(1, min(int(processes), width * height // max(1, pixels_per_process)))
    start_method = default_start_method() if processes > 1 else "fork"
    if mapped_file:
        _INHERITED["source"] = source
        source_file = scratch_source = ""
        if start_method != "fork":
            source_file = mapped_file
    else:
        pad_poles(source, pad, source_height, geometry.has_poles)
        source_file = scratch_source = share_source(source, start_method, output_path)
    scratch_output = None
    try:
        alpha = needs_alpha(projection, geometry)
        channels = output_channels(source.shape[2], alpha)
        transform = projections.geotransform(projection, width, height)
        tiles = plan_tiles(height, width, processes, grid_step)
        data_bytes = width * height * channels * np.dtype(source.dtype).itemsize

        def task_for(file, offset):
            return Task(
                projection,
                transform,
                width,
                height,
                geometry,
                source_file,
                mapped_offset if source_file == mapped_file else 0,
                source.shape,
                source.dtype.str,
                pad,
                str(file),
                offset,
                channels,
                interpolation,
                float(threshold),
                int(grid_step),
                alpha,
            )

        def render(task):
            clock = time.perf_counter()
            exact = parallel_map(
                render_tile,
                tiles,
                processes,
                initializer=attach,
                initargs=(task,),
                chunk_size=1,
                describe=describe_tile,
                start_method=start_method,
            )
            detach()
            _note(log, "rendered %d tiles with %d process(es) in %.3f s", len(tiles), processes, clock)
            return sum(exact)

        if fmt == "tif":
            header = tiff_header(height, width, channels, np.dtype(source.dtype))
            with atomic_file(output_path) as temporary:
                with open(temporary, "wb") as file:
                    file.write(header)
                    file.truncate(len(header) + data_bytes)
                exact = render(task_for(temporary, len(header)))
        else:
            scratch_output = partial_name(output_path)  # raw pixels, before PNG encoding
            with open(scratch_output, "wb") as file:
                file.truncate(data_bytes)
            exact = render(task_for(scratch_output, 0))
            clock = time.perf_counter()
            pixels = np.memmap(scratch_output, dtype=source.dtype, mode="r", shape=(height, width, channels))
            write_image(
                output_path, np.asarray(pixels)[..., 0] if channels == 1 else np.asarray(pixels), "png", compression
            )
            del pixels
            _note(log, "encoded the PNG in %.3f s", clock)
    finally:
        _INHERITED.clear()
        for scratch in (scratch_source, scratch_output):
            if scratch and os.path.exists(scratch):
                os.unlink(scratch)
    return {
        "width": width,
        "height": height,
        "channels": channels,
        "transform": transform,
        "exact_pixels": exact,
        "tiles": len(tiles),
        "source": (source_width, source_height, source.shape[2], str(source.dtype)),
    }


def _note(log, message, *args):
    """Log a message whose last argument is a start time, turned into the seconds since."""
    if log is not None:
        log.info(message, *args[:-1], time.perf_counter() - args[-1])


def describe_tile(tile) -> str:
    """Words for a tile in error messages."""
    row0, row1, col0, col1 = tile
    return f"output rows {row0}-{row1 - 1}, columns {col0}-{col1 - 1}"


def resolve_size(projection: dict, size: tuple, source_width: int) -> tuple[int, int]:
    """Output ``(width, height)`` from a config size: width or a scale of the source width, height or natural."""
    width, height = size
    if isinstance(width, tuple):
        width = max(1, round(width[1] * source_width))
    if height is None:
        height = projections.natural_height(projection, width)
    if width <= 0 or height <= 0:
        raise ValueError(f"output size {width}x{height} must be positive")
    return int(width), int(height)
