"""Config validation: defaults filled, errors naming the dotted key, safe names."""

import copy

import pytest
from pixelflow.errors import ConfigError
from pixelflow.planning.config import validate_config

from ..support import SCRIPTS


def minimal_config(**datasets):
    return {"datasets": datasets or {"noise": {"generator": "uniform", "count": 5, "shape": [4, 6]}}}


def validated(schema, config):
    return validate_config(copy.deepcopy(config), schema)


def config_error(schema, config) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(copy.deepcopy(config), schema)
    return str(caught.value)


# validate_config ---------------------------------------------------------------


def test_validation_fills_every_default(schema):
    config = validated(schema, minimal_config())
    top = schema["properties"]
    for key in ("seed", "shard_size", "max_threads"):
        assert config[key] == top[key]["default"]
    montage = top["montage"]["properties"]
    assert config["montage"] == {key: montage[key]["default"] for key in montage}
    generated = schema["$defs"]["generated"]
    defaults = {key: value["default"] for key, value in generated["properties"].items() if "default" in value}
    # Defaults that depend on the storage: the else branch's for files (the default storage).
    storage_defaults = {key: value["default"] for key, value in generated["else"]["properties"].items()}
    assert {"dtype", "storage"} <= set(defaults) and {"format", "compression", "stack"} <= set(storage_defaults)
    assert defaults["storage"] == "files"
    assert config["datasets"]["noise"] == {**minimal_config()["datasets"]["noise"], **defaults, **storage_defaults}
    assert "seed" not in config["datasets"]["noise"]  # falls back to the top-level seed at use


def test_zarr_storage_fills_its_own_defaults(schema):
    config = validated(
        schema, minimal_config(noise={"generator": "uniform", "count": 5, "shape": [4, 6], "storage": "zarr"})
    )
    generated = schema["$defs"]["generated"]
    assert generated["if"]["properties"]["storage"] == {"const": "zarr"}
    zarr_defaults = {key: value["default"] for key, value in generated["then"]["properties"].items()}
    assert zarr_defaults == {"compression": "none", "stack": False}
    noise = config["datasets"]["noise"]
    assert {key: noise[key] for key in zarr_defaults} == zarr_defaults
    assert "format" not in noise  # a zarr array has no file format


def test_the_schema_names_the_storages_and_compressions_the_code_knows(schema):
    from pixelflow.io.zarrstore import COMPRESSIONS
    from pixelflow.planning.datasets import STORAGES

    generated = schema["$defs"]["generated"]
    assert tuple(generated["properties"]["storage"]["enum"]) == STORAGES
    assert tuple(schema["$defs"]["external"]["properties"]["storage"]["enum"]) == STORAGES
    assert generated["then"]["properties"]["compression"]["default"] in COMPRESSIONS
    assert all(name in generated["properties"]["compression"]["description"] for name in COMPRESSIONS)


def test_validation_keeps_given_values_and_fills_the_rest(schema):
    config = minimal_config(noise={"generator": "uniform", "count": 5, "shape": [4, 6], "dtype": "uint16"})
    config["montage"] = {"count": 3}
    config["seed"] = 99
    config = validated(schema, config)
    assert config["seed"] == 99
    assert config["montage"]["count"] == 3
    assert config["montage"]["cell"] == schema["properties"]["montage"]["properties"]["cell"]["default"]
    assert config["datasets"]["noise"]["dtype"] == "uint16"


def test_validation_fills_defaults_of_external_datasets(schema):
    external = schema["$defs"]["external"]
    config = validated(schema, {"datasets": {"photos": {"path": "photos/*.jpg"}}})
    photos = config["datasets"]["photos"]
    assert photos["storage"] == "files"
    assert photos["stack"] == external["else"]["properties"]["stack"]["default"] is True
    assert "dtype" not in photos and "format" not in photos and "compression" not in photos
    packed = validated(schema, {"datasets": {"photos": {"path": "photos/*.jpg", "storage": "zarr"}}})["datasets"]
    assert packed["photos"]["stack"] is False
    assert packed["photos"]["compression"] == external["then"]["properties"]["compression"]["default"] == "none"


def test_the_shipped_config_is_valid(schema):
    import yaml

    config = yaml.safe_load((SCRIPTS.parent / "config" / "config.yaml").read_text())
    validated(schema, config)


def with_dataset_key(key, value):
    config = minimal_config()
    config["datasets"]["noise"][key] = value
    return config


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (with_dataset_key("count", 0), "datasets.noise.count"),
        (with_dataset_key("count", "many"), "datasets.noise.count"),
        (with_dataset_key("shape", [4, 0]), "datasets.noise.shape.1"),
        (with_dataset_key("shape", [0, 4, 3]), "datasets.noise.shape.0"),
        (with_dataset_key("shape", [4]), "datasets.noise.shape"),
        (with_dataset_key("generator", "perlin"), "datasets.noise.generator"),
        (with_dataset_key("dtype", "int8"), "datasets.noise.dtype"),
        (with_dataset_key("compression", 10), "datasets.noise.compression"),
        (with_dataset_key("compression", [1]), "datasets.noise.compression"),
        (with_dataset_key("storage", "s3"), "datasets.noise.storage"),
        (with_dataset_key("colour", "blue"), "datasets.noise"),
        ({**minimal_config(), "seed": "abc"}, "seed"),
        ({**minimal_config(), "seed": -1}, "seed"),
        ({**minimal_config(), "shard_size": 2.5}, "shard_size"),
        ({**minimal_config(), "montage": {"cell": 4}}, "montage.cell"),
        ({**minimal_config(), "montage": []}, "montage"),
        ({"datasets": {"photos": {"path": ""}}}, "datasets.photos.path"),
        ({"datasets": {"photos": {"path": "*.png", "generator": "uniform"}}}, "datasets.photos"),
    ],
)
def test_validation_errors_name_the_dotted_key(schema, config, where):
    message = config_error(schema, config)
    assert f"config key {where}:" in message


def test_unknown_top_level_key_is_named(schema):
    message = config_error(schema, {**minimal_config(), "sead": 3})
    assert "'sead'" in message


def test_unknown_dataset_key_is_named(schema):
    message = config_error(schema, with_dataset_key("colour", "blue"))
    assert "colour" in message


@pytest.mark.parametrize("name", ["a/b", "..", "../up", "my data", " lead", "-dash", "x.y", ""])
def test_unsafe_dataset_names_are_rejected_by_name(schema, name):
    config = {"datasets": {name: {"generator": "uniform", "count": 1, "shape": [2, 2]}}}
    message = config_error(schema, config)
    assert repr(name) in message


@pytest.mark.parametrize("name", ["noise", "Noise_2", "a-b", "0"])
def test_safe_dataset_names_pass(schema, name):
    validated(schema, {"datasets": {name: {"generator": "uniform", "count": 1, "shape": [2, 2]}}})


# plan_datasets ---------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["tif", "tiff"])
def test_tiff_has_one_spelling_after_validation(schema, spelling):
    config = validated(
        schema,
        {
            "datasets": {"noise": {"generator": "uniform", "count": 2, "shape": [4, 4], "format": spelling}},
            "reprojection": {"format": spelling},
            "stats": {"save_filtered": spelling},
        },
    )
    assert config["datasets"]["noise"]["format"] == "tiff"
    assert config["reprojection"]["format"] == "tiff"
    assert config["stats"]["save_filtered"] == "tiff"
