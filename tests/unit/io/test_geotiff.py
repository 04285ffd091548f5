"""GeoTIFF and COG writing, raster headers and validity, checked by reading the files back with rasterio and pyproj."""

import math
import warnings

import numpy as np
import pyproj
import pytest
import rasterio
import rasterio.warp
from pixelflow.errors import ImageError
from pixelflow.io.geotiff import (
    COMPRESSIONS,
    RasterInfo,
    raster_info,
    read_raster,
    write_aux_xml,
    write_geotiff,
    write_prj,
)
from pixelflow.io.images import write_image
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_validate

UTM = "EPSG:32633"
UTM_TRANSFORM = (500000.0, 10.0, 0.0, 6000000.0, 0.0, -10.0)
ORTHO = "+proj=ortho +lat_0=40 +lon_0=10 +ellps=WGS84 +units=m +no_defs"


def random_pixels(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(0.0, 100.0, size=shape).astype(dtype)
    limits = np.iinfo(dtype)
    return rng.integers(limits.min, limits.max, size=shape, dtype=dtype, endpoint=True)


def channel_last(dataset, indexes=None) -> np.ndarray:
    """A rasterio dataset's bands as an (h, w, c) array."""
    return dataset.read(indexes).transpose(1, 2, 0)


def same_crs(wkt, expected) -> bool:
    return pyproj.CRS.from_user_input(wkt) == pyproj.CRS.from_user_input(expected)


def write_rasterio(path, bands: np.ndarray, **profile):
    """Write (c, h, w) ``bands`` with rasterio directly: files this module did not make."""
    profile = {"driver": "GTiff", "count": bands.shape[0], "height": bands.shape[1], "width": bands.shape[2]} | profile
    with rasterio.open(path, "w", dtype=bands.dtype.name, **profile) as dataset:
        dataset.write(bands)


def rgba_with_holes():
    pixels = random_pixels((30, 40, 4), "uint8")
    pixels[..., 3] = 255
    pixels[:5, :7, 3] = 0
    return pixels


ROUND_TRIPS = {
    "uint8-rgb": (random_pixels((30, 40, 3), "uint8"), UTM, None, False),
    "uint8-rgba": (rgba_with_holes(), "EPSG:4326", None, True),
    "uint16-grey": (random_pixels((30, 40), "uint16"), "EPSG:3857", None, False),
    "float32-nan": (
        np.where(np.eye(30, 40, dtype=bool), np.nan, random_pixels((30, 40), "float32")),
        ORTHO,
        None,
        False,
    ),
    "float32-nodata": (random_pixels((30, 40, 2), "float32"), UTM, -9999.0, False),
}


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
@pytest.mark.parametrize("case", ROUND_TRIPS)
def test_round_trip_through_rasterio(tmp_path, case, cog):
    pixels, crs, nodata, alpha = ROUND_TRIPS[case]
    if nodata is not None:
        pixels = pixels.copy()
        pixels[0, :3] = nodata
    transform = (-1234.5, 0.25, 0.0, 987.0, 0.0, -0.5)
    path = tmp_path / "out.tif"
    write_geotiff(path, pixels, crs, transform, nodata=nodata, alpha=alpha, cog=cog)

    expected = pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]
    with rasterio.open(path) as dataset:
        assert dataset.driver == "GTiff"
        np.testing.assert_array_equal(channel_last(dataset), expected)  # NaN equals NaN here
        assert same_crs(dataset.crs.to_wkt(), crs)
        assert dataset.transform.to_gdal() == transform
        assert dataset.nodata == nodata
        interpretations = dataset.colorinterp
        files = dataset.files
    assert files == [str(path)]  # no .aux.xml or other sidecar
    assert (interpretations[-1] == ColorInterp.alpha) == alpha
    if expected.shape[2] - alpha == 3:
        assert interpretations[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)

    info = raster_info(path)
    assert info == RasterInfo(
        path=str(path),
        width=40,
        height=30,
        count=expected.shape[2] - alpha,
        dtype=pixels.dtype.name,
        crs=info.crs,
        transform=transform,
        nodata=nodata,
        alpha=alpha,
        mask=False,
    )
    assert same_crs(info.crs, crs)
    assert info.crs.startswith(("PROJCRS[", "GEOGCRS["))  # WKT2
    colours, valid = read_raster(path, info=info)
    np.testing.assert_array_equal(colours, expected[:, :, : info.count])
    assert colours.dtype == pixels.dtype and colours.dtype.isnative
    invalid = np.zeros((30, 40), bool)
    if alpha:
        invalid |= expected[:, :, -1] == 0
    if nodata is not None:
        invalid |= (expected == nodata).all(axis=2)
    invalid |= np.isnan(expected.astype(np.float64)).any(axis=2)
    assert invalid.any() == (valid is not None)
    if valid is not None:
        np.testing.assert_array_equal(valid, ~invalid)


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
@pytest.mark.parametrize("channels", [2, 3])
def test_alpha_is_the_last_band_for_grey_and_two_colour_bands(tmp_path, channels, cog):
    pixels = random_pixels((20, 30, channels), "uint16")
    path = tmp_path / "alpha.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM, alpha=True, cog=cog)
    with rasterio.open(path) as dataset:
        assert dataset.colorinterp[-1] == ColorInterp.alpha
        assert ColorInterp.alpha not in dataset.colorinterp[:-1]
    info = raster_info(path)
    assert (info.count, info.alpha) == (channels - 1, True)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_compression_reads_back_identical_pixels(tmp_path, compression, cog, dtype):
    pixels = random_pixels((50, 70, 3), dtype)
    path = tmp_path / "out.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM, compression=compression, cog=cog)
    with rasterio.open(path) as dataset:
        np.testing.assert_array_equal(channel_last(dataset), pixels)
        structure = dataset.tags(ns="IMAGE_STRUCTURE")
        if compression == "none":
            assert dataset.compression is None
            assert "PREDICTOR" not in structure
        else:
            assert dataset.compression.value.lower() == compression
            assert dataset.profile["compress"] == compression
            assert structure["PREDICTOR"] == ("3" if dtype == "float32" else "2")
        tiled = cog or compression != "none"
        assert dataset.profile["tiled"] == tiled
        if tiled:
            assert dataset.block_shapes[0] == (512, 512)
        assert (structure.get("LAYOUT") == "COG") == cog


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
def test_cog_is_valid_and_has_overviews(tmp_path, alpha):
    rows, columns = np.mgrid[:1024, :2048]
    pixels = np.stack([rows % 256, columns % 256, (rows + columns) % 256, np.full_like(rows, 255)], axis=2)
    pixels = pixels.astype(np.uint8)[:, :, : 3 + alpha]
    if alpha:
        pixels[:100, :100, 3] = 0
    path = tmp_path / "map.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM, alpha=alpha, cog=True, threads=2)
    is_valid, errors, _ = cog_validate(str(path))
    assert is_valid and errors == []
    with rasterio.open(path) as dataset:
        assert dataset.overviews(1) == [2, 4]
        assert dataset.block_shapes[0] == (512, 512)
        assert dataset.colorinterp[-1] == (ColorInterp.alpha if alpha else ColorInterp.blue)
        np.testing.assert_array_equal(channel_last(dataset), pixels)


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
def test_bytes_do_not_depend_on_threads(tmp_path, cog):
    pixels = random_pixels((600, 1100, 3), "uint8") // 8  # compressible, more than one tile each way
    outputs = []
    for threads in (1, 4, 1):
        path = tmp_path / f"out-{threads}-{len(outputs)}.tif"
        write_geotiff(path, pixels, UTM, UTM_TRANSFORM, compression="zstd", cog=cog, threads=threads)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_memory_maps_big_endian_and_reversed_arrays_are_written_as_they_read(tmp_path):
    pixels = random_pixels((20, 30, 3), "uint16")
    mapped = np.lib.format.open_memmap(tmp_path / "pixels.npy", "w+", np.uint16, pixels.shape)
    mapped[:] = pixels
    mapped.flush()
    for name, array in {
        "memmap": np.load(tmp_path / "pixels.npy", mmap_mode="r"),
        "big-endian": pixels.astype(">u2"),
        "reversed": pixels[::-1, ::-1],
        "one-channel": pixels[:, :, 1:2],
    }.items():
        path = tmp_path / f"{name}.tif"
        write_geotiff(path, array, UTM, UTM_TRANSFORM)
        with rasterio.open(path) as dataset:
            np.testing.assert_array_equal(channel_last(dataset), np.asarray(array))


