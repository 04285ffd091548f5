"""End to end: a tiny config runs to completion and writes what the design promises."""

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    MANIFEST_COLUMNS,
    TINY_CONFIG,
    decode_rgb,
    job_fields,
    partial_entries,
    planned_jobs,
    read_dataset_index,
    read_manifests,
    run_ok,
    sha256_file,
)

pytestmark = pytest.mark.slow

SUFFIXES = {"png": ".png", "tiff": ".tif", "bmp": ".bmp"}
REPORT_DESCRIPTION = "pixelflow: parallel image batch work"  # the first line of rules/captions/workflow.rst
DATASETS = sorted(TINY_CONFIG["datasets"])


def shard_ids(count: int, shard_size: int) -> list[str]:
    return [f"{k:04d}" for k in range(math.ceil(count / shard_size))]


def test_run_succeeds_and_plans_every_job(tiny_run):
    _, output = tiny_run
    jobs = planned_jobs(output)
    expected = {}
    for name, spec in TINY_CONFIG["datasets"].items():
        for shard in shard_ids(spec["count"], TINY_CONFIG["shard_size"]):
            expected[f"results/datasets/{name}/shard-{shard}"] = "dataset_shard"
        expected[f"results/datasets/{name}/manifest.tsv"] = "dataset_index"
        expected[f"results/datasets/{name}/stack.npy"] = "dataset_stack"
        expected[f"results/datasets/{name}/montage.png"] = "dataset_montage"
    expected["results/report/job-benchmarks.html"] = "report_job_benchmarks"
    assert jobs == expected


@pytest.mark.parametrize("name", DATASETS)
def test_shard_folders_hold_named_images_and_a_manifest(tiny_run, name):
    workdir, _ = tiny_run
    spec = TINY_CONFIG["datasets"][name]
    size = TINY_CONFIG["shard_size"]
    dataset_dir = workdir / "results" / "datasets" / name
    shards = sorted(path.name for path in dataset_dir.glob("shard-*"))
    assert shards == [f"shard-{k}" for k in shard_ids(spec["count"], size)]
    suffix = SUFFIXES[spec["format"]]
    for k, shard in enumerate(shards):
        shard_dir = dataset_dir / shard
        indexes = range(k * size, min((k + 1) * size, spec["count"]))
        expected_files = {f"{name}_{index:06d}{suffix}" for index in indexes}
        present = {path.name for path in shard_dir.iterdir()} - {".snakemake_timestamp"}
        assert present == expected_files | {"manifest.tsv"}
        lines = (shard_dir / "manifest.tsv").read_text(encoding="utf-8").splitlines()
        assert lines[0].split("\t") == MANIFEST_COLUMNS
        rows = [dict(zip(MANIFEST_COLUMNS, line.split("\t"), strict=True)) for line in lines[1:]]
        assert [int(row["index"]) for row in rows] == list(indexes)
        height, width = spec["shape"][:2]
        channels = spec["shape"][2] if len(spec["shape"]) == 3 else 1
        for row in rows:
            assert row["file"] == f"{name}_{int(row['index']):06d}{suffix}"
            assert row["sha256"] == sha256_file(shard_dir / row["file"])
            assert (int(row["height"]), int(row["width"]), int(row["channels"])) == (height, width, channels)
            assert row["dtype"] == spec["dtype"]


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_manifest_lists_every_image_in_index_order(tiny_run, name):
    workdir, _ = tiny_run
    spec = TINY_CONFIG["datasets"][name]
    dataset_dir = workdir / "results" / "datasets" / name
    header, rows = read_dataset_index(dataset_dir)
    assert header == MANIFEST_COLUMNS
    # Every image once, in index order as written (not merely after sorting).
    assert [int(row["index"]) for row in rows] == list(range(spec["count"]))
    shard_rows = read_manifests(dataset_dir)
    for row, shard_row in zip(rows, shard_rows, strict=True):
        # Relative to the dataset folder, and naming the very file its shard lists.
        assert not os.path.isabs(row["file"]), row["file"]
        assert row["path"].is_file(), row["path"]
        assert row["path"].resolve() == shard_row["path"].resolve()
        assert row["sha256"] == sha256_file(row["path"])
        assert {key: row[key] for key in MANIFEST_COLUMNS if key != "file"} == {
            key: shard_row[key] for key in MANIFEST_COLUMNS if key != "file"
        }


