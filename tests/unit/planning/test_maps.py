"""Planning of the maps stage: config rules and the outputs asked for."""

import pytest
from pixelflow.maps.projections import natural_height
from pixelflow.planning import config as plan
from pixelflow.planning import maps as plan_maps

from ..support import REPO

MAP = "resources/natural_earth_shaded_relief_720x360.png"


def validated(schema, **maps_part):
    config = {"datasets": {}, **maps_part}
    plan.validate_config(config, schema)
    return config


@pytest.mark.parametrize("spelling", ["tiff", "tif"])
def test_outputs_name_image_json_world_file_and_prj_per_map_and_projection(schema, spelling):
    config = validated(
        schema,
        maps={"world": {"path": MAP}, "old": {"path": MAP}},
        projections={"tm": {"kind": "transverse_mercator", "width": 64}},
        reprojection={"format": spelling},
    )
    assert config["reprojection"]["format"] == "tiff"  # one spelling reaches the rules' params
    plan_maps.check_config(config, REPO)
    assert plan_maps.outputs(config, {}) == [
        "results/maps/world/tm.tif",
        "results/maps/world/tm.json",
        "results/maps/world/tm.tfw",
        "results/maps/world/tm.prj",
        "results/maps/old/tm.tif",
        "results/maps/old/tm.json",
        "results/maps/old/tm.tfw",
        "results/maps/old/tm.prj",
    ]
    config["reprojection"]["format"] = "png"
    assert plan_maps.outputs(config, {})[:4] == [
        "results/maps/world/tm.png",
        "results/maps/world/tm.json",
        "results/maps/world/tm.pgw",
        "results/maps/world/tm.prj",
    ]
    assert config["reprojection"]["error_threshold"] == 0.125
    assert config["reprojection"]["pixel_limit"] == 1 << 30
    assert config["maps"]["world"]["max_latitude"] == 85.0511


@pytest.mark.parametrize(
    "projection, key, words",
    [
        ({"kind": "mercator"}, "projections.p", "give the output width"),
        ({"kind": "mercator", "width": 8, "scale": 2}, "projections.p", "give the output width"),
        ({"kind": "mercator", "scale": 2, "height": 4}, "projections.p.height", "takes its height"),
        ({"kind": "orthographic", "width": 8, "pole_latitude": 3}, "projections.p.pole_latitude", "not a parameter"),
        ({"kind": "equirectangular", "width": 40000, "height": 30000}, "projections.p.width", "pixel_limit"),
    ],
)
def test_projection_rules_name_the_key(schema, projection, key, words):
    config = validated(schema, maps={}, projections={"p": projection})
    with pytest.raises(plan.ConfigError, match=rf"config key {key}: .*{words}"):
        plan_maps.check_config(config, REPO)


@pytest.mark.parametrize(
    "projections, key",
    [
        ({"p": {"kind": "gnomonic", "width": 8}}, "projections.p.kind"),
        ({"p": {"kind": "mercator", "width": -3}}, "projections.p.width"),
        ({"p": {"kind": "mercator", "max_latitude": 90, "width": 8}}, "projections.p.max_latitude"),
    ],
)
def test_schema_errors_name_the_key(schema, projections, key):
    with pytest.raises(plan.ConfigError, match=rf"config key {key}:"):
        validated(schema, maps={}, projections=projections)


def test_map_rules_name_the_key(schema):
    with pytest.raises(plan.ConfigError, match=r"config key maps.w.path: no such file"):
        plan_maps.check_config(validated(schema, maps={"w": {"path": "nowhere.png"}}), REPO)
    bad_bounds = {"w": {"path": MAP, "bounds": [10, 0, 5, 20]}}
    with pytest.raises(plan.ConfigError, match=r"config key maps.w.bounds"):
        plan_maps.check_config(validated(schema, maps=bad_bounds), REPO)
    with pytest.raises(plan.ConfigError, match=r"config key maps.w/x"):
        plan_maps.check_config(validated(schema, maps={"w/x": {"path": MAP}}), REPO)


def test_natural_heights_give_square_pixels():
    assert natural_height({"kind": "transverse_mercator"}, 2048) == 1024
    assert natural_height({"kind": "orthographic"}, 300) == 300
    assert natural_height({"kind": "mercator"}, 1000) == pytest.approx(1000, abs=1)


def test_small_outputs_ask_for_one_thread_large_ones_for_max_threads(schema):
    projections = {
        "small": {"kind": "mercator", "width": 1024},
        "large": {"kind": "transverse_mercator", "width": 10800},
        "scaled": {"kind": "orthographic", "scale": 2},
    }
    config = validated(schema, maps={}, projections=projections, max_threads=2)
    assert plan_maps.job_threads(config, "small") == 1
    assert plan_maps.job_threads(config, "large") == 2
    assert plan_maps.job_threads(config, "scaled") == 2
