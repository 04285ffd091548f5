"""Tile libraries: images turned into square uint8 tiles, and the features they are matched by.

Every image is first brought to 8-bit grey or RGB (:func:`to_uint8_grey_or_rgb`):
16-bit and float pixels are rescaled, an alpha channel is composited over
white. A library mixing grey and colour images is stored in RGB.
"""

from typing import TypedDict

import cv2
import numpy as np
from skimage.color import rgb2lab

from pixelflow.atomic import atomic_file
from pixelflow.errors import ImageError
from pixelflow.io.images import read_image
from pixelflow.runner import parallel_map


class LibrarySpec(TypedDict):
    """What a library's tiles depend on besides its images (planning hands it to the job).

    Attributes
    ----------
    key : str
        The library's config key, for error messages.
    mode : str
        ``cut`` every image into tiles, or ``resize`` each to one tile.
    rotations : list of int
        Counter-clockwise degrees, multiples of 90 (:func:`orient`).
    flip : bool
        Add the mirror image of every oriented tile.
    max_tiles : int or None
        Keep at most this many tiles, evenly spaced; None keeps all.
    """

    key: str
    mode: str
    rotations: list[int]
    flip: bool
    max_tiles: int | None


FEATURE_CELLS = 8  # features are stored pooled to 8x8 cells; grids 1, 2, 4 and 8 derive from them


