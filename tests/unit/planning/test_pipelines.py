"""The pipelines section of the config: schema, checks that name the key, the planned shards and outputs."""

import copy

import pytest
from pixelflow.errors import ConfigError
from pixelflow.planning import config as plan
from pixelflow.planning import pipelines as plan_pipelines
from pixelflow.planning.datasets import dataset_names, dataset_spec, plan_datasets, read_inputs
from pixelflow.planning.mosaics import check_config as check_mosaics
from pixelflow.planning.stats import check_config as check_stats

BASE = {
    "shard_size": 4,
    "datasets": {"noise": {"generator": "uniform", "count": 10, "shape": [8, 8]}},
}
SMOOTH = {"dataset": "noise", "steps": [{"op": "median", "size": 3}, {"op": "gaussian", "sigma": 2}]}


def validated(schema, pipelines, workdir=".", **top):
    config = copy.deepcopy(BASE) | copy.deepcopy(top)
    config["pipelines"] = copy.deepcopy(pipelines)
    plan.validate_config(config, schema)
    plan_pipelines.check_config(config, workdir)
    return config


def refused(schema, pipelines, workdir=".", **top) -> str:
    with pytest.raises(ConfigError) as error:
        validated(schema, pipelines, workdir, **top)
    return str(error.value)


def test_defaults_are_filled_and_steps_checked(schema):
    config = validated(schema, {"smooth": SMOOTH})
    assert config["pipelines"]["smooth"] == {
        **SMOOTH,
        "metrics": ["mean", "std"],
        "save": "png",
        "stack": False,
        "contact": 8,
    }
    spec = plan_pipelines.pipeline_spec(config, "smooth")
    assert spec["steps"] == [
        {"op": "median", "size": 3},
        {"op": "gaussian", "sigma": 2.0, "truncate": 4.0, "mode": "nearest"},
    ]
    assert spec["metrics"] == ["mean", "std"] and spec["save"] == "png" and spec["name"] == "smooth"


def test_a_pipeline_is_a_dataset_with_its_sources_shards(schema):
    config = validated(
        schema,
        {"smooth": SMOOTH, "edges": {"dataset": "smooth", "steps": [{"op": "sobel"}], "save": "tif", "stack": True}},
    )
    assert config["pipelines"]["edges"]["save"] == "tiff"
    datasets = plan_datasets(config, ".")
    plans = plan_pipelines.plan_pipelines(config, datasets)
    assert {name: (p.kind, p.count, p.shard_size, p.shards) for name, p in plans.items()} == {
        "smooth": ("pipeline", 10, 4, ["0000", "0001", "0002"]),
        "edges": ("pipeline", 10, 4, ["0000", "0001", "0002"]),
    }
    assert dataset_names(config) == ["noise", "smooth", "edges"]
    assert dataset_spec(config, "edges") == {"shape": [8, 8], "stack": True, "format": "tiff", "dtype": "float32"}
    outputs = plan_pipelines.outputs(config, datasets | plans)
    assert outputs == [
        *(f"results/datasets/smooth/shard-000{k}" for k in range(3)),
        "results/pipelines/smooth/metrics.tsv",
        "results/pipelines/smooth/summary.tsv",
        "results/pipelines/smooth/metrics.png",
        "results/datasets/smooth/manifest.tsv",
        "results/pipelines/smooth/contact.png",
        *(f"results/datasets/edges/shard-000{k}" for k in range(3)),
        "results/pipelines/edges/metrics.tsv",
        "results/pipelines/edges/summary.tsv",
        "results/pipelines/edges/metrics.png",
        "results/datasets/edges/manifest.tsv",
        "results/datasets/edges/stack.npy",
        "results/pipelines/edges/contact.png",
    ]
    assert plan_pipelines.source(config, "edges") == "smooth"
    assert read_inputs(plans["smooth"], ["0001"])["listing"] == ["results/datasets/smooth/shard-0001"]
    assert plan_pipelines.user_files(config, "edges", ".") == []


def test_a_pipeline_that_saves_nothing_has_no_dataset(schema):
    config = validated(schema, {"measure": {"dataset": "noise", "steps": [], "metrics": ["entropy"], "save": "none"}})
    plans = plan_pipelines.plan_pipelines(config, plan_datasets(config, "."))
    outputs = plan_pipelines.outputs(config, plans)
    assert outputs == [
        *(f"results/datasets/measure/shard-000{k}" for k in range(3)),
        *plan_pipelines.summary_files("measure"),
    ]
    assert dataset_names(config) == ["noise"]


