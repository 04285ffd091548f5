"""Dataset shard plans: covering shards, rules beyond the schema, external globs, the cores per shard job."""

import math
from pathlib import Path

import pytest
from pixelflow.errors import ConfigError
from pixelflow.planning.config import glob_files
from pixelflow.planning.datasets import (
    DatasetPlan,
    check_config,
    generated_shard_spec,
    plan_datasets,
    shard_job_threads,
)

from .test_config import validated


def generated(count, **extra):
    return {"generator": "uniform", "count": count, "shape": [4, 4], **extra}


@pytest.mark.parametrize("count", [1, 9, 10, 11, 25, 100])
@pytest.mark.parametrize("shard_size", [1, 10, 10000])
def test_generated_datasets_split_into_covering_shards(schema, tmp_path, count, shard_size):
    config = validated(schema, {"shard_size": shard_size, "datasets": {"noise": generated(count)}})
    plan = plan_datasets(config, tmp_path)["noise"]
    assert plan.kind == "generated" and plan.count == count
    assert len(plan.shards) == math.ceil(count / shard_size)
    assert plan.shards == sorted(plan.shards) and all(len(shard) == 4 and shard.isdigit() for shard in plan.shards)
    indexes = [index for shard in plan.shards for index in range(*plan.bounds(shard))]
    assert indexes == list(range(count))
    assert all(plan.bounds(shard)[1] - plan.bounds(shard)[0] == shard_size for shard in plan.shards[:-1])
    past_the_end = f"{len(plan.shards):04d}"
    with pytest.raises(ConfigError, match=past_the_end):
        plan.bounds(past_the_end)


@pytest.mark.parametrize("wanted", [0, 1, 9, 10, 11, 20, 24, 25, 26, 1000])
def test_shards_covering_is_the_shortest_prefix_holding_the_images(wanted):
    plan = DatasetPlan("noise", "generated", 25, 10)
    covering = plan.shards_covering(wanted)
    assert covering == plan.shards[: len(covering)]
    held = {index for shard in covering for index in range(*plan.bounds(shard))}
    assert set(range(min(wanted, plan.count))) <= held
    if covering:  # without its last shard it no longer holds them all
        fewer = {index for shard in covering[:-1] for index in range(*plan.bounds(shard))}
        assert not set(range(min(wanted, plan.count))) <= fewer


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"dtype": "float32", "format": "png"}, "datasets.noise.dtype"),
        ({"dtype": "uint16", "format": "bmp"}, "datasets.noise.dtype"),
        ({"dtype": "float32", "format": "bmp"}, "datasets.noise.dtype"),
        ({"shape": [4, 4, 2]}, "datasets.noise.shape.2"),
        ({"shape": [4, 4, 1]}, "datasets.noise.shape.2"),
        ({"shape": [4, 4, 4], "format": "bmp"}, "datasets.noise.format"),
    ],
)
def test_rules_beyond_the_schema_raise_naming_the_key(schema, tmp_path, spec, where):
    config = validated(schema, {"datasets": {"noise": {**generated(3), **spec}}})
    with pytest.raises(ConfigError) as caught:
        check_config(config, tmp_path)
    assert f"config key {where}:" in str(caught.value)


@pytest.mark.parametrize(
    "spec", [{"dtype": "float32", "format": "tiff"}, {"dtype": "uint16", "format": "png"}, {"shape": [4, 4, 4]}]
)
def test_allowed_combinations_plan_fine(schema, tmp_path, spec):
    config = validated(schema, {"datasets": {"noise": {**generated(3), **spec}}})
    check_config(config, tmp_path)
    assert plan_datasets(config, tmp_path)["noise"].count == 3


def test_external_glob_matching_nothing_names_the_key(schema, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x")
    config = validated(schema, {"datasets": {"holiday": {"path": "photos/*.jpg"}}})
    with pytest.raises(ConfigError) as caught:
        plan_datasets(config, tmp_path)
    assert "datasets.holiday.path" in str(caught.value)
    assert "photos/*.jpg" in str(caught.value)


def test_external_files_are_sorted_and_relative_to_the_workdir(schema, tmp_path):
    names = ["b/2.png", "a/10.png", "a/1.png", "c.png", "a/sub/0.png"]
    for name in names:
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(b"x")
    (tmp_path / "data" / "folder.png").mkdir()  # a folder is not an image file
    config = validated(schema, {"shard_size": 2, "datasets": {"ext": {"path": "data/**/*.png"}}})
    plan = plan_datasets(config, tmp_path)["ext"]
    expected = sorted(str(Path("data") / name) for name in names)
    assert list(plan.files) == expected
    assert plan.kind == "external" and plan.count == len(names)
    assert len(plan.shards) == math.ceil(len(names) / 2)
    assert all(not Path(file).is_absolute() and (tmp_path / file).is_file() for file in plan.files)


def test_external_absolute_glob_inside_the_workdir_is_made_relative(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("b.png", "a.png"):
        (tmp_path / "x" / name).write_bytes(b"x")
    assert glob_files(str(tmp_path / "x" / "*.png"), "datasets.ext.path", tmp_path) == ["x/a.png", "x/b.png"]


def test_external_files_outside_the_workdir_stay_absolute(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.png").write_bytes(b"x")
    (tmp_path / "work").mkdir()
    files = glob_files("../outside/*.png", "datasets.ext.path", tmp_path / "work")
    assert files == [str((tmp_path / "outside" / "a.png").resolve())]


def test_generated_shard_spec_takes_the_dataset_seed_over_the_top_level_seed(schema):
    config = validated(schema, {"seed": 5, "datasets": {"a": generated(2), "b": generated(2, seed=8)}})
    assert generated_shard_spec(config, "a")["seed"] == 5
    assert generated_shard_spec(config, "b")["seed"] == 8
    spec = generated_shard_spec(config, "a")
    assert set(spec) == {"name", "generator", "seed", "shape", "dtype", "format", "compression"}


# imported_core_modules ---------------------------------------------------------


@pytest.mark.parametrize(
    ("max_threads", "cores", "shards", "expected"),
    [
        (2, 2, 1, 2),  # one shard: its job gets every core
        (2, 2, 2, 1),  # two shards on two cores: two single-process jobs side by side
        (2, 1, 1, 1),
        (4, 8, 2, 4),  # capped at max_threads
        (4, 8, 3, 2),
        (2, 2, 40, 1),
        (3, None, 5, 3),  # no core count (a cluster executor): max_threads
    ],
)
def test_shard_jobs_share_the_cores_among_the_shards(max_threads, cores, shards, expected):
    assert shard_job_threads(max_threads, cores, shards) == expected
