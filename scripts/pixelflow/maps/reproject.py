"""Reproject a map image: the inverse mapping of :mod:`pixelflow.maps.inverse_map`, OpenCV remap, tiles in threads.

The output is rendered in tiles: row bands, split into columns when wider
than :data:`~pixelflow.maps.inverse_map.MAX_TILE` (which keeps OpenCV's
32767-pixel remap limit out of the way; larger sources are handled by
:mod:`pixelflow.maps.remap`). Each tile computes its source
coordinates, or takes its coarse grid from a cached inverse map
(:mod:`pixelflow.maps.inverse_cache`), resamples with ``cv2.remap`` and writes its
pixels straight into the output's pixel area with ``pwrite`` (for TIFF, the
output file itself).

Tiles are rendered by the job's threads rather than worker processes: OpenCV
and numpy's array loops release the GIL, so threads run in parallel, and they
share one copy of the source where every worker process would map nearly all
of it (each tile of a pole-shift map reads rows from pole to pole). An
uncompressed TIFF source is
memory-mapped where it lies (bilinear and nearest only, rows clamped at the
poles); any other is decoded into an array with a few extra rows above and
below (across a pole, a pixel's neighbour is the pixel half-way round the same
row).
"""

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelflow.atomic import atomic_file, partial_name
from pixelflow.errors import ImageError, WorkerError
from pixelflow.formats import format_of_path
from pixelflow.io.geotiff import georeference_tiff, raster_info, read_raster, write_geotiff
from pixelflow.io.headers import image_size
from pixelflow.io.images import read_image, write_image
from pixelflow.io.tiff import create_tiff, uncompressed_layout
from pixelflow.maps import projections
from pixelflow.maps.georef import SourceGeometry, raster_geometry, source_geometry
from pixelflow.maps.inverse_cache import InverseMapFile, inverse_spec
from pixelflow.maps.inverse_map import MAX_TILE, Mapping, column_ranges, interpolated_coordinates
from pixelflow.maps.remap import INVALID, KERNEL_REACH, METHODS, remap
from pixelflow.maps.resample import RESAMPLINGS, resample
from pixelflow.runner import limit_native_threads

INTERPOLATIONS = RESAMPLINGS
TILE_PIXELS = 1 << 19  # about 0.5 Mpx per tile: a thread's coordinate maps (4 MB) stay in cache between passes
MIN_BANDS = 8


