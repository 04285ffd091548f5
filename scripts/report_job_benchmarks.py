"""Gather the jobs' Snakemake benchmark records into one HTML table for the report."""

from pixelflow.benchtable import write_benchmark_table
from pixelflow.joblog import job_log


def main(job):
    with job_log(job.log[0], f"job benchmarks {job.output[0]}") as log:
        count = write_benchmark_table(job.output[0], job.params.folder)
        log.info("%d job benchmark records", count)


if __name__ == "__main__":
    main(snakemake)
