"""The stats stage and the report, run by real snakemake on tiny configs."""

import numpy as np
import pytest
from conftest import decode_rgb, planned_jobs, run_ok, run_snakemake, tiny_config
from pixelflow.pipelines import filters
from pixelflow.stats.tables import read_table

STATS = {"datasets": ["uni", "ramp"], "sigmas": [1, 2.5], "mode": "reflect", "save_filtered": "bmp"}
COUNTS = {"uni": 20, "ramp": 7}


@pytest.fixture(scope="module")
def stats_run(tmp_path_factory):
    """One finished run of the tiny config with stats on both datasets."""
    workdir = tmp_path_factory.mktemp("stats")
    config = tiny_config(stats=STATS)
    run_ok(workdir, config)
    return workdir, config


def test_summary_has_a_row_per_image_and_sigma_in_index_order(stats_run):
    workdir, _ = stats_run
    for name, count in COUNTS.items():
        rows = read_table(workdir / f"results/stats/{name}/summary.tsv")
        assert [(row["index"], row["sigma"]) for row in rows] == [(i, s) for i in range(count) for s in (1.0, 2.5)]
        theory = read_table(workdir / f"results/stats/{name}/theory.tsv")
        assert [row["sigma"] for row in theory] == [1.0, 2.5]
        assert (workdir / f"results/stats/{name}/variance.png").read_bytes().startswith(b"\x89PNG")


def test_filtered_images_are_the_images_filtered(stats_run):
    workdir, _ = stats_run
    for name, count in COUNTS.items():
        manifest = (workdir / f"results/datasets/{name}/manifest.tsv").read_text().splitlines()[1:]
        for line in manifest[:: max(1, count // 4)]:
            index, file = int(line.split("\t")[0]), line.split("\t")[1]
            values = filters.to_float(decode_rgb(workdir / f"results/datasets/{name}" / file))
            for sigma, label in ((1.0, "1"), (2.5, "2.5")):
                shard = f"{index // 3:04d}"
                saved = decode_rgb(
                    workdir / f"results/stats/{name}/filtered/sigma-{label}/shard-{shard}/{name}_{index:06d}.bmp"
                )
                expected = filters.to_uint8(filters.gaussian(values, sigma, 4.0, "reflect"))
                np.testing.assert_array_equal(saved, expected)


def test_nothing_to_do_after_a_run_and_the_report_has_every_entry(stats_run):
    workdir, config = stats_run
    assert planned_jobs(run_ok(workdir, config, "-n")) == {}
    run_ok(workdir, config, "--report", "report.html")
    text = (workdir / "report.html").read_text(encoding="utf-8")
    for entry in ("montage.png", "variance.png", "summary.tsv", "theory.tsv", "job-benchmarks.html"):
        assert entry in text, entry
    for category in ("Datasets", "Variance", "Benchmarks"):
        assert category in text, category
    for caption in ("Contact sheet of the first images", "Theory check for dataset", "benchmark:"):
        assert caption in text, caption
    table = (workdir / "results/report/job-benchmarks.html").read_text()
    assert "<td>stats/uni/shard-0000</td>" in table and "<td>datasets/ramp/shard-0002</td>" in table


def test_stats_edit_replans_only_stats(stats_run):
    workdir, config = stats_run
    edited = dict(config, stats=dict(STATS, sigmas=[1, 3]))
    jobs = planned_jobs(run_ok(workdir, edited, "-n"))
    assert jobs and {rule for rule in jobs.values()} <= {
        "stats_shard",
        "stats_summary",
        "stats_plot",
        "report_job_benchmarks",
    }


def test_dataset_edits_replan_exactly_the_stats_they_change(stats_run):
    workdir, config = stats_run
    reseeded = tiny_config(stats=STATS)
    reseeded["datasets"]["uni"]["seed"] = 99
    jobs = planned_jobs(run_ok(workdir, reseeded, "-n"))
    stats_jobs = {path for path, rule in jobs.items() if rule == "stats_shard"}
    assert stats_jobs == {f"results/stats/uni/shards/shard-{k:04d}.tsv" for k in range(7)}
    assert not any("/ramp/" in path for path in jobs)
    recompressed = tiny_config(stats=STATS)
    recompressed["datasets"]["uni"]["compression"] = 9  # lossless: the stored pixels stay the same
    jobs = planned_jobs(run_ok(workdir, recompressed, "-n"))
    assert "dataset_shard" in jobs.values() and not {"stats_shard", "stats_summary"} & set(jobs.values())


def test_summary_of_a_generated_dataset_needs_no_dataset_job(stats_run, tmp_path):
    finished, _ = stats_run
    config = tiny_config(stats=STATS)
    output = run_ok(tmp_path, config, "results/stats/ramp/summary.tsv")
    assert set(planned_jobs(output).values()) == {"stats_shard", "stats_summary"}
    assert not (tmp_path / "results/datasets").exists()
    for name in ("summary.tsv", "theory.tsv"):
        assert (tmp_path / "results/stats/ramp" / name).read_bytes() == (
            finished / "results/stats/ramp" / name
        ).read_bytes()
    for saved in (finished / "results/stats/ramp/filtered").rglob("*.bmp"):
        assert (tmp_path / saved.relative_to(finished)).read_bytes() == saved.read_bytes()


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({"datasets": ["nope"]}, "config key stats.datasets.0: dataset 'nope' is not defined"),
        (
            {"datasets": ["uni"], "sigmas": [0]},
            "config key stats.sigmas.0: 0 is less than or equal to the minimum of 0",
        ),
    ],
)
def test_bad_stats_config_stops_before_any_job(tmp_path, stats, message):
    returncode, output = run_snakemake(tmp_path, tiny_config(stats=stats))
    assert returncode != 0
    assert message in output
    assert not (tmp_path / "results").exists()


def test_nan_in_an_external_float_image_fails_naming_it(tmp_path):
    from pixelflow.io.images import write_image

    (tmp_path / "images").mkdir()
    for index in range(3):
        image = np.full((8, 8), 0.25 * index, np.float32)
        if index == 1:
            image[2, 3] = np.nan
        write_image(tmp_path / "images" / f"f{index}.tif", image)
    config = {"max_threads": 1, "montage": {"count": 0}, "datasets": {"ext": {"path": "images/*.tif", "stack": False}}}
    config["stats"] = {"datasets": ["ext"], "sigmas": [1]}
    returncode, output = run_snakemake(tmp_path, config)
    assert returncode != 0
    log = (tmp_path / "results/logs/stats/ext/shard-0000.log").read_text()
    assert "images/f1.tif: 1 pixels are NaN or infinite" in log
    assert not (tmp_path / "results/stats/ext/shards/shard-0000.tsv").exists()
    assert not (tmp_path / "results/stats/ext/filtered/sigma-1/shard-0000").exists()
    assert not (tmp_path / "results/stats/ext/summary.tsv").exists()
