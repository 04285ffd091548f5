"""The maps stage in real snakemake runs: files written, georeferencing, reruns, bad config."""

import json

import cv2
import numpy as np
import pytest
from conftest import dry_run_plan, partial_entries, run_ok, run_snakemake, tiny_config

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


def write_world(workdir, width=48, height=24):
    rng = np.random.default_rng(5)
    workdir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(workdir / "world.png"), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


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
        f"{name}{suffix}" for name in PROJECTIONS for suffix in (".png", ".json", ".pgw")
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
    for name in PROJECTIONS:
        assert (workdir / "results" / "logs" / "maps" / "tiny" / f"{name}.log").is_file()
        assert (workdir / "results" / "benchmarks" / "maps" / "tiny" / f"{name}.tsv").is_file()
    assert partial_entries(workdir) == []
    assert dry_run_plan(workdir, maps_config()) == {}


def test_editing_one_projection_replans_only_its_job(maps_run):
    workdir, _ = maps_run
    projections = dict(PROJECTIONS, globe=dict(PROJECTIONS["globe"], lat_0=-40))
    plan = dry_run_plan(workdir, maps_config(projections=projections))
    assert plan == {"results/maps/tiny/globe.png": "map_reproject"}
    settings = maps_config(reprojection={"format": "png", "interpolation": "cubic"})
    assert set(dry_run_plan(workdir, settings)) == {f"results/maps/tiny/{name}.png" for name in PROJECTIONS}


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


def test_a_map_that_is_not_2_to_1_fails_its_job_and_writes_nothing(tmp_path):
    write_world(tmp_path, width=50, height=24)
    returncode, output = run_snakemake(tmp_path, maps_config(projections={"pole_shift": PROJECTIONS["pole_shift"]}))
    assert returncode != 0
    log = (tmp_path / "results" / "logs" / "maps" / "tiny" / "pole_shift.log").read_text()
    assert "must be 2:1" in log
    assert not (tmp_path / "results" / "maps" / "tiny" / "pole_shift.png").exists()
    assert partial_entries(tmp_path) == []