def test_pixels_valid_everywhere_give_no_validity_array(tmp_path):
    path = tmp_path / "full.tif"
    pixels = random_pixels((10, 12, 3), "uint8")
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM)
    read, valid = read_raster(path)
    np.testing.assert_array_equal(read, pixels)
    assert valid is None


def test_alpha_zero_is_invalid_and_the_alpha_band_is_dropped(tmp_path):
    pixels = rgba_with_holes()
    path = tmp_path / "rgba.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM, alpha=True)
    colours, valid = read_raster(path)
    np.testing.assert_array_equal(colours, pixels[:, :, :3])
    np.testing.assert_array_equal(valid, pixels[:, :, 3] != 0)


def test_nodata_needs_every_band_to_match(tmp_path):
    pixels = random_pixels((10, 12, 3), "uint8") | 1  # no band is 0 by chance
    pixels[0, 0] = 0  # all bands nodata: invalid
    pixels[1, 1] = (0, 5, 0)  # some bands nodata: valid
    path = tmp_path / "nodata.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM, nodata=0)
    assert raster_info(path).nodata == 0.0
    _, valid = read_raster(path)
    expected = np.ones((10, 12), bool)
    expected[0, 0] = False
    np.testing.assert_array_equal(valid, expected)


def test_the_nodata_argument_overrides_the_files(tmp_path):
    pixels = np.full((4, 5, 2), 3, np.uint8)
    pixels[0, 0] = 0
    pixels[2, 3] = 7
    path = tmp_path / "nodata.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM, nodata=0)
    _, valid = read_raster(path, nodata=7)
    assert np.argwhere(~valid).tolist() == [[2, 3]]
    assert read_raster(path, nodata=-1)[1] is None  # uint8 cannot hold it: matches nothing


