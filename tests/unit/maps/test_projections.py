"""Projection formulas and the inverse pixel mapping against PROJ (pyproj) as the oracle."""

import math

import numpy as np
import pytest

pyproj = pytest.importorskip("pyproj")

from pixelflow.maps import projections  # noqa: E402
from pixelflow.maps.georef import source_geometry, world_file_text  # noqa: E402
from pixelflow.maps.inverse_map import (  # noqa: E402
    exact_coordinates,
    interpolated_coordinates,
    line_segments,
    mapping_task,
    straight_lines,
)

PROJECTIONS = {
    "equirectangular": {"kind": "equirectangular", "lon_0": 30.0},
    "mercator": {"kind": "mercator", "lon_0": -20.0, "max_latitude": 80.0},
    "transverse_mercator": {"kind": "transverse_mercator", "lon_0": 0.0},
    "transverse_mercator_shifted": {"kind": "transverse_mercator", "lon_0": 100.0},
    "rotated_pole": {"kind": "rotated_pole", "pole_latitude": 40.0, "pole_longitude": -170.0},
    "rotated_pole_equator": {"kind": "rotated_pole", "pole_latitude": 0.0, "pole_longitude": 90.0},
    "orthographic": {"kind": "orthographic", "lat_0": 35.0, "lon_0": 100.0},
}
SOURCES = {
    "equirectangular": ({"projection": "equirectangular"}, 720, 360),
    "mercator": ({"projection": "mercator", "max_latitude": 85.0511}, 512, 512),
    "bounded": ({"projection": "equirectangular", "bounds": [-30, -40, 60, 50]}, 300, 300),
}
LONLAT = f"+proj=longlat +R={projections.RADIUS:.0f} +no_defs +type=crs"


def task_for(projection, source="equirectangular", width=96, height=None, threshold=0.0, step=16):
    spec, source_width, source_height = SOURCES[source]
    geometry = source_geometry(spec, source_width, source_height)
    height = height or projections.natural_height(projection, width)
    return mapping_task(projection, width, height, geometry, threshold, step)


def proj_source_pixels(task):
    """Source (column, row) of every output pixel centre, by PROJ."""
    rows, cols = np.mgrid[0 : task.height, 0 : task.width]
    x, y = projections.pixel_centres_to_xy(task.transform, cols, rows)
    to_geographic = pyproj.Transformer.from_crs(
        pyproj.CRS.from_proj4(projections.proj_string(task.projection)), pyproj.CRS.from_proj4(LONLAT), always_xy=True
    )
    lon, lat = to_geographic.transform(x, y, errcheck=False)
    lon, lat = np.asarray(lon), np.asarray(lat)
    lon = np.where(np.isfinite(lon) & (np.abs(lon) < 1e9), lon, np.nan)
    return task.geometry.to_pixel(np.radians(lon), np.radians(lat))


def column_distance(a, b, geometry):
    difference = np.abs(a - b)
    if geometry.wraps:
        difference = np.minimum(difference, geometry.width - difference)
    return difference


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_exact_pixel_mapping_matches_proj(name, source):
    task = task_for(PROJECTIONS[name], source)
    rows, cols = np.mgrid[0 : task.height, 0 : task.width]
    ours = exact_coordinates(task, rows, cols)
    oracle = proj_source_pixels(task)
    both = np.isfinite(ours[0]) & np.isfinite(oracle[0])
    # Where one says "no source", the other agrees but for points on the very edge of the domain.
    disagree = np.isfinite(ours[0]) != np.isfinite(oracle[0])
    assert disagree.sum() <= 0.002 * disagree.size + 2
    assert both.sum() >= 200
    assert column_distance(ours[0][both], oracle[0][both], task.geometry).max() <= 0.05
    assert np.abs(ours[1][both] - oracle[1][both]).max() <= 0.05


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_forward_matches_proj_and_round_trips(name):
    projection = PROJECTIONS[name]
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-180, 180, 3000), rng.uniform(-89.5, 89.5, 3000)
    to_projected = pyproj.Transformer.from_crs(
        pyproj.CRS.from_proj4(LONLAT), pyproj.CRS.from_proj4(projections.proj_string(projection)), always_xy=True
    )
    oracle_x, oracle_y = (np.asarray(v) for v in to_projected.transform(lon, lat, errcheck=False))
    x, y = projections.forward(projection, np.radians(lon), np.radians(lat))
    usable = np.isfinite(x) & np.isfinite(oracle_x) & (np.abs(oracle_x) < 1e9)
    if projection["kind"] == "transverse_mercator":
        usable &= np.abs(x) < 3 * projections.RADIUS  # far from the two singular points on the equator
    assert usable.sum() > 1000
    assert np.abs(x - oracle_x)[usable].max() < 1e-3  # metres
    assert np.abs(y - oracle_y)[usable].max() < 1e-3
    back_lon, back_lat = projections.inverse(projection, x[usable], y[usable])
    turn = np.degrees(back_lon) - lon[usable]
    assert np.abs((turn + 180) % 360 - 180).max() < 1e-7
    assert np.abs(np.degrees(back_lat) - lat[usable]).max() < 1e-7


def test_orthographic_hides_the_far_side():
    x, y = projections.forward(PROJECTIONS["orthographic"], np.radians([100.0, -80.0]), np.radians([35.0, -35.0]))
    assert np.isfinite(x[0]) and abs(x[0]) < 1e-6 and abs(y[0]) < 1e-6
    assert np.isnan(x[1]) and np.isnan(y[1])