@dataclass
class TileRenderer:
    """Renders tiles of one output from one source; shared by the job's threads, called once per tile.

    Attributes
    ----------
    mapping : Mapping
        The output's mapping.
    source : ndarray
        (rows + 2 pad, columns, channels) uint8 or uint16 source pixels (:func:`load_source`).
    pad : int
        Rows above and below the map's rows in ``source`` (:func:`pad_poles`).
    output : int
        A descriptor of the file the pixels go to, open for writing.
    output_offset : int
        Where the pixels start in it, in bytes.
    output_channels : int
        Channels of the output (:func:`output_channels`).
    interpolation : str
        One of :data:`INTERPOLATIONS`.
    alpha : bool
        Some output pixels may lack a source: they get 0 in every channel, alpha included.
    inverse : InverseMapFile or None
        The cached inverse map of this output, or None to compute the coarse grids.
    valid : ndarray or None
        (rows + 2 pad, columns) bool: the source pixels that hold data (nodata,
        masks and alpha left out; :func:`pixelflow.io.geotiff.read_raster`), or None when all do.
    nodata : float or None
        The value of output pixels without a source, instead of an alpha channel.
    """

    mapping: Mapping
    source: np.ndarray
    pad: int
    output: int
    output_offset: int
    output_channels: int
    interpolation: str
    alpha: bool
    inverse: InverseMapFile | None = None
    valid: np.ndarray | None = None
    nodata: float | None = None
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def _tile_buffer(self, shape: tuple) -> np.ndarray:
        """A reusable buffer per thread for rendered tiles, so its pages are faulted in once."""
        buffer = getattr(self._local, "buffer", None)
        size = math.prod(shape)
        if buffer is None or buffer.size < size:
            buffer = self._local.buffer = np.empty(size, self.source.dtype)
        return buffer[:size].reshape(shape)

    def __call__(self, tile: tuple) -> int:
        """Resample one tile and write it to the output.

        Parameters
        ----------
        tile : tuple of int
            ``(row0, row1, col0, col1)``: output rows ``row0:row1`` and columns ``col0:col1``.

        Returns
        -------
        int
            Pixels whose source coordinates were computed exactly.

        Raises
        ------
        InverseMapError
            When the cached inverse map holds no grid for the tile.
        """
        import cv2

        source = self.source
        row0, row1, col0, col1 = tile
        grid = self.inverse.tile(row0, row1, col0, col1) if self.inverse is not None else None
        coords, exact = interpolated_coordinates(self.mapping, row0, row1, col0, col1, grid)
        del grid
        geometry = self.mapping.geometry
        if self.valid is not None or self.nodata is not None or self.interpolation == "average":
            target = self._resampled(coords)
            write_rows(self.output, self.output_offset, self.mapping.width, target, row0, col0)
            return exact
        missing = None
        if self.alpha:  # 255 where the coordinates lie off the map (or are NaN), else 0
            columns = (-np.inf, np.inf) if geometry.wraps else (-0.5, geometry.width - 0.5)
            rows = (-0.5, geometry.height - 0.5)
            missing = cv2.bitwise_not(cv2.inRange(coords, (columns[0], rows[0]), (columns[1], rows[1])))
            if cv2.countNonZero(missing) == 0:  # the whole tile has a source
                missing = None
            else:  # remap reads something harmless there; those pixels are cleared below
                cv2.patchNaNs(coords, INVALID)
        if self.pad:
            coords[..., 1] += self.pad
        else:  # no rows across the poles: stay on the map (bilinear never reaches past a clamped row)
            np.clip(coords[..., 1], 0, geometry.height - 1, out=coords[..., 1])
        method = METHODS[self.interpolation]
        border = cv2.BORDER_WRAP if geometry.wraps else cv2.BORDER_REPLICATE
        channels = source.shape[2]
        target = self._tile_buffer((row1 - row0, col1 - col0, self.output_channels))
        resample = (method, border, KERNEL_REACH[self.interpolation], self.interpolation == "nearest", INVALID)
        if self.output_channels == channels:
            remap(source, coords, *resample, dst=target)
        else:  # add an alpha channel (grey becomes RGB for RGBA)
            pixels = remap(source, coords, *resample)
            if channels in (1, 3) and self.output_channels == 4 and source.dtype in (np.uint8, np.uint16):
                cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGBA if channels == 1 else cv2.COLOR_RGB2RGBA, dst=target)
            else:
                fill_alpha(target, pixels)
        del coords
        if missing is not None:  # no source: 0 in every channel, alpha included
            cv2.subtract(target, target, dst=target, mask=missing)
        write_rows(self.output, self.output_offset, self.mapping.width, target, row0, col0)
        return exact

    def _resampled(self, coords: np.ndarray) -> np.ndarray:
        """A tile through :func:`pixelflow.maps.resample.resample`: valid source pixels only, averaging too."""
        coords[..., 1] += self.pad
        pixels, valid = resample(
            self.source, coords, self.interpolation, valid=self.valid, wraps=self.mapping.geometry.wraps
        )
        channels = self.source.shape[2]
        target = self._tile_buffer(coords.shape[:2] + (self.output_channels,))
        if self.nodata is not None:
            target[...] = pixels
            if valid is not None:
                target[~valid] = self.nodata
            return target
        if self.output_channels == channels:
            target[...] = pixels
        else:  # add an alpha channel (grey becomes RGB for RGBA)
            fill_alpha(target, pixels)
        if valid is not None:
            target[~valid] = 0
        return target


