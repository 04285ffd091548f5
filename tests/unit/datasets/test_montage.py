"""Contact sheets: grid layout, 8-bit display conversion and the written PNG."""

import math

import numpy as np
import pytest
from PIL import Image
from pixelflow.datasets.montage import contact_sheet, thumbnail, to_display, write_montage, write_montage_of_images
from pixelflow.io.images import read_image, write_image

GAP = 2


def colour(position: int) -> tuple[int, int, int]:
    """A distinct colour per position (never the background)."""
    return (100 + position % 100, 50 + position // 100, 200)


def solid(height, width, rgb):
    image = np.empty((height, width, 3), np.uint8)
    image[...] = rgb
    return image


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 10, 64, 65])
def test_contact_sheet_is_a_near_square_grid_in_row_order(count):
    cell = 10
    smalls = [solid(cell, cell if n % 2 else 6, colour(n)) for n in range(count)]
    sheet = contact_sheet(smalls, cell, gap=GAP, background=7)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    rows, columns = (sheet.shape[0] - GAP) // (cell + GAP), (sheet.shape[1] - GAP) // (cell + GAP)
    assert sheet.shape[:2] == (rows * (cell + GAP) + GAP, columns * (cell + GAP) + GAP)
    assert rows * columns >= count  # room for all
    assert (rows - 1) * columns < count  # no empty row
    assert columns - 1 <= rows <= columns  # near-square, wider than tall
    assert columns == math.ceil(math.sqrt(count))  # the smallest square side holding them
    for n in range(count):
        row, column = divmod(n, columns)
        centre = (GAP + row * (cell + GAP) + cell // 2, GAP + column * (cell + GAP) + cell // 2)
        assert tuple(sheet[centre]) == colour(n)
    # Cells past the last image and the gaps are background.
    assert np.all(sheet[:GAP] == 7) and np.all(sheet[:, :GAP] == 7)
    painted = sum(small.shape[0] * small.shape[1] for small in smalls)
    assert np.sum(np.any(sheet != 7, axis=2)) == painted


def test_contact_sheet_needs_an_image():
    with pytest.raises(ValueError):
        contact_sheet([], 8)


def test_to_display_clips_floats_to_the_unit_interval():
    values = np.array([[-0.5, 0.0, 0.25, 0.5, 1.0, 1.5, np.nan, np.inf]], dtype=np.float32)
    display = to_display(values)
    assert display.dtype == np.uint8 and display.shape == (1, 8, 3)
    expected = [0, 0, round(0.25 * 255), 128, 255, 255, 0, 255]
    assert display[0, :, 0].tolist() == expected
    assert np.array_equal(display[..., 0], display[..., 1]) and np.array_equal(display[..., 0], display[..., 2])


def test_to_display_scales_16_bit_to_8_bit():
    values = np.arange(0, 65536, 97, dtype=np.uint16).reshape(1, -1, 1).repeat(3, axis=2)
    values = np.concatenate([values, np.full((1, 1, 3), 65535, np.uint16)], axis=1)
    display = to_display(values)
    assert display.dtype == np.uint8
    assert np.array_equal(display, (values // 256).astype(np.uint8))  # the high byte
    assert display.max() == 255 and display.min() == 0
    assert np.all(np.diff(display[0, :, 0].astype(int)) >= 0)  # order kept


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_to_display_turns_grey_into_rgb(dtype):
    grey = (np.arange(12).reshape(3, 4) * (1 if dtype != "float32" else 1 / 11)).astype(dtype)
    display = to_display(grey)
    assert display.shape == (3, 4, 3) and display.dtype == np.uint8
    assert np.array_equal(display[..., 0], display[..., 1]) and np.array_equal(display[..., 1], display[..., 2])
    assert np.array_equal(display[..., 0], to_display(np.stack([grey] * 3, axis=2))[..., 0])


def test_to_display_drops_alpha_and_keeps_rgb():
    rgba = np.random.default_rng(0).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    display = to_display(rgba)
    assert display.shape == (4, 5, 3) and display.flags["C_CONTIGUOUS"]
    assert np.array_equal(display, rgba[..., :3])


@pytest.mark.parametrize(("height", "width"), [(100, 50), (50, 100), (3, 3), (128, 128)])
def test_thumbnail_fits_the_cell_and_keeps_the_aspect(height, width):
    small = thumbnail(np.zeros((height, width, 3), np.uint8), 32)
    assert max(small.shape[:2]) == 32
    assert abs(small.shape[0] / small.shape[1] - height / width) <= 2 / 32 * max(1, height / width)


@pytest.mark.parametrize("processes", [1, 2])
def test_write_montage_writes_a_png_of_the_images(tmp_path, processes):
    paths = []
    for n in range(5):
        path = tmp_path / f"in_{n}.png"
        write_image(path, solid(20, 20, colour(n)))
        paths.append(path)
    grey16 = tmp_path / "grey16.tif"
    write_image(grey16, np.full((10, 20), 256 * 77, np.uint16))
    paths.append(grey16)
    output = tmp_path / "out" / "montage.png"
    shape = write_montage(output, paths, 16, processes)
    assert output.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(output) as pillow:
        assert pillow.format == "PNG" and pillow.mode == "RGB"
        assert (pillow.height, pillow.width, 3) == shape
    sheet = read_image(output)
    assert sheet.shape == shape
    columns = math.ceil(math.sqrt(len(paths)))
    for n in range(len(paths)):
        row, column = divmod(n, columns)
        centre = (GAP + row * (16 + GAP) + 8, GAP + column * (16 + GAP) + 8)
        assert tuple(sheet[centre]) == (colour(n) if n < 5 else (77, 77, 77))


def test_write_montage_rejects_a_bad_cell(tmp_path):
    with pytest.raises(ValueError, match="cell"):
        write_montage(tmp_path / "m.png", [], 0, 1)


def test_a_montage_of_arrays_is_the_montage_of_the_same_images_in_files(tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 65536, (12, 9, 3), dtype=np.uint16) for _ in range(5)]
    images += [rng.random((7, 13), dtype=np.float32)]
    paths = []
    for n, image in enumerate(images):
        paths.append(tmp_path / f"in_{n}.tif")
        write_image(paths[-1], image)
    from_files = write_montage(tmp_path / "files.png", paths, 16, 1)
    from_arrays = write_montage_of_images(tmp_path / "arrays.png", iter(images), 16)
    assert from_arrays == from_files
    assert (tmp_path / "arrays.png").read_bytes() == (tmp_path / "files.png").read_bytes()
    with pytest.raises(ValueError, match="cell"):
        write_montage_of_images(tmp_path / "m.png", images, 0)
    with pytest.raises(ValueError, match="at least one image"):
        write_montage_of_images(tmp_path / "m.png", [], 8)