@pytest.mark.parametrize("width", [2048, 360])
def test_transverse_mercator_puts_the_poles_at_90_east_and_west(width):
    projection = {"kind": "transverse_mercator", "lon_0": 0.0}
    height = projections.natural_height(projection, width)
    transform = projections.geotransform(projection, width, height)
    x, y = projections.forward(projection, np.radians([0.0, 0.0]), np.radians([90.0, -90.0]))
    cols, rows = projections.xy_to_pixel(transform, x, y)
    # Pixel corners: 90E is three quarters of the way across a 360-degree-wide map, 90W a quarter.
    np.testing.assert_allclose(cols + 0.5, [0.75 * width, 0.25 * width], atol=1e-6)
    np.testing.assert_allclose(rows + 0.5, [height / 2, height / 2], atol=1e-6)


def test_affine_transform_places_pixel_centres_as_proj_does():
    projection = PROJECTIONS["transverse_mercator"]
    transform = projections.geotransform(projection, 64, 32)
    x, y = projections.pixel_centres_to_xy(transform, np.array([0, 63, 10]), np.array([0, 31, 20]))
    cols, rows = projections.xy_to_pixel(transform, x, y)
    np.testing.assert_allclose(cols, [0, 63, 10], atol=1e-9)
    np.testing.assert_allclose(rows, [0, 31, 20], atol=1e-9)
    # The world file holds A, D, B, E and the top-left pixel's centre.
    values = [float(line) for line in world_file_text(transform).split()]
    assert values[:4] == pytest.approx([transform[1], transform[4], transform[2], transform[5]])
    assert values[4:] == pytest.approx([x[0], y[0]])


@pytest.mark.parametrize("step", [8, 16])
@pytest.mark.parametrize("threshold", [0.125, 0.5, 0.02])
@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_interpolated_mapping_stays_within_the_error_threshold(name, threshold, step):
    projection = PROJECTIONS[name]
    width = 1024
    task = task_for(projection, width=width, threshold=threshold, step=step)
    height = task.height
    ours, exact_count = interpolated_coordinates(task, 0, height, 0, width)
    rows, cols = np.mgrid[0:height, 0:width]
    truth = exact_coordinates(task, rows, cols)
    both = np.isfinite(truth[0]) & np.isfinite(ours[..., 0])
    assert np.array_equal(np.isfinite(truth[0]), np.isfinite(ours[..., 0]))
    column_error = column_distance(ours[..., 0][both], truth[0][both], task.geometry)
    row_error = np.abs(ours[..., 1][both] - truth[1][both])
    # float32 maps add at most a few thousandths of a pixel at these sizes
    assert max(column_error.max(), row_error.max()) <= threshold + 0.002
    assert exact_count < width * height  # the grid did most of the work


def test_unknown_kind_is_rejected():
    with pytest.raises(projections.ProjectionError, match="unknown projection kind 'sinusoidal'"):
        projections.inverse({"kind": "sinusoidal"}, 0.0, 0.0)


def test_source_geometry_needs_2_to_1_or_bounds():
    from pixelflow.maps.georef import GeometryError

    with pytest.raises(GeometryError, match="must be 2:1"):
        source_geometry({"projection": "equirectangular"}, 700, 360, "maps.world")
    geometry = source_geometry({"projection": "equirectangular", "bounds": [0, -60, 90, 30]}, 700, 360)
    assert not geometry.wraps and not geometry.covers_globe
    col, row = geometry.to_pixel(np.radians([45.0, 100.0]), np.radians([-15.0, 0.0]))
    assert col[0] == pytest.approx(349.5) and row[0] == pytest.approx(179.5)
    assert np.isnan(col[1])


def test_rotated_pole_moves_the_north_pole():
    projection = PROJECTIONS["rotated_pole"]
    x, y = projections.forward(projection, math.radians(-170.0), math.radians(40.0))
    assert y == pytest.approx(math.pi / 2 * projections.RADIUS)


def test_row_segments_follow_a_bent_row_to_the_limit_and_stop_at_the_domain_edge():
    # Source column: an S-bend around x = 100.3 (a line through a segment's ends and middle can miss it by
    # pixels elsewhere) and a gentle curve; no source beyond x = 180.2. Source row: a parabola in x.
    def exact(y, x):
        y, x = np.broadcast_arrays(np.asarray(y, np.float64), np.asarray(x, np.float64))
        column = 40 * np.arctan((x - 100.3) / 3) + 0.002 * (x - 50) ** 2 + y
        row = 1e-3 * x**2 + 2 * y
        off = x > 180.2
        return np.where(off, np.nan, column), np.where(off, np.nan, row)

    length, rows, limit = 64, np.arange(3), 0.05
    x0 = np.arange(0, 256, length)
    y, x0 = np.repeat(rows, len(x0)), np.tile(x0, len(rows))
    ends = np.stack(exact(y[:, None], x0[:, None] - 0.5 + np.array([0, length])), axis=-1)
    values = straight_lines(ends, length)
    exact_pixels = line_segments(values, ends, y, x0, limit, 0, exact)
    truth = np.stack(exact(y[:, None], x0[:, None] + np.arange(length)), axis=-1)
    assert np.array_equal(np.isnan(values[..., 0]), np.isnan(truth[..., 0]))
    miss = np.abs(values - truth)[~np.isnan(truth[..., 0])]
    assert miss.max() <= 2 * limit  # the threshold: the check's limit is half of it (CHECK_MARGIN)
    assert 0 < exact_pixels.sum() < values.shape[0] * length / 2  # lines did most of the work
