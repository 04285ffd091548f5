"""The maps stage in real snakemake runs: files written, georeferencing, the inverse-map cache, reruns, bad config."""

import json

import cv2
import numpy as np
import pytest
import rasterio
from conftest import (
    dry_run_plan,
    job_inputs,
    partial_entries,
    planned_jobs,
    run_ok,
    run_snakemake,
    tiny_config,
    without_report,
)
from pyproj import CRS

PROJECTIONS = {
    "pole_shift": {"kind": "transverse_mercator", "width": 64},
    "globe": {"kind": "orthographic", "lat_0": 20, "lon_0": 10, "width": 40},
}


def maps_config(**changes) -> dict:
    config = tiny_config(
        datasets={},
        maps={"tiny": {"path": "world.png"}},
        projections=PROJECTIONS,
        reprojection={"format": "png"},
    )
    config.update(changes)
    return config


def write_world(workdir, width=48, height=24, name="world.png", seed=5):
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(workdir / name), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def cached_config(**changes) -> dict:
    """Two maps of the same size (one grid) in both projections, with the inverse maps cached."""
    return maps_config(
        maps={"tiny": {"path": "world.png"}, "other": {"path": "other.png"}},
        reprojection={"format": "png", "cache_inverse": True},
        **changes,
    )


@pytest.fixture(scope="module")
def maps_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("maps")
    write_world(workdir)
    output = run_ok(workdir, maps_config())
    return workdir, output


def test_a_run_writes_images_and_georeferencing_then_plans_nothing(maps_run):
    workdir, _ = maps_run
    folder = workdir / "results" / "maps" / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{name}{suffix}" for name in PROJECTIONS for suffix in (".png", ".json", ".pgw", ".prj", ".png.aux.xml")
    )
    pole_shift = cv2.imread(str(folder / "pole_shift.png"), cv2.IMREAD_UNCHANGED)
    globe = cv2.imread(str(folder / "globe.png"), cv2.IMREAD_UNCHANGED)
    assert pole_shift.shape == (32, 64, 3) and globe.shape == (40, 40, 4)
    assert globe[0, 0, 3] == 0 and globe[20, 20, 3] == 255
    info = json.loads((folder / "pole_shift.json").read_text())
    assert info["proj"].startswith("+proj=tmerc") and (info["width"], info["height"]) == (64, 32)
    world = [float(v) for v in (folder / "pole_shift.pgw").read_text().split()]
    t = info["transform"]
    assert world[:4] == pytest.approx([t[1], t[4], t[2], t[5]])
    with rasterio.open(folder / "pole_shift.png") as png:  # GDAL: the grid from the world file, the CRS from .aux.xml
        assert png.transform.to_gdal() == pytest.approx(t)
        assert CRS(png.crs.to_wkt()).equals(CRS(info["proj"]))
    for name in PROJECTIONS:
        assert (workdir / "results" / "logs" / "maps" / "tiny" / f"{name}.log").is_file()
        assert (workdir / "results" / "benchmarks" / "maps" / "tiny" / f"{name}.tsv").is_file()
    assert partial_entries(workdir) == []
    assert dry_run_plan(workdir, maps_config()) == {}


def test_editing_one_projection_replans_only_its_job(maps_run):
    workdir, _ = maps_run
    projections = dict(PROJECTIONS, globe=dict(PROJECTIONS["globe"], lat_0=-40))
    plan = without_report(dry_run_plan(workdir, maps_config(projections=projections)))
    assert plan == {"results/maps/tiny/globe.png": "map_reproject"}
    settings = maps_config(reprojection={"format": "png", "interpolation": "cubic"})
    assert set(without_report(dry_run_plan(workdir, settings))) == {
        f"results/maps/tiny/{name}.png" for name in PROJECTIONS
    }


@pytest.fixture(scope="module")
def cached_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("maps-cached")
    write_world(workdir)
    write_world(workdir, name="other.png", seed=6)
    output = run_ok(workdir, cached_config())
    return workdir, output


