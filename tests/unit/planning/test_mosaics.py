"""Config of the mosaics stage: schema defaults, semantic checks and planned paths."""

import copy

import pytest
from pixelflow.errors import ConfigError
from pixelflow.planning import mosaics as plan_mosaics
from pixelflow.planning.config import validate_config
from pixelflow.planning.datasets import plan_datasets

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
    assert cfg["mosaics"]["m"]["features"] == {"grid": 2, "space": "lab"}
    assert cfg["mosaics"]["m"]["max_repeats"] is None and cfg["mosaics"]["m"]["colour_correction"] == 0
    assert cfg["libraries"]["grey"]["rotations"] == [0] and cfg["libraries"]["grey"]["flip"] is False
    assert plan_mosaics.outputs(cfg, {}) == ["results/mosaics/m.png", "results/mosaics/m.json"]
    params = plan_mosaics.mosaic_params(cfg, "m")
    assert params["scale"] == 8 and params["grid"] == 2 and params["key"] == "mosaics.m"
    assert plan_mosaics.mosaic_inputs(cfg, "m")["library"] == "results/mosaics/libraries/grey-8px.npz"
    assert plan_mosaics.library_params(cfg, "grey")["mode"] == "resize"
    datasets = plan_datasets(cfg, ".")
    assert plan_mosaics.library_inputs(cfg, datasets, "grey", ".") == {"shards": ["results/datasets/noise/shard-0000"]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mosaics.m.tile": 0}, "config key mosaics.m.tile: 0 is less than the minimum of 1"),
        ({"mosaics.m.colour_correction": 1.5}, "config key mosaics.m.colour_correction"),
        ({"mosaics.m.max_repeats": 0}, "config key mosaics.m.max_repeats"),
        ({"mosaics.m.features": {"grid": 3}}, "config key mosaics.m.features.grid"),
        ({"libraries.grey.rotations": [45]}, "config key libraries.grey.rotations.0"),
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
    assert plan_mosaics.library_params(cfg, "grey")["mode"] == "cut"
