"""Tile libraries: images turned into uint8 tiles of one (height, width), and the features they are matched by.

Images are read as a viewer shows them (EXIF orientation applied, see
:func:`pixelflow.io.images.decode_image`) and brought to 8-bit grey or RGB
(:func:`to_uint8_grey_or_rgb`): 16-bit and float pixels are rescaled, an alpha
channel (RGBA, grey + alpha, palette with transparency) is composited over
white; palette and CMYK files arrive as RGB. A library mixing grey and colour
images is stored in RGB.

A library is ``cut`` (every image cut into tile-sized pieces) or ``fit`` (each
image made into one tile, :func:`fit_tile`). Every tile keeps its provenance:
the file it came from, the pixel offset of its piece or crop in that image, and
the rotation and mirroring that made it (:data:`PROVENANCE_COLUMNS`).
"""

import os
from typing import TypedDict

import cv2
import numpy as np
from skimage.color import rgb2lab

from pixelflow.atomic import atomic_file
from pixelflow.errors import ImageError
from pixelflow.io.sources import read_source
from pixelflow.runner import parallel_map


class LibrarySpec(TypedDict):
    """What a library's tiles depend on besides its images and tile shape (planning hands it to the job).

    Attributes
    ----------
    key : str
        The library's config key, for error messages.
    mode : str
        ``cut`` every image into tiles, or ``fit`` each into one tile.
    fit : str
        How ``fit`` makes an image one tile: ``crop`` or ``pad`` (:func:`fit_tile`).
    on_bad_image : str
        ``fail`` on the first unreadable image, or ``skip`` it and list it.
    rotations : list of int
        Counter-clockwise degrees, multiples of 90 (:func:`orient`); 90 and
        270 only for square tiles.
    flip : bool
        Add the mirror image of every oriented tile.
    max_tiles : int or None
        Keep at most this many tiles, evenly spaced; None keeps all.
    """

    key: str
    mode: str
    fit: str
    on_bad_image: str
    rotations: list[int]
    flip: bool
    max_tiles: int | None


class Library(TypedDict):
    """A tile library: the tiles, where each came from, and the files read or skipped.

    Attributes
    ----------
    tiles : ndarray
        (n, h, w) grey or (n, h, w, 3) RGB uint8, contiguous.
    provenance : dict of str to ndarray
        One (n,) array per :data:`PROVENANCE_COLUMNS` entry: ``source``
        (int64 index into ``files``), ``top`` and ``left`` (int64 pixel
        offset of the piece, or of the crop, in the image as a viewer shows
        it; 0 for a padded fit), ``rotation`` (int64 counter-clockwise
        degrees) and ``flip`` (bool, mirrored left to right after the
        rotation).
    files : list of str
        The files that were read, in the order given (a file too small for a
        cut tile stays listed and gives no tile).
    skipped : list of tuple of str
        ``(file, reason)`` of every unreadable file skipped (``on_bad_image`` skip).
    """

    tiles: np.ndarray
    provenance: dict[str, np.ndarray]
    files: list[str]
    skipped: list[tuple[str, str]]


class IndexedLibrary(Library):
    """A library as :func:`load_library` returns it: a :class:`Library` and its pooled features.

    Attributes
    ----------
    pooled : dict of str to ndarray
        ``lab`` and ``rgb``: (n, 8, 8, 3) float32 (:func:`pooled_features`).
    """

    pooled: dict[str, np.ndarray]


MODES = ("cut", "fit")
FITS = ("crop", "pad")
ON_BAD_IMAGE = ("fail", "skip")
PROVENANCE_COLUMNS = ("source", "top", "left", "rotation", "flip")
WHITE = 255  # the padding of a ``pad`` fit, and what alpha is composited over

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
        image = np.rint(colour * alpha + WHITE * (1.0 - alpha)).astype(np.uint8)
    return image[..., 0] if image.shape[2] == 1 else image


