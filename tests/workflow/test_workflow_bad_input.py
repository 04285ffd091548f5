"""Bad input gets a clear error naming the key or file, and leaves no output that looks finished."""

import copy
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    dataset_hashes,
    dry_run_plan,
    partial_entries,
    plan_after_shard_change,
    run_ok,
    run_snakemake,
    without_report,
    write_config,
)

BASE = {
    "seed": 1,
    "shard_size": 2,
    "max_threads": 2,
    "montage": {"count": 2, "cell": 8},
    "datasets": {
        "gen": {"generator": "uniform", "count": 3, "shape": [8, 8], "dtype": "uint8", "format": "png"},
    },
}


def with_dataset(name: str, spec: dict, **top_level) -> dict:
    config = copy.deepcopy(BASE)
    config.update(top_level)
    config["datasets"][name] = spec
    return config


def with_gen(**keys) -> dict:
    config = copy.deepcopy(BASE)
    config["datasets"]["gen"].update(keys)
    return config


def error_lines(output: str) -> list[str]:
    """Lines of an error message: they mention an error (or a config key) and are not job listings.

    Snakemake lists a job's input files, so a file name appearing anywhere in
    the output proves nothing; it has to appear in the message itself.
    """
    listing = ("input:", "output:", "log:", "benchmark:", "reason:", "wildcards:")
    return [
        line
        for line in output.splitlines()
        if ("rror" in line or "config key" in line) and not line.strip().startswith(listing)
    ]


def assert_failed_naming(returncode: int, output: str, *names: str) -> None:
    assert returncode != 0, f"snakemake succeeded:\n{output[-4000:]}"
    lines = error_lines(output)
    for name in names:
        assert any(name in line for line in lines), f"no error message names {name!r}:\n{output[-6000:]}"


def noise_png(path: Path, shape=(6, 7, 3), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


# Config errors: found while the Snakefile is parsed, before any job runs ------------

CONFIG_ERRORS = {
    "count 0": (with_gen(count=0), "datasets.gen.count"),
    "zero in shape": (with_gen(shape=[8, 0]), "datasets.gen.shape.1"),
    "unknown generator": (with_gen(generator="perlin"), "datasets.gen.generator"),
    "float32 png": (with_gen(dtype="float32", format="png"), "datasets.gen.dtype"),
    "five channels": (with_gen(shape=[8, 8, 5]), "datasets.gen.shape.2"),
    "name with a slash": (with_dataset("a/b", BASE["datasets"]["gen"]), "datasets.a/b"),
    "name ..": (with_dataset("..", BASE["datasets"]["gen"]), "datasets..."),
    "name with a space": (with_dataset("a b", BASE["datasets"]["gen"]), "datasets.a b"),
    "external glob matching nothing": (with_dataset("ext", {"path": "inputs/*.png"}), "datasets.ext.path"),
    "unknown top-level key": ({**BASE, "shard_count_typo": 3}, "shard_count_typo"),
}


# Fast (about a second each): the Snakefile stops while it is parsed.
@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_error_names_the_key_and_runs_nothing(tmp_path, case):
    config, key = CONFIG_ERRORS[case]
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "notes.txt").write_text("not matched by *.png\n")
    returncode, output = run_snakemake(tmp_path, config)
    assert_failed_naming(returncode, output, key)
    assert "config key" in output
    # Validation happens before any job: nothing at all was written.
    assert not (tmp_path / "results").exists(), sorted(p.name for p in (tmp_path / "results").rglob("*"))


# Broken external images: the shard job fails naming the file --------------------


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_bytes(seed: int = 1) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def jpeg_bytes(seed: int = 1) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def encoded(suffix: str, seed: int = 1) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return cv2.imencode(suffix, image)[1].tobytes()


BROKEN_IMAGES = {
    "zero-byte png": (".png", lambda: b""),
    "garbage png": (".png", lambda: b"definitely not an image\n" * 40),
    "truncated png": (".png", lambda: truncated(png_bytes())),
    "png cut after its header": (".png", lambda: png_bytes()[:33]),
    "truncated jpeg": (".jpg", lambda: truncated(jpeg_bytes())),
    # Every pixel is there, only the closing IEND chunk (12 bytes) is missing:
    # OpenCV refuses it, and a PNG that OpenCV refuses is broken, whatever a
    # more lenient decoder would make of it.
    "png without its end chunk": (".png", lambda: png_bytes()[:-12]),
    "truncated tiff": (".tif", lambda: truncated(encoded(".tif"))),
    "truncated bmp": (".bmp", lambda: truncated(encoded(".bmp"))),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN_IMAGES))
