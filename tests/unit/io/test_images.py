"""Image encoding and decoding: exact round trips, RGB channel order and clear errors."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from pixelflow.errors import ImageError
from pixelflow.formats import FORMATS
from pixelflow.io.images import (
    PNG_FILTERS,
    PNG_STRATEGIES,
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