def test_maps_of_one_grid_share_one_inverse_map_job_and_file(cached_run, maps_run):
    workdir, output = cached_run
    jobs = planned_jobs(output)
    inverse_jobs = sorted(path for path, rule in jobs.items() if rule == "map_inverse")
    assert len(inverse_jobs) == len(PROJECTIONS)  # one per projection, for both maps
    assert sorted(p.relative_to(workdir).as_posix() for p in (workdir / "results/maps/inverse").iterdir()) == (
        inverse_jobs
    )
    inputs = job_inputs(output)
    for name in PROJECTIONS:
        used = [
            {path for path in inputs[f"results/maps/{map_name}/{name}.png"] if path.startswith("results/maps/inverse/")}
            for map_name in ("tiny", "other")
        ]
        assert used[0] == used[1] and len(used[0]) == 1 and used[0] <= set(inverse_jobs)
        log = (workdir / f"results/logs/maps/other/{name}.log").read_text()
        assert f"coarse grid from the cached inverse map {next(iter(used[0]))}" in log
        # The same map as the uncached run's, to the byte.
        cached, direct = (folder / f"results/maps/tiny/{name}.png" for folder in (workdir, maps_run[0]))
        assert cached.read_bytes() == direct.read_bytes()
    for path in inverse_jobs:
        key = path.rsplit("/", 1)[1].removesuffix(".inv")
        assert (workdir / f"results/logs/maps/inverse/{key}.log").is_file()
        assert (workdir / f"results/benchmarks/maps/inverse/{key}.tsv").is_file()
    assert partial_entries(workdir) == []
    assert dry_run_plan(workdir, cached_config()) == {}


def test_a_new_width_replans_its_inverse_map_and_that_projections_maps_only(cached_run):
    workdir, _ = cached_run
    projections = dict(PROJECTIONS, pole_shift=dict(PROJECTIONS["pole_shift"], width=80))
    plan = without_report(dry_run_plan(workdir, cached_config(projections=projections)))
    inverse = [path for path, rule in plan.items() if rule == "map_inverse"]
    assert len(inverse) == 1 and not (workdir / inverse[0]).exists()
    assert plan == {
        inverse[0]: "map_inverse",
        "results/maps/tiny/pole_shift.png": "map_reproject",
        "results/maps/other/pole_shift.png": "map_reproject",
    }


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"projections": {"bad": {"kind": "sinusoidal", "width": 10}}}, "projections.bad.kind"),
        ({"projections": {"bad": {"kind": "mercator", "width": 0}}}, "projections.bad.width"),
        ({"projections": {"bad": {"kind": "mercator", "lat_0": 3, "width": 8}}}, "projections.bad.lat_0"),
        ({"projections": {"bad": {"kind": "mercator", "width": 100000, "height": 100000}}}, "projections.bad.width"),
        ({"maps": {"tiny": {"path": "absent.png"}}}, "maps.tiny.path"),
        ({"maps": {"a b": {"path": "world.png"}}}, "maps.a b"),
    ],
    ids=["unknown-kind", "zero-width", "foreign-parameter", "over-pixel-limit", "missing-file", "bad-name"],
)
def test_bad_config_is_refused_naming_the_key(tmp_path, changes, key):
    write_world(tmp_path)
    returncode, output = run_snakemake(tmp_path, maps_config(**changes), "-n")
    assert returncode != 0
    assert f"config key {key}" in output


@pytest.mark.parametrize("cache_inverse", [False, True], ids=["computed", "cached"])
def test_a_map_that_is_not_2_to_1_fails_its_job_and_writes_nothing(tmp_path, cache_inverse):
    write_world(tmp_path, width=50, height=24)
    config = maps_config(
        projections={"pole_shift": PROJECTIONS["pole_shift"]},
        reprojection={"format": "png", "cache_inverse": cache_inverse},
    )
    returncode, output = run_snakemake(tmp_path, config)
    assert returncode != 0
    assert "map_inverse" not in output  # no grid to cache for a map it cannot place
    log = (tmp_path / "results" / "logs" / "maps" / "tiny" / "pole_shift.log").read_text()
    assert "must be 2:1" in log
    assert not (tmp_path / "results" / "maps" / "tiny" / "pole_shift.png").exists()
    assert partial_entries(tmp_path) == []