def render_tiles(render, tiles: list, threads: int, progress=None) -> int:
    """Render every tile with ``threads`` threads; the first failure stops the rest and names its tile.

    Parameters
    ----------
    render : callable
        Renders one tile and returns its exact-pixel count (a :class:`TileRenderer`).
    tiles : list of tuple
        ``(row0, row1, col0, col1)`` of each tile (:func:`plan_tiles`).
    threads : int
        Rendering threads; with 1 or less, or a single tile, the tiles are
        rendered in this thread, in order.
    progress : callable, optional
        Called in this thread with 1 as each tile is done.

    Returns
    -------
    int
        The total exact-pixel count.

    Raises
    ------
    WorkerError
        Naming the tile that failed and the error, its cause; tiles not yet started are cancelled.
    """

    def guarded(tile):
        try:
            return render(tile)
        except Exception as error:
            raise WorkerError(f"{describe_tile(tile)} failed: {type(error).__name__}: {error}") from error

    if threads <= 1 or len(tiles) <= 1:
        exact = 0
        for tile in tiles:
            exact += guarded(tile)
            if progress is not None:
                progress(1)
        return exact
    with ThreadPoolExecutor(threads, thread_name_prefix="pixelflow-tile") as pool:
        futures = [pool.submit(guarded, tile) for tile in tiles]
        for future in as_completed(futures):
            if future.exception() is not None:
                for other in futures:
                    other.cancel()  # those not yet started
                raise future.exception()
            if progress is not None:
                progress(1)
        return sum(future.result() for future in futures)


def write_rows(descriptor: int, offset: int, width: int, pixels: np.ndarray, row0: int, col0: int) -> None:
    """Write a rendered tile into an output's pixel area with ``os.pwrite``.

    Parameters
    ----------
    descriptor : int
        The output file, open for writing.
    offset : int
        Where the pixel area starts, in bytes: rows of ``width`` pixels back to
        back, channels interleaved.
    width : int
        The output's width in pixels.
    pixels : ndarray
        (h, w, channels) the tile's pixels, of the output's dtype.
    row0, col0 : int
        The tile's first output row and column.
    """
    pixel_bytes = pixels.shape[2] * pixels.dtype.itemsize
    row_bytes = width * pixel_bytes
    start = offset + row0 * row_bytes + col0 * pixel_bytes
    if pixels.shape[1] == width:
        chunks = [(start, pixels)]
    else:
        chunks = [(start + k * row_bytes, pixels[k]) for k in range(pixels.shape[0])]
    for offset, chunk in chunks:
        data = memoryview(np.ascontiguousarray(chunk).reshape(-1).view(np.uint8))
        while data:
            written = os.pwrite(descriptor, data, offset)
            data, offset = data[written:], offset + written