def test_nan_in_any_band_is_invalid_for_floats(tmp_path):
    pixels = random_pixels((6, 8, 3), "float32")
    pixels[1, 2, 0] = np.nan
    pixels[3, 4, 2] = np.nan
    pixels[5, 5] = -9999.0
    path = tmp_path / "nan.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM)
    read, valid = read_raster(path)
    assert np.argwhere(~valid).tolist() == [[1, 2], [3, 4]]
    _, valid = read_raster(path, nodata=math.nan)  # a NaN nodata value says the same
    assert np.argwhere(~valid).tolist() == [[1, 2], [3, 4]]
    _, valid = read_raster(path, nodata=-9999.0)
    assert np.argwhere(~valid).tolist() == [[1, 2], [3, 4], [5, 5]]


def test_float_nodata_is_compared_in_the_pixel_type(tmp_path):
    pixels = np.zeros((3, 4), np.float32)
    pixels[1, 1] = np.float32(0.1)
    path = tmp_path / "tenth.tif"
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM, nodata=0.1)
    _, valid = read_raster(path)
    assert np.argwhere(~valid).tolist() == [[1, 1]]


def test_nodata_values_the_pixel_type_cannot_hold_match_nothing(tmp_path):
    path = tmp_path / "values.tif"
    pixels = np.array([[0.0, np.inf], [-np.inf, 1.5]], np.float32)
    write_geotiff(path, pixels, UTM, UTM_TRANSFORM)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in a cast either
        assert read_raster(path, nodata=1e300)[1] is None
        assert np.argwhere(~read_raster(path, nodata=math.inf)[1]).tolist() == [[0, 1]]
    write_geotiff(path, np.array([[0, 255]], np.uint8), UTM, UTM_TRANSFORM)
    for nodata in (math.inf, 0.5, 256.0, -1.0):
        assert read_raster(path, nodata=nodata)[1] is None


