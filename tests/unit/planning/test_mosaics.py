"""Config of the mosaics stage: schema defaults, semantic checks and planned paths."""

import copy

import pytest
from pixelflow.errors import ConfigError
from pixelflow.planning import mosaics as plan_mosaics
from pixelflow.planning.config import validate_config

BASE = {
    "datasets": {"noise": {"generator": "uniform", "count": 5, "shape": [8, 8]}},
    "libraries": {"grey": {"dataset": "noise"}, "samples": {"images": ["results/mosaics/samples/coffee.png"]}},
    "mosaics": {"m": {"target": "results/mosaics/samples/camera.png", "library": "grey", "tile": 8}},
}


def config(**changes):
    result = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = result
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return result


def validated(cfg, schema, workdir="."):
    validate_config(cfg, schema)
    plan_mosaics.check_config(cfg, workdir)
    return cfg


def test_defaults_are_filled_and_outputs_planned(schema):
    cfg = validated(config(), schema)
    assert cfg["mosaics"]["m"]["features"] == {"grid": None, "space": "lab"}
    assert cfg["mosaics"]["m"]["max_repeats"] is None and cfg["mosaics"]["m"]["colour_correction"] == 0
    assert cfg["mosaics"]["m"]["assignment"] == "optimal" and cfg["mosaics"]["m"]["min_spacing"] == 0
    assert cfg["libraries"]["grey"]["rotations"] == [0] and cfg["libraries"]["grey"]["flip"] is False
    assert plan_mosaics.outputs(cfg, {}) == ["results/mosaics/m.png", "results/mosaics/m.json", "results/mosaics/m.tsv"]
    params = plan_mosaics.mosaic_params(cfg, "m")
    assert params["scale"] == [8, 8] and params["tile"] == [8, 8] and params["grid"] == 8
    assert params["key"] == "mosaics.m" and params["assignment"] == "optimal"
    assert plan_mosaics.mosaic_inputs(cfg, "m")["library"] == "results/mosaics/libraries/grey-8px.npz"
    library = plan_mosaics.library_params(cfg, "grey")
    assert library["mode"] == "fit" and library["fit"] == "crop" and library["on_bad_image"] == "fail"


def test_non_square_tiles_name_their_library_and_scale_with_their_aspect(schema):
    cfg = validated(config(**{"mosaics.m.tile": [8, 12], "mosaics.m.scale": 16}), schema)
    params = plan_mosaics.mosaic_params(cfg, "m")
    assert params["tile"] == [8, 12] and params["scale"] == [16, 24]
    assert plan_mosaics.mosaic_inputs(cfg, "m")["library"] == "results/mosaics/libraries/grey-8x12px.npz"
    assert plan_mosaics.parse_tile_label("8x12") == (8, 12) and plan_mosaics.parse_tile_label("16") == (16, 16)
    assert params["grid"] == 8  # the default grid fits 8-px sides
    for tile, grid in ((4, 4), ([3, 30], 2), (1, 1), ([7, 7], 4)):
        assert plan_mosaics.mosaic_params(validated(config(**{"mosaics.m.tile": tile}), schema), "m")["grid"] == grid
    cfg = validated(config(**{"mosaics.m.tile": [9, 9], "mosaics.m.scale": [4, 20]}), schema)
    assert plan_mosaics.mosaic_inputs(cfg, "m")["library"].endswith("grey-9px.npz")
    assert plan_mosaics.mosaic_params(cfg, "m")["scale"] == [4, 20]
    assert plan_mosaics.library_dataset(cfg, "grey") == "noise"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mosaics.m.tile": 0}, "config key mosaics.m.tile: 0 is less than the minimum of 1"),
        ({"mosaics.m.colour_correction": 1.5}, "config key mosaics.m.colour_correction"),
        ({"mosaics.m.max_repeats": 0}, "config key mosaics.m.max_repeats"),
        ({"mosaics.m.features": {"grid": 3}}, "config key mosaics.m.features.grid"),
        ({"libraries.grey.rotations": [45]}, "config key libraries.grey.rotations.0"),
        ({"mosaics.m.tile": [8]}, "config key mosaics.m.tile"),
        ({"mosaics.m.assignment": "best"}, "config key mosaics.m.assignment"),
        ({"mosaics.m.min_spacing": -1}, "config key mosaics.m.min_spacing"),
        ({"libraries.grey.fit": "stretch"}, "config key libraries.grey.fit"),
        ({"libraries.grey.on_bad_image": "ignore"}, "config key libraries.grey.on_bad_image"),
        ({"libraries.grey": {"dataset": "noise", "path": "*.png"}}, "config key libraries.grey"),
    ],
)
def test_schema_errors_name_the_key(schema, changes, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validated(config(**changes), schema)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mosaics.m.library": "nope"}, "config key mosaics.m.library: no library named 'nope'"),
        (
            {"libraries.grey.dataset": "gone"},
            "config key libraries.grey.dataset: no dataset, or pipeline that saves images, named 'gone'",
        ),
        ({"libraries.grey.rotations": [90, 90]}, "config key libraries.grey.rotations"),
        ({"mosaics.m.tile": 2, "mosaics.m.features": {"grid": 4}}, "config key mosaics.m.features.grid"),
        ({"mosaics.m.tile": [16, 2], "mosaics.m.features": {"grid": 4}}, "config key mosaics.m.features.grid"),
        (
            {"mosaics.m.tile": [8, 12], "libraries.grey.rotations": [0, 270]},
            "config key libraries.grey.rotations: a 270 degree turn does not fit the 8x12",
        ),
        ({"libraries.empty": {"path": "no/such/*.png"}}, "config key libraries.empty.path: the glob"),
        ({"mosaics.bad name": {"target": "x.png", "library": "grey", "tile": 4}}, "config key mosaics.bad name"),
    ],
)
def test_semantic_errors_name_the_key(schema, changes, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        validated(config(**changes), schema)


def test_glob_library_lists_files_in_sorted_order(tmp_path, schema):
    for name in ("b.png", "a.png", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    cfg = validated(config(**{"libraries.grey": {"path": str(tmp_path / "*.png")}}), schema)
    files = plan_mosaics.library_files(cfg, "grey", tmp_path)
    assert [f.rsplit("/", 1)[-1] for f in files] == ["a.png", "b.png"]
    assert plan_mosaics.library_params(cfg, "grey")["mode"] == "fit"
