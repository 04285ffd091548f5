"""Tile libraries: pixel conversion, cutting and fitting, orientation, pooled features, provenance, library files."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from pixelflow.errors import WorkerError
from pixelflow.io.images import ImageError, read_image, write_image
from pixelflow.mosaics import tiles as tiles_module
from pixelflow.mosaics.tiles import (
    PROVENANCE_COLUMNS,
    area_weights,
    build_library,
    crop_box,
    cut_offsets,
    cut_tiles,
    evenly_spaced,
    fit_tile,
    grid_features,
    load_library,
    orient,
    pad_box,
    pooled_features,
    save_library,
    tile_shape,
    to_uint8,
    to_uint8_grey_or_rgb,
)
from skimage.color import rgb2lab

RNG = np.random.default_rng(4)


def test_to_uint8_rescales_16_bit_float_and_bool():
    levels = np.array([0, 257, 65535, 32896], np.uint16)
    assert to_uint8(levels).tolist() == [0, 1, 255, 128]
    assert to_uint8(np.array([0.0, 0.5, 1.0, 1.7, -1.0], np.float32)).tolist() == [0, 128, 255, 255, 0]
    assert to_uint8(np.array([True, False])).tolist() == [255, 0]
    with pytest.raises(ImageError, match="int32"):
        to_uint8(np.zeros(3, np.int32), "x.tif")


def test_alpha_is_composited_over_white():
    rgba = RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    out = to_uint8_grey_or_rgb(rgba)
    alpha = rgba[..., 3:].astype(float) / 255
    expected = np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha))
    assert out.shape == (5, 6, 3) and np.abs(out.astype(int) - expected).max() <= 1
    grey_alpha = rgba[..., [0, 3]]
    assert to_uint8_grey_or_rgb(grey_alpha).shape == (5, 6)
    assert to_uint8_grey_or_rgb(rgba[..., :1]).shape == (5, 6)


@pytest.mark.parametrize("shape", [(48, 64), (50, 70, 3)])
def test_cut_tiles_are_the_non_overlapping_pieces_in_row_order(shape):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    tiles = cut_tiles(image, 16)
    expected = [image[r : r + 16, c : c + 16] for r in range(0, shape[0] - 15, 16) for c in range(0, shape[1] - 15, 16)]
    assert len(tiles) == len(expected) == (shape[0] // 16) * (shape[1] // 16)
    assert all(np.array_equal(a, b) for a, b in zip(tiles, expected, strict=True))


def test_orient_gives_each_rotation_then_mirrors():
    tiles = RNG.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    out = orient(tiles, (0, 90, 270), flip=True)
    assert out.shape == (18, 4, 4, 3)
    for i, tile in enumerate(tiles):
        assert np.array_equal(out[3 + i], np.rot90(tile))
        assert np.array_equal(out[6 + i], np.rot90(tile, 3))
        assert np.array_equal(out[9 + 3 + i], np.fliplr(np.rot90(tile)))


def test_evenly_spaced_keeps_order_and_count():
    assert evenly_spaced(10, None).tolist() == list(range(10))
    kept = evenly_spaced(10, 4)
    assert kept.tolist() == [0, 2, 5, 7]


@pytest.mark.parametrize("size", [8, 10, 13])
def test_area_pooling_matches_opencv_inter_area(size):
    tiles = RNG.random((5, size, size, 3)).astype(np.float32) * 255
    rgb_tiles = np.rint(tiles).astype(np.uint8)
    pooled = pooled_features(rgb_tiles, "rgb", cells=4)
    weights = area_weights(size, 4)
    assert np.allclose(weights.sum(axis=1), 1)
    for tile, features in zip(rgb_tiles, pooled, strict=True):
        expected = cv2.resize(tile.astype(np.float32), (4, 4), interpolation=cv2.INTER_AREA)
        assert np.allclose(features, expected, atol=1e-3)


def test_lab_features_are_means_of_pixel_lab_values():
    tiles = RNG.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    features = grid_features(pooled_features(tiles, "lab"), 1)
    expected = rgb2lab(tiles / 255.0).mean(axis=(1, 2))
    assert np.allclose(features, expected, atol=1e-3)
    two = grid_features(pooled_features(tiles, "lab"), 2).reshape(6, 2, 2, 3)
    lab = rgb2lab(tiles / 255.0)
    assert np.allclose(two[:, 1, 0], lab[:, 8:, :8].mean(axis=(1, 2)), atol=1e-3)


def test_grey_tiles_have_the_features_of_their_rgb_copies():
    grey = RNG.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    assert np.allclose(pooled_features(grey), pooled_features(grey[..., None].repeat(3, -1)))


def test_tile_shape_takes_a_side_or_height_and_width():
    assert tile_shape(16) == (16, 16)
    assert tile_shape((8, 12)) == (8, 12) and tile_shape([8, 12]) == (8, 12)
    assert tile_shape(np.int64(5)) == (5, 5)
    for bad in (0, (0, 4), (4,), "16", (4.5, 4)):
        with pytest.raises(ValueError):
            tile_shape(bad)


@pytest.mark.parametrize(("shape", "tile"), [((48, 64), (8, 12)), ((50, 70, 3), (16, 10)), ((7, 40), (8, 8))])
def test_non_square_cut_tiles_are_the_pieces_at_their_offsets(shape, tile):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    tiles = cut_tiles(image, tile)
    top, left = cut_offsets(shape[0], shape[1], tile)
    assert tiles.shape == ((shape[0] // tile[0]) * (shape[1] // tile[1]), *tile, *shape[2:])
    assert len(top) == len(left) == len(tiles)
    for piece, row, col in zip(tiles, top, left, strict=True):
        assert np.array_equal(piece, image[row : row + tile[0], col : col + tile[1]])
    # Row-major: offsets increase along a row, then down.
    assert np.all(np.diff(top * shape[1] + left) > 0)


@pytest.mark.parametrize("shape", [(12, 20), (9, 14), (16, 10), (8, 24)])
@pytest.mark.parametrize("cells", [4, 8])
def test_non_square_pooling_matches_opencv_inter_area(shape, cells):
    tiles = RNG.integers(0, 256, (4, *shape, 3), dtype=np.uint8)
    pooled = pooled_features(tiles, "rgb", cells=cells)
    assert pooled.shape == (4, cells, cells, 3)
    for tile, features in zip(tiles, pooled, strict=True):
        expected = cv2.resize(tile.astype(np.float32), (cells, cells), interpolation=cv2.INTER_AREA)
        assert np.allclose(features, expected, atol=1e-3)
    lab = grid_features(pooled_features(tiles, "lab", cells=cells), 1)
    assert np.allclose(lab, rgb2lab(tiles / 255.0).mean(axis=(1, 2)), atol=1e-3)


SIZES = [(60, 100), (100, 60), (31, 17), (17, 31), (5, 5), (1, 9), (64, 48), (101, 203)]
TILES = [(16, 16), (10, 30), (30, 10), (7, 11), (1, 3)]


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("size", SIZES)
def test_crop_box_is_the_largest_centred_region_of_the_tiles_aspect(size, tile):
    height, width = size
    top, left, crop_height, crop_width = crop_box(height, width, tile)
    assert 1 <= crop_height <= height and 1 <= crop_width <= width
    assert crop_height == height or crop_width == width  # largest: it fills the image one way
    # Centred: the margins on either side differ by at most the odd pixel, which goes after the region.
    assert 0 <= (height - crop_height) - 2 * top <= 1 and 0 <= (width - crop_width) - 2 * left <= 1
    # Its aspect is the tile's, to the nearest pixel on the side that does not fill the image.
    if crop_height == height and crop_width < width:
        assert abs(crop_width - height * tile[1] / tile[0]) <= 0.5 or crop_width == 1
    elif crop_width == width and crop_height < height:
        assert abs(crop_height - width * tile[0] / tile[1]) <= 0.5 or crop_height == 1
    assert crop_box(height, width, tile) == (top, left, crop_height, crop_width)  # deterministic


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("size", SIZES)
def test_pad_box_keeps_the_aspect_and_centres_the_image(size, tile):
    height, width = size
    top, left, inner_height, inner_width = pad_box(height, width, tile)
    assert 1 <= inner_height <= tile[0] and 1 <= inner_width <= tile[1]
    assert inner_height == tile[0] or inner_width == tile[1]
    assert 0 <= (tile[0] - inner_height) - 2 * top <= 1 and 0 <= (tile[1] - inner_width) - 2 * left <= 1
    if inner_width == tile[1] and inner_height < tile[0]:
        assert abs(inner_height - height * tile[1] / width) <= 0.5 or inner_height == 1
    elif inner_height == tile[0] and inner_width < tile[1]:
        assert abs(inner_width - width * tile[0] / height) <= 0.5 or inner_width == 1


def test_crop_lands_on_the_centre_of_a_wide_image():
    # Red left strip, green centre square, blue right strip: the square crop is all green.
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    image[:, 20:80] = (0, 255, 0)
    image[:, 80:] = (0, 0, 255)
    tile = fit_tile(image, 20, "crop")
    assert tile.shape == (20, 20, 3) and np.all(tile == (0, 255, 0))
    # A wide tile from a tall image takes the middle band: rows 35-54 of 90.
    tall = np.zeros((90, 60), np.uint8)
    tall[35:55] = 200
    band = fit_tile(tall, (10, 30), "crop")
    assert band.shape == (10, 30) and np.all(band == 200)
    assert crop_box(90, 60, (10, 30)) == (35, 0, 20, 60)


@pytest.mark.parametrize(("size", "tile"), [((60, 100), (20, 20)), ((90, 60), (10, 30)), ((6, 9), (20, 30))])
def test_crop_resizes_like_opencv_area_when_shrinking_and_bilinear_when_enlarging(size, tile):
    image = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
    top, left, crop_height, crop_width = crop_box(*size, tile)
    crop = np.ascontiguousarray(image[top : top + crop_height, left : left + crop_width])
    shrinking = crop_height >= tile[0] and crop_width >= tile[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    expected = cv2.resize(crop, (tile[1], tile[0]), interpolation=interpolation)
    assert np.array_equal(fit_tile(image, tile, "crop"), expected)


def test_pad_keeps_the_whole_image_with_white_bars():
    image = RNG.integers(0, 200, (30, 60, 3), dtype=np.uint8)  # nothing white in it
    tile = fit_tile(image, 40, "pad")
    assert tile.shape == (40, 40, 3)
    assert pad_box(30, 60, 40) == (10, 0, 20, 40)
    assert np.all(tile[:10] == 255) and np.all(tile[30:] == 255)
    assert np.array_equal(tile[10:30], cv2.resize(image, (40, 20), interpolation=cv2.INTER_AREA))
    # A tall grey image in a wide tile: bars left and right, odd pixel after the image.
    tall = RNG.integers(0, 200, (40, 10), dtype=np.uint8)
    wide = fit_tile(tall, (20, 15), "pad")
    top, left, inner_height, inner_width = pad_box(40, 10, (20, 15))
    assert (top, inner_height, inner_width) == (0, 20, 5) and left == 5
    assert np.all(wide[:, :left] == 255) and np.all(wide[:, left + inner_width :] == 255)
    assert wide[:, left : left + inner_width].max() < 255
    with pytest.raises(ValueError, match="stretch"):
        fit_tile(image, 40, "stretch")


def test_orient_allows_quarter_turns_only_of_square_tiles():
    tiles = RNG.integers(0, 256, (3, 6, 8, 3), dtype=np.uint8)
    out = orient(tiles, (0, 180), flip=True)
    assert out.shape == (12, 6, 8, 3)
    assert all(np.array_equal(out[3 + i], tile[::-1, ::-1]) for i, tile in enumerate(tiles))
    for degrees in (90, 270, -90):
        with pytest.raises(ValueError) as caught:
            orient(tiles, (0, degrees))
        assert str(degrees) in str(caught.value) and "6x8" in str(caught.value)
    with pytest.raises(ValueError, match="45"):
        orient(tiles[:, :6, :6], (45,))
    assert orient(tiles[:, :6, :6], (90, 270)).shape == (6, 6, 6, 3)


def rebuilt_tile(images, provenance, index, tile, files):
    """The tile re-cut from its source image by its provenance row."""
    image = images[files[provenance["source"][index]]]
    top, left = provenance["top"][index], provenance["left"][index]
    piece = image[top : top + tile[0], left : left + tile[1]]
    piece = np.rot90(piece, provenance["rotation"][index] // 90)
    return np.fliplr(piece) if provenance["flip"][index] else piece


@pytest.mark.parametrize(
    ("tile", "rotations", "max_tiles"),
    [((12, 12), (0, 90, 180, 270), None), ((12, 12), (90, 0), 17), ((8, 14), (0, 180), None), ((8, 14), (180,), 9)],
)
def test_provenance_recuts_every_tile_from_its_source(tmp_path, tile, rotations, max_tiles):
    write_image(tmp_path / "a.png", RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    write_image(tmp_path / "b.png", RNG.integers(0, 256, (27, 33), dtype=np.uint8))
    write_image(tmp_path / "c.png", RNG.integers(0, 256, (5, 5), dtype=np.uint8))  # smaller than a tile
    paths = [str(tmp_path / name) for name in ("a.png", "b.png", "c.png")]
    library = build_library(paths, tile, "cut", rotations, flip=True, max_tiles=max_tiles)
    tiles, provenance, files = library["tiles"], library["provenance"], library["files"]
    assert files == paths and library["skipped"] == []
    assert set(provenance) == set(PROVENANCE_COLUMNS)
    assert all(len(values) == len(tiles) for values in provenance.values())
    full = sum((h // tile[0]) * (w // tile[1]) for h, w in ((40, 50), (27, 33))) * len(rotations) * 2
    assert len(tiles) == (full if max_tiles is None else max_tiles)
    images = {path: to_uint8_grey_or_rgb(read_image(path)) for path in paths}
    images = {path: image if image.ndim == 3 else image[..., None].repeat(3, -1) for path, image in images.items()}
    for index in range(len(tiles)):
        assert np.array_equal(tiles[index], rebuilt_tile(images, provenance, index, tile, files))
    assert provenance["flip"].dtype == bool and set(provenance["rotation"]) <= set(rotations)


@pytest.mark.parametrize("fit", ["crop", "pad"])
def test_fit_provenance_gives_the_crop_offset(tmp_path, fit):
    image = RNG.integers(0, 256, (30, 70, 3), dtype=np.uint8)
    write_image(tmp_path / "wide.png", image)
    library = build_library([tmp_path / "wide.png"], (10, 20), "fit", (0, 180), fit=fit)
    provenance = library["provenance"]
    assert library["tiles"].shape == (2, 10, 20, 3)
    expected = crop_box(30, 70, (10, 20))[:2] if fit == "crop" else (0, 0)
    assert (provenance["top"][0], provenance["left"][0]) == expected == (0, 5 if fit == "crop" else 0)
    assert np.array_equal(library["tiles"][0], fit_tile(image, (10, 20), fit))
    assert np.array_equal(library["tiles"][1], fit_tile(image, (10, 20), fit)[::-1, ::-1])
    assert provenance["rotation"].tolist() == [0, 180]


def exif_photo(path, pixels, orientation, fmt):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, fmt, exif=exif, **({"quality": 100} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_rotated_photos_give_tiles_as_a_viewer_shows_them(tmp_path, fmt, orientation):
    stored = np.zeros((16, 32, 3), np.uint8)  # stored 16 high, 32 wide: red left half, blue right half
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    path = tmp_path / f"photo.{fmt.lower()}"
    exif_photo(path, stored, orientation, fmt)
    library = build_library([path], 16, "cut")
    with Image.open(path) as pillow:
        shown = np.asarray(ImageOps.exif_transpose(pillow).convert("RGB"))
    assert shown.shape == (32, 16, 3)
    tiles = library["tiles"]
    assert tiles.shape == (2, 16, 16, 3)
    # A viewer shows it 32 high: the pieces are one above the other.
    assert library["provenance"]["top"].tolist() == [0, 16] and library["provenance"]["left"].tolist() == [0, 0]
    tolerance = 3 if fmt == "JPEG" else 0
    assert np.abs(tiles.astype(int) - cut_tiles(shown, 16)).max() <= tolerance
    # Turned clockwise (6) the left half ends on top; counter-clockwise (8), at the bottom.
    top_colour = tiles[0].reshape(-1, 3).mean(axis=0)
    assert (top_colour[0] > top_colour[2]) == (orientation == 6)


def test_library_images_of_every_mode_become_8_bit_grey_or_rgb(tmp_path):
    y, x = np.mgrid[0:16, 0:16]
    rgb = np.stack([x * 16, y * 16, 255 - x * 8], axis=-1).astype(np.uint8)
    alpha = (x * 17).astype(np.uint8)

    def white_composite(colour, opacity):
        weight = opacity[..., None].astype(float) / 255
        return np.rint(colour.astype(float) * weight + 255 * (1 - weight))

    expected = {}
    deep = RNG.integers(0, 65536, (16, 16, 3), dtype=np.uint16)
    write_image(tmp_path / "deep.png", deep)
    expected["deep.png"] = ((deep.astype(np.uint32) + 128) // 257).astype(float)
    write_image(tmp_path / "float.tif", (rgb / 255.0).astype(np.float32))
    expected["float.tif"] = rgb.astype(float)
    write_image(tmp_path / "rgba.png", np.dstack([rgb, alpha]))
    expected["rgba.png"] = white_composite(rgb, alpha)
    Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA").save(tmp_path / "la.png")
    expected["la.png"] = white_composite(rgb[..., [0, 0, 0]], alpha)
    palette = Image.fromarray(np.dstack([rgb, alpha]), "RGBA").quantize(64)
    palette.save(tmp_path / "palette.png")
    as_rgba = np.asarray(palette.convert("RGBA"))
    expected["palette.png"] = white_composite(as_rgba[..., :3], as_rgba[..., 3])
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    with Image.open(tmp_path / "cmyk.jpg") as pillow:
        expected["cmyk.jpg"] = np.asarray(pillow.convert("RGB")).astype(float)
    paths = [tmp_path / name for name in expected]
    library = build_library(paths, 16, "cut")
    tiles = library["tiles"]
    assert tiles.dtype == np.uint8 and tiles.shape == (len(paths), 16, 16, 3)
    for tile, (name, want) in zip(tiles, expected.items(), strict=True):
        tolerance = 2 if name == "cmyk.jpg" else 1
        assert np.abs(tile - want).max() <= tolerance, name


def test_to_uint8_grey_or_rgb_rescales_before_compositing():
    deep_rgba = RNG.integers(0, 65536, (4, 5, 4), dtype=np.uint16)
    out = to_uint8_grey_or_rgb(deep_rgba)
    eight = to_uint8(deep_rgba).astype(float)
    expected = np.rint(eight[..., :3] * eight[..., 3:] / 255 + 255 * (1 - eight[..., 3:] / 255))
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3) and np.abs(out - expected).max() <= 1
    grey_alpha = np.stack([np.full((3, 3), 0.2), np.full((3, 3), 0.5)], axis=-1).astype(np.float32)
    opacity = 128 / 255  # 0.5 as 8 bits
    assert np.all(to_uint8_grey_or_rgb(grey_alpha) == np.rint(51 * opacity + 255 * (1 - opacity)))
    with pytest.raises(ImageError, match="shape"):
        to_uint8_grey_or_rgb(np.zeros((3, 3, 5), np.uint8), "five.tif")


def test_grey_only_library_stays_grey_and_mixed_is_rgb(tmp_path):
    write_image(tmp_path / "grey.png", RNG.integers(0, 256, (32, 40), dtype=np.uint8))
    write_image(tmp_path / "deep.png", RNG.integers(0, 65536, (16, 16), dtype=np.uint16))
    write_image(tmp_path / "colour.png", RNG.integers(0, 256, (20, 33, 3), dtype=np.uint8))
    paths = [tmp_path / name for name in ("grey.png", "deep.png", "colour.png")]
    assert build_library(paths[:2], 16, "cut")["tiles"].shape == (5, 16, 16)
    assert build_library(paths, 16, "cut", rotations=(0, 180))["tiles"].shape == ((4 + 1 + 2) * 2, 16, 16, 3)


def good_and_bad_files(tmp_path):
    write_image(tmp_path / "a.png", RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    write_image(tmp_path / "c.png", RNG.integers(0, 256, (16, 48, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes((tmp_path / "a.png").read_bytes()[:100])
    paths = [
        str(tmp_path / "a.png"),
        str(tmp_path / "broken.png"),
        str(tmp_path / "missing.jpg"),
        str(tmp_path / "c.png"),
    ]
    return paths


@pytest.mark.parametrize("processes", [1, 2])
def test_skip_lists_unreadable_files_and_builds_from_the_rest(tmp_path, processes):
    paths = good_and_bad_files(tmp_path)
    library = build_library(paths, 16, "cut", (0, 90), processes=processes, on_bad_image="skip")
    assert [name for name, _ in library["skipped"]] == [paths[1], paths[2]]
    assert all(reason and not reason.startswith(name) for name, reason in library["skipped"])
    assert library["files"] == [paths[0], paths[3]]
    clean = build_library([paths[0], paths[3]], 16, "cut", (0, 90))
    assert np.array_equal(library["tiles"], clean["tiles"])
    assert all(np.array_equal(library["provenance"][c], clean["provenance"][c]) for c in PROVENANCE_COLUMNS)
    assert sorted(set(library["provenance"]["source"].tolist())) == [0, 1]


@pytest.mark.parametrize("processes", [1, 2])
def test_fail_names_the_unreadable_file(tmp_path, processes):
    paths = good_and_bad_files(tmp_path)
    # In order, the first bad file; with workers, whichever bad file a worker meets first stops the build.
    named = "broken.png" if processes == 1 else "(broken.png|missing.jpg)"
    with pytest.raises(WorkerError, match=named):
        build_library(paths, 16, "cut", processes=processes)


def test_skip_does_not_hide_programming_errors(tmp_path, monkeypatch):
    paths = good_and_bad_files(tmp_path)

    def broken_reader(path):
        raise TypeError("a bug, not a bad image")

    monkeypatch.setattr(tiles_module, "read_source", broken_reader)
    with pytest.raises(WorkerError, match="TypeError"):
        build_library(paths, 16, "cut", on_bad_image="skip")


def test_bad_settings_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="resize"):
        build_library([], 16, "resize")
    with pytest.raises(ValueError, match="stretch"):
        build_library([], 16, "fit", fit="stretch")
    with pytest.raises(ValueError, match="ignore"):
        build_library([], 16, "cut", on_bad_image="ignore")
    with pytest.raises(ValueError, match="90"):
        build_library([], (8, 16), "cut", rotations=(0, 90))
    empty = build_library([], (8, 16), "cut")
    assert empty["tiles"].shape == (0, 8, 16) and empty["files"] == []


def test_processes_do_not_change_the_library(tmp_path, monkeypatch):
    monkeypatch.setattr(tiles_module, "PARALLEL_BYTES", 1)  # small files, read by two workers all the same
    for index in range(7):
        shape = (20 + 7 * index, 30 + 5 * index) + ((3,) if index % 2 else ())
        write_image(tmp_path / f"{index}.png", RNG.integers(0, 256, shape, dtype=np.uint8))
    paths = sorted(str(path) for path in tmp_path.iterdir())
    for mode in ("cut", "fit"):
        one = build_library(paths, (8, 10), mode, (0, 180), True, 25, processes=1, fit="pad")
        two = build_library(paths, (8, 10), mode, (0, 180), True, 25, processes=2, fit="pad")
        assert np.array_equal(one["tiles"], two["tiles"]) and one["files"] == two["files"]
        assert all(np.array_equal(one["provenance"][c], two["provenance"][c]) for c in PROVENANCE_COLUMNS)
    assert tiles_module.useful_processes(paths, 2) == 2 and tiles_module.useful_processes(paths, 1) == 1
    monkeypatch.setattr(tiles_module, "PARALLEL_BYTES", 1 << 30)
    assert tiles_module.useful_processes(paths + ["missing.png"], 2) == 1


def test_saved_library_round_trips(tmp_path):
    paths = good_and_bad_files(tmp_path)
    library = build_library(paths, (8, 12), "cut", (0, 180), True, on_bad_image="skip")
    save_library(tmp_path / "lib.npz", library["tiles"], library["provenance"], library["files"], library["skipped"])
    loaded = load_library(tmp_path / "lib.npz")
    assert np.array_equal(loaded["tiles"], library["tiles"])
    assert all(np.array_equal(loaded["provenance"][c], library["provenance"][c]) for c in PROVENANCE_COLUMNS)
    assert loaded["provenance"]["flip"].dtype == bool
    assert loaded["files"] == library["files"] and all(type(name) is str for name in loaded["files"])
    assert loaded["skipped"] == library["skipped"]
    assert np.allclose(loaded["pooled"]["lab"], pooled_features(library["tiles"], "lab"))
    assert np.allclose(loaded["pooled"]["rgb"], pooled_features(library["tiles"], "rgb"))
    assert loaded["pooled"]["lab"].shape == (len(library["tiles"]), 8, 8, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "broken.png", "c.png", "lib.npz"]
    with np.load(tmp_path / "lib.npz", allow_pickle=False) as data:  # plain arrays, nothing pickled
        assert set(data.files) == {
            "tiles",
            "lab",
            "rgb",
            *PROVENANCE_COLUMNS,
            "files",
            "skipped_files",
            "skipped_reasons",
        }
    save_library(tmp_path / "empty.npz", library["tiles"][:0], {c: [] for c in PROVENANCE_COLUMNS}, [], [])
    empty = load_library(tmp_path / "empty.npz")
    assert empty["files"] == [] and empty["skipped"] == [] and len(empty["tiles"]) == 0
    with pytest.raises(ValueError, match="flip"):
        save_library(
            tmp_path / "bad.npz", library["tiles"], {c: library["provenance"][c] for c in PROVENANCE_COLUMNS[:4]}, []
        )


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_counts_every_image_once_skipped_ones_too(tmp_path, monkeypatch, processes):
    monkeypatch.setattr(tiles_module, "PARALLEL_BYTES", 1)  # small files, read by two workers all the same
    paths = good_and_bad_files(tmp_path)
    counts = []
    library = build_library(paths, 16, "cut", processes=processes, on_bad_image="skip", progress=counts.append)
    assert sum(counts) == len(paths) and all(count > 0 for count in counts)
    plain = build_library(paths, 16, "cut", processes=processes, on_bad_image="skip")
    assert np.array_equal(library["tiles"], plain["tiles"]) and library["skipped"] == plain["skipped"]