def tile_shape(tile) -> tuple[int, int]:
    """(height, width) of a tile size: an int for a square, or a (height, width) pair.

    Parameters
    ----------
    tile : int or sequence of two int
        The size; every side at least 1 pixel.

    Returns
    -------
    tuple of int
        (height, width).

    Raises
    ------
    ValueError
        For another form, or a side below 1.
    """
    if isinstance(tile, int | np.integer):
        shape = (int(tile), int(tile))
    else:
        try:
            height, width = tile
        except (TypeError, ValueError):
            raise ValueError(f"a tile size is an int or (height, width), not {tile!r}") from None
        if not all(isinstance(side, int | np.integer) for side in (height, width)):
            raise ValueError(f"a tile size is an int or (height, width) of ints, not {tile!r}")
        shape = (int(height), int(width))
    if min(shape) < 1:
        raise ValueError(f"tile sides must be at least 1 px, not {shape[0]}x{shape[1]} (height x width)")
    return shape


def cut_offsets(height: int, width: int, tile) -> tuple[np.ndarray, np.ndarray]:
    """(top, left) pixel offsets of the pieces :func:`cut_tiles` cuts from a ``height`` x ``width`` image.

    Returns
    -------
    top, left : ndarray
        int64, one per piece, in :func:`cut_tiles`' row-major order.
    """
    tile_height, tile_width = tile_shape(tile)
    rows, cols = height // tile_height, width // tile_width
    top = np.repeat(np.arange(rows, dtype=np.int64) * tile_height, cols)
    left = np.tile(np.arange(cols, dtype=np.int64) * tile_width, rows)
    return top, left


def cut_tiles(image: np.ndarray, tile) -> np.ndarray:
    """Non-overlapping tile-sized pieces in row-major order; the remainder strips are dropped.

    Parameters
    ----------
    image : ndarray
        (h, w) or (h, w, c).
    tile : int or (int, int)
        The pieces' (height, width) in pixels, or one side of a square (:func:`tile_shape`).

    Returns
    -------
    ndarray
        (n, th, tw) or (n, th, tw, c), ``n = (h // th) * (w // tw)`` (0 for an
        image smaller than a tile either way); piece i starts at
        :func:`cut_offsets`' i-th (top, left).
    """
    tile_height, tile_width = tile_shape(tile)
    rows, cols = image.shape[0] // tile_height, image.shape[1] // tile_width
    cropped = image[: rows * tile_height, : cols * tile_width]
    pieces = cropped.reshape(rows, tile_height, cols, tile_width, *image.shape[2:]).swapaxes(1, 2)
    return pieces.reshape(rows * cols, tile_height, tile_width, *image.shape[2:])


def _scaled(size: int, numerator: int, denominator: int) -> int:
    """``round(size * numerator / denominator)``, halves up, in integers (no float rounding)."""
    return (2 * size * numerator + denominator) // (2 * denominator)


def crop_box(height: int, width: int, tile) -> tuple[int, int, int, int]:
    """The largest centred region of a ``height`` x ``width`` image with the tile's aspect ratio.

    The side that does not fill the image is ``round(other side * tile aspect)``
    (halves up, at least 1 and at most the image's); the region starts at
    ``(image side - region side) // 2``, so an odd leftover puts the extra
    pixel after the region.

    Parameters
    ----------
    height, width : int
        The image's size.
    tile : int or (int, int)
        The tile's (height, width) (:func:`tile_shape`).

    Returns
    -------
    tuple of int
        (top, left, region height, region width).
    """
    tile_height, tile_width = tile_shape(tile)
    if width * tile_height >= height * tile_width:  # the image is at least as wide as the tile: full height
        crop_height, crop_width = height, min(width, max(1, _scaled(height, tile_width, tile_height)))
    else:
        crop_height, crop_width = min(height, max(1, _scaled(width, tile_height, tile_width))), width
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def pad_box(height: int, width: int, tile) -> tuple[int, int, int, int]:
    """Where a ``height`` x ``width`` image goes in a tile when fitted whole with its aspect ratio kept.

    The image fills the tile one way; the other side is ``round(side * scale)``
    (halves up, at least 1 and at most the tile's), centred with the odd
    pixel of padding after it.

    Parameters
    ----------
    height, width : int
        The image's size.
    tile : int or (int, int)
        The tile's (height, width) (:func:`tile_shape`).

    Returns
    -------
    tuple of int
        (top, left, height, width) of the resized image inside the tile.
    """
    tile_height, tile_width = tile_shape(tile)
    if width * tile_height >= height * tile_width:  # relatively wider than the tile: full tile width
        inner_height, inner_width = min(tile_height, max(1, _scaled(height, tile_width, width))), tile_width
    else:
        inner_height, inner_width = tile_height, min(tile_width, max(1, _scaled(width, tile_height, height)))
    return (tile_height - inner_height) // 2, (tile_width - inner_width) // 2, inner_height, inner_width


