"""Gaussian filtering, exact to ``skimage.filters.gaussian``, in float32.

The kernel is the one scipy.ndimage (and so scikit-image) uses: samples of
exp(-x² / 2σ²) for x in [-r, r], r = int(truncate · σ + 0.5), normalised to
sum 1, applied separably along rows and columns, never across channels.
Integer images are first scaled to [0, 1] (scikit-image's
``preserve_range=False``); float images are filtered as they are.

A filter along one axis is a linear map, so it is a matrix: row i holds the
kernel's weights at the source positions of output i, with positions beyond
the edge folded back in as the border mode says. Matrix products run at BLAS
speed, several times faster per multiply-add than a sliding kernel, so wide
kernels (r ≥ ``MATRIX_MIN_RADIUS``) are applied as products with that matrix,
cut into bands of ``BAND`` outputs so that the zeros far from the diagonal are
skipped. Narrow kernels use OpenCV's separable filter, faster there.

Border modes keep scipy's names; OpenCV's equivalents serve the narrow path:

========  ===================  ==================
mode      extension            OpenCV border
========  ===================  ==================
reflect   d c b a | a b c d    BORDER_REFLECT
mirror    d c b | a b c d      BORDER_REFLECT_101
nearest   a a a | a b c d      BORDER_REPLICATE
constant  0 0 0 | a b c d      BORDER_CONSTANT
wrap      b c d | a b c d      BORDER_WRAP (padded first)
========  ===================  ==================
"""

import functools

import cv2
import numpy as np

from pixelflow.pipelines.kernel import BORDER_MODES, _kernel, gaussian_kernel, kernel_radius  # noqa: F401 (part of this API)

# OpenCV's border of each mode, in BORDER_MODES order.
BORDERS = dict(
    zip(
        BORDER_MODES,
        (cv2.BORDER_REFLECT, cv2.BORDER_REFLECT_101, cv2.BORDER_REPLICATE, cv2.BORDER_CONSTANT, cv2.BORDER_WRAP),
        strict=True,
    )
)
INTEGER_SCALE = {np.dtype(np.uint8): 1 / 255, np.dtype(np.uint16): 1 / 65535}
# Measured on the 2-core machine (benchmarks/stats.py --tune): bands of 32
# outputs, one dense band for axes up to DENSE_LENGTH, matrices from radius 16 on.
BAND = 32
DENSE_LENGTH = 64
MATRIX_MIN_RADIUS = 16


@functools.lru_cache(maxsize=32)
def _kernel32(sigma: float, truncate: float) -> np.ndarray:
    weights = _kernel(sigma, truncate).astype(np.float32)
    weights.setflags(write=False)
    return weights


def to_float(image: np.ndarray, name: str = "image") -> np.ndarray:
    """``image`` as float32: uint8 and uint16 scaled to [0, 1], float as is.

    Parameters
    ----------
    image : ndarray
        Any shape; uint8, uint16 or floating point.
    name : str
        Names the image in errors.

    Returns
    -------
    ndarray
        float32 of ``image``'s shape; a float32 ``image`` itself, not a copy.

    Raises
    ------
    ValueError
        Naming ``name``, for another dtype, or a float image holding NaN or infinity.
    """
    if image.dtype in INTEGER_SCALE:
        return image.astype(np.float32) * np.float32(INTEGER_SCALE[image.dtype])
    if image.dtype.kind != "f":
        raise ValueError(f"{name}: cannot filter {image.dtype} pixels (uint8, uint16 or float)")
    values = image.astype(np.float32, copy=False)
    finite, _ = cv2.checkRange(values.reshape(values.shape[0], -1))
    if not finite:
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ValueError(f"{name}: {bad} pixels are NaN or infinite; refusing to filter them")
    return values


def source_positions(positions: np.ndarray, length: int, mode: str) -> np.ndarray:
    """The pixel each position along an axis of ``length`` reads under ``mode``; -1 where it reads 0.

    Parameters
    ----------
    positions : ndarray
        int positions, which may lie outside ``0..length-1``.
    length : int
        The axis' length.
    mode : str
        A border mode (see the module's table).

    Returns
    -------
    ndarray
        int, of ``positions``' shape; -1 only for ``constant``.

    Raises
    ------
    ValueError
        For an unknown mode, naming it.
    """
    if mode == "nearest":
        return np.clip(positions, 0, length - 1)
    if mode == "wrap":
        return positions % length
    if mode == "reflect":
        folded = positions % (2 * length)
        return np.where(folded < length, folded, 2 * length - 1 - folded)
    if mode == "mirror":
        if length == 1:
            return np.zeros_like(positions)
        folded = positions % (2 * length - 2)
        return np.where(folded < length, folded, 2 * length - 2 - folded)
    if mode == "constant":
        return np.where((positions >= 0) & (positions < length), positions, -1)
    raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(BORDERS)}")


