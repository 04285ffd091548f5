"""The inverse-map cache: a cached grid gives the coordinates computed directly, its key, and bad cache files."""

import numpy as np
import pytest
from pixelflow.io.images import write_image
from pixelflow.maps.georef import source_geometry
from pixelflow.maps.inverse_cache import InverseMapError, InverseMapFile, inverse_spec, write_inverse_map
from pixelflow.maps.inverse_map import interpolated_coordinates, mapping_task
from pixelflow.maps.projections import natural_height
from pixelflow.maps.reproject import plan_tiles, reproject_file
from pixelflow.planning import config as plan
from pixelflow.planning import maps as plan_maps

TMERC = {"kind": "transverse_mercator", "lon_0": 0.0}
ORTHO = {"kind": "orthographic", "lat_0": 35.0, "lon_0": 100.0}


def smooth_world(height=90, width=180, seed=0):
    """A smooth random RGB map (bilinear upsampling of coarse noise)."""
    import cv2

    small = np.random.default_rng(seed).uniform(0, 255, (height // 6, width // 6, 3)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.uint8)


def spec_for(projection, width, height, geometry, threshold=0.125, step=8):
    source = {"kind": geometry.kind, "width": geometry.width, "height": geometry.height, "bounds": geometry.bounds}
    return inverse_spec(projection, width, height, source, threshold, step)


def full_map(task, processes, cache=None):
    """Source coordinates of every output pixel, tile by tile as a job with ``processes`` tiles them."""
    coords = np.empty((task.height, task.width, 2), np.float32)
    exact = 0
    for row0, row1, col0, col1 in plan_tiles(task.height, task.width, task.grid_step):
        grid = cache.tile(row0, row1, col0, col1) if cache is not None else None
        coords[row0:row1, col0:col1], count = interpolated_coordinates(task, row0, row1, col0, col1, grid)
        exact += count
    return coords, exact


@pytest.mark.parametrize(
    "projection, width, height, source, threshold, step",
    [
        (TMERC, 400, 200, ({}, 180, 90), 0.125, 8),
        (ORTHO, 257, 257, ({}, 180, 90), 0.125, 8),
        (ORTHO, 301, 301, ({"projection": "mercator"}, 256, 256), 0.02, 12),
        ({"kind": "transverse_mercator", "lon_0": 40}, 300, 77, ({"bounds": [-30, -60, 90, 20]}, 120, 80), 0.5, 16),
        (TMERC, 20000, 30, ({}, 180, 90), 0.125, 12),  # two column ranges, not on the grid step
    ],
    ids=["tmerc", "ortho", "ortho-mercator-source-step-12", "tmerc-bounded-step-16", "wider-than-a-tile"],
)
def test_a_cached_inverse_map_gives_the_coordinates_computed_directly(
    tmp_path, projection, width, height, source, threshold, step
):
    geometry = source_geometry(*source)
    task = mapping_task(projection, width, height, geometry, threshold, step)
    path = tmp_path / "grid.inv"
    facts = write_inverse_map(path, spec_for(projection, width, height, geometry, threshold, step))
    assert path.stat().st_size == facts["bytes"] and facts["refined_cells"] > 0
    with InverseMapFile(path) as cache:
        for processes in (1, 2):  # different row bands: every tile finds its part of the grid
            direct, direct_exact = full_map(task, processes)
            cached, cached_exact = full_map(task, processes, cache)
            assert np.array_equal(direct, cached, equal_nan=True)
            assert cached_exact == direct_exact > 0
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("projection", [TMERC, ORTHO], ids=["tmerc", "ortho"])
def test_reprojecting_from_a_cached_inverse_map_gives_the_same_bytes(tmp_path, projection):
    source = tmp_path / "world.png"
    write_image(source, smooth_world(seed=3))
    height = natural_height(projection, 240)
    path = tmp_path / "grid.inv"
    write_inverse_map(path, spec_for(projection, 240, height, source_geometry({}, 180, 90)))
    for name, inverse in (("direct.png", None), ("cached.png", path)):
        facts = reproject_file(
            source, tmp_path / name, {}, {**projection, "width": 240}, threads=2, pixels_per_thread=1000,
            inverse_path=inverse,
        )  # fmt: skip
    assert (tmp_path / "direct.png").read_bytes() == (tmp_path / "cached.png").read_bytes()
    assert facts["exact_pixels"] > 0


def test_an_inverse_map_made_for_other_values_is_refused_naming_them(tmp_path):
    source = tmp_path / "world.png"
    write_image(source, smooth_world())
    path = tmp_path / "grid.inv"
    write_inverse_map(path, spec_for(TMERC, 64, 32, source_geometry({}, 180, 90)))
    output = tmp_path / "out.png"
    output.write_bytes(b"previous result")
    with pytest.raises(InverseMapError, match=r"grid.inv does not fit .*width: made for 64, needed 80"):
        reproject_file(source, output, {}, {**TMERC, "width": 80}, inverse_path=path)
    with pytest.raises(InverseMapError, match=r"error_threshold: made for 0.125, needed 0.5"):
        reproject_file(source, output, {}, {**TMERC, "width": 64}, threshold=0.5, inverse_path=path)
    assert output.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.inv", "out.png", "world.png"]


@pytest.mark.parametrize("damage", ["empty", "not-one", "truncated"])
def test_a_broken_inverse_map_file_fails_clearly(tmp_path, damage):
    source = tmp_path / "world.png"
    write_image(source, smooth_world())
    path = tmp_path / "grid.inv"
    write_inverse_map(path, spec_for(TMERC, 64, 32, source_geometry({}, 180, 90)))
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "not-one": b"P6\n" + data[3:], "truncated": data[:-100]}[damage])
    with pytest.raises(InverseMapError, match=r"grid.inv: not a readable inverse-map file"):
        reproject_file(source, tmp_path / "out.png", {}, {**TMERC, "width": 64}, inverse_path=path)
    assert not (tmp_path / "out.png").exists()


