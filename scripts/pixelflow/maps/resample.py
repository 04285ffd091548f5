"""Resample one output tile from a source through the tile's coordinate map, nodata-aware.

:func:`resample` takes the tile's coordinate map (each output pixel's source
column and row, pixel centres at integers, NaN where there is no source) and
offers two things plain remap does not:

- **Interpolation over valid pixels only**, as GDAL's warper does it:
  nearest, bilinear, cubic and lanczos never blend nodata into valid pixels.
  The kernels are OpenCV's (through :func:`pixelflow.maps.remap.remap`, so
  sources of 32767 pixels or more a side work); near invalid pixels the
  result is a normalised convolution: the kernel applied to ``source * valid``
  divided by the kernel applied to ``valid``, with the same weights.
- **average**, area-weighted averaging for downsampling as ``gdalwarp -r
  average``: every output pixel is the mean of the valid source over its
  footprint, each source pixel weighted by the fraction of it the footprint
  covers, evaluated from summed-area tables at O(1) per output pixel.

Validity follows GDAL's warp kernel (``alg/gdalwarpkernel.cpp``):

- an output pixel is invalid when its source pixel (the one containing the
  coordinate, nearest-neighbour's pick) is invalid: GDAL's general warp case
  skips such pixels before resampling, for every kernel;
- otherwise bilinear, cubic and lanczos divide by the valid weight and call the
  pixel invalid when that weight is below :data:`WEIGHT_THRESHOLD` (GDAL's
  bilinear threshold; its lanczos one is 1e-6). The containing pixel carries
  a weight of at least 0.25 for bilinear, so the threshold only guards the
  signed cubic and lanczos kernels. GDAL's cubic falls back to renormalised
  bilinear when any of its 16 pixels is invalid; here cubic renormalises its own
  weights, as lanczos does in both.
- average: the output is valid when the valid area under the footprint is at
  least :data:`AREA_THRESHOLD` source pixels (GDAL: any positive weight; the
  margin keeps the summed-area tables' rounding out).

Output pixels whose kernels read no invalid pixel are exactly plain remap's
(a tile whose kernels read none costs a remap and a look at the validity of
the source window it reads); the others come from float32 kernels, rounded
half to even and clipped to the dtype's range for integer sources (cubic and
lanczos overshoot). Nearest-neighbour's pick, here and for the containing
pixel, is OpenCV's: a coordinate half-way between two pixels goes to the even
one, where GDAL takes the one after.
"""

import cv2
import numpy as np

from pixelflow.maps.remap import INTER_BITS, INVALID, KERNEL_REACH, METHODS, fixed_point_maps, remap

RESAMPLINGS = ("nearest", "bilinear", "cubic", "lanczos", "average")
WEIGHT_THRESHOLD = 1e-5  # the smallest valid kernel weight that makes an output pixel
AREA_THRESHOLD = 1e-6  # the smallest valid footprint area, in source pixels, that makes an output pixel
DTYPES = (np.uint8, np.uint16, np.int16, np.float32)

_CROP_COST = 4  # a window costs about this many times less per pixel than a looked-up kernel pixel
_RENORMALISE_PIXELS = 1 << 14  # output pixels renormalised per remap call
_BLOCKS_PER_ROW = 128  # kernel blocks side by side in the image a renormalising remap reads
_BLOCK_PIXELS = 1 << 16  # output pixels averaged per block, at most
_TABLE_PIXELS = 1 << 22  # source pixels in a block's summed-area tables, at most (unless one pixel needs more)


