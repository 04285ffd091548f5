"""Gather a dataset's shard tables into summary.tsv and theory.tsv."""

from pixelflow.joblog import job_log
from pixelflow.stats.tables import write_summary


def main(job):
    with job_log(job.log[0], f"stats summary {job.output.summary}") as log:
        rows, theory = write_summary(
            job.input.tables, job.output.summary, job.output.theory, job.params.sigmas, job.params.truncate
        )
        log.info("%d rows; theory (sigma, radius, images, measured, continuous, discrete, ...): %s", len(rows), theory)


if __name__ == "__main__":
    main(snakemake)
