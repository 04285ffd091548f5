"""storage: zarr end to end: one Zarr array per dataset, the same bytes for any --cores, exact reruns on a new count.

The runs are real `snakemake` runs of a small config: a grey uint8 dataset of
300 images in shards of 100 (zstd) and an RGB float32 one of 3 images in
shards of 2 (blosc, with a stack), so that one has full shards only and the
other a short last shard, and both shard rules (grey and colour) run.
"""

import copy
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import (
    REPORT_TABLE,
    dataset_hashes,
    dry_run_plan,
    job_fields,
    partial_entries,
    planned_jobs,
    read_dataset_index,
    read_manifests,
    run_ok,
    run_snakemake,
    write_config,
)

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from pixelflow.datasets.generators import generate_image  # noqa: E402
from pixelflow.io.zarrstore import pixel_digest  # noqa: E402

ZARR_CONFIG = {
    "seed": 7,
    "shard_size": 100,
    "max_threads": 2,
    "montage": {"count": 16, "cell": 8},
    "datasets": {
        "noise": {"generator": "uniform", "count": 300, "shape": [16, 16], "storage": "zarr", "compression": "zstd"},
        "rgb": {
            "generator": "gaussian_ramp",
            "count": 3,
            "shape": [8, 8, 3],
            "dtype": "float32",
            "storage": "zarr",
            "compression": "blosc",
            "stack": True,
            "shard_size": 2,
        },
    },
}


def edited(**counts) -> dict:
    config = copy.deepcopy(ZARR_CONFIG)
    for name, count in counts.items():
        config["datasets"][name]["count"] = count
    return config


