"""Maps for GIS data in real snakemake runs: GeoTIFF sources in any CRS, crs targets, GeoTIFF/COG/PNG outputs.

GDAL's warper (``rasterio.warp.reproject``) is the oracle for pixels, pyproj for the coordinate systems.
"""

import json
import re

import numpy as np
import pytest
import rasterio
from conftest import dry_run_plan, partial_entries, run_ok, run_snakemake, tiny_config, without_report
from pyproj import CRS
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject
from scipy import ndimage

EUROPE = {"crs": "EPSG:3035", "bounds": [2500000, 1350000, 7500000, 5500000], "resolution": 50000}
MOLLWEIDE = {"crs": "ESRI:54009", "width": 720}
# GDAL widens its bilinear kernel when it downsamples, OpenCV's remap does not: the comparisons with GDAL's
# warper use outputs at least as fine as the source.


def write_raster(path, bands: np.ndarray, crs: str, transform, nodata=None) -> None:
    """A GeoTIFF of ``bands`` (count, height, width), written by GDAL through rasterio."""
    count, height, width = bands.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": bands.dtype.name}
    with rasterio.open(path, "w", crs=crs, transform=transform, nodata=nodata, **profile) as dst:
        dst.write(bands)


def write_dem(path, width=360, height=180):
    """A float32 global DEM in EPSG:4326 (smooth relief in metres), NaN over a block and -9999 over another."""
    lon = np.linspace(-180, 180, width, endpoint=False) + 180 / width
    lat = np.linspace(90, -90, height, endpoint=False) - 90 / height
    relief = 1000 * np.cos(np.radians(lat))[:, None] * (1 + np.sin(np.radians(3 * lon)))[None, :]
    relief = relief.astype(np.float32)
    relief[20:30, 40:60] = np.nan
    relief[100:110, 200:230] = -9999
    write_raster(path, relief[None], "EPSG:4326", from_origin(-180, 90, 360 / width, 180 / height), nodata=-9999)
    return relief


def write_utm_photo(path, size=200):
    """A uint8 RGB raster in UTM zone 32N (a projected source), 1 km pixels."""
    rng = np.random.default_rng(3)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(3, size, size)), axis=1), axis=2)
    pixels = np.empty((3, size, size), np.uint8)
    for band in range(3):
        b = smooth[band]
        pixels[band] = np.round(255 * (b - b.min()) / (b.max() - b.min()))
    write_raster(path, pixels, "EPSG:32632", from_origin(400000, 5400000, 1000, 1000))
    return pixels


def geo_config(**changes) -> dict:
    config = tiny_config(
        datasets={},
        maps={"dem": {"path": "dem.tif"}},
        projections={"europe": EUROPE, "mollweide": MOLLWEIDE},
        reprojection={"format": "tif"},
    )
    config.update(changes)
    return config


def gdal_warp(source_path, output_path, resampling=Resampling.bilinear, crs=None):
    """GDAL's warp of the source onto the output's grid (and ``crs``, else its own), band by band, with nodata."""
    with rasterio.open(source_path) as src, rasterio.open(output_path) as out:
        result = np.full((src.count, out.height, out.width), np.nan, np.float32)
        for band in range(src.count):
            reproject(
                src.read(band + 1).astype(np.float32),
                result[band],
                src_transform=src.transform,
                src_crs=src.crs,
                src_nodata=src.nodata if src.nodata is not None else None,
                dst_transform=out.transform,
                dst_crs=crs or out.crs,
                dst_nodata=np.nan,
                resampling=resampling,
            )
    return result


@pytest.fixture(scope="module")
def dem_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("geo")
    relief = write_dem(workdir / "dem.tif")
    output = run_ok(workdir, geo_config())
    return workdir, relief, output


def test_a_float_dem_in_epsg4326_becomes_float_geotiffs_in_other_crss(dem_run):
    workdir, _, _ = dem_run
    folder = workdir / "results" / "maps" / "dem"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"{name}{suffix}" for name in ("europe", "mollweide") for suffix in (".json", ".prj", ".tfw", ".tif")
    ]
    with rasterio.open(folder / "europe.tif") as out:
        assert CRS.from_user_input(out.crs.to_wkt()).equals(CRS.from_epsg(3035))
        assert out.dtypes == ("float32",) and out.count == 1
        assert (out.width, out.height) == (100, 83)  # gdalwarp -te ... -tr 50000: round(4150 km / 50 km)
        assert out.transform.c == 2500000 and out.transform.f == 5500000 and out.transform.a == 50000
        assert np.isnan(out.nodata) or out.nodata == -9999
    info = json.loads((folder / "europe.json").read_text())
    assert CRS.from_wkt(info["crs"]).equals(CRS.from_epsg(3035)) and info["width"] == 100
    assert partial_entries(workdir) == []
    assert dry_run_plan(workdir, geo_config()) == {}