@functools.lru_cache(maxsize=64)
def axis_bands(length: int, sigma: float, truncate: float, mode: str) -> tuple:
    """The filter along an axis of ``length`` as bands ``(start, stop, lo, hi, matrix)``.

    Outputs ``start:stop`` are ``matrix @ line[lo:hi]``; the matrix (float32,
    read-only) holds the kernel weights, those of positions past the edge
    added onto the pixels they read. Short axes are one dense band.

    Parameters
    ----------
    length : int
        The axis' length in pixels.
    sigma, truncate : float
        As for :func:`gaussian`.
    mode : str
        A border mode.

    Returns
    -------
    tuple of tuple
        ``(start, stop, lo, hi, matrix)`` per band of :data:`BAND` outputs (one
        band up to :data:`DENSE_LENGTH`), ``matrix`` (stop - start, hi - lo).
        Cached: the same objects for the same arguments.

    Raises
    ------
    ValueError
        For sigma not above 0, or an unknown mode.
    """
    weights = _kernel(sigma, truncate)
    radius = len(weights) // 2
    band = length if length <= DENSE_LENGTH else BAND
    bands = []
    for start in range(0, length, band):
        stop = min(start + band, length)
        sources = source_positions(np.arange(start, stop)[:, None] + np.arange(-radius, radius + 1), length, mode)
        reads = sources >= 0
        lo, hi = int(sources[reads].min()), int(sources[reads].max()) + 1
        outputs = np.broadcast_to(np.arange(stop - start)[:, None], sources.shape)
        matrix = np.zeros((stop - start, hi - lo))
        np.add.at(matrix, (outputs[reads], sources[reads] - lo), np.broadcast_to(weights, sources.shape)[reads])
        matrix = matrix.astype(np.float32)
        matrix.setflags(write=False)
        bands.append((start, stop, lo, hi, matrix))
    return tuple(bands)


def _matrix_filter(plane: np.ndarray, sigma: float, truncate: float, mode: str) -> np.ndarray:
    height, width = plane.shape
    rows = np.empty_like(plane)
    for start, stop, lo, hi, matrix in axis_bands(width, sigma, truncate, mode):
        np.matmul(plane[:, lo:hi], matrix.T, out=rows[:, start:stop])
    out = np.empty_like(plane)
    for start, stop, lo, hi, matrix in axis_bands(height, sigma, truncate, mode):
        np.matmul(matrix, rows[lo:hi], out=out[start:stop])
    return out


def _opencv_filter(image: np.ndarray, sigma: float, truncate: float, mode: str) -> np.ndarray:
    kernel = _kernel32(sigma, truncate)
    height, width = image.shape[:2]
    border = BORDERS[mode]
    if mode == "wrap":  # the filters do not wrap; pad periodically and cut the centre out
        radius = kernel_radius(sigma, truncate)
        image = cv2.copyMakeBorder(image, radius, radius, radius, radius, cv2.BORDER_WRAP)
        border = cv2.BORDER_CONSTANT
    out = cv2.sepFilter2D(image, cv2.CV_32F, kernel, kernel, borderType=border).reshape(image.shape)
    if mode == "wrap":
        out = out[radius : radius + height, radius : radius + width]
    return out


def gaussian(image: np.ndarray, sigma: float, truncate: float = 4.0, mode: str = "nearest") -> np.ndarray:
    """Gaussian-filter a grey (h, w) or channel-last (h, w, c ≤ 4) float32 image.

    Matches ``skimage.filters.gaussian(image, sigma, mode=mode, truncate=truncate,
    channel_axis=-1 for colour)`` to float32 rounding (about 1e-6 for values in [0, 1]).

    Parameters
    ----------
    image : ndarray
        (h, w) or (h, w, c); cast to float32 without scaling (integer images
        go through :func:`to_float` first).
    sigma : float
        Standard deviation in pixels, above 0.
    truncate : float
        Kernel radius in standard deviations (:func:`kernel_radius`).
    mode : str
        Border mode: reflect, mirror, nearest, constant (0) or wrap.

    Returns
    -------
    ndarray
        float32, of ``image``'s shape.

    Raises
    ------
    ValueError
        For an unknown mode or sigma not above 0.
    """
    if mode not in BORDERS:
        raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(BORDERS)}")
    sigma, truncate = float(sigma), float(truncate)
    _kernel(sigma, truncate)  # checks sigma
    image = np.ascontiguousarray(image, dtype=np.float32)
    if kernel_radius(sigma, truncate) < MATRIX_MIN_RADIUS:
        return _opencv_filter(image, sigma, truncate, mode)
    if image.ndim == 2:
        return _matrix_filter(image, sigma, truncate, mode)
    planes = [_matrix_filter(np.ascontiguousarray(image[..., c]), sigma, truncate, mode) for c in range(image.shape[2])]
    return np.stack(planes, axis=-1)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as 8-bit levels: clipped, scaled by 255 and rounded; NaN and infinity as 0.

    ``skimage.util.img_as_ubyte`` of the clipped values.
    """
    scaled = np.clip(image, 0.0, 1.0) * np.float32(255)
    scaled = np.rint(scaled, out=scaled)
    if not np.isfinite(scaled).all():
        scaled[~np.isfinite(image)] = 0
    return scaled.astype(np.uint8)