def store_digests(workdir, name: str) -> dict[str, str]:
    """sha256 of every file of a dataset's images.zarr, by path inside it."""
    store = Path(workdir) / "results" / "datasets" / name / "images.zarr"
    return {
        path.relative_to(store).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


def generated(config: dict, name: str) -> np.ndarray:
    """The dataset's images drawn by the generator itself, in index order."""
    spec = config["datasets"][name]
    dtype = spec.get("dtype", "uint8")
    seed = spec.get("seed", config["seed"])
    return np.stack(
        [generate_image(spec["generator"], seed, name, i, spec["shape"], dtype) for i in range(spec["count"])]
    )


@pytest.fixture(scope="module")
def zarr_runs(tmp_path_factory):
    """Complete runs of ZARR_CONFIG with --cores 1 and --cores 2, in two folders."""
    runs = {}
    for cores in (1, 2):
        workdir = tmp_path_factory.mktemp(f"zarr-cores{cores}")
        run_ok(workdir, ZARR_CONFIG, cores=cores)
        runs[cores] = workdir
    return runs


def test_each_dataset_is_one_array_with_a_shard_file_per_shard_job(zarr_runs):
    assert sorted(store_digests(zarr_runs[1], "noise")) == ["c/0/0/0", "c/1/0/0", "c/2/0/0", "zarr.json"]
    assert sorted(store_digests(zarr_runs[1], "rgb")) == ["c/0/0/0/0", "c/1/0/0/0", "zarr.json"]
    folder = zarr_runs[1] / "results" / "datasets"
    assert sorted(path.name for path in (folder / "noise").iterdir()) == [
        "images.zarr",
        "manifest.tsv",
        "montage.png",
        "shard-0",
        "shard-1",
        "shard-2",
    ]
    assert (folder / "rgb" / "stack.npy").is_file()
    assert partial_entries(zarr_runs[1]) == [] and partial_entries(zarr_runs[2]) == []


def test_every_file_is_byte_identical_for_one_core_and_two(zarr_runs):
    for name in ZARR_CONFIG["datasets"]:
        assert store_digests(zarr_runs[1], name) == store_digests(zarr_runs[2], name)
    assert dataset_hashes(zarr_runs[1]) == dataset_hashes(zarr_runs[2])  # manifests, stack and montage too


def test_zarr_reads_the_generated_images_and_the_manifests_hold_their_pixel_digests(zarr_runs):
    for name, spec in ZARR_CONFIG["datasets"].items():
        folder = zarr_runs[2] / "results" / "datasets" / name
        array = zarr.open_array(str(folder / "images.zarr"), mode="r")
        expected = generated(ZARR_CONFIG, name)
        assert array.shape == expected.shape and array.dtype == expected.dtype
        assert np.array_equal(array[:], expected)
        rows = read_manifests(folder)
        assert [int(row["index"]) for row in rows] == list(range(spec["count"]))
        assert [row["sha256"] for row in rows] == [pixel_digest(image) for image in expected]
        header, index_rows = read_dataset_index(folder)
        assert [row["sha256"] for row in index_rows] == [row["sha256"] for row in rows]
        assert {row["file"] for row in index_rows} == {"images.zarr"}
    stack = np.load(zarr_runs[2] / "results" / "datasets" / "rgb" / "stack.npy")
    assert np.array_equal(stack, generated(ZARR_CONFIG, "rgb"))
    import dask.array as dask_array  # the test extra installs it

    lazy = dask_array.from_zarr(str(zarr_runs[2] / "results" / "datasets" / "noise" / "images.zarr"))
    assert lazy.chunks[0] == (1,) * 300 and int(lazy.sum().compute()) == int(generated(ZARR_CONFIG, "noise").sum())


def test_a_dry_run_after_the_run_plans_nothing(zarr_runs):
    assert dry_run_plan(zarr_runs[2], zarr_runs[2] / "config.yaml") == {}


def test_a_store_of_another_config_is_refused_before_any_job_and_kept(zarr_runs, tmp_path):
    workdir = zarr_runs[2]
    before = store_digests(workdir, "noise")
    config = copy.deepcopy(ZARR_CONFIG)
    config["datasets"]["noise"]["seed"] = 8
    returncode, output = run_snakemake(workdir, write_config(tmp_path / "seed.yaml", config), "-n")
    assert returncode != 0
    assert "config key datasets.noise: results/datasets/noise/images.zarr holds another array" in output
    assert "attributes differ: spec.seed 7 vs 8" in output and "Remove results/datasets/noise/images.zarr" in output
    assert store_digests(workdir, "noise") == before


def test_a_new_count_reruns_only_the_changed_shards_and_what_reads_them(zarr_runs, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(zarr_runs[2], workdir, symlinks=True)
    folder = "results/datasets"
    grown = write_config(tmp_path / "grown.yaml", edited(noise=350, rgb=4))
    dry_run = run_ok(workdir, grown, "-n")
    plan = planned_jobs(dry_run)
    assert plan == {
        # noise: its three full shards stay; one new shard, and a new zarr.json (the index job's).
        f"{folder}/noise/images.zarr/c/3/0/0": "dataset_zarr_shard",
        f"{folder}/noise/manifest.tsv": "dataset_zarr_index",
        # rgb: the short last shard now holds two images; its montage shows it, its stack holds it.
        f"{folder}/rgb/images.zarr/c/1/0/0/0": "dataset_zarr_shard_colour",
        f"{folder}/rgb/manifest.tsv": "dataset_zarr_index",
        f"{folder}/rgb/stack.npy": "dataset_zarr_stack",
        f"{folder}/rgb/montage.png": "dataset_zarr_montage",
        REPORT_TABLE: "report_job_benchmarks",
    }
    # Every output of a planned job (zarr.json is printed with its flag: "... (update)").
    rewritten = {
        workdir / output.split(" (")[0] for fields in job_fields(dry_run).values() for output in fields["output"]
    }
    kept = {
        path: (path.stat().st_mtime_ns, path.stat().st_ino)
        for path in (workdir / folder).rglob("*")
        if path.is_file() and path not in rewritten
    }
    assert any(path.parts[-4:] == ("c", "0", "0", "0") for path in kept)

    executed = planned_jobs(run_ok(workdir, grown))
    assert executed == plan
    for path, stamp in kept.items():
        assert (path.stat().st_mtime_ns, path.stat().st_ino) == stamp, f"{path} was rewritten"
    assert sorted(store_digests(workdir, "noise")) == ["c/0/0/0", "c/1/0/0", "c/2/0/0", "c/3/0/0", "zarr.json"]
    for name in ZARR_CONFIG["datasets"]:
        array = zarr.open_array(str(workdir / folder / name / "images.zarr"), mode="r")
        assert np.array_equal(array[:], generated(edited(noise=350, rgb=4), name))
    assert dry_run_plan(workdir, grown) == {}

    # Back to the first counts: the shard files past the end go, and the store is the first run's, byte for byte.
    first = write_config(tmp_path / "first.yaml", ZARR_CONFIG)
    run_ok(workdir, first)
    for name in ZARR_CONFIG["datasets"]:
        assert store_digests(workdir, name) == store_digests(zarr_runs[1], name)
    assert dataset_hashes(workdir) == dataset_hashes(zarr_runs[1])
    assert not (workdir / folder / "noise" / "shard-3").exists()
    assert partial_entries(workdir) == []