def test_nothing_is_cached_for_error_threshold_0(tmp_path):
    with pytest.raises(InverseMapError, match="error threshold 0"):
        write_inverse_map(tmp_path / "grid.inv", spec_for(TMERC, 64, 32, source_geometry({}, 180, 90), threshold=0))
    assert not list(tmp_path.iterdir())


def planned(schema, tmp_path, maps, projections, **settings):
    config = {"datasets": {}, "maps": maps, "projections": projections, "reprojection": settings}
    plan.validate_config(config, schema)
    plan_maps.check_config(config, tmp_path)
    return plan_maps.plan_inverses(config, tmp_path)


def test_maps_of_one_grid_share_a_key_and_each_value_it_depends_on_changes_it(schema, tmp_path):
    for name, (height, width) in {"a.png": (90, 180), "b.png": (90, 180), "c.png": (45, 90)}.items():
        write_image(tmp_path / name, smooth_world(height, width))
    maps = {"a": {"path": "a.png"}, "b": {"path": str(tmp_path / "b.png")}, "c": {"path": "c.png"}}
    projections = {"tm": {"kind": "transverse_mercator", "width": 64}, "half": {"kind": "orthographic", "scale": 0.5}}
    keys, specs = planned(schema, tmp_path, maps, projections, cache_inverse=True)
    assert keys["a", "tm"] == keys["b", "tm"] and keys["a", "half"] == keys["b", "half"]
    assert len({keys["a", "tm"], keys["c", "tm"], keys["a", "half"], keys["c", "half"]}) == 4
    assert len(specs) == 4 and all(len(key) == 16 for key in specs)
    assert (specs[keys["c", "half"]]["width"], specs[keys["c", "half"]]["height"]) == (45, 45)  # from the header
    assert plan_maps.cached_inverse(keys, "b", "tm") == {"inverse": f"results/maps/inverse/{keys['a', 'tm']}.inv"}
    # The same values written differently give the same key; a value the map depends on changes it.
    same = {"tm": {"kind": "transverse_mercator", "width": 64, "lon_0": 0}, "half": projections["half"]}
    assert planned(schema, tmp_path, maps, same, cache_inverse=True)[0] == keys
    for projections_changed, settings in [
        ({"tm": {"kind": "transverse_mercator", "width": 66}}, {}),
        ({"tm": {"kind": "transverse_mercator", "width": 64, "height": 40}}, {}),
        ({"tm": {"kind": "transverse_mercator", "width": 64, "lon_0": 1}}, {}),
        ({"tm": projections["tm"]}, {"error_threshold": 0.25}),
        ({"tm": projections["tm"]}, {"grid_step": 16}),
    ]:
        changed = planned(schema, tmp_path, maps, projections_changed, cache_inverse=True, **settings)[0]
        assert changed["a", "tm"] != keys["a", "tm"]
    bounded = dict(maps, a={"path": "a.png", "bounds": [-180, -90, 180, 80]})
    assert planned(schema, tmp_path, bounded, projections, cache_inverse=True)[0]["a", "tm"] != keys["a", "tm"]


def test_no_inverse_map_is_planned_when_off_exact_or_for_a_map_it_cannot_describe(schema, tmp_path):
    write_image(tmp_path / "a.png", smooth_world())
    write_image(tmp_path / "wide.png", smooth_world(90, 200))  # not 2:1 and no bounds: its job fails, as before
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    maps = {"a": {"path": "a.png"}, "wide": {"path": "wide.png"}, "broken": {"path": "broken.png"}}
    projections = {"tm": {"kind": "transverse_mercator", "width": 64}}
    assert planned(schema, tmp_path, maps, projections) == ({}, {})  # off by default
    assert planned(schema, tmp_path, maps, projections, cache_inverse=True, error_threshold=0) == ({}, {})
    keys, _ = planned(schema, tmp_path, maps, projections, cache_inverse=True)
    assert list(keys) == [("a", "tm")]


def test_an_unknown_key_is_a_clear_error():
    with pytest.raises(ValueError, match="results/maps/inverse/0123456789abcdef.inv: no map and projection"):
        plan_maps.inverse_spec_of({}, "0123456789abcdef")