def _resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` resized to ``height`` x ``width``: area averaging when no side grows, else bilinear."""
    shrinking = image.shape[0] >= height and image.shape[1] >= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)
    return resized.reshape(height, width, *image.shape[2:])


def fit_tile(image: np.ndarray, tile, fit: str = "crop") -> np.ndarray:
    """``image`` made into one tile: its centred crop of the tile's aspect, or the whole image padded with white.

    Resizing averages areas (``cv2.INTER_AREA``) when no side grows, and is
    bilinear (``cv2.INTER_LINEAR``) otherwise.

    Parameters
    ----------
    image : ndarray
        (h, w) or (h, w, c); uint8 for ``pad`` (the padding is 255).
    tile : int or (int, int)
        The tile's (height, width) (:func:`tile_shape`).
    fit : str
        ``crop``: the region :func:`crop_box` gives, resized to the tile.
        ``pad``: the whole image resized into the tile keeping its aspect
        ratio (:func:`pad_box`), on white.

    Returns
    -------
    ndarray
        (th, tw) or (th, tw, c), of ``image``'s dtype.

    Raises
    ------
    ValueError
        For another ``fit``, naming it.
    """
    tile_height, tile_width = tile_shape(tile)
    height, width = image.shape[:2]
    if fit == "crop":
        top, left, crop_height, crop_width = crop_box(height, width, (tile_height, tile_width))
        return _resized(image[top : top + crop_height, left : left + crop_width], tile_height, tile_width)
    if fit == "pad":
        top, left, inner_height, inner_width = pad_box(height, width, (tile_height, tile_width))
        out = np.full((tile_height, tile_width, *image.shape[2:]), WHITE, image.dtype)
        out[top : top + inner_height, left : left + inner_width] = _resized(image, inner_height, inner_width)
        return out
    raise ValueError(f"unknown fit {fit!r}; use one of {', '.join(FITS)}")


def check_rotations(rotations, tile) -> None:
    """Check that ``rotations`` are multiples of 90 degrees, with 90 and 270 only for square tiles.

    Parameters
    ----------
    rotations : sequence of int
        Counter-clockwise degrees.
    tile : int or (int, int)
        The tiles' (height, width) (:func:`tile_shape`).

    Raises
    ------
    ValueError
        Naming the first rotation that is not a multiple of 90, or a quarter
        turn of non-square tiles with their shape.
    """
    tile_height, tile_width = tile_shape(tile)
    for degrees in rotations:
        if int(degrees) != degrees or degrees % 90:
            raise ValueError(f"rotation {degrees} is not a multiple of 90 degrees")
        if degrees % 180 and tile_height != tile_width:
            raise ValueError(
                f"rotation {degrees} turns {tile_height}x{tile_width} (height x width) tiles into "
                f"{tile_width}x{tile_height}; non-square tiles allow only 0 and 180"
            )


def orient(tiles: np.ndarray, rotations=(0,), flip: bool = False) -> np.ndarray:
    """All tiles in each rotation (counter-clockwise degrees), then, with ``flip``, their mirror images.

    Parameters
    ----------
    tiles : ndarray
        (n, h, w) or (n, h, w, c).
    rotations : sequence of int
        Degrees, multiples of 90 (``degrees // 90`` quarter turns are made);
        90 and 270 (mod 360) only when h == w.
    flip : bool
        Also add every rotated tile mirrored left to right.

    Returns
    -------
    ndarray
        (n * len(rotations) * (2 if flip else 1), h, w[, c]), contiguous: all
        tiles in the first rotation, then in the next, ..., then the mirrored
        ones in the same order. No rotations give no tiles.

    Raises
    ------
    ValueError
        For a rotation :func:`check_rotations` refuses, naming it and the tiles' shape.
    """
    check_rotations(rotations, tiles.shape[1:3])
    variants = [np.rot90(tiles, k=int(degrees) // 90, axes=(1, 2)) for degrees in rotations]
    if flip:
        variants += [np.flip(variant, axis=2) for variant in variants]
    return np.ascontiguousarray(np.concatenate(variants)) if variants else tiles[:0]


def orient_provenance(provenance: dict, rotations=(0,), flip: bool = False) -> dict[str, np.ndarray]:
    """The provenance rows of :func:`orient`'s tiles, from those of the tiles it was given.

    Parameters
    ----------
    provenance : dict of str to ndarray
        ``source``, ``top`` and ``left`` (n,) arrays of the unoriented tiles.
    rotations, flip
        As given to :func:`orient`.

    Returns
    -------
    dict of str to ndarray
        The :data:`PROVENANCE_COLUMNS`, in :func:`orient`'s order.
    """
    count = len(provenance["source"])
    rotation = np.repeat(np.asarray(list(rotations), dtype=np.int64), count)
    copies = (2 if flip else 1) * len(rotations)
    out = {column: np.tile(np.asarray(provenance[column], np.int64), copies) for column in ("source", "top", "left")}
    out["rotation"] = np.tile(rotation, 2 if flip else 1)
    out["flip"] = np.repeat([False, True] if flip else [False], len(rotation)).astype(bool)
    return out


def image_tiles(image: np.ndarray, tile, mode: str, fit: str = "crop") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiles of one decoded image and their offsets in it.

    Parameters
    ----------
    image : ndarray
        (h, w) grey or (h, w, 3) RGB uint8 (:func:`to_uint8_grey_or_rgb`).
    tile : int or (int, int)
        The tiles' (height, width) (:func:`tile_shape`).
    mode : str
        ``cut``: every tile-sized piece (:func:`cut_tiles`); ``fit``: the
        image as one tile (:func:`fit_tile`).
    fit : str
        ``crop`` or ``pad``, for ``fit``.

    Returns
    -------
    tiles : ndarray
        (n, th, tw) or (n, th, tw, 3).
    top, left : ndarray
        (n,) int64: each piece's offset; for ``fit`` the crop's (0, 0 for ``pad``).

    Raises
    ------
    ValueError
        For another ``mode`` or ``fit``, naming it.
    """
    if mode == "cut":
        return cut_tiles(image, tile), *cut_offsets(image.shape[0], image.shape[1], tile)
    if mode == "fit":
        top, left = crop_box(image.shape[0], image.shape[1], tile)[:2] if fit == "crop" else (0, 0)
        return fit_tile(image, tile, fit)[None], np.array([top], np.int64), np.array([left], np.int64)
    raise ValueError(f"unknown library mode {mode!r}; use one of {', '.join(MODES)}")


def load_image_tiles(path, tile, mode: str, fit: str = "crop") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiles of one image file, read as a viewer shows it, with their offsets (:func:`image_tiles`).

    Returns
    -------
    tiles, top, left : ndarray
        As :func:`image_tiles`; tiles (n, th, tw) grey or (n, th, tw, 3) RGB uint8.

    Raises
    ------
    ImageError
        Naming the file, when it cannot be read or has no supported form.
    """
    return image_tiles(to_uint8_grey_or_rgb(read_source(path), str(path)), tile, mode, fit)


def merge_tiles(parts: list[np.ndarray], tile) -> np.ndarray:
    """One uint8 array of tiles; grey (n, h, w) if every part is grey, else RGB (n, h, w, 3).

    Parameters
    ----------
    parts : list of ndarray
        (n_i, h, w) grey or (n_i, h, w, 3) RGB uint8 tiles, in order; grey
        parts of a mixed list are repeated into three channels.
    tile : int or (int, int)
        The tiles' (height, width); used only for the (0, h, w) result of no parts.

    Returns
    -------
    ndarray
        The parts' tiles, concatenated in order.
    """
    if not parts:
        return np.zeros((0, *tile_shape(tile)), np.uint8)
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
    the pixels' Lab values. Grey tiles count as RGB with equal channels. The
    cells split a tile's height and width each into ``cells`` equal spans
    (h / cells by w / cells pixels, partial pixels weighted by their share),
    as ``cv2.resize(..., INTER_AREA)`` averages.

    Parameters
    ----------
    tiles : ndarray
        (n, h, w) grey or (n, h, w, 3) RGB uint8; h and w may differ.
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
    # float32 weights: batched float32 matrix products, about 100x faster than a float64 einsum here
    row_weights = area_weights(tiles.shape[1], cells).astype(np.float32)
    col_weights = area_weights(tiles.shape[2], cells).T.astype(np.float32)
    out = np.empty((len(tiles), cells, cells, 3), np.float32)
    for start in range(0, len(tiles), batch):
        part = tiles[start : start + batch]
        rgb = part if part.ndim == 4 else part[..., None].repeat(3, -1)
        values = rgb2lab(rgb.astype(np.float32) / 255.0) if space == "lab" else rgb.astype(np.float32)
        channels_first = np.moveaxis(values.astype(np.float32, copy=False), 3, 1)  # (n, 3, h, w)
        out[start : start + batch] = np.moveaxis(row_weights @ channels_first @ col_weights, 1, 3)
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


def _load_item(item) -> tuple:
    """One file's tiles and offsets; with ``skip``, an unreadable file gives its error message instead."""
    path, tile, mode, fit, on_bad_image = item
    if on_bad_image == "skip":
        try:
            return load_image_tiles(path, tile, mode, fit)
        except ImageError as error:  # only unreadable images: a bug elsewhere still fails the job
            message = str(error)
            return message.removeprefix(f"{path}: ")
    return load_image_tiles(path, tile, mode, fit)


def _describe_item(item) -> str:
    return str(item[0])


# Measured here: 5,000 16-px PNG files (4 MB) are read in 0.13 s by one process and 0.25 s by two; 60 photos of
# 1200x800 (173 MB) in 0.40 s by one and 0.30 s by two. A worker is worth it for about every 16 MB of files.
PARALLEL_BYTES = 16 << 20


def useful_processes(paths, processes: int) -> int:
    """Worker processes worth starting to read ``paths``: one per PARALLEL_BYTES of files, 1 to ``processes``."""
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            continue  # reported by the reader, which names the file
    return max(1, min(processes, total // PARALLEL_BYTES))


def build_library(
    paths,
    tile,
    mode: str,
    rotations=(0,),
    flip: bool = False,
    max_tiles: int | None = None,
    processes: int = 1,
    fit: str = "crop",
    on_bad_image: str = "fail",
    progress=None,
) -> Library:
    """Tiles of all images in ``paths`` (in order), each image's tiles in every orientation, with their provenance.

    The tiles of all images are oriented together (:func:`orient`); then
    ``max_tiles`` keeps an evenly spaced subset, with its provenance rows.
    The result does not depend on ``processes``.

    Parameters
    ----------
    paths : iterable of str or path-like
        The images, read as a viewer shows them (EXIF orientation applied).
    tile : int or (int, int)
        The tiles' (height, width) in pixels (:func:`tile_shape`).
    mode : str
        ``cut`` or ``fit`` (:func:`image_tiles`).
    rotations, flip
        As for :func:`orient`; 90 and 270 need square tiles.
    max_tiles : int, optional
        Keep at most this many tiles (:func:`evenly_spaced`); None keeps all.
    processes : int
        Worker processes reading the images.
    fit : str
        ``crop`` or ``pad`` (:func:`fit_tile`), for ``fit``.
    on_bad_image : str
        ``fail``: the first unreadable file stops the build; ``skip``: unreadable
        files (:class:`~pixelflow.errors.ImageError`: missing, corrupt,
        truncated, unsupported pixels) are left out and listed in ``skipped``.
    progress : callable, optional
        Receives the number of images newly read and cut (skipped ones
        included), as they are done; the counts add up to the number of paths.

    Returns
    -------
    Library
        ``tiles`` (n, th, tw) grey if every image is grey, else (n, th, tw, 3)
        RGB, uint8, contiguous; ``provenance`` per tile; ``files`` read;
        ``skipped`` (file, reason) pairs.

    Raises
    ------
    ValueError
        For an unknown ``mode``, ``fit`` or ``on_bad_image``, a tile size
        :func:`tile_shape` refuses, or a rotation :func:`check_rotations` refuses.
    WorkerError
        With ``fail``, naming the file that cannot be read or has no supported form.
    """
    shape = tile_shape(tile)
    for name, value, allowed in (
        ("mode", mode, MODES),
        ("fit", fit, FITS),
        ("on_bad_image", on_bad_image, ON_BAD_IMAGE),
    ):
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
    check_rotations(rotations, shape)
    items = [(str(path), shape, mode, fit, on_bad_image) for path in paths]
    results = parallel_map(
        _load_item, items, useful_processes(paths, processes), describe=_describe_item, progress=progress
    )
    files, skipped, parts, tops, lefts, sources = [], [], [], [], [], []
    for (path, *_), result in zip(items, results, strict=True):
        if isinstance(result, str):
            skipped.append((path, result))
            continue
        tiles, top, left = result
        sources.append(np.full(len(tiles), len(files), np.int64))
        files.append(path)
        parts.append(tiles)
        tops.append(top)
        lefts.append(left)

    def joined(columns):
        return np.concatenate(columns) if columns else np.zeros(0, np.int64)

    tiles = orient(merge_tiles(parts, shape), rotations, flip)
    base = {"source": joined(sources), "top": joined(tops), "left": joined(lefts)}
    provenance = orient_provenance(base, rotations, flip)
    keep = evenly_spaced(len(tiles), max_tiles)
    return {
        "tiles": np.ascontiguousarray(tiles[keep]),
        "provenance": {column: values[keep] for column, values in provenance.items()},
        "files": files,
        "skipped": skipped,
    }


def save_library(path, tiles: np.ndarray, provenance: dict, files, skipped=()) -> None:
    """Write a library and its pooled (8x8 cells) Lab and RGB features to an .npz file, atomically.

    The file holds ``tiles``; ``lab`` and ``rgb`` (:func:`pooled_features`);
    the provenance columns ``source``, ``top``, ``left``, ``rotation`` (int64)
    and ``flip`` (bool); ``files`` (unicode); ``skipped_files`` and
    ``skipped_reasons`` (unicode, one per skipped file). No pickled objects.

    Parameters
    ----------
    path : str or path-like
        The file.
    tiles : ndarray
        (n, h, w) grey or (n, h, w, 3) RGB uint8.
    provenance : dict of str to array-like
        The :data:`PROVENANCE_COLUMNS`, n values each.
    files : sequence of str
        The files ``source`` indexes.
    skipped : sequence of (str, str)
        Skipped files and why.

    Raises
    ------
    ValueError
        When a provenance column is missing or not n long.
    """
    arrays = {"tiles": tiles, "lab": pooled_features(tiles, "lab"), "rgb": pooled_features(tiles, "rgb")}
    for column in PROVENANCE_COLUMNS:
        if column not in provenance or len(provenance[column]) != len(tiles):
            raise ValueError(f"provenance column {column!r} must hold one value per tile ({len(tiles)})")
        arrays[column] = np.asarray(provenance[column], bool if column == "flip" else np.int64)
    skipped = list(skipped)
    arrays["files"] = np.array([str(name) for name in files], dtype=str).reshape(-1)
    arrays["skipped_files"] = np.array([str(name) for name, _ in skipped], dtype=str).reshape(-1)
    arrays["skipped_reasons"] = np.array([str(reason) for _, reason in skipped], dtype=str).reshape(-1)
    with atomic_file(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def load_library(path) -> IndexedLibrary:
    """A library from an .npz file (:func:`save_library`).

    Returns
    -------
    IndexedLibrary
        ``tiles``; ``provenance`` (dict of the :data:`PROVENANCE_COLUMNS`
        arrays); ``files`` (list of str); ``skipped`` (list of (file, reason)
        str tuples); ``pooled`` (``lab`` and ``rgb``: (n, 8, 8, 3) float32).
    """
    with np.load(path) as data:
        return {
            "tiles": data["tiles"],
            "provenance": {column: data[column] for column in PROVENANCE_COLUMNS},
            "files": [str(name) for name in data["files"]],
            "skipped": [
                (str(name), str(reason))
                for name, reason in zip(data["skipped_files"], data["skipped_reasons"], strict=True)
            ],
            "pooled": {"lab": data["lab"], "rgb": data["rgb"]},
        }