def resample(
    source: np.ndarray,
    coords: np.ndarray,
    interpolation: str,
    *,
    valid: np.ndarray | None = None,
    wraps: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample one output tile from ``source`` at ``coords``, over valid source pixels only.

    Parameters
    ----------
    source : ndarray
        (H, W, C) or (H, W) pixels: uint8, uint16, int16 or float32; float64
        is converted to float32. For a float source a pixel with NaN in any
        channel is invalid (found here, whatever ``valid`` says).
    coords : ndarray
        (h, w, 2) float32 source (column, row) of every output pixel, pixel
        centres at integers, NaN where there is no source. Coordinates outside
        [-0.5, W - 0.5] x [-0.5, H - 0.5] have no source either; with ``wraps``
        columns are periodic and only rows are checked.
    interpolation : str
        One of :data:`RESAMPLINGS`: an OpenCV kernel (nearest, bilinear,
        cubic, lanczos) renormalised over valid pixels, or ``average`` (area
        weighted, for downsampling).
    valid : ndarray, optional
        (H, W) bool: the source pixels that hold data. None: all of them
        (except NaN pixels of a float source).
    wraps : bool
        The source wraps around in longitude: column W is column 0 again.

    Returns
    -------
    pixels : ndarray
        (h, w, C) pixels of ``source``'s dtype (float32 for float64), (h, w)
        for a 2-D source. Invalid pixels hold 0 (NaN for float).
    valid_out : ndarray or None
        (h, w) bool, the output pixels that got a value; None when all did.

    Raises
    ------
    ValueError
        For an unknown interpolation, an unsupported dtype or mismatched shapes.

    Notes
    -----
    The kernels are OpenCV's, with ``cv2.BORDER_WRAP`` when ``wraps`` and
    ``cv2.BORDER_REPLICATE`` otherwise. Where no kernel of the tile reads an
    invalid pixel the pixels are exactly plain remap's. The module docstring
    states the validity rules and how they follow GDAL's warp kernel.

    ``average`` footprints are axis-aligned boxes in source pixels around each
    pixel's coordinate, half-sizes ``0.5 * (|dcol/dx| + |dcol/dy|)`` in columns
    (the same for rows) from finite differences of ``coords`` (one-sided at tile
    edges and next to NaN), at least half a pixel; with ``wraps`` a box
    crossing the seam reads both edges, and rows beyond the source are cut off.
    """
    if interpolation not in RESAMPLINGS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {', '.join(RESAMPLINGS)}")
    source = np.asarray(source)
    flat = source.ndim == 2
    if flat:
        source = source[..., None]
    if source.dtype == np.float64:
        source = source.astype(np.float32)
    if source.ndim != 3 or source.dtype not in DTYPES:
        raise ValueError(f"source must be (H, W, C) uint8, uint16, int16 or float32, not {source.shape} {source.dtype}")
    coords = np.asarray(coords, np.float32)
    if coords.ndim != 3 or coords.shape[2] != 2:
        raise ValueError(f"coords must be (h, w, 2), not {coords.shape}")
    if valid is not None:
        valid = np.asarray(valid, bool)
        if valid.shape != source.shape[:2]:
            raise ValueError(f"valid must be {source.shape[:2]}, not {valid.shape}")
    height, width, channels = source.shape
    inside = _inside(coords, height, width, wraps) if coords.size else np.zeros(coords.shape[:2], bool)
    if not inside.any():
        pixels, valid_out = _empty(coords.shape[:2], source), np.zeros(coords.shape[:2], bool)
    elif interpolation == "average":
        pixels, valid_out = _average(source, coords, valid, wraps, inside)
    else:
        pixels, valid_out = _interpolate(source, coords, interpolation, valid, wraps, inside)
    if valid_out is not None:
        if valid_out.all():
            valid_out = None
        else:
            pixels[~valid_out] = np.nan if source.dtype.kind == "f" else 0
    return (pixels[..., 0] if flat else pixels), valid_out


def _empty(shape: tuple, source: np.ndarray) -> np.ndarray:
    """An (h, w, C) tile of ``source``'s dtype holding the invalid value."""
    return np.full(shape + source.shape[2:], np.nan if source.dtype.kind == "f" else 0, source.dtype)


def _inside(coords: np.ndarray, height: int, width: int, wraps: bool) -> np.ndarray:
    """(h, w) bool: the coordinates that fall on the source (False for NaN; with ``wraps``, any finite column)."""
    top = float(np.finfo(np.float32).max)
    columns = (-top, top) if wraps else (-0.5, width - 0.5)
    rows = (-0.5, height - 0.5)
    return cv2.inRange(coords, (columns[0], rows[0]), (columns[1], rows[1])) != 0


def _working_coords(coords: np.ndarray, inside: np.ndarray, width: int, wraps: bool) -> tuple:
    """``(work, copied)``: ``coords`` as remap takes them, columns wrapped into the source, no-source pixels at
    ``INVALID``; and whether that is a copy (else ``coords`` itself, which needed no change).

    Wrapping subtracts whole multiples of the width, which float32 does exactly,
    so the kernels' weights do not change.
    """
    column = coords[..., 0]
    stray = inside & ((column < -0.5) | (column > width - 0.5)) if wraps else None
    if inside.all() and (stray is None or not stray.any()):
        return coords, False
    work = coords.copy()
    if stray is not None and stray.any():
        turns = np.floor((column[stray] + np.float32(0.5)) / np.float32(width))
        work[..., 0][stray] = column[stray] - turns * np.float32(width)
    work[~inside] = INVALID
    return work, True


# --------------------------------------------------------------------------------------------------
# Kernels


def _interpolate(source, coords, interpolation, valid, wraps, inside):
    """Nearest, bilinear, cubic or lanczos: plain remap, renormalised where a kernel reads an invalid pixel.

    Which pixels to renormalise is found with OpenCV on a window of the
    source's validity: the containing pixel by nearest-neighbour sampling, and
    whether a kernel reads an invalid pixel by bilinear sampling of the invalid
    pixels (at 65535 in 16 bits, which OpenCV weights in floating point: no
    weight of 1/1024 or more rounds away) dilated by ``reach - 1``: the
    pixel below a coordinate and the next one, so dilated, cover the kernel's
    2·reach pixels each way, and only the first when the fraction is 0, where
    the last kernel pixel has no weight. A float source's NaN spoils even a
    zero weight, so there the pixel below is dilated over the whole kernel
    (``reach - 1`` before it, ``reach`` after). The window's whole-pixel shifts are
    even, so nearest's rounding of halves to even picks the same pixels as on
    the source; a window that crosses the seam of an odd-width source, and one
    much larger than the pixels the kernels read, is looked up pixel by pixel.
    """
    height, width, channels = source.shape
    nearest = interpolation == "nearest"
    reach = KERNEL_REACH[interpolation]
    work, copied = _working_coords(coords, inside, width, wraps)
    border = cv2.BORDER_WRAP if wraps else cv2.BORDER_REPLICATE
    pixels = remap(source, work, METHODS[interpolation], border, reach, nearest, INVALID)
    if valid is None and source.dtype.kind != "f":
        return pixels, inside
    margin = reach + 1  # past the pixel below a coordinate: covers OpenCV's fixed-point rounding up
    window, first = _coordinate_window(coords, work, inside, margin, height, width, wraps)
    row0, row1, column0, column1 = window
    count = int(np.count_nonzero(inside))
    side = 1 if nearest else 2 * reach
    shifts_by_width = wraps and width % 2 and (column0 < 0 or column1 > width)
    offset = (0, 0)  # where the coordinates that find the pixels to renormalise start, in the source
    if (row1 - row0) * (column1 - column0) <= _CROP_COST * count * side * side and not shifts_by_width:
        ok = _valid_window(source, valid, row0, row1, column0, column1, wraps)
        if ok.all():
            return pixels, inside
        local = _local_coords(work, copied, inside, row0, column0, first, width, wraps)
        work, offset = local, (column0, row0)
        gate = _sample(ok.view(np.uint8), local, cv2.INTER_NEAREST).view(bool) & inside
        if nearest:
            return pixels, gate
        bad = (~ok).view(np.uint8)
        if source.dtype.kind == "f":  # NaN times a zero weight is NaN: every kernel pixel counts
            bad = cv2.dilate(bad, np.ones((side, side), np.uint8), anchor=(reach - 1, reach - 1))
        elif reach > 1:
            bad = cv2.dilate(bad, np.ones((side - 1, side - 1), np.uint8))
        redo = gate & (_sample(np.multiply(bad, 65535, dtype=np.uint16), local, cv2.INTER_LINEAR) > 0)
    else:
        gate, redo = _looked_up_validity(source, valid, wraps, work, inside, reach, nearest)
        if nearest:
            return pixels, gate
    redo = np.flatnonzero(redo)
    if redo.size:
        column, row, fraction = fixed_point_maps(work.reshape(-1, 2)[redo], False)
        first_row, first_column = row + offset[1] - (reach - 1), column + offset[0] - (reach - 1)
        values, weighted = _renormalised(source, valid, wraps, interpolation, first_row, first_column, fraction)
        pixels.reshape(-1, channels)[redo[weighted]] = values[weighted]
        gate.reshape(-1)[redo[~weighted]] = False
    return pixels, gate


def _coordinate_window(coords, work, inside, margin, height, width, wraps):
    """``((row0, row1, column0, column1), first)``: a source window holding every pixel within ``margin`` of a point.

    ``row0`` and ``column0`` are even. ``first`` is, with ``wraps``, each inside
    point's column ``floor(column) - margin`` (int64, in ``inside`` order),
    which places it in a window that crosses the seam; None otherwise.
    """
    low = np.fmin.reduce(np.fmin.reduce(coords, axis=0), axis=0)  # NaN left out; points off the source
    high = np.fmax.reduce(np.fmax.reduce(coords, axis=0), axis=0)  # only widen the window up to its edges
    row0 = int(np.floor(max(low[1], -0.5))) - margin
    row0 -= row0 % 2
    row1 = int(np.floor(min(high[1], height - 0.5))) + margin + 1
    if not wraps:
        column0 = int(np.floor(max(low[0], -0.5))) - margin
        column0 -= column0 % 2
        column1 = int(np.floor(min(high[0], width - 0.5))) + margin + 1
        return (row0, row1, column0, column1), None
    first = np.floor(work[..., 0][inside]).astype(np.int64) - margin
    column0, column1 = _column_span(first, 2 * margin + 1, width, True)
    return (row0, row1, column0 - column0 % 2, column1), first


def _local_coords(work, copied, inside, row0, column0, first, width, wraps):
    """``work`` moved onto the window that starts at (``row0``, ``column0``): whole-pixel shifts, exact in float32.

    ``work`` itself is moved when it is ``copied`` (ours to change).
    """
    shift = (float(column0), float(row0), 0.0, 0.0)
    local = cv2.subtract(work, shift, dst=work) if copied else cv2.subtract(work, shift)
    if wraps:  # points whose columns the window holds a turn later
        turns = _local_columns(first, column0, width, True) - (first - column0)
        local[..., 0][inside] += turns.astype(np.float32)
    if not inside.all():
        local[~inside] = INVALID
    return local


def _sample(image, local, method):
    """``image`` (rows, columns) remapped at ``local`` by ``method``: (h, w)."""
    return remap(image[..., None], local, method, cv2.BORDER_REPLICATE, 1, method == cv2.INTER_NEAREST, INVALID)[..., 0]


def _looked_up_validity(source, valid, wraps, work, inside, reach, nearest):
    """``(gate, redo)`` (h, w): the containing pixel is valid; and the kernel reads an invalid pixel.

    Pixel by pixel, for tiles that read a sparse part of a large window (downsampling).
    """
    where = np.flatnonzero(inside)
    points = work.reshape(-1, 2)[where]
    column, row, _ = fixed_point_maps(points, nearest)
    if nearest:
        ok = _valid_at(source, valid, wraps, row, column)
        gate = np.zeros(inside.shape, bool)
        gate.reshape(-1)[where] = ok
        return gate, None
    nearest_pixel = np.rint(points).astype(np.int64)
    ok = _valid_at(source, valid, wraps, nearest_pixel[:, 1], nearest_pixel[:, 0])
    full = ok.copy()
    for down in range(-reach + 1, reach + 1):
        for across in range(-reach + 1, reach + 1):
            full &= _valid_at(source, valid, wraps, row + down, column + across)
    gate = np.zeros(inside.shape, bool)
    gate.reshape(-1)[where] = ok
    redo = np.zeros(inside.shape, bool)
    redo.reshape(-1)[where] = ok & ~full
    return gate, redo


def _renormalised(source, valid, wraps, interpolation, first_row, first_column, fraction):
    """``(values, weighted)``: the kernel over valid pixels only, per point, and whether it had weight.

    Each point's kernel window is gathered from the source (invalid pixels
    zeroed, the validity as an extra plane), the windows laid side by side in
    one float32 image, and remapped with the point's own 1/32-pixel fraction:
    OpenCV's weights, applied to values and validity alike.
    """
    height, width, channels = source.shape
    reach = KERNEL_REACH[interpolation]
    side = 2 * reach
    offsets = np.arange(side)
    count = first_row.size
    values = np.empty((count, channels), source.dtype)
    weighted = np.empty(count, bool)
    mask = (1 << INTER_BITS) - 1
    for start in range(0, count, _RENORMALISE_PIXELS):
        part = slice(start, start + _RENORMALISE_PIXELS)
        rows = np.clip(first_row[part, None] + offsets, 0, height - 1)[:, :, None]
        columns = first_column[part, None] + offsets
        columns = (columns % width if wraps else np.clip(columns, 0, width - 1))[:, None, :]
        blocks = source[rows, columns]  # (n, side, side, channels)
        ok = valid[rows, columns] if valid is not None else np.ones(blocks.shape[:3], bool)
        if source.dtype.kind == "f":
            ok &= ~np.isnan(blocks).any(axis=-1)
        n = blocks.shape[0]
        block_rows = -(-n // _BLOCKS_PER_ROW)
        planes = np.zeros((block_rows * _BLOCKS_PER_ROW, side, side, channels + 1), np.float32)
        np.copyto(planes[:n, ..., :channels], blocks, where=ok[..., None])
        planes[:n, ..., channels] = ok
        image = planes.reshape(block_rows, _BLOCKS_PER_ROW, side, side, channels + 1)
        image = image.transpose(0, 2, 1, 3, 4).reshape(block_rows * side, _BLOCKS_PER_ROW * side, channels + 1)
        index = np.arange(block_rows * _BLOCKS_PER_ROW)
        step = np.zeros(index.size, np.int64)
        step[:n] = fraction[part]
        x = (index % _BLOCKS_PER_ROW) * side + (reach - 1) + (step & mask) / (1 << INTER_BITS)
        y = (index // _BLOCKS_PER_ROW) * side + (reach - 1) + (step >> INTER_BITS) / (1 << INTER_BITS)
        local = np.stack([x, y], axis=-1).astype(np.float32).reshape(block_rows, _BLOCKS_PER_ROW, 2)
        sums = np.concatenate(
            [
                remap(
                    np.ascontiguousarray(image[..., first : first + 4]),
                    local,
                    METHODS[interpolation],
                    cv2.BORDER_REPLICATE,
                    reach,
                    False,
                    INVALID,
                )
                for first in range(0, channels + 1, 4)  # OpenCV's lanczos takes 4 channels at most
            ],
            axis=-1,
        ).reshape(-1, channels + 1)[:n]
        weight = sums[:, channels]
        has_weight = weight >= WEIGHT_THRESHOLD
        weighted[part] = has_weight
        values[part] = _to_dtype(sums[:, :channels] / np.where(has_weight, weight, 1)[:, None], source.dtype)
    return values, weighted


# --------------------------------------------------------------------------------------------------
# Average


def _average(source, coords, valid, wraps, inside):
    """Area-weighted mean of the valid source over each pixel's footprint, from summed-area tables.

    The tile is done in square blocks of output pixels, each from the tables of
    the source window its footprints cover; a block whose window is over
    :data:`_TABLE_PIXELS` is halved until it fits (or is one pixel).
    """
    height, width, channels = source.shape
    tile_height, tile_width = coords.shape[:2]
    half_column, half_row = _half_sizes(coords, width, wraps)
    pixels = _empty(coords.shape[:2], source)
    valid_out = np.zeros(coords.shape[:2], bool)
    side = max(1, int(np.sqrt(_BLOCK_PIXELS)))
    pending = [
        (row0, min(row0 + side, tile_height), column0, min(column0 + side, tile_width))
        for row0 in range(0, tile_height, side)
        for column0 in range(0, tile_width, side)
    ][::-1]
    while pending:
        row0, row1, column0, column1 = pending.pop()
        block = np.s_[row0:row1, column0:column1]
        chosen = inside[block]
        if not chosen.any():
            continue
        points = coords[block][chosen].astype(np.float64)
        centre_column = points[:, 0] + 0.5  # pixel edges at integers from here on
        reach_column = half_column[block][chosen]
        if wraps:
            centre_column %= width
            reach_column = np.minimum(reach_column, width / 2)
        left, right = centre_column - reach_column, centre_column + reach_column
        if not wraps:
            left, right = np.maximum(left, 0), np.minimum(right, width)
        reach_row = half_row[block][chosen]
        top = np.maximum(points[:, 1] + 0.5 - reach_row, 0)
        bottom = np.minimum(points[:, 1] + 0.5 + reach_row, height)
        first_column = np.floor(left).astype(np.int64)
        columns = np.maximum(np.ceil(right).astype(np.int64) - first_column, 1)
        window_left, window_right = _column_span(first_column, columns, width, wraps)
        window_top = int(np.floor(top.min()))
        window_bottom = max(int(np.ceil(bottom.max())), window_top + 1)
        if (window_bottom - window_top) * (window_right - window_left) > _TABLE_PIXELS and chosen.size > 1:
            if row1 - row0 >= column1 - column0:
                middle = (row0 + row1) // 2
                pending += [(middle, row1, column0, column1), (row0, middle, column0, column1)]
            else:
                middle = (column0 + column1) // 2
                pending += [(row0, row1, middle, column1), (row0, row1, column0, middle)]
            continue
        shift = _local_columns(first_column, window_left, width, wraps) - first_column
        box = (left + shift, right + shift, top - window_top, bottom - window_top)
        window = (window_top, window_bottom, window_left, window_right)
        sums, area = _box_sums(source, valid, wraps, box, window)
        has_area = area >= AREA_THRESHOLD
        valid_out[block][chosen] = has_area
        pixels[block][chosen] = _to_dtype(sums / np.where(has_area, area, 1)[:, None], source.dtype)
    return pixels, valid_out


def _half_sizes(coords: np.ndarray, width: int, wraps: bool) -> tuple:
    """(h, w) float32 half-sizes of each pixel's footprint in source columns and rows, at least 0.5.

    From the local Jacobian of the coordinate map: central differences of
    neighbouring coordinates, one-sided at the tile's edges and next to NaN,
    column steps taken modulo the width when the source wraps.
    """
    period = width if wraps else None
    half_column = np.abs(_derivative(coords[..., 0], 1, period))
    half_column += np.abs(_derivative(coords[..., 0], 0, period))
    half_row = np.abs(_derivative(coords[..., 1], 1, None))
    half_row += np.abs(_derivative(coords[..., 1], 0, None))
    for half in (half_column, half_row):
        half *= 0.5
        np.maximum(half, 0.5, out=half)
    return half_column, half_row


def _derivative(plane: np.ndarray, axis: int, period: float | None) -> np.ndarray:
    """Finite-difference derivative of ``plane`` along ``axis``: central, one-sided at edges and next to NaN, else 0."""

    def along(part):
        return (part,) if axis == 0 else (slice(None), part)

    derivative = np.zeros(plane.shape, np.float32)
    if plane.shape[axis] < 2:
        return derivative
    step = np.diff(plane, axis=axis)
    if period is not None:
        step -= np.float32(period) * np.rint(step / np.float32(period))
    inner = derivative[along(slice(1, -1))]
    np.add(step[along(slice(None, -1))], step[along(slice(1, None))], out=inner)
    inner *= 0.5
    derivative[along(0)] = step[along(0)]
    derivative[along(-1)] = step[along(-1)]
    missing = np.isnan(derivative)
    if missing.any():  # next to NaN: the step on the other side
        ahead = np.full(plane.shape, np.nan, np.float32)
        behind = np.full(plane.shape, np.nan, np.float32)
        ahead[along(slice(None, -1))] = step
        behind[along(slice(1, None))] = step
        ahead, behind = ahead[missing], behind[missing]
        derivative[missing] = np.where(np.isnan(ahead), behind, ahead)
        np.nan_to_num(derivative, copy=False, nan=0.0)
    return derivative


def _box_sums(source, valid, wraps, box, window):
    """``(sums, area)``: per box, the integral of the valid source (n, C) and the valid area (n,), float64.

    ``window`` is the source's (row0, row1, column0, column1) the boxes lie in,
    ``box`` their (left, right, top, bottom) in the window's own coordinates,
    pixel edges at integers. The integral of a piecewise-constant image up to a
    point is bilinear inside each pixel, so the summed-area table interpolated
    bilinearly at the four fractional corners gives the exact integral.
    """
    channels = source.shape[2]
    pixels = _window(source, *window, wraps)
    ok = _valid_window(source, valid, *window, wraps)
    rows, columns = ok.shape
    stride = columns + 1
    left, right, top, bottom = box
    corners = []  # per corner: its four table entries, weights across and down, sign
    for x, x_sign in ((right, 1), (left, -1)):
        column = np.clip(np.floor(x).astype(np.int64), 0, columns - 1)
        across = x - column
        for y, y_sign in ((bottom, 1), (top, -1)):
            row = np.clip(np.floor(y).astype(np.int64), 0, rows - 1)
            entry = row * stride + column
            entries = (entry, entry + 1, entry + stride, entry + stride + 1)
            corners.append((entries, across, y - row, x_sign * y_sign))
    buffers = [np.empty(left.shape, np.float64) for _ in range(4)]

    def integral(table: np.ndarray) -> np.ndarray:
        flat = table.reshape(-1)
        total = np.zeros(left.shape, np.float64)
        upper, right_of_upper, lower, right_of_lower = buffers
        for entries, across, down, sign in corners:
            for buffer, entry in zip(buffers, entries, strict=True):
                np.take(flat, entry, out=buffer, mode="clip")  # unbuffered; the entries are in range
            right_of_upper -= upper
            right_of_upper *= across
            upper += right_of_upper
            right_of_lower -= lower
            right_of_lower *= across
            lower += right_of_lower
            lower -= upper
            lower *= down
            upper += lower
            if sign > 0:
                total += upper
            else:
                total -= upper
        return total

    everywhere = ok.all()
    sums = np.empty((left.size, channels), np.float64)
    for channel in range(channels):
        plane = np.ascontiguousarray(pixels[..., channel])
        if not everywhere:
            plane = np.where(ok, plane, 0) if plane.dtype.kind == "f" else plane * ok
        sums[:, channel] = integral(cv2.integral(plane, sdepth=cv2.CV_64F))
    if everywhere:
        area = (right - left) * (bottom - top)
    else:
        area = integral(cv2.integral(ok.view(np.uint8), sdepth=cv2.CV_64F))
    return sums, area


# --------------------------------------------------------------------------------------------------
# Windows of the source


def _column_span(first: np.ndarray, side, width: int, wraps: bool) -> tuple:
    """``(column0, column1)``: the source columns that ranges ``first .. first + side - 1`` read, as a window.

    Without wrapping, the bounding range (columns past the edges repeat the
    edge). With wrapping, the shortest arc of the circle of columns that holds
    every range (the circle minus its largest unread gap), possibly crossing
    the seam; when every column is read, the whole circle plus the longest
    range, so that each range fits without wrapping inside the window. Window
    column ``k`` is source column ``(column0 + k) % width``.
    """
    if not wraps:
        return int(first.min()), int((first + side).max())
    longest = int(np.max(side))
    if longest >= width:
        return 0, width + longest - 1
    start = first % width
    ends = start + side
    edges = np.bincount(start, minlength=2 * width + 1) - np.bincount(ends, minlength=2 * width + 1)
    covered = np.cumsum(edges)[: 2 * width] > 0
    covered = covered[:width] | covered[width:]
    if covered.all():
        return 0, width + longest - 1
    read = np.flatnonzero(covered)
    gaps = np.diff(read) - 1
    around = read[0] + width - read[-1] - 1  # the gap across the seam
    if gaps.size == 0 or around >= gaps.max():
        return int(read[0]), int(read[-1]) + 1
    widest = int(np.argmax(gaps))
    return int(read[widest + 1]), int(read[widest]) + 1 + width


def _local_columns(first: np.ndarray, column0: int, width: int, wraps: bool) -> np.ndarray:
    """Where each range's first column lies in the window that starts at ``column0``."""
    return (first - column0) % width if wraps else first - column0


def _window(array: np.ndarray, row0: int, row1: int, column0: int, column1: int, wraps: bool) -> np.ndarray:
    """Rows ``row0:row1`` and columns ``column0:column1`` of ``array``: edges repeated, columns wrapped or not."""
    height, width = array.shape[:2]
    if 0 <= row0 and row1 <= height:
        part = array[row0:row1]
    else:
        part = np.take(array, np.clip(np.arange(row0, row1), 0, height - 1), axis=0)
    if 0 <= column0 and column1 <= width:
        return part[:, column0:column1]
    columns = np.arange(column0, column1)
    return np.take(part, columns % width if wraps else np.clip(columns, 0, width - 1), axis=1)


def _valid_window(source, valid, row0, row1, column0, column1, wraps) -> np.ndarray:
    """A contiguous (rows, columns) bool window of the source's validity: ``valid``, and not NaN."""
    if valid is not None:
        ok = np.array(_window(valid, row0, row1, column0, column1, wraps), bool, order="C")
    else:
        ok = np.ones((row1 - row0, column1 - column0), bool)
    if source.dtype.kind == "f":
        ok &= ~np.isnan(_window(source, row0, row1, column0, column1, wraps)).any(axis=-1)
    return ok


def _valid_at(source, valid, wraps, row, column) -> np.ndarray:
    """Whether source pixels (``row``, ``column``) hold data: rows clamped, columns wrapped or clamped."""
    height, width = source.shape[:2]
    row = np.clip(row, 0, height - 1)
    column = column % width if wraps else np.clip(column, 0, width - 1)
    ok = valid[row, column] if valid is not None else np.ones(row.shape, bool)
    if source.dtype.kind == "f":
        ok &= ~np.isnan(source[row, column]).any(axis=-1)
    return ok


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` as ``dtype``: integers rounded half to even and clipped to the dtype's range."""
    if np.dtype(dtype).kind == "f":
        return values.astype(dtype)
    limits = np.iinfo(dtype)
    return np.clip(np.rint(values), limits.min, limits.max).astype(dtype)
