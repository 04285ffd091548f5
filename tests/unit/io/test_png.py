"""The band-by-band PNG writer against OpenCV's and Pillow's decoders."""

import numpy as np
import pytest
from PIL import Image
from pixelflow.io.images import read_image
from pixelflow.io.png import write_png_bands

RNG = np.random.default_rng(5)


def smooth(shape):
    """A photo-like image: a gradient with noise, so that every Paeth branch is taken."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = (rows * 3 + cols * 2) % 256
    if len(shape) == 3:
        base = base[..., None] + np.arange(shape[2]) * 40
    return np.clip(base + RNG.integers(-20, 21, shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 2), (37, 53, 3), (37, 53, 4), (1, 1, 3), (64, 1)])
@pytest.mark.parametrize("band", [1, 5, 64])
def test_bands_decode_to_the_image(tmp_path, shape, band):
    image = smooth(shape)
    path = tmp_path / "out.png"
    channels = 1 if len(shape) == 2 else shape[2]
    write_png_bands(path, shape[0], shape[1], channels, (image[top : top + band] for top in range(0, shape[0], band)))
    with Image.open(path) as decoded:
        assert np.array_equal(np.asarray(decoded), image)
    if channels != 2:  # OpenCV reads grey+alpha as RGBA
        assert np.array_equal(read_image(path), image)


def test_a_wrong_band_leaves_nothing(tmp_path):
    image = smooth((20, 30, 3))
    path = tmp_path / "out.png"
    with pytest.raises(ValueError, match="hold 15 rows, the image has 20"):
        write_png_bands(path, 20, 30, 3, [image[:15]])
    with pytest.raises(ValueError, match="not \\(30, 3\\) uint8 rows"):
        write_png_bands(path, 20, 30, 3, [image[:10, :, :2]])
    with pytest.raises(ValueError, match="more than the image's 20 rows"):
        write_png_bands(path, 20, 30, 3, [image, image])
    assert list(tmp_path.iterdir()) == []
