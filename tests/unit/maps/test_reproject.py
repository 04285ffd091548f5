"""Reprojecting real image files: seams, poles, channels, bit depth, tiles, threads, georeferencing and bad input."""

import struct
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image
from pixelflow.io.images import ImageError, read_image, write_image
from pixelflow.maps import projections
from pixelflow.maps.georef import source_geometry
from pixelflow.maps.inverse_map import exact_coordinates, mapping_task
from pixelflow.maps.reproject import load_source, render_tiles, reproject_file
from pixelflow.runner import WorkerError

TMERC = {"kind": "transverse_mercator", "lon_0": 0.0}


def smooth_world(height=90, width=180, channels=3, dtype=np.uint8, seed=0):
    """A random but smooth, longitude-periodic test map."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 1, (height // 6, width // 6, channels))
    image = cv2.resize(np.concatenate([small, small[:, :1]], axis=1), (width + 6, height))[:, :width]
    image = image.reshape(height, width, channels)
    top = np.iinfo(dtype).max
    image = (image * top).astype(dtype)
    return image[..., 0] if channels == 1 else image


def run(tmp_path, image, projection, name="out.png", geometry=None, **options):
    """Reproject ``image`` (written as a PNG) with ``projection``, whose entry holds the output size."""
    source = tmp_path / "world.png"
    write_image(source, image)
    output = tmp_path / name
    facts = reproject_file(source, output, geometry or {}, projection, threads=2, pixels_per_thread=1000, **options)
    return facts, output


def test_equirectangular_recentred_on_the_antimeridian_is_the_source_rolled(tmp_path):
    image = smooth_world()
    for interpolation in ("nearest", "bilinear", "cubic"):
        _, output = run(
            tmp_path,
            image,
            {"kind": "equirectangular", "lon_0": 180, "width": 180, "height": 90},
            interpolation=interpolation,
        )
        assert np.array_equal(read_image(output), np.roll(image, 90, axis=1)), interpolation


@pytest.mark.parametrize("interpolation", ["bilinear", "cubic", "lanczos"])
def test_pixels_near_the_poles_see_the_polar_cap_not_the_other_pole(tmp_path, interpolation):
    image = np.full((90, 180, 3), 120, np.uint8)
    image[:15] = 200  # the Arctic
    image[-15:] = 40  # the Antarctic
    facts, output = run(
        tmp_path, image, {**TMERC, "width": 360, "height": 180}, interpolation=interpolation, threshold=0.0
    )
    result = read_image(output)
    task = mapping_task(TMERC, 360, 180, source_geometry({}, 180, 90))
    rows, cols = np.mgrid[0:180, 0:360]
    _, source_row = exact_coordinates(task, rows, cols)
    north, south = source_row < 8, source_row > 90 - 1 - 8
    assert north.sum() > 100 and south.sum() > 100
    assert (result[north] == 200).all()
    assert (result[south] == 40).all()


def test_poles_land_where_the_classic_demo_puts_them(tmp_path):
    image = np.full((90, 180, 3), 0, np.uint8)
    image[:3] = (255, 0, 0)
    image[-3:] = (0, 0, 255)
    _, output = run(tmp_path, image, {**TMERC, "width": 400, "height": 200})
    result = read_image(output)
    assert tuple(result[100, 300]) == (255, 0, 0)  # north pole at 90E
    assert tuple(result[100, 100]) == (0, 0, 255)  # south pole at 90W


def test_every_output_pixel_matches_brute_force_nearest_sampling(tmp_path):
    image = smooth_world(seed=4)
    projection = {"kind": "rotated_pole", "pole_latitude": 30, "pole_longitude": 45}
    facts, output = run(
        tmp_path, image, {**projection, "width": 240, "height": 120}, interpolation="nearest", threshold=0.0
    )
    task = mapping_task(projection, 240, 120, source_geometry({}, 180, 90))
    rows, cols = np.mgrid[0:120, 0:240]
    source_col, source_row = exact_coordinates(task, rows, cols)
    # Pixels a hair from a rounding tie may round either way in float32.
    clear = (np.abs(source_col % 1 - 0.5) > 0.01) & (np.abs(source_row % 1 - 0.5) > 0.01)
    expected = image[np.rint(source_row).astype(int) % 90, np.rint(source_col).astype(int) % 180]
    assert np.array_equal(read_image(output)[clear], expected[clear])


def test_orthographic_is_transparent_outside_the_disc(tmp_path):
    _, output = run(
        tmp_path, smooth_world(), {"kind": "orthographic", "lat_0": 20, "lon_0": 30, "width": 101, "height": 101}
    )
    result = read_image(output)
    assert result.shape == (101, 101, 4)
    rows, cols = np.mgrid[0:101, 0:101]
    radius = np.hypot(cols + 0.5 - 50.5, rows + 0.5 - 50.5)
    assert (result[radius > 50.6][:, 3] == 0).all() and (result[radius > 50.6] == 0).all()
    assert (result[radius < 50.0][:, 3] == 255).all()


def test_mercator_source_leaves_the_polar_caps_transparent(tmp_path):
    image = smooth_world(128, 128)
    _, output = run(
        tmp_path, image, {"kind": "equirectangular", "width": 180, "height": 90}, geometry={"projection": "mercator"}
    )
    result = read_image(output)
    assert result.shape == (90, 180, 4)
    assert (result[:2, :, 3] == 0).all() and (result[-2:, :, 3] == 0).all()
    assert (result[10:80, :, 3] == 255).all()


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("name", ["out.png", "out.tif"])
def test_channels_and_bit_depth_are_kept(tmp_path, channels, dtype, name):
    image = smooth_world(channels=channels, dtype=dtype, seed=channels)
    facts, output = run(tmp_path, image, {**TMERC, "width": 120, "height": 60}, name=name)
    result = read_image(output)
    assert result.dtype == dtype
    assert result.shape == ((60, 120) if channels == 1 else (60, 120, channels))
    assert facts["channels"] == channels
    if name.endswith(".tif"):
        with tifffile.TiffFile(output) as tif:  # uncompressed, its pixels in one piece
            page = tif.pages.first
            assert (page.compression, page.is_contiguous, page.shape, page.dtype) == (1, True, result.shape, dtype)
            stored = page.asarray()
        opencv = cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
        opencv = opencv if channels == 1 else opencv[..., [2, 1, 0, 3][:channels]]
        if channels == 4 and dtype == np.uint8:  # libtiff's RGBA reader premultiplies unassociated alpha
            assert np.array_equal(opencv[..., 3], stored[..., 3])
            assert np.abs(opencv[..., :3] - stored[..., :3] * (stored[..., 3:] / 255)).max() <= 0.5
        else:
            assert np.array_equal(opencv, stored)
        with Image.open(output) as pillow:
            # Pillow has no 16-bit colour modes: it keeps the high bytes.
            expected = stored >> 8 if channels > 1 and dtype == np.uint16 else stored
            assert np.array_equal(np.asarray(pillow), expected)


def test_tif_and_png_outputs_hold_the_same_pixels_and_tif_input_reads_the_same(tmp_path):
    image = smooth_world(seed=9)
    _, png = run(tmp_path, image, {**TMERC, "width": 200, "height": 100}, name="a.png")
    _, tif = run(tmp_path, image, {**TMERC, "width": 200, "height": 100}, name="a.tif")
    assert np.array_equal(read_image(png), read_image(tif))
    source = tmp_path / "world.tif"
    write_image(source, image)
    reproject_file(
        source, tmp_path / "b.png", {}, {**TMERC, "width": 200, "height": 100}, threads=2, pixels_per_thread=1000
    )
    assert np.array_equal(read_image(png), read_image(tmp_path / "b.png"))


def test_outputs_wider_than_opencv_remap_limit_work(tmp_path):
    image = smooth_world(seed=2)
    facts, output = run(
        tmp_path,
        image,
        {"kind": "equirectangular", "width": 40000, "height": 6},
        name="wide.tif",
        interpolation="nearest",
    )
    result = read_image(output)
    assert result.shape == (6, 40000, 3) and facts["tiles"] >= 3
    # Output column c covers source column floor(c * 180 / 40000): compare a stripe with direct indexing.
    columns = np.arange(40000)
    source_columns = np.rint((columns + 0.5) * 180 / 40000 - 0.5).astype(int) % 180
    ties = np.abs(((columns + 0.5) * 180 / 40000 - 0.5) % 1 - 0.5) < 0.01
    rows = np.rint((np.arange(6) + 0.5) * 90 / 6 - 0.5).astype(int)
    expected = image[rows][:, source_columns]
    assert np.array_equal(result[:, ~ties], expected[:, ~ties])


def test_scale_sets_the_width_from_the_source(tmp_path):
    facts, output = run(tmp_path, smooth_world(), {**TMERC, "scale": 1.5})
    assert (facts["width"], facts["height"]) == (270, 135)
    assert read_image(output).shape == (135, 270, 3)


def tiny_png_claiming(width, height) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such image file"),
        (b"", "not a readable image"),
        (b"latitude,longitude\n1,2\n", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable image"),
        (tiny_png_claiming(200000, 100000), "over the limit"),
    ],
    ids=["missing", "empty", "not-an-image", "corrupt", "decompression-bomb"],
)
def test_bad_map_files_fail_clearly_and_leave_the_output_alone(tmp_path, content, message):
    source = tmp_path / "world.png"
    if content is not None:
        source.write_bytes(content)
    output = tmp_path / "out.png"
    output.write_bytes(b"previous result")
    with pytest.raises(ImageError, match=message) as error:
        reproject_file(source, output, {}, {**TMERC, "width": 64, "height": 32}, threads=2, pixels_per_thread=1000)
    assert "world.png" in str(error.value)
    assert output.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out.png"] + (["world.png"] if content is not None else [])
    )


def test_truncated_png_fails_clearly(tmp_path):
    source = tmp_path / "world.png"
    write_image(source, smooth_world())
    source.write_bytes(source.read_bytes()[:200])
    with pytest.raises(ImageError, match="world.png"):
        reproject_file(
            source, tmp_path / "out.png", {}, {**TMERC, "width": 64, "height": 32}, threads=2, pixels_per_thread=1000
        )
    assert not (tmp_path / "out.png").exists()


def test_non_2_to_1_source_without_bounds_is_rejected(tmp_path):
    from pixelflow.maps.georef import GeometryError

    with pytest.raises(GeometryError, match="must be 2:1"):
        run(tmp_path, smooth_world(90, 200), {**TMERC, "width": 64, "height": 32})
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("size", [{"width": 0, "height": 10}, {"width": 10, "height": -1}])
def test_sizes_must_be_positive(tmp_path, size):
    with pytest.raises(ValueError, match="must be positive"):
        run(tmp_path, smooth_world(), {**TMERC, **size})


def test_outputs_over_the_pixel_limit_are_refused_before_any_work(tmp_path):
    with pytest.raises(ImageError, match="over the limit of 100000"):
        run(tmp_path, smooth_world(), {**TMERC, "width": 1000, "height": 500}, pixel_limit=100_000)
    assert not (tmp_path / "out.png").exists()


def test_unknown_kind_fails_before_reading(tmp_path):
    with pytest.raises(projections.ProjectionError, match="unknown projection kind"):
        reproject_file(
            tmp_path / "absent.png", tmp_path / "out.png", {}, {"kind": "gnomonic", "width": 10, "height": 10}
        )


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("grid_step", [8, 12])  # 12: interpolation weights that are not powers of two
def test_the_number_of_threads_does_not_change_the_pixels(tmp_path, suffix, grid_step):
    source = tmp_path / f"world{suffix}"  # .tif: memory-mapped in place; .png: decoded
    write_image(source, smooth_world(seed=11))
    outputs = {}
    for threads in (1, 2, 3):
        outputs[threads] = tmp_path / f"{threads}.png"
        facts = reproject_file(
            source,
            outputs[threads],
            {},
            {**TMERC, "width": 160, "height": 80},
            threads=threads,
            pixels_per_thread=1000,
            grid_step=grid_step,
        )
        assert facts["tiles"] >= 3
    assert outputs[1].read_bytes() == outputs[2].read_bytes() == outputs[3].read_bytes()
    assert not list(tmp_path.glob(".*partial*"))


def test_a_failing_tile_stops_the_rest_and_is_named():
    started = []

    def render(tile):
        started.append(tile)
        if tile[0] == 8:
            raise ValueError("broken tile")
        return 1

    tiles = [(row, row + 8, 0, 16) for row in range(0, 800, 8)]
    with pytest.raises(WorkerError, match=r"output rows 8-15, columns 0-15 failed: ValueError: broken tile"):
        render_tiles(render, tiles, threads=2)
    assert len(started) < len(tiles)
    assert render_tiles(lambda tile: 2, tiles, threads=2) == 2 * len(tiles)


@pytest.mark.parametrize("channels", [1, 4])
def test_uncompressed_tiff_sources_are_used_in_place_and_give_exact_pixels(tmp_path, channels):
    image = smooth_world(channels=channels, dtype=np.uint16, seed=21)
    source = tmp_path / "world.tif"
    write_image(source, image)
    assert load_source(source, 2, 1 << 30, in_place=True)[1]  # the memory-mapped path
    output = tmp_path / "out.tif"
    reproject_file(source, output, {}, {"kind": "equirectangular", "lon_0": 180, "width": 180, "height": 90}, threads=2,
                   pixels_per_thread=1000)  # fmt: skip
    assert np.array_equal(read_image(output), np.roll(image, 90, axis=1))


@pytest.mark.parametrize("threads", [1, 3])
def test_progress_gives_the_tile_count_then_counts_every_tile_once(tmp_path, threads):
    source = tmp_path / "world.png"
    write_image(source, smooth_world(seed=5))
    calls = []

    def progress(count, total=None):
        calls.append((count, total))

    projection = {**TMERC, "width": 160, "height": 80}
    options = {"threads": threads, "pixels_per_thread": 1000}
    facts = reproject_file(source, tmp_path / "counted.png", {}, projection, progress=progress, **options)
    assert facts["tiles"] >= 3
    assert calls[0] == (0, facts["tiles"])
    assert calls[1:] == [(1, None)] * facts["tiles"]
    reproject_file(source, tmp_path / "plain.png", {}, projection, **options)
    assert (tmp_path / "counted.png").read_bytes() == (tmp_path / "plain.png").read_bytes()


def test_render_tiles_counts_each_tile_as_it_is_done():
    tiles = [(row, row + 8, 0, 16) for row in range(0, 80, 8)]
    for threads in (1, 2):
        counts = []
        assert render_tiles(lambda tile: tile[0], tiles, threads, progress=counts.append) == sum(range(0, 80, 8))
        assert counts == [1] * len(tiles)
