"""Reading and writing images: OpenCV first, Pillow for what OpenCV cannot decode.

Arrays are channel-last in RGB(A) order; grey images are 2-D. Every decode
failure raises :class:`ImageError` naming the file.
"""

import io
import os
from pathlib import Path

import cv2
import numpy as np

from pixelflow.atomic import atomic_file
from pixelflow.errors import ImageError
from pixelflow.formats import format_name, format_of_path, image_format

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
# Formats OpenCV decodes itself: if it refuses one of these, the file is broken,
# and no second decoder gets to guess at the pixels.
OPENCV_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")


def _swap_red_blue(array: np.ndarray) -> np.ndarray:
    """Convert RGB(A) to BGR(A) or back; grey images pass through."""
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    return array


PNG_STRATEGIES = {
    "default": cv2.IMWRITE_PNG_STRATEGY_DEFAULT,
    "filtered": cv2.IMWRITE_PNG_STRATEGY_FILTERED,
    "huffman_only": cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
    "rle": cv2.IMWRITE_PNG_STRATEGY_RLE,
}

# Row filters; "adaptive" lets libpng pick one per row by trying them all.
PNG_FILTERS = {
    "adaptive": None,
    "none": cv2.IMWRITE_PNG_FILTER_NONE,
    "sub": cv2.IMWRITE_PNG_FILTER_SUB,
    "up": cv2.IMWRITE_PNG_FILTER_UP,
    "average": cv2.IMWRITE_PNG_FILTER_AVG,
    "paeth": cv2.IMWRITE_PNG_FILTER_PAETH,
}


def encode_params(fmt: str, compression: int = 0, strategy: str = "default", png_filter: str = "adaptive") -> list[int]:
    """OpenCV encoder flags for ``fmt``; compression 0 stores pixels unfiltered.

    Parameters
    ----------
    fmt : str
        Canonical format name: ``png``, ``tiff`` or ``bmp``.
    compression : int
        PNG: zlib level 0-9, 0 storing the rows uncompressed with filter none
        (``strategy`` and ``png_filter`` are then ignored). TIFF: 0 uncompressed,
        anything else deflate. BMP: ignored.
    strategy : str
        zlib's strategy for PNG, a key of :data:`PNG_STRATEGIES`; ``huffman_only``
        skips the search for repeated strings, which smooth images filtered row
        by row hardly have: measured faster and smaller than level 3 on the
        bundled map.
    png_filter : str
        The PNG row filter, a key of :data:`PNG_FILTERS`.

    Returns
    -------
    list of int
        Flag, value pairs for ``cv2.imencode``; empty for bmp.
    """
    if fmt == "png":
        if compression == 0:
            return [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression), cv2.IMWRITE_PNG_STRATEGY, PNG_STRATEGIES[strategy]]
        if PNG_FILTERS[png_filter] is not None:
            params += [cv2.IMWRITE_PNG_FILTER, PNG_FILTERS[png_filter]]
        return params
    if fmt == "tiff":
        return [cv2.IMWRITE_TIFF_COMPRESSION, 1 if compression == 0 else 8]
    return []


def image_encoder(fmt: str, dtype: str, compression: int = 0, strategy: str = "default", png_filter: str = "adaptive"):
    """A function encoding RGB(A) or grey ``dtype`` arrays as ``fmt`` bytes, checked once here.

    Batch writers call it per image; it skips the per-call checks of :func:`encode_image`.

    Parameters
    ----------
    fmt : str
        Format name or alias.
    dtype : str or numpy dtype
        Pixel type of the arrays to encode.
    compression, strategy, png_filter
        As for :func:`encode_params`.

    Returns
    -------
    callable
        ``encode(array) -> bytes`` for (h, w) grey or (h, w, 3 or 4) RGB(A)
        arrays; it raises ValueError when OpenCV cannot encode an array.

    Raises
    ------
    ValueError
        For an unknown format, or a ``dtype`` the format cannot hold.
    """
    fmt = format_name(fmt)
    if str(dtype) not in image_format(fmt).dtypes:
        raise ValueError(f"{fmt} cannot hold {dtype} pixels; use one of {image_format(fmt).dtypes}")
    suffix, params = image_format(fmt).suffix, encode_params(fmt, compression, strategy, png_filter)

    def encode(array: np.ndarray) -> bytes:
        ok, buffer = cv2.imencode(suffix, _swap_red_blue(array), params)
        if not ok:
            raise ValueError(f"OpenCV could not encode a {array.shape} {array.dtype} image as {fmt}")
        return buffer.tobytes()

    return encode


