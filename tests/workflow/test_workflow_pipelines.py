"""Filter pipelines run by real snakemake on tiny configs: results against the libraries, reruns, bad input."""

import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.color
import skimage.filters
import skimage.util
from conftest import (
    decode_rgb,
    dry_run_plan,
    partial_entries,
    read_dataset_index,
    run_ok,
    run_snakemake,
    tiny_config,
    without_report,
)

pytestmark = pytest.mark.slow

CELLOPS = """
def scale(image, factor=1.0):
    return image * factor


def brightest(output, input):
    return float(output.max())
"""
MASKOPS = """
import numpy as np


def area(output, input):
    return int(np.count_nonzero(output))
"""
PIPELINES = {
    "smooth": {
        "dataset": "uni",
        "steps": [
            {"op": "median", "size": 3},
            {"op": "gaussian", "sigma": 1},
            {"op": "python", "function": "cellops:scale", "factor": 0.5},
        ],
        "metrics": ["mean", "var", "entropy", {"function": "cellops:brightest"}],
        "stack": True,
        "contact": 4,
    },
    "mask": {
        "dataset": "smooth",
        "steps": [{"op": "threshold", "method": "otsu"}],
        "metrics": ["foreground_fraction", "object_count", {"function": "maskops:area"}],
        "contact": 2,
    },
    "grey": {
        "dataset": "ramp",
        "steps": [{"op": "rgb2gray"}, {"op": "sobel"}],
        "metrics": ["mean"],
        "save": "tiff",
        "contact": 0,
    },
}


def pipeline_config(**changes) -> dict:
    config = tiny_config(pipelines=PIPELINES)
    config.update(changes)
    return config


