"""Contact sheets: a grid of the first images of a dataset for a quick look."""

import math

import cv2
import numpy as np

from pixelflow.io.images import read_image, write_image
from pixelflow.runner import parallel_map


def to_display(image: np.ndarray) -> np.ndarray:
    """An 8-bit RGB view of any image: floats clipped to [0, 1], 16-bit scaled, alpha dropped."""
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
    """Scale an 8-bit RGB image to fit a ``cell`` x ``cell`` square, keeping its aspect."""
    height, width = image.shape[:2]
    factor = cell / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_NEAREST
    return cv2.resize(image, size, interpolation=interpolation)


def contact_sheet(thumbnails: list[np.ndarray], cell: int, gap: int = 2, background: int = 24) -> np.ndarray:
    """Arrange thumbnails (each at most ``cell`` px) row by row in a near-square grid."""
    if not thumbnails:
        raise ValueError("a contact sheet needs at least one image")
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
    return thumbnail(to_display(read_image(path)), cell)


def describe_item(item) -> str:
    """Words naming a montage image in error messages."""
    return str(item[0])


def write_montage(output, paths: list, cell: int, processes: int) -> tuple:
    """Write a contact sheet of ``paths`` (in order) to ``output`` (PNG); return its shape."""
    if cell <= 0:
        raise ValueError(f"montage cell size must be positive, got {cell}")
    smalls = parallel_map(_thumbnail_of, [(str(path), cell) for path in paths], processes, describe=describe_item)
    sheet = contact_sheet(smalls, cell)
    write_image(output, sheet, "png", compression=3)
    return sheet.shape
