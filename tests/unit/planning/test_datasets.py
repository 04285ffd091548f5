"""Dataset shard plans: covering shards, rules beyond the schema, external globs, cores per shard job, zarr."""

import math
from pathlib import Path

import numpy as np
import pytest
from pixelflow.errors import ConfigError
from pixelflow.io import zarrstore
from pixelflow.planning.config import glob_files
from pixelflow.planning.datasets import (
    DatasetPlan,
    check_config,
    check_zarr_stores,
    file_dataset_names,
    generated_shard_spec,
    outputs,
    plan_datasets,
    read_inputs,
    shard_inputs,
    shard_job_threads,
    storage_names,
    zarr_index_params,
    zarr_names,
    zarr_shard_outputs,
    zarr_shard_params,
    zarr_spec,
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


# storage: zarr -------------------------------------------------------------------


def zarr_dataset(count=300, **extra):
    return {"generator": "uniform", "count": count, "shape": [16, 16], "storage": "zarr", **extra}


@pytest.mark.parametrize(
    ("spec", "where", "words"),
    [
        (zarr_dataset(compression="lz4"), "datasets.noise.compression", "'lz4' is not one of none, zstd, blosc for"),
        (zarr_dataset(compression=3), "datasets.noise.compression", "3 is not one of none, zstd, blosc for storage"),
        (zarr_dataset(format="png"), "datasets.noise.format", "storage: zarr keeps the images in one array"),
        (zarr_dataset(format="tif"), "datasets.noise.format", "not in tiff files"),
        (zarr_dataset(shape=[4, 4, 2]), "datasets.noise.shape.2", "2 channels"),
        (generated(3, compression="zstd"), "datasets.noise.compression", "'zstd' is not a deflate level 0-9"),
    ],
)
def test_storage_rules_raise_naming_the_key(schema, tmp_path, spec, where, words):
    config = validated(schema, {"datasets": {"noise": spec}})
    with pytest.raises(ConfigError) as caught:
        check_config(config, tmp_path)
    assert f"config key {where}: " in str(caught.value)
    assert words in str(caught.value)


def write_png(path, array):
    import cv2

    assert cv2.imwrite(str(path), array)


def test_an_external_zarr_dataset_takes_its_form_from_its_first_file_as_the_reader_decodes_it(schema, tmp_path):
    from pixelflow.io.images import read_image

    rng = np.random.default_rng(3)
    write_png(tmp_path / "a.png", rng.integers(0, 255, (5, 7, 3), dtype=np.uint8))
    write_png(
        tmp_path / "b.png", rng.integers(0, 255, (6, 6), dtype=np.uint8)
    )  # another form: its shard job refuses it
    config = validated(schema, {"shard_size": 1, "datasets": {"photos": {"path": "*.png", "storage": "zarr"}}})
    check_config(config, tmp_path)
    plan = plan_datasets(config, tmp_path)["photos"]
    first = read_image(tmp_path / "a.png")
    assert (plan.kind, plan.storage, plan.shape, plan.dtype) == ("external", "zarr", first.shape, str(first.dtype))
    assert plan.shards == ["0", "1"]
    assert zarr_names({"photos": plan}, channels=True) == ["photos"]
    params = zarr_shard_params(config, plan, "1")
    assert params == {
        "start": 1,
        "stop": 2,
        "spec": {
            "name": "photos",
            "path": "*.png",
            "shape": [5, 7, 3],
            "dtype": "uint8",
            "compression": "none",
            "shard_size": 1,
        },
        "origin": "its first file a.png is",
    }
    assert shard_inputs(plan, "1") == {"images": ["b.png"]}


def test_an_external_zarr_dataset_with_shape_and_dtype_given_does_not_decode_its_files(schema, tmp_path):
    (tmp_path / "a.png").write_bytes(b"not an image")  # its shard job will say so; planning does not read it
    given = {"path": "*.png", "storage": "zarr", "shape": [4, 4], "dtype": "uint16", "compression": "zstd"}
    config = validated(schema, {"datasets": {"photos": given}})
    plan = plan_datasets(config, tmp_path)["photos"]
    assert (plan.shape, plan.dtype) == ((4, 4), "uint16")
    assert zarr_shard_params(config, plan, "0")["origin"] == "datasets.photos.shape and dtype give"
    del given["dtype"]
    config = validated(schema, {"datasets": {"photos": given}})
    with pytest.raises(ConfigError, match=r"^config key datasets\.photos\.path: its first file .*a\.png"):
        plan_datasets(config, tmp_path)


def test_compression_of_an_external_dataset_needs_zarr_naming_the_key(schema, tmp_path):
    config = validated(schema, {"datasets": {"photos": {"path": "*.png", "compression": "zstd"}}})
    with pytest.raises(ConfigError, match=r"^config key datasets\.photos\.compression: .*storage: zarr"):
        check_config(config, tmp_path)


def test_a_job_reads_a_zarr_datasets_shards_through_their_manifests_and_array(schema, tmp_path):
    config = validated(
        schema, {"shard_size": 10, "datasets": {"z": zarr_dataset(25, shape=[4, 4, 3]), "f": generated(25)}}
    )
    plans = plan_datasets(config, tmp_path)
    folder = "results/datasets/z"
    assert read_inputs(plans["z"], ["0002"]) == {
        "listing": [f"{folder}/shard-2/manifest.tsv"],
        "arrays": [f"{folder}/images.zarr/c/2/0/0/0"],
        "metadata": [f"{folder}/images.zarr/zarr.json"],
    }
    assert read_inputs(plans["z"])["listing"] == [f"{folder}/shard-{k}/manifest.tsv" for k in range(3)]
    assert read_inputs(plans["f"], ["1"]) == {
        "listing": ["results/datasets/f/shard-0001"],
        "arrays": [],
        "metadata": [],
    }


@pytest.mark.parametrize("compression", ["none", "zstd", "blosc"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_every_zarr_compression_and_dtype_plans(schema, tmp_path, compression, dtype):
    config = validated(schema, {"datasets": {"noise": zarr_dataset(compression=compression, dtype=dtype)}})
    check_config(config, tmp_path)
    assert plan_datasets(config, tmp_path)["noise"].storage == "zarr"


def test_the_storage_chooses_the_defaults(schema):
    config = validated(schema, {"datasets": {"z": zarr_dataset(), "f": generated(3), "zs": zarr_dataset(stack=True)}})
    assert {key: config["datasets"]["z"][key] for key in ("compression", "stack")} == {
        "compression": "none",
        "stack": False,
    }
    assert "format" not in config["datasets"]["z"]
    assert config["datasets"]["zs"]["stack"] is True
    files = config["datasets"]["f"]
    assert (files["storage"], files["format"], files["compression"], files["stack"]) == ("files", "png", 0, True)


def test_zarr_shards_are_numbered_as_the_arrays_shard_files(schema, tmp_path):
    config = validated(
        schema,
        {"shard_size": 100, "datasets": {"grey": zarr_dataset(), "rgb": zarr_dataset(count=5, shape=[8, 8, 3])}},
    )
    plans = plan_datasets(config, tmp_path)
    grey = plans["grey"]
    assert grey.shards == ["0", "1", "2"]
    outputs = zarr_shard_outputs(grey)
    assert outputs["shards"] == [
        zarrstore.shard_file("results/datasets/grey/images.zarr", shard=k, image_shape=(16, 16)).as_posix()
        for k in range(3)
    ]
    assert outputs["shards"][2] == "results/datasets/grey/images.zarr/c/2/0/0"
    assert outputs["manifests"] == [f"results/datasets/grey/shard-{k}/manifest.tsv" for k in range(3)]
    assert zarr_shard_outputs(plans["rgb"])["shards"] == ["results/datasets/rgb/images.zarr/c/0/0/0/0"]
    assert storage_names(config, "zarr") == zarr_names(plans) == ["grey", "rgb"]
    assert zarr_names(plans, channels=False) == ["grey"]
    assert zarr_names(plans, channels=True) == ["rgb"]
    assert storage_names(config, "files") == []


def test_zarr_shard_params_leave_the_count_out(schema, tmp_path):
    def params(count):
        config = validated(schema, {"shard_size": 100, "datasets": {"noise": zarr_dataset(count, seed=4)}})
        plan = plan_datasets(config, tmp_path)["noise"]
        return config, plan, {shard: zarr_shard_params(config, plan, shard) for shard in plan.shards}

    config, plan, at_300 = params(300)
    _, _, at_350 = params(350)
    assert at_300["2"] == {"start": 200, "stop": 300, "spec": zarr_spec(config, plan)}
    assert zarr_spec(config, plan) == {
        "name": "noise",
        "generator": "uniform",
        "seed": 4,
        "shape": [16, 16],
        "dtype": "uint8",
        "compression": "none",
        "shard_size": 100,
    }
    assert {shard for shard in at_350 if at_350[shard] != at_300.get(shard)} == {"3"}  # full shards: same params
    index = zarr_index_params(config, plan)
    assert index == {"spec": zarr_spec(config, plan), "count": 300, "shards": ["shard-0", "shard-1", "shard-2"]}


def test_zarr_outputs_are_the_shard_files_manifests_metadata_index_and_montage(schema, tmp_path):
    for stack in (False, True):
        config = validated(schema, {"shard_size": 100, "datasets": {"noise": zarr_dataset(250, stack=stack)}})
        files = outputs(config, plan_datasets(config, tmp_path))
        folder = "results/datasets/noise"
        expected = [f"{folder}/images.zarr/c/{k}/0/0" for k in range(3)]
        expected += [f"{folder}/shard-{k}/manifest.tsv" for k in range(3)]
        expected += [f"{folder}/images.zarr/zarr.json", f"{folder}/manifest.tsv"]
        expected += [f"{folder}/stack.npy"] if stack else []
        assert files == [*expected, f"{folder}/montage.png"]


def test_a_store_of_another_config_is_refused_before_any_job_naming_what_differs(schema, tmp_path):
    from pixelflow.datasets.zarrarray import array_metadata

    def check(config):
        check_zarr_stores(config, plan_datasets(config, tmp_path), tmp_path)

    config = validated(schema, {"shard_size": 100, "datasets": {"noise": zarr_dataset(300)}})
    check(config)  # no store yet
    store = tmp_path / "results/datasets/noise/images.zarr"
    zarrstore.ensure_metadata(store, array_metadata(zarr_spec(config, plan_datasets(config, tmp_path)["noise"]), 300))
    check(config)
    grown = validated(schema, {"shard_size": 100, "datasets": {"noise": zarr_dataset(350)}})
    check(grown)  # another count is no other array
    for changes, words in [
        ({"seed": 8}, "attributes differ: spec.seed 0 vs 8"),
        ({"compression": "zstd"}, "compression none vs zstd"),
        ({"dtype": "uint16"}, "dtype uint8 vs uint16"),
        ({"shard_size": 50}, "images per shard 100 vs 50"),
    ]:
        other = validated(schema, {"shard_size": 100, "datasets": {"noise": zarr_dataset(300, **changes)}})
        with pytest.raises(ConfigError) as caught:
            check(other)
        message = str(caught.value)
        assert message.startswith("config key datasets.noise: results/datasets/noise/images.zarr holds another array")
        assert words in message and "Remove results/datasets/noise/images.zarr" in message
    (store / "zarr.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"config key datasets\.noise: .*zarr\.json: cannot read"):
        check(config)


def test_the_rules_of_files_and_zarr_datasets_take_disjoint_names(schema, tmp_path):
    config = validated(
        schema,
        {
            "datasets": {"f": generated(3), "z": zarr_dataset(3), "zc": zarr_dataset(3, shape=[4, 4, 3])},
            "pipelines": {"p": {"dataset": "f", "steps": []}, "q": {"dataset": "f", "steps": [], "save": "none"}},
        },
    )
    assert storage_names(config, "files") == ["f"]  # the files shard rule: pipelines have their own
    assert file_dataset_names(config) == ["f", "p"]  # index, stack and montage of files: pipelines' too
    plans = plan_datasets(config, tmp_path)
    assert storage_names(config, "zarr") == zarr_names(plans) == ["z", "zc"]
    assert (zarr_names(plans, channels=False), zarr_names(plans, channels=True)) == (["z"], ["zc"])