def to_uint8(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Pixels as uint8: uint16 divided by 257, bool to 0/255, float [0, 1] scaled by 255.

    Divisions and scaling round to the nearest level; floats are clipped to
    [0, 1] first. A uint8 ``image`` is returned as is.

    Parameters
    ----------
    image : ndarray
        Any shape.
    name : str
        Names the image in errors.

    Returns
    -------
    ndarray
        uint8, of ``image``'s shape.

    Raises
    ------
    ImageError
        Naming ``name``, for another dtype (signed integers, for instance).
    """
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
    """An 8-bit 2-D grey or (h, w, 3) RGB image; alpha is composited over white.

    Parameters
    ----------
    image : array-like
        (h, w) grey, or (h, w, c) with c 1 (grey), 2 (grey and alpha), 3 (RGB)
        or 4 (RGBA), of a dtype :func:`to_uint8` takes.
    name : str
        Names the image in errors.

    Returns
    -------
    ndarray
        (h, w) or (h, w, 3) uint8.

    Raises
    ------
    ImageError
        Naming ``name``, for another shape or dtype.
    """
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
    """Non-overlapping ``tile`` x ``tile`` pieces in row-major order; the remainder strips are dropped.

    Parameters
    ----------
    image : ndarray
        (h, w) or (h, w, c).
    tile : int
        The pieces' side in pixels.

    Returns
    -------
    ndarray
        (n, tile, tile) or (n, tile, tile, c), ``n = (h // tile) * (w // tile)``
        (0 for an image smaller than a tile).
    """
    rows, cols = image.shape[0] // tile, image.shape[1] // tile
    cropped = image[: rows * tile, : cols * tile]
    pieces = cropped.reshape(rows, tile, cols, tile, *image.shape[2:]).swapaxes(1, 2)
    return pieces.reshape(rows * cols, tile, tile, *image.shape[2:])


def resize_tile(image: np.ndarray, tile: int) -> np.ndarray:
    """The centred square of ``image`` resized to ``tile`` x ``tile`` (area averaging when shrinking).

    Parameters
    ----------
    image : ndarray
        (h, w) or (h, w, c); the square's side is ``min(h, w)``.
    tile : int
        The output's side in pixels; enlarging is bilinear.

    Returns
    -------
    ndarray
        (tile, tile) or (tile, tile, c), of ``image``'s dtype.
    """
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side])
    interpolation = cv2.INTER_AREA if side >= tile else cv2.INTER_LINEAR
    return cv2.resize(square, (tile, tile), interpolation=interpolation).reshape(tile, tile, *image.shape[2:])


def orient(tiles: np.ndarray, rotations=(0,), flip: bool = False) -> np.ndarray:
    """All tiles in each rotation (counter-clockwise degrees), then, with ``flip``, their mirror images.

    Parameters
    ----------
    tiles : ndarray
        (n, t, t) or (n, t, t, c).
    rotations : sequence of int
        Degrees, multiples of 90 (``degrees // 90`` quarter turns are made).
    flip : bool
        Also add every rotated tile mirrored left to right.

    Returns
    -------
    ndarray
        (n * len(rotations) * (2 if flip else 1), t, t[, c]), contiguous: all
        tiles in the first rotation, then in the next, ..., then the mirrored
        ones in the same order. No rotations give no tiles.
    """
    variants = [np.rot90(tiles, k=degrees // 90, axes=(1, 2)) for degrees in rotations]
    if flip:
        variants += [np.flip(variant, axis=2) for variant in variants]
    return np.ascontiguousarray(np.concatenate(variants)) if variants else tiles[:0]


def load_image_tiles(path, tile: int, mode: str) -> np.ndarray:
    """Tiles of one image file: ``mode`` "cut" (all tile-sized pieces) or "resize" (the image as one tile).

    Any ``mode`` but "resize" cuts.

    Returns
    -------
    ndarray
        (n, tile, tile) grey or (n, tile, tile, 3) RGB uint8 (:func:`to_uint8_grey_or_rgb`).

    Raises
    ------
    ImageError
        Naming the file, when it cannot be read or has no supported form.
    """
    image = to_uint8_grey_or_rgb(read_image(path), str(path))
    if mode == "resize":
        return resize_tile(image, tile)[None]
    return cut_tiles(image, tile)


def merge_tiles(parts: list[np.ndarray], tile: int) -> np.ndarray:
    """One uint8 array of tiles; grey (n, t, t) if every part is grey, else RGB (n, t, t, 3).

    Parameters
    ----------
    parts : list of ndarray
        (n_i, t, t) grey or (n_i, t, t, 3) RGB uint8 tiles, in order; grey parts
        of a mixed list are repeated into three channels.
    tile : int
        The tiles' side ``t``; used only for the (0, t, t) result of no parts.

    Returns
    -------
    ndarray
        The parts' tiles, concatenated in order.
    """
    if not parts:
        return np.zeros((0, tile, tile), np.uint8)
    if all(part.ndim == 3 for part in parts):
        return np.concatenate(parts)
    return np.concatenate([part if part.ndim == 4 else part[..., None].repeat(3, -1) for part in parts])


def evenly_spaced(count: int, keep: int | None) -> np.ndarray:
    """Indexes of at most ``keep`` of ``count`` items, spread evenly, in order.

    Returns
    -------
    ndarray
        int64: ``floor(i * count / keep)`` for i below ``keep``, or every index
        when ``keep`` is None or not below ``count``.
    """
    if keep is None or keep >= count:
        return np.arange(count)
    return np.floor(np.arange(keep) * (count / keep)).astype(np.int64)


def area_weights(size: int, cells: int) -> np.ndarray:
    """(cells, size) matrix averaging ``size`` pixels into ``cells`` equal spans (fractional overlaps weighted).

    Returns
    -------
    ndarray
        (cells, size) float64; each row sums to 1.
    """
    edges = np.arange(cells + 1) * (size / cells)
    starts, stops = edges[:-1, None], edges[1:, None]
    pixels = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(stops, pixels + 1) - np.maximum(starts, pixels), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def pooled_features(tiles: np.ndarray, space: str = "lab", cells: int = FEATURE_CELLS, batch: int = 4096) -> np.ndarray:
    """(n, cells, cells, 3) float32 area means of each tile in CIELAB (D65) or RGB on [0, 255].

    Pixels are converted before averaging, so a Lab cell mean is the mean of
    the pixels' Lab values. Grey tiles count as RGB with equal channels.

    Parameters
    ----------
    tiles : ndarray
        (n, t, t) grey or (n, t, t, 3) RGB uint8.
    space : str
        ``lab`` (L in [0, 100], a and b) or ``rgb``.
    cells : int
        Cells per side.
    batch : int
        Tiles converted at a time, which bounds the memory used.

    Returns
    -------
    ndarray
        (n, cells, cells, 3) float32.

    Raises
    ------
    ValueError
        For another ``space``, naming it.
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

    Parameters
    ----------
    pooled : ndarray
        (n, cells, cells, 3) (:func:`pooled_features`).
    grid : int
        Cells per side of the result; each is the mean of ``cells // grid``
        squared pooled cells.
    lightness_only : bool
        Keep only the first channel.

    Returns
    -------
    ndarray
        (n, grid * grid * 3), or (n, grid * grid) with ``lightness_only``,
        float32; cells in row-major order, channels innermost.

    Raises
    ------
    ValueError
        If ``grid`` does not divide the pooled cells.
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

    Parameters
    ----------
    paths : iterable of str or path-like
        The images.
    tile : int
        The tiles' side in pixels.
    mode : str
        ``cut`` or ``resize`` (:func:`load_image_tiles`).
    rotations, flip
        As for :func:`orient`.
    max_tiles : int, optional
        Keep at most this many tiles (:func:`evenly_spaced`); None keeps all.
    processes : int
        Worker processes reading the images.

    Returns
    -------
    ndarray
        (n, tile, tile) grey if every image is grey, else (n, tile, tile, 3)
        RGB, uint8, contiguous.

    Raises
    ------
    WorkerError
        Naming the file that cannot be read or has no supported form.
    """
    items = [(str(path), tile, mode) for path in paths]
    parts = parallel_map(_load_item, items, processes, describe=_describe_item)
    tiles = orient(merge_tiles(parts, tile), rotations, flip)
    return np.ascontiguousarray(tiles[evenly_spaced(len(tiles), max_tiles)])


def save_library(path, tiles: np.ndarray) -> None:
    """Write tiles and their pooled (8x8 cells) Lab and RGB features to an .npz file, atomically.

    Parameters
    ----------
    path : str or path-like
        The file, holding the arrays ``tiles``, ``lab`` and ``rgb``.
    tiles : ndarray
        (n, t, t) grey or (n, t, t, 3) RGB uint8.
    """
    arrays = {"tiles": tiles, "lab": pooled_features(tiles, "lab"), "rgb": pooled_features(tiles, "rgb")}
    with atomic_file(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def load_library(path) -> tuple[np.ndarray, dict]:
    """(tiles, {"lab": ..., "rgb": ...}) from a library .npz file.

    Returns
    -------
    tiles : ndarray
        (n, t, t) grey or (n, t, t, 3) RGB uint8.
    pooled : dict
        ``lab`` and ``rgb``: the (n, 8, 8, 3) float32 pooled features (:func:`save_library`).
    """
    with np.load(path) as data:
        return data["tiles"], {"lab": data["lab"], "rgb": data["rgb"]}
