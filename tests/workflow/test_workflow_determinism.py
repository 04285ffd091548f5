"""Output bytes depend on the config only: not on --cores, shard size or the folder."""

import pytest
from conftest import (
    TINY_CONFIG,
    dataset_hashes,
    image_hashes_by_index,
    partial_entries,
    read_dataset_index,
    run_ok,
    tiny_config,
)

pytestmark = pytest.mark.slow

DATASETS = sorted(TINY_CONFIG["datasets"])


def per_image_and_whole_dataset_hashes(workdir) -> dict:
    """Per-image hashes by (dataset, index) plus the stack and montage of each dataset."""
    hashes = {}
    everything = dataset_hashes(workdir)
    for name in DATASETS:
        for index, digest in image_hashes_by_index(workdir, name).items():
            hashes[(name, index)] = digest
        for output in ("stack.npy", "montage.png"):
            hashes[(name, output)] = everything[f"{name}/{output}"]
    return hashes


@pytest.fixture(scope="module")
def one_core_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cores1")
    run_ok(workdir, TINY_CONFIG, cores=1)
    return workdir


@pytest.fixture(scope="module")
def second_folder_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("again")
    run_ok(workdir, TINY_CONFIG, cores=2)
    return workdir


@pytest.fixture(scope="module")
def shard_size_7_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shard7")
    run_ok(workdir, tiny_config(shard_size=7), cores=2)
    return workdir


def test_reference_run_has_every_image(tiny_run):
    workdir, _ = tiny_run
    hashes = per_image_and_whole_dataset_hashes(workdir)
    for name, spec in TINY_CONFIG["datasets"].items():
        assert {key[1] for key in hashes if key[0] == name and isinstance(key[1], int)} == set(range(spec["count"]))
    # Every image of a dataset differs from the others: each has its own stream.
    for name in DATASETS:
        digests = [digest for key, digest in hashes.items() if key[0] == name and isinstance(key[1], int)]
        assert len(set(digests)) == len(digests)


def test_one_core_and_two_cores_write_the_same_bytes(tiny_run, one_core_run):
    workdir, _ = tiny_run
    reference = dataset_hashes(workdir)
    assert reference
    assert dataset_hashes(one_core_run) == reference
    assert partial_entries(one_core_run) == []


def test_two_fresh_folders_write_the_same_bytes(tiny_run, second_folder_run):
    workdir, _ = tiny_run
    assert dataset_hashes(second_folder_run) == dataset_hashes(workdir)


def test_shard_size_does_not_change_images_stack_or_montage(tiny_run, shard_size_7_run):
    workdir, _ = tiny_run
    # Same file names, grouped differently: compare by index over the union of manifests.
    assert per_image_and_whole_dataset_hashes(shard_size_7_run) == per_image_and_whole_dataset_hashes(workdir)
    image_names = {path.rsplit("/", 1)[-1] for path in dataset_hashes(workdir) if "/shard-" in path}
    image_names_7 = {path.rsplit("/", 1)[-1] for path in dataset_hashes(shard_size_7_run) if "/shard-" in path}
    assert image_names == image_names_7
    shards_3 = {path.split("/")[1] for path in dataset_hashes(workdir) if "/shard-" in path}
    shards_7 = {path.split("/")[1] for path in dataset_hashes(shard_size_7_run) if "/shard-" in path}
    assert shards_3 != shards_7
    # The dataset manifests list the same images in the same order; only the
    # shard folder in each path differs.
    for name in DATASETS:
        rows_3 = read_dataset_index(workdir / "results" / "datasets" / name)[1]
        rows_7 = read_dataset_index(shard_size_7_run / "results" / "datasets" / name)[1]
        assert [without_folder(row) for row in rows_7] == [without_folder(row) for row in rows_3]
        assert {row["file"].split("/")[0] for row in rows_3} != {row["file"].split("/")[0] for row in rows_7}


def without_folder(row: dict) -> dict:
    """A dataset manifest row with its path cut to the file name."""
    return {**{key: value for key, value in row.items() if key != "path"}, "file": row["file"].rsplit("/", 1)[-1]}
