"""Coordinate systems through PROJ: parsing, footprints, output grids and point location.

Oracles: pyproj for positions, rasterio (GDAL 3.10) and the gdalwarp program
for grids; no mocks.
"""

import math
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pyproj = pytest.importorskip("pyproj")
rasterio = pytest.importorskip("rasterio")

from pixelflow.maps import crs as C  # noqa: E402
from pixelflow.maps import projections  # noqa: E402
from rasterio.transform import Affine  # noqa: E402
from rasterio.warp import calculate_default_transform, transform_bounds  # noqa: E402

from ..support import child_environment  # noqa: E402

WHERE = "config key projections.europe.crs"
LAEA = "+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m +no_defs +type=crs"
ORTHO = "+proj=ortho +lat_0=35 +lon_0=100 +R=6371000 +units=m +no_defs +type=crs"
GLOBE = (-180.0, -90.0, 180.0, 90.0)
GDALWARP = shutil.which("gdalwarp")


def pyproj_xy(source, target, x, y):
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)
    return (np.asarray(value, np.float64) for value in transformer.transform(x, y))


# parse_crs, crs_text, is_geographic, crs_bounds_of_use


@pytest.mark.parametrize("text", ["EPSG:3035", "ESRI:54009", LAEA, "EPSG:4326", "  EPSG:3413 "])
def test_parse_crs_accepts_codes_and_proj_strings(text):
    crs = C.parse_crs(text, WHERE)
    assert isinstance(crs, pyproj.CRS)
    assert crs == pyproj.CRS.from_user_input(text.strip())


def test_parse_crs_accepts_wkt_and_crs_text_round_trips():
    wkt = C.crs_text("EPSG:3035")
    assert wkt.startswith("PROJCRS[") and "\n" not in wkt
    assert C.parse_crs(wkt, WHERE) == pyproj.CRS("EPSG:3035")
    assert C.crs_text(C.parse_crs(wkt, WHERE)) == wkt


@pytest.mark.parametrize("kind", projections.KINDS)
def test_crs_text_round_trips_the_spherical_presets(kind):
    proj = projections.proj_string(projections.with_defaults({"kind": kind}))
    wkt = C.crs_text(proj)
    assert C.parse_crs(wkt, WHERE) == pyproj.CRS(proj)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("EPSG:999999", "does not understand"),
        ("+proj=nonsense", "does not understand"),
        ("", "does not understand"),
        ("EPSG:4978", "geocentric"),
        ("EPSG:5773", "vertical"),
        ("EPSG:4979", "3 axes"),
        ("EPSG:4326+5773", "Compound"),
        (4326, "must be a string"),
    ],
)
def test_parse_crs_refuses_what_is_not_a_2d_horizontal_crs(text, words):
    with pytest.raises(C.CRSError) as error:
        C.parse_crs(text, WHERE)
    message = str(error.value)
    assert message.startswith(WHERE) and words in message
    assert repr(text) in message or str(text) in message


def test_long_wkt_is_named_briefly_in_messages():
    wkt = pyproj.CRS("EPSG:4978").to_wkt()
    with pytest.raises(C.CRSError, match="geocentric") as error:
        C.parse_crs(wkt, WHERE)
    assert len(str(error.value)) < 300


def test_is_geographic_and_area_of_use():
    assert C.is_geographic("EPSG:4326") and not C.is_geographic("EPSG:3035")
    assert C.crs_bounds_of_use("EPSG:3035") == pytest.approx((-35.58, 24.6, 44.83, 84.73))
    assert C.crs_bounds_of_use(LAEA) is None


def test_importing_the_module_imports_neither_pyproj_nor_planning():
    code = "import sys, pixelflow.maps.crs; print('pyproj' in sys.modules, 'pixelflow.planning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_environment())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


# Locator


