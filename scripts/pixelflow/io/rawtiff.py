"""Uncompressed TIFF without a codec: read pixel data straight into a buffer, and lay out a file to fill in place.

Only the simple case is handled here (little-endian, one image, uncompressed,
interleaved 8- or 16-bit samples, strips stored back to back); anything else
goes through :mod:`pixelflow.io.images`.
"""

import struct

import numpy as np

TAG_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 16: ("Q", 8)}


def _read_entries(handle) -> dict | None:
    handle.seek(0)
    header = handle.read(8)
    if len(header) < 8 or header[:4] != b"II*\x00":
        return None
    (offset,) = struct.unpack("<I", header[4:8])
    handle.seek(offset)
    raw = handle.read(2)
    if len(raw) < 2:
        return None
    (count,) = struct.unpack("<H", raw)
    block = handle.read(12 * count)
    if len(block) < 12 * count:
        return None
    entries = {}
    for k in range(count):
        tag, kind, n, value = struct.unpack("<HHI4s", block[12 * k : 12 * k + 12])
        if kind not in TAG_TYPES or kind == 5:
            continue
        code, size = TAG_TYPES[kind]
        if n * size <= 4:
            data = value[: n * size]
        else:
            (pointer,) = struct.unpack("<I", value)
            handle.seek(pointer)
            data = handle.read(n * size)
            if len(data) < n * size:
                return None
        entries[tag] = data if code == "s" else struct.unpack(f"<{n}{code}", data)
    return entries


def uncompressed_layout(path) -> tuple | None:
    """``(height, width, channels, dtype, offset)`` of a simple uncompressed TIFF, else None."""
    with open(path, "rb") as handle:
        entries = _read_entries(handle)
    if not entries:
        return None
    try:
        width, height = entries[256][0], entries[257][0]
        channels = entries.get(277, (1,))[0]
        bits = set(entries.get(258, (1,)))
        offsets, counts = entries[273], entries[279]
    except (KeyError, IndexError):
        return None
    if entries.get(259, (1,))[0] != 1 or entries.get(284, (1,))[0] != 1 or len(bits) != 1:
        return None
    if set(entries.get(339, (1,))) != {1} or entries.get(262, (2,))[0] not in (1, 2) or channels not in (1, 3, 4):
        return None
    if entries.get(262, (2,))[0] == 2 and channels == 1:
        return None
    dtype = {8: np.dtype(np.uint8), 16: np.dtype("<u2")}.get(bits.pop())
    if dtype is None:
        return None
    if any(offsets[k] + counts[k] != offsets[k + 1] for k in range(len(offsets) - 1)):
        return None
    if sum(counts) != width * height * channels * dtype.itemsize:
        return None
    return height, width, channels, dtype, offsets[0]


def tiff_header(height: int, width: int, channels: int, dtype) -> bytes:
    """Header and directory of an uncompressed interleaved TIFF whose pixels follow directly.

    Strips of about 1 MiB, stored back to back after the returned bytes.
    """
    dtype = np.dtype(dtype)
    row_bytes = width * channels * dtype.itemsize
    rows_per_strip = max(1, min(height, (1 << 20) // max(1, row_bytes)))
    strips = -(-height // rows_per_strip)
    photometric = 1 if channels == 1 else 2
    bits = 8 * dtype.itemsize
    tags = [
        (256, 4, [width]),
        (257, 4, [height]),
        (258, 3, [bits] * channels),
        (259, 3, [1]),
        (262, 3, [photometric]),
        (273, 4, None),  # strip offsets, filled in below
        (277, 3, [channels]),
        (278, 4, [rows_per_strip]),
        (279, 4, [min(rows_per_strip, height - k * rows_per_strip) * row_bytes for k in range(strips)]),
        (284, 3, [1]),
        (339, 3, [1] * channels),
    ]
    if channels == 4:
        tags.append((338, 3, [2]))  # unassociated alpha
    tags.sort()
    directory_size = 2 + 12 * len(tags) + 4
    extra_start = 8 + directory_size

    def extra_size(kind, values):
        size = TAG_TYPES[kind][1] * len(values)
        return 0 if size <= 4 else size + (size & 1)

    lengths = {273: strips}
    total_extra = sum(
        extra_size(kind, values if values is not None else [0] * lengths[tag]) for tag, kind, values in tags
    )
    data_offset = extra_start + total_extra
    data_offset += -data_offset % 16
    offsets = [data_offset + k * rows_per_strip * row_bytes for k in range(strips)]
    entries, extra = [], b""
    for tag, kind, values in tags:
        values = offsets if tag == 273 else values
        code, size = TAG_TYPES[kind]
        payload = struct.pack(f"<{len(values)}{code}", *values)
        if len(payload) <= 4:
            entries.append(struct.pack("<HHI", tag, kind, len(values)) + payload.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", tag, kind, len(values), extra_start + len(extra)))
            extra += payload + b"\0" * (len(payload) & 1)
    head = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + b"".join(entries) + b"\0\0\0\0"
    return (head + extra).ljust(data_offset, b"\0")