def test_a_per_dataset_mask_marks_invalid_pixels(tmp_path):
    bands = random_pixels((3, 8, 10), "uint8")
    path = tmp_path / "masked.tif"
    mask = np.full((8, 10), 255, np.uint8)
    mask[2:4, 5:9] = 0
    profile = {"count": 3, "height": 8, "width": 10, "crs": UTM, "transform": Affine.from_gdal(*UTM_TRANSFORM)}
    with rasterio.open(path, "w", driver="GTiff", dtype="uint8", **profile) as dataset:
        dataset.write(bands)
        dataset.write_mask(mask)
    info = raster_info(path)
    assert info.mask and not info.alpha and info.nodata is None
    pixels, valid = read_raster(path, info=info)
    np.testing.assert_array_equal(pixels, bands.transpose(1, 2, 0))
    np.testing.assert_array_equal(valid, mask != 0)


def test_a_png_with_a_world_file_and_a_prj(tmp_path):
    pixels = random_pixels((6, 8, 3), "uint8")
    png = tmp_path / "scan.png"
    write_image(png, pixels)
    assert raster_info(png).transform is None and raster_info(png).crs is None  # not georeferenced yet

    # A world file gives the centre of the top-left pixel; GDAL's transform has its corner.
    (tmp_path / "scan.pgw").write_text("2.0\n0.0\n0.0\n-3.0\n500101.0\n6000198.5\n")
    write_prj(tmp_path / "scan.prj", UTM)
    assert (tmp_path / "scan.prj").read_text().startswith('PROJCS["WGS_1984_UTM_Zone_33N"')  # ESRI's WKT
    info = raster_info(png)
    assert info.transform == (500100.0, 2.0, 0.0, 6000200.0, 0.0, -3.0)
    assert same_crs(info.crs, UTM)
    assert (info.count, info.dtype, info.alpha, info.mask) == (3, "uint8", False, False)
    read, valid = read_raster(png, info=info)
    np.testing.assert_array_equal(read, pixels)
    assert valid is None


def test_a_file_crs_wins_over_a_prj(tmp_path):
    path = tmp_path / "map.tif"
    write_geotiff(path, random_pixels((4, 4), "uint8"), UTM, UTM_TRANSFORM)
    write_prj(tmp_path / "map.prj", "EPSG:4326")
    assert same_crs(raster_info(path).crs, UTM)


def test_write_prj_round_trips_and_overwrites(tmp_path):
    path = tmp_path / "out" / "map.prj"
    write_prj(path, "EPSG:4326")
    write_prj(path, ORTHO)
    text = path.read_text()
    assert text.startswith("PROJCS[") and text.endswith("\n")
    # ESRI's WKT renames the datum; the projection of a point is what must not change.
    read_back, original = pyproj.CRS.from_user_input(text), pyproj.CRS(ORTHO)
    project = [pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True) for crs in (read_back, original)]
    assert project[0].transform(12.5, 41.0) == pytest.approx(project[1].transform(12.5, 41.0), abs=1e-6)
    assert sorted(p.name for p in path.parent.iterdir()) == ["map.prj"]
    with pytest.raises(ValueError, match="not-a-crs"):
        write_prj(path, "not-a-crs")


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:3035", "EPSG:3413", ORTHO])
def test_gdal_reads_a_png_crs_from_its_aux_xml_with_x_as_easting(tmp_path, crs):
    png = tmp_path / "map.png"
    write_image(png, random_pixels((6, 8, 3), "uint8"))
    (tmp_path / "map.pgw").write_text("2.0\n0.0\n0.0\n-3.0\n41.0\n19.5\n")  # corner (40, 21), 2 x 3 units
    with rasterio.open(png) as dataset:
        assert dataset.crs is None  # GDAL reads no .prj for a PNG
    write_aux_xml(tmp_path / "map.png.aux.xml", crs)
    with rasterio.open(png) as dataset:  # GDAL itself, not raster_info
        assert pyproj.CRS(dataset.crs.to_wkt()).equals(pyproj.CRS(crs))
        left, bottom = dataset.bounds.left, dataset.bounds.bottom
        theirs = rasterio.warp.transform(dataset.crs, "EPSG:4326", [left], [bottom])
    assert (left, bottom) == (40.0, 3.0)
    # the world file's x is the easting (longitude): PROJ in x/y order places the corner where GDAL does
    ours = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(left, bottom)
    assert (theirs[0][0], theirs[1][0]) == pytest.approx(ours, abs=1e-7)
    with pytest.raises(ValueError, match="not-a-crs"):
        write_aux_xml(tmp_path / "map.png.aux.xml", "not-a-crs")