def plan_tiles(height: int, width: int, step: int) -> list[tuple]:
    """Row bands (split into column tiles when wide): a multiple of ``step`` rows, about TILE_PIXELS each.

    A band has at most height / MIN_BANDS rows (rounded up to a multiple of
    ``step``), so that there are about MIN_BANDS bands at least and threads
    share the work evenly, and at most MAX_TILE rows. The plan does not depend
    on the thread count: with a grid step that is not a power of two, the
    interpolated coordinates depend (in the last bit) on where the bands
    start, and the output bytes must not depend on ``--cores``.

    Returns
    -------
    list of tuple of int
        ``(row0, row1, col0, col1)`` of each tile, band by band from the top,
        each band split by :func:`~pixelflow.maps.inverse_map.column_ranges`.
    """
    column_tiles = column_ranges(width)
    rows = max(step, TILE_PIXELS // (column_tiles[0][1] - column_tiles[0][0]) // step * step)
    rows = min(rows, max(step, math.ceil(height / MIN_BANDS / step) * step), MAX_TILE // step * step)
    return [(r, min(r + rows, height), c0, c1) for r in range(0, height, rows) for c0, c1 in column_tiles]


def pad_poles(buffer: np.ndarray, pad: int, height: int, has_poles: bool) -> None:
    """Fill the ``pad`` rows above and below the image rows of ``buffer`` (image at rows pad..pad+height).

    On a map with both poles, the k-th row beyond a pole (k = 0 next to it)
    is the map's k-th row from that pole (clamped to the map), rolled by half
    the width: across a pole, a pixel's neighbour is the pixel half-way round
    the same row. Otherwise the first and last rows are repeated. Nothing is
    done when ``pad`` is 0.
    """
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


def output_channels(source_channels: int, alpha: bool, source_alpha: bool = True, grey_alpha: bool = False) -> int:
    """Channels of the output: the source's, or with an alpha channel when pixels may lack a source.

    With ``alpha``, RGB becomes RGBA, and so does an RGBA source
    (``source_alpha``: its fourth channel is its alpha, resampled and then
    cleared where there is no source); grey becomes grey and alpha where the
    format holds that (``grey_alpha``: GeoTIFF), else RGBA (PNG through
    OpenCV); other band counts get one band more.
    """
    if not alpha:
        return source_channels
    if source_channels == 1 and grey_alpha:
        return 2
    if source_channels in (1, 3) or (source_channels == 4 and source_alpha):
        return 4
    return source_channels + 1


def fill_alpha(target: np.ndarray, pixels: np.ndarray) -> None:
    """Put resampled ``pixels`` into ``target``, which has an alpha channel last, made opaque.

    Grey ``pixels`` fill all three colour channels of an RGBA ``target``. An
    RGBA source's own alpha (its fourth channel, in a 4-channel ``target``) is replaced.
    """
    channels = pixels.shape[2]
    if channels == 1 and target.shape[2] == 4:
        target[..., :3] = pixels
    else:
        colour = min(channels, target.shape[2] - 1)
        target[..., :colour] = pixels[..., :colour]
    target[..., -1] = np.iinfo(target.dtype).max if target.dtype.kind in "ui" else 1.0


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

    With ``in_place``, an uncompressed TIFF (see
    :func:`~pixelflow.io.tiff.uncompressed_layout`) whose pixel offset is a
    multiple of the sample size is not read at all but memory-mapped where it
    lies (read-only, no padding); otherwise an uncompressed TIFF is read
    straight into place and other files are decoded by
    :func:`pixelflow.io.images.read_image`, grey getting a channel axis and
    grey + alpha becoming RGBA. The size is checked against ``pixel_limit``
    from the header before anything is decoded.

    Parameters
    ----------
    path : str or path
        The map image.
    pad : int
        Rows to leave above and below the map (:func:`pad_poles`).
    pixel_limit : int
        Largest pixel count (``reprojection.pixel_limit``).
    in_place : bool
        Memory-map an uncompressed TIFF rather than read it.

    Returns
    -------
    array : ndarray
        uint8 or uint16 pixels in native byte order.
    mapped : bool
        True when ``array`` is a memory map of the file, without pad rows.

    Raises
    ------
    ImageError
        Naming the file: one that cannot be read, over ``pixel_limit``, not 8-
        or 16-bit, or with truncated pixel data.
    """

    width, height = image_size(path)
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
    if image is None and offset + height * width * channels * dtype.itemsize > os.path.getsize(path):
        raise ImageError(f"{path}: pixel data is truncated")
    if image is None and in_place and offset % np.dtype(dtype).itemsize == 0:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(height, width, channels)), True
    buffer = np.empty((height + 2 * pad, width, channels), np.dtype(dtype).newbyteorder("="))
    if image is None:
        with open(path, "rb") as file:
            file.seek(offset)
            view = memoryview(buffer[pad : pad + height].reshape(-1).view(np.uint8))
            if file.readinto(view) != view.nbytes:
                raise ImageError(f"{path}: pixel data is truncated")
    else:
        buffer[pad : pad + height] = image
    return buffer, False


def reproject_file(
    source_path,
    output_path,
    geometry_spec: dict,
    projection: dict,
    *,
    grid: dict | None = None,
    interpolation: str = "bilinear",
    threshold: float = 0.125,
    grid_step: int = 8,
    threads: int = 1,
    pixel_limit: int = 1 << 30,
    compression: int | str | None = None,
    cog: bool = False,
    png_strategy: str = "huffman_only",
    png_filter: str = "paeth",
    pixels_per_thread: int = projections.PIXELS_PER_THREAD,
    inverse_path=None,
    log=None,
    progress=None,
) -> dict:
    """Reproject the map at ``source_path`` to ``output_path`` (.png or .tif), written atomically.

    Parameters
    ----------
    source_path, output_path : path
        The source map and the output image; the output's suffix (.png, .tif
        or .tiff) chooses its format. A .tif output is a GeoTIFF with its
        coordinate system and transform embedded (:func:`pixelflow.io.geotiff.write_geotiff`).
    geometry_spec : dict
        Where the source's pixels lie. For a plain image, its config entry
        without ``path`` (:func:`pixelflow.maps.georef.source_geometry`); for a
        georeferenced file, ``crs`` (WKT) and ``transform`` (GDAL order) as
        planning read them from the file (:func:`pixelflow.maps.georef.raster_geometry`),
        and optionally ``nodata`` (overriding the file's).
    projection : dict
        The output projection's config entry. With ``kind``: its parameters,
        and ``width`` (optionally ``height``) or ``scale`` of the source width
        (:func:`pixelflow.maps.projections.output_size`).
    grid : dict, optional
        The output grid of a projection given by ``crs``, as planning computed
        it (:func:`pixelflow.maps.crs.target_grid`): ``crs`` (WKT),
        ``transform``, ``width`` and ``height``. Also taken for a preset when given.
    interpolation, threshold, grid_step, pixel_limit, compression, png_strategy, png_filter
        As the ``reprojection`` keys of the config (``threshold`` is
        ``error_threshold``), with the same defaults; ``compression`` is the
        PNG level (0-9, default 3) for .png, a codec name (deflate, zstd, lzw,
        none) for .tif (default none, deflate for a COG).
    cog : bool
        Write a .tif output as a Cloud-Optimized GeoTIFF.
    threads, pixels_per_thread : int
        Upper bound of the threads rendering tiles: one per
        ``pixels_per_thread`` output pixels at most
        (:func:`~pixelflow.maps.projections.render_threads`).
    inverse_path : path, optional
        A cached inverse map (:mod:`pixelflow.maps.inverse_cache`) to take the
        coarse grid from; it must have been made for this source grid,
        projection, size, threshold and grid step.
    log : logging.Logger, optional
        Where to note the time of each step.
    progress : callable, optional
        First called as ``progress(0, total=n)`` with the number of output
        tiles (:func:`plan_tiles`), then with 1 as each is rendered.

    Returns
    -------
    dict
        Facts for the log and the georeferencing: ``width``, ``height``,
        ``channels``, ``transform``, ``crs`` (the output's coordinate system,
        WKT or PROJ string), ``nodata``, ``exact_pixels``, ``tiles`` and
        ``source`` (its width, height, channels and dtype).

    Raises
    ------
    ValueError
        For an output that is not .png or .tif, an unknown interpolation, a
        float or signed source written as PNG; with ``inverse_path``, for an error threshold of 0.
    ProjectionError
        For an unknown projection kind, or an output size that is not positive.
    ImageError
        Naming the file: a source that cannot be read, is over ``pixel_limit``
        or has an unsupported pixel type, or an output over ``pixel_limit``.
    GeometryError
        Naming the source, when its size or bounds do not fit its projection.
    InverseMapError
        When the cached inverse map cannot be read or was made for other values.
    WorkerError
        Naming the tile whose rendering failed.
    """

    output_path = Path(output_path)
    try:
        fmt = format_of_path(output_path)
    except ValueError:
        fmt = None
    if fmt not in ("png", "tiff"):
        raise ValueError(f"{output_path}: output must be .png or .tif")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}")
    if grid is None:
        projections.parameters(projection)
    if compression is None:
        compression = 3 if fmt == "png" else "deflate" if cog else "none"
    output_path.parent.mkdir(parents=True, exist_ok=True)
    pad = KERNEL_REACH.get(interpolation, 1) + 1  # average reads within its footprint, clamped at the poles
    limit_native_threads(1)  # each of the job's threads runs OpenCV on its own tile
    clock = time.perf_counter()
    valid = nodata = None
    # Bilinear and nearest reach one pixel at most: rows clamped at the poles
    # suffice, so an uncompressed TIFF can be used where it lies, unread.
    in_place = interpolation in ("nearest", "bilinear")
    if "crs" in geometry_spec:
        source, mapped, valid, nodata, geometry = load_georeferenced(
            source_path, geometry_spec, pad, pixel_limit, in_place
        )
    else:
        source, mapped = load_source(source_path, pad, pixel_limit, in_place)
    if mapped:
        pad = 0
    _note(log, "read %s: %s %s in %.3f s", source_path, source.shape, source.dtype, clock)
    source_height, source_width = source.shape[0] - 2 * pad, source.shape[1]
    if "crs" not in geometry_spec:
        geometry = source_geometry(geometry_spec, source_width, source_height, str(source_path))
    floating = source.dtype.kind == "f"
    if fmt == "png" and source.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{source_path}: {source.dtype} pixels cannot be written as PNG; use format tif or cog")
    if floating and nodata is None:
        nodata = math.nan
    if grid is not None:
        width, height, transform, target_crs = grid["width"], grid["height"], tuple(grid["transform"]), grid["crs"]
    else:
        width, height = projections.output_size(projection, source_width)
        transform, target_crs = projections.geotransform(projection, width, height), projections.proj_string(projection)
    if width * height > pixel_limit:
        raise ImageError(f"{output_path}: {width}x{height} pixels is over the limit of {pixel_limit}")
    locate = None
    if grid is not None or not geometry.geographic:
        from pixelflow.maps.crs import Locator

        locate = Locator(target_crs, geometry.crs or projections.SPHERE_LONLAT)
    mapping = Mapping(projection, transform, width, height, geometry, float(threshold), int(grid_step), locate)
    threads = projections.render_threads(threads, width, height, pixels_per_thread)
    pad_poles(source, pad, source_height, geometry.has_poles)
    if valid is not None:
        pad_poles(valid[..., None], pad, source_height, geometry.has_poles)
    partial = locate is not None or valid is not None or needs_alpha(projection, geometry)
    alpha = nodata is None and partial
    source_alpha = "crs" not in geometry_spec  # a plain image's fourth channel is its alpha
    channels = output_channels(source.shape[2], alpha, source_alpha, grey_alpha=fmt == "tiff")
    tiles = plan_tiles(height, width, grid_step)
    if progress is not None:
        progress(0, total=len(tiles))
    data_bytes = width * height * channels * np.dtype(source.dtype).itemsize

    def render(file, offset):
        clock = time.perf_counter()
        descriptor = os.open(file, os.O_WRONLY)
        try:
            renderer = TileRenderer(
                mapping, source, pad, descriptor, offset, channels, interpolation, alpha, inverse, valid, nodata
            )
            exact = render_tiles(renderer, tiles, threads, progress)
        finally:
            os.close(descriptor)
        _note(log, "rendered %d tiles with %d thread(s) in %.3f s", len(tiles), threads, clock)
        return exact

    inverse = None
    scratch_output = partial_name(output_path)  # raw pixels, before encoding
    alpha_band = channels > source.shape[2] or (source_alpha and channels == 4)
    in_place = fmt == "tiff" and compression == "none" and not cog and (channels in (1, 3) or alpha_band)
    try:
        if inverse_path is not None:  # checked before anything is written
            inverse = open_inverse_map(inverse_path, mapping, f"{source_path} -> {output_path}")
        if in_place:  # an uncompressed GeoTIFF: the tiles go straight into the file, GDAL adds the tags
            with atomic_file(output_path) as temporary:
                exact = render(temporary, create_tiff(temporary, height, width, channels, source.dtype))
                clock = time.perf_counter()
                georeference_tiff(temporary, target_crs, transform, nodata=nodata)
            _note(log, "georeferenced the TIFF in %.3f s", clock)
            return _facts(width, height, channels, transform, target_crs, nodata, exact, tiles, source, pad)
        with open(scratch_output, "wb") as file:
            file.truncate(data_bytes)
        exact = render(scratch_output, 0)
        clock = time.perf_counter()
        pixels = np.memmap(scratch_output, dtype=source.dtype, mode="r", shape=(height, width, channels))
        if fmt == "tiff":
            write_geotiff(
                output_path,
                pixels,
                target_crs,
                transform,
                nodata=nodata,
                alpha=alpha_band,
                compression=compression,
                cog=cog,
                threads=threads,
            )
        else:
            plane = np.asarray(pixels)[..., 0] if channels == 1 else np.asarray(pixels)
            write_image(output_path, plane, "png", compression, png_strategy, png_filter)
        del pixels
        _note(log, "wrote the %s in %.3f s", "COG" if cog else fmt.upper(), clock)
    finally:
        if inverse is not None:
            inverse.close()
        if os.path.exists(scratch_output):
            os.unlink(scratch_output)
    return _facts(width, height, channels, transform, target_crs, nodata, exact, tiles, source, pad)


def _facts(width, height, channels, transform, crs, nodata, exact, tiles, source, pad) -> dict:
    return {
        "width": width,
        "height": height,
        "channels": channels,
        "transform": transform,
        "crs": crs,
        "nodata": nodata,
        "exact_pixels": exact,
        "tiles": len(tiles),
        "source": (source.shape[1], source.shape[0] - 2 * pad, source.shape[2], str(source.dtype)),
    }


def load_georeferenced(path, spec: dict, pad: int, pixel_limit: int, in_place: bool = False) -> tuple:
    """Read a georeferenced source into a padded array, with its valid pixels and nodata value.

    A grey or RGB 8- or 16-bit file without nodata, mask or alpha that is an
    uncompressed TIFF goes through :func:`load_source` (memory-mapped with
    ``in_place``, else read straight into place); any other is read by GDAL
    (:func:`pixelflow.io.geotiff.read_raster`).

    Parameters
    ----------
    path : str or path
        The raster file.
    spec : dict
        ``crs`` and ``transform`` (as planning read them), optionally ``nodata`` overriding the file's.
    pad : int
        Rows to leave above and below the map (:func:`pad_poles`).
    pixel_limit : int
        Largest pixel count (``reprojection.pixel_limit``), checked from the header.
    in_place : bool
        Memory-map an uncompressed TIFF rather than read it.

    Returns
    -------
    source : ndarray
        (rows + 2 pad, columns, bands) pixels of the file's type (float64 read as float32).
    mapped : bool
        True when ``source`` is a memory map of the file, without pad rows.
    valid : ndarray or None
        (rows + 2 pad, columns) bool, or None when every pixel holds data.
    nodata : float or None
        The nodata value of the source (given, or the file's).
    geometry : SourceGeometry

    Raises
    ------
    ImageError
        Naming the file, when GDAL cannot read it or it is over the limit.
    GeometryError
        Naming the file, for a grid the maps cannot use (:func:`pixelflow.maps.georef.raster_geometry`).
    """
    info = raster_info(path)
    if info.width * info.height > pixel_limit:
        raise ImageError(
            f"{path}: {info.width}x{info.height} pixels is over the limit of {pixel_limit} (reprojection.pixel_limit)"
        )
    geometry = raster_geometry(info.width, info.height, spec["transform"], spec["crs"], str(path))
    nodata = spec.get("nodata", info.nodata)
    plain = nodata is None and not info.alpha and not info.mask and info.count in (1, 3)
    if plain and info.dtype in ("uint8", "uint16") and uncompressed_layout(path) is not None:
        buffer, mapped = load_source(path, pad, pixel_limit, in_place)
        return buffer, mapped, None, None, geometry
    pixels, valid = read_raster(path, nodata=nodata, info=info)
    if pixels.dtype == np.float64:
        pixels = pixels.astype(np.float32)
    buffer = np.empty((info.height + 2 * pad, info.width, pixels.shape[2]), pixels.dtype)
    buffer[pad : pad + info.height] = pixels
    padded = None
    if valid is not None:
        padded = np.zeros((info.height + 2 * pad, info.width), bool)
        padded[pad : pad + info.height] = valid
    return buffer, False, padded, None if nodata is None else float(nodata), geometry


def open_inverse_map(path, mapping: Mapping, needed_by: str) -> InverseMapFile:
    """Open the cached inverse map at ``path`` and check that it was made for ``mapping``.

    Parameters
    ----------
    path : str or path
        The cache file.
    mapping : Mapping
        The output's mapping.
    needed_by : str
        What needs the file, for error messages.

    Returns
    -------
    InverseMapFile
        Open; the caller closes it.

    Raises
    ------
    ValueError
        If the mapping's error threshold is 0 or less.
    InverseMapError
        If the file cannot be read or was made for other values.
    """
    if mapping.threshold <= 0:
        raise ValueError(f"{path}: an inverse map is not used with error threshold 0 (every pixel is exact)")
    geometry = mapping.geometry
    source = {"kind": geometry.kind, "width": geometry.width, "height": geometry.height, "bounds": geometry.bounds}
    spec = inverse_spec(mapping.projection, mapping.width, mapping.height, source, mapping.threshold, mapping.grid_step)
    inverse = InverseMapFile(path)
    try:
        inverse.check(spec, needed_by)
    except BaseException:
        inverse.close()
        raise
    return inverse


def _note(log, message, *args):
    """Log a message whose last argument is a start time, turned into the seconds since."""
    if log is not None:
        log.info(message, *args[:-1], time.perf_counter() - args[-1])


def describe_tile(tile) -> str:
    """Words for a tile ``(row0, row1, col0, col1)`` in error messages: its output rows and columns."""
    row0, row1, col0, col1 = tile
    return f"output rows {row0}-{row1 - 1}, columns {col0}-{col1 - 1}"