@pytest.mark.parametrize("name", ["europe", "mollweide"])
def test_dem_pixels_match_gdal_warp_away_from_nodata(dem_run, name):
    workdir, _, _ = dem_run
    path = workdir / "results" / "maps" / "dem" / f"{name}.tif"
    with rasterio.open(path) as out:
        ours = out.read(1)
        nodata = out.nodata
    if nodata is not None and not np.isnan(nodata):
        ours = np.where(ours == nodata, np.nan, ours)
    gdal = gdal_warp(workdir / "dem.tif", path)[0]
    both = np.isfinite(ours) & np.isfinite(gdal)
    # The same pixels have data, but for a rim one pixel wide along nodata edges and the globe's outline.
    differ = np.isfinite(ours) != np.isfinite(gdal)
    assert differ.sum() <= 0.03 * both.sum()
    # Relief up to 2000 m: within 1 m on average, 0.25 % of the range at most, two pixels or more from
    # nodata and the domain's edge. Along the edge GDAL does not read across the antimeridian; the
    # workflow does, as the source wraps (differences up to 25 m at the edge of Mollweide's ellipse).
    inner = ndimage.binary_erosion(both, np.ones((5, 5), bool))
    error = np.abs(ours[inner] - gdal[inner])
    assert inner.sum() > 0.8 * both.sum()
    assert error.mean() < 1.0 and error.max() < 5.0
    # Nodata never bleeds: no pixel near the -9999 block is below the relief's minimum.
    assert np.nanmin(ours) >= -1e-3


def test_a_projected_rgb_source_to_png_with_world_file_prj_and_aux_xml(tmp_path):
    workdir = tmp_path
    write_utm_photo(workdir / "utm.tif")
    config = geo_config(
        maps={"utm": {"path": "utm.tif"}},
        projections={"lonlat": {"crs": "EPSG:4326", "resolution": 0.005}},
        reprojection={"format": "png"},
    )
    run_ok(workdir, config)
    folder = workdir / "results" / "maps" / "utm"
    names = ["lonlat.json", "lonlat.pgw", "lonlat.png", "lonlat.png.aux.xml", "lonlat.prj"]
    assert sorted(p.name for p in folder.iterdir()) == names
    assert CRS.from_user_input((folder / "lonlat.prj").read_text()).to_epsg() == 4326  # ESRI WKT, as .prj files hold
    with rasterio.open(folder / "lonlat.png") as png:  # GDAL reads the world file and the .aux.xml beside it
        ours = png.read()
        assert png.transform.a == pytest.approx(0.005) and png.crs.to_epsg() == 4326
    assert ours.shape[0] == 4  # RGB and alpha: the rotated UTM square leaves corners without a source
    gdal = gdal_warp(workdir / "utm.tif", folder / "lonlat.png", crs="EPSG:4326")  # GDAL reads no .prj for a PNG
    inside = (ours[3] == 255) & np.isfinite(gdal).all(axis=0)
    assert inside.sum() > 0.5 * ours[3].size
    difference = np.abs(ours[:3].astype(np.float32) - gdal)[:, inside]
    assert difference.mean() < 0.5 and np.quantile(difference, 0.999) <= 2


def test_cog_output_is_valid_and_has_overviews(tmp_path):
    cogeo = pytest.importorskip("rio_cogeo.cogeo")
    workdir = tmp_path
    write_utm_photo(workdir / "utm.tif", size=600)
    config = geo_config(
        maps={"utm": {"path": "utm.tif"}},
        projections={"merc": {"crs": "EPSG:3857", "resolution": 400}},
        reprojection={"format": "cog", "compression": "zstd"},
    )
    run_ok(workdir, config)
    path = workdir / "results" / "maps" / "utm" / "merc.tif"
    valid, errors, _ = cogeo.cog_validate(str(path))
    assert valid and not errors
    with rasterio.open(path) as out:
        assert out.overviews(1) and out.compression.value.lower() == "zstd"
        assert CRS.from_user_input(out.crs.to_wkt()).equals(CRS.from_epsg(3857))


