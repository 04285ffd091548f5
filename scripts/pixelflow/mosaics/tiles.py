"""Tile libraries: images turned into square uint8 tiles, and the features they are matched by.

Every image is first brought to 8-bit grey or RGB (:func:`to_uint8_grey_or_rgb`):
16-bit and float pixels are rescaled, an alpha channel is composited over
white. A library mixing grey and colour images is stored in RGB.
"""

import cv2
import numpy as np
from skimage.color import rgb2lab

from pixelflow.atomic import atomic_file
from pixelflow.errors import ImageError
from pixelflow.io.images import read_image
from pixelflow.runner import parallel_map

FEATURE_CELLS = 8  # features are stored pooled to 8x8 cells; grids 1, 2, 4 and 8 derive from them


def to_uint8(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Pixels as uint8: uint16 divided by 257, bool to 0/255, float [0, 1] scaled by 255."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ImageError(f"{name}: {image.dtype} pixels are not supported (use uint8, uint16 or float in [0, 1])")


def to_uint8_grey_or_rgb(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """An 8-bit 2-D grey or (h, w, 3) RGB image; alpha is composited over white."""
    image = to_uint8(np.asarray(image), name)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: shape {image.shape} is not a grey, grey+alpha, RGB or RGBA image")
    channels = image.shape[2]
    if channels in (2, 4):
        colour = image[..., :-1].astype(np.float32)
        alpha = image[..., -1:].astype(np.float32) / 255.0
        image = np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image[..., 0] if image.shape[2] == 1 else image


def cut_tiles(image: np.ndarray, tile: int) -> np.ndarray:
    """Non-overlapping ``tile`` x ``tile`` pieces in row-major order; the remainder strips are dropped."""
    rows, cols = image.shape[0] // tile, image.shape[1] // tile
    cropped = image[: rows * tile, : cols * tile]
    pieces = cropped.reshape(rows, tile, cols, tile, *image.shape[2:]).swapaxes(1, 2)
    return pieces.reshape(rows * cols, tile, tile, *image.shape[2:])


def resize_tile(image: np.ndarray, tile: int) -> np.ndarray:
    """The centred square of ``image`` resized to ``tile`` x ``tile`` (area averaging when shrinking)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side])
    interpolation = cv2.INTER_AREA if side >= tile else cv2.INTER_LINEAR
    return cv2.resize(square, (tile, tile), interpolation=interpolation).reshape(tile, tile, *image.shape[2:])


def orient(tiles: np.ndarray, rotations=(0,), flip: bool = False) -> np.ndarray:
    """All tiles in each rotation (counter-clockwise degrees), then, with ``flip``, their mirror images."""
    variants = [np.rot90(tiles, k=degrees // 90, axes=(1, 2)) for degrees in rotations]
    if flip:
        variants += [np.flip(variant, axis=2) for variant in variants]
    return np.ascontiguousarray(np.concatenate(variants)) if variants else tiles[:0]


def load_image_tiles(path, tile: int, mode: str) -> np.ndarray:
    """Tiles of one image file: ``mode`` "cut" (all tile-sized pieces) or "resize" (the image as one tile)."""
    image = to_uint8_grey_or_rgb(read_image(path), str(path))
    if mode == "resize":
        return resize_tile(image, tile)[None]
    return cut_tiles(image, tile)


def merge_tiles(parts: list[np.ndarray], tile: int) -> np.ndarray:
    """One uint8 array of tiles; grey (n, t, t) if every part is grey, else RGB (n, t, t, 3)."""
    if not parts:
        return np.zeros((0, tile, tile), np.uint8)
    if all(part.ndim == 3 for part in parts):
        return np.concatenate(parts)
    return np.concatenate([part if part.ndim == 4 else part[..., None].repeat(3, -1) for part in parts])


def evenly_spaced(count: int, keep: int | None) -> np.ndarray:
    """Indexes of at most ``keep`` of ``count`` items, spread evenly, in order."""
    if keep is None or keep >= count:
        return np.arange(count)
    return np.floor(np.arange(keep) * (count / keep)).astype(np.int64)


def area_weights(size: int, cells: int) -> np.ndarray:
    """(cells, size) matrix averaging ``size`` pixels into ``cells`` equal spans (fractional overlaps weighted)."""
    edges = np.arange(cells + 1) * (size / cells)
    starts, stops = edges[:-1, None], edges[1:, None]
    pixels = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(stops, pixels + 1) - np.maximum(starts, pixels), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def pooled_features(tiles: np.ndarray, space: str = "lab", cells: int = FEATURE_CELLS, batch: int = 4096) -> np.ndarray:
    """(n, cells, cells, 3) float32 area means of each tile in CIELAB (D65) or RGB on [0, 255].

    Pixels are converted before averaging, so a Lab cell mean is the mean of
    the pixels' Lab values. Grey tiles count as RGB with equal channels.
    """
    if space not in ("lab", "rgb"):
        raise ValueError(f"unknown feature space {space!r}; use 'lab' or 'rgb'")
    size = tiles.shape[1]
    weights = area_weights(size, cells)
    out = np.empty((len(tiles), cells, cells, 3), np.float32)
    for start in range(0, len(tiles), batch):
        part = tiles[start : start + batch]
        rgb = part if part.ndim == 4 else part[..., None].repeat(3, -1)
        values = rgb2lab(rgb.astype(np.float32) / 255.0) if space == "lab" else rgb.astype(np.float32)
        out[start : start + batch] = np.einsum("ij,njkc,lk->nilc", weights, values, weights, optimize=True)
    return out


def grid_features(pooled: np.ndarray, grid: int, lightness_only: bool = False) -> np.ndarray:
    """(n, grid*grid*channels) float32 feature vectors from pooled features; ``grid`` divides the pooled cells.

    ``lightness_only`` keeps the first channel (L, or R of equal RGB): for grey
    tiles matched to a grey target the other two carry nothing.
    """
    cells = pooled.shape[1]
    if cells % grid:
        raise ValueError(f"grid {grid} must divide the {cells} pooled cells")
    step = cells // grid
    coarse = pooled.reshape(len(pooled), grid, step, grid, step, 3).mean(axis=(2, 4))
    if lightness_only:
        coarse = coarse[..., :1]
    return np.ascontiguousarray(coarse.reshape(len(pooled), -1), dtype=np.float32)


def _load_item(item) -> np.ndarray:
    path, tile, mode = item
    return load_image_tiles(path, tile, mode)


def _describe_item(item) -> str:
    return str(item[0])


def build_library(paths, tile: int, mode: str, rotations=(0,), flip=False, max_tiles=None, processes=1) -> np.ndarray:
    """Tiles of all images in ``paths`` (in order), each image's pieces in every orientation.

    ``max_tiles`` keeps an evenly spaced subset of the oriented tiles.
    Unreadable images raise an error naming the file.
    """
    items = [(str(path), tile, mode) for path in paths]
    parts = parallel_map(_load_item, items, processes, describe=_describe_item)
    tiles = orient(merge_tiles(parts, tile), rotations, flip)
    return np.ascontiguousarray(tiles[evenly_spaced(len(tiles), max_tiles)])


def save_library(path, tiles: np.ndarray) -> None:
    """Write tiles and their pooled (8x8 cells) Lab and RGB features to an .npz file, atomically."""
    arrays = {"tiles": tiles, "lab": pooled_features(tiles, "lab"), "rgb": pooled_features(tiles, "rgb")}
    with atomic_file(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def load_library(path) -> tuple[np.ndarray, dict]:
    """(tiles, {"lab": ..., "rgb": ...}) from a library .npz file."""
    with np.load(path) as data:
        return data["tiles"], {"lab": data["lab"], "rgb": data["rgb"]}