def test_broken_external_image_is_named_and_nothing_is_left(tmp_path, case):
    suffix, make = BROKEN_IMAGES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    good = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for index in (0, 2):
        assert cv2.imwrite(str(inputs / f"img_{index}{suffix}"), good)
    (inputs / f"img_1{suffix}").write_bytes(make())
    config = with_dataset("ext", {"path": f"inputs/*{suffix}"}, shard_size=10)
    del config["datasets"]["gen"]

    returncode, output = run_snakemake(tmp_path, config)
    assert_failed_naming(returncode, output, f"inputs/img_1{suffix}")
    dataset = tmp_path / "results" / "datasets" / "ext"
    assert not dataset.exists() or sorted(path.name for path in dataset.iterdir()) == []
    assert partial_entries(tmp_path) == []


@pytest.mark.slow
def test_mixed_shapes_make_shards_but_the_stack_fails_naming_the_first_misfit(tmp_path):
    inputs = tmp_path / "inputs"
    noise_png(inputs / "a_0.png", (8, 8, 3), 0)
    noise_png(inputs / "a_1.png", (8, 8, 3), 1)
    noise_png(inputs / "a_2.png", (9, 8, 3), 2)
    noise_png(inputs / "a_3.png", (10, 8, 3), 3)
    config = with_dataset("mix", {"path": "inputs/a_*.png"}, shard_size=2, montage={"count": 0, "cell": 8})
    del config["datasets"]["gen"]

    returncode, output = run_snakemake(tmp_path, config)
    assert_failed_naming(returncode, output, "a_2.png")
    complaints = [line for line in output.splitlines() if "differs from" in line]
    assert complaints, output[-4000:]
    assert all("a_2.png" in line and "a_3.png" not in line for line in complaints), complaints
    dataset = tmp_path / "results" / "datasets" / "mix"
    for shard in ("shard-0000", "shard-0001"):
        assert (dataset / shard / "manifest.tsv").is_file()
    assert not (dataset / "stack.npy").exists()
    assert partial_entries(tmp_path) == []


# A failure keeps what was already finished -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("broken", [1, 3])
def test_a_failed_rerun_leaves_finished_outputs_byte_identical(tmp_path, broken):
    photos = [noise_png(tmp_path / "inputs" / f"photo_{index}.png", seed=index) for index in range(4)]
    spec = with_dataset("ext", {"path": "inputs/*.png"})
    config = write_config(tmp_path / "run.yaml", spec)
    run_ok(tmp_path, config)
    before = dataset_hashes(tmp_path)
    assert {"gen/stack.npy", "ext/stack.npy", "gen/manifest.tsv", "ext/manifest.tsv"} <= set(before)

    # Break image `broken` of "ext"; gen and ext's other shards are unaffected.
    size = spec["shard_size"]
    shard = f"shard-{broken // size:04d}"
    shown = min(spec["montage"]["count"], len(photos))
    montage_shards = [f"shard-{k:04d}" for k in range(math.ceil(shown / size))]
    original = photos[broken].read_bytes()
    photos[broken].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    returncode, output = run_snakemake(tmp_path, config)
    assert_failed_naming(returncode, output, f"inputs/{photos[broken].name}")
    after = dataset_hashes(tmp_path)
    failed_shard = f"ext/{shard}/"
    kept = {path: digest for path, digest in before.items() if not path.startswith(failed_shard)}
    assert {path: after.get(path) for path in kept} == kept
    leftovers = {path: digest for path, digest in after.items() if path.startswith(failed_shard)}
    assert leftovers in ({}, {p: d for p, d in before.items() if p.startswith(failed_shard)})
    assert partial_entries(tmp_path) == []
    # What is left to do is the broken shard and what depends on it (the
    # montage only if it shows images of that shard), nothing of "gen".
    assert without_report(dry_run_plan(tmp_path, config)) == plan_after_shard_change("ext", shard, montage_shards)

    # Once the image is repaired, a run finishes the dataset exactly as before.
    photos[broken].write_bytes(original)
    run_ok(tmp_path, config)
    assert dataset_hashes(tmp_path) == before
    assert dry_run_plan(tmp_path, config) == {}