def test_average_downsampling_gives_the_flat_mean_where_bilinear_aliases(tmp_path):
    workdir = tmp_path
    size = 512
    checker = ((np.indices((size, size)).sum(axis=0) % 2) * 255).astype(np.uint8)
    write_raster(workdir / "checker.tif", checker[None], "EPSG:3857", from_origin(0, size * 100, 100, 100))
    # Output pixels of 8 x 8 source pixels, shifted by half a source pixel: each bilinear sample lands on one
    # source pixel, 0 or 255, while each average covers the checkerboard's mean (the outer rows and columns
    # reach half a pixel past the source, so they are left out below).
    coarse = {"crs": "EPSG:3857", "bounds": [50, 50, size * 100 + 50, size * 100 + 50], "resolution": 800}
    results = {}
    for method in ("average", "bilinear"):
        folder = workdir / method
        config = geo_config(
            maps={"checker": {"path": "../checker.tif"}},
            projections={"coarse": coarse},
            reprojection={"format": "tif", "interpolation": method},
        )
        run_ok(folder, config)
        with rasterio.open(folder / "results/maps/checker/coarse.tif") as out:
            results[method] = out.read(1).astype(np.float32)
    assert results["average"].shape == (64, 64)
    inner = (slice(1, -1), slice(1, -1))
    assert np.abs(results["average"][inner] - 127.5).max() <= 1
    assert np.abs(results["bilinear"][inner] - 127.5).min() > 100  # aliasing: every pixel 0 or 255
    gdal = gdal_warp(workdir / "checker.tif", workdir / "average/results/maps/checker/coarse.tif", Resampling.average)
    assert np.abs(results["average"][inner] - gdal[0][inner]).max() <= 1


def test_editing_a_crs_projection_reruns_only_its_jobs(dem_run):
    workdir, _, _ = dem_run
    projections = {"europe": dict(EUROPE, resolution=40000), "mollweide": MOLLWEIDE}
    plan = without_report(dry_run_plan(workdir, geo_config(projections=projections)))
    assert plan == {"results/maps/dem/europe.tif": "map_reproject"}
    maps = {"dem": {"path": "dem.tif", "nodata": -5000}}
    plan = without_report(dry_run_plan(workdir, geo_config(maps=maps)))
    assert set(plan) == {"results/maps/dem/europe.tif", "results/maps/dem/mollweide.tif"}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"projections": {"p": {"crs": "EPSG:999999", "width": 10}}}, r"config key projections\.p\.crs"),
        ({"projections": {"p": {"crs": "+proj=nonsense", "width": 10}}}, r"config key projections\.p\.crs"),
        (
            {"projections": {"p": {"crs": "EPSG:3035", "bounds": [-10, 35, 30, 70], "resolution": 1}}},
            r"config key projections\.p\.bounds",
        ),
        ({"projections": {"p": {"kind": "mercator", "crs": "EPSG:3857", "width": 8}}}, r"config key projections\.p:"),
        (
            {"projections": {"p": {"crs": "EPSG:3857", "resolution": 10, "width": 8}}},
            r"config key projections\.p\.resolution",
        ),
        ({"maps": {"dem": {"path": "dem.tif", "bounds": [0, 0, 10, 10]}}}, r"config key maps\.dem\.bounds"),
        (
            {"projections": {"p": {"crs": "EPSG:3035", "resolution": 1}}, "reprojection": {"pixel_limit": 10**6}},
            r"config key projections\.p.*pixel_limit",
        ),
        ({"reprojection": {"format": "tif", "compression": 6}}, r"config key reprojection\.compression"),
        # A whole-globe source has the south pole at infinity in north polar stereographic: give bounds.
        ({"projections": {"p": {"crs": "EPSG:3413", "resolution": 1000}}}, r"config key projections\.p.*bounds"),
        ({"reprojection": {"format": "tif", "pixel_limit": 1000}}, r"config key maps\.dem\.path: 360x180 pixels"),
    ],
)
def test_bad_gis_config_fails_before_any_job_naming_the_key(dem_run, tmp_path, change, words):
    workdir = tmp_path
    (workdir / "dem.tif").write_bytes((dem_run[0] / "dem.tif").read_bytes())
    config = geo_config(**change)
    if "reprojection" in change:
        config["reprojection"] = {"format": "tif", **change["reprojection"]}
    code, output = run_snakemake(workdir, config)
    assert code != 0
    assert re.search(words, output), output[-2000:]
    assert not (workdir / "results" / "maps").exists()
