"""Uncompressed PNG for one known shape and dtype: a fast writer and a strict reader.

The writer produces what OpenCV writes with compression 0 and filter none (rows
prefixed by filter byte 0 in stored deflate blocks), with everything constant
per shape and dtype prepared once. The reader takes only that plain layout and
returns None for anything else, so the caller can fall back to OpenCV.
Arrays are channel-last RGB(A) or 2-D grey, uint8 or uint16, as in imageio.
"""

import operator
import struct
import zlib
from functools import lru_cache

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type: grey, RGB, RGBA
BIT_DEPTHS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}
MAX_STORED = 65535  # most bytes one stored deflate block holds
MAX_CHUNK = 2**31 - 1
_word = struct.Struct(">I")
_chunk_head = struct.Struct(">I4s")  # data length, chunk type


def _chunk(kind: bytes, body: bytes) -> bytes:
    return _word.pack(len(body)) + kind + body + _word.pack(zlib.crc32(kind + body))


@lru_cache(maxsize=64)
def _layout(shape: tuple, dtype) -> tuple:
    """(signature + IHDR chunk, shape, dtype, big-endian sample dtype, filtered row bytes) or ValueError."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as error:
        raise ValueError(f"unsupported dtype {dtype!r}: expected uint8 or uint16") from error
    if dtype not in BIT_DEPTHS:
        raise ValueError(f"unsupported dtype {dtype}: expected uint8 or uint16")
    try:
        sizes = tuple(operator.index(n) for n in shape)
    except TypeError:
        sizes = ()
    channels = {(): 1, (3,): 3, (4,): 4}.get(sizes[2:]) if len(sizes) >= 2 else None
    if channels is None or min(sizes) < 1:
        raise ValueError(f"unsupported shape {shape}: expected (height, width) or (height, width, 3 or 4)")
    shape = sizes
    height, width = shape[:2]
    row_bytes = 1 + width * channels * dtype.itemsize
    if height * row_bytes + 6 + 5 * (height * row_bytes // MAX_STORED + 1) > MAX_CHUNK:
        raise ValueError(f"unsupported shape {shape}: too large for one PNG chunk")
    header = struct.pack(">IIBBBBB", width, height, BIT_DEPTHS[dtype], COLOUR_TYPES[channels], 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header), shape, dtype, dtype.newbyteorder(">"), row_bytes


def stored_png_encoder(shape, dtype):
    """A function encoding arrays of exactly ``shape`` and ``dtype`` as uncompressed, unfiltered PNG bytes.

    Each call fills the same buffer, so use one encoder per thread.

    Parameters
    ----------
    shape : tuple of int
        (h, w) grey or (h, w, 3 or 4) RGB(A), every size at least 1.
    dtype : str or numpy dtype
        uint8 or uint16.

    Returns
    -------
    callable
        ``encode(array) -> bytes``; it raises ValueError for an array of
        another shape or dtype.

    Raises
    ------
    ValueError
        For another dtype or shape, or an image too large for one PNG chunk
        (2**31 - 1 bytes).
    """
    head, shape, dtype, samples, row_bytes = _layout(tuple(shape), dtype)
    size = shape[0] * row_bytes
    idat = bytearray(b"\x78\x01")  # zlib header: deflate, 32 KiB window, no preset dictionary
    spans = []  # (offset in the IDAT data, offset in the filtered rows, length) of each stored block
    for start in range(0, size, MAX_STORED):
        length = min(MAX_STORED, size - start)
        idat += struct.pack("<BHH", start + length == size, length, length ^ 0xFFFF)  # BFINAL, BTYPE 00, LEN, NLEN
        spans.append((len(idat), start, length))
        idat += bytes(length)
    idat += bytes(4)  # Adler-32 of the filtered rows
    out = bytearray(head + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    data_at = len(head) + 8
    crc_at = data_at + len(idat)
    checked = memoryview(out)[len(head) + 4 : crc_at]  # chunk type and data, covered by the CRC
    whole = np.frombuffer(out, np.uint8)
    if len(spans) == 1:  # the filtered rows live in the output itself
        rows, copies = whole[data_at + spans[0][0] :][:size], []
    else:
        rows = np.zeros(size, np.uint8)
        copies = [(whole[data_at + at :][:n], rows[start:][:n]) for at, start, n in spans]
    pixels = rows.reshape(shape[0], row_bytes)[:, 1:].view(samples).reshape(shape)

    def encode(array: np.ndarray) -> bytes:
        if array.shape != shape or array.dtype != dtype:
            raise ValueError(f"this encoder takes {shape} {dtype} arrays, not {array.shape} {array.dtype}")
        pixels[...] = array
        for target, source in copies:
            target[...] = source
        _word.pack_into(out, crc_at - 4, zlib.adler32(rows))
        _word.pack_into(out, crc_at, zlib.crc32(checked))
        return bytes(out)

    return encode


def decode_stored_png(data, shape, dtype) -> np.ndarray | None:
    """The ``shape`` ``dtype`` array in PNG ``data``, or None if ``data`` is not in the plain layout read here.

    Read: the signature, the IHDR for ``shape`` and ``dtype`` (8 or 16 bits, grey, RGB or
    RGBA, not interlaced), IDAT chunks, an empty IEND ending the data, and a zlib stream
    of any compression level holding exactly the rows, each with filter byte 0. Any
    other chunk or anything inconsistent gives None. Chunk CRCs are not checked (the
    zlib stream's Adler-32 is); callers needing integrity check a digest of the file.

    Parameters
    ----------
    data : bytes-like
        The whole PNG file.
    shape : tuple of int
        Expected (h, w) or (h, w, 3 or 4).
    dtype : str or numpy dtype
        Expected pixel type, uint8 or uint16 (anything else gives None).

    Returns
    -------
    ndarray or None
        A new array of ``shape`` and ``dtype`` in native byte order, or None.
    """
    try:
        head, shape, dtype, samples, row_bytes = _layout(tuple(shape), dtype)
    except ValueError:
        return None
    view = memoryview(data)
    if view[: len(head)] != head:  # signature and IHDR, with the only CRC such an IHDR can have
        return None
    position, end, idat = len(head), len(view), []
    while True:
        if position + 12 > end:
            return None
        length, kind = _chunk_head.unpack_from(view, position)
        start, position = position + 8, position + 12 + length
        if position > end:
            return None
        if kind == b"IDAT":
            idat.append(view[start : start + length])
        elif kind == b"IEND" and length == 0 and position == end and idat:
            break
        else:
            return None
    size = shape[0] * row_bytes
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(idat[0] if len(idat) == 1 else b"".join(idat), size + 1)
    except zlib.error:
        return None
    if len(raw) != size or not inflater.eof or inflater.unused_data:
        return None
    if raw[::row_bytes].count(0) != shape[0]:  # a row filter other than none
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(shape[0], row_bytes)
    return rows[:, 1:].view(samples).reshape(shape).astype(dtype)