def test_an_unreadable_file_names_itself(tmp_path):
    text = tmp_path / "notes.tif"
    text.write_text("not a raster\n")
    with pytest.raises(ImageError, match="notes.tif"):
        raster_info(text)
    with pytest.raises(ImageError, match="missing.tif"):
        read_raster(tmp_path / "missing.tif")


def test_corrupt_pixels_name_the_file(tmp_path):
    path = tmp_path / "cut.tif"
    write_geotiff(path, random_pixels((600, 600), "uint8"), UTM, UTM_TRANSFORM)
    info = raster_info(path)
    path.write_bytes(path.read_bytes()[:-1000])  # the header survives, the last tile does not
    with pytest.raises(ImageError, match="cut.tif: GDAL cannot read its pixels"):
        read_raster(path, info=info)


def test_a_header_of_another_file_is_refused(tmp_path):
    write_geotiff(tmp_path / "grey.tif", random_pixels((6, 8), "uint8"), UTM, UTM_TRANSFORM)
    write_geotiff(tmp_path / "rgb.tif", random_pixels((6, 8, 3), "uint8"), UTM, UTM_TRANSFORM)
    with pytest.raises(ImageError, match="rgb.tif: .* do not match the header given"):
        read_raster(tmp_path / "rgb.tif", info=raster_info(tmp_path / "grey.tif"))


def test_rotated_georeferencing_is_refused(tmp_path):
    bands = random_pixels((1, 6, 8), "uint8")
    path = tmp_path / "rotated.tif"
    write_rasterio(path, bands, crs=UTM, transform=Affine.from_gdal(500000, 10, 2, 6000000, 1, -10))
    with pytest.raises(ImageError, match="rotated.tif: rotated or sheared georeferencing is not supported.*gdalwarp"):
        raster_info(path)
    with pytest.raises(ImageError, match="rotated.tif"):
        read_raster(path)


def test_rotation_terms_of_rounding_noise_count_as_zero(tmp_path):
    path = tmp_path / "noise.tif"
    write_rasterio(path, random_pixels((1, 6, 8), "uint8"), crs=UTM, transform=Affine(10, 1e-15, 5e5, -2e-16, -10, 6e6))
    assert raster_info(path).transform == UTM_TRANSFORM


def test_ground_control_points_alone_are_refused(tmp_path):
    path = tmp_path / "gcps.tif"
    gcps = [
        GroundControlPoint(0, 0, 5e5, 6e6),
        GroundControlPoint(0, 8, 5e5 + 80, 6e6),
        GroundControlPoint(6, 0, 5e5, 6e6 - 60),
    ]
    write_rasterio(path, random_pixels((1, 6, 8), "uint8"), gcps=gcps, crs=UTM)
    with pytest.raises(ImageError, match="gcps.tif: georeferenced by ground control points"):
        raster_info(path)


