"""Image encoding and decoding: exact round trips, RGB channel order and clear errors."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from pixelflow.errors import ImageError
from pixelflow.formats import FORMATS
from pixelflow.io.images import (
    PNG_FILTERS,
    PNG_STRATEGIES,
    apply_orientation,
    decode_image,
    encode_image,
    image_channels,
    read_image,
    write_image,
)

SHAPES = {"grey": (5, 7), "rgb": (5, 7, 3), "rgba": (5, 7, 4)}
ROUND_TRIPS = [
    ("png", "uint8"),
    ("png", "uint16"),
    ("tiff", "uint8"),
    ("tiff", "uint16"),
    ("tiff", "float32"),
    ("bmp", "uint8"),
]


def random_image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        # Include values outside [0, 1] and awkward ones: a float TIFF must keep every bit.
        image = rng.normal(0.5, 2.0, size=shape).astype(np.float32)
        image.flat[:3] = [0.0, 1.0, np.float32(1 / 3)]
        return image
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize(("fmt", "dtype"), ROUND_TRIPS)
def test_encode_decode_round_trip_is_exact(fmt, dtype, kind):
    image = random_image(SHAPES[kind], dtype)
    decoded = decode_image(encode_image(image, fmt), f"image{FORMATS[fmt].suffix}")
    assert decoded.dtype == image.dtype
    assert decoded.shape == image.shape
    assert np.array_equal(decoded, image)


@pytest.mark.parametrize("compression", [0, 1, 9])
@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_compressed_round_trip_is_exact(fmt, compression):
    image = random_image((16, 16, 3), "uint16", seed=compression)
    assert np.array_equal(decode_image(encode_image(image, fmt, compression)), image)


def test_write_then_read_a_file(tmp_path):
    image = random_image((6, 4, 3), "uint16")
    write_image(tmp_path / "a.tif", image)
    assert np.array_equal(read_image(tmp_path / "a.tif"), image)
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]
    with pytest.raises(ValueError, match=r"\.jpg"):
        write_image(tmp_path / "b.jpg", image)


@pytest.mark.parametrize("fmt", ["png", "tiff", "bmp"])
def test_channel_order_is_rgb(tmp_path, fmt):
    red = np.zeros((4, 6, 3), np.uint8)
    red[..., 0] = 255
    path = tmp_path / f"red{FORMATS[fmt].suffix}"
    write_image(path, red)
    decoded = read_image(path)
    assert decoded[..., 0].min() == 255 and decoded[..., 1:].max() == 0
    # An independent reader agrees that channel 0 is red.
    with Image.open(path) as pillow:
        assert pillow.mode == "RGB"
        assert np.array_equal(np.asarray(pillow), red)


def test_rgba_channel_order_agrees_with_pillow(tmp_path):
    image = np.zeros((3, 3, 4), np.uint8)
    image[..., 0], image[..., 1], image[..., 2], image[..., 3] = 200, 100, 50, 25
    write_image(tmp_path / "rgba.png", image)
    with Image.open(tmp_path / "rgba.png") as pillow:
        assert pillow.mode == "RGBA"
        assert np.array_equal(np.asarray(pillow), image)
    # And what Pillow writes, pixelflow reads in the same order.
    Image.fromarray(image, "RGBA").save(tmp_path / "pillow.png")
    assert np.array_equal(read_image(tmp_path / "pillow.png"), image)


@pytest.mark.parametrize(
    ("fmt", "dtype"),
    [(fmt, dtype) for fmt in FORMATS for dtype in ("uint8", "uint16", "float32") if dtype not in FORMATS[fmt].dtypes],
)
def test_encode_rejects_dtypes_the_format_cannot_hold(fmt, dtype):
    with pytest.raises(ValueError) as caught:
        encode_image(random_image((4, 4), dtype), fmt)
    assert fmt in str(caught.value) and dtype in str(caught.value)


def test_encode_rejects_unknown_formats():
    with pytest.raises(ValueError, match="gif"):
        encode_image(random_image((4, 4), "uint8"), "gif")


def png_bytes():
    return encode_image(random_image((64, 64, 3), "uint8"), "png")


def jpeg_bytes():
    ok, buffer = cv2.imencode(".jpg", random_image((64, 64, 3), "uint8"))
    assert ok
    return buffer.tobytes()


BROKEN = {
    "empty.png": lambda: b"",
    "truncated.png": lambda: png_bytes()[: len(png_bytes()) // 2],
    "header-only.png": lambda: png_bytes()[:40],
    "garbage.png": lambda: np.random.default_rng(1).bytes(3000),
    "garbage.bin": lambda: np.random.default_rng(2).bytes(100),
    "truncated.jpg": lambda: jpeg_bytes()[: len(jpeg_bytes()) // 2],
    "truncated.JPEG": lambda: jpeg_bytes()[:-2],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_raise_image_error_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BROKEN[name]())
    with pytest.raises(ImageError) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    with pytest.raises(ImageError, match=name):
        decode_image(path.read_bytes(), name)


def test_missing_file_raises_image_error_naming_it(tmp_path):
    with pytest.raises(ImageError, match="nothing-here.png"):
        read_image(tmp_path / "nothing-here.png")


def test_complete_jpeg_decodes():
    image = decode_image(jpeg_bytes(), "fine.jpg")
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8


def test_gif_written_by_pillow_decodes_as_rgb(tmp_path):
    rgb = random_image((6, 8, 3), "uint8")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.gif")
    with Image.open(tmp_path / "palette.gif") as pillow:
        expected = np.asarray(pillow.convert("RGB"))
    decoded = read_image(tmp_path / "palette.gif")
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, expected)


@pytest.mark.parametrize("fmt", ["PCX", "TGA"])
def test_formats_opencv_cannot_read_decode_through_pillow(fmt):
    rgb = random_image((6, 8, 3), "uint8", seed=5)
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buffer, fmt)
    data = buffer.getvalue()
    # The fallback is what reads it: OpenCV itself cannot.
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None
    with Image.open(io.BytesIO(data)) as pillow:
        expected = np.asarray(pillow.convert("RGB"))
    decoded = decode_image(data, f"palette.{fmt.lower()}")
    assert decoded.shape == (6, 8, 3)
    assert np.array_equal(decoded, expected)


def test_pillow_fallback_keeps_grey_images_grey():
    grey = random_image((5, 9), "uint8", seed=6)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "TGA")
    assert np.array_equal(decode_image(buffer.getvalue(), "grey.tga"), grey)


def test_image_channels():
    assert image_channels(np.zeros((2, 3))) == 1
    assert image_channels(np.zeros((2, 3, 3))) == 3
    assert image_channels(np.zeros((2, 3, 4))) == 4


@pytest.mark.parametrize(
    "strategy, png_filter",
    [(strategy, "adaptive") for strategy in sorted(PNG_STRATEGIES)]
    + [("huffman_only", png_filter) for png_filter in sorted(PNG_FILTERS)],
)
@pytest.mark.parametrize("shape, dtype", [((40, 60, 3), np.uint8), ((40, 60), np.uint16), ((40, 60, 4), np.uint8)])
def test_every_png_strategy_and_filter_is_lossless(strategy, png_filter, shape, dtype):
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = (x * 3 + y * 5) % 200  # a smooth image with some repeats, like a map
    image = np.broadcast_to(smooth[..., None] if len(shape) == 3 else smooth, shape).astype(dtype)
    data = encode_image(np.ascontiguousarray(image), "png", 3, strategy, png_filter)
    np.testing.assert_array_equal(decode_image(data), image)


def test_the_png_filter_reaches_the_encoder():
    y, x = np.mgrid[0:64, 0:64]
    ramp = ((x * 3 + y * 5) % 256).astype(np.uint8)  # rows differ by a constant: "up" leaves runs
    sizes = {png_filter: len(encode_image(ramp, "png", 3, "huffman_only", png_filter)) for png_filter in PNG_FILTERS}
    assert sizes["up"] < sizes["none"]
    assert len(set(encode_image(ramp, "png", 3, "huffman_only", f) for f in ("none", "sub", "up"))) == 3


def test_the_png_strategy_reaches_the_encoder():
    image = np.random.default_rng(5).integers(0, 40, (64, 64, 3), dtype=np.uint8)
    encoded = {strategy: encode_image(image, "png", 3, strategy) for strategy in PNG_STRATEGIES}
    assert encoded["huffman_only"] != encoded["default"]


# --- EXIF orientation: the array is the image as a viewer shows it -------------------------------------------------

PILLOW_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def blocky_rgb(height=24, width=40):
    """Big flat blocks, distinct per position, so JPEG keeps them and any wrong turn shows."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x // 8) * 50, (y // 8) * 80, 255 - (x // 8) * 30], axis=-1).astype(np.uint8)