@pytest.mark.parametrize("name", DATASETS)
def test_images_decode_to_the_configured_form(tiny_run, name):
    workdir, _ = tiny_run
    spec = TINY_CONFIG["datasets"][name]
    for row in read_manifests(workdir / "results" / "datasets" / name):
        image = decode_rgb(row["path"])
        assert image.shape == tuple(spec["shape"])
        assert image.dtype == np.dtype(spec["dtype"])
        if spec["dtype"] == "float32":
            assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0


@pytest.mark.parametrize("name", DATASETS)
def test_stack_equals_the_images_in_index_order(tiny_run, name):
    workdir, _ = tiny_run
    spec = TINY_CONFIG["datasets"][name]
    stack = np.load(workdir / "results" / "datasets" / name / "stack.npy")
    assert stack.shape == (spec["count"], *spec["shape"])
    assert stack.dtype == np.dtype(spec["dtype"])
    rows = read_manifests(workdir / "results" / "datasets" / name)
    assert [int(row["index"]) for row in rows] == list(range(spec["count"]))
    for row in rows:
        np.testing.assert_array_equal(stack[int(row["index"])], decode_rgb(row["path"]))
    # Distinct images, not one image repeated.
    assert len({stack[i].tobytes() for i in range(len(stack))}) == len(stack)


@pytest.mark.parametrize("name", DATASETS)
def test_montage_decodes(tiny_run, name):
    workdir, _ = tiny_run
    montage = decode_rgb(workdir / "results" / "datasets" / name / "montage.png")
    cell = TINY_CONFIG["montage"]["cell"]
    assert montage.ndim == 3 and montage.shape[2] == 3 and montage.dtype == np.uint8
    assert montage.shape[0] >= cell and montage.shape[1] >= cell
    assert montage.std() > 0


def test_every_job_wrote_its_log_and_benchmark(tiny_run):
    workdir, output = tiny_run
    jobs = planned_jobs(output)
    fields = job_fields(output)
    assert set(fields) == set(jobs)
    logs, benchmarks = set(), set()
    for job_output in jobs:
        # Each job declares one log and one benchmark, kept in the folder of the
        # logs (benchmarks) tree that mirrors the folder of its output.
        folder = Path(job_output).relative_to("results").parent
        assert len(fields[job_output].get("log", [])) == 1, fields[job_output]
        assert len(fields[job_output].get("benchmark", [])) == 1, fields[job_output]
        log = Path(fields[job_output]["log"][0])
        benchmark = Path(fields[job_output]["benchmark"][0])
        assert log.parent == Path("results", "logs", folder) and log.suffix == ".log", log
        assert benchmark.parent == Path("results", "benchmarks", folder) and benchmark.suffix == ".tsv", benchmark
        logs.add(log)
        benchmarks.add(benchmark)
        text = (workdir / log).read_text(encoding="utf-8")
        assert re.search(r"\bfinished\b", text), f"{log} does not report success:\n{text}"
        assert "ERROR" not in text
        lines = (workdir / benchmark).read_text(encoding="utf-8").splitlines()
        assert len(lines) >= 2 and lines[0].split("\t")[0] == "s", benchmark
        assert float(lines[1].split("\t")[0]) >= 0
    # No two jobs share a log or a benchmark file.
    assert len(logs) == len(benchmarks) == len(jobs)


def test_no_partial_entries_are_left(tiny_run):
    workdir, _ = tiny_run
    assert partial_entries(workdir) == []


def test_dry_run_after_a_complete_run_plans_nothing(tiny_run):
    workdir, _ = tiny_run
    output = run_ok(workdir, workdir / "config.yaml", "-n")
    assert "Nothing to be done" in output
    assert planned_jobs(output) == {}


def test_the_report_is_built_from_a_fresh_run(tiny_run, tmp_path):
    workdir, _ = tiny_run
    report = tmp_path / "report.html"
    run_ok(workdir, workdir / "config.yaml", "--report", str(report))
    text = report.read_text(encoding="utf-8")
    assert REPORT_DESCRIPTION in text
    # Every contact sheet and the table of the jobs' benchmarks are in it, under their categories.
    for name in DATASETS:
        assert f"results/datasets/{name}/montage.png" in text
    assert "results/report/job-benchmarks.html" in text
    assert "Datasets" in text and "Benchmarks" in text
