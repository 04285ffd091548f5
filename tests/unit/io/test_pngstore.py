"""Stored PNG fast path: valid files any decoder reads exactly, and a reader that says None rather than guess."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from pixelflow.io.pngstore import decode_stored_png, stored_png_encoder

SIGNATURE = b"\x89PNG\r\n\x1a\n"
STORED = [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
# 1x1; odd-sized rows; a stream of exactly one full stored block (255 * 257 bytes for grey uint8);
# several blocks; rows longer than one block.
SIZES = [(1, 1), (2, 7), (5, 13), (255, 256), (300, 301), (2, 9000)]
KINDS = {"grey": (), "rgb": (3,), "rgba": (4,)}
DTYPES = ["uint8", "uint16"]
FORMS = [(size + KINDS[kind], dtype) for size in SIZES for kind in KINDS for dtype in DTYPES]
SMALL_FORMS = [((5, 13) + extra, dtype) for extra in KINDS.values() for dtype in DTYPES]


def random_image(shape, dtype, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


def swap_red_blue(array):
    """OpenCV's BGR(A) to RGB(A) and back; grey passes through."""
    return array[..., [2, 1, 0, *range(3, array.shape[2])]] if array.ndim == 3 else array


def opencv_decode(data):
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return None if array is None else swap_red_blue(array)


def opencv_encode(array, params):
    ok, buffer = cv2.imencode(".png", swap_red_blue(array), params)
    assert ok
    return buffer.tobytes()


def chunks_of(data):
    """The (type, body, stored CRC) of every chunk of a well-formed PNG."""
    assert data[:8] == SIGNATURE
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack_from(">I", data, position + 8 + length)
        chunks.append((kind, body, crc))
        position += 12 + length
    assert position == len(data)
    return chunks


def png_of(chunks):
    """A PNG holding ``chunks`` as (type, body) pairs, each with its correct CRC."""
    parts = [SIGNATURE]
    for kind, body, *_ in chunks:
        parts += [struct.pack(">I", len(body)), kind, body, struct.pack(">I", zlib.crc32(kind + body))]
    return b"".join(parts)


def filtered_rows(array, filter_byte=0):
    """The PNG rows of ``array``: a filter byte, then big-endian samples."""
    samples = array.astype(array.dtype.newbyteorder(">")).reshape(array.shape[0], -1).view(np.uint8)
    return np.hstack([np.full((array.shape[0], 1), filter_byte, np.uint8), samples]).tobytes()


def stored_blocks(stream):
    """The payloads of the stored deflate blocks of a zlib ``stream``, checking every header."""
    assert (stream[0] * 256 + stream[1]) % 31 == 0 and stream[0] & 0x0F == 8 and not stream[1] & 0x20
    payloads, position, final = [], 2, False
    while not final:
        header, length, complement = struct.unpack_from("<BHH", stream, position)
        assert header in (0, 1) and complement == length ^ 0xFFFF  # BTYPE 00: stored
        final = header == 1
        payloads.append(stream[position + 5 : position + 5 + length])
        position += 5 + length
    assert position == len(stream) - 4
    return payloads


# Encoder ----------------------------------------------------------------------


@pytest.mark.parametrize("shape, dtype", FORMS)
def test_encoder_output_decodes_exactly_with_opencv_and_pillow(shape, dtype):
    image = random_image(shape, dtype)
    data = stored_png_encoder(shape, dtype)(image)
    np.testing.assert_array_equal(opencv_decode(data), image, strict=True)
    with Image.open(io.BytesIO(data)) as opened:
        pillow = np.asarray(opened)
    if dtype == "uint16" and image.ndim == 3:
        np.testing.assert_array_equal(pillow, (image >> 8).astype(np.uint8))  # Pillow keeps 8 bits of 16-bit colour
    else:
        np.testing.assert_array_equal(pillow, image, strict=True)