def pillow_bytes(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def as_viewer_shows(data, mode=None):
    with Image.open(io.BytesIO(data)) as pillow:
        shown = ImageOps.exif_transpose(pillow)
        return np.asarray(shown.convert(mode) if mode and shown.mode != mode else shown)


def orientation_exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", range(2, 9))
@pytest.mark.parametrize(("shape", "dtype"), [((5, 7), "uint8"), ((5, 7, 3), "uint8"), ((5, 7, 4), "uint16")])
def test_apply_orientation_makes_pillows_transpose(orientation, shape, dtype):
    image = random_image(shape, dtype, seed=orientation)
    pillow = Image.fromarray(image) if dtype == "uint8" else None
    got = apply_orientation(image, orientation)
    assert got.dtype == image.dtype and got.flags.c_contiguous
    if pillow is not None:
        assert np.array_equal(got, np.asarray(pillow.transpose(PILLOW_TRANSPOSE[orientation])))
    # Channel by channel for what Pillow cannot hold (16-bit RGBA), and numpy's path (5 channels) agrees.
    planes = image if image.ndim == 3 else image[..., None]
    for channel in range(planes.shape[2]):
        plane = Image.fromarray(planes[..., channel].astype(np.int32), "I")
        expected = np.asarray(plane.transpose(PILLOW_TRANSPOSE[orientation]))
        assert np.array_equal(got[..., channel] if got.ndim == 3 else got, expected)
    many = random_image((5, 7, 5), "uint8")
    assert np.array_equal(apply_orientation(many, orientation)[..., :4], apply_orientation(many[..., :4], orientation))
    assert apply_orientation(image, 1) is image and apply_orientation(image, 9) is image


ORIENTED_FILES = {
    "JPEG": {"quality": 100},
    "PNG": {},
    "WEBP": {"lossless": True},
    "TIFF": {},
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", sorted(ORIENTED_FILES))
def test_exif_orientation_is_applied_as_a_viewer_shows_it(fmt, orientation):
    rgb = blocky_rgb()
    data = pillow_bytes(Image.fromarray(rgb), fmt, exif=orientation_exif(orientation), **ORIENTED_FILES[fmt])
    decoded = decode_image(data, f"photo.{fmt.lower()}")
    expected = as_viewer_shows(data)
    assert decoded.shape == expected.shape == ((40, 24, 3) if orientation >= 5 else (24, 40, 3))
    tolerance = 2 if fmt == "JPEG" else 0
    assert np.abs(decoded.astype(int) - expected).max() <= tolerance


@pytest.mark.parametrize(("mode", "fmt"), [("L", "JPEG"), ("L", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("P", "PNG")])
def test_orientation_keeps_channels_and_alpha(mode, fmt):
    image = Image.fromarray(blocky_rgb()).convert(mode)
    if mode in ("RGBA", "LA"):
        image.putalpha(Image.fromarray(blocky_rgb()[..., 1]))
    data = pillow_bytes(image, fmt, exif=orientation_exif(6))
    decoded = decode_image(data)
    expected = as_viewer_shows(data, {"LA": "RGBA", "P": "RGB"}.get(mode))
    assert decoded.shape == expected.shape and decoded.shape[:2] == (40, 24)
    assert np.abs(decoded.astype(int) - expected).max() <= (2 if fmt == "JPEG" else 0)


def test_16_bit_png_orientation_keeps_the_bit_depth():
    grey = random_image((6, 9), "uint16", seed=3)
    data = pillow_bytes(Image.fromarray(grey), "PNG", exif=orientation_exif(8))
    decoded = decode_image(data)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, np.rot90(grey))
    assert np.array_equal(decoded, as_viewer_shows(data))


def test_xmp_orientation_counts_where_there_is_no_exif_one():
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="3"/></x:xmpmeta>'
    plain = pillow_bytes(Image.fromarray(blocky_rgb()), "JPEG", quality=100)
    data = pillow_bytes(Image.fromarray(blocky_rgb()), "JPEG", quality=100, xmp=xmp)
    decoded = decode_image(data)
    assert np.abs(decoded.astype(int) - as_viewer_shows(data)).max() <= 2
    assert np.array_equal(decoded, decode_image(plain)[::-1, ::-1])


def test_unreadable_exif_leaves_the_pixels_as_stored():
    plain = pillow_bytes(Image.fromarray(blocky_rgb()), "JPEG", quality=100)
    junk = b"Exif\x00\x00" + b"\x13" * 40
    broken = plain[:2] + b"\xff\xe1" + (len(junk) + 2).to_bytes(2, "big") + junk + plain[2:]
    assert np.array_equal(decode_image(broken, "broken-exif.jpg"), decode_image(plain, "plain.jpg"))


# --- Stored modes: what each becomes, against Pillow reading the same file ------------------------------------------


def test_cmyk_jpeg_becomes_rgb_close_to_pillows_conversion():
    cmyk = Image.frombytes("CMYK", (16, 12), random_image((12, 16, 4), "uint8", seed=8).tobytes())
    data = pillow_bytes(cmyk, "JPEG", quality=100)
    decoded = decode_image(data, "cmyk.jpg")
    expected = as_viewer_shows(data, "RGB")
    assert decoded.shape == (12, 16, 3) and decoded.dtype == np.uint8
    # OpenCV (libjpeg) and Pillow round the CMYK -> RGB products differently: at most 2 levels apart.
    difference = np.abs(decoded.astype(int) - expected)
    assert difference.max() <= 2 and difference.mean() < 1


def test_cmyk_tiff_becomes_rgb():
    cmyk = Image.frombytes("CMYK", (16, 12), random_image((12, 16, 4), "uint8", seed=9).tobytes())
    data = pillow_bytes(cmyk, "TIFF")
    decoded = decode_image(data, "cmyk.tif")
    assert decoded.shape == (12, 16, 3)
    assert np.abs(decoded.astype(int) - as_viewer_shows(data, "RGB")).max() <= 1


@pytest.mark.parametrize("transparency", ["none", "one index", "alpha palette"])
def test_palette_png_becomes_rgb_or_rgba_with_its_transparency(transparency):
    rgb = blocky_rgb()
    if transparency == "alpha palette":
        rgba = np.dstack([rgb, (np.arange(40)[None, :] * 6).repeat(24, 0).astype(np.uint8)])
        palette = Image.fromarray(rgba, "RGBA").quantize(32)
        data = pillow_bytes(palette, "PNG")
    else:
        palette = Image.fromarray(rgb).convert("P")
        options = {"transparency": int(np.asarray(palette)[0, 0])} if transparency == "one index" else {}
        data = pillow_bytes(palette, "PNG", **options)
    with Image.open(io.BytesIO(data)) as pillow:
        assert pillow.mode == "P" and (("transparency" in pillow.info) == (transparency != "none"))
    mode = "RGB" if transparency == "none" else "RGBA"
    decoded = decode_image(data, "palette.png")
    assert decoded.shape == (24, 40, len(mode))
    assert np.array_equal(decoded, as_viewer_shows(data, mode))
    if transparency != "none":
        assert decoded[..., 3].min() < 255


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_grey_alpha_becomes_rgba_with_equal_colour_channels(fmt):
    grey_alpha = random_image((6, 9, 2), "uint8", seed=10)
    data = pillow_bytes(Image.fromarray(grey_alpha, "LA"), fmt)
    decoded = decode_image(data)
    assert decoded.shape == (6, 9, 4) and decoded.dtype == np.uint8
    assert np.array_equal(decoded, as_viewer_shows(data, "RGBA"))
    assert np.array_equal(decoded[..., 3], grey_alpha[..., 1])
    assert all(np.array_equal(decoded[..., c], grey_alpha[..., 0]) for c in range(3))


@pytest.mark.parametrize(("mode", "fmt"), [("L", "PNG"), ("1", "PNG"), ("RGBA", "PNG"), ("RGBA", "TIFF")])
def test_grey_bilevel_and_rgba_files_read_as_pillow_reads_them(mode, fmt):
    pixels = random_image((6, 9, 4), "uint8", seed=11)
    image = Image.fromarray(pixels, "RGBA") if mode == "RGBA" else Image.fromarray(pixels[..., 0]).convert(mode)
    data = pillow_bytes(image, fmt)
    decoded = decode_image(data)
    expected = as_viewer_shows(data, "L" if mode == "1" else None)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, expected)
    if mode == "1":
        assert set(np.unique(decoded)) <= {0, 255}


def test_16_bit_grey_png_reads_exactly():
    grey = random_image((6, 9), "uint16", seed=12)
    data = pillow_bytes(Image.fromarray(grey), "PNG")
    decoded = decode_image(data)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, as_viewer_shows(data))


def test_16_bit_rgb_png_keeps_its_depth():
    rgb = random_image((6, 9, 3), "uint16", seed=13)
    data = encode_image(rgb, "png")
    decoded = decode_image(data)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, rgb)
    # Pillow holds 16-bit RGB as 8-bit, keeping the high byte: same channel order, same pixels.
    assert np.array_equal(decoded >> 8, as_viewer_shows(data))