def test_other_stages_take_a_pipelines_images(schema):
    config = validated(
        schema, {"smooth": SMOOTH}, stats={"datasets": ["smooth"]}, libraries={"tiles": {"dataset": "smooth"}}
    )
    check_stats(config, ".")
    check_mosaics(config, ".")
    config["pipelines"]["smooth"]["save"] = "none"
    with pytest.raises(ConfigError, match=r"^config key stats\.datasets\.0: dataset 'smooth' is not defined"):
        check_stats(config, ".")
    with pytest.raises(ConfigError, match=r"^config key libraries\.tiles\.dataset: no dataset"):
        check_mosaics(config, ".")


def test_user_modules_are_inputs(schema, tmp_path):
    (tmp_path / "cellops.py").write_text("")
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "metrics.py").write_text("")
    pipeline = {
        "dataset": "noise",
        "steps": [{"op": "python", "function": "cellops:smooth", "width": 3}, {"op": "threshold"}],
        "metrics": ["mean", {"function": "lab.metrics:area"}, {"function": "cellops:count", "name": "cells"}],
    }
    config = validated(schema, {"cells": pipeline}, tmp_path)
    assert plan_pipelines.user_files(config, "cells", tmp_path) == ["cellops.py", "lab/metrics.py"]
    spec = plan_pipelines.pipeline_spec(config, "cells")
    assert spec["steps"][0] == {"op": "python", "function": "cellops:smooth", "width": 3}
    assert spec["metrics"][2] == {"function": "cellops:count", "name": "cells"}


@pytest.mark.parametrize(
    ("pipelines", "start", "words"),
    [
        (
            {"p": {"dataset": "noise", "steps": [{"op": "median"}, {"op": "blur"}]}},
            "config key pipelines.p.steps.1.op: unknown operation 'blur'",
            ["bilateral", "python", "remove_small_objects"],
        ),
        (
            {"p": {"dataset": "noise", "steps": [{"op": "median", "radius": 3}]}},
            "config key pipelines.p.steps.0.radius: median has no parameter 'radius'",
            ["its parameters: size"],
        ),
        (
            {"p": {"dataset": "noise", "steps": [{"op": "gaussian", "sigma": "wide"}]}},
            "config key pipelines.p.steps.0.sigma: got 'wide'",
            ["expected a number > 0"],
        ),
        (
            {"p": {"dataset": "noise", "steps": [], "metrics": ["mean", "sharpness"]}},
            "config key pipelines.p.metrics.1: unknown metric 'sharpness'",
            ["entropy", "ssim"],
        ),
        (
            {"p": {"dataset": "nosie", "steps": []}},
            "config key pipelines.p.dataset: 'nosie' is neither a dataset nor a pipeline",
            ["defined: noise, p"],
        ),
        (
            {
                "a": {"dataset": "b", "steps": []},
                "b": {"dataset": "c", "steps": []},
                "c": {"dataset": "a", "steps": []},
            },
            "config key pipelines.c.dataset: pipelines take each other's output in a cycle: a -> b -> c -> a",
            [],
        ),
        (
            {"a": {"dataset": "a", "steps": []}},
            "config key pipelines.a.dataset: pipelines take each other's output in a cycle: a -> a",
            [],
        ),
        (
            {"m": {"dataset": "noise", "steps": [], "save": "none"}, "n": {"dataset": "m", "steps": []}},
            "config key pipelines.n.dataset: pipeline 'm' saves no images",
            [],
        ),
        (
            {"noise": {"dataset": "noise", "steps": []}},
            "config key pipelines.noise: a dataset is named 'noise' too",
            [],
        ),
        (
            {"p": {"dataset": "noise", "steps": [{"op": "python", "function": "nowhere:f"}]}},
            "config key pipelines.p.steps.0.function: module 'nowhere' not found",
            ["nowhere.py"],
        ),
        (
            {"p": {"dataset": "noise", "steps": [{"op": "python"}]}},
            "config key pipelines.p.steps.0.function: required by op python",
            [],
        ),
        (
            {"p": {"dataset": "noise", "steps": [], "metrics": [{"function": "nowhere:f"}]}},
            "config key pipelines.p.metrics.0.function: module 'nowhere' not found",
            [],
        ),
        (
            {"p": {"dataset": "noise", "steps": [{"size": 3}]}},
            "config key pipelines.p.steps.0: 'op' is a required property",
            [],
        ),
        (
            {"p": {"dataset": "noise", "steps": [], "save": "jpeg"}},
            "config key pipelines.p.save: 'jpeg' is not one of",
            [],
        ),
        (
            {"bad/name": {"dataset": "noise", "steps": []}},
            "config key pipelines.bad/name: name 'bad/name' must start with a letter or digit",
            [],
        ),
    ],
)
def test_bad_pipelines_name_their_key(schema, tmp_path, pipelines, start, words):
    message = refused(schema, pipelines, tmp_path)
    assert message.startswith(start), message
    for word in words:
        assert word in message
