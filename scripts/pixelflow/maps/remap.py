"""OpenCV remap for sources of any size.

``cv2.remap`` refuses sources of 32767 pixels or more on a side: its
fixed-point maps hold 16-bit coordinates. The maps are therefore made here
the way ``cv2.convertMaps`` makes them (integer pixel, 1/32-pixel fraction),
in 64-bit integers, and for a large source each tile is resampled from a
small image of just the source pixels it reads:

- its footprint (the bounding box of its pixels, widened by the kernel's
  reach) when that fits: a view of the source, or columns taken round the
  antimeridian;
- otherwise (a tile that reads all longitudes, next to a pole) each output
  pixel's own block of 2·reach × 2·reach source pixels, blocks side by side.

Only the integer parts move, so OpenCV's interpolation weights are the same:
the result equals remap on the whole source.
"""

import cv2
import numpy as np

REMAP_LIMIT = 32767  # remap's largest source side, exclusive
INVALID = -16000.0  # a map coordinate outside any source (fits remap's int16 maps)
# OpenCV's kernels by their names in the config, and how many pixels each reaches from its centre.
METHODS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}
KERNEL_REACH = {"nearest": 1, "bilinear": 1, "cubic": 2, "lanczos": 4}
BLOCK_PIXELS = 1 << 16  # output pixels per remap call when gathering blocks
INTER_BITS = 5  # OpenCV's fixed-point fraction: 1/32 pixel


def fixed_point_maps(coords: np.ndarray, nearest: bool) -> tuple:
    """``(column, row, fraction)`` as ``cv2.convertMaps(coords, None, CV_16SC2)`` computes them, in int64.

    Coordinates are rounded to the nearest 1/32 pixel and split into the
    whole pixel below and the fraction; with ``nearest``, rounded to the nearest pixel.

    Parameters
    ----------
    coords : ndarray
        (h, w, 2) float32 source (x, y).
    nearest : bool
        Nearest-neighbour maps, without fractions (``nninterpolation``).

    Returns
    -------
    column, row : ndarray
        (h, w) int64 source pixels.
    fraction : ndarray or None
        (h, w) uint16 interpolation-table index, ``32 * row fraction + column
        fraction`` in 1/32 pixel; None for nearest.
    """
    if nearest:
        return np.rint(coords[..., 0]).astype(np.int64), np.rint(coords[..., 1]).astype(np.int64), None
    scaled = np.rint(coords * np.float32(1 << INTER_BITS)).astype(np.int64)
    column, row = scaled[..., 0], scaled[..., 1]
    mask = (1 << INTER_BITS) - 1
    fraction = ((row & mask) << INTER_BITS | (column & mask)).astype(np.uint16)
    return column >> INTER_BITS, row >> INTER_BITS, fraction


