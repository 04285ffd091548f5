"""Reprojection of georeferenced sources to any CRS: positions against PROJ, outputs as GeoTIFF, PNG and COG."""

import cv2
import numpy as np
import pytest
import rasterio
from pixelflow.io.geotiff import raster_info, write_geotiff
from pixelflow.io.images import read_image
from pixelflow.maps import projections
from pixelflow.maps.crs import Locator, target_grid
from pixelflow.maps.georef import raster_geometry
from pixelflow.maps.inverse_map import Mapping, interpolated_coordinates
from pixelflow.maps.reproject import reproject_file
from pyproj import Transformer
from rasterio.enums import ColorInterp

WGS84_GLOBAL = (-180.0, 1.0, 0.0, 90.0, 0.0, -1.0)  # 360 x 180 pixels of one degree


def smooth_rgb(height, width, seed=1):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A global 360x180 RGB GeoTIFF in EPSG:4326, uncompressed (the in-place source path)."""
    path = tmp_path_factory.mktemp("crs") / "world.tif"
    write_geotiff(path, smooth_rgb(180, 360), "EPSG:4326", WGS84_GLOBAL, compression="none")
    return path


def mapping_for(source_path, target_crs, transform, width, height, threshold):
    info = raster_info(source_path)
    geometry = raster_geometry(info.width, info.height, info.transform, info.crs)
    locate = Locator(target_crs, geometry.crs)
    return Mapping({"crs": target_crs}, transform, width, height, geometry, threshold, 8, locate), info


@pytest.mark.parametrize(
    "target, bounds",
    [
        ("ESRI:54009", (-18040095.7, -9020047.85, 18040095.7, 9020047.85)),
        ("EPSG:3035", (2500000, 1350000, 7500000, 5500000)),
        ("EPSG:3413", (-4000000, -4000000, 4000000, 4000000)),
    ],
)
def test_interpolated_positions_are_within_the_threshold_of_proj(world, target, bounds):
    transform, width, height = target_grid(None, bounds=bounds, width=300, height=200)
    task, info = mapping_for(world, target, transform, width, height, 0.125)
    coords, _ = interpolated_coordinates(task, 0, height, 0, width)
    rows, cols = np.mgrid[0:height, 0:width]
    x = transform[0] + (cols + 0.5) * transform[1]
    y = transform[3] + (rows + 0.5) * transform[5]
    lon, lat = Transformer.from_crs(target, "EPSG:4326", always_xy=True).transform(x, y)
    lon, lat = np.where(np.isfinite(lon), lon, np.nan), np.where(np.isfinite(lat), lat, np.nan)
    truth_col = (lon + 180.0) - 0.5
    truth_row = (90.0 - lat) - 0.5
    both = np.isfinite(truth_col) & np.isfinite(coords[..., 0])
    assert both.sum() > 0.5 * (np.isfinite(truth_col)).sum()
    # The same pixels have a source, but for cells along the edge of the projection's domain.
    assert (np.isfinite(truth_col) != np.isfinite(coords[..., 0])).sum() <= 0.01 * both.sum()
    column_error = np.abs(coords[..., 0] - truth_col)[both]
    column_error = np.minimum(column_error, info.width - column_error)  # the source wraps at the antimeridian
    assert column_error.max() <= 0.125 + 1e-3
    assert np.abs(coords[..., 1] - truth_row)[both].max() <= 0.125 + 1e-3


def test_presets_take_the_closed_form_for_a_geographic_geotiff_and_agree_with_proj(world):
    projection = {"kind": "orthographic", "lat_0": 30.0, "lon_0": 10.0, "width": 120}
    width, height = projections.output_size(projection, 360)
    transform = projections.geotransform(projection, width, height)
    info = raster_info(world)
    geometry = raster_geometry(info.width, info.height, info.transform, info.crs)
    closed = Mapping(projection, transform, width, height, geometry, 0.0, 8)
    proj = Mapping(
        projection,
        transform,
        width,
        height,
        geometry,
        0.0,
        8,
        Locator(projections.proj_string(projection), geometry.crs),
    )
    a, _ = interpolated_coordinates(closed, 0, height, 0, width)
    b, _ = interpolated_coordinates(proj, 0, height, 0, width)
    both = np.isfinite(a[..., 0]) & np.isfinite(b[..., 0])
    assert both.sum() > 0.7 * width * height
    assert np.abs(a - b)[both].max() < 0.01


def test_tif_in_place_compressed_cog_and_png_hold_the_same_pixels_and_georeferencing(world, tmp_path):
    entry = {"crs": "EPSG:3035"}
    transform, width, height = target_grid(None, bounds=(2500000, 1350000, 7500000, 5500000), resolution=50000)
    grid = {"crs": "EPSG:3035", "transform": list(transform), "width": width, "height": height}
    info = raster_info(world)
    spec = {"crs": info.crs, "transform": list(info.transform)}
    outputs = {}
    for name, options in {
        "plain.tif": {"compression": "none"},
        "deflate.tif": {"compression": "zstd"},
        "cog.tif": {"compression": "deflate", "cog": True},
        "map.png": {},
    }.items():
        facts = reproject_file(world, tmp_path / name, spec, entry, grid=grid, **options)
        assert (facts["width"], facts["height"]) == (width, height) == (100, 83)
        outputs[name] = read_image(tmp_path / name) if name.endswith(".png") else None
        if name.endswith(".tif"):
            with rasterio.open(tmp_path / name) as out:
                assert out.crs.to_epsg() == 3035 and out.transform.to_gdal() == pytest.approx(transform)
                outputs[name] = np.moveaxis(out.read(), 0, -1)
    reference = outputs.pop("plain.tif")
    assert reference.shape == (83, 100, 4)
    for name, pixels in outputs.items():
        assert np.array_equal(pixels, reference), name


def test_a_signed_16_bit_source_becomes_a_geotiff_with_alpha_and_is_refused_as_png(tmp_path):
    source = (np.arange(180 * 360, dtype=np.int32).reshape(180, 360) % 2000 - 500).astype(np.int16)
    write_geotiff(tmp_path / "signed.tif", source, "EPSG:4326", WGS84_GLOBAL, compression="none")
    info = raster_info(tmp_path / "signed.tif")
    spec = {"crs": info.crs, "transform": list(info.transform)}
    transform, width, height = target_grid(None, bounds=(2500000, 1350000, 7500000, 5500000), resolution=50000)
    grid = {"crs": "EPSG:3035", "transform": list(transform), "width": width, "height": height}
    facts = reproject_file(tmp_path / "signed.tif", tmp_path / "out.tif", spec, {"crs": "EPSG:3035"}, grid=grid)
    with rasterio.open(tmp_path / "out.tif") as out:
        pixels, kinds = out.read(), out.colorinterp
    # grey and alpha, as gdalwarp -dstalpha writes a single band
    assert facts["channels"] == 2 and kinds == (ColorInterp.gray, ColorInterp.alpha) and pixels.dtype == np.int16
    assert pixels[0].min() >= -500 and pixels[0].max() <= 1499 and (pixels[0] < 0).any()
    with pytest.raises(ValueError, match="int16 pixels cannot be written as PNG"):
        reproject_file(tmp_path / "signed.tif", tmp_path / "out.png", spec, {"crs": "EPSG:3035"}, grid=grid)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("cog", [False, True])
def test_a_grey_source_gets_grey_and_alpha_in_a_geotiff_and_rgba_in_a_png(tmp_path, cog):
    source = (np.arange(30 * 360, dtype=np.int32).reshape(30, 360) * 7 % 60000).astype(np.uint16)  # 90°N to 60°N
    write_geotiff(tmp_path / "grey.tif", source, "EPSG:4326", WGS84_GLOBAL, compression="none")
    info = raster_info(tmp_path / "grey.tif")
    spec = {"crs": info.crs, "transform": list(info.transform)}
    transform, width, height = target_grid(None, bounds=(-4000000, -4000000, 4000000, 4000000), resolution=100000)
    grid = {"crs": "EPSG:3413", "transform": list(transform), "width": width, "height": height}
    reproject_file(tmp_path / "grey.tif", tmp_path / "out.tif", spec, {"crs": "EPSG:3413"}, grid=grid, cog=cog)
    reproject_file(tmp_path / "grey.tif", tmp_path / "out.png", spec, {"crs": "EPSG:3413"}, grid=grid)
    with rasterio.open(tmp_path / "out.tif") as out:
        tif, kinds = out.read(), out.colorinterp
    png = np.moveaxis(read_image(tmp_path / "out.png"), -1, 0)
    assert kinds == (ColorInterp.gray, ColorInterp.alpha) and tif.dtype == np.uint16
    assert png.shape == (4,) + tif.shape[1:] and png.dtype == np.uint16  # PNG (OpenCV) holds no grey and alpha
    # the same pixels: grey in every colour channel of the PNG, one alpha
    assert all(np.array_equal(png[channel], tif[0]) for channel in range(3)) and np.array_equal(png[3], tif[1])
    assert 0 < (tif[1] == 0).sum() < tif[1].size  # no source south of 60°N