@pytest.mark.parametrize(
    ("target", "box"),
    [
        ("EPSG:3035", (2.6e6, 1.4e6, 7.0e6, 5.4e6)),
        ("ESRI:54009", (-1.2e7, -6.0e6, 1.2e7, 6.0e6)),  # inside the ellipse
        ("EPSG:3413", (-4.0e6, -4.0e6, 4.0e6, 4.0e6)),
    ],
)
def test_locator_equals_pyproj(target, box):
    rng = np.random.default_rng(1)
    x = rng.uniform(box[0], box[2], (300, 200))
    y = rng.uniform(box[1], box[3], (300, 200))
    u, v = C.Locator(target, "EPSG:4326")(x, y)
    expected_u, expected_v = pyproj_xy(target, "EPSG:4326", x, y)
    assert u.shape == v.shape == x.shape and u.dtype == v.dtype == np.float64
    assert np.all(np.isfinite(expected_u))
    np.testing.assert_allclose(u, expected_u, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(v, expected_v, rtol=1e-9, atol=1e-9)


def test_locator_gives_nan_off_the_projection():
    # Outside Mollweide's ellipse PROJ returns inf; the locator turns it into NaN.
    x = np.array([0.0, 1.9e7, 0.0, 1.8e7, 1.0e6])
    y = np.array([0.0, 0.0, 9.1e6, 8.0e6, 1.0e6])
    raw_u, raw_v = pyproj_xy("ESRI:54009", "EPSG:4326", x, y)
    assert np.all(np.isinf(raw_u[1:4])) and np.all(np.isinf(raw_v[1:4]))
    u, v = C.Locator("ESRI:54009", "EPSG:4326")(x, y)
    assert np.all(np.isnan(u[1:4])) and np.all(np.isnan(v[1:4]))
    assert np.all(np.isfinite(u[[0, 4]])) and u[0] == 0 and v[0] == 0
    # Beyond the far side of an orthographic globe too, and for NaN input.
    u, v = C.Locator(ORTHO, "EPSG:4326")(np.array([7e6, np.nan]), np.array([0.0, 0.0]))
    assert np.all(np.isnan(u)) and np.all(np.isnan(v))


def test_locator_broadcasts_and_takes_scalars():
    locator = C.Locator("EPSG:3035", "EPSG:4326")
    u, v = locator(np.linspace(3e6, 6e6, 4)[None, :], np.linspace(2e6, 5e6, 3)[:, None])
    assert u.shape == v.shape == (3, 4)
    u, v = locator(4321000.0, 3210000.0)
    assert u.shape == () and float(u) == pytest.approx(10.0) and float(v) == pytest.approx(52.0)
    u, v = locator(np.empty((0, 5)), np.empty((0, 5)))
    assert u.shape == (0, 5)


def test_locator_from_several_threads_equals_serial():
    locator = C.Locator("EPSG:3413", "EPSG:4326")
    rng = np.random.default_rng(2)
    inputs = [(rng.uniform(-4e6, 4e6, 200_000), rng.uniform(-4e6, 4e6, 200_000)) for _ in range(8)]
    serial = [locator(x, y) for x, y in inputs]
    start = threading.Barrier(4)

    def work(thread):
        start.wait(timeout=30)  # all four threads call the locator at once
        return [locator(*inputs[i]) for i in range(thread, len(inputs), 4)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    parallel = [results[i % 4][i // 4] for i in range(len(inputs))]
    for (u, v), (pu, pv) in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(u, pu)
        np.testing.assert_array_equal(v, pv)


def test_locator_refuses_a_bad_crs():
    with pytest.raises(C.CRSError, match="target CRS"):
        C.Locator("EPSG:999999", "EPSG:4326")


# footprint


def test_global_footprint_in_mollweide_reaches_the_ellipse():
    box = C.footprint("EPSG:4326", GLOBE, "ESRI:54009")
    # The ends of the equator and the poles, by PROJ.
    (x_end,), _ = pyproj_xy("EPSG:4326", "ESRI:54009", [-180.0], [0.0])
    _, (y_pole,) = pyproj_xy("EPSG:4326", "ESRI:54009", [0.0], [90.0])
    assert box == pytest.approx((x_end, -y_pole, -x_end, y_pole), rel=1e-9)
    assert box == pytest.approx((-18040095, -9020047, 18040095, 9020047), rel=1e-6)


def test_footprint_finds_a_seam_inside_the_source():
    # Central meridian 150: the seam at -30 runs through the source, not along its edges.
    shifted = C.footprint("EPSG:4326", GLOBE, "+proj=moll +lon_0=150 +datum=WGS84 +units=m +no_defs +type=crs")
    assert shifted == pytest.approx(C.footprint("EPSG:4326", GLOBE, "ESRI:54009"), rel=1e-6)


def test_footprint_of_a_globe_in_orthographic_is_the_disc():
    # The far hemisphere has no image (dropped); the limb is found between samples.
    assert C.footprint("EPSG:4326", GLOBE, ORTHO) == pytest.approx((-6371000, -6371000, 6371000, 6371000), rel=1e-6)


def test_footprint_of_europe_agrees_with_gdal():
    box = (-10.0, 35.0, 30.0, 70.0)
    ours = C.footprint("EPSG:4326", box, "EPSG:3035")
    gdal = transform_bounds("EPSG:4326", "EPSG:3035", *box, densify_pts=100)
    size = max(gdal[2] - gdal[0], gdal[3] - gdal[1])
    assert np.allclose(ours, gdal, rtol=0, atol=1e-3 * size)
    # Ours is never smaller: it samples the edges more densely.
    assert ours[0] <= gdal[0] + 1e-6 and ours[1] <= gdal[1] + 1e-6
    assert ours[2] >= gdal[2] - 1e-6 and ours[3] >= gdal[3] - 1e-6


def test_global_source_in_north_polar_stereographic_is_unbounded():
    # PROJ gives the south pole a huge but finite image (about 3e23 m): the footprint is unbounded.
    (x_pole,), _ = pyproj_xy("EPSG:4326", "EPSG:3413", [0.0], [-90.0])
    assert math.isfinite(x_pole) and abs(x_pole) > 1e20
    with pytest.raises(C.CRSError, match="unbounded in 'EPSG:3413'.*give the output's bounds"):
        C.footprint("EPSG:4326", GLOBE, "EPSG:3413")


def test_source_down_to_60_south_in_north_polar_stereographic_is_finite():
    box = C.footprint("EPSG:4326", (-180.0, -60.0, 180.0, 90.0), "EPSG:3413")
    # The parallel 60 S is a circle around the pole; EPSG:3413 has no false origin.
    x, y = pyproj_xy("EPSG:4326", "EPSG:3413", [0.0], [-60.0])
    radius = math.hypot(float(x[0]), float(y[0]))
    assert box == pytest.approx((-radius, -radius, radius, radius), rel=1e-9)


def test_mercator_of_the_whole_globe_is_unbounded_but_of_85_degrees_finite():
    with pytest.raises(C.CRSError, match="unbounded"):
        C.footprint("EPSG:4326", GLOBE, "EPSG:3857")
    box = C.footprint("EPSG:4326", (-180.0, -85.0, 180.0, 85.0), "EPSG:3857")
    x, y = pyproj_xy("EPSG:4326", "EPSG:3857", [-180.0, 0.0], [0.0, 85.0])
    assert box == pytest.approx((x[0], -y[1], -x[0], y[1]), rel=1e-9)


def test_footprint_across_the_antimeridian_stays_narrow():
    # A geographic source may run past 180: its box does too, rather than spanning the globe.
    assert C.footprint("EPSG:4326", (170.0, -10.0, 190.0, 10.0), "EPSG:4326") == pytest.approx((170, -10, 190, 10))
    sphere = "+proj=longlat +R=6371000 +no_defs +type=crs"
    assert C.footprint(sphere, (170.0, -10.0, 190.0, 10.0), "EPSG:4326") == pytest.approx((170, -10, 190, 10))
    # A projected source whose longitudes PROJ gives as 167..180 and -180..-170.
    bounds = (1.9e6, -1.0e6, 4.5e6, 1.0e6)
    west, south, east, north = C.footprint("EPSG:3832", bounds, "EPSG:4326")
    lon, lat = pyproj_xy("EPSG:3832", "EPSG:4326", [bounds[0], bounds[2]], [0.0, bounds[3]])
    assert lon[0] > 0 > lon[1]
    assert (west, east) == pytest.approx((lon[0], lon[1] + 360), abs=1e-9)
    assert -180 <= west < 180 < east and east - west < 30
    assert north == pytest.approx(-south) and north == pytest.approx(lat[1], abs=1e-6)


def test_footprint_holding_the_north_pole():
    box = C.footprint("EPSG:4326", (-180.0, 70.0, 180.0, 90.0), "EPSG:3413")
    assert box[0] < 0 < box[2] and box[1] < 0 < box[3]
    x, y = pyproj_xy("EPSG:4326", "EPSG:3413", [45.0], [70.0])  # 3413's lon_0 is -45: x is largest at 45 E
    assert box[2] == pytest.approx(math.hypot(x[0], y[0]), rel=1e-9)
    # A polar cap in a geographic target spans every longitude and reaches the pole.
    west, south, east, north = C.footprint("EPSG:3413", (-1e6, -1e6, 1e6, 1e6), "EPSG:4326")
    assert (west, east, north) == (-180.0, 180.0, pytest.approx(90.0))
    _, corner_lat = pyproj_xy("EPSG:3413", "EPSG:4326", [1e6], [1e6])
    assert south == pytest.approx(corner_lat[0], abs=1e-6)
    # With the pole on a corner the box is a quadrant of longitudes, not all of them.
    west, _, east, north = C.footprint("EPSG:3413", (0.0, 0.0, 1e6, 1e6), "EPSG:4326")
    assert (west, east) == pytest.approx((-45.0, 135.0)) and north == pytest.approx(90.0)


def test_footprint_without_any_image_is_refused():
    with pytest.raises(C.CRSError, match="no footprint in"):
        C.footprint("EPSG:4326", (-100.0, -10.0, -60.0, 10.0), ORTHO)


@pytest.mark.parametrize(
    "bounds", [(10.0, 0.0, 0.0, 10.0), (0.0, 10.0, 10.0, 0.0), (0.0, 0.0, math.inf, 10.0), (0.0, -95.0, 10.0, 10.0)]
)
def test_footprint_refuses_bad_source_bounds(bounds):
    with pytest.raises(C.CRSError, match="source extent"):
        C.footprint("EPSG:4326", bounds, "EPSG:3035")


# target_grid


@pytest.fixture(scope="module")
def warp(tmp_path_factory):
    """Run gdalwarp on a 40 x 20 EPSG:4326 GeoTIFF (0..20 E, 40..50 N) to EPSG:3035; give the output grid."""
    if GDALWARP is None:
        pytest.skip("the gdalwarp program is not installed")
    folder = tmp_path_factory.mktemp("warp")
    source = folder / "source.tif"
    profile = {"driver": "GTiff", "width": 40, "height": 20, "count": 1, "dtype": "uint8", "crs": "EPSG:4326"}
    with rasterio.open(source, "w", transform=Affine(0.5, 0, 0, 0, -0.5, 50), **profile) as dataset:
        dataset.write(np.arange(800, dtype=np.uint8).reshape(1, 20, 40))

    def run(*options):
        output = folder / "output.tif"
        command = [GDALWARP, "-q", "-overwrite", "-t_srs", "EPSG:3035", *map(str, options), str(source), str(output)]
        subprocess.run(command, check=True, capture_output=True)
        with rasterio.open(output) as dataset:
            return tuple(dataset.transform.to_gdal()), dataset.width, dataset.height

    return run


TE = (4000000.3, 2500000.7, 4301234.5, 2712345.6)


@pytest.mark.parametrize("resolution", [(1000, 1000), (1000, 2000), (1234.5, 987.6), (300000, 300000)])
def test_bounds_and_resolution_as_gdalwarp(warp, resolution):
    assert C.target_grid(None, bounds=TE, resolution=resolution) == warp("-te", *TE, "-tr", *resolution)


def test_resolution_rounds_sizes_half_up_as_gdalwarp(warp):
    # 1005 / 10 = 100.5 and 1025 / 50 = 20.5: gdalwarp rounds both up (Python's round() would not).
    bounds = (4000000.0, 2500000.0, 4001005.0, 2501025.0)
    grid = C.target_grid(None, bounds=bounds, resolution=(10, 50))
    assert grid[1:] == (101, 21)
    assert grid == warp("-te", *bounds, "-tr", 10, 50)


@pytest.mark.parametrize("size", [(100, 50), (100, None), (None, 70), (7, None)])
def test_bounds_and_size_as_gdalwarp(warp, size):
    width, height = size
    expected = warp("-te", *TE, "-ts", width or 0, height or 0)
    transform, columns, rows = C.target_grid(None, bounds=TE, width=width, height=height)
    assert (columns, rows) == expected[1:]
    assert transform == pytest.approx(expected[0], rel=1e-12)


def test_resolution_over_an_extent_as_gdalwarp(warp):
    # gdalwarp without -te places the grid on the extent it suggests: same origin, same rule.
    suggested, columns, rows = warp()
    extent = (suggested[0], suggested[3] + rows * suggested[5], suggested[0] + columns * suggested[1], suggested[3])
    assert C.target_grid(extent, resolution=2500) == warp("-tr", 2500, 2500)
    assert C.target_grid(extent, width=300)[1:] == warp("-ts", 300, 0)[1:]
    # And our footprint starts where GDAL's extent does.
    box = C.footprint("EPSG:4326", (0.0, 40.0, 20.0, 50.0), "EPSG:3035")
    assert (box[0], box[3]) == pytest.approx((extent[0], extent[3]), rel=1e-9)


def test_target_grid_rules_without_gdal():
    extent = (0.0, 0.0, 1000.0, 500.0)
    assert C.target_grid(extent, resolution=10) == ((0.0, 10.0, 0.0, 500.0, 0.0, -10.0), 100, 50)
    assert C.target_grid(extent, width=200) == ((0.0, 5.0, 0.0, 500.0, 0.0, -5.0), 200, 100)
    assert C.target_grid(extent, height=25) == ((0.0, 20.0, 0.0, 500.0, 0.0, -20.0), 50, 25)
    assert C.target_grid(extent, width=10, height=10) == ((0.0, 100.0, 0.0, 500.0, 0.0, -50.0), 10, 10)
    # Bounds win over the extent; a tiny box still gets a pixel.
    assert C.target_grid(extent, bounds=(0, 0, 3, 3), resolution=10) == ((0.0, 10.0, 0.0, 3.0, 0.0, -10.0), 1, 1)
    assert C.target_grid(extent, width=1000)[2] == 500


@pytest.mark.parametrize(
    ("extent", "options", "words"),
    [
        ((0, 0, 10, 10), {"resolution": 1, "width": 10}, "not both"),
        ((0, 0, 10, 10), {}, "needs a resolution or a width"),
        (None, {"resolution": 1}, "needs bounds"),
        ((10, 0, 0, 10), {"resolution": 1}, "xmin < xmax"),
        ((0, 0, 10, 10), {"bounds": (0, 10, 10, 10), "resolution": 1}, "xmin < xmax"),
        ((0, 0, 10, 10), {"resolution": 0}, "positive"),
        ((0, 0, 10, 10), {"resolution": (1, -1)}, "positive"),
        ((0, 0, 10, 10), {"width": 0}, "positive"),
        ((0, 0, 10, 10), {"height": 2.5}, "positive whole number"),
        ((0, 0, math.nan, 10), {"width": 5}, "finite"),
    ],
)
def test_target_grid_refusals_name_where(extent, options, words):
    with pytest.raises(C.CRSError) as error:
        C.target_grid(extent, where="projections.europe", **options)
    assert str(error.value).startswith("projections.europe: ") and words in str(error.value)


# default_resolution


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rasterio's own use of Affine
@pytest.mark.parametrize(
    ("source", "transform", "width", "height", "target", "tolerance"),
    [
        # The poles share an x in Mollweide: the extent's diagonal is used, as GDAL does.
        ("EPSG:4326", (-180, 0.5, 0, 90, 0, -0.5), 720, 360, "ESRI:54009", 1e-3),
        ("EPSG:32632", (300000, 30, 0, 5100000, 0, -30), 1000, 800, "EPSG:4326", 1e-9),
        ("EPSG:4326", (-10, 0.1, 0, 70, 0, -0.1), 400, 350, "EPSG:3035", 1e-9),
        ("EPSG:3413", (-1e6, 1000, 0, 1e6, 0, -1000), 2000, 2000, "EPSG:4326", 1e-3),
    ],
)
def test_default_resolution_as_gdal(source, transform, width, height, target, tolerance):
    left, top = transform[0], transform[3]
    right, bottom = left + width * transform[1], top + height * transform[5]
    extent = C.footprint(source, (left, bottom, right, top), target)
    ours = C.default_resolution(source, transform, width, height, target, extent)
    gdal, _, _ = calculate_default_transform(source, target, width, height, left, bottom, right, top)
    assert ours == pytest.approx(gdal.a, rel=tolerance)
    assert ours == pytest.approx(-gdal.e, rel=tolerance)


def test_default_resolution_across_the_antimeridian_uses_the_extent_longitudes():
    # GDAL measures the corners 167 E and 170 W apart the long way round; here they are 23 degrees apart.
    bounds = (1.9e6, -1.0e6, 4.5e6, 1.0e6)
    extent = C.footprint("EPSG:3832", bounds, "EPSG:4326")
    resolution = C.default_resolution("EPSG:3832", (1.9e6, 1000, 0, 1.0e6, 0, -1000), 2600, 2000, "EPSG:4326", extent)
    lon, lat = pyproj_xy("EPSG:3832", "EPSG:4326", [bounds[0], bounds[2]], [bounds[3], bounds[1]])
    assert resolution == pytest.approx(math.hypot(lon[1] + 360 - lon[0], lat[1] - lat[0]) / math.hypot(2600, 2000))
    assert resolution == pytest.approx(1000 / 111320, rel=0.02)


# check_bounds_in_area_of_use


def test_bounds_in_degrees_for_a_metric_crs_are_caught():
    with pytest.raises(C.CRSError) as error:
        C.check_bounds_in_area_of_use("EPSG:3035", (-10, 35, 30, 70), "projections.europe.bounds")
    message = str(error.value)
    assert message.startswith("projections.europe.bounds: ") and "area of use" in message and "metre" in message


def test_bounds_in_the_area_of_use_pass():
    C.check_bounds_in_area_of_use("EPSG:3035", (2.5e6, 1.5e6, 7.0e6, 5.5e6), "bounds")
    # An area of use across the antimeridian (98.69 E to 68 W).
    C.check_bounds_in_area_of_use("EPSG:3832", (1.9e6, -1.0e6, 4.5e6, 1.0e6), "bounds")
    with pytest.raises(C.CRSError, match="area of use"):
        C.check_bounds_in_area_of_use("EPSG:3832", (-1.2e7, -1.0e6, -1.1e7, 1.0e6), "bounds")
    # A CRS without an area of use has nothing to check.
    C.check_bounds_in_area_of_use(LAEA, (-10, 35, 30, 70), "bounds")
