"""Gather a pipeline's shard metrics into metrics.tsv, summary.tsv and metrics.png."""

import os

from pixelflow.joblog import job_log
from pixelflow.pipelines.run import METRICS_NAME
from pixelflow.pipelines.summary import gather_metrics, metric_values, plot_metrics, write_summary


def main(job):
    with job_log(job.log[0], f"pipeline summary {job.output.metrics}") as log:
        tables = [os.path.join(shard, METRICS_NAME) for shard in job.input.shards]
        header, rows = gather_metrics(tables, job.output.metrics)
        values = metric_values(header, rows)
        write_summary(job.output.summary, values)
        plot_metrics(job.output.plot, values, f"pipeline {job.wildcards.pipeline}: {len(rows)} images")
        bad = int((values["nonfinite"] > 0).sum())
        log.info("%d images, metrics %s", len(rows), ", ".join(values))
        if bad:
            log.warning("%d images have NaN or infinite pixels", bad)


if __name__ == "__main__":
    main(snakemake)