def write_modules(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cellops.py").write_text(CELLOPS)
    (workdir / "maskops.py").write_text(MASKOPS)


def read_metrics(path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipelines")
    write_modules(workdir)
    output = run_ok(workdir, pipeline_config(**USERS_OF_SMOOTH))
    return workdir, output


# Other stages taking a pipeline's images by its name.
USERS_OF_SMOOTH = {
    "stats": {"datasets": ["smooth"], "sigmas": [1]},
    "libraries": {"smoothed": {"dataset": "smooth"}},
    "mosaics": {"camera": {"target": "results/mosaics/samples/camera.png", "library": "smoothed", "tile": 8}},
}


def smooth_reference(path) -> np.ndarray:
    image = skimage.util.img_as_float32(decode_rgb(path))
    median = ndi.median_filter(image, size=3, mode="nearest")
    return skimage.filters.gaussian(median, sigma=1, mode="nearest", truncate=4.0, preserve_range=True) * 0.5


def test_metrics_and_images_equal_the_library_functions(pipeline_run):
    workdir, _ = pipeline_run
    _, inputs = read_dataset_index(workdir / "results/datasets/uni")
    rows = read_metrics(workdir / "results/pipelines/smooth/metrics.tsv")
    assert [int(row["index"]) for row in rows] == list(range(20))
    assert list(rows[0]) == ["index", "file", "output", "nonfinite", "mean", "var", "entropy", "brightest"]
    for source, row in zip(inputs, rows, strict=True):
        assert Path(workdir / row["file"]).resolve() == Path(source["path"]).resolve()
        expected = smooth_reference(source["path"])
        assert float(row["mean"]) == pytest.approx(float(expected.mean()), rel=1e-5)
        assert float(row["var"]) == pytest.approx(float(expected.var()), rel=1e-4)
        assert float(row["brightest"]) == pytest.approx(float(expected.max()), rel=1e-5)
        saved = decode_rgb(workdir / row["output"])
        assert saved.dtype == np.uint8
        assert np.abs(saved.astype(int) - np.rint(np.clip(expected, 0, 1) * 255)).max() <= 1
        assert row["nonfinite"] == "0"
    stack = np.load(workdir / "results/datasets/smooth/stack.npy")
    assert stack.shape == (20, 16, 16)
    np.testing.assert_array_equal(stack[7], decode_rgb(workdir / rows[7]["output"]))
    summary = read_metrics(workdir / "results/pipelines/smooth/summary.tsv")
    assert [row["metric"] for row in summary] == ["nonfinite", "mean", "var", "entropy", "brightest"]
    means = [float(row["mean"]) for row in rows]
    assert float(summary[1]["mean"]) == pytest.approx(np.mean(means), rel=1e-12)
    assert all(row["count"] == "20" for row in summary)


def test_a_pipeline_takes_another_pipelines_images(pipeline_run):
    workdir, _ = pipeline_run
    smooth = read_metrics(workdir / "results/pipelines/smooth/metrics.tsv")
    for before, row in zip(smooth, read_metrics(workdir / "results/pipelines/mask/metrics.tsv"), strict=True):
        assert row["file"] == before["output"]
        image = skimage.util.img_as_float32(decode_rgb(workdir / before["output"]))
        expected = image > skimage.filters.threshold_otsu(image)
        saved = decode_rgb(workdir / row["output"])
        np.testing.assert_array_equal(saved, expected * 255)
        assert float(row["area"]) == np.count_nonzero(expected)
        assert float(row["foreground_fraction"]) == np.count_nonzero(expected) / expected.size


def test_other_stages_take_a_pipelines_images(pipeline_run):
    workdir, _ = pipeline_run
    stats = read_metrics(workdir / "results/stats/smooth/summary.tsv")
    smooth = read_metrics(workdir / "results/pipelines/smooth/metrics.tsv")
    assert [row["file"] for row in stats] == [Path(row["output"]).name for row in smooth]
    for row, before in zip(stats, smooth, strict=True):
        assert float(row["mean_in"]) == pytest.approx(np.mean(decode_rgb(workdir / before["output"]) / 255), rel=1e-6)
    assert (
        decode_rgb(workdir / "results/mosaics/camera.png").shape[:2]
        == decode_rgb(workdir / "results/mosaics/samples/camera.png").shape[:2]
    )


def test_float_results_are_saved_as_float_tiff(pipeline_run):
    workdir, _ = pipeline_run
    _, inputs = read_dataset_index(workdir / "results/datasets/ramp")
    for source, row in zip(inputs, read_metrics(workdir / "results/pipelines/grey/metrics.tsv"), strict=True):
        saved = decode_rgb(workdir / row["output"])
        assert saved.dtype == np.float32 and saved.shape == (32, 32)
        expected = skimage.filters.sobel(skimage.color.rgb2gray(decode_rgb(source["path"])))
        np.testing.assert_allclose(saved, expected, rtol=1e-5, atol=1e-6)


def test_outputs_and_the_report(pipeline_run):
    workdir, output = pipeline_run
    for name in ("smooth", "mask", "grey"):
        for file in ("metrics.tsv", "summary.tsv", "metrics.png"):
            assert (workdir / "results/pipelines" / name / file).stat().st_size > 0
        assert (workdir / "results/datasets" / name / "manifest.tsv").is_file()
    assert (
        decode_rgb(workdir / "results/pipelines/smooth/contact.png").shape[1]
        > decode_rgb(workdir / "results/pipelines/mask/contact.png").shape[1]
    )
    assert not (workdir / "results/pipelines/grey/contact.png").exists()
    assert not partial_entries(workdir)
    assert "Nothing to be done" in run_ok(workdir, pipeline_config(**USERS_OF_SMOOTH), "-n")


# Reruns -------------------------------------------------------------------------------------------


def jobs_of(plan: dict, *names: str) -> set[str]:
    return {output for output in plan if any(f"/{name}/" in output for name in names)}


def expected_jobs(name: str, shards: int, contact: bool = True, stack: bool = False) -> set[str]:
    jobs = {f"results/datasets/{name}/shard-{k:04d}" for k in range(shards)}
    jobs |= {f"results/pipelines/{name}/metrics.tsv", f"results/datasets/{name}/manifest.tsv"}
    if contact:
        jobs.add(f"results/pipelines/{name}/contact.png")
    if stack:
        jobs.add(f"results/datasets/{name}/stack.npy")
    return jobs


SMOOTH_JOBS = expected_jobs("smooth", 7, stack=True)
MASK_JOBS = expected_jobs("mask", 7)


def test_edits_rerun_exactly_the_pipelines_they_touch(tmp_path):
    workdir = tmp_path / "run"
    write_modules(workdir)
    run_ok(workdir, pipeline_config())

    # One pipeline's steps, metrics or save: that pipeline alone.
    for key, value in (
        ("steps", [{"op": "threshold", "method": "li"}]),
        ("metrics", ["object_count"]),
        ("save", "bmp"),
    ):
        config = pipeline_config()
        config["pipelines"]["mask"][key] = value
        plan = without_report(dry_run_plan(workdir, config))
        assert set(plan) == MASK_JOBS, (key, sorted(plan))

    # A new pipeline: only its jobs.
    config = pipeline_config()
    config["pipelines"]["edges"] = {"dataset": "uni", "steps": [{"op": "scharr"}], "contact": 0}
    assert set(without_report(dry_run_plan(workdir, config))) == expected_jobs("edges", 7, contact=False)

    # Its dataset: the dataset, the pipeline and the pipeline taking its images.
    config = pipeline_config()
    config["datasets"]["uni"]["seed"] = 8
    plan = without_report(dry_run_plan(workdir, config))
    assert jobs_of(plan, "smooth") == SMOOTH_JOBS and jobs_of(plan, "mask") == MASK_JOBS
    assert not jobs_of(plan, "grey", "ramp")

    # A user module: the pipelines importing it, and those taking their images.
    time.sleep(0.01)
    (workdir / "maskops.py").write_text(MASKOPS + "\n# edited\n")
    assert set(without_report(dry_run_plan(workdir, pipeline_config()))) == MASK_JOBS
    run_ok(workdir, pipeline_config())
    (workdir / "cellops.py").write_text(CELLOPS + "\n# edited\n")
    assert set(without_report(dry_run_plan(workdir, pipeline_config()))) == SMOOTH_JOBS | MASK_JOBS


# Bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("smooth", "steps", [{"op": "blurr"}]), ["config key pipelines.smooth.steps.0.op: unknown operation 'blurr'"]),
        (("smooth", "steps", [{"op": "median", "size": 2.5}]), ["config key pipelines.smooth.steps.0.size: got 2.5"]),
        (
            ("mask", "dataset", "mask"),
            ["config key pipelines.mask.dataset: pipelines take each other's output in a cycle"],
        ),
        (
            ("grey", "dataset", "rampp"),
            ["config key pipelines.grey.dataset: 'rampp' is neither a dataset nor a pipeline"],
        ),
        (
            ("grey", "metrics", [{"function": "greyops:f"}]),
            ["config key pipelines.grey.metrics.0.function: module 'greyops' not found"],
        ),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, change, words):
    write_modules(tmp_path)
    config = pipeline_config()
    name, key, value = change
    config["pipelines"][name][key] = value
    returncode, output = run_snakemake(tmp_path, config)
    assert returncode != 0
    for word in words:
        assert word in output
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            "    raise RuntimeError('no cells here')\n",
            ["RuntimeError: no cells here", "cellops.py", "line 3, in scale"],
        ),
        ("    return image[..., None]\n", ["cellops:scale returned an array of shape (16, 16, 1)"]),
        ("    return image.tolist()\n", ["cellops:scale returned list, not a numpy array"]),
    ],
)
def test_a_failing_user_function_names_the_image_and_leaves_nothing_half_written(tmp_path, body, words):
    write_modules(tmp_path)
    (tmp_path / "cellops.py").write_text(
        f"def scale(image, factor=1.0):\n    image = image * factor\n{body}\n" + CELLOPS.split("\n\n\n")[1]
    )
    config = pipeline_config()
    returncode, output = run_snakemake(tmp_path, config, "--keep-going")
    assert returncode != 0
    logs = sorted((tmp_path / "results/logs/pipelines/smooth").glob("shard-*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert "results/datasets/uni/shard-" in text and "uni_0000" in text
        for word in words:
            assert word in text
    assert not list((tmp_path / "results/datasets").glob("smooth/shard-*"))
    assert not (tmp_path / "results/datasets/mask").exists()
    assert (tmp_path / "results/pipelines/grey/metrics.tsv").is_file()  # the other pipelines ran on
    assert not partial_entries(tmp_path)