def remap(source, coords, method: int, border: int, reach: int, nearest: bool, invalid: float, dst=None):
    """``cv2.remap`` of ``source`` (rows, columns, channels) at float32 ``coords`` (h, w, 2: x, y).

    A source under :data:`REMAP_LIMIT` pixels a side goes straight to
    ``cv2.remap``; a larger one is resampled as the module docstring describes.

    Parameters
    ----------
    source : ndarray
        (rows, columns, channels) pixels.
    coords : ndarray
        (h, w, 2) float32 source (x, y) of every output pixel, pixel centres at integers.
    method : int
        OpenCV interpolation flag (``cv2.INTER_*``).
    border : int
        ``cv2.BORDER_WRAP`` (the source wraps in longitude) or ``cv2.BORDER_REPLICATE``.
    reach : int
        How far the kernel reads past the pixel below a coordinate
        (:data:`KERNEL_REACH`).
    nearest : bool
        Whether ``method`` is nearest-neighbour.
    invalid : float
        Coordinates whose x is at most ``invalid / 2`` read nothing that matters (the caller masks them).
    dst : ndarray, optional
        (h, w, channels) array of ``source``'s dtype to write into.

    Returns
    -------
    ndarray
        (h, w, channels) pixels of ``source``'s dtype: ``dst`` when given.
    """
    squeeze = source.shape[2] == 1
    if max(source.shape[:2]) < REMAP_LIMIT:
        map1, map2 = cv2.convertMaps(coords, None, cv2.CV_16SC2, nninterpolation=nearest)
        return _remap(source, map1, map2, method, border, dst, squeeze)
    column, row, fraction = fixed_point_maps(coords, nearest)
    unused = coords[..., 0] <= invalid / 2
    wraps = border == cv2.BORDER_WRAP
    window = _footprint(source, column, row, unused, reach, wraps)
    if window is not None:
        return _remap(window[0], window[1], fraction, method, cv2.BORDER_REPLICATE, dst, squeeze)
    out = dst if dst is not None else np.empty(coords.shape[:2] + source.shape[2:], source.dtype)
    height, width = coords.shape[:2]
    per_side = (REMAP_LIMIT - 1) // (2 * reach)
    columns = min(width, per_side)
    rows = max(1, min(height, per_side, BLOCK_PIXELS // columns))
    for row0 in range(0, height, rows):
        for col0 in range(0, width, columns):
            part = np.s_[row0 : row0 + rows, col0 : col0 + columns]
            blocks, local = _blocks(source, column[part], row[part], unused[part], reach, wraps)
            part_fraction = None if fraction is None else fraction[part]
            out[part] = _remap(blocks, local, part_fraction, method, cv2.BORDER_REPLICATE, None, squeeze)
    return out


def _remap(source, map1, map2, method, border, dst, squeeze):
    if dst is not None:
        cv2.remap(source, map1, map2, method, dst=dst[..., 0] if squeeze else dst, borderMode=border)
        return dst
    pixels = cv2.remap(source, map1, map2, method, borderMode=border)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _footprint(source, column, row, unused, reach: int, wraps: bool):
    """``(pixels, map1)``: the source pixels the maps read, and the maps moved onto them; None if too large."""
    height, width = source.shape[:2]
    if unused.all():
        return source[:1, :1], np.zeros(column.shape + (2,), np.int16)
    used_column, used_row = column[~unused], row[~unused]
    x0, x1 = int(used_column.min()) - reach, int(used_column.max()) + reach + 1
    y0, y1 = max(int(used_row.min()) - reach, 0), min(int(used_row.max()) + reach + 1, height)
    if not wraps:
        x0, x1 = max(x0, 0), min(x1, width)
    if x1 - x0 >= REMAP_LIMIT or y1 - y0 >= REMAP_LIMIT:
        return None
    rows = source[y0:y1]
    pixels = rows[:, x0:x1] if 0 <= x0 and x1 <= width else np.take(rows, np.arange(x0, x1) % width, axis=1)
    local = np.stack([column - x0, row - y0], axis=-1)
    local[unused] = 0
    return pixels, local.astype(np.int16)


def _blocks(source, column, row, unused, reach: int, wraps: bool):
    """``(pixels, map1)``: each pixel's 2·reach square of source pixels side by side, and maps onto them."""
    height, width = source.shape[:2]
    side = 2 * reach
    offsets = np.arange(side) - (reach - 1)
    columns = column[..., None] + offsets
    columns = columns % width if wraps else np.clip(columns, 0, width - 1)
    rows = np.clip(row[..., None] + offsets, 0, height - 1)
    columns[unused] = 0
    rows[unused] = 0
    count_y, count_x = column.shape
    blocks = source[rows[..., :, None], columns[..., None, :]]  # (h, w, side, side, channels)
    blocks = blocks.transpose(0, 2, 1, 3, 4).reshape(count_y * side, count_x * side, source.shape[2])
    local_x = np.broadcast_to(np.arange(count_x) * side + (reach - 1), column.shape)
    local_y = np.broadcast_to(np.arange(count_y)[:, None] * side + (reach - 1), column.shape)
    return blocks, np.stack([local_x, local_y], axis=-1).astype(np.int16)
