"""Writing a PNG file band by band, so that an image larger than memory can be written.

OpenCV and Pillow encode a PNG from the whole image in memory; no well-kept
library writes one from a stream of rows. The format itself is small: a
signature, an ``IHDR`` chunk, the rows (each preceded by its filter byte)
deflated into ``IDAT`` chunks, and ``IEND`` (PNG specification, ISO/IEC
15948). Rows are filtered with the Paeth predictor, which suits photographs;
the result is checked against OpenCV's and Pillow's decoders in the tests.
"""

import struct
import zlib
from collections.abc import Iterable

import numpy as np

from pixelflow.atomic import atomic_file

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: grey, grey+alpha, RGB, RGBA
PAETH = 4
IDAT_BYTES = 1 << 20  # compressed bytes per IDAT chunk, at most
FILTER_BYTES = 1 << 18  # raw bytes filtered at a time (its int16 temporaries take about 16 times that)


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def paeth_filter(rows: np.ndarray, previous: np.ndarray, channels: int) -> np.ndarray:
    """Paeth-filtered bytes of ``rows``, each prefixed by its filter type byte.

    Parameters
    ----------
    rows : ndarray
        (n, width * channels) uint8, the raw bytes of n consecutive rows.
    previous : ndarray
        (width * channels,) uint8, the raw row above the first (zeros for the image's first row).
    channels : int
        Bytes per pixel.

    Returns
    -------
    ndarray
        (n, 1 + width * channels) uint8.
    """
    raw = rows.astype(np.int16)
    up = np.vstack([previous[None].astype(np.int16), raw[:-1]])
    left = np.zeros_like(raw)
    left[:, channels:] = raw[:, :-channels]
    up_left = np.zeros_like(raw)
    up_left[:, channels:] = up[:, :-channels]
    estimate = left + up - up_left
    to_left, to_up, to_up_left = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - up_left)
    predictor = np.where((to_left <= to_up) & (to_left <= to_up_left), left, np.where(to_up <= to_up_left, up, up_left))
    out = np.empty((len(rows), rows.shape[1] + 1), np.uint8)
    out[:, 0] = PAETH
    out[:, 1:] = (raw - predictor).astype(np.uint8)  # modulo 256
    return out


def write_png_bands(path, height: int, width: int, channels: int, bands: Iterable[np.ndarray], level: int = 6) -> None:
    """Write an 8-bit PNG from bands of rows, atomically; only one band is in memory at a time.

    Parameters
    ----------
    path : str or path-like
        The file; written to a temporary name and renamed when complete.
    height, width : int
        The image's size in pixels.
    channels : int
        1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA).
    bands : iterable of ndarray
        uint8 bands of consecutive rows from the top, (rows, width) for grey or
        (rows, width, channels); their rows must add up to ``height``.
    level : int
        zlib compression level, 0-9.

    Raises
    ------
    ValueError
        For a band of another width, channel count or dtype, or when the bands
        do not add up to ``height`` rows; nothing is left at ``path``.
    """
    if channels not in COLOUR_TYPES:
        raise ValueError(f"a PNG holds 1 to 4 channels, not {channels}")
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    compressor = zlib.compressobj(level)
    previous = np.zeros(width * channels, np.uint8)
    written = 0
    with atomic_file(path) as temporary, open(temporary, "wb") as handle:
        handle.write(SIGNATURE + chunk(b"IHDR", header))
        pending = b""
        for band in bands:
            band = np.asarray(band)
            expected = (width,) if channels == 1 else (width, channels)
            if band.dtype != np.uint8 or band.shape[1:] != expected:
                raise ValueError(f"a band of {band.shape} {band.dtype} pixels is not {expected} uint8 rows")
            rows = band.reshape(len(band), width * channels)
            written += len(rows)
            if written > height:
                raise ValueError(f"the bands hold more than the image's {height} rows")
            step = max(1, FILTER_BYTES // (width * channels))  # the filter's int16 temporaries stay small
            for top in range(0, len(rows), step):
                block = rows[top : top + step]
                pending += compressor.compress(paeth_filter(block, previous, channels).tobytes())
                previous = block[-1].copy()
            while len(pending) >= IDAT_BYTES:
                handle.write(chunk(b"IDAT", pending[:IDAT_BYTES]))
                pending = pending[IDAT_BYTES:]
        if written != height:
            raise ValueError(f"the bands hold {written} rows, the image has {height}")
        pending += compressor.flush()
        for start in range(0, len(pending), IDAT_BYTES):
            handle.write(chunk(b"IDAT", pending[start : start + IDAT_BYTES]))
        handle.write(chunk(b"IEND", b""))
