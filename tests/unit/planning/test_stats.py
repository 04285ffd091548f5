"""The stats section of the config: schema, semantic checks, planned outputs."""

import copy

import pytest
from pixelflow.errors import ConfigError
from pixelflow.planning import config as plan
from pixelflow.planning import stats as plan_stats
from pixelflow.planning.datasets import DatasetPlan, generated_shard_spec, plan_datasets

BASE = {"datasets": {"noise": {"generator": "uniform", "count": 5, "shape": [8, 8]}}}


def validated(schema, stats):
    config = copy.deepcopy(BASE)
    config["stats"] = stats
    plan.validate_config(config, schema)
    plan_stats.check_config(config, ".")
    return config


def test_defaults_do_nothing(schema):
    config = copy.deepcopy(BASE)
    plan.validate_config(config, schema)
    assert config["stats"]["datasets"] == []
    assert plan_stats.outputs(config, plan_datasets(config, ".")) == []


def test_defaults_are_filled(schema):
    stats = validated(schema, {"datasets": ["noise"]})["stats"]
    assert stats == {"datasets": ["noise"], "sigmas": [10], "truncate": 4.0, "mode": "nearest", "save_filtered": "bmp"}


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        (
            {"datasets": ["noise"], "sigmas": [2, 0]},
            "config key stats.sigmas.1: 0 is less than or equal to the minimum of 0",
        ),
        ({"datasets": ["noise"], "sigmas": [-1.5]}, "config key stats.sigmas.0: -1.5 is less than or equal"),
        ({"datasets": ["noise"], "truncate": 0}, "config key stats.truncate"),
        ({"datasets": ["noise"], "mode": "periodic"}, "config key stats.mode"),
        ({"datasets": ["noise"], "save_filtered": "jpeg"}, "config key stats.save_filtered"),
        ({"datasets": ["noise"], "sigma": [1]}, "config key stats"),
        ({"datasets": ["noise", "missing"]}, "config key stats.datasets.1: dataset 'missing' is not defined"),
        ({"datasets": ["noise"], "sigmas": [10, 10.0]}, "config key stats.sigmas.1: sigma 10.0 repeats stats.sigmas.0"),
    ],
)
def test_bad_stats_config_names_the_key(schema, stats, message):
    with pytest.raises(ConfigError) as error:
        validated(schema, stats)
    assert message in str(error.value)


@pytest.mark.parametrize(("sigma", "label"), [(10, "10"), (10.0, "10"), (2.5, "2.5"), (0.1, "0.1"), (1e-3, "0.001")])
def test_sigma_labels_are_stable(sigma, label):
    assert plan_stats.sigma_label(sigma) == label


def test_outputs_per_dataset_and_shard(schema):
    config = validated(schema, {"datasets": ["noise"], "sigmas": [1, 2.5]})
    config["datasets"]["noise"]["shard_size"] = 3
    files = plan_stats.outputs(config, plan_datasets(config, "."))
    assert "results/stats/noise/filtered/sigma-2.5/shard-0001" in files
    assert "results/stats/noise/shards/shard-0000.tsv" in files
    assert {
        "results/stats/noise/summary.tsv",
        "results/stats/noise/theory.tsv",
        "results/stats/noise/variance.png",
    } <= set(files)
    config["stats"]["save_filtered"] = "none"
    assert plan_stats.filtered_dirs(config, "noise", "0000") == []


def test_generated_shards_are_drawn_from_params_and_external_ones_read_their_shard(schema):
    config = validated(schema, {"datasets": ["noise"]})
    config["datasets"]["noise"]["shard_size"] = 2
    generated = plan_datasets(config, ".")["noise"]
    source = plan_stats.shard_source(config, generated, "0002")
    spec = generated_shard_spec(config, "noise")
    assert source == {
        "kind": "generated",
        "start": 4,
        "stop": 5,
        "spec": {k: v for k, v in spec.items() if k != "compression"},
    }
    external = DatasetPlan("ext", "external", 3, 2, ("a.png", "b.png", "c.png"))
    assert plan_stats.shard_source(config, external, "0001") == {"kind": "external", "start": 2, "stop": 3}