def encode_image(
    array: np.ndarray, fmt: str, compression: int = 0, strategy: str = "default", png_filter: str = "adaptive"
) -> bytes:
    """Encode an RGB(A) or grey array as ``fmt`` (png, tiff or bmp) bytes.

    Parameters
    ----------
    array : ndarray
        (h, w) grey or (h, w, 3 or 4) RGB(A), of a dtype ``fmt`` holds.
    fmt : str
        Format name or alias.
    compression, strategy, png_filter
        As for :func:`encode_params`.

    Returns
    -------
    bytes
        The encoded file.

    Raises
    ------
    ValueError
        For an unknown format, a dtype the format cannot hold, or an array
        OpenCV cannot encode.
    """
    return image_encoder(fmt, array.dtype, compression, strategy, png_filter)(array)


def _decode_with_pillow(data: bytes) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
            return np.asarray(image).copy()
    except Exception:
        return None


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode image bytes into an RGB(A) or grey array; ``name`` is used in errors.

    OpenCV decodes first, unchanged (bit depth and alpha kept). Pillow gets
    what OpenCV cannot decode unless it starts with a PNG, JPEG, TIFF or BMP
    signature; its palette, bilevel, CMYK, YCbCr, LAB and HSV images are
    converted to RGB, or RGBA when they have transparency.

    Parameters
    ----------
    data : bytes
        The file's content.
    name : str
        The file's name; one ending in a JPEG suffix (``.jpg``, ``.jpeg``,
        ``.jpe``, ``.jfif``, any case) must end with the end-of-image marker
        (trailing NUL bytes allowed).

    Returns
    -------
    ndarray
        (h, w) grey or (h, w, 3 or 4) RGB(A), of the stored pixel type.

    Raises
    ------
    ImageError
        Naming ``name``, for empty data, a truncated JPEG, PNG/JPEG/TIFF/BMP
        data that OpenCV refuses, or data no decoder reads.
    """
    if len(data) == 0:
        raise ImageError(f"{name}: file is empty (0 bytes)")
    if str(name).lower().endswith(JPEG_SUFFIXES) and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise ImageError(f"{name}: JPEG data is truncated (no end-of-image marker)")
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        if data.startswith(OPENCV_SIGNATURES):
            raise ImageError(f"{name}: corrupt or truncated image data")
        array = _decode_with_pillow(data)
        if array is None:
            raise ImageError(f"{name}: not a readable image (corrupt, truncated or unknown format)")
        return array
    return _swap_red_blue(array)


def read_file(path) -> bytes:
    """All bytes of a file; an OSError becomes an ImageError naming the file.

    Reads to the end even if the file changes size while it is read.

    Raises
    ------
    ImageError
        Naming the file, when it cannot be opened or read.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise ImageError(f"{path}: cannot read file ({error.strerror or error})") from error
    try:
        size = os.fstat(descriptor).st_size
        data = os.read(descriptor, size + 1)
        while len(data) != size:  # the file grew or shrank, or a short read: read on to the end
            more = os.read(descriptor, 1 << 20)
            if not more:
                break
            data += more
        return data
    except OSError as error:
        raise ImageError(f"{path}: cannot read file ({error.strerror or error})") from error
    finally:
        os.close(descriptor)


def read_image(path) -> np.ndarray:
    """Read an image file into an RGB(A) or grey array.

    Parameters
    ----------
    path : str or path-like
        The image file.

    Returns
    -------
    ndarray
        As :func:`decode_image` returns it.

    Raises
    ------
    ImageError
        Naming the file, when it cannot be read or decoded.
    """
    return decode_image(read_file(path), str(path))


def write_image(
    path,
    array: np.ndarray,
    fmt: str | None = None,
    compression: int = 0,
    strategy: str = "default",
    png_filter: str = "adaptive",
) -> None:
    """Write ``array`` to ``path`` atomically; the format defaults to the suffix.

    Parameters
    ----------
    path : str or path-like
        The file; its folder is created.
    array : ndarray
        (h, w) grey or (h, w, 3 or 4) RGB(A).
    fmt : str, optional
        Format name or alias; by default the one ``path``'s suffix names.
    compression, strategy, png_filter
        As for :func:`encode_params`.

    Raises
    ------
    ValueError
        For a suffix or format that is not known, a dtype the format cannot
        hold, or an array OpenCV cannot encode.
    """
    path = Path(path)
    if fmt is None:
        fmt = format_of_path(path)
    data = encode_image(array, fmt, compression, strategy, png_filter)
    with atomic_file(path) as temporary:
        Path(temporary).write_bytes(data)


def image_channels(array: np.ndarray) -> int:
    """Number of channels of a channel-last image (1 for 2-D grey)."""
    return 1 if array.ndim == 2 else int(array.shape[2])