@pytest.mark.parametrize("shape, dtype", FORMS)
def test_encoder_writes_stored_blocks_of_unfiltered_rows_with_correct_checksums(shape, dtype):
    image = random_image(shape, dtype, seed=1)
    chunks = chunks_of(stored_png_encoder(shape, dtype)(image))
    assert [kind for kind, _, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert all(crc == zlib.crc32(kind + body) for kind, body, crc in chunks)
    depth, colour = {"uint8": 8, "uint16": 16}[dtype], {(): 0, (3,): 2, (4,): 6}[shape[2:]]
    assert chunks[0][1] == struct.pack(">IIBBBBB", shape[1], shape[0], depth, colour, 0, 0, 0)
    assert chunks[2][1] == b""
    stream = chunks[1][1]
    payloads = stored_blocks(stream)
    rows = filtered_rows(image)
    assert all(0 < len(payload) <= 65535 for payload in payloads)
    assert len(payloads) == -(-len(rows) // 65535)
    assert b"".join(payloads) == rows
    assert stream[-4:] == struct.pack(">I", zlib.adler32(rows))


def test_encoder_reuses_nothing_visible_between_calls():
    shape = (40, 30, 3)
    encode = stored_png_encoder(shape, np.uint8)
    first, second = random_image(shape, "uint8", 1), random_image(shape, "uint8", 2)
    first_data = encode(first)
    second_data = encode(second)
    np.testing.assert_array_equal(opencv_decode(first_data), first)
    np.testing.assert_array_equal(opencv_decode(second_data), second)
    assert encode(first) == first_data


def test_encoder_takes_non_contiguous_arrays():
    image = random_image((20, 30, 4), "uint16")
    view = image[::2, ::3, :3]
    np.testing.assert_array_equal(opencv_decode(stored_png_encoder(view.shape, "uint16")(view)), view)


@pytest.mark.parametrize(
    "shape, dtype, words",
    [
        ((4, 5), "float32", "dtype"),
        ((4, 5), "int16", "dtype"),
        ((4, 5), "uint32", "dtype"),
        ((4, 5), "bool", "dtype"),
        ((4, 5), "no such type", "dtype"),
        ((4,), "uint8", "shape"),
        ((4, 5, 1), "uint8", "shape"),
        ((4, 5, 2), "uint8", "shape"),
        ((4, 5, 5), "uint8", "shape"),
        ((4, 5, 3, 1), "uint8", "shape"),
        ((0, 5), "uint8", "shape"),
        ((4, 0, 3), "uint16", "shape"),
        ((4.0, 5), "uint8", "shape"),
    ],
)
def test_encoder_rejects_unsupported_forms(shape, dtype, words):
    with pytest.raises(ValueError, match=f"unsupported {words}"):
        stored_png_encoder(shape, dtype)


@pytest.mark.parametrize(
    "shape, dtype", [((4, 6), "uint8"), ((5, 5), "uint16"), ((1, 5, 5), "uint8"), ((5, 5), "int8")]
)
def test_encoder_rejects_arrays_of_another_form(shape, dtype):
    with pytest.raises(ValueError, match="takes"):
        stored_png_encoder((5, 5), np.uint8)(np.zeros(shape, dtype))


# Decoder ----------------------------------------------------------------------


@pytest.mark.parametrize("shape, dtype", FORMS)
def test_decoder_reads_encoder_output_exactly(shape, dtype):
    image = random_image(shape, dtype, seed=2)
    decoded = decode_stored_png(stored_png_encoder(shape, dtype)(image), shape, dtype)
    np.testing.assert_array_equal(decoded, image, strict=True)
    assert decoded.dtype.isnative and decoded.flags.c_contiguous and decoded.flags.writeable


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_decoder_takes_any_bytes_like(wrap):
    image = random_image((6, 7, 3), "uint8")
    data = stored_png_encoder(image.shape, image.dtype)(image)
    np.testing.assert_array_equal(decode_stored_png(wrap(data), image.shape, image.dtype), image)


@pytest.mark.parametrize("shape, dtype", FORMS)
def test_decoder_matches_opencv_on_opencv_stored_pngs(shape, dtype):
    data = opencv_encode(random_image(shape, dtype, seed=3), STORED)
    decoded = decode_stored_png(data, shape, dtype)
    assert decoded is not None
    np.testing.assert_array_equal(decoded, opencv_decode(data), strict=True)


@pytest.mark.parametrize("level", [1, 6, 9])
@pytest.mark.parametrize("shape, dtype", SMALL_FORMS)
def test_decoder_reads_compressed_unfiltered_pngs(shape, dtype, level):
    image = random_image(shape, dtype, seed=4) // 16  # compressible
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    data = opencv_encode(image, params)
    np.testing.assert_array_equal(decode_stored_png(data, shape, dtype), image, strict=True)


@pytest.mark.parametrize("pattern", ["noise", "flat", "ramp"])
@pytest.mark.parametrize("shape, dtype", SMALL_FORMS + [((64, 70, 3), "uint8"), ((64, 70), "uint16")])
def test_decoder_is_right_or_none_on_opencv_default_pngs(shape, dtype, pattern):
    image = {
        "noise": random_image(shape, dtype, seed=5),
        "flat": np.full(shape, 7, dtype),
        "ramp": (np.arange(np.prod(shape)) % 251).astype(dtype).reshape(shape),
    }[pattern]
    data = opencv_encode(image, [])
    decoded = decode_stored_png(data, shape, dtype)
    if decoded is not None:
        np.testing.assert_array_equal(decoded, opencv_decode(data), strict=True)


def test_decoder_reads_rows_split_over_many_idat_chunks():
    image = random_image((30, 20, 3), "uint16", seed=6)
    ihdr, idat, iend = chunks_of(stored_png_encoder(image.shape, image.dtype)(image))
    stream = idat[1]
    cuts = [0, 0, 1, 2, 100, 101, 2000, len(stream), len(stream)]
    parts = [(b"IDAT", stream[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    np.testing.assert_array_equal(decode_stored_png(png_of([ihdr, *parts, iend]), image.shape, image.dtype), image)


@pytest.mark.parametrize(
    "expected_shape, expected_dtype",
    [
        ((5, 13, 3), "uint16"),
        ((6, 13, 3), "uint8"),
        ((5, 12, 3), "uint8"),
        ((13, 5, 3), "uint8"),
        ((5, 13, 4), "uint8"),
        ((5, 13), "uint8"),
        ((5, 13, 3), "float32"),
        ((5, 13, 2), "uint8"),
        ((5, 13, 3), "not a dtype"),
    ],
)
def test_decoder_returns_none_for_another_shape_or_dtype(expected_shape, expected_dtype):
    image = random_image((5, 13, 3), "uint8")
    data = stored_png_encoder(image.shape, image.dtype)(image)
    assert decode_stored_png(data, expected_shape, expected_dtype) is None


ANCILLARY = {
    b"tRNS": {(): b"\x00\x07", (3,): b"\x00\x01\x00\x02\x00\x03", (4,): b"\x00\x01\x00\x02\x00\x03"},
    b"gAMA": struct.pack(">I", 45455),
    b"sBIT": b"\x05\x05\x05\x05",
    b"PLTE": b"\x00\x00\x00\xff\xff\xff",
    b"tEXt": b"Comment\x00hello",
    b"pHYs": struct.pack(">IIB", 2835, 2835, 1),
    b"zzZz": b"private",
}


@pytest.mark.parametrize("extra", KINDS.values(), ids=KINDS)
@pytest.mark.parametrize("kind", ANCILLARY, ids=[kind.decode() for kind in ANCILLARY])
@pytest.mark.parametrize("where", [1, 2])  # before IDAT, or between IDAT and IEND
def test_decoder_returns_none_for_any_other_chunk(kind, extra, where):
    image = random_image((4, 5) + extra, "uint8")
    chunks = chunks_of(stored_png_encoder(image.shape, image.dtype)(image))
    body = ANCILLARY[kind][extra] if isinstance(ANCILLARY[kind], dict) else ANCILLARY[kind]
    chunks.insert(where, (kind, body))
    assert decode_stored_png(png_of(chunks), image.shape, image.dtype) is None


def test_decoder_returns_none_for_pillow_transparency():
    image = random_image((6, 5, 3), "uint8")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", transparency=(1, 2, 3), compress_level=0)
    assert b"tRNS" in buffer.getvalue()
    assert decode_stored_png(buffer.getvalue(), image.shape, image.dtype) is None


@pytest.mark.parametrize(
    "index, value",
    [(3, 6), (7, 7), (8, 16), (9, 0), (9, 3), (9, 4), (9, 6), (10, 1), (11, 1), (12, 1)],
    ids=["width", "height", "bit-depth", "grey", "palette", "grey-alpha", "rgba", "compression", "filter", "interlace"],
)
def test_decoder_returns_none_for_another_ihdr(index, value):
    image = random_image((6, 5, 3), "uint8")
    ihdr, *rest = chunks_of(stored_png_encoder(image.shape, image.dtype)(image))
    fields = bytearray(ihdr[1])  # width, height, bit depth, colour type, compression, filter, interlace
    fields[index] = value
    assert bytes(fields) != ihdr[1]
    assert decode_stored_png(png_of([(b"IHDR", bytes(fields)), *rest]), image.shape, image.dtype) is None


@pytest.mark.parametrize("filter_byte", [1, 2, 3, 4])
def test_decoder_returns_none_for_filtered_rows(filter_byte):
    image = random_image((6, 5, 3), "uint8")
    ihdr, _, iend = chunks_of(stored_png_encoder(image.shape, image.dtype)(image))
    rows = bytearray(filtered_rows(image))
    rows[3 * (1 + 5 * 3)] = filter_byte  # only the fourth row is filtered
    assert decode_stored_png(png_of([ihdr, (b"IDAT", zlib.compress(bytes(rows))), iend]), image.shape, "uint8") is None


def broken_layouts(image):
    """PNGs of ``image`` whose structure or stream is inconsistent, by name."""
    data = stored_png_encoder(image.shape, image.dtype)(image)
    ihdr, idat, iend = chunks_of(data)
    rows = filtered_rows(image)
    return {
        "no IEND": png_of([ihdr, idat]),
        "no IDAT": png_of([ihdr, iend]),
        "IEND twice": png_of([ihdr, idat, iend, iend]),
        "IDAT after IEND": png_of([ihdr, iend, idat]),
        "IHDR twice": png_of([ihdr, ihdr, idat, iend]),
        "IEND not empty": png_of([ihdr, idat, (b"IEND", b"\x00")]),
        "bytes after IEND": data + b"\x00",
        "bytes after the stream": png_of([ihdr, (b"IDAT", idat[1] + b"\x00"), iend]),
        "row missing": png_of([ihdr, (b"IDAT", zlib.compress(rows[: -(len(rows) // image.shape[0])])), iend]),
        "byte missing": png_of([ihdr, (b"IDAT", zlib.compress(rows[:-1])), iend]),
        "byte too many": png_of([ihdr, (b"IDAT", zlib.compress(rows + b"\x00")), iend]),
        "wrong Adler-32": png_of([ihdr, (b"IDAT", idat[1][:-1] + bytes([idat[1][-1] ^ 1])), iend]),
        "raw deflate": png_of([ihdr, (b"IDAT", zlib.compress(rows)[2:-4]), iend]),
        "stream cut": png_of([ihdr, (b"IDAT", zlib.compress(rows)[:-5]), iend]),
        "length past the end": data[:-12] + struct.pack(">I", 1) + data[-8:],
        "huge length": data[:33] + b"\xff\xff\xff\xff" + data[37:],
    }


@pytest.mark.parametrize("name", broken_layouts(random_image((3, 4), "uint8")))
@pytest.mark.parametrize("shape, dtype", [((3, 4), "uint8"), ((3, 4, 4), "uint16")])
def test_decoder_returns_none_for_inconsistent_data(shape, dtype, name):
    image = random_image(shape, dtype, seed=7)
    assert decode_stored_png(broken_layouts(image)[name], shape, dtype) is None


@pytest.mark.parametrize("shape, dtype", [((3, 4), "uint8"), ((3, 5, 3), "uint16"), ((300, 301), "uint8")])
def test_decoder_returns_none_for_every_truncation(shape, dtype):
    image = random_image(shape, dtype, seed=8)
    for data in (stored_png_encoder(shape, dtype)(image), opencv_encode(image, STORED)):
        cuts = range(len(data)) if len(data) < 1000 else [*range(100), *range(100, len(data), 997), *range(-100, 0)]
        for cut in cuts:
            assert decode_stored_png(data[:cut], shape, dtype) is None, cut


@pytest.mark.parametrize("shape, dtype", [((2, 3, 3), "uint8"), ((2, 3), "uint16")])
def test_decoder_is_right_or_none_for_every_corrupted_byte(shape, dtype):
    image = random_image(shape, dtype, seed=9)
    data = stored_png_encoder(shape, dtype)(image)
    rows = filtered_rows(image)
    rows_at = data.index(rows)
    for index in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            corrupted = bytearray(data)
            corrupted[index] ^= flip
            decoded = decode_stored_png(bytes(corrupted), shape, dtype)
            if rows_at <= index < rows_at + len(rows):
                assert decoded is None, index  # the Adler-32 catches any changed row byte
            elif decoded is not None:  # e.g. an unchecked chunk CRC, or padding bits of a block header
                np.testing.assert_array_equal(decoded, image, strict=True)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89", SIGNATURE, b"not a png at all, not at all", bytes(100), np.arange(256, dtype=np.uint8).tobytes()],
    ids=["empty", "one byte", "signature", "text", "zeros", "all bytes"],
)
def test_decoder_returns_none_for_non_png_data(data):
    assert decode_stored_png(data, (3, 4), "uint8") is None


@pytest.mark.parametrize("suffix", [".bmp", ".tiff", ".jpg"])
def test_decoder_returns_none_for_other_formats(suffix):
    image = random_image((8, 8, 3), "uint8")
    ok, buffer = cv2.imencode(suffix, image)
    assert ok
    assert decode_stored_png(buffer.tobytes(), image.shape, image.dtype) is None
