"""Contact sheets: a grid of the first images of a dataset for a quick look."""

import math

import cv2
import numpy as np

from pixelflow.io.images import write_image
from pixelflow.io.sources import read_source
from pixelflow.runner import parallel_map


def to_display(image: np.ndarray) -> np.ndarray:
    """An 8-bit RGB view of any image: floats clipped to [0, 1], 16-bit scaled, alpha dropped.

    Parameters
    ----------
    image : ndarray
        (h, w) grey or (h, w, c) with c from 1 to 4 (2: grey and alpha).
        uint16 keeps its high byte; any dtype but uint8 and uint16 is taken as
        float: NaN becomes 0, the rest is clipped to [0, 1], scaled by 255 and rounded.

    Returns
    -------
    ndarray
        (h, w, 3) uint8, contiguous; grey is repeated into the three channels.
        It may share memory with a uint8 ``image``.
    """
    if image.dtype == np.uint8:
        display = image
    elif image.dtype == np.uint16:
        display = (image >> 8).astype(np.uint8)
    else:
        values = np.nan_to_num(image.astype(np.float32), nan=0.0)
        display = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    if display.ndim == 2:
        return np.repeat(display[:, :, None], 3, axis=2)
    if display.shape[2] == 1:
        return np.repeat(display, 3, axis=2)
    if display.shape[2] == 2:
        return np.repeat(display[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(display[:, :, :3])


def thumbnail(image: np.ndarray, cell: int) -> np.ndarray:
    """Scale an 8-bit RGB image to fit a ``cell`` x ``cell`` square, keeping its aspect.

    Parameters
    ----------
    image : ndarray
        (h, w, 3) uint8.
    cell : int
        The square's side in pixels.

    Returns
    -------
    ndarray
        (h', w', 3) uint8 whose longer side is ``cell`` (the shorter one rounded,
        at least 1); area averaging when shrinking, nearest neighbour when enlarging.
    """
    height, width = image.shape[:2]
    factor = cell / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_NEAREST
    return cv2.resize(image, size, interpolation=interpolation)


def contact_sheet(
    thumbnails: list[np.ndarray], cell: int, gap: int = 2, background: int = 24, columns: int | None = None
) -> np.ndarray:
    """Arrange thumbnails (each at most ``cell`` px) row by row in a near-square grid.

    Parameters
    ----------
    thumbnails : list of ndarray
        (h, w, 3) uint8, h and w at most ``cell``; each is centred in its cell.
    cell : int
        The cells' side in pixels.
    gap : int
        Pixels between cells and around the grid.
    background : int
        The grey level (0-255) of the gaps and empty cells.
    columns : int, optional
        Cells per row; by default ``ceil(sqrt(n))``.

    Returns
    -------
    ndarray
        (rows * (cell + gap) + gap, columns * (cell + gap) + gap, 3) uint8, with
        as many rows as needed.

    Raises
    ------
    ValueError
        If there are no thumbnails.
    """
    if not thumbnails:
        raise ValueError("a contact sheet needs at least one image")
    if columns is None:
        columns = math.ceil(math.sqrt(len(thumbnails)))
    rows = math.ceil(len(thumbnails) / columns)
    pitch = cell + gap
    sheet = np.full((rows * pitch + gap, columns * pitch + gap, 3), background, np.uint8)
    for position, small in enumerate(thumbnails):
        top = gap + (position // columns) * pitch + (cell - small.shape[0]) // 2
        left = gap + (position % columns) * pitch + (cell - small.shape[1]) // 2
        sheet[top : top + small.shape[0], left : left + small.shape[1]] = small
    return sheet


def _thumbnail_of(item) -> np.ndarray:
    path, cell = item
    return thumbnail(to_display(read_source(path)), cell)


def describe_item(item) -> str:
    """Words naming a montage image (the item: ``(path, cell)``) in error messages."""
    return str(item[0])


def write_montage(output, paths: list, cell: int, processes: int, columns: int | None = None) -> tuple:
    """Write a contact sheet of ``paths`` (in order) to ``output`` (PNG); return its shape.

    Parameters
    ----------
    output : str or path-like
        Written atomically as PNG (compression 3), whatever its suffix.
    paths : list of str or path-like
        The images, in the order they are laid out.
    cell : int
        Thumbnail cell side in pixels (:func:`contact_sheet`).
    processes : int
        Worker processes reading and shrinking the images.
    columns : int, optional
        Cells per row (:func:`contact_sheet`).

    Returns
    -------
    tuple of int
        The sheet's shape, ``(height, width, 3)``.

    Raises
    ------
    ValueError
        For ``cell`` below 1 or no paths.
    WorkerError
        Naming the image that cannot be read.
    """
    if cell <= 0:
        raise ValueError(f"montage cell size must be positive, got {cell}")
    smalls = parallel_map(_thumbnail_of, [(str(path), cell) for path in paths], processes, describe=describe_item)
    return _write_sheet(output, smalls, cell, columns)


def _write_sheet(output, smalls: list[np.ndarray], cell: int, columns: int | None) -> tuple:
    sheet = contact_sheet(smalls, cell, columns=columns)
    write_image(output, sheet, "png", compression=3)
    return sheet.shape


def write_montage_of_images(output, images, cell: int, columns: int | None = None) -> tuple:
    """Write a contact sheet of images given as arrays (in order) to ``output`` (PNG); return its shape.

    The same sheet as :func:`write_montage` draws from files holding these
    images, for a dataset read as arrays (a Zarr array's images); drawn in
    this process.

    Parameters
    ----------
    output : str or path-like
        Written atomically as PNG (compression 3).
    images : iterable of ndarray
        The images, (h, w) or (h, w, c), in the order they are laid out.
    cell : int
        Thumbnail cell side in pixels (:func:`contact_sheet`).
    columns : int, optional
        Cells per row (:func:`contact_sheet`).

    Returns
    -------
    tuple of int
        The sheet's shape, ``(height, width, 3)``.

    Raises
    ------
    ValueError
        For ``cell`` below 1 or no images.
    """
    if cell <= 0:
        raise ValueError(f"montage cell size must be positive, got {cell}")
    smalls = [thumbnail(to_display(np.asarray(image)), cell) for image in images]
    return _write_sheet(output, smalls, cell, columns)