def test_unsupported_pixel_types_are_refused(tmp_path):
    path = tmp_path / "int32.tif"
    write_rasterio(path, np.zeros((1, 4, 4), np.int32), crs=UTM, transform=Affine.from_gdal(*UTM_TRANSFORM))
    with pytest.raises(ImageError, match="int32.tif: int32 pixels are not supported"):
        raster_info(path)


def test_bands_of_different_types_are_refused(tmp_path):
    # GeoTIFF cannot hold bands of different types; a VRT can.
    write_rasterio(
        tmp_path / "two.tif", np.zeros((2, 4, 5), np.uint8), crs=UTM, transform=Affine.from_gdal(*UTM_TRANSFORM)
    )
    sources = "".join(
        f'<VRTRasterBand dataType="{kind}" band="{band}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="1">two.tif</SourceFilename><SourceBand>{band}</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for band, kind in ((1, "Byte"), (2, "Float32"))
    )
    path = tmp_path / "mixed.vrt"
    path.write_text(f'<VRTDataset rasterXSize="5" rasterYSize="4">{sources}</VRTDataset>')
    with pytest.raises(ImageError, match="mixed.vrt: bands of different pixel types"):
        raster_info(path)


def test_palette_files_are_refused(tmp_path):
    path = tmp_path / "palette.tif"
    profile = {"width": 4, "height": 3, "count": 1, "crs": UTM, "transform": Affine.from_gdal(*UTM_TRANSFORM)}
    with rasterio.open(path, "w", driver="GTiff", dtype="uint8", **profile) as dataset:
        dataset.write(np.zeros((1, 3, 4), np.uint8))
        dataset.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 0, 255, 255)})
    with pytest.raises(ImageError, match="palette.tif: palette colours are not supported"):
        raster_info(path)


def test_an_unreadable_prj_names_itself(tmp_path):
    png = tmp_path / "scan.png"
    write_image(png, random_pixels((4, 4), "uint8"))
    (tmp_path / "scan.pgw").write_text("1\n0\n0\n-1\n10.5\n20.5\n")
    (tmp_path / "scan.prj").write_text("nonsense")
    with pytest.raises(ImageError, match="scan.prj"):
        raster_info(png)


def test_a_failed_write_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "map.tif"
    write_geotiff(path, random_pixels((8, 8), "uint8"), UTM, UTM_TRANSFORM)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="EPSG:999999"):
        write_geotiff(path, random_pixels((8, 8), "uint8", seed=1), "EPSG:999999", UTM_TRANSFORM)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["map.tif"]

    with pytest.raises(ValueError, match="deflate, zstd, lzw, none"):
        write_geotiff(tmp_path / "new.tif", random_pixels((8, 8), "uint8"), UTM, UTM_TRANSFORM, compression="jpeg")
    assert [entry.name for entry in tmp_path.iterdir()] == ["map.tif"]


@pytest.mark.parametrize(
    ("pixels", "options", "message"),
    [
        (np.zeros((4, 4), np.int32), {}, "int32"),
        (np.zeros((4, 4, 1), np.uint8), {"alpha": True}, "alpha"),
        (np.zeros((4, 4), np.uint8), {"nodata": -1}, "nodata"),
        (np.zeros((4, 4), np.uint8), {"nodata": 0.5}, "nodata"),
        (np.zeros((4, 4), np.int16), {"nodata": math.nan}, "nodata"),
        (np.zeros((4, 4), np.float32), {"nodata": 1e300}, "nodata"),
        (np.zeros((0, 4), np.uint8), {}, "shape"),
        (np.zeros((4, 4), np.uint8), {"threads": 0}, "threads"),
    ],
)
def test_write_refuses_what_it_cannot_write(tmp_path, pixels, options, message):
    with pytest.raises(ValueError, match=message):
        write_geotiff(tmp_path / "bad.tif", pixels, UTM, UTM_TRANSFORM, **options)
    with pytest.raises(ValueError, match="transform"):
        write_geotiff(tmp_path / "bad.tif", np.zeros((4, 4), np.uint8), UTM, (1, 2, 3))
    assert list(tmp_path.iterdir()) == []
